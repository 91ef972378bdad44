/**
 * Static pruning: removing kernels (output channels of convs) that no input switches on, and with them
 * the input channels that read them downstream. Each module type has a rule (registered below with
 * `registerPruneRule`) saying how channel removals pass through it; nothing else switches on types.
 * The same pass, told to drop gates, gives a gated network's dense twin.
 */
import { Rng } from '../nn/init.js';
import { AvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten, GlobalAvgPool, GlobalMaxPool, Linear, MaxPool2d, ReLU, Residual, Sequential } from '../nn/layers.js';
import { Clip, HardSigmoid } from '../nn/activations.js';
import { ChannelSelect } from '../nn/channels.js';
import { Concat } from '../nn/concat.js';
import { ChannelLayerNorm } from '../nn/layernorm.js';
import { Pad2d } from '../nn/pad.js';
import { SqueezeExcite } from '../nn/squeeze-excite.js';
import { Gated, LKAM } from '../nn/lkam.js';
import type { Module } from '../nn/module.js';
import type { Shape, Tensor } from '../tensor/tensor.js';
import type { InferencePlan } from './plan.js';

export class PruneError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PruneError';
  }
}

/** What a rule uses: removals are sorted channel indices of the unpruned network. */
export interface PruneContext {
  /** The module's dotted path ('' for the root). */
  readonly path: string;
  /** The kernels to remove from the conv at this path (sorted; empty for none). */
  readonly kernelsToRemove: readonly number[];
  /** Whether gates are replaced by their blocks (the dense twin). */
  readonly dropGates: boolean;
  /** The generator new modules are initialised from before their weights are copied in (the global one is left alone). */
  readonly rng: Rng;
  /** Applies the rule of child `name` to removals `removed` of its input, of shape `input` (batch 1). */
  child(name: string, m: Module, removed: readonly number[], input: Shape): PruneResult;
}

export interface PruneResult {
  readonly module: Module;
  /** Output channels (or features) removed, sorted, in the unpruned network's numbering. */
  readonly removed: readonly number[];
}

/** `removed` are input channels (features for vectors) gone from the module's input of shape `input`. */
export type PruneRule = (m: Module, ctx: PruneContext, removed: readonly number[], input: Shape) => PruneResult;

const rules = new Map<string, PruneRule>();

export function registerPruneRule(type: string, rule: PruneRule): void {
  if (rules.has(type)) throw new Error(`prune rule for '${type}' is registered twice`);
  rules.set(type, rule);
}

export interface PruneOptions {
  /** One input image, [C, H, W] (flatten layers need it). */
  readonly inputShape: readonly number[];
  /** Replace every Gated by its block (no LKAMs, every remaining kernel computed). */
  readonly dropGates?: boolean;
}

/**
 * A copy of `model` without the kernels `remove` names (conv module path → output channels), and
 * without the input channels that read them: the batch norms after a pruned conv, the next conv or
 * linear layer, the LKAM that reads the output and the LKAM switches of the pruned kernels shrink too.
 * Unchanged modules are shared with `model`. Throws PruneError when a removal cannot pass through a
 * module (a residual add whose two sides would lose different channels) or names no conv.
 */
export function pruneStatic(model: Module, remove: ReadonlyMap<string, readonly number[]>, options: PruneOptions): Module {
  const convPaths = new Map(model.modules().filter(([, m]) => m instanceof Conv2d).map(([p, m]) => [p, m as Conv2d]));
  for (const [path, kernels] of remove) {
    const conv = convPaths.get(path);
    if (conv === undefined) throw new PruneError(`pruneStatic: no conv at '${path}' (convs: ${[...convPaths.keys()].join(', ')})`);
    const bad = kernels.filter((k) => !Number.isInteger(k) || k < 0 || k >= conv.outChannels);
    if (bad.length > 0) throw new PruneError(`pruneStatic: conv '${path}' has kernels 0 to ${conv.outChannels - 1}; cannot remove ${bad.join(', ')}`);
    if (new Set(kernels).size >= conv.outChannels) throw new PruneError(`pruneStatic: removing all ${conv.outChannels} kernels of conv '${path}' leaves it nothing; keep at least one`);
  }
  const missing = model.modules().filter(([, m]) => !rules.has(m.type));
  if (missing.length > 0) {
    throw new PruneError(`pruneStatic: no prune rule for ${missing.map(([p, m]) => `${m.type} (at ${p === '' ? '(root)' : p})`).join(', ')}; known: ${[...rules.keys()].sort().join(', ')}`);
  }
  const rng = new Rng(0);
  const dropGates = options.dropGates ?? false;
  const apply = (m: Module, path: string, removed: readonly number[], input: Shape): PruneResult => {
    const ctx: PruneContext = {
      path, dropGates, rng,
      kernelsToRemove: [...new Set(remove.get(path) ?? [])].sort((a, b) => a - b),
      child: (name, c, r, shape) => apply(c, path === '' ? name : `${path}.${name}`, r, shape),
    };
    return (rules.get(m.type) as PruneRule)(m, ctx, removed, input);
  };
  const out = apply(model, '', [], [1, ...options.inputShape]).module;
  if (out !== model) out.train(model.training);
  return out;
}

/** The network without its LKAMs (each Gated replaced by its block): the same weights, every kernel computed. */
export function denseTwin(model: Module, inputShape: readonly number[]): Module {
  return pruneStatic(model, new Map(), { inputShape, dropGates: true });
}

/**
 * The kernels of each gated conv (by module path) that no image of `x` switched on, from runs of
 * `plan` in batches of up to plan.maxBatch: what static pruning can remove without changing the
 * outputs on these images.
 */
export function kernelsNeverOn(plan: InferencePlan, x: Float32Array): Map<string, number[]> {
  const per = plan.inputShape.reduce((a, b) => a * b, 1);
  const images = Math.floor(x.length / per);
  const seen = new Map<string, Uint8Array>();
  for (let n0 = 0; n0 < images; n0 += plan.maxBatch) {
    const n = Math.min(plan.maxBatch, images - n0);
    plan.run(x.subarray(n0 * per, (n0 + n) * per));
    for (const l of plan.telemetry().layers) {
      if (l.onKernels === null) continue;
      const any = seen.get(l.name) ?? new Uint8Array(l.kernels);
      for (let i = 0; i < n; i++) for (let k = 0; k < l.kernels; k++) any[k]! |= l.onKernels[i * l.kernels + k] as number;
      seen.set(l.name, any);
    }
  }
  const out = new Map<string, number[]>();
  for (const [name, any] of seen) out.set(name, [...any.keys()].filter((k) => any[k] === 0));
  return out;
}

function kept(total: number, removed: readonly number[]): number[] {
  const gone = new Set(removed);
  return Array.from({ length: total }, (_, i) => i).filter((i) => !gone.has(i));
}

function copyRows(from: Tensor, to: Tensor, rows: readonly number[], cols: readonly number[], inner: number): void {
  const src = from.f32();
  const dst = to.f32();
  const width = from.size / (from.shape[0] as number) / inner;
  let d = 0;
  for (const r of rows) {
    for (const c of cols) {
      const s = (r * width + c) * inner;
      dst.set(src.subarray(s, s + inner), d);
      d += inner;
    }
  }
}

function as<T extends Module>(m: Module, cls: abstract new (...args: never[]) => T, path: string): T {
  if (!(m instanceof cls)) throw new PruneError(`pruneStatic: the module at '${path}' has type ${m.type} but is not a ${cls.name}`);
  return m;
}

const passThrough: PruneRule = (m, _ctx, removed) => ({ module: m, removed });
for (const [type, cls] of [['ReLU', ReLU], ['Dropout', Dropout], ['MaxPool2d', MaxPool2d], ['AvgPool2d', AvgPool2d], ['GlobalAvgPool', GlobalAvgPool], ['GlobalMaxPool', GlobalMaxPool]] as const) {
  registerPruneRule(type, (m, ctx, removed, input) => passThrough(as(m, cls as abstract new (...args: never[]) => Module, ctx.path), ctx, removed, input));
}

registerPruneRule('Flatten', (m, ctx, removed, input) => {
  as(m, Flatten, ctx.path);
  const HW = input.slice(2).reduce((a, b) => a * b, 1);
  return { module: m, removed: removed.flatMap((c) => Array.from({ length: HW }, (_, i) => c * HW + i)) };
});

registerPruneRule('Sequential', (m, ctx, removed, input) => {
  const seq = as(m, Sequential, ctx.path);
  let r = removed;
  let shape = input;
  let changed = false;
  const layers = seq.children().map(([name, child]) => {
    const res = ctx.child(name, child, r, shape);
    shape = child.outputShape(shape);
    r = res.removed;
    changed ||= res.module !== child;
    return res.module;
  });
  return { module: changed ? new Sequential(layers) : seq, removed: r };
});

registerPruneRule('Residual', (m, ctx, removed, input) => {
  const res = as(m, Residual, ctx.path);
  const body = ctx.child('body', res.body, removed, input);
  const shortcut = res.shortcut === null ? { module: null, removed } : ctx.child('shortcut', res.shortcut, removed, input);
  if (body.removed.length !== shortcut.removed.length || body.removed.some((c, i) => c !== shortcut.removed[i])) {
    throw new PruneError(`pruneStatic: Residual at '${ctx.path}': the body would lose output channels [${body.removed.join(', ')}] and the shortcut [${shortcut.removed.join(', ')}]; a residual add needs both to lose the same ones`);
  }
  const same = body.module === res.body && shortcut.module === res.shortcut;
  return { module: same ? res : new Residual(body.module, shortcut.module), removed: body.removed };
});

registerPruneRule('Conv2d', (m, ctx, removed, input) => {
  const c = as(m, Conv2d, ctx.path);
  const own = ctx.kernelsToRemove;
  if (removed.length === 0 && own.length === 0) return { module: c, removed: [] };
  if (c.groups !== 1) throw new PruneError(`pruneStatic: conv '${ctx.path}' has groups=${c.groups}; only convs with groups 1 can lose channels`);
  const ins = kept(input[1] as number, removed), outs = kept(c.outChannels, own);
  const pruned = new Conv2d({
    inChannels: ins.length, outChannels: outs.length, kernel: c.kernel, stride: c.stride, padding: c.padding, dilation: c.dilation,
    bias: c.bias !== null, rng: ctx.rng,
  });
  copyRows(c.weight, pruned.weight, outs, ins, c.kernel[0] * c.kernel[1]);
  if (c.bias !== null && pruned.bias !== null) copyRows(c.bias, pruned.bias, outs, [0], 1);
  return { module: pruned, removed: own };
});

registerPruneRule('BatchNorm2d', (m, ctx, removed) => {
  const bn = as(m, BatchNorm2d, ctx.path);
  if (removed.length === 0) return { module: bn, removed };
  const keep = kept(bn.channels, removed);
  const pruned = new BatchNorm2d(keep.length, { momentum: bn.momentum, eps: bn.eps });
  for (const [from, to] of [[bn.gamma, pruned.gamma], [bn.beta, pruned.beta], [bn.runningMean, pruned.runningMean], [bn.runningVar, pruned.runningVar]] as const) {
    copyRows(from, to, keep, [0], 1);
  }
  return { module: pruned, removed };
});

registerPruneRule('Linear', (m, ctx, removed) => {
  const l = as(m, Linear, ctx.path);
  if (removed.length === 0) return { module: l, removed: [] };
  const ins = kept(l.inFeatures, removed);
  const pruned = new Linear({ inFeatures: ins.length, outFeatures: l.outFeatures, bias: l.bias !== null, rng: ctx.rng });
  copyRows(l.weight, pruned.weight, Array.from({ length: l.outFeatures }, (_, i) => i), ins, 1);
  if (l.bias !== null && pruned.bias !== null) pruned.bias.f32().set(l.bias.f32());
  return { module: pruned, removed: [] };
});

registerPruneRule('Gated', (m, ctx, removed, input) => {
  const g = as(m, Gated, ctx.path);
  const block = ctx.child('block', g.block, removed, input);
  if (ctx.dropGates) return block;
  const k = g.lkam;
  if (removed.length === 0 && block.removed.length === 0 && block.module === g.block) return { module: g, removed: [] };
  const ins = kept(k.inChannels, removed), outs = kept(k.switches, block.removed);
  const lkam = new LKAM({
    inChannels: ins.length, switches: outs.length, bank: k.bank, pool: k.pool, grid: k.grid, switchKind: k.switchKind, threshold: k.threshold,
    initOpen: k.initOpen, rng: ctx.rng,
  });
  copyRows(k.conv.weight, lkam.conv.weight, Array.from({ length: k.bank }, (_, i) => i), ins, 1);
  if (k.conv.bias !== null && lkam.conv.bias !== null) lkam.conv.bias.f32().set(k.conv.bias.f32());
  copyRows(k.fc.weight, lkam.fc.weight, outs, Array.from({ length: k.fc.inFeatures }, (_, i) => i), 1);
  if (k.fc.bias !== null && lkam.fc.bias !== null) copyRows(k.fc.bias, lkam.fc.bias, outs, [0], 1);
  const gated = new Gated(block.module, lkam, g.gain);
  gated.mode = g.mode;
  return { module: gated, removed: block.removed };
});

registerPruneRule('LKAM', (m, ctx, removed) => {
  as(m, LKAM, ctx.path);
  if (removed.length === 0) return { module: m, removed: [] };
  throw new PruneError(`pruneStatic: the LKAM at '${ctx.path}' is outside a Gated block; its switches are pruned with the block they gate`);
});

/** An activation that keeps 0 at 0 passes channel removals through; any other would turn removed channels into constants. */
function zeroKeeping(type: string, keeps: (m: Module) => boolean): void {
  registerPruneRule(type, (m, ctx, removed) => {
    if (m.type !== type) throw new PruneError(`pruneStatic: the module at '${ctx.path}' has type ${m.type} but is not a ${type}`);
    if (removed.length > 0 && !keeps(m)) throw new PruneError(`pruneStatic: ${type} at '${ctx.path}' maps 0 to a non-zero value, so the channels removed before it do not stay removed`);
    return { module: m, removed };
  });
}
zeroKeeping('Clip', (m) => (m as Clip).lo <= 0 && (m as Clip).hi >= 0);
zeroKeeping('SiLU', () => true);
zeroKeeping('HardSwish', () => true);
zeroKeeping('GELU', () => true);
zeroKeeping('Sigmoid', () => false);
zeroKeeping('HardSigmoid', (m) => (m as HardSigmoid).beta === 0);

registerPruneRule('Concat', (m, ctx, removed, input) => {
  const c = as(m, Concat, ctx.path);
  let offset = 0;
  const out: number[] = [];
  let changed = false;
  const branches = c.children().map(([name, b]) => {
    const res = ctx.child(name, b, removed, input);
    for (const r of res.removed) out.push(offset + r);
    offset += b.outputShape(input)[1] as number;
    changed ||= res.module !== b;
    return res.module;
  });
  return { module: changed ? new Concat(branches) : c, removed: out };
});

registerPruneRule('SqueezeExcite', (m, ctx, removed) => {
  const se = as(m, SqueezeExcite, ctx.path);
  if (removed.length === 0) return { module: se, removed };
  // Removed channels are zero: their means read nothing and their scales multiply zero planes.
  const ins = kept(se.channels, removed);
  const pruned = new SqueezeExcite({ channels: ins.length, squeeze: se.squeeze, activation: se.activation, gate: se.gate });
  copyRows(se.fc1.weight, pruned.fc1.weight, Array.from({ length: se.squeeze }, (_, i) => i), ins, 1);
  copyRows(se.fc1.bias as Tensor, pruned.fc1.bias as Tensor, Array.from({ length: se.squeeze }, (_, i) => i), [0], 1);
  copyRows(se.fc2.weight, pruned.fc2.weight, ins, Array.from({ length: se.squeeze }, (_, i) => i), 1);
  copyRows(se.fc2.bias as Tensor, pruned.fc2.bias as Tensor, ins, [0], 1);
  return { module: pruned, removed };
});

registerPruneRule('ChannelSelect', (m, ctx, removed) => {
  const c = as(m, ChannelSelect, ctx.path);
  if (removed.length === 0) return { module: c, removed };
  const gone = new Set(removed);
  const renumber = new Map(kept(c.inChannels, removed).map((old, i) => [old, i]));
  const order = c.order.filter((src) => !gone.has(src)).map((src) => renumber.get(src) as number);
  const out = c.order.flatMap((src, i) => (gone.has(src) ? [i] : []));
  if (order.length === 0) throw new PruneError(`pruneStatic: ChannelSelect at '${ctx.path}' would select no channel`);
  return { module: new ChannelSelect(renumber.size, order), removed: out };
});

registerPruneRule('ChannelLayerNorm', (m, ctx, removed) => {
  const ln = as(m, ChannelLayerNorm, ctx.path);
  if (removed.length > 0) throw new PruneError(`pruneStatic: ChannelLayerNorm at '${ctx.path}' normalises over its channels, so it cannot lose [${removed.join(', ')}] without changing its statistics`);
  return { module: ln, removed };
});
zeroKeeping('Pad2d', (m) => (m as Pad2d).mode !== 'constant' || (m as Pad2d).value === 0);
