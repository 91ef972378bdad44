/**
 * One mapper per ONNX op type, from the explicit table `OP_MAPPERS` at the end: each gives the shapes of
 * the node's outputs (folding constants where its inputs are constant) and what the node becomes: a
 * layer reading one value, a view (a shape op), an alias, or a join of several values (Add, Mul, Concat)
 * that the pattern rewrites and the structure pass turn into modules.
 */
import { Clip, GELU, HardSigmoid, HardSwish, Sigmoid } from '../nn/activations.js';
import { ChannelSelect } from '../nn/channels.js';
import { ChannelLayerNorm } from '../nn/layernorm.js';
import { Pad2d } from '../nn/pad.js';
import { PAD_MODES, type PadMode } from '../ops/pad.js';
import { AvgPool2d, BatchNorm2d, Conv2d, GlobalAvgPool, GlobalMaxPool, Linear, MaxPool2d, ReLU, Sequential } from '../nn/layers.js';
import type { Module } from '../nn/module.js';
import { copyInto } from './model-file.js';
import { attribute } from './onnx-graph.js';
import {
  axesOf, constantInput, constantOf, f32, float, ImportProblem, int, ints, optionalConstant, product, sameDims, shortestFloat, text,
  type Constant, type OnnxGraph, type OnnxNode,
} from './onnx-import-graph.js';

export type JoinKind = 'add' | 'mul' | 'concat';

/** What one node becomes. */
export type Mapped =
  | { readonly kind: 'constant' }
  | { readonly kind: 'alias'; readonly input: string }
  | { readonly kind: 'view'; readonly input: string }
  | { readonly kind: 'layer'; readonly input: string; readonly make: () => Module }
  | { readonly kind: 'join'; readonly join: JoinKind; readonly inputs: readonly string[] }
  /** A node only a pattern rewrite consumes (gate comparisons); `why` is the problem when none does. */
  | { readonly kind: 'pattern'; readonly inputs: readonly string[]; readonly why: string };

export interface OpMapper {
  /** The first opset at which the op has the meaning this mapper reads (default 1). */
  readonly since?: number;
  /** Output shapes (batch included); a mapper that folds its node sets g.constants and returns []. */
  readonly shape: (g: OnnxGraph, n: OnnxNode) => number[][];
  readonly map: (g: OnnxGraph, n: OnnxNode) => Mapped;
}

const constant: Mapped = { kind: 'constant' };

function allConstant(g: OnnxGraph, n: OnnxNode): boolean {
  return n.inputs.every((i) => i === '' || g.constants.has(i));
}

function setConstant(g: OnnxGraph, n: OnnxNode, c: Constant): number[][] {
  g.constants.set(n.outputs[0] as string, c);
  return [];
}

function firstData(g: OnnxGraph, n: OnnxNode): string {
  const data = g.dataInputs(n);
  if (data.length !== 1) throw new ImportProblem(`it has ${data.length} data inputs, expected 1`);
  return data[0] as string;
}

function same(g: OnnxGraph, n: OnnxNode): number[][] {
  return [g.inputShape(n, 0)];
}

function broadcast(a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1;
    const y = b[b.length - rank + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) throw new ImportProblem(`shapes [${a.join(',')}] and [${b.join(',')}] do not broadcast`);
    out.push(Math.max(x, y));
  }
  return out;
}

/** Element-wise binary op on constants (with broadcasting). */
function foldBinary(a: Constant, b: Constant, f: (x: number, y: number) => number, integerDivision = false): Constant {
  const integer = a.integer === true && b.integer === true;
  const dims = broadcast(a.dims, b.dims);
  const size = product(dims);
  const values = new Float64Array(size);
  const index = (c: Constant, flat: number): number => {
    let idx = 0, stride = 1, rem = flat;
    const off = dims.length - c.dims.length;
    const coords = new Array<number>(dims.length);
    for (let i = dims.length - 1; i >= 0; i--) {
      coords[i] = rem % (dims[i] as number);
      rem = Math.floor(rem / (dims[i] as number));
    }
    for (let i = c.dims.length - 1; i >= 0; i--) {
      const d = c.dims[i] as number;
      idx += (d === 1 ? 0 : (coords[i + off] as number)) * stride;
      stride *= d;
    }
    return idx;
  };
  for (let i = 0; i < size; i++) {
    const v = f(a.values[index(a, i)] as number, b.values[index(b, i)] as number);
    values[i] = integer && integerDivision ? Math.trunc(v) : v;
  }
  return { dims, values, integer };
}

/** ONNX pads [top, left, bottom, right], from `pads` or from auto_pad. */
function rawPads(g: OnnxGraph, n: OnnxNode, kernel: readonly number[], strides: readonly number[], dilations: readonly number[]): number[] {
  const auto = text(n, 'auto_pad', 'NOTSET');
  if (auto === 'NOTSET' || auto === '') {
    const p = ints(n, 'pads', [0, 0, 0, 0]);
    if (p.length !== 4 || p.some((v) => !(v >= 0))) throw new ImportProblem(`pads [${p.join(', ')}] (expected 4 amounts >= 0)`);
    return p;
  }
  if (auto === 'VALID') return [0, 0, 0, 0];
  const [, , H, W] = g.inputShape(n, 0) as [number, number, number, number];
  const total = [H, W].map((size, i) => {
    const out = Math.ceil(size / (strides[i] as number));
    return Math.max(0, (out - 1) * (strides[i] as number) + ((kernel[i] as number) - 1) * (dilations[i] as number) + 1 - size);
  }) as [number, number];
  const lower = auto === 'SAME_LOWER';
  const half = (t: number, begin: boolean): number => (begin === lower ? Math.ceil(t / 2) : Math.floor(t / 2));
  return [half(total[0], true), half(total[1], true), half(total[0], false), half(total[1], false)];
}

function symmetric(pads: readonly number[]): [number, number] {
  if (pads[0] !== pads[2] || pads[1] !== pads[3]) throw new ImportProblem(`asymmetric pads [${pads.join(', ')}]`);
  return [pads[0] as number, pads[1] as number];
}

/** A Pad node's mode, value and amounts [begin..., end...]. */
function padSpec(g: OnnxGraph, n: OnnxNode, rank: number): { mode: PadMode; value: number; amounts: number[] } {
  const mode = text(n, 'mode', 'constant');
  if (!(PAD_MODES as readonly string[]).includes(mode)) throw new ImportProblem(`${mode} padding (constant, reflect and edge map)`);
  const value = g.opset >= 11 ? g.constant(n.inputs[2])?.values[0] ?? 0 : float(n, 'value', 0);
  const amounts = g.opset >= 11 ? [...constantInput(g, n, 1, 'pads').values] : ints(n, 'pads', []);
  if (amounts.length !== 2 * rank || amounts.some((p) => !Number.isInteger(p) || p < 0)) throw new ImportProblem(`pads [${amounts.join(', ')}] for a rank-${rank} input (expected ${2 * rank} whole numbers >= 0)`);
  return { mode: mode as PadMode, value, amounts };
}

/** A Pad node's amounts when it is zero constant padding, which a reader can absorb. */
function padAmounts(g: OnnxGraph, n: OnnxNode, rank: number): number[] {
  const p = padSpec(g, n, rank);
  if (p.mode !== 'constant' || p.value !== 0) throw new ImportProblem(`${p.mode} padding${p.mode === 'constant' ? ` with ${p.value}` : ''} (a reader absorbs only zero padding)`);
  return p.amounts;
}

/** The zero Pad in front of a Conv or AveragePool, folded into its padding: [h, w] and the Pad's input. */
function absorbedPad(g: OnnxGraph, n: OnnxNode): { pads: [number, number]; input: string } | null {
  const pad = g.producer.get(n.inputs[0] as string);
  if (pad === undefined || pad.op !== 'Pad') return null;
  const x = g.inputShape(pad, 0);
  const p = padAmounts(g, pad, x.length);
  if (x.length !== 4 || p[0] !== 0 || p[1] !== 0 || p[4] !== 0 || p[5] !== 0) throw new ImportProblem('a Pad in front of it pads the batch or channel axis');
  if (p[2] !== p[6] || p[3] !== p[7]) throw new ImportProblem(`a Pad in front of it pads unevenly [${p.join(', ')}]`);
  if (g.readerCount(pad.outputs[0] as string) !== 1) throw new ImportProblem('the Pad in front of it has other readers');
  return { pads: [p[2] as number, p[3] as number], input: pad.inputs[0] as string };
}

/** A Linear from a [in, out] (or, transposed, [out, in]) weight. */
export function linear(inF: number, outF: number, w: Float64Array, transposed: boolean, alpha: number, bias: Float64Array | null): Linear {
  const l = new Linear({ inFeatures: inF, outFeatures: outF, bias: bias !== null });
  const values = new Float32Array(outF * inF);
  for (let o = 0; o < outF; o++) for (let i = 0; i < inF; i++) values[o * inF + i] = (w[transposed ? o * inF + i : i * outF + o] as number) * alpha;
  copyInto(l.weight, values);
  if (bias !== null && l.bias !== null) copyInto(l.bias, Float32Array.from(bias));
  return l;
}

function positive(what: string, values: readonly number[]): void {
  if (values.some((v) => !Number.isInteger(v) || v < 1)) throw new ImportProblem(`${what} [${values.join(', ')}] (expected whole numbers >= 1)`);
}

const conv: OpMapper = {
  shape: (g, n) => {
    const x = g.inputShape(n, 0);
    const w = constantInput(g, n, 1, 'weight');
    if (x.length !== 4 || w.dims.length !== 4) throw new ImportProblem(`a ${w.dims.length - 2}-D convolution (only 2-D convolutions map)`);
    const k = w.dims.slice(2);
    const s = ints(n, 'strides', [1, 1]), d = ints(n, 'dilations', [1, 1]);
    positive('strides', s);
    positive('dilations', d);
    const p = rawPads(g, n, k, s, d);
    const out = (size: number, i: number): number => Math.floor((size + (p[i] as number) + (p[i + 2] as number) - (d[i] as number) * ((k[i] as number) - 1) - 1) / (s[i] as number)) + 1;
    return [[x[0] as number, w.dims[0] as number, out(x[2] as number, 0), out(x[3] as number, 1)]];
  },
  map: (g, n) => {
    g.channelsFirst(n);
    const w = constantInput(g, n, 1, 'weight');
    const b = optionalConstant(g, n, 2, 'bias');
    const x = g.inputShape(n, 0);
    const kernel = [w.dims[2] as number, w.dims[3] as number] as [number, number];
    const strides = ints(n, 'strides', [1, 1]) as [number, number];
    const dilations = ints(n, 'dilations', [1, 1]) as [number, number];
    const raw = rawPads(g, n, kernel, strides, dilations);
    // Asymmetric padding (auto_pad SAME_*, explicit pads) is a zero Pad2d in front of an unpadded conv.
    const explicit = raw[0] !== raw[2] || raw[1] !== raw[3];
    const own: [number, number] = explicit ? [0, 0] : symmetric(raw);
    const pad = explicit ? null : absorbedPad(g, n);
    const padding: [number, number] = [own[0] + (pad?.pads[0] ?? 0), own[1] + (pad?.pads[1] ?? 0)];
    const groups = int(n, 'group', 1);
    const inChannels = x[1] as number;
    if (groups < 1 || (w.dims[1] as number) * groups !== inChannels) throw new ImportProblem(`a [${w.dims.join(', ')}] weight with group ${groups} does not read ${inChannels} channels`);
    if ((w.dims[0] as number) % groups !== 0) throw new ImportProblem(`${w.dims[0]} kernels do not split into ${groups} groups`);
    if (b !== null && b.values.length !== w.dims[0]) throw new ImportProblem(`a bias of ${b.values.length} values for ${w.dims[0]} kernels`);
    return {
      kind: 'layer',
      input: pad?.input ?? firstData(g, n),
      make: () => {
        const c = new Conv2d({ inChannels, outChannels: w.dims[0] as number, kernel, stride: strides, padding, dilation: dilations, groups, bias: b !== null });
        copyInto(c.weight, f32(w));
        if (b !== null && c.bias !== null) copyInto(c.bias, f32(b));
        return explicit ? new Sequential([new Pad2d(raw as [number, number, number, number]), c]) : c;
      },
    };
  },
};

const batchNorm: OpMapper = {
  shape: same,
  map: (g, n) => {
    g.channelsFirst(n);
    if (int(n, 'training_mode', 0) !== 0) throw new ImportProblem('training_mode is set');
    if (g.opset < 9 && int(n, 'spatial', 1) !== 1) throw new ImportProblem('spatial 0 (per-position statistics)');
    const x = g.inputShape(n, 0);
    if (x.length !== 4) throw new ImportProblem(`it normalises a rank-${x.length} value (only [N, C, H, W] maps)`);
    const [gamma, beta, mean, variance] = ['scale', 'bias', 'mean', 'variance'].map((what, i) => constantInput(g, n, i + 1, what)) as [Constant, Constant, Constant, Constant];
    const C = x[1] as number;
    if ([gamma, beta, mean, variance].some((c) => c.values.length !== C)) throw new ImportProblem(`its statistics do not have ${C} values`);
    const eps = shortestFloat(float(n, 'epsilon', 1e-5));
    const momentum = Number((1 - shortestFloat(float(n, 'momentum', 0.9))).toPrecision(12));
    return {
      kind: 'layer',
      input: firstData(g, n),
      make: () => {
        const bn = new BatchNorm2d(C, { eps, momentum });
        copyInto(bn.gamma, f32(gamma));
        copyInto(bn.beta, f32(beta));
        copyInto(bn.runningMean, f32(mean));
        copyInto(bn.runningVar, f32(variance));
        return bn;
      },
    };
  },
};

function unaryLayer(make: (g: OnnxGraph, n: OnnxNode) => () => Module): OpMapper {
  return {
    shape: same,
    map: (g, n) => ({ kind: 'layer', input: firstData(g, n), make: make(g, n) }),
  };
}

/** Clip bounds: attributes before opset 11, optional inputs from it on. */
export function clipBounds(g: OnnxGraph, n: OnnxNode): [number, number] {
  if (g.opset < 11) return [float(n, 'min', -Infinity), float(n, 'max', Infinity)];
  const lo = optionalConstant(g, n, 1, 'min')?.values[0] ?? -Infinity;
  const hi = optionalConstant(g, n, 2, 'max')?.values[0] ?? Infinity;
  return [lo, hi];
}

const clip: OpMapper = {
  shape: (g, n) => {
    if (allConstant(g, n)) {
      const [lo, hi] = clipBounds(g, n);
      const c = g.constant(n.inputs[0]) as Constant;
      return setConstant(g, n, { dims: c.dims, values: c.values.map((v) => Math.min(Math.max(v, lo), hi)) });
    }
    return same(g, n);
  },
  map: (g, n) => {
    if (g.constants.has(n.outputs[0] as string)) return constant;
    const [lo, hi] = clipBounds(g, n);
    if (!(lo <= hi)) throw new ImportProblem(`Clip(${lo}, ${hi}) has its bounds the wrong way round`);
    // float32 max is PyTorch's way of writing "no upper bound".
    const top = hi >= 3.4e38 ? Infinity : hi;
    return { kind: 'layer', input: firstData(g, n), make: () => (lo === 0 && top === Infinity ? new ReLU() : new Clip(lo, top)) };
  },
};

function poolWindow(g: OnnxGraph, n: OnnxNode): { kernel: [number, number]; strides: [number, number]; pads: number[]; ceil: boolean } {
  const kernel = ints(n, 'kernel_shape', []);
  if (kernel.length !== 2) throw new ImportProblem(`a ${kernel.length}-D window (only 2-D pooling maps)`);
  positive('kernel_shape', kernel);
  const strides = ints(n, 'strides', [1, 1]);
  positive('strides', strides);
  if (ints(n, 'dilations', [1, 1]).some((d) => d !== 1)) throw new ImportProblem('dilated pooling');
  return { kernel: kernel as [number, number], strides: strides as [number, number], pads: rawPads(g, n, kernel, strides, [1, 1]), ceil: int(n, 'ceil_mode', 0) !== 0 };
}

/** Pooled size along one side, as ONNX (and PyTorch) compute it: with ceil_mode the last window must start inside the input or its leading padding. */
export function pooledSize(size: number, k: number, s: number, before: number, after: number, ceil: boolean): number {
  const span = size + before + after - k;
  if (!ceil) return Math.floor(span / s) + 1;
  let out = Math.ceil(span / s) + 1;
  if ((out - 1) * s >= size + before) out--;
  return out;
}

function pool(kind: 'max' | 'avg'): OpMapper {
  return {
    shape: (g, n) => {
      const x = g.inputShape(n, 0);
      if (x.length !== 4) throw new ImportProblem(`it pools a rank-${x.length} value (only [N, C, H, W] maps)`);
      const w = poolWindow(g, n);
      const out = [0, 1].map((i) => pooledSize(x[i + 2] as number, w.kernel[i] as number, w.strides[i] as number, w.pads[i] as number, w.pads[i + 2] as number, w.ceil));
      const shape = [x[0] as number, x[1] as number, out[0] as number, out[1] as number];
      return n.outputs.length > 1 && n.outputs[1] !== '' ? [shape, shape] : [shape];
    },
    map: (g, n) => {
      g.channelsFirst(n);
      const w = poolWindow(g, n);
      if (n.outputs.length > 1 && n.outputs[1] !== '' && g.readerCount(n.outputs[1] as string) > 0) throw new ImportProblem('its indices output is used');
      const includePad = kind === 'avg' && int(n, 'count_include_pad', 0) !== 0;
      // Padding our pools cannot hold (asymmetric, or more than half the window) is a Pad2d in front:
      // the edge values for max pooling (each padded cell repeats one of the window), zeros counted for average pooling.
      const wide = w.pads.some((p, i) => p * 2 > (w.kernel[i % 2] as number));
      const explicit = (w.pads[0] !== w.pads[2] || w.pads[1] !== w.pads[3] || wide) && !w.ceil && (kind === 'max' || includePad);
      if (explicit) {
        const pads = [w.pads[0], w.pads[1], w.pads[2], w.pads[3]] as [number, number, number, number];
        const options = kind === 'avg' ? { countIncludePad: true } : {};
        return {
          kind: 'layer',
          input: firstData(g, n),
          make: () => new Sequential([new Pad2d(pads, kind === 'max' ? 'edge' : 'constant'), kind === 'max' ? new MaxPool2d(w.kernel, w.strides, 0, options) : new AvgPool2d(w.kernel, w.strides, 0, options)]),
        };
      }
      const own = symmetric(w.pads);
      const pad = kind === 'avg' ? absorbedPad(g, n) : null;
      // Zeros padded in front of an average pool count in its windows, as padding that is counted.
      if (pad !== null && !includePad && (own[0] > 0 || own[1] > 0)) throw new ImportProblem('a Pad in front of an average pool that excludes its own padding');
      const padding: [number, number] = [own[0] + (pad?.pads[0] ?? 0), own[1] + (pad?.pads[1] ?? 0)];
      const countIncludePad = includePad || pad !== null;
      if (padding[0] * 2 > w.kernel[0] || padding[1] * 2 > w.kernel[1]) throw new ImportProblem(`padding ${padding.join('x')} is more than half the ${w.kernel.join('x')} window`);
      const x = g.inputShape(n, 0);
      // A ceil-mode window that runs past the padded input divides by fewer cells when padding counts.
      const overhang = [0, 1].some((i) => {
        const out = pooledSize(x[i + 2] as number, w.kernel[i] as number, w.strides[i] as number, padding[i] as number, padding[i] as number, w.ceil);
        return (out - 1) * (w.strides[i] as number) + (w.kernel[i] as number) > (x[i + 2] as number) + 2 * (padding[i] as number);
      });
      if (kind === 'avg' && countIncludePad && overhang) throw new ImportProblem('ceil_mode average pooling that counts padding in a window running past it');
      const options = { ceilMode: w.ceil, ...(kind === 'avg' ? { countIncludePad } : {}) };
      return {
        kind: 'layer',
        input: pad?.input ?? firstData(g, n),
        make: () => (kind === 'max' ? new MaxPool2d(w.kernel, w.strides, padding, options) : new AvgPool2d(w.kernel, w.strides, padding, options)),
      };
    },
  };
}

function globalPool(kind: 'max' | 'avg'): OpMapper {
  return {
    shape: (g, n) => {
      const x = g.inputShape(n, 0);
      if (x.length !== 4) throw new ImportProblem(`it pools a rank-${x.length} value (only [N, C, H, W] maps)`);
      return [[x[0] as number, x[1] as number, 1, 1]];
    },
    map: (g, n) => {
      g.channelsFirst(n);
      return { kind: 'layer', input: firstData(g, n), make: () => (kind === 'max' ? new GlobalMaxPool() : new GlobalAvgPool()) };
    },
  };
}

function reduce(kind: 'max' | 'mean'): OpMapper {
  return {
    shape: (g, n) => {
      const x = g.inputShape(n, 0);
      const axes = axesOf(g, n, x.length, 18) ?? x.map((_, i) => i);
      const keep = int(n, 'keepdims', 1) !== 0;
      return [x.flatMap((d, i) => (axes.includes(i) ? (keep ? [1] : []) : [d]))];
    },
    map: (g, n) => {
      const x = g.inputShape(n, 0);
      const axes = (axesOf(g, n, x.length, 18) ?? x.map((_, i) => i)).sort();
      if (x.length !== 4 || axes.length !== 2 || axes[0] !== 2 || axes[1] !== 3 || g.channelsLast.has(firstData(g, n))) {
        return { kind: 'pattern', inputs: g.dataInputs(n), why: `it reduces axes [${axes.join(', ')}] (only H and W of [N, C, H, W] map, as a global pool, or the channels inside a LayerNorm)` };
      }
      return { kind: 'layer', input: firstData(g, n), make: () => (kind === 'mean' ? new GlobalAvgPool() : new GlobalMaxPool()) };
    },
  };
}

/** Shape ops: folded on constants, views of data otherwise. */
function view(shapeOf: (g: OnnxGraph, n: OnnxNode, x: number[]) => number[]): OpMapper {
  return {
    shape: (g, n) => {
      const x = g.inputShape(n, 0);
      const out = shapeOf(g, n, x);
      if (out.some((d) => !Number.isInteger(d) || d < 0) || product(out) !== product(x)) throw new ImportProblem(`it reshapes [${x.join(',')}] to [${out.join(',')}]`);
      const c = g.constant(n.inputs[0]);
      return c !== undefined ? setConstant(g, n, { dims: out, values: c.values, integer: c.integer === true }) : [out];
    },
    map: (g, n) => {
      if (g.constants.has(n.outputs[0] as string)) return constant;
      g.channelsFirst(n);
      return { kind: 'view', input: firstData(g, n) };
    },
  };
}

const reshape = view((g, n, x) => {
  const target = constantInput(g, n, 1, 'target shape');
  const allowZero = g.opset >= 14 && int(n, 'allowzero', 0) !== 0;
  const dims = [...target.values].map((d, i) => (d === 0 && !allowZero ? (x[i] as number) : d));
  if (dims.filter((d) => d === -1).length > 1) throw new ImportProblem(`target shape [${dims.join(',')}] has more than one -1`);
  const known = product(dims.filter((d) => d !== -1));
  return dims.map((d) => (d === -1 ? product(x) / known : d));
});

const flatten = view((_g, n, x) => {
  const axis = int(n, 'axis', 1);
  const a = axis < 0 ? axis + x.length : axis;
  return [product(x.slice(0, a)), product(x.slice(a))];
});

const squeeze = view((g, n, x) => {
  const axes = axesOf(g, n, x.length, 13) ?? x.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0);
  if (axes.some((a) => x[a] !== 1)) throw new ImportProblem(`it squeezes axes [${axes.join(', ')}] of [${x.join(',')}], not all of size 1`);
  return x.filter((_, i) => !axes.includes(i));
});

const unsqueeze = view((g, n, x) => {
  const listed = g.opset >= 13 ? [...constantInput(g, n, 1, 'axes').values] : ints(n, 'axes', []);
  const rank = x.length + listed.length;
  const axes = listed.map((a) => (a < 0 ? a + rank : a));
  const out: number[] = [];
  let j = 0;
  for (let i = 0; i < rank; i++) out.push(axes.includes(i) ? 1 : (x[j++] as number));
  return out;
});

const alias: OpMapper = {
  shape: (g, n) => {
    const c = g.constant(n.inputs[0]);
    if (c !== undefined) return setConstant(g, n, c);
    const s = g.inputShape(n, 0);
    return n.outputs.length > 1 ? [s, s] : [s];
  },
  map: (g, n) => {
    if (g.constants.has(n.outputs[0] as string)) return constant;
    if (n.op === 'Dropout' && n.outputs.length > 1 && n.outputs[1] !== '' && g.readerCount(n.outputs[1] as string) > 0) throw new ImportProblem('its mask output is used');
    return { kind: 'alias', input: firstData(g, n) };
  },
};

const constantOp: OpMapper = {
  shape: (g, n) => {
    const t = attribute(n.proto, 'value');
    if (t !== undefined && typeof t === 'object' && !Array.isArray(t)) return setConstant(g, n, constantOf(t));
    const f = attribute(n.proto, 'value_float');
    const fs = attribute(n.proto, 'value_floats');
    const i = attribute(n.proto, 'value_int');
    const is = attribute(n.proto, 'value_ints');
    if (typeof f === 'number' || typeof i === 'number') return setConstant(g, n, { dims: [], values: Float64Array.of((f ?? i) as number), integer: typeof i === 'number' });
    if (Array.isArray(fs) || Array.isArray(is)) {
      const list = (fs ?? is) as number[];
      return setConstant(g, n, { dims: [list.length], values: Float64Array.from(list), integer: Array.isArray(is) });
    }
    throw new ImportProblem('a Constant without a tensor, float or int value');
  },
  map: () => constant,
};

const shapeOp: OpMapper = {
  shape: (g, n) => {
    const x = g.inputShape(n, 0);
    const start = int(n, 'start', 0), end = int(n, 'end', x.length);
    const dims = x.slice(start < 0 ? start + x.length : start, end < 0 ? end + x.length : end);
    return setConstant(g, n, { dims: [dims.length], values: Float64Array.from(dims), integer: true });
  },
  map: () => constant,
};

/** Ops that compute only on constants (shape arithmetic); on data they are refused. */
function constantOnly(fold: (g: OnnxGraph, n: OnnxNode, inputs: Constant[]) => Constant): OpMapper {
  return {
    shape: (g, n) => {
      if (!allConstant(g, n)) throw new ImportProblem('it computes on data (only on constants, as shape arithmetic)');
      return setConstant(g, n, fold(g, n, n.inputs.map((i) => g.constant(i) as Constant)));
    },
    map: () => constant,
  };
}

/** Gather on constants folds (shape arithmetic); on data, a 1-D list of channels of [N, C, H, W] is a channel selection. */
const gather: OpMapper = {
  shape: (g, n) => {
    const data = g.constant(n.inputs[0]);
    const idx = constantInput(g, n, 1, 'indices');
    const axis = int(n, 'axis', 0);
    if (data !== undefined) {
      if (data.dims.length !== 1 || axis !== 0) throw new ImportProblem('only Gather from a 1-D constant folds');
      const len = data.values.length;
      return setConstant(g, n, { dims: idx.dims, values: idx.values.map((i) => data.values[i < 0 ? i + len : i] ?? Number.NaN), integer: data.integer === true });
    }
    const x = g.inputShape(n, 0);
    if (x.length !== 4 || (axis !== 1 && axis !== -3) || idx.dims.length !== 1) throw new ImportProblem(`it gathers along axis ${axis} of a rank-${x.length} value with ${idx.dims.length}-D indices (only a list of channels maps)`);
    return [[x[0] as number, idx.values.length, x[2] as number, x[3] as number]];
  },
  map: (g, n) => {
    if (g.constants.has(n.outputs[0] as string)) return constant;
    const C = g.inputShape(n, 0)[1] as number;
    const order = [...constantInput(g, n, 1, 'indices').values].map((i) => (i < 0 ? i + C : i));
    if (order.some((c) => !Number.isInteger(c) || c < 0 || c >= C)) throw new ImportProblem(`indices outside [0, ${C})`);
    return { kind: 'layer', input: firstData(g, n), make: () => new ChannelSelect(C, order) };
  },
};

const transpose: OpMapper = {
  shape: (g, n) => {
    const x = g.inputShape(n, 0);
    const perm = ints(n, 'perm', x.map((_, i) => x.length - 1 - i));
    if (perm.length !== x.length || [...perm].sort().some((p, i) => p !== i)) throw new ImportProblem(`perm [${perm.join(', ')}] is not a permutation of ${x.length} axes`);
    return [perm.map((p) => x[p] as number)];
  },
  map: (g, n) => {
    const x = firstData(g, n);
    const perm = ints(n, 'perm', []);
    const last = g.channelsLast.has(x);
    // Our modules keep [N, C, H, W]: the permute to channels-last and back are the same values to them.
    if ((!last && sameDims(perm, [0, 2, 3, 1])) || (last && sameDims(perm, [0, 3, 1, 2]))) return { kind: 'alias', input: x };
    return { kind: 'pattern', inputs: g.dataInputs(n), why: 'a Transpose maps only in a channel shuffle (Reshape, Transpose, Reshape) or as the NCHW/NHWC permutes around channel-wise ops' };
  },
};

const layerNorm: OpMapper = {
  since: 17,
  shape: same,
  map: (g, n) => {
    const x = g.inputShape(n, 0);
    const axis = int(n, 'axis', -1);
    const a = axis < 0 ? axis + x.length : axis;
    const data = firstData(g, n);
    const overChannels = g.channelsLast.has(data) ? a === x.length - 1 : x.length === 2 && a === 1;
    if (!overChannels) throw new ImportProblem(`it normalises axes ${a}.. of a [${x.join(',')}] value (only the channels map)`);
    const C = x[a] as number;
    const w = constantInput(g, n, 1, 'scale'), b = optionalConstant(g, n, 2, 'bias');
    if (w.values.length !== C || (b !== null && b.values.length !== C)) throw new ImportProblem(`its scale and bias do not have ${C} values`);
    const eps = shortestFloat(float(n, 'epsilon', 1e-5));
    return { kind: 'layer', input: data, make: () => channelLayerNorm(C, eps, w.values, b?.values ?? null) };
  },
};

/** A ChannelLayerNorm with these weights. */
export function channelLayerNorm(C: number, eps: number, w: Float64Array, b: Float64Array | null): ChannelLayerNorm {
  const ln = new ChannelLayerNorm(C, eps);
  copyInto(ln.weight, Float32Array.from(w));
  if (b !== null) copyInto(ln.bias, Float32Array.from(b));
  return ln;
}

/** A 1x1 convolution computing x · w over channels ([C, D] weight), as MatMul on channels-last values does. */
export function channelMatMul(C: number, D: number, w: Float64Array, bias: Float64Array | null): Conv2d {
  const c = new Conv2d({ inChannels: C, outChannels: D, kernel: 1, bias: bias !== null });
  const values = new Float32Array(D * C);
  for (let d = 0; d < D; d++) for (let k = 0; k < C; k++) values[d * C + k] = w[k * D + d] as number;
  copyInto(c.weight, values);
  if (bias !== null && c.bias !== null) copyInto(c.bias, Float32Array.from(bias));
  return c;
}

/** Slice bounds per axis of x, from attributes (before opset 10) or constant inputs. */
function sliceBounds(g: OnnxGraph, n: OnnxNode, x: readonly number[]): Array<{ start: number; end: number; step: number }> {
  const read = (i: number, attr: string): number[] | null => {
    if (g.opset < 10) {
      const a = attribute(n.proto, attr);
      return Array.isArray(a) ? a : null;
    }
    const c = optionalConstant(g, n, i, attr);
    return c === null ? null : [...c.values];
  };
  const starts = read(1, 'starts') ?? [], ends = read(2, 'ends') ?? [];
  const axes = read(3, 'axes') ?? starts.map((_, i) => i);
  const steps = (g.opset < 10 ? null : read(4, 'steps')) ?? starts.map(() => 1);
  if (ends.length !== starts.length || axes.length !== starts.length || steps.length !== starts.length) throw new ImportProblem('starts, ends, axes and steps of different lengths');
  const out = x.map((d) => ({ start: 0, end: d, step: 1 }));
  axes.forEach((a0, i) => {
    const a = a0 < 0 ? a0 + x.length : a0;
    const d = x[a];
    if (d === undefined) throw new ImportProblem(`axis ${a0} is outside a rank-${x.length} value`);
    const step = steps[i] as number;
    if (step !== 1) throw new ImportProblem(`step ${step} (only step 1 maps)`);
    const clamp = (v: number): number => Math.min(Math.max(v < 0 ? v + d : v, 0), d);
    const start = clamp(starts[i] as number), end = clamp(ends[i] as number);
    out[a] = { start, end: Math.max(start, end), step };
  });
  return out;
}

const slice: OpMapper = {
  shape: (g, n) => {
    const data = g.constant(n.inputs[0]);
    const x = data !== undefined ? data.dims : g.inputShape(n, 0);
    const b = sliceBounds(g, n, x);
    if (data !== undefined) {
      if (x.length !== 1) throw new ImportProblem('only Slice of a 1-D constant folds');
      const r = b[0] as { start: number; end: number };
      return setConstant(g, n, { dims: [r.end - r.start], values: data.values.slice(r.start, r.end), integer: data.integer === true });
    }
    return [b.map((r) => r.end - r.start)];
  },
  map: (g, n) => {
    if (g.constants.has(n.outputs[0] as string)) return constant;
    const x = g.inputShape(n, 0);
    const b = sliceBounds(g, n, x);
    const cut = b.flatMap((r, i) => (r.start !== 0 || r.end !== x[i] ? [i] : []));
    if (cut.length === 0) return { kind: 'alias', input: firstData(g, n) };
    if (x.length !== 4 || cut.length !== 1 || cut[0] !== 1) throw new ImportProblem(`it slices axes [${cut.join(', ')}] of a rank-${x.length} value (only channels of [N, C, H, W] map)`);
    const r = b[1] as { start: number; end: number };
    if (r.end <= r.start) throw new ImportProblem('it selects no channel');
    return { kind: 'layer', input: firstData(g, n), make: () => ChannelSelect.slice(x[1] as number, r.start, r.end) };
  },
};

const cast = {
  shape: (g: OnnxGraph, n: OnnxNode) => {
    const c = g.constant(n.inputs[0]);
    if (c === undefined) return alias.shape(g, n);
    const to = int(n, 'to', 1);
    // Integer targets (int8..int64, uint8..uint64, bool) truncate; float targets keep the values.
    const integer = [2, 3, 4, 5, 6, 7, 9, 12, 13].includes(to);
    return setConstant(g, n, { dims: c.dims, values: integer ? c.values.map(Math.trunc) : c.values, integer });
  },
  map: (g: OnnxGraph, n: OnnxNode): Mapped => (g.constants.has(n.outputs[0] as string) ? constant : { kind: 'pattern', inputs: [firstData(g, n)], why: 'a Cast of data maps only inside an LKAM gate' }),
} satisfies OpMapper;

function binary(join: JoinKind | null, f: (x: number, y: number) => number, integerDivision = false): OpMapper {
  return {
    shape: (g, n) => {
      const a = g.constant(n.inputs[0]), b = g.constant(n.inputs[1]);
      if (a !== undefined && b !== undefined) return setConstant(g, n, foldBinary(a, b, f, integerDivision));
      return [broadcast(g.inputShape(n, 0), g.inputShape(n, 1))];
    },
    map: (g, n) => {
      if (g.constants.has(n.outputs[0] as string)) return constant;
      const data = g.dataInputs(n);
      if (join !== null && data.length === 2) return { kind: 'join', join, inputs: data };
      const why = join === 'add' ? 'adds a constant that is not the bias of a MatMul' : join === 'mul' ? 'multiplies by a constant'
        : n.op === 'Greater' || n.op === 'GreaterOrEqual' ? `${n.op} maps only inside an LKAM gate` : `${n.op} of data maps only inside a GELU`;
      return { kind: 'pattern', inputs: data, why };
    },
  };
}

const gemm: OpMapper = {
  shape: (g, n) => {
    const a = g.inputShape(n, 0), b = g.inputShape(n, 1);
    if (a.length !== 2 || b.length !== 2) throw new ImportProblem(`a Gemm of [${a.join(',')}] and [${b.join(',')}] (expected two matrices)`);
    const transA = int(n, 'transA', 0) !== 0, transB = int(n, 'transB', 0) !== 0;
    return [[transA ? (a[1] as number) : (a[0] as number), transB ? (b[0] as number) : (b[1] as number)]];
  },
  map: (g, n) => {
    if (int(n, 'transA', 0) !== 0) throw new ImportProblem('transA is set');
    const w = constantInput(g, n, 1, 'weight');
    const x = g.inputShape(n, 0);
    const transB = int(n, 'transB', 0) !== 0;
    const alpha = float(n, 'alpha', 1), beta = float(n, 'beta', 1);
    const c = optionalConstant(g, n, 2, 'bias');
    const [rows, cols] = w.dims as [number, number];
    const outF = transB ? rows : cols;
    const inF = transB ? cols : rows;
    if (x[1] !== inF) throw new ImportProblem(`its weight reads ${inF} features, the input has ${x[1]}`);
    if (c !== null && c.values.length !== outF && c.values.length !== 1) throw new ImportProblem(`its bias has ${c.values.length} values for ${outF} outputs`);
    return {
      kind: 'layer',
      input: firstData(g, n),
      make: () => linear(inF, outF, w.values, transB, alpha, c === null ? null : Float64Array.from({ length: outF }, (_, i) => (c.values.length === 1 ? (c.values[0] as number) : (c.values[i] as number)) * beta)),
    };
  },
};

const matMul: OpMapper = {
  shape: (g, n) => {
    const a = g.inputShape(n, 0), b = g.inputShape(n, 1);
    return [[...a.slice(0, -1), b[b.length - 1] as number]];
  },
  map: (g, n) => {
    const w = constantInput(g, n, 1, 'weight');
    const x = g.inputShape(n, 0);
    if (w.dims.length === 2 && x.length === 4 && g.channelsLast.has(firstData(g, n)) && x[3] === w.dims[0]) {
      return { kind: 'layer', input: firstData(g, n), make: () => channelMatMul(w.dims[0] as number, w.dims[1] as number, w.values, null) };
    }
    if (w.dims.length !== 2 || x.length !== 2) throw new ImportProblem('only [N, K] · [K, M] with a constant [K, M] maps (or channels-last [N, H, W, K] · [K, M])');
    return { kind: 'layer', input: firstData(g, n), make: () => linear(w.dims[0] as number, w.dims[1] as number, w.values, false, 1, null) };
  },
};

const pad: OpMapper = {
  shape: (g, n) => {
    const x = g.inputShape(n, 0);
    const p = padSpec(g, n, x.length).amounts;
    return [x.map((d, i) => d + (p[i] as number) + (p[i + x.length] as number))];
  },
  map: (g, n) => {
    const readers = g.readers.get(n.outputs[0] as string) ?? [];
    const reader = readers.length === 1 ? readers[0] : undefined;
    // A zero Pad that the Conv or AveragePool reading it absorbs needs no layer of its own.
    if (reader !== undefined && (reader.op === 'Conv' || reader.op === 'AveragePool')) {
      try {
        if (absorbedPad(g, reader) !== null) return { kind: 'constant' };
      } catch (e) {
        if (!(e instanceof ImportProblem)) throw e;
      }
    }
    g.channelsFirst(n);
    const x = g.inputShape(n, 0);
    const p = padSpec(g, n, x.length);
    if (x.length !== 4 || p.amounts[0] !== 0 || p.amounts[1] !== 0 || p.amounts[4] !== 0 || p.amounts[5] !== 0) throw new ImportProblem(`it pads [${p.amounts.join(', ')}] (only H and W of [N, C, H, W] map)`);
    const pads = [p.amounts[2], p.amounts[3], p.amounts[6], p.amounts[7]] as [number, number, number, number];
    return { kind: 'layer', input: firstData(g, n), make: () => new Pad2d(pads, p.mode, p.value) };
  },
};

const concat: OpMapper = {
  shape: (g, n) => {
    if (allConstant(g, n)) {
      const parts = n.inputs.map((i) => g.constant(i) as Constant);
      if (parts.some((p) => p.dims.length !== 1)) throw new ImportProblem('only 1-D constants concatenate');
      const values = Float64Array.from(parts.flatMap((p) => [...p.values]));
      return setConstant(g, n, { dims: [values.length], values, integer: parts.every((p) => p.integer === true) });
    }
    const shapes = n.inputs.map((_, i) => g.inputShape(n, i));
    const first = shapes[0] as number[];
    const axis = int(n, 'axis', 1);
    const a = axis < 0 ? axis + first.length : axis;
    if (shapes.some((s) => s.length !== first.length || s.some((d, i) => i !== a && d !== first[i]))) throw new ImportProblem(`inputs [${shapes.map((s) => s.join(',')).join('], [')}] do not concatenate on axis ${axis}`);
    return [first.map((d, i) => (i === a ? shapes.reduce((t, s) => t + (s[i] as number), 0) : d))];
  },
  map: (g, n) => {
    if (g.constants.has(n.outputs[0] as string)) return constant;
    const x = g.inputShape(n, 0);
    const axis = int(n, 'axis', 1);
    if (x.length !== 4 || (axis !== 1 && axis !== -3)) throw new ImportProblem(`concatenates axis ${axis} of a rank-${x.length} value (only channels of [N, C, H, W] map)`);
    if (g.dataInputs(n).length !== n.inputs.length) throw new ImportProblem('it concatenates a constant with data');
    return { kind: 'join', join: 'concat', inputs: [...n.inputs] };
  },
};

const hardSigmoid = unaryLayer((_g, n) => {
  const alpha = shortestFloat(float(n, 'alpha', 0.2)), beta = shortestFloat(float(n, 'beta', 0.5));
  return () => new HardSigmoid(alpha, beta);
});

/** A function of data that only a pattern rewrite turns into a layer. */
function patternOnly(why: string): OpMapper {
  return { shape: same, map: (g, n) => ({ kind: 'pattern', inputs: g.dataInputs(n), why }) };
}

const gelu: OpMapper = {
  since: 20,
  shape: same,
  map: (g, n) => {
    const approximate = text(n, 'approximate', 'none');
    if (approximate !== 'none') throw new ImportProblem(`approximate '${approximate}' (only the exact erf form maps)`);
    return { kind: 'layer', input: firstData(g, n), make: () => new GELU() };
  },
};

/** Every op the importer maps, by ONNX op type. */
export const OP_MAPPERS: ReadonlyArray<readonly [string, OpMapper]> = [
  ['Constant', constantOp],
  ['Identity', alias],
  ['Dropout', alias],
  ['Cast', cast],
  ['Shape', shapeOp],
  ['Gather', gather],
  ['Conv', conv],
  ['BatchNormalization', batchNorm],
  ['Relu', unaryLayer(() => () => new ReLU())],
  ['Clip', clip],
  ['Sigmoid', unaryLayer(() => () => new Sigmoid())],
  ['HardSigmoid', hardSigmoid],
  ['HardSwish', { ...unaryLayer(() => () => new HardSwish()), since: 14 }],
  ['Gelu', gelu],
  ['Erf', patternOnly('Erf maps only in x · 0.5 · (1 + erf(x / √2)), a GELU')],
  ['MaxPool', pool('max')],
  ['AveragePool', pool('avg')],
  ['GlobalAveragePool', globalPool('avg')],
  ['GlobalMaxPool', globalPool('max')],
  ['ReduceMean', reduce('mean')],
  ['ReduceMax', reduce('max')],
  ['Flatten', flatten],
  ['Reshape', { ...reshape, since: 5 }],
  ['Squeeze', squeeze],
  ['Unsqueeze', unsqueeze],
  ['Gemm', gemm],
  ['MatMul', matMul],
  ['Add', binary('add', (a, b) => a + b)],
  ['Sub', binary(null, (a, b) => a - b)],
  ['Mul', binary('mul', (a, b) => a * b)],
  ['Div', binary(null, (a, b) => a / b, true)],
  ['Greater', binary(null, (a, b) => (a > b ? 1 : 0))],
  ['GreaterOrEqual', binary(null, (a, b) => (a >= b ? 1 : 0))],
  ['Pad', pad],
  ['Concat', concat],
  ['Transpose', transpose],
  ['LayerNormalization', layerNorm],
  ['Pow', patternOnly('Pow maps only inside a LayerNorm')],
  ['Sqrt', patternOnly('Sqrt maps only inside a LayerNorm')],
  ['Slice', slice],
];
