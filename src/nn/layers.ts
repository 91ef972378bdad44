/** The standard layers. Each registers a builder so that a spec can recreate it. */
import { engine } from '../autograd/engine.js';
import * as ops from '../ops/index.js';
import { pooledSize } from '../ops/pool.js';
import { ShapeError, shapeString, type Shape, type Tensor } from '../tensor/tensor.js';
import { initValues, Rng, type InitKind } from './init.js';
import { childShape, Module, Stateless, type ModuleSpec, type ShapeWalk } from './module.js';
import { registerModule, type SpecReader } from './registry.js';

let defaultRng = new Rng(0);
/** Seeds the generator that layers use for initialisation when none is given (like torch.manual_seed). */
export function manualSeed(seed: number): void {
  defaultRng = new Rng(seed);
}
export function globalRng(): Rng {
  return defaultRng;
}

function toPair(v: number | readonly [number, number]): [number, number] {
  return typeof v === 'number' ? [v, v] : [v[0], v[1]];
}

/** Checks that both entries of a window field are whole numbers >= min. */
function checkPair(layer: string, what: string, v: readonly [number, number], min: number): void {
  if (!v.every((x) => Number.isSafeInteger(x) && x >= min)) throw new RangeError(`${layer}: ${what} ${JSON.stringify(v)} should be whole numbers >= ${min}`);
}

function checkCount(layer: string, what: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${layer}: ${what} ${v} should be a whole number >= 1`);
}

function rank4(layer: string, input: Shape): [number, number, number, number] {
  if (input.length !== 4) throw new ShapeError(`${layer}: input ${shapeString(input)} should be [N, C, H, W]`);
  return input as [number, number, number, number];
}

export interface Conv2dConfig {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernel: number | readonly [number, number];
  readonly stride?: number | readonly [number, number];
  readonly padding?: number | readonly [number, number];
  readonly dilation?: number | readonly [number, number];
  readonly groups?: number;
  /** Default true. */
  readonly bias?: boolean;
  readonly init?: InitKind;
  readonly rng?: Rng;
}

export class Conv2d extends Module {
  readonly type = 'Conv2d';
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernel: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly dilation: [number, number];
  readonly groups: number;
  weight: Tensor;
  bias: Tensor | null;

  constructor(c: Conv2dConfig) {
    super();
    this.inChannels = c.inChannels;
    this.outChannels = c.outChannels;
    this.kernel = toPair(c.kernel);
    this.stride = toPair(c.stride ?? 1);
    this.padding = toPair(c.padding ?? 0);
    this.dilation = toPair(c.dilation ?? 1);
    this.groups = c.groups ?? 1;
    for (const [what, v] of [['inChannels', c.inChannels], ['outChannels', c.outChannels], ['groups', this.groups]] as const) checkCount('Conv2d', what, v);
    checkPair('Conv2d', 'kernel', this.kernel, 1);
    checkPair('Conv2d', 'stride', this.stride, 1);
    checkPair('Conv2d', 'dilation', this.dilation, 1);
    checkPair('Conv2d', 'padding', this.padding, 0);
    for (const i of [0, 1]) {
      const reach = (this.dilation[i] as number) * ((this.kernel[i] as number) - 1);
      if ((this.padding[i] as number) > reach) throw new RangeError(`Conv2d: padding ${JSON.stringify(this.padding)} should be at most the kernel's reach ${reach} (dilation x (kernel - 1)) on each side`);
    }
    if (c.inChannels % this.groups !== 0 || c.outChannels % this.groups !== 0) {
      throw new RangeError(`Conv2d: ${c.inChannels} input and ${c.outChannels} output channels should both be divisible by groups=${this.groups}`);
    }
    const rng = c.rng ?? defaultRng;
    const [kh, kw] = this.kernel;
    const cg = c.inChannels / this.groups;
    const fanIn = cg * kh * kw;
    const fanOut = (c.outChannels / this.groups) * kh * kw;
    const e = engine();
    this.weight = e.parameter(initValues(c.init ?? 'kaimingNormal', c.outChannels * fanIn, fanIn, fanOut, rng), [c.outChannels, cg, kh, kw], 'weight');
    this.bias = c.bias === false ? null : e.parameter(new Float32Array(c.outChannels), [c.outChannels], 'bias');
  }

  override forward(x: Tensor): Tensor {
    return ops.conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups });
  }

  override ownParameters(): ReadonlyArray<readonly [string, Tensor]> {
    return this.bias === null ? [['weight', this.weight]] : [['weight', this.weight], ['bias', this.bias]];
  }

  override outputShape(input: Shape): Shape {
    const [, c] = rank4(this.describe(), input);
    if (c !== this.inChannels) throw new ShapeError(`${this.describe()}: reads ${this.inChannels} channel${this.inChannels === 1 ? '' : 's'}, its input ${shapeString(input)} has ${c}`);
    const g = ops.conv2dGeometry(input, this.weight.shape, { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups });
    return [g.N, g.M, g.OH, g.OW];
  }

  override macs(input: Shape): number {
    const [, , oh, ow] = this.outputShape([1, ...input.slice(1)]) as [number, number, number, number];
    return oh * ow * this.outChannels * (this.inChannels / this.groups) * this.kernel[0] * this.kernel[1];
  }

  override spec(): ModuleSpec {
    return {
      type: this.type, inChannels: this.inChannels, outChannels: this.outChannels, kernel: this.kernel, stride: this.stride,
      padding: this.padding, dilation: this.dilation, groups: this.groups, bias: this.bias !== null,
    };
  }

  describe(): string {
    return `Conv2d(${this.inChannels} → ${this.outChannels})`;
  }

  static fromSpec(r: SpecReader): Conv2d {
    return new Conv2d({
      inChannels: r.int('inChannels'), outChannels: r.int('outChannels'), kernel: r.pair('kernel'), stride: r.pair('stride', 1, 1),
      padding: r.pair('padding', 0, 0), dilation: r.pair('dilation', 1, 1), groups: r.int('groups', 1, 1), bias: r.bool('bias', true),
    });
  }
}
registerModule('Conv2d', Conv2d.fromSpec);

export class BatchNorm2d extends Module {
  readonly type = 'BatchNorm2d';
  readonly channels: number;
  readonly momentum: number;
  readonly eps: number;
  readonly gamma: Tensor;
  readonly beta: Tensor;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;

  constructor(channels: number, options: { momentum?: number; eps?: number } = {}) {
    super();
    checkCount('BatchNorm2d', 'channels', channels);
    this.channels = channels;
    this.momentum = options.momentum ?? 0.1;
    this.eps = options.eps ?? 1e-5;
    if (!(this.momentum >= 0 && this.momentum <= 1)) throw new RangeError(`BatchNorm2d: momentum ${this.momentum} should be in [0, 1]`);
    if (!(this.eps > 0 && Number.isFinite(this.eps))) throw new RangeError(`BatchNorm2d: eps ${this.eps} should be a finite number > 0`);
    const e = engine();
    this.gamma = e.parameter(new Float32Array(channels).fill(1), [channels], 'gamma');
    this.beta = e.parameter(new Float32Array(channels), [channels], 'beta');
    this.runningMean = e.tensor(new Float32Array(channels), [channels], 'float32', e.persistent);
    this.runningVar = e.tensor(new Float32Array(channels).fill(1), [channels], 'float32', e.persistent);
    this.runningMean.name = 'runningMean';
    this.runningVar.name = 'runningVar';
  }

  override forward(x: Tensor): Tensor {
    if (x.shape[1] !== this.channels) throw new ShapeError(`BatchNorm2d(${this.channels}): input ${x.describe()} has ${x.shape[1]} channels`);
    return ops.batchNorm(x, this, this.training);
  }

  override ownParameters(): ReadonlyArray<readonly [string, Tensor]> {
    return [['gamma', this.gamma], ['beta', this.beta]];
  }

  override ownBuffers(): ReadonlyArray<readonly [string, Tensor]> {
    return [['runningMean', this.runningMean], ['runningVar', this.runningVar]];
  }

  override outputShape(input: Shape): Shape {
    if (input.length < 2 || input[1] !== this.channels) throw new ShapeError(`BatchNorm2d(${this.channels}): its input ${shapeString(input)} has ${input[1] ?? 'no'} channels`);
    return input;
  }

  override spec(): ModuleSpec {
    return { type: this.type, channels: this.channels, momentum: this.momentum, eps: this.eps };
  }
}
registerModule('BatchNorm2d', (r) => new BatchNorm2d(r.int('channels'), { momentum: r.number('momentum', { min: 0, max: 1 }, 0.1), eps: r.number('eps', { min: 0, above: true }, 1e-5) }));

export class ReLU extends Stateless {
  readonly type = 'ReLU';
  override forward(x: Tensor): Tensor {
    return ops.relu(x);
  }
  override spec(): ModuleSpec {
    return { type: this.type };
  }
}
registerModule('ReLU', () => new ReLU());

export interface PoolLayerOptions {
  /** Output size rounded up, so a last partial window is pooled (the window must start inside the input or its leading padding). Default false. */
  readonly ceilMode?: boolean;
  /** Average pooling: padded cells count in the divisor. Default true, as PyTorch. */
  readonly countIncludePad?: boolean;
}

/** A 2-D pooling window: kernel, stride (default the kernel) and symmetric padding. */
abstract class Pool2dLayer extends Module {
  readonly kernel: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly ceilMode: boolean;
  readonly countIncludePad: boolean;
  constructor(kernel: number | readonly [number, number], stride?: number | readonly [number, number], padding: number | readonly [number, number] = 0, options: PoolLayerOptions = {}) {
    super();
    this.kernel = toPair(kernel);
    this.stride = toPair(stride ?? kernel);
    this.padding = toPair(padding);
    checkPair(this.constructor.name, 'kernel', this.kernel, 1);
    checkPair(this.constructor.name, 'stride', this.stride, 1);
    checkPair(this.constructor.name, 'padding', this.padding, 0);
    if (this.padding.some((p, i) => p > Math.floor((this.kernel[i] as number) / 2))) {
      throw new RangeError(`${this.constructor.name}: padding ${JSON.stringify(this.padding)} should be at most half the kernel ${JSON.stringify(this.kernel)}`);
    }
    this.ceilMode = options.ceilMode ?? false;
    this.countIncludePad = options.countIncludePad ?? true;
  }
  protected get window(): ops.Pool2dOptions {
    return { kernel: this.kernel, stride: this.stride, padding: this.padding, ceilMode: this.ceilMode, countIncludePad: this.countIncludePad };
  }
  override outputShape(input: Shape): Shape {
    return poolOut(this.type, input, this.kernel, this.stride, this.padding, this.ceilMode);
  }
  override spec(): ModuleSpec {
    return {
      type: this.type, kernel: this.kernel, stride: this.stride, padding: this.padding,
      ...(this.ceilMode ? { ceilMode: true } : {}), ...(this.countIncludePad ? {} : { countIncludePad: false }),
    };
  }
}

export class MaxPool2d extends Pool2dLayer {
  readonly type = 'MaxPool2d';
  override forward(x: Tensor): Tensor {
    return ops.maxPool2d(x, this.window);
  }
}
registerModule('MaxPool2d', (r) => new MaxPool2d(...poolFields(r)));

export class AvgPool2d extends Pool2dLayer {
  readonly type = 'AvgPool2d';
  override forward(x: Tensor): Tensor {
    return ops.avgPool2d(x, this.window);
  }
}
registerModule('AvgPool2d', (r) => new AvgPool2d(...poolFields(r)));

function poolFields(r: SpecReader): [[number, number], [number, number], [number, number], PoolLayerOptions] {
  const kernel = r.pair('kernel');
  return [kernel, r.pair('stride', 1, kernel), r.pair('padding', 0, 0), { ceilMode: r.bool('ceilMode', false), countIncludePad: r.bool('countIncludePad', true) }];
}

function poolOut(type: string, input: Shape, k: [number, number], s: [number, number], p: [number, number], ceil: boolean): Shape {
  const [n, c, h, w] = rank4(type, input);
  const oh = pooledSize(h, k[0], s[0], p[0], ceil);
  const ow = pooledSize(w, k[1], s[1], p[1], ceil);
  if (oh < 1 || ow < 1) throw new ShapeError(`${type}: a ${k[0]}x${k[1]} window (padding ${p[0]}x${p[1]}) does not fit maps of ${h}x${w}`);
  return [n, c, oh, ow];
}

/** [N, C, H, W] → [N, C]. */
export class GlobalAvgPool extends Module {
  readonly type = 'GlobalAvgPool';
  override forward(x: Tensor): Tensor {
    return ops.globalAvgPool(x);
  }
  override outputShape(input: Shape): Shape {
    const [n, c] = rank4(this.type, input);
    return [n, c];
  }
  override spec(): ModuleSpec {
    return { type: this.type };
  }
}
registerModule('GlobalAvgPool', () => new GlobalAvgPool());

/** [N, C, H, W] → [N, C]. */
export class GlobalMaxPool extends Module {
  readonly type = 'GlobalMaxPool';
  override forward(x: Tensor): Tensor {
    return ops.globalMaxPool(x);
  }
  override outputShape(input: Shape): Shape {
    const [n, c] = rank4(this.type, input);
    return [n, c];
  }
  override spec(): ModuleSpec {
    return { type: this.type };
  }
}
registerModule('GlobalMaxPool', () => new GlobalMaxPool());

export class Flatten extends Module {
  readonly type = 'Flatten';
  override forward(x: Tensor): Tensor {
    return ops.flatten(x);
  }
  override outputShape(input: Shape): Shape {
    if (input.length < 2) throw new ShapeError(`Flatten: input ${shapeString(input)} should be [N, ...]`);
    return [input[0] as number, input.slice(1).reduce((a, b) => a * b, 1)];
  }
  override spec(): ModuleSpec {
    return { type: this.type };
  }
}
registerModule('Flatten', () => new Flatten());

export class Dropout extends Stateless {
  readonly type = 'Dropout';
  readonly p: number;
  /** Draws each forward's mask seed; save its state to resume a run bit-exactly. */
  readonly rng: Rng;
  constructor(p: number, seed = 0) {
    super();
    if (!(p >= 0 && p < 1)) throw new RangeError(`Dropout: p ${p} should be in [0, 1)`);
    this.p = p;
    this.rng = new Rng(seed);
  }
  override forward(x: Tensor): Tensor {
    if (!this.training || this.p === 0) return x;
    return ops.dropout(x, this.p, this.rng.nextUint32());
  }
  override spec(): ModuleSpec {
    return { type: this.type, p: this.p };
  }
}
registerModule('Dropout', (r) => new Dropout(r.number('p', { min: 0, max: 1, below: true }, 0)));

export interface LinearConfig {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly bias?: boolean;
  readonly init?: InitKind | 'default';
  readonly rng?: Rng;
}

export class Linear extends Module {
  readonly type = 'Linear';
  readonly inFeatures: number;
  readonly outFeatures: number;
  weight: Tensor;
  bias: Tensor | null;
  constructor(c: LinearConfig) {
    super();
    checkCount('Linear', 'inFeatures', c.inFeatures);
    checkCount('Linear', 'outFeatures', c.outFeatures);
    this.inFeatures = c.inFeatures;
    this.outFeatures = c.outFeatures;
    const rng = c.rng ?? defaultRng;
    const e = engine();
    const n = c.inFeatures * c.outFeatures;
    let w: Float32Array;
    if (c.init === undefined || c.init === 'default') {
      // PyTorch's default: uniform in ±1/sqrt(fan_in) for weight and bias.
      const bound = 1 / Math.sqrt(c.inFeatures);
      w = new Float32Array(n);
      for (let i = 0; i < n; i++) w[i] = rng.uniform(-bound, bound);
    } else {
      w = initValues(c.init, n, c.inFeatures, c.outFeatures, rng);
    }
    this.weight = e.parameter(w, [c.outFeatures, c.inFeatures], 'weight');
    if (c.bias === false) this.bias = null;
    else {
      const bound = 1 / Math.sqrt(c.inFeatures);
      const b = new Float32Array(c.outFeatures);
      for (let i = 0; i < b.length; i++) b[i] = rng.uniform(-bound, bound);
      this.bias = e.parameter(b, [c.outFeatures], 'bias');
    }
  }
  override forward(x: Tensor): Tensor {
    return ops.linear(x.rank === 2 ? x : ops.flatten(x), this.weight, this.bias);
  }
  override ownParameters(): ReadonlyArray<readonly [string, Tensor]> {
    return this.bias === null ? [['weight', this.weight]] : [['weight', this.weight], ['bias', this.bias]];
  }
  override outputShape(input: Shape): Shape {
    const features = input.slice(1).reduce((a, b) => a * b, 1);
    if (input.length < 2 || features !== this.inFeatures) throw new ShapeError(`Linear(${this.inFeatures} → ${this.outFeatures}): its input ${shapeString(input)} has ${features} features`);
    return [input[0] as number, this.outFeatures];
  }
  override macs(): number {
    return this.inFeatures * this.outFeatures;
  }
  override spec(): ModuleSpec {
    return { type: this.type, inFeatures: this.inFeatures, outFeatures: this.outFeatures, bias: this.bias !== null };
  }
}
registerModule('Linear', (r) => new Linear({ inFeatures: r.int('inFeatures'), outFeatures: r.int('outFeatures'), bias: r.bool('bias', true) }));

export class Sequential extends Module {
  readonly type = 'Sequential';
  readonly layers: Module[];
  constructor(layers: Module[]) {
    super();
    this.layers = layers;
  }
  override forward(x: Tensor): Tensor {
    let h = x;
    for (const l of this.layers) h = l.forward(h);
    return h;
  }
  override children(): ReadonlyArray<readonly [string, Module]> {
    return this.layers.map((l, i) => [String(i), l] as const);
  }
  override outputShape(input: Shape, walk?: ShapeWalk): Shape {
    let s = input;
    for (const [i, l] of this.layers.entries()) s = childShape(walk, `layers[${i}]`, l, s);
    return s;
  }
  override macs(input: Shape, withGates = true): number {
    let s: Shape = [1, ...input.slice(1)];
    let total = 0;
    for (const l of this.layers) {
      total += l.macs(s, withGates);
      s = l.outputShape(s);
    }
    return total;
  }
  override spec(): ModuleSpec {
    return { type: this.type, layers: this.layers.map((l) => l.spec()) };
  }
}
registerModule('Sequential', (r) => new Sequential(r.modules('layers')));

/** body(x) + shortcut(x), the shortcut being the identity when absent. */
export class Residual extends Module {
  readonly type = 'Residual';
  readonly body: Module;
  readonly shortcut: Module | null;
  constructor(body: Module, shortcut: Module | null = null) {
    super();
    this.body = body;
    this.shortcut = shortcut;
  }
  override forward(x: Tensor): Tensor {
    const a = this.body.forward(x);
    const b = this.shortcut === null ? x : this.shortcut.forward(x);
    return ops.add(a, b);
  }
  override children(): ReadonlyArray<readonly [string, Module]> {
    return this.shortcut === null ? [['body', this.body]] : [['body', this.body], ['shortcut', this.shortcut]];
  }
  override outputShape(input: Shape, walk?: ShapeWalk): Shape {
    const a = childShape(walk, 'body', this.body, input);
    const b = this.shortcut === null ? input : childShape(walk, 'shortcut', this.shortcut, input);
    if (a.length !== b.length || a.some((d, i) => d !== b[i])) throw new ShapeError(`Residual: its body gives ${shapeString(a)} but its ${this.shortcut === null ? 'identity shortcut' : 'shortcut'} gives ${shapeString(b)}`);
    return a;
  }
  override macs(input: Shape, withGates = true): number {
    return this.body.macs(input, withGates) + (this.shortcut?.macs(input, withGates) ?? 0);
  }
  override spec(): ModuleSpec {
    return { type: this.type, body: this.body.spec(), shortcut: this.shortcut?.spec() ?? null };
  }
}
registerModule('Residual', (r) => new Residual(r.module('body'), r.child('shortcut') === null || r.child('shortcut') === undefined ? null : r.module('shortcut')));
