/**
 * Learning Kernel-Activation Modules (LKAMs) and the gates they drive.
 *
 * An LKAM reads the output maps of conv layer i ([N, Ci, H, W]) and emits one switch per kernel of
 * conv layer i+1 ([N, M]): a bank of k 1x1 convolutions, pooling (global, or a g x g grid whose cells
 * all feed the next step), a fully connected layer and a switch function. `Gated` wraps layer i+1's
 * block (conv → batch norm → ReLU) and multiplies its output channels by the switches; a switch is a
 * non-negative scale, so gating after the ReLU equals gating before it.
 */
import { engine } from '../autograd/engine.js';
import * as ops from '../ops/index.js';
import { ChannelSet, ShapeError, shapeString, type Shape, type Tensor } from '../tensor/tensor.js';
import type { Rng } from './init.js';
import { AvgPool2d, BatchNorm2d, Conv2d, globalRng, Linear, MaxPool2d, ReLU, Residual, Sequential } from './layers.js';
import { Concat } from './concat.js';
import { childShape, Module, type ModuleSpec, type ShapeWalk } from './module.js';
import { registerModule } from './registry.js';
import { SWITCH_KINDS, type GainKind, type SwitchKind } from './kinds.js';

export { GAIN_KINDS, SPARSITY_SHIFT, SWITCH_KINDS, type GainKind, type SwitchKind } from './kinds.js';

/**
 * The windows of a g-cell pooling grid along a side of S: stride floor(S/g) and kernel
 * S - (g - 1) * stride, so that the g equal windows start at 0 and the last one ends at S (g equal
 * cells when g divides S; neighbours overlap otherwise). Training, inference and ONNX all use it.
 */
export function gridWindow(S: number, g: number): { kernel: number; stride: number } {
  const stride = Math.floor(S / g);
  return { kernel: S - (g - 1) * stride, stride };
}
export const LKAM_POOLS = ['max', 'avg'] as const;
export type LkamPool = (typeof LKAM_POOLS)[number];

/** The initial value of a hard or binary switch: 1, a gate that passes its block's output unchanged. */
export const EXACTLY_OPEN = 1;

export interface LkamConfig {
  /** Channels of layer i's output (what the LKAM reads). */
  readonly inChannels: number;
  /** Kernels of layer i+1 (one switch each). */
  readonly switches: number;
  /** 1x1 convolutions in the bank (k); default 4. */
  readonly bank?: number;
  readonly pool?: LkamPool;
  /** Pooling grid: 1 = global, 2 = 2x2 cells, ...; default 1. */
  readonly grid?: number;
  /**
   * `hard` = clamp(x, 0, 1), exact zeros; `sigmoid` with a threshold at inference; `binary` = 1 where
   * clamp(x, 0, 1) > 0, else 0, with the gradient of `hard` passed straight through the step (the
   * sparsity term still reads clamp(x, 0, 1)). Default hard.
   */
  readonly switchKind?: SwitchKind;
  /** Switch value under which a sigmoid switch is off at inference; default 0.5. */
  readonly threshold?: number;
  /**
   * Initial switch value (the fully connected bias, its weights zero). Default 1 for hard and binary
   * switches: exactly open on any input, so the network computes what it did without LKAMs (the clamp
   * passes its gradient at 1); 2 for sigmoid (open at inference, 0.88 in training).
   */
  readonly initOpen?: number;
  readonly rng?: Rng;
  /** Retired training options a file recorded (see RETIRED_FIELDS), written back by spec() unchanged. */
  readonly retired?: Readonly<Record<string, boolean | number>>;
}

/** What an LKAM computed for a batch: the switch values and, for hard and binary switches, the pre-activations the sparsity term reads. */
export interface Switches {
  /** [N, M] switch values. */
  readonly values: Tensor;
  /** [N, M] before the switch function. */
  readonly pre: Tensor;
}

export class LKAM extends Module {
  readonly type = 'LKAM';
  readonly inChannels: number;
  readonly switches: number;
  readonly bank: number;
  readonly pool: LkamPool;
  readonly grid: number;
  readonly switchKind: SwitchKind;
  threshold: number;
  readonly initOpen: number;
  private readonly retired: Readonly<Record<string, boolean | number>>;
  readonly conv: Conv2d;
  readonly fc: Linear;

  constructor(c: LkamConfig) {
    super();
    this.inChannels = c.inChannels;
    this.switches = c.switches;
    this.bank = c.bank ?? 4;
    this.pool = c.pool ?? 'max';
    this.grid = c.grid ?? 1;
    this.switchKind = c.switchKind ?? 'hard';
    if (!SWITCH_KINDS.includes(this.switchKind)) throw new RangeError(`LKAM: switch kind '${String(this.switchKind)}' should be one of ${SWITCH_KINDS.join(', ')}`);
    this.threshold = c.threshold ?? 0.5;
    this.initOpen = c.initOpen ?? (this.switchKind === 'sigmoid' ? 2 : EXACTLY_OPEN);
    this.retired = Object.fromEntries(Object.entries(c.retired ?? {}).filter(([k]) => (RETIRED_FIELDS as readonly string[]).includes(k)));
    for (const [what, v] of [['inChannels', c.inChannels], ['switches', c.switches], ['bank', this.bank], ['grid', this.grid]] as const) {
      if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`LKAM: ${what} ${v} should be a whole number >= 1`);
    }
    if (!LKAM_POOLS.includes(this.pool)) throw new RangeError(`LKAM: pool '${String(this.pool)}' should be one of ${LKAM_POOLS.join(', ')}`);
    if (!Number.isFinite(this.threshold) || !Number.isFinite(this.initOpen)) throw new RangeError(`LKAM: threshold ${this.threshold} and initOpen ${this.initOpen} should be finite numbers`);
    const rng = c.rng ?? globalRng();
    this.conv = new Conv2d({ inChannels: c.inChannels, outChannels: this.bank, kernel: 1, bias: true, rng });
    const features = this.bank * this.grid * this.grid;
    // Zero weights and a bias of initOpen: every switch starts at initOpen whatever the input, and learns its dependence on the input from there.
    this.fc = new Linear({ inFeatures: features, outFeatures: c.switches, init: 'zeros', rng });
    const e = engine();
    if (this.fc.bias !== null) e.backend.kernels.fill(this.fc.bias.ptr, this.fc.bias.size, this.initOpen);
  }

  /** [N, Ci, H, W] → switch values [N, M]. */
  override forward(x: Tensor): Tensor {
    return this.switchesOf(x).values;
  }

  /** [N, Ci, H, W] → the switch values and their pre-activations, [N, M] each. */
  switchesOf(x: Tensor): Switches {
    if (x.rank !== 4 || x.shape[1] !== this.inChannels) throw new ShapeError(`LKAM(${this.inChannels} → ${this.switches}): input ${x.describe()} should be [N, ${this.inChannels}, H, W]`);
    const h = this.pooled(this.conv.forward(x));
    const pre = this.fc.forward(ops.flatten(h));
    return { values: this.switchKind === 'sigmoid' ? ops.sigmoid(pre) : ops.clamp(pre, 0, 1), pre };
  }

  private pooled(h: Tensor): Tensor {
    if (this.grid === 1) return this.pool === 'max' ? ops.globalMaxPool(h) : ops.globalAvgPool(h);
    const H = h.shape[2] as number;
    const W = h.shape[3] as number;
    if (H < this.grid || W < this.grid) throw new ShapeError(`LKAM: a ${this.grid}x${this.grid} pooling grid does not fit maps of ${H}x${W}`);
    const rows = gridWindow(H, this.grid), cols = gridWindow(W, this.grid);
    const o = { kernel: [rows.kernel, cols.kernel] as [number, number], stride: [rows.stride, cols.stride] as [number, number] };
    return this.pool === 'max' ? ops.maxPool2d(h, o) : ops.avgPool2d(h, o);
  }

  /** Whether a switch value counts as on at inference. */
  isOn(value: number): boolean {
    return this.switchKind === 'sigmoid' ? value >= this.threshold : value > 0;
  }

  override children(): ReadonlyArray<readonly [string, Module]> {
    return [['conv', this.conv], ['fc', this.fc]];
  }

  override outputShape(input: Shape): Shape {
    const what = `LKAM(${this.inChannels} → ${this.switches})`;
    if (input.length !== 4 || input[1] !== this.inChannels) throw new ShapeError(`${what}: reads [N, ${this.inChannels}, H, W], its input is ${shapeString(input)}`);
    if ((input[2] as number) < this.grid || (input[3] as number) < this.grid) throw new ShapeError(`${what}: a ${this.grid}x${this.grid} pooling grid does not fit maps of ${input[2]}x${input[3]}`);
    return [input[0] as number, this.switches];
  }

  override macs(input: Shape): number {
    const [, , h, w] = input as [number, number, number, number];
    return h * w * this.inChannels * this.bank + this.bank * this.grid * this.grid * this.switches;
  }

  override spec(): ModuleSpec {
    return {
      type: this.type, inChannels: this.inChannels, switches: this.switches, bank: this.bank, pool: this.pool, grid: this.grid,
      switchKind: this.switchKind, threshold: this.threshold, initOpen: this.initOpen, ...this.retired,
    };
  }
}
/** Fields files from earlier versions carry for training options that are retired: they changed training only. */
const RETIRED_FIELDS = ['straightThrough', 'detach', 'noise'] as const;

// A retired field is checked, kept and written back unchanged; inference ignores it.
registerModule('LKAM', (r) => {
  const switchKind = r.oneOf('switchKind', SWITCH_KINDS, 'hard');
  const retired: Record<string, boolean | number> = {};
  if (r.spec['straightThrough'] !== undefined) retired['straightThrough'] = r.bool('straightThrough', false);
  if (r.spec['detach'] !== undefined) retired['detach'] = r.bool('detach', false);
  if (r.spec['noise'] !== undefined) retired['noise'] = r.number('noise', { min: 0 }, 0);
  return new LKAM({
    inChannels: r.int('inChannels'), switches: r.int('switches'), bank: r.int('bank', 1, 4), pool: r.oneOf('pool', LKAM_POOLS, 'max'),
    grid: r.int('grid', 1, 1), switchKind, threshold: r.number('threshold', {}, 0.5), initOpen: r.number('initOpen', {}, switchKind === 'sigmoid' ? 2 : 0.9),
    retired,
  });
});

/**
 * How a gate computes its block:
 * - `skip`: per image, only the kernels switched on, reading only the input channels that are on
 *   (channel-sparse kernels); batch-norm statistics over the images in which a kernel is on.
 * - `masked`: the same function computed densely (every kernel, then the off ones zeroed): the
 *   reference that `skip` must equal.
 * - `plain`: block then gate, with ordinary batch norm (any block, no skipping).
 */
export type GateMode = 'skip' | 'masked' | 'plain';

interface ConvBnRelu {
  readonly conv: Conv2d;
  readonly bn: BatchNorm2d | null;
  readonly relu: boolean;
}

/** A block (layer i+1) whose output channels are multiplied by the switches an LKAM computes from the block's input. */
export class Gated extends Module {
  readonly type = 'Gated';
  readonly block: Module;
  readonly lkam: LKAM;
  /** Sparsity gain of this gate (gain_i in the objective). */
  gain: number;
  mode: GateMode = 'skip';
  private readonly parts: ConvBnRelu | null;

  constructor(block: Module, lkam: LKAM, gain = 1) {
    super();
    if (!(lkam instanceof LKAM)) throw new TypeError(`Gated: the gate's lkam should be an LKAM, got ${(lkam as Module).type}`);
    if (!(gain >= 0 && Number.isFinite(gain))) throw new RangeError(`Gated: gain ${gain} should be a finite number >= 0`);
    this.block = block;
    this.lkam = lkam;
    this.gain = gain;
    this.parts = convBnReluParts(block);
  }

  /** Whether this gate's block can skip kernels (a conv with groups 1, then optional batch norm and ReLU). */
  get canSkip(): boolean {
    return this.parts !== null;
  }

  override forward(x: Tensor): Tensor {
    const sw = this.lkam.switchesOf(x);
    const s = sw.values;
    const N = s.shape[0] as number;
    const M = this.lkam.switches;
    const on = this.switchSet(s);
    readings?.push({ gate: this, switches: sw, on });
    // Sigmoid switches below the threshold are off at inference: their gate value becomes 0.
    const gate = this.lkam.switchKind === 'binary' ? ops.stepStraightThrough(s)
      : !this.training && this.lkam.switchKind === 'sigmoid' ? ops.channelScale(s.view([N, M, 1, 1]), engine().tensor(on.active, [N, M])).view([N, M]) : s;
    const p = this.parts;
    if (p === null || this.mode === 'plain') {
      const y = this.block.forward(x);
      if (y.rank !== 4 || y.shape[1] !== M) throw new ShapeError(`Gated: block output ${y.describe()} has ${y.shape[1]} channels, the LKAM makes ${M} switches`);
      const out = ops.channelScale(y, gate);
      out.channels = on;
      return out;
    }
    const convOpts = { stride: p.conv.stride, padding: p.conv.padding, dilation: p.conv.dilation, groups: p.conv.groups };
    let z = this.mode === 'skip'
      ? ops.conv2dSparse(x, p.conv.weight, p.conv.bias, x.channels, on, convOpts)
      : ops.conv2dMasked(x, p.conv.weight, p.conv.bias, on, convOpts);
    if (p.bn !== null) z = ops.batchNormMasked(z, p.bn, on, p.bn.training);
    if (p.relu) z = ops.relu(z);
    const out = ops.channelScale(z, gate);
    out.channels = on;
    return out;
  }

  /** On/off per image and kernel: a hard switch is on when > 0; a sigmoid one is always on in training and on above the threshold at inference. */
  private switchSet(s: Tensor): ChannelSet {
    const N = s.shape[0] as number;
    const M = s.shape[1] as number;
    const v = s.f32();
    const active = new Uint8Array(N * M);
    const soft = this.lkam.switchKind === 'sigmoid' && this.training;
    for (let i = 0; i < N * M; i++) active[i] = soft || this.lkam.isOn(v[i] as number) ? 1 : 0;
    return new ChannelSet(N, M, active);
  }

  override children(): ReadonlyArray<readonly [string, Module]> {
    return [['block', this.block], ['lkam', this.lkam]];
  }

  override outputShape(input: Shape, walk?: ShapeWalk): Shape {
    childShape(walk, 'lkam', this.lkam, input);
    const out = childShape(walk, 'block', this.block, input);
    if (out.length !== 4 || out[1] !== this.lkam.switches) throw new ShapeError(`Gated: its block gives ${shapeString(out)}, its LKAM makes ${this.lkam.switches} switches`);
    return out;
  }

  override macs(input: Shape, withGates = true): number {
    return this.block.macs(input, withGates) + (withGates ? this.lkam.macs([1, ...input.slice(1)]) : 0);
  }

  override spec(): ModuleSpec {
    return { type: this.type, gain: this.gain, block: this.block.spec(), lkam: this.lkam.spec() };
  }
}
function convBnReluParts(block: Module): ConvBnRelu | null {
  const layers = block instanceof Sequential ? block.layers : [block];
  const [conv, second, third] = layers;
  if (!(conv instanceof Conv2d) || conv.groups !== 1 || layers.length > 3) return null;
  if (layers.length === 1) return { conv, bn: null, relu: false };
  if (second instanceof BatchNorm2d) {
    if (layers.length === 2) return { conv, bn: second, relu: false };
    return third instanceof ReLU ? { conv, bn: second, relu: true } : null;
  }
  return second instanceof ReLU && layers.length === 2 ? { conv, bn: null, relu: true } : null;
}

registerModule('Gated', (r) => new Gated(r.module('block'), r.module('lkam', LKAM), r.number('gain', { min: 0 }, 1)));

/** What one gate computed in a forward: its switches and which kernels were on for each image. */
export interface GateReading {
  readonly gate: Gated;
  readonly switches: Switches;
  readonly on: ChannelSet;
}

let readings: GateReading[] | null = null;

/**
 * Runs `f` (a forward pass) and returns, with its value, what every gate computed in it, in forward
 * order: a step reads the switches it measured from here, not from the modules.
 */
export function recordGates<T>(f: () => T): { readonly value: T; readonly readings: GateReading[] } {
  const outer = readings;
  const mine: GateReading[] = [];
  readings = mine;
  try {
    return { value: f(), readings: mine };
  } finally {
    readings = outer;
  }
}

/** Every Gated module below `model`, in forward order. */
export function gates(model: Module): Gated[] {
  return model.modules().map(([, m]) => m).filter((m): m is Gated => m instanceof Gated);
}

/**
 * Sets each gate's gain: `uniform` gives every gate 1; `macs` makes a gate's gain proportional to the
 * multiply-adds one of its kernels costs (its block's MACs / its kernels); `marginal` adds what the
 * kernel's map costs the next gated conv that reads it directly (through pooling only), i.e. the
 * multiply-adds that closing the kernel saves in a chain of gated convs. Gains are normalised to mean 1,
 * so that the sparsity term counts compute rather than kernels.
 */
export function setGains(model: Module, kind: GainKind, inputShape: Shape): void {
  const gs = gates(model);
  if (kind === 'uniform') {
    for (const g of gs) g.gain = 1;
    return;
  }
  const costs = gateCosts(model, inputShape);
  const perKernel = costs.map((c) => c.blockMacs / c.gate.lkam.switches);
  if (kind === 'marginal') {
    costs.forEach((c) => {
      if (c.fedBy !== null) perKernel[c.fedBy] = (perKernel[c.fedBy] as number) + c.blockMacs / c.inChannels;
    });
  }
  const byGate = new Map(costs.map((c, i) => [c.gate, perKernel[i] as number]));
  const values = gs.map((g) => byGate.get(g) ?? 0);
  const mean = values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
  gs.forEach((g, i) => { g.gain = mean > 0 ? (values[i] as number) / mean : 1; });
}

/** What one gate costs per image, and which gate (if any) produces the maps it reads. */
export interface GateCost {
  readonly gate: Gated;
  /** Multiply-adds of the gated block with every kernel on. */
  readonly blockMacs: number;
  /** Multiply-adds of its LKAM. */
  readonly lkamMacs: number;
  readonly inChannels: number;
  /** The maps the gate reads, [1, C, H, W]. */
  readonly input: Shape;
  /** Index (in this list) of the gate whose map this block reads directly, through pooling only; null otherwise. */
  readonly fedBy: number | null;
}

/** The gates reachable down sequences and residual bodies, in forward order, with their costs at `inputShape` ([C, H, W] or [N, C, H, W]). */
export function gateCosts(model: Module, inputShape: Shape): GateCost[] {
  const out: GateCost[] = [];
  let feeding: number | null = null;
  const walk = (m: Module, shape: Shape): Shape => {
    if (m instanceof Gated) {
      const one: Shape = [1, ...shape.slice(1)];
      out.push({ gate: m, blockMacs: m.block.macs(one, false), lkamMacs: m.lkam.macs(one), inChannels: shape[1] as number, input: one, fedBy: feeding });
      feeding = out.length - 1;
      return m.outputShape(shape);
    }
    if (m instanceof Sequential) {
      let s = shape;
      for (const l of m.layers) s = walk(l, s);
      return s;
    }
    if (m instanceof MaxPool2d || m instanceof AvgPool2d) return m.outputShape(shape);
    feeding = null;
    if (m instanceof Concat) {
      for (const b of m.branches) {
        walk(b, shape);
        feeding = null;
      }
      return m.outputShape(shape);
    }
    if (m instanceof Residual) {
      walk(residualMain(m) === 'body' ? m.body : (m.shortcut as Module), shape);
      feeding = null;
    }
    return m.outputShape(shape);
  };
  walk(model, [1, ...inputShape.slice(inputShape.length - 3)]);
  return out;
}

export interface AddLkamOptions extends Omit<LkamConfig, 'inChannels' | 'switches'> {
  /**
   * Which convs to gate, by their index among all Conv2d layers in forward order (0 = the first conv,
   * which reads the input image). Default: every conv but the first.
   */
  readonly layers?: readonly number[];
  readonly gain?: number;
}

/** addLKAMs was asked to gate convs the model does not have. */
export class ConvIndexError extends RangeError {
  constructor(readonly missing: readonly number[], readonly convs: number) {
    super(`addLKAMs: conv indices ${missing.join(', ')} do not exist (the model has ${convs} convs, 0 to ${convs - 1})`);
    this.name = 'ConvIndexError';
  }
}

/** One conv of a network, as `addLKAMs({ layers })` numbers it. */
export interface ConvPlace {
  /** Dotted module path of the conv. */
  readonly path: string;
  readonly conv: Conv2d;
  /** The gate wrapping the conv, with its dotted path, if the conv is gated. */
  readonly gate: { readonly path: string; readonly module: Gated } | null;
}

/** The convs a branch computes (an LKAM's own are not counted); null is the identity. */
function branchConvs(m: Module | null): Conv2d[] {
  const out: Conv2d[] = [];
  const walk = (x: Module): void => {
    if (x instanceof LKAM) return;
    if (x instanceof Conv2d) out.push(x);
    for (const [, c] of x.children()) walk(c);
  };
  if (m !== null) walk(m);
  return out;
}

/** A shortcut by its structure: the identity, or at most one 1x1 conv (a projection, with its batch norm or pooling). */
function isShortcut(m: Module | null): boolean {
  const convs = branchConvs(m);
  const only = convs[0];
  return only === undefined || (convs.length === 1 && only.kernel[0] === 1 && only.kernel[1] === 1);
}

/**
 * Which of a residual join's two branches (null: the identity) is its main one, by structure and not
 * by order: the other is the identity or a projection (at most one 1x1 conv); when both or neither
 * are, the one with more convs, `a` on a tie.
 */
export function mainBranch(a: Module | null, b: Module | null): 'a' | 'b' {
  const sa = isShortcut(a), sb = isShortcut(b);
  if (sa !== sb) return sa ? 'b' : 'a';
  return branchConvs(b).length > branchConvs(a).length ? 'b' : 'a';
}

/** A Residual adding branches a and b (null: the identity), its body the main branch. */
export function residualOf(a: Module | null, b: Module | null): Residual {
  const [main, other] = mainBranch(a, b) === 'a' ? [a, b] : [b, a];
  if (main === null) throw new Error('residualOf: both branches are the identity');
  return new Residual(main, other);
}

/** The main branch of a residual block (see mainBranch): its body, unless the structure says its shortcut. */
export function residualMain(r: Residual): 'body' | 'shortcut' {
  return mainBranch(r.body, r.shortcut) === 'a' ? 'body' : 'shortcut';
}

/**
 * The network's convs in forward order, the numbering of `addLKAMs({ layers })`: down sequences and
 * the main branch of each residual block (residualMain; the shortcut's convs are not counted, since
 * they are never gated), every branch of a Concat, a gate counting as the conv it wraps (a gate built by
 * hand around something else is not counted); other containers (and an LKAM's own convs) are not entered.
 */
export function convsInOrder(model: Module): ConvPlace[] {
  const out: ConvPlace[] = [];
  const walk = (m: Module, path: string): void => {
    const at = (name: string): string => (path === '' ? name : `${path}.${name}`);
    if (m instanceof Sequential) m.layers.forEach((l, i) => walk(l, at(String(i))));
    else if (m instanceof Residual) {
      if (residualMain(m) === 'body') walk(m.body, at('body'));
      else walk(m.shortcut as Module, at('shortcut'));
    } else if (m instanceof Concat) m.branches.forEach((b, i) => walk(b, at(String(i))));
    else if (m instanceof Conv2d) out.push({ path, conv: m, gate: null });
    else if (m instanceof Gated) {
      const b = m.block;
      const first = b instanceof Sequential ? b.layers[0] : b;
      if (first instanceof Conv2d) out.push({ path: b instanceof Sequential ? at('block.0') : at('block'), conv: first, gate: { path, module: m } });
    }
  };
  walk(model, '');
  return out;
}

/**
 * A model in which each chosen conv (with the batch norm and ReLU that follow it) is wrapped in a
 * `Gated` module with an LKAM reading that conv's input. Inside residual blocks only the main branch
 * (residualMain, by structure) is rewritten, so the shortcut is never gated. The new model shares the original's layers and weights.
 */
export function addLKAMs(model: Module, options: AddLkamOptions = {}): Module {
  if (gates(model).length > 0) throw new Error('addLKAMs: the model already has LKAMs');
  const places = convsInOrder(model);
  const index = new Map<Module, number>(places.map((c, i) => [c.conv, i]));
  if (options.layers !== undefined) {
    const bad = options.layers.filter((i) => !Number.isInteger(i) || i < 0 || i >= places.length);
    if (bad.length > 0) throw new ConvIndexError(bad, places.length);
  }
  const chosen = (conv: Conv2d): boolean => {
    const i = index.get(conv) as number;
    return options.layers === undefined ? i > 0 : options.layers.includes(i);
  };
  const lkamFor = (conv: Conv2d): LKAM => new LKAM({ ...options, inChannels: conv.inChannels, switches: conv.outChannels });

  const rewrite = (m: Module): Module => {
    if (m instanceof Sequential) {
      const out: Module[] = [];
      const layers = m.layers;
      for (let i = 0; i < layers.length; i++) {
        const l = layers[i] as Module;
        if (l instanceof Conv2d && chosen(l)) {
          const block: Module[] = [l];
          if (layers[i + 1] instanceof BatchNorm2d) block.push(layers[++i] as Module);
          if (layers[i + 1] instanceof ReLU) block.push(layers[++i] as Module);
          out.push(new Gated(new Sequential(block), lkamFor(l), options.gain ?? 1));
          continue;
        }
        out.push(rewrite(l));
      }
      return new Sequential(out);
    }
    if (m instanceof Residual) return residualMain(m) === 'body' ? new Residual(rewrite(m.body), m.shortcut) : new Residual(m.body, rewrite(m.shortcut as Module));
    if (m instanceof Concat) return new Concat(m.branches.map(rewrite));
    if (m instanceof Conv2d && chosen(m)) return new Gated(m, lkamFor(m), options.gain ?? 1);
    return m;
  };
  return rewrite(model);
}
