/**
 * ONNX export (opset 13) of a model in eval mode. Each layer type has one exporter, registered below
 * with `registerOnnxExporter`; the exporter receives the module, the name of its input value and the
 * context, adds its nodes and returns the name of its output value. Nothing else switches on types.
 *
 * A gated block (Gated + LKAM) becomes standard ops: Conv 1x1 → GlobalMaxPool (or a MaxPool grid) →
 * Flatten → Gemm → Clip(0, 1) or Sigmoid, whose [N, M] output is also a graph output, then
 * Unsqueeze to [N, M, 1, 1] → Mul with the block's output. Sigmoid switches under their threshold are
 * off at inference (GreaterOrEqual → Cast → Mul before the Unsqueeze), as in Gated.forward.
 */
import { AvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten, GlobalAvgPool, GlobalMaxPool, Linear, MaxPool2d, ReLU, Residual, Sequential } from '../nn/layers.js';
import { Clip, GELU, HardSigmoid, HardSwish, Sigmoid, SiLU } from '../nn/activations.js';
import { ChannelSelect } from '../nn/channels.js';
import { Concat } from '../nn/concat.js';
import { ChannelLayerNorm } from '../nn/layernorm.js';
import { Pad2d } from '../nn/pad.js';
import { SqueezeExcite } from '../nn/squeeze-excite.js';
import { Gated, gridWindow, LKAM } from '../nn/lkam.js';
import type { Module } from '../nn/module.js';
import { shapeString, type Shape, type Tensor } from '../tensor/tensor.js';
import { OnnxError } from './errors.js';
import {
  encodeModelProto, floatAttr, floatTensor, floatValueInfo, int64Tensor, intAttr, intsAttr, onnx, scalarTensor,
  type AttributeProto, type NodeProto, type TensorProto, type ValueInfoProto,
} from './onnx-graph.js';

export const ONNX_OPSET = 13;
/** The IR version that goes with opset 13 (ONNX 1.8). */
const IR_VERSION = 7;

export interface SwitchOutput {
  /** Module path of the Gated block, e.g. `3` or `2.body.0`. */
  readonly gate: string;
  /** Graph output holding the switch values, [N, switches]. */
  readonly name: string;
  readonly switches: number;
}

export interface OnnxExport {
  readonly bytes: Uint8Array;
  readonly input: string;
  readonly output: string;
  readonly switchOutputs: readonly SwitchOutput[];
}

export interface OnnxExportOptions {
  /** One input image, [C, H, W]; the batch dimension is symbolic (`N`). */
  readonly inputShape: readonly number[];
  readonly inputName?: string;
  readonly outputName?: string;
  readonly graphName?: string;
}

/** An attribute made by the io layer's helpers (floatAttr, intAttr, intsAttr); opaque, so that public types need no onnx-proto. */
export type OnnxAttribute = object;

/** What an exporter uses to add nodes, weights and outputs; names derive from the module's path. */
export interface OnnxContext {
  /** The module's dotted path (`` for the root). */
  readonly path: string;
  /** The input's shape with batch 1. */
  readonly inputShape: Shape;
  /** Adds a node with one output and returns that output's name. */
  node(opType: string, inputs: readonly string[], attributes?: readonly OnnxAttribute[], hint?: string): string;
  /** Adds a tensor of the model (copied now) as an initializer named `<path>.<name>`. */
  weight(name: string, t: Tensor): string;
  /** Adds a constant float tensor. */
  floats(hint: string, dims: readonly number[], values: Float32Array): string;
  /** Adds a constant int64 vector (axes, shapes). */
  int64s(hint: string, values: readonly number[]): string;
  /** Adds a float scalar (Clip bounds). */
  scalar(hint: string, value: number): string;
  /** Exports a child module (its path is `<path>.<name>`) on `input` and returns its output. */
  child(name: string, m: Module, input: string, inputShape?: Shape): string;
  /** Also exposes `value` ([N, ...dims]) as a graph output. */
  output(value: string, dims: readonly number[]): void;
  /** Records a graph output that holds a gate's switch values. */
  switchOutput(s: SwitchOutput): void;
}

export type OnnxExporter = (m: Module, ctx: OnnxContext, input: string) => string;

const exporters = new Map<string, OnnxExporter>();

export function registerOnnxExporter(type: string, exporter: OnnxExporter): void {
  if (exporters.has(type)) throw new Error(`ONNX exporter for '${type}' is registered twice`);
  exporters.set(type, exporter);
}

export function onnxExportableTypes(): string[] {
  return [...exporters.keys()].sort();
}

class Builder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  readonly outputs: ValueInfoProto[] = [];
  readonly switchOutputs: SwitchOutput[] = [];
  private readonly used = new Set<string>();

  unique(hint: string): string {
    let name = hint;
    for (let i = 1; this.used.has(name); i++) name = `${hint}_${i}`;
    this.used.add(name);
    return name;
  }

  context(path: string, inputShape: Shape): OnnxContext {
    const at = (name: string): string => (path === '' ? name : `${path}.${name}`);
    const ctx: OnnxContext = {
      path,
      inputShape,
      node: (opType, inputs, attributes = [], hint) => {
        const out = this.unique(at(hint ?? opType));
        this.nodes.push({ opType, name: out, input: [...inputs], output: [out], attribute: [...attributes] as AttributeProto[] });
        return out;
      },
      weight: (name, t) => {
        const n = this.unique(at(name));
        this.initializers.push(floatTensor(n, t.shape, t.f32()));
        return n;
      },
      floats: (hint, dims, values) => {
        const n = this.unique(at(hint));
        this.initializers.push(floatTensor(n, dims, values));
        return n;
      },
      int64s: (hint, values) => {
        const n = this.unique(at(hint));
        this.initializers.push(int64Tensor(n, values));
        return n;
      },
      scalar: (hint, value) => {
        const n = this.unique(at(hint));
        this.initializers.push(scalarTensor(n, value));
        return n;
      },
      child: (name, m, input, childInput = inputShape) => this.export(m, at(name), input, childInput),
      output: (value, dims) => {
        this.outputs.push(floatValueInfo(value, [1, ...dims]));
      },
      switchOutput: (s) => {
        this.switchOutputs.push(s);
      },
    };
    return ctx;
  }

  export(m: Module, path: string, input: string, inputShape: Shape): string {
    const exporter = exporters.get(m.type);
    if (exporter === undefined) throw new OnnxError(`ONNX export: no exporter for layer type ${m.type} at '${path}'`, [m.type]);
    return exporter(m, this.context(path, inputShape), input);
  }
}

/**
 * The model as an ONNX ModelProto (opset 13), in eval mode: batch norms use their running statistics
 * and dropout is the identity. Throws OnnxError listing every layer type that has no exporter.
 */
export function exportOnnx(model: Module, options: OnnxExportOptions): OnnxExport {
  const missing = new Map<string, string[]>();
  for (const [path, m] of model.modules()) {
    if (!exporters.has(m.type)) missing.set(m.type, [...(missing.get(m.type) ?? []), path === '' ? '(root)' : path]);
  }
  if (missing.size > 0) {
    const list = [...missing].map(([t, paths]) => `${t} (at ${paths.join(', ')})`).join('; ');
    throw new OnnxError(`ONNX export: no exporter for ${list}; exportable layer types: ${onnxExportableTypes().join(', ')}`, [...missing.keys()]);
  }
  const inputShape: Shape = [1, ...options.inputShape];
  const outputShape = model.outputShape(inputShape);
  const b = new Builder();
  const input = b.unique(options.inputName ?? 'input');
  const outputName = b.unique(options.outputName ?? 'logits');
  const last = b.export(model, '', input, inputShape);
  b.nodes.push({ opType: 'Identity', name: outputName, input: [last], output: [outputName] });
  const bytes = encodeModelProto({
    irVersion: IR_VERSION,
    producerName: 'parsimony',
    opsetImport: [{ domain: '', version: ONNX_OPSET }],
    metadataProps: [{ key: 'parsimony.architecture', value: JSON.stringify(model.spec()) }],
    graph: {
      name: options.graphName ?? 'parsimony',
      node: b.nodes,
      initializer: b.initializers,
      input: [floatValueInfo(input, inputShape)],
      output: [floatValueInfo(outputName, outputShape), ...b.outputs],
    },
  });
  return { bytes, input, output: outputName, switchOutputs: b.switchOutputs };
}

function as<T extends Module>(m: Module, cls: abstract new (...args: never[]) => T): T {
  if (!(m instanceof cls)) throw new OnnxError(`ONNX export: a module of type ${m.type} is not a ${cls.name}`);
  return m;
}

/** ONNX pads: [top, left, bottom, right] from symmetric [h, w]. */
function pads(p: readonly [number, number]): number[] {
  return [p[0], p[1], p[0], p[1]];
}

function flattenIfNeeded(ctx: OnnxContext, input: string, shape: Shape): string {
  return shape.length === 2 ? input : ctx.node('Flatten', [input], [intAttr('axis', 1)]);
}

registerOnnxExporter('Sequential', (m, ctx, input) => {
  let h = input;
  let shape = ctx.inputShape;
  for (const [name, child] of as(m, Sequential).children()) {
    h = ctx.child(name, child, h, shape);
    shape = child.outputShape(shape);
  }
  return h;
});

registerOnnxExporter('Residual', (m, ctx, input) => {
  const r = as(m, Residual);
  const a = ctx.child('body', r.body, input);
  const b = r.shortcut === null ? input : ctx.child('shortcut', r.shortcut, input);
  return ctx.node('Add', [a, b]);
});

registerOnnxExporter('Conv2d', (m, ctx, input) => {
  const c = as(m, Conv2d);
  const inputs = [input, ctx.weight('weight', c.weight)];
  if (c.bias !== null) inputs.push(ctx.weight('bias', c.bias));
  return ctx.node('Conv', inputs, [
    intsAttr('kernel_shape', c.kernel), intsAttr('strides', c.stride), intsAttr('pads', pads(c.padding)),
    intsAttr('dilations', c.dilation), intAttr('group', c.groups),
  ]);
});

registerOnnxExporter('BatchNorm2d', (m, ctx, input) => {
  const bn = as(m, BatchNorm2d);
  const inputs = [input, ctx.weight('gamma', bn.gamma), ctx.weight('beta', bn.beta), ctx.weight('runningMean', bn.runningMean), ctx.weight('runningVar', bn.runningVar)];
  // ONNX's momentum weighs the old running value; ours (as PyTorch's) weighs the new batch value.
  return ctx.node('BatchNormalization', inputs, [floatAttr('epsilon', bn.eps), floatAttr('momentum', 1 - bn.momentum)]);
});

registerOnnxExporter('ReLU', (_m, ctx, input) => ctx.node('Relu', [input]));

registerOnnxExporter('Dropout', (m, _ctx, input) => {
  as(m, Dropout);
  return input;
});

registerOnnxExporter('MaxPool2d', (m, ctx, input) => {
  const p = as(m, MaxPool2d);
  return ctx.node('MaxPool', [input], [intsAttr('kernel_shape', p.kernel), intsAttr('strides', p.stride), intsAttr('pads', pads(p.padding)), ...(p.ceilMode ? [intAttr('ceil_mode', 1)] : [])]);
});

registerOnnxExporter('AvgPool2d', (m, ctx, input) => {
  const p = as(m, AvgPool2d);
  return ctx.node('AveragePool', [input], [
    intsAttr('kernel_shape', p.kernel), intsAttr('strides', p.stride), intsAttr('pads', pads(p.padding)), intAttr('count_include_pad', p.countIncludePad ? 1 : 0),
    ...(p.ceilMode ? [intAttr('ceil_mode', 1)] : []),
  ]);
});

registerOnnxExporter('GlobalAvgPool', (m, ctx, input) => {
  as(m, GlobalAvgPool);
  return ctx.node('Flatten', [ctx.node('GlobalAveragePool', [input])], [intAttr('axis', 1)]);
});

registerOnnxExporter('GlobalMaxPool', (m, ctx, input) => {
  as(m, GlobalMaxPool);
  return ctx.node('Flatten', [ctx.node('GlobalMaxPool', [input])], [intAttr('axis', 1)]);
});

registerOnnxExporter('Flatten', (m, ctx, input) => {
  as(m, Flatten);
  return ctx.node('Flatten', [input], [intAttr('axis', 1)]);
});

registerOnnxExporter('Linear', (m, ctx, input) => {
  const l = as(m, Linear);
  const x = flattenIfNeeded(ctx, input, ctx.inputShape);
  const inputs = [x, ctx.weight('weight', l.weight)];
  if (l.bias !== null) inputs.push(ctx.weight('bias', l.bias));
  return ctx.node('Gemm', inputs, [intAttr('transB', 1)]);
});

registerOnnxExporter('LKAM', (m, ctx, input) => {
  const k = as(m, LKAM);
  const shape = ctx.inputShape;
  if (shape.length !== 4) throw new OnnxError(`ONNX export: LKAM at '${ctx.path}' reads ${shapeString(shape)}, expected [N, C, H, W]`);
  const bank = ctx.child('conv', k.conv, input);
  let pooled: string;
  if (k.grid === 1) {
    pooled = ctx.node(k.pool === 'max' ? 'GlobalMaxPool' : 'GlobalAveragePool', [bank]);
  } else {
    const H = shape[2] as number;
    const W = shape[3] as number;
    // The grid as LKAM.forward computes it.
    const rows = gridWindow(H, k.grid), cols = gridWindow(W, k.grid);
    const kernel = [rows.kernel, cols.kernel];
    const stride = [rows.stride, cols.stride];
    const attrs = [intsAttr('kernel_shape', kernel), intsAttr('strides', stride)];
    pooled = ctx.node(k.pool === 'max' ? 'MaxPool' : 'AveragePool', [bank], k.pool === 'max' ? attrs : [...attrs, intAttr('count_include_pad', 1)]);
  }
  const pre = ctx.child('fc', k.fc, ctx.node('Flatten', [pooled], [intAttr('axis', 1)]), [1, k.bank * k.grid * k.grid]);
  const switches = k.switchKind !== 'sigmoid'
    ? ctx.node('Clip', [pre, ctx.scalar('min', 0), ctx.scalar('max', 1)], [], 'switches')
    : ctx.node('Sigmoid', [pre], [], 'switches');
  ctx.output(switches, [k.switches]);
  return switches;
});

registerOnnxExporter('Gated', (m, ctx, input) => {
  const g = as(m, Gated);
  const switches = ctx.child('lkam', g.lkam, input);
  ctx.switchOutput({ gate: ctx.path, name: switches, switches: g.lkam.switches });
  let gate = switches;
  if (g.lkam.switchKind === 'sigmoid') {
    // At inference a sigmoid switch under the threshold is off: the gate is s · [s >= threshold].
    const on = ctx.node('GreaterOrEqual', [switches, ctx.scalar('threshold', g.lkam.threshold)], [], 'on');
    gate = ctx.node('Mul', [switches, ctx.node('Cast', [on], [intAttr('to', onnx.TensorProto.DataType.FLOAT)], 'onFloat')], [], 'gate');
  } else if (g.lkam.switchKind === 'binary') {
    // A binary switch passes its kernel unscaled when on: the gate is [s > 0].
    const on = ctx.node('Greater', [switches, ctx.scalar('zero', 0)], [], 'on');
    gate = ctx.node('Cast', [on], [intAttr('to', onnx.TensorProto.DataType.FLOAT)], 'gate');
  }
  const y = ctx.child('block', g.block, input);
  const scale = ctx.node('Unsqueeze', [gate, ctx.int64s('axes', [2, 3])], [], 'gateScale');
  return ctx.node('Mul', [y, scale]);
});

registerOnnxExporter('Clip', (m, ctx, input) => {
  const c = as(m, Clip);
  const lo = Number.isFinite(c.lo) ? ctx.scalar('min', c.lo) : '';
  return ctx.node('Clip', Number.isFinite(c.hi) ? [input, lo, ctx.scalar('max', c.hi)] : [input, lo]);
});

registerOnnxExporter('Sigmoid', (m, ctx, input) => ctx.node('Sigmoid', [(as(m, Sigmoid), input)]));

registerOnnxExporter('HardSigmoid', (m, ctx, input) => {
  const h = as(m, HardSigmoid);
  return ctx.node('HardSigmoid', [input], [floatAttr('alpha', h.alpha), floatAttr('beta', h.beta)]);
});

// Opset 13 has no SiLU or HardSwish: x · sigmoid(x) and x · hardsigmoid(x), as PyTorch writes them.
registerOnnxExporter('SiLU', (m, ctx, input) => ctx.node('Mul', [input, ctx.node('Sigmoid', [(as(m, SiLU), input)])]));
registerOnnxExporter('HardSwish', (m, ctx, input) => ctx.node('Mul', [input, ctx.node('HardSigmoid', [(as(m, HardSwish), input)], [floatAttr('alpha', 1 / 6), floatAttr('beta', 0.5)])]));

// Opset 13 has no Gelu: x · 0.5 · (1 + erf(x / √2)), as PyTorch writes it.
registerOnnxExporter('GELU', (m, ctx, input) => {
  as(m, GELU);
  const erf = ctx.node('Erf', [ctx.node('Div', [input, ctx.scalar('sqrt2', Math.SQRT2)])]);
  const half = ctx.node('Mul', [ctx.node('Mul', [input, ctx.node('Add', [erf, ctx.scalar('one', 1)])]), ctx.scalar('half', 0.5)]);
  return half;
});

registerOnnxExporter('Concat', (m, ctx, input) => {
  const c = as(m, Concat);
  return ctx.node('Concat', c.branches.map((b, i) => ctx.child(String(i), b, input)), [intAttr('axis', 1)]);
});

registerOnnxExporter('SqueezeExcite', (m, ctx, input) => {
  const se = as(m, SqueezeExcite);
  const h = ctx.child('fc1', se.fc1, ctx.node('GlobalAveragePool', [input]));
  const a = se.activation === 'relu' ? ctx.node('Relu', [h]) : ctx.node('Mul', [h, ctx.node('Sigmoid', [h])]);
  const z = ctx.child('fc2', se.fc2, a);
  const s = se.gate === 'sigmoid' ? ctx.node('Sigmoid', [z]) : ctx.node('HardSigmoid', [z], [floatAttr('alpha', 1 / 6), floatAttr('beta', 0.5)]);
  return ctx.node('Mul', [s, input]);
});

registerOnnxExporter('ChannelSelect', (m, ctx, input) => {
  const c = as(m, ChannelSelect);
  return ctx.node('Gather', [input, ctx.int64s('channels', c.order)], [intAttr('axis', 1)]);
});

// Opset 13 has no LayerNormalization: the mean and variance over axis 1, as PyTorch decomposes it.
registerOnnxExporter('ChannelLayerNorm', (m, ctx, input) => {
  const ln = as(m, ChannelLayerNorm);
  const rank = ctx.inputShape.length;
  const perChannel = [ln.channels, ...Array.from({ length: rank - 2 }, () => 1)];
  const mean = ctx.node('ReduceMean', [input], [intsAttr('axes', [1]), intAttr('keepdims', 1)]);
  const d = ctx.node('Sub', [input, mean]);
  const variance = ctx.node('ReduceMean', [ctx.node('Pow', [d, ctx.scalar('two', 2)])], [intsAttr('axes', [1]), intAttr('keepdims', 1)]);
  const normed = ctx.node('Div', [d, ctx.node('Sqrt', [ctx.node('Add', [variance, ctx.scalar('eps', ln.eps)])])]);
  return ctx.node('Add', [ctx.node('Mul', [normed, ctx.floats('weight', perChannel, ln.weight.f32())]), ctx.floats('bias', perChannel, ln.bias.f32())]);
});

registerOnnxExporter('Pad2d', (m, ctx, input) => {
  const p = as(m, Pad2d);
  const [t, l, b, r] = p.pads;
  const inputs = [input, ctx.int64s('pads', [0, 0, t, l, 0, 0, b, r])];
  if (p.mode === 'constant') inputs.push(ctx.scalar('value', p.value));
  return ctx.node('Pad', inputs, [{ name: 'mode', type: onnx.AttributeProto.AttributeType.STRING, s: new TextEncoder().encode(p.mode) }]);
});
