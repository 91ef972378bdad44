/**
 * How each module type becomes graph nodes: one compiler per `module.type`, registered below with
 * `registerCompiler`. A compiler receives the module, the value it reads and the context, emits its
 * nodes and returns the value it produces. Nothing else switches on module types.
 */
import { convOutSize, type ConvGeometry } from '../backend/kernels.js';
import { AvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten, GlobalAvgPool, GlobalMaxPool, Linear, MaxPool2d, ReLU, Residual, Sequential } from '../nn/layers.js';
import { Gated, LKAM } from '../nn/lkam.js';
import { pooledSize } from '../ops/pool.js';
import type { Module } from '../nn/module.js';
import { shapeString, type Tensor } from '../tensor/tensor.js';
import type { Node, Value, ValueKind } from './ir.js';

export class CompileError extends Error {
  /** Module types that have no compiler, when that is the problem. */
  readonly unsupported: readonly string[];
  constructor(message: string, unsupported: readonly string[] = []) {
    super(message);
    this.name = 'CompileError';
    this.unsupported = unsupported;
  }
}

/** What a compiler uses to emit nodes; names derive from the module's path. */
export interface CompileContext {
  /** The module's dotted path ('' for the root). */
  readonly path: string;
  /** A new value of this kind and per-image shape. */
  value(kind: ValueKind, shape: readonly number[], hint?: string): Value;
  emit(node: Node): void;
  /** Compiles child `name` on x. */
  child(name: string, m: Module, x: Value): Value;
  /** A copy of a parameter or buffer, as the plan's own weights. */
  copy(t: Tensor): Float32Array;
}

export type ModuleCompiler = (m: Module, ctx: CompileContext, x: Value) => Value;

const compilers = new Map<string, ModuleCompiler>();

export function registerCompiler(type: string, compiler: ModuleCompiler): void {
  if (compilers.has(type)) throw new Error(`inference compiler for '${type}' is registered twice`);
  compilers.set(type, compiler);
}

export function compilableTypes(): string[] {
  return [...compilers.keys()].sort();
}

export function compilerFor(type: string): ModuleCompiler | undefined {
  return compilers.get(type);
}

/** Throws a CompileError listing every module type below `model` that has no compiler, with where it is. */
export function checkCompilable(model: Module): void {
  const missing = new Map<string, string[]>();
  for (const [path, m] of model.modules()) {
    if (!compilers.has(m.type)) missing.set(m.type, [...(missing.get(m.type) ?? []), path === '' ? '(root)' : path]);
  }
  if (missing.size === 0) return;
  const list = [...missing].map(([t, paths]) => `${t} (at ${paths.join(', ')})`).join('; ');
  throw new CompileError(`compile: no inference compiler for ${list}; compilable layer types: ${compilableTypes().join(', ')}`, [...missing.keys()]);
}

function as<T extends Module>(m: Module, cls: abstract new (...args: never[]) => T, path: string): T {
  if (!(m instanceof cls)) throw new CompileError(`compile: the module at '${path}' has type ${m.type} but is not a ${cls.name}`);
  return m;
}

function expectMap(ctx: CompileContext, x: Value, what: string): [number, number, number] {
  if (x.kind !== 'map' || x.shape.length !== 3) throw new CompileError(`compile: ${what} at '${ctx.path}' reads ${x.kind} ${shapeString(x.shape)}, expected a [C, H, W] map`);
  return x.shape as [number, number, number];
}

registerCompiler('Sequential', (m, ctx, x) => {
  let h = x;
  for (const [name, child] of as(m, Sequential, ctx.path).children()) h = ctx.child(name, child, h);
  return h;
});

registerCompiler('Residual', (m, ctx, x) => {
  const r = as(m, Residual, ctx.path);
  const a = ctx.child('body', r.body, x);
  const b = r.shortcut === null ? x : ctx.child('shortcut', r.shortcut, x);
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new CompileError(`compile: Residual at '${ctx.path}': body gives ${shapeString(a.shape)}, shortcut ${shapeString(b.shape)}`);
  }
  const y = ctx.value(a.kind, a.shape);
  ctx.emit({ op: 'add', name: ctx.path, a, b, y, lo: -Infinity });
  return y;
});

export function convGeometry(c: Conv2d, C: number, H: number, W: number): ConvGeometry {
  const [KH, KW] = c.kernel;
  const OH = convOutSize(H, KH, c.stride[0], c.padding[0], c.padding[0], c.dilation[0]);
  const OW = convOutSize(W, KW, c.stride[1], c.padding[1], c.padding[1], c.dilation[1]);
  return {
    N: 1, C, H, W, M: c.outChannels, KH, KW, strideH: c.stride[0], strideW: c.stride[1], padTop: c.padding[0], padLeft: c.padding[1],
    dilationH: c.dilation[0], dilationW: c.dilation[1], groups: c.groups, OH, OW,
  };
}

registerCompiler('Conv2d', (m, ctx, x) => {
  const c = as(m, Conv2d, ctx.path);
  const [C, H, W] = expectMap(ctx, x, 'Conv2d');
  if (C !== c.inChannels) throw new CompileError(`compile: Conv2d(${c.inChannels} → ${c.outChannels}) at '${ctx.path}' reads ${C} channels`);
  const g = convGeometry(c, C, H, W);
  if (g.OH < 1 || g.OW < 1) throw new CompileError(`compile: Conv2d at '${ctx.path}': a ${g.KH}x${g.KW} kernel does not fit ${H}x${W} maps`);
  const y = ctx.value('map', [g.M, g.OH, g.OW]);
  ctx.emit({ op: 'conv', name: ctx.path, x, y, g, weight: ctx.copy(c.weight), bias: c.bias === null ? null : ctx.copy(c.bias), lo: -Infinity, gate: null });
  return y;
});

registerCompiler('BatchNorm2d', (m, ctx, x) => {
  const bn = as(m, BatchNorm2d, ctx.path);
  const [C] = expectMap(ctx, x, 'BatchNorm2d');
  if (C !== bn.channels) throw new CompileError(`compile: BatchNorm2d(${bn.channels}) at '${ctx.path}' reads ${C} channels`);
  const gamma = bn.gamma.f32(), beta = bn.beta.f32(), mean = bn.runningMean.f32(), variance = bn.runningVar.f32();
  const scale = new Float32Array(C), shift = new Float32Array(C);
  for (let c = 0; c < C; c++) {
    // As ops.batchNorm in eval mode: k = gamma / sqrt(var + eps), shift = beta - mean * k.
    const k = (gamma[c] as number) / Math.sqrt((variance[c] as number) + bn.eps);
    scale[c] = k;
    shift[c] = (beta[c] as number) - (mean[c] as number) * k;
  }
  const y = ctx.value('map', x.shape);
  ctx.emit({ op: 'affine', name: ctx.path, x, y, scale, shift });
  return y;
});

registerCompiler('ReLU', (_m, ctx, x) => {
  const y = ctx.value(x.kind, x.shape);
  ctx.emit({ op: 'relu', name: ctx.path, x, y });
  return y;
});

registerCompiler('Dropout', (m, ctx, x) => {
  as(m, Dropout, ctx.path);
  return x;
});

function pool(kind: 'max' | 'avg', p: MaxPool2d | AvgPool2d, ctx: CompileContext, x: Value): Value {
  const [C, H, W] = expectMap(ctx, x, p.type);
  const OH = pooledSize(H, p.kernel[0], p.stride[0], p.padding[0], p.ceilMode);
  const OW = pooledSize(W, p.kernel[1], p.stride[1], p.padding[1], p.ceilMode);
  if (OH < 1 || OW < 1) throw new CompileError(`compile: ${p.type} at '${ctx.path}': a ${p.kernel[0]}x${p.kernel[1]} window does not fit ${H}x${W} maps`);
  const y = ctx.value('map', [C, OH, OW]);
  ctx.emit({ op: 'pool', name: ctx.path, kind, x, y, kernel: p.kernel, stride: p.stride, padding: p.padding, countIncludePad: p.countIncludePad });
  return y;
}
registerCompiler('MaxPool2d', (m, ctx, x) => pool('max', as(m, MaxPool2d, ctx.path), ctx, x));
registerCompiler('AvgPool2d', (m, ctx, x) => pool('avg', as(m, AvgPool2d, ctx.path), ctx, x));

function globalPool(kind: 'max' | 'avg', ctx: CompileContext, x: Value): Value {
  const [C] = expectMap(ctx, x, kind === 'max' ? 'GlobalMaxPool' : 'GlobalAvgPool');
  const y = ctx.value('vector', [C]);
  ctx.emit({ op: 'globalPool', name: ctx.path, kind, x, y });
  return y;
}
registerCompiler('GlobalAvgPool', (m, ctx, x) => globalPool('avg', (as(m, GlobalAvgPool, ctx.path), ctx), x));
registerCompiler('GlobalMaxPool', (m, ctx, x) => globalPool('max', (as(m, GlobalMaxPool, ctx.path), ctx), x));

function flatten(ctx: CompileContext, x: Value): Value {
  if (x.kind === 'vector') return x;
  expectMap(ctx, x, 'Flatten');
  const y = ctx.value('vector', [x.shape.reduce((a, b) => a * b, 1)]);
  ctx.emit({ op: 'flatten', name: ctx.path, x, y });
  return y;
}
registerCompiler('Flatten', (m, ctx, x) => flatten((as(m, Flatten, ctx.path), ctx), x));

registerCompiler('Linear', (m, ctx, x) => {
  const l = as(m, Linear, ctx.path);
  const v = flatten(ctx, x);
  if (v.shape[0] !== l.inFeatures) throw new CompileError(`compile: Linear(${l.inFeatures} → ${l.outFeatures}) at '${ctx.path}' reads ${v.shape[0]} features`);
  const y = ctx.value('vector', [l.outFeatures]);
  ctx.emit({ op: 'linear', name: ctx.path, x: v, y, weight: ctx.copy(l.weight), bias: l.bias === null ? null : ctx.copy(l.bias) });
  return y;
});

registerCompiler('LKAM', (m, ctx, x) => {
  const k = as(m, LKAM, ctx.path);
  const [C, H, W] = expectMap(ctx, x, 'LKAM');
  if (C !== k.inChannels) throw new CompileError(`compile: LKAM(${k.inChannels} → ${k.switches}) at '${ctx.path}' reads ${C} channels`);
  if (H < k.grid || W < k.grid) throw new CompileError(`compile: LKAM at '${ctx.path}': a ${k.grid}x${k.grid} pooling grid does not fit ${H}x${W} maps`);
  const y = ctx.value('switches', [k.switches]);
  ctx.emit({
    op: 'switches', name: ctx.path, x, y,
    bankWeight: ctx.copy(k.conv.weight), bankBias: k.conv.bias === null ? null : ctx.copy(k.conv.bias), bank: k.bank, pool: k.pool, grid: k.grid,
    fcWeight: ctx.copy(k.fc.weight), fcBias: k.fc.bias === null ? null : ctx.copy(k.fc.bias), kind: k.switchKind, threshold: k.threshold,
  });
  return y;
});

registerCompiler('Gated', (m, ctx, x) => {
  const g = as(m, Gated, ctx.path);
  const switches = ctx.child('lkam', g.lkam, x);
  const h = ctx.child('block', g.block, x);
  if (h.kind !== 'map' || h.shape[0] !== g.lkam.switches) {
    throw new CompileError(`compile: Gated at '${ctx.path}': the block gives ${h.kind} ${shapeString(h.shape)}, the LKAM makes ${g.lkam.switches} switches`);
  }
  const y = ctx.value('map', h.shape);
  ctx.emit({ op: 'gate', name: ctx.path, x: h, switches, y });
  return y;
});
