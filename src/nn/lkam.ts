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
import { SPARSITY_SHIFT, SWITCH_KINDS, type GainKind, type SaturatedKind, type SwitchKind } from './kinds.js';

export { GAIN_KINDS, SATURATED_KINDS, SPARSITY_SHIFT, SWITCH_KINDS, type GainKind, type SaturatedKind, type SwitchKind } from './kinds.js';

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
  /**
   * Dead hard switches. A hard switch whose pre-activation is below 0 for every input gets no gradient
   * and stays off for good (false, the default: it is pruned, and training skips its kernel). With
   * true, the clamp's gradient passes straight through below 0, so the task loss can reopen it; that
   * needs the kernels of off switches computed during training (no skipping while training).
   */
  readonly straightThrough?: boolean;
  /**
   * Read layer i's maps as constants: the LKAM's own parameters still learn, but neither the task loss
   * nor the sparsity term reaches layer i (and the layers before it) through the LKAM, so the sparsity
   * term cannot shape the features the network computes. Default false (the LKAM is an ordinary part of
   * the graph).
   */
  readonly detach?: boolean;
  /**
   * Scale of logistic noise added to a hard or binary switch's pre-activation in training (0, the
   * default: none). A switch is then on with probability sigmoid(pre / noise), and the sparsity term
   * counts that probability (the expected number of open kernels, an L0 penalty) instead of the switch
   * values, so it closes kernels rather than shrinking the ones kept; inference is the plain clamp.
   */
  readonly noise?: number;
  readonly rng?: Rng;
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
  readonly straightThrough: boolean;
  readonly detach: boolean;
  readonly noise: number;
  readonly conv: Conv2d;
  readonly fc: Linear;
  /** The switch values of the last forward ([N, M]), kept for the sparsity term and for telemetry. */
  lastSwitches: Tensor | null = null;
  /** The pre-activations of the last forward ([N, M]), without noise: the sparsity term reads hard switches from them. */
  lastPre: Tensor | null = null;
  /** Draws the training noise (the generator the LKAM was initialised from, so checkpoints that save it resume exactly). */
  private readonly rng: Rng;

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
    this.straightThrough = c.straightThrough ?? false;
    this.detach = c.detach ?? false;
    this.noise = c.noise ?? 0;
    if (!(this.noise >= 0 && Number.isFinite(this.noise))) throw new RangeError(`LKAM: noise ${this.noise} should be a finite number >= 0`);
    if (this.noise > 0 && this.switchKind === 'sigmoid') throw new RangeError("LKAM: noise applies to 'hard' and 'binary' switches, not 'sigmoid'");
    for (const [what, v] of [['inChannels', c.inChannels], ['switches', c.switches], ['bank', this.bank], ['grid', this.grid]] as const) {
      if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`LKAM: ${what} ${v} should be a whole number >= 1`);
    }
    if (!LKAM_POOLS.includes(this.pool)) throw new RangeError(`LKAM: pool '${String(this.pool)}' should be one of ${LKAM_POOLS.join(', ')}`);
    if (!Number.isFinite(this.threshold) || !Number.isFinite(this.initOpen)) throw new RangeError(`LKAM: threshold ${this.threshold} and initOpen ${this.initOpen} should be finite numbers`);
    const rng = c.rng ?? globalRng();
    this.rng = rng;
    this.conv = new Conv2d({ inChannels: c.inChannels, outChannels: this.bank, kernel: 1, bias: true, rng });
    const features = this.bank * this.grid * this.grid;
    // Zero weights and a bias of initOpen: every switch starts at initOpen whatever the input, and learns its dependence on the input from there.
    this.fc = new Linear({ inFeatures: features, outFeatures: c.switches, init: 'zeros', rng });
    const e = engine();
    if (this.fc.bias !== null) e.backend.kernels.fill(this.fc.bias.ptr, this.fc.bias.size, this.initOpen);
  }

  /** [N, Ci, H, W] → switch values [N, M]. */
  override forward(x: Tensor): Tensor {
    if (x.rank !== 4 || x.shape[1] !== this.inChannels) throw new ShapeError(`LKAM(${this.inChannels} → ${this.switches}): input ${x.describe()} should be [N, ${this.inChannels}, H, W]`);
    // A view is a new tensor over the same memory that the tape does not link to x.
    let h = this.conv.forward(this.detach ? x.view(x.shape) : x);
    h = this.pooled(h);
    const pre = this.fc.forward(ops.flatten(h));
    const noisy = this.training && this.noise > 0 ? ops.add(pre, this.logisticNoise(pre.shape)) : pre;
    const s = this.switchKind === 'sigmoid' ? ops.sigmoid(noisy) : ops.clamp(noisy, 0, 1, this.straightThrough);
    this.lastSwitches = s;
    this.lastPre = pre;
    return s;
  }

  /** noise · log(u / (1 - u)), u uniform in (0, 1): a logistic sample per switch, a constant for the tape. */
  private logisticNoise(shape: Shape): Tensor {
    const n = shape.reduce((a, b) => a * b, 1);
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const u = (this.rng.nextUint32() + 0.5) / 4294967296;
      v[i] = this.noise * Math.log(u / (1 - u));
    }
    return engine().tensor(v, shape);
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
      switchKind: this.switchKind, threshold: this.threshold, initOpen: this.initOpen, straightThrough: this.straightThrough,
      ...(this.detach ? { detach: true } : {}), ...(this.noise > 0 ? { noise: this.noise } : {}),
    };
  }
}
registerModule('LKAM', (r) => {
  const switchKind = r.oneOf('switchKind', SWITCH_KINDS, 'hard');
  return new LKAM({
    inChannels: r.int('inChannels'), switches: r.int('switches'), bank: r.int('bank', 1, 4), pool: r.oneOf('pool', LKAM_POOLS, 'max'),
    grid: r.int('grid', 1, 1), switchKind, threshold: r.number('threshold', {}, 0.5), initOpen: r.number('initOpen', {}, switchKind === 'sigmoid' ? 2 : 0.9),
    straightThrough: r.bool('straightThrough', false), detach: r.bool('detach', false), noise: r.number('noise', { min: 0 }, 0),
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
  /** Every kernel on and the LKAM not run: the network's dense path (the teacher in in-place distillation). */
  open = false;
  /** Which kernels were on for each image in the last forward. */
  lastOn: ChannelSet | null = null;
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
    if (this.open) {
      this.lastOn = null;
      return this.block.forward(x);
    }
    const s = this.lkam.forward(x);
    const N = s.shape[0] as number;
    const M = this.lkam.switches;
    const on = this.switchSet(s);
    this.lastOn = on;
    // Sigmoid switches below the threshold are off at inference: their gate value becomes 0.
    const gate = this.lkam.switchKind === 'binary' ? ops.stepStraightThrough(s)
      : !this.training && this.lkam.switchKind === 'sigmoid' ? ops.channelScale(s.view([N, M, 1, 1]), engine().tensor(on.active, [N, M])).view([N, M]) : s;
    const p = this.parts;
    // A straight-through switch needs the output of every kernel, off or not, for its gradient.
    const computeAll = this.training && this.lkam.straightThrough && this.lkam.switchKind !== 'sigmoid';
    if (p === null || this.mode === 'plain' || computeAll) {
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
  const perKernel = new Map<Gated, number>();
  // The gate whose map the next layer reads directly, while only pooling lies in between.
  let feeding: Gated | null = null;
  const walk = (m: Module, shape: Shape): Shape => {
    if (m instanceof Gated) {
      const block = m.block.macs([1, ...shape.slice(1)], false);
      perKernel.set(m, block / m.lkam.switches);
      if (kind === 'marginal' && feeding !== null) perKernel.set(feeding, (perKernel.get(feeding) ?? 0) + block / (shape[1] as number));
      feeding = m;
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
      return m.outputShape(shape);
    }
    return m.outputShape(shape);
  };
  walk(model, [1, ...inputShape.slice(inputShape.length - 3)]);
  const values = gs.map((g) => perKernel.get(g) ?? 0);
  const mean = values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
  gs.forEach((g, i) => { g.gain = mean > 0 ? (values[i] as number) / mean : 1; });
}

/**
 * The sparsity term: Σ over gates of gain_i / (2 m_i) · Σ switch values, averaged over the batch
 * (m_i switches per image). Reads the switches of the last forward. `weight` is one number for every
 * gate, or one per gate in forward order (per-gate controllers, `--keep`).
 *
 * With `power` p < 1 each switch value s enters as (s + SPARSITY_SHIFT)^p - SPARSITY_SHIFT^p instead:
 * a concave penalty, steepest near 0, that closes weak switches (which cost a kernel's full
 * multiply-adds while passing little of its output) rather than shrinking every switch alike, so that
 * the term tracks the count of open kernels, i.e. the compute. It pushes hard switches out of the
 * clamp's linear range, to exactly 0 or 1; with `saturated` 'keep' those above 1 get no gradient, and
 * the pattern freezes into a static pruning that a compute budget can no longer move.
 *
 * `saturated` (hard and binary switches): 'pull', the default, passes this term's gradient through the
 * clamp's upper bound too, so a switch whose pre-activation rose above 1 (where the task loss gets no
 * gradient either) is drawn back into the linear range and can still be closed; 'keep' leaves it
 * saturated, open for good.
 *
 * Noisy switches (an LKAM with `noise` > 0) enter as the probability that each is on,
 * sigmoid(pre / noise), whatever `power` and `saturated` say.
 */
export function sparsityLoss(model: Module, weight: number | readonly number[] = 1, power = 1, saturated: SaturatedKind = 'pull'): Tensor | null {
  if (!(power > 0 && power <= 1)) throw new RangeError(`sparsityLoss: power ${power} should be in (0, 1]`);
  const gs = gates(model);
  if (typeof weight !== 'number' && weight.length !== gs.length) throw new RangeError(`sparsityLoss: ${weight.length} weights for ${gs.length} gates (one per gate, in forward order)`);
  let total: Tensor | null = null;
  for (const [i, g] of gs.entries()) {
    const s = g.lkam.lastSwitches;
    if (s === null) continue;
    const n = s.shape[0] as number;
    const m = s.shape[1] as number;
    const pre = g.lkam.lastPre;
    let values: Tensor;
    if (g.lkam.noise > 0 && pre !== null) {
      // Noisy switches count the probability that each is on, P(pre + noise · logistic > 0).
      values = ops.sigmoid(ops.scale(pre, 1 / g.lkam.noise));
    } else {
      // Same values as s; with 'pull' the gradient also reaches hard switches saturated above 1.
      const read = saturated === 'pull' && g.lkam.switchKind !== 'sigmoid' && pre !== null ? ops.clamp(pre, 0, 1, g.lkam.straightThrough, true) : s;
      values = power === 1 ? read : ops.powShifted(read, power, SPARSITY_SHIFT);
    }
    const w = typeof weight === 'number' ? weight : (weight[i] as number);
    const term = ops.scale(ops.sum(values), (w * g.gain) / (2 * m * Math.max(1, n)));
    total = total === null ? term : ops.add(total, term);
  }
  return total;
}

/**
 * The batch-shaping term: weight · the mean over gates of ops.batchShaping of the last forward's
 * switches against a Beta(a, b) prior. With a U-shaped prior (default Beta(0.6, 0.4)) each switch is
 * pushed to be open for some images of a batch and shut for others: per-input selection rather than
 * one value for every image (static pruning or a uniform scale).
 */
export function batchShapingLoss(model: Module, weight: number, prior: readonly [number, number] = [0.6, 0.4]): Tensor | null {
  let total: Tensor | null = null;
  const gs = gates(model).filter((g) => g.lkam.lastSwitches !== null);
  for (const g of gs) {
    const term = ops.scale(ops.batchShaping(g.lkam.lastSwitches as Tensor, prior[0], prior[1]), weight / gs.length);
    total = total === null ? term : ops.add(total, term);
  }
  return total;
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
