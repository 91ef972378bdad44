/**
 * ONNX import of plain CNN graphs (opsets 11–17) into our modules, so that LKAMs can be added and the
 * result fine-tuned: Conv, BatchNormalization, Relu, MaxPool, AveragePool, GlobalAveragePool,
 * GlobalMaxPool, Gemm, MatMul (+ Add of a bias), Flatten, Reshape/Squeeze to [N, features], Add of two
 * branches (a Residual), Clip(0, ∞) (a ReLU), ReduceMean/ReduceMax over H and W (global pools), and
 * LKAM gates as `exportOnnx` writes them (Mul of a block by switches, Clip(0, 1) or Sigmoid). Identity
 * and Dropout are skipped; a zero Pad is folded into the Conv or AveragePool that reads it (PyTorch writes
 * padded average pools that way). Anything else is refused with an OnnxError listing every node it cannot map.
 *
 * The graph is read back to front: a value is the output of a chain of single-input nodes, and a node
 * joining two branches (Add, or a gate's Mul) starts at the nearest value both branches come from.
 */
import { AvgPool2d, BatchNorm2d, Conv2d, Flatten, GlobalAvgPool, GlobalMaxPool, Linear, MaxPool2d, ReLU, Residual, Sequential } from '../nn/layers.js';
import { Gated, gridWindow, LKAM, type LkamPool, type SwitchKind } from '../nn/lkam.js';
import type { Module } from '../nn/module.js';
import { describeError, OnnxError } from './errors.js';
import { copyInto } from './model-file.js';
import { attribute, readModelProto, tensorValues, toNumber, valueDims, type NodeProto, type TensorProto } from './onnx-graph.js';

export const IMPORT_OPSETS = { min: 11, max: 17 } as const;

export interface OnnxImportOptions {
  /** One input image [C, H, W], when the graph's input does not fix it. */
  readonly inputShape?: readonly number[];
  /** The name used in messages (default `model.onnx`). */
  readonly file?: string;
}

export interface OnnxImport {
  readonly model: Module;
  /** One input image, [C, H, W]. */
  readonly inputShape: number[];
  readonly opset: number;
  readonly input: string;
  readonly output: string;
  /** Graph outputs that carry LKAM switch values, by the path of their Gated module. */
  readonly switchOutputs: ReadonlyMap<string, string>;
}

interface Node {
  readonly op: string;
  readonly name: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly proto: NodeProto;
}

interface Constant {
  readonly dims: number[];
  readonly values: Float64Array;
}

/** Ops with a mapping; Sigmoid, Unsqueeze, Cast, Greater and GreaterOrEqual only inside an LKAM gate. */
const KNOWN_OPS = new Set([
  'Conv', 'BatchNormalization', 'Relu', 'MaxPool', 'AveragePool', 'GlobalAveragePool', 'GlobalMaxPool', 'Gemm', 'MatMul', 'Flatten',
  'Reshape', 'Squeeze', 'Add', 'Clip', 'Mul', 'ReduceMax', 'ReduceMean', 'Identity', 'Dropout', 'Constant', 'Sigmoid', 'Unsqueeze', 'Cast',
  'Greater', 'GreaterOrEqual', 'Pad',
]);
const ALIASES = new Set(['Identity', 'Dropout']);
const GATE_ONLY = new Set(['Sigmoid', 'Unsqueeze', 'Cast', 'Greater', 'GreaterOrEqual']);

class ImportProblem extends Error {}

function product(d: readonly number[]): number {
  return d.reduce((a, b) => a * b, 1);
}

function sameDims(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** A graph prepared for conversion: constants, producers and readers, shapes (batch included). */
class Graph {
  readonly constants = new Map<string, Constant>();
  readonly producer = new Map<string, Node>();
  readonly consumers = new Map<string, Node[]>();
  readonly shapes = new Map<string, number[]>();
  private readonly forks = new Map<Node, string>();

  private readonly size: number;

  constructor(nodes: Node[], initializers: readonly TensorProto[], input: string, inputDims: number[]) {
    this.size = nodes.length;
    for (const t of initializers) this.constants.set(t.name ?? '', this.tensor(t));
    this.shapes.set(input, inputDims);
    for (const n of nodes) {
      for (const o of n.outputs) if (o !== '') this.producer.set(o, n);
      for (const i of n.inputs) if (i !== '') this.consumers.set(i, [...(this.consumers.get(i) ?? []), n]);
    }
  }

  tensor(t: TensorProto): Constant {
    try {
      const { dims, values } = tensorValues(t);
      return { dims, values };
    } catch (e) {
      throw new ImportProblem(describeError(e));
    }
  }

  constant(name: string | undefined): Constant | undefined {
    return name === undefined || name === '' ? undefined : this.constants.get(name);
  }

  /** Inputs that carry data (not constants, not omitted). */
  dataInputs(n: Node): string[] {
    return n.inputs.filter((i) => i !== '' && !this.constants.has(i));
  }

  /** The value behind Identity and Dropout nodes. */
  resolve(v: string): string {
    let cur = v;
    let steps = 0;
    for (let n = this.producer.get(cur); n !== undefined && ALIASES.has(n.op); n = this.producer.get(cur)) {
      if (++steps > this.size) throw new ImportProblem(`the Identity or Dropout nodes behind ${v} form a cycle`);
      cur = n.inputs[0] as string;
    }
    return cur;
  }

  shape(v: string): number[] {
    const s = this.shapes.get(v);
    if (s === undefined) throw new ImportProblem(`the shape of ${v} is unknown`);
    return s;
  }

  isJoin(n: Node): boolean {
    return (n.op === 'Add' || n.op === 'Mul') && this.dataInputs(n).length === 2;
  }

  /** The values a value is computed from, nearest first, skipping over joined branches. */
  spine(v: string, stop: string): string[] {
    const out: string[] = [];
    let cur = this.resolve(v);
    for (;;) {
      out.push(cur);
      if (cur === stop) return out;
      const n = this.producer.get(cur);
      if (n === undefined) return out;
      if (this.isJoin(n)) cur = this.fork(n, stop);
      else {
        const data = this.dataInputs(n);
        if (data.length !== 1) return out;
        cur = this.resolve(data[0] as string);
      }
    }
  }

  /** The nearest value both inputs of a join come from. */
  fork(n: Node, stop: string): string {
    const known = this.forks.get(n);
    if (known !== undefined) return known;
    const [a, b] = this.dataInputs(n) as [string, string];
    const fromB = new Set(this.spine(b, stop));
    const f = this.spine(a, stop).find((v) => fromB.has(v));
    if (f === undefined) throw new ImportProblem(`${n.op} '${n.name}' joins branches that share no input`);
    this.forks.set(n, f);
    return f;
  }
}

function ints(n: Node, name: string, fallback: number[]): number[] {
  const v = attribute(n.proto, name);
  return Array.isArray(v) ? v : fallback;
}
function int(n: Node, name: string, fallback: number): number {
  const v = attribute(n.proto, name);
  return typeof v === 'number' ? v : fallback;
}
function float(n: Node, name: string, fallback: number): number {
  const v = attribute(n.proto, name);
  return typeof v === 'number' ? v : fallback;
}

function describeNode(n: Node): string {
  return `${n.op} (node '${n.name}')`;
}

/** ONNX pads [top, left, bottom, right], from `pads` or from auto_pad. */
function rawPads(n: Node, g: Graph, kernel: readonly number[], strides: readonly number[], dilations: readonly number[]): number[] {
  const auto = attribute(n.proto, 'auto_pad');
  if (typeof auto !== 'string' || auto === 'NOTSET' || auto === '') return ints(n, 'pads', [0, 0, 0, 0]);
  if (auto === 'VALID') return [0, 0, 0, 0];
  const [, , H, W] = g.shape(g.resolve(n.inputs[0] as string)) as [number, number, number, number];
  const total = [H, W].map((size, i) => {
    const out = Math.ceil(size / (strides[i] as number));
    return Math.max(0, (out - 1) * (strides[i] as number) + ((kernel[i] as number) - 1) * (dilations[i] as number) + 1 - size);
  }) as [number, number];
  const lower = auto === 'SAME_LOWER';
  const half = (t: number, begin: boolean): number => (begin === lower ? Math.ceil(t / 2) : Math.floor(t / 2));
  return [half(total[0], true), half(total[1], true), half(total[0], false), half(total[1], false)];
}

/** Symmetric [h, w] padding, or a problem. */
function symmetricPads(n: Node, g: Graph, kernel: readonly number[], strides: readonly number[], dilations: readonly number[]): [number, number] {
  const pads = rawPads(n, g, kernel, strides, dilations);
  if (pads.length !== 4 || pads[0] !== pads[2] || pads[1] !== pads[3]) throw new ImportProblem(`asymmetric pads [${pads.join(', ')}]`);
  return [pads[0] as number, pads[1] as number];
}

/** A Pad node's amounts [begin..., end...]; only zero constant padding maps. */
function padAmounts(g: Graph, n: Node, rank: number): number[] {
  const mode = attribute(n.proto, 'mode');
  if (mode !== undefined && mode !== 'constant') throw new ImportProblem(`${String(mode)} padding (only zero padding maps)`);
  const value = g.constant(n.inputs[2]);
  if ((value?.values[0] ?? 0) !== 0 || float(n, 'value', 0) !== 0) throw new ImportProblem('padding with a value other than 0');
  const pads = g.constant(n.inputs[1])?.values ?? Float64Array.from(ints(n, 'pads', []));
  if (pads.length !== 2 * rank) throw new ImportProblem(`${pads.length} pad amounts for a rank-${rank} input`);
  return [...pads];
}

/** The zero Pad in front of a Conv or AveragePool, folded into its padding: [h, w] and the Pad's input. */
function absorbedPad(g: Graph, n: Node): { pads: [number, number]; input: string } | null {
  const pad = g.producer.get(g.resolve(n.inputs[0] as string));
  if (pad === undefined || pad.op !== 'Pad') return null;
  const x = g.shape(g.resolve(pad.inputs[0] as string));
  const p = padAmounts(g, pad, x.length);
  if (x.length !== 4 || p[0] !== 0 || p[1] !== 0 || p[4] !== 0 || p[5] !== 0) throw new ImportProblem('a Pad in front of it pads the batch or channel axis');
  if (p[2] !== p[6] || p[3] !== p[7]) throw new ImportProblem(`a Pad in front of it pads unevenly [${p.join(', ')}]`);
  if ((g.consumers.get(pad.outputs[0] as string) ?? []).length !== 1) throw new ImportProblem('the Pad in front of it has other readers');
  return { pads: [p[2] as number, p[3] as number], input: g.resolve(pad.inputs[0] as string) };
}

/** The value a single-input node's module reads (past a Pad it absorbs). */
function planInput(g: Graph, n: Node): string {
  if (n.op === 'Conv' || n.op === 'AveragePool') {
    const pad = absorbedPad(g, n);
    if (pad !== null) return pad.input;
  }
  return g.resolve(g.dataInputs(n)[0] as string);
}

function weightOf(g: Graph, n: Node, index: number, what: string): Constant {
  const c = g.constant(n.inputs[index]);
  if (c === undefined) throw new ImportProblem(`its ${what} is not a constant`);
  return c;
}

/** The shortest decimal that rounds to the same float32 (attributes are float32: 1e-5 is stored as 9.99999974e-6). */
function shortestFloat(v: number): number {
  const f = Math.fround(v);
  for (let digits = 1; digits <= 9; digits++) {
    const d = Number(f.toPrecision(digits));
    if (Math.fround(d) === f) return d;
  }
  return f;
}

function f32(c: Constant, scale = 1): Float32Array {
  return Float32Array.from(c.values, (v) => v * scale);
}

/** Shapes of the supported ops, batch included. */
function inferShape(g: Graph, n: Node): number[][] {
  const inShape = (i: number): number[] => {
    const name = n.inputs[i] as string;
    const c = g.constant(name);
    return c !== undefined ? c.dims : g.shape(name);
  };
  switch (n.op) {
    case 'Constant': {
      const t = attribute(n.proto, 'value');
      if (t === undefined || typeof t !== 'object' || Array.isArray(t)) {
        const f = attribute(n.proto, 'value_float');
        const is = attribute(n.proto, 'value_ints');
        if (typeof f === 'number') g.constants.set(n.outputs[0] as string, { dims: [], values: Float64Array.of(f) });
        else if (Array.isArray(is)) g.constants.set(n.outputs[0] as string, { dims: [is.length], values: Float64Array.from(is) });
        else throw new ImportProblem('a Constant without a tensor, float or ints value');
      } else g.constants.set(n.outputs[0] as string, g.tensor(t));
      return [];
    }
    case 'Identity':
    case 'Dropout': {
      const c = g.constant(n.inputs[0]);
      if (c !== undefined) {
        g.constants.set(n.outputs[0] as string, c);
        return [];
      }
      return [inShape(0)];
    }
    case 'Cast': {
      const c = g.constant(n.inputs[0]);
      if (c !== undefined) {
        g.constants.set(n.outputs[0] as string, c);
        return [];
      }
      return [inShape(0)];
    }
    case 'Relu': case 'Sigmoid': case 'Clip': case 'BatchNormalization':
      return [inShape(0)];
    case 'Pad': {
      const x = inShape(0);
      const pads = padAmounts(g, n, x.length);
      return [x.map((d, i) => d + (pads[i] as number) + (pads[i + x.length] as number))];
    }
    case 'Conv': {
      const [N, , H, W] = inShape(0) as [number, number, number, number];
      const w = weightOf(g, n, 1, 'weight');
      const k = w.dims.slice(2);
      const s = ints(n, 'strides', [1, 1]);
      const d = ints(n, 'dilations', [1, 1]);
      const p = rawPads(n, g, k, s, d);
      const out = (size: number, i: number): number => Math.floor((size + (p[i] as number) + (p[i + 2] as number) - (d[i] as number) * ((k[i] as number) - 1) - 1) / (s[i] as number)) + 1;
      return [[N, w.dims[0] as number, out(H, 0), out(W, 1)]];
    }
    case 'MaxPool': case 'AveragePool': {
      const [N, C, H, W] = inShape(0) as [number, number, number, number];
      const k = ints(n, 'kernel_shape', []);
      const s = ints(n, 'strides', [1, 1]);
      const d = ints(n, 'dilations', [1, 1]);
      const p = rawPads(n, g, k, s, d);
      const round = int(n, 'ceil_mode', 0) !== 0 ? Math.ceil : Math.floor;
      const out = (size: number, i: number): number => round((size + (p[i] as number) + (p[i + 2] as number) - (d[i] as number) * ((k[i] as number) - 1) - 1) / (s[i] as number)) + 1;
      return [[N, C, out(H, 0), out(W, 1)]];
    }
    case 'GlobalAveragePool': case 'GlobalMaxPool': {
      const [N, C] = inShape(0) as [number, number];
      return [[N, C, 1, 1]];
    }
    case 'ReduceMean': case 'ReduceMax': {
      const x = inShape(0);
      const axes = ints(n, 'axes', x.map((_, i) => i)).map((a) => (a < 0 ? a + x.length : a));
      const keep = int(n, 'keepdims', 1) !== 0;
      return [x.flatMap((d, i) => (axes.includes(i) ? (keep ? [1] : []) : [d]))];
    }
    case 'Flatten': {
      const x = inShape(0);
      const axis = int(n, 'axis', 1);
      const a = axis < 0 ? axis + x.length : axis;
      return [[product(x.slice(0, a)), product(x.slice(a))]];
    }
    case 'Reshape': {
      const x = inShape(0);
      const target = g.constant(n.inputs[1]);
      if (target === undefined) throw new ImportProblem('its target shape is computed, not a constant');
      const dims = [...target.values].map((d, i) => (d === 0 ? (x[i] as number) : d));
      const known = product(dims.filter((d) => d !== -1));
      return [dims.map((d) => (d === -1 ? product(x) / known : d))];
    }
    case 'Squeeze': case 'Unsqueeze': {
      const x = inShape(0);
      const axesConst = g.constant(n.inputs[1]);
      const listed = axesConst !== undefined ? [...axesConst.values] : ints(n, 'axes', []);
      if (n.op === 'Squeeze') {
        const axes = listed.length === 0 ? x.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0) : listed.map((a) => (a < 0 ? a + x.length : a));
        return [x.filter((_, i) => !axes.includes(i))];
      }
      const rank = x.length + listed.length;
      const axes = listed.map((a) => (a < 0 ? a + rank : a));
      const out: number[] = [];
      let j = 0;
      for (let i = 0; i < rank; i++) out.push(axes.includes(i) ? 1 : (x[j++] as number));
      return [out];
    }
    case 'Gemm': {
      const a = inShape(0);
      const b = inShape(1);
      const transA = int(n, 'transA', 0) !== 0;
      const transB = int(n, 'transB', 0) !== 0;
      return [[transA ? (a[1] as number) : (a[0] as number), transB ? (b[0] as number) : (b[1] as number)]];
    }
    case 'MatMul': {
      const a = inShape(0);
      const b = inShape(1);
      return [[...a.slice(0, -1), b[b.length - 1] as number]];
    }
    case 'Add': case 'Mul': case 'Greater': case 'GreaterOrEqual': {
      const a = inShape(0);
      const b = inShape(1);
      const rank = Math.max(a.length, b.length);
      const out: number[] = [];
      for (let i = 0; i < rank; i++) {
        const x = a[a.length - rank + i] ?? 1;
        const y = b[b.length - rank + i] ?? 1;
        if (x !== y && x !== 1 && y !== 1) throw new ImportProblem(`shapes [${a.join(',')}] and [${b.join(',')}] do not broadcast`);
        out.push(Math.max(x, y));
      }
      return [out];
    }
    default:
      throw new ImportProblem('no mapping');
  }
}

type Plan = () => Module;

/** How a single-input node becomes a module; throws ImportProblem when it cannot. */
function planNode(g: Graph, n: Node): Plan {
  const x = g.shape(g.resolve(n.inputs[0] as string));
  switch (n.op) {
    case 'Conv': {
      const w = weightOf(g, n, 1, 'weight');
      if (w.dims.length !== 4) throw new ImportProblem(`a ${w.dims.length}-D weight (only 2-D convolutions map)`);
      const b = n.inputs[2] !== undefined && n.inputs[2] !== '' ? weightOf(g, n, 2, 'bias') : null;
      const kernel = [w.dims[2] as number, w.dims[3] as number] as [number, number];
      const strides = ints(n, 'strides', [1, 1]) as [number, number];
      const dilations = ints(n, 'dilations', [1, 1]) as [number, number];
      const own = symmetricPads(n, g, kernel, strides, dilations);
      const pad = absorbedPad(g, n);
      const padding: [number, number] = [own[0] + (pad?.pads[0] ?? 0), own[1] + (pad?.pads[1] ?? 0)];
      const groups = int(n, 'group', 1);
      return () => {
        const c = new Conv2d({ inChannels: (w.dims[1] as number) * groups, outChannels: w.dims[0] as number, kernel, stride: strides, padding, dilation: dilations, groups, bias: b !== null });
        copyInto(c.weight, f32(w));
        if (b !== null && c.bias !== null) copyInto(c.bias, f32(b));
        return c;
      };
    }
    case 'BatchNormalization': {
      if (int(n, 'training_mode', 0) !== 0) throw new ImportProblem('training_mode is set');
      const [gamma, beta, mean, variance] = [1, 2, 3, 4].map((i) => weightOf(g, n, i, ['scale', 'bias', 'mean', 'variance'][i - 1] as string)) as [Constant, Constant, Constant, Constant];
      const eps = shortestFloat(float(n, 'epsilon', 1e-5));
      const momentum = Number((1 - shortestFloat(float(n, 'momentum', 0.9))).toPrecision(12));
      return () => {
        const bn = new BatchNorm2d(gamma.values.length, { eps, momentum });
        copyInto(bn.gamma, f32(gamma));
        copyInto(bn.beta, f32(beta));
        copyInto(bn.runningMean, f32(mean));
        copyInto(bn.runningVar, f32(variance));
        return bn;
      };
    }
    case 'Relu':
      return () => new ReLU();
    case 'Clip': {
      const min = n.inputs[1] ? weightOf(g, n, 1, 'min') : null;
      const max = n.inputs[2] ? weightOf(g, n, 2, 'max') : null;
      const lo = min?.values[0] ?? float(n, 'min', -Infinity);
      const hi = max?.values[0] ?? float(n, 'max', Infinity);
      if (lo !== 0 || hi < 3.4e38) throw new ImportProblem(`Clip(${lo}, ${hi}) is not a ReLU (only Clip(0, ∞) maps outside LKAM gates)`);
      return () => new ReLU();
    }
    case 'MaxPool': case 'AveragePool': {
      const kernel = ints(n, 'kernel_shape', []) as [number, number];
      if (kernel.length !== 2) throw new ImportProblem('only 2-D pooling maps');
      if (int(n, 'ceil_mode', 0) !== 0) throw new ImportProblem('ceil_mode 1');
      if (ints(n, 'dilations', [1, 1]).some((d) => d !== 1)) throw new ImportProblem('dilated pooling');
      if (n.outputs.length > 1 && n.outputs[1] !== '') throw new ImportProblem('its indices output is used');
      const strides = ints(n, 'strides', [1, 1]) as [number, number];
      const own = symmetricPads(n, g, kernel, strides, [1, 1]);
      if (n.op === 'AveragePool' && (own[0] > 0 || own[1] > 0) && int(n, 'count_include_pad', 0) === 0) {
        throw new ImportProblem('padded average pooling that excludes the padding (our AvgPool2d counts it)');
      }
      // Zeros padded in front of an average pool count in its windows, as our AvgPool2d counts its padding.
      const pad = n.op === 'AveragePool' ? absorbedPad(g, n) : null;
      const padding: [number, number] = [own[0] + (pad?.pads[0] ?? 0), own[1] + (pad?.pads[1] ?? 0)];
      return () => (n.op === 'MaxPool' ? new MaxPool2d(kernel, strides, padding) : new AvgPool2d(kernel, strides, padding));
    }
    case 'GlobalAveragePool':
      return () => new GlobalAvgPool();
    case 'GlobalMaxPool':
      return () => new GlobalMaxPool();
    case 'ReduceMean': case 'ReduceMax': {
      const axes = ints(n, 'axes', []).map((a) => (a < 0 ? a + x.length : a)).sort();
      if (x.length !== 4 || axes.length !== 2 || axes[0] !== 2 || axes[1] !== 3) throw new ImportProblem(`reduces axes [${axes.join(', ')}] (only H and W of [N, C, H, W] map, as a global pool)`);
      return () => (n.op === 'ReduceMean' ? new GlobalAvgPool() : new GlobalMaxPool());
    }
    case 'Flatten': case 'Reshape': case 'Squeeze': {
      const out = g.shape(n.outputs[0] as string);
      if (out.length !== 2 || out[0] !== x[0] || product(x) !== product(out)) throw new ImportProblem(`gives [${out.join(',')}] from [${x.join(',')}] (only [N, features] maps, as a Flatten)`);
      return () => new Flatten();
    }
    case 'Gemm': {
      if (int(n, 'transA', 0) !== 0) throw new ImportProblem('transA is set');
      const w = weightOf(g, n, 1, 'weight');
      const transB = int(n, 'transB', 0) !== 0;
      const alpha = float(n, 'alpha', 1);
      const beta = float(n, 'beta', 1);
      const c = n.inputs[2] ? weightOf(g, n, 2, 'bias') : null;
      const [rows, cols] = w.dims as [number, number];
      const outF = transB ? rows : cols;
      const inF = transB ? cols : rows;
      if (c !== null && c.values.length !== outF && c.values.length !== 1) throw new ImportProblem(`its bias has ${c.values.length} values for ${outF} outputs`);
      return () => linear(inF, outF, w.values, transB, alpha, c === null ? null : Float64Array.from({ length: outF }, (_, i) => (c.values.length === 1 ? (c.values[0] as number) : (c.values[i] as number)) * beta));
    }
    case 'MatMul': {
      const w = weightOf(g, n, 1, 'weight');
      if (w.dims.length !== 2 || x.length !== 2) throw new ImportProblem('only [N, K] · [K, M] with a constant [K, M] maps');
      return () => linear(w.dims[0] as number, w.dims[1] as number, w.values, false, 1, null);
    }
    case 'Pad': {
      const readers = g.consumers.get(n.outputs[0] as string) ?? [];
      if (readers.length !== 1 || (readers[0]?.op !== 'Conv' && readers[0]?.op !== 'AveragePool')) throw new ImportProblem('maps only into the Conv or AveragePool that reads it');
      return () => {
        throw new ImportProblem('a Pad is folded into its reader');
      };
    }
    default:
      throw new ImportProblem(GATE_ONLY.has(n.op) ? 'maps only inside an LKAM gate' : 'no mapping');
  }
}

/** A Linear from a [in, out] (or, transposed, [out, in]) weight. */
function linear(inF: number, outF: number, w: Float64Array, transposed: boolean, alpha: number, bias: Float64Array | null): Linear {
  const l = new Linear({ inFeatures: inF, outFeatures: outF, bias: bias !== null });
  const values = new Float32Array(outF * inF);
  for (let o = 0; o < outF; o++) for (let i = 0; i < inF; i++) values[o * inF + i] = (w[transposed ? o * inF + i : i * outF + o] as number) * alpha;
  copyInto(l.weight, values);
  if (bias !== null && l.bias !== null) copyInto(l.bias, Float32Array.from(bias));
  return l;
}

interface GateMatch {
  /** The nodes of the switch branch and the gate itself. */
  readonly nodes: readonly Node[];
  readonly lkam: () => LKAM;
  readonly switches: string;
  readonly block: string;
  readonly input: string;
}

/** Matches `Mul(block, Unsqueeze(gate(switches)))` where the switches come from the LKAM ops on the block's input. */
function matchGate(g: Graph, mul: Node): GateMatch {
  const fail = (why: string): never => {
    throw new ImportProblem(`not an LKAM gate: ${why}`);
  };
  const producerOf = (v: string): Node | undefined => g.producer.get(g.resolve(v));
  const [p, q] = g.dataInputs(mul) as [string, string];
  const isScale = (v: string): boolean => {
    const n = producerOf(v);
    return n !== undefined && (n.op === 'Unsqueeze' || n.op === 'Reshape') && sameDims(g.shape(g.resolve(v)).slice(2), [1, 1]);
  };
  const [scaleValue, block] = isScale(q) ? [q, p] : isScale(p) ? [p, q] : fail('neither input is switches reshaped to [N, M, 1, 1]');
  const unsqueeze = producerOf(scaleValue) as Node;
  const used: Node[] = [mul, unsqueeze];
  let gate = g.resolve(unsqueeze.inputs[0] as string);
  let threshold: number | null = null;
  let n = producerOf(gate) ?? fail('the scale has no producer');
  if (n.op === 'Mul') {
    used.push(n);
    // s · Cast(s >= threshold): sigmoid switches that are off under the threshold.
    const [a, b] = g.dataInputs(n) as [string, string];
    const cast = producerOf(b)?.op === 'Cast' ? producerOf(b) : producerOf(a)?.op === 'Cast' ? producerOf(a) : undefined;
    const ge = cast === undefined ? undefined : producerOf(cast.inputs[0] as string);
    if (cast === undefined || ge === undefined || ge.op !== 'GreaterOrEqual') fail('a Mul before the scale that is not s · Cast(s >= threshold)');
    const s = g.resolve((ge as Node).inputs[0] as string);
    const t = g.constant((ge as Node).inputs[1]);
    if (t === undefined || t.values.length !== 1 || (g.resolve(a) !== s && g.resolve(b) !== s)) fail('the threshold mask does not compare the switches with a constant');
    threshold = shortestFloat((t as Constant).values[0] as number);
    used.push(cast as Node, ge as Node);
    gate = s;
    n = producerOf(s) ?? fail('the switches have no producer');
  }
  let binary = false;
  if (n.op === 'Cast') {
    // Cast(s > 0): binary switches.
    const gt = producerOf(n.inputs[0] as string);
    const t = gt === undefined ? undefined : g.constant(gt.inputs[1]);
    if (gt === undefined || gt.op !== 'Greater' || t === undefined || t.values.length !== 1 || t.values[0] !== 0) fail('a Cast before the scale that is not Cast(s > 0)');
    used.push(n, gt as Node);
    gate = g.resolve((gt as Node).inputs[0] as string);
    n = producerOf(gate) ?? fail('the switches have no producer');
    binary = true;
  }
  const switches = gate;
  used.push(n);
  let switchKind: SwitchKind;
  if (n.op === 'Sigmoid') switchKind = 'sigmoid';
  else if (n.op === 'Clip') {
    const lo = g.constant(n.inputs[1])?.values[0] ?? float(n, 'min', -Infinity);
    const hi = g.constant(n.inputs[2])?.values[0] ?? float(n, 'max', Infinity);
    if (lo !== 0 || hi !== 1) fail(`switches clipped to [${lo}, ${hi}], not [0, 1]`);
    switchKind = binary ? 'binary' : 'hard';
  } else return fail(`switches made by ${n.op}, not Clip(0, 1) or Sigmoid`);
  if (switchKind !== 'sigmoid' && threshold !== null) fail(`a threshold mask on ${switchKind} switches`);
  if (switchKind === 'sigmoid' && binary) fail('Cast(s > 0) on sigmoid switches');
  const gemm = producerOf(n.inputs[0] as string) ?? fail('no fully connected layer before the switches');
  if (gemm.op !== 'Gemm') fail(`${gemm.op} before the switches, not Gemm`);
  const flat = producerOf(gemm.inputs[0] as string) ?? fail('nothing before the Gemm');
  if (!['Flatten', 'Reshape', 'Squeeze'].includes(flat.op)) fail(`${flat.op} before the Gemm, not Flatten`);
  const pool = producerOf(flat.inputs[0] as string) ?? fail('nothing before the Flatten');
  const conv = producerOf(pool.inputs[0] as string) ?? fail('nothing before the pooling');
  if (conv.op !== 'Conv') fail(`${conv.op} before the pooling, not a 1x1 Conv`);
  const input = g.resolve(conv.inputs[0] as string);
  const w = weightOf(g, conv, 1, 'weight');
  if (w.dims[2] !== 1 || w.dims[3] !== 1 || int(conv, 'group', 1) !== 1 || ints(conv, 'strides', [1, 1]).some((s) => s !== 1) || ints(conv, 'pads', [0, 0, 0, 0]).some((p) => p !== 0)) {
    fail('the bank is not a plain 1x1 convolution');
  }
  const bank = w.dims[0] as number;
  const inChannels = w.dims[1] as number;
  const [, , H, W] = g.shape(input) as [number, number, number, number];
  let pool_: LkamPool;
  let grid = 1;
  if (pool.op === 'GlobalMaxPool' || pool.op === 'ReduceMax') pool_ = 'max';
  else if (pool.op === 'GlobalAveragePool' || pool.op === 'ReduceMean') pool_ = 'avg';
  else if (pool.op === 'MaxPool' || pool.op === 'AveragePool') {
    pool_ = pool.op === 'MaxPool' ? 'max' : 'avg';
    const k = ints(pool, 'kernel_shape', []);
    const s = ints(pool, 'strides', [1, 1]);
    if (ints(pool, 'pads', [0, 0, 0, 0]).some((v) => v !== 0)) fail('padded grid pooling');
    const fits = (gr: number): boolean => {
      const rows = gridWindow(H, gr), cols = gridWindow(W, gr);
      return rows.kernel === k[0] && cols.kernel === k[1] && rows.stride === s[0] && cols.stride === s[1];
    };
    grid = Array.from({ length: Math.min(H, W) }, (_, i) => i + 1).find(fits) ?? fail(`a ${k.join('x')} pool with stride ${s.join('x')} on ${H}x${W} maps is not a grid`);
  } else return fail(`${pool.op} pooling`);
  used.push(gemm, flat, pool, conv);
  const fcW = weightOf(g, gemm, 1, 'weight');
  const transB = int(gemm, 'transB', 0) !== 0;
  const switchCount = (transB ? fcW.dims[0] : fcW.dims[1]) as number;
  if ((transB ? fcW.dims[1] : fcW.dims[0]) !== bank * grid * grid) fail('the fully connected layer does not read bank x grid x grid features');
  const convBias = conv.inputs[2] ? weightOf(g, conv, 2, 'bias') : null;
  const fcBias = gemm.inputs[2] ? weightOf(g, gemm, 2, 'bias') : null;
  const alpha = float(gemm, 'alpha', 1);
  const beta = float(gemm, 'beta', 1);
  return {
    nodes: used,
    switches,
    block,
    input,
    lkam: () => {
      const k = new LKAM({ inChannels, switches: switchCount, bank, pool: pool_, grid, switchKind, ...(switchKind === 'sigmoid' ? { threshold: threshold ?? 0 } : {}) });
      copyInto(k.conv.weight, f32(w));
      copyInto(k.conv.bias as NonNullable<typeof k.conv.bias>, convBias === null ? new Float32Array(bank) : f32(convBias));
      const fc = linear(bank * grid * grid, switchCount, fcW.values, transB, alpha, fcBias === null ? new Float64Array(switchCount) : Float64Array.from(fcBias.values, (v) => v * beta));
      copyInto(k.fc.weight, fc.weight.f32());
      copyInto(k.fc.bias as NonNullable<typeof k.fc.bias>, (fc.bias as NonNullable<typeof fc.bias>).f32());
      return k;
    },
  };
}

function sequence(modules: Module[]): Module {
  return new Sequential(modules);
}

const GLOBAL_POOLS = new Set(['GlobalAveragePool', 'GlobalMaxPool', 'ReduceMean', 'ReduceMax']);
const FLATTENS = new Set(['Flatten', 'Reshape', 'Squeeze']);

/** The modules computing `to` from `from`, in order; records gates' switch values by module path. */
function convert(g: Graph, from: string, to: string, path: string, switchValues: Map<string, string>): Module[] {
  const reversed: Array<{ op: string; make: (at: string) => Module }> = [];
  let v = g.resolve(to);
  while (v !== from) {
    const n = g.producer.get(v);
    if (n === undefined) throw new OnnxError(`ONNX import: value ${v} does not come from the graph input`);
    const problem = (why: string): OnnxError => new OnnxError(`ONNX import: cannot map ${describeNode(n)}: ${why}`, [`${describeNode(n)}: ${why}`]);
    if (g.isJoin(n) && n.op === 'Add') {
      const f = g.fork(n, from);
      let [a, b] = (g.dataInputs(n) as [string, string]).map((x) => g.resolve(x)) as [string, string];
      if (a === f) [a, b] = [b, a];
      if (a === f) throw problem('adds the same value to itself');
      const fa = f;
      const [ba, bb] = [a, b];
      reversed.push({
        op: n.op,
        make: (at) => {
          const body = sequence(convert(g, fa, ba, `${at}.body`, switchValues));
          return new Residual(body, bb === fa ? null : sequence(convert(g, fa, bb, `${at}.shortcut`, switchValues)));
        },
      });
      v = f;
      continue;
    }
    if (g.isJoin(n) && n.op === 'Mul') {
      let m: GateMatch;
      try {
        m = matchGate(g, n);
      } catch (e) {
        if (e instanceof ImportProblem) throw problem(e.message);
        throw e;
      }
      const f = g.fork(n, from);
      if (m.input !== f) throw problem('the LKAM does not read the gated block\'s input');
      reversed.push({
        op: n.op,
        make: (at) => {
          const block = sequence(convert(g, f, m.block, `${at}.block`, switchValues));
          switchValues.set(at, m.switches);
          return new Gated(block, m.lkam());
        },
      });
      v = f;
      continue;
    }
    if (n.op === 'Add') {
      // MatMul followed by the Add of a constant bias is one Linear.
      const data = g.dataInputs(n);
      const mm = data.length === 1 ? g.producer.get(g.resolve(data[0] as string)) : undefined;
      const bias = g.constant(n.inputs.find((i) => g.constants.has(i)));
      if (mm === undefined || mm.op !== 'MatMul' || bias === undefined) throw problem('adds a constant that is not the bias of a MatMul');
      let plan: Plan;
      try {
        const w = weightOf(g, mm, 1, 'weight');
        const outF = w.dims[1] as number;
        if (w.dims.length !== 2 || (bias.values.length !== outF && bias.values.length !== 1)) throw new ImportProblem(`bias of ${bias.values.length} values for ${outF} outputs`);
        plan = () => linear(w.dims[0] as number, outF, w.values, false, 1, Float64Array.from({ length: outF }, (_, i) => (bias.values.length === 1 ? bias.values[0] : bias.values[i]) as number));
      } catch (e) {
        if (e instanceof ImportProblem) throw problem(e.message);
        throw e;
      }
      reversed.push({ op: 'MatMul', make: plan });
      v = g.resolve(g.dataInputs(mm)[0] as string);
      continue;
    }
    const data = g.dataInputs(n);
    if (data.length !== 1) throw problem(`it has ${data.length} data inputs`);
    let plan: Plan;
    try {
      plan = planNode(g, n);
    } catch (e) {
      if (e instanceof ImportProblem) throw problem(e.message);
      throw e;
    }
    let next: string;
    try {
      next = planInput(g, n);
    } catch (e) {
      if (e instanceof ImportProblem) throw problem(e.message);
      throw e;
    }
    reversed.push({ op: n.op, make: plan });
    v = next;
  }
  const modules: Module[] = [];
  // Our global pools already give [N, C]: the flatten that follows one in ONNX is left out.
  const steps = reversed.reverse().filter((s, i, all) => !(FLATTENS.has(s.op) && i > 0 && GLOBAL_POOLS.has(all[i - 1]?.op ?? '')));
  steps.forEach((s, i) => modules.push(s.make(path === '' ? String(i) : `${path}.${i}`)));
  return modules;
}

/**
 * A model of our modules computing what the ONNX graph computes (in eval mode). Throws OnnxError
 * listing every node that has no mapping.
 */
export function importOnnx(bytes: Uint8Array, options: OnnxImportOptions = {}): OnnxImport {
  const file = options.file ?? 'model.onnx';
  const proto = readModelProto(bytes, file);
  const opsets = proto.opsetImport ?? [];
  const main = opsets.find((o) => o.domain === '' || o.domain === 'ai.onnx' || o.domain === null || o.domain === undefined);
  const opset = toNumber(main?.version);
  if (opset < IMPORT_OPSETS.min || opset > IMPORT_OPSETS.max) throw new OnnxError(`${file}: opset ${opset} is outside the supported ${IMPORT_OPSETS.min}–${IMPORT_OPSETS.max}`);
  const graph = proto.graph;
  if (graph === null || graph === undefined) throw new OnnxError(`${file}: the model has no graph`);
  const nodes: Node[] = (graph.node ?? []).map((n, i) => ({ op: n.opType ?? '', name: n.name || `${n.opType ?? '?'}_${i}`, inputs: n.input ?? [], outputs: n.output ?? [], proto: n }));

  const foreign = nodes.filter((n) => (n.proto.domain ?? '') !== '' && n.proto.domain !== 'ai.onnx');
  const unknown = nodes.filter((n) => !KNOWN_OPS.has(n.op) || foreign.includes(n));
  if (unknown.length > 0) {
    const list = unknown.map((n) => `${n.proto.domain ? `${n.proto.domain}.` : ''}${describeNode(n)}`);
    throw new OnnxError(`${file}: cannot import ${unknown.length} node${unknown.length === 1 ? '' : 's'} with no mapping: ${list.join(', ')}; supported ops: ${[...KNOWN_OPS].sort().join(', ')}`, list);
  }

  const initializerNames = new Set((graph.initializer ?? []).map((t) => t.name ?? ''));
  const inputs = (graph.input ?? []).filter((i) => !initializerNames.has(i.name ?? ''));
  if (inputs.length !== 1) throw new OnnxError(`${file}: the graph has ${inputs.length} inputs, expected one image batch`);
  const input = inputs[0]?.name ?? '';
  const declared = valueDims(inputs[0] ?? {}) ?? [];
  const chw = options.inputShape ?? declared.slice(1);
  if (chw.length !== 3 || chw.some((d) => !(d > 0))) {
    throw new OnnxError(`${file}: the graph input ${input} is [${declared.join(', ')}]; pass inputShape [C, H, W] when its image dims are not fixed`);
  }
  const batch = (declared[0] ?? -1) > 0 ? (declared[0] as number) : 1;
  let g: Graph;
  try {
    g = new Graph(nodes, graph.initializer ?? [], input, [batch, ...chw]);
  } catch (e) {
    if (e instanceof ImportProblem) throw new OnnxError(`${file}: ${e.message}`, [], e);
    throw e;
  }

  const problems: string[] = [];
  for (const n of nodes) {
    try {
      const shapes = inferShape(g, n);
      shapes.forEach((s, i) => g.shapes.set(n.outputs[i] as string, s));
    } catch (e) {
      if (!(e instanceof ImportProblem)) throw e;
      problems.push(`${describeNode(n)}: ${e.message}`);
      break;
    }
  }
  if (problems.length === 0) {
    const gateNodes = new Set<Node>();
    const joins = nodes.filter((n) => n.op === 'Mul' && g.dataInputs(n).length === 2);
    const failures = new Map<Node, string>();
    for (const n of joins) {
      try {
        for (const x of matchGate(g, n).nodes) gateNodes.add(x);
      } catch (e) {
        if (!(e instanceof ImportProblem)) throw e;
        failures.set(n, e.message);
      }
    }
    for (const n of nodes) {
      if (gateNodes.has(n) || n.op === 'Constant' || ALIASES.has(n.op) || g.constants.has(n.outputs[0] as string)) continue;
      const failed = failures.get(n);
      if (failed !== undefined) {
        problems.push(`${describeNode(n)}: ${failed}`);
        continue;
      }
      if (n.op === 'Add' && g.dataInputs(n).length === 2) continue;
      if (n.op === 'Add' || n.op === 'Mul') {
        const mm = g.producer.get(g.resolve(g.dataInputs(n)[0] ?? ''));
        if (n.op === 'Mul' || mm?.op !== 'MatMul') problems.push(`${describeNode(n)}: ${n.op === 'Mul' ? 'multiplies by a constant (only LKAM gates multiply)' : 'adds a constant that is not the bias of a MatMul'}`);
        continue;
      }
      try {
        planNode(g, n);
      } catch (e) {
        if (!(e instanceof ImportProblem)) throw e;
        problems.push(`${describeNode(n)}: ${e.message}`);
      }
    }
  }
  if (problems.length > 0) throw new OnnxError(`${file}: cannot map ${problems.length} node${problems.length === 1 ? '' : 's'}: ${problems.join('; ')}`, problems);

  const outputs = (graph.output ?? []).map((o) => o.name ?? '');
  const output = outputs[0];
  if (output === undefined) throw new OnnxError(`${file}: the graph has no output`);
  const switchValues = new Map<string, string>();
  let model: Module;
  try {
    model = sequence(convert(g, input, output, '', switchValues));
  } catch (e) {
    if (e instanceof OnnxError) throw new OnnxError(`${file}: ${e.message}`, e.unsupported, e);
    if (e instanceof ImportProblem) throw new OnnxError(`${file}: ${e.message}`, [], e);
    throw e;
  }
  const switchOutputs = new Map<string, string>();
  for (const extra of outputs.slice(1)) {
    const gate = [...switchValues].find(([, v]) => v === g.resolve(extra));
    if (gate === undefined) throw new OnnxError(`${file}: graph output ${extra} is neither the model's output nor an LKAM's switch values`);
    switchOutputs.set(gate[0], extra);
  }
  const expected = g.shape(g.resolve(output));
  let ours: readonly number[];
  try {
    ours = model.outputShape([batch, ...chw]);
  } catch (e) {
    throw new OnnxError(`${file}: the imported modules do not fit together (${describeError(e)})`, [], e);
  }
  const squeeze = (s: readonly number[]): number[] => {
    const out = [...s];
    while (out.length > 2 && out[out.length - 1] === 1) out.pop();
    return out;
  };
  if (!sameDims(squeeze(ours), squeeze(expected))) {
    throw new OnnxError(`${file}: the imported model gives [${ours.join(', ')}], the graph's output ${output} is [${expected.join(', ')}]`);
  }
  return { model, inputShape: [...chw], opset, input, output, switchOutputs };
}

