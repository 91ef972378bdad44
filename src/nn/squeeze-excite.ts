/**
 * Squeeze-and-excitation: the channel means of x pass through two 1x1 convolutions (a squeeze to
 * `squeeze` channels, an activation, back to the input's channels) and a gate function, and scale
 * x's channels. torchvision's SqueezeExcitation (EfficientNet, MobileNetV3) is this layer.
 */
import * as ops from '../ops/index.js';
import { ShapeError, shapeString, type Shape, type Tensor } from '../tensor/tensor.js';
import { Conv2d } from './layers.js';
import { Module, type ModuleSpec } from './module.js';
import { registerModule } from './registry.js';

export const SE_ACTIVATIONS = ['relu', 'silu'] as const;
export type SeActivation = (typeof SE_ACTIVATIONS)[number];
export const SE_GATES = ['sigmoid', 'hardSigmoid'] as const;
export type SeGate = (typeof SE_GATES)[number];

export interface SqueezeExciteConfig {
  readonly channels: number;
  readonly squeeze: number;
  /** Between the two convolutions; default relu. */
  readonly activation?: SeActivation;
  /** Turns the second convolution's output into channel scales; default sigmoid (hardSigmoid is PyTorch's x / 6 + 0.5, clamped). */
  readonly gate?: SeGate;
}

export class SqueezeExcite extends Module {
  readonly type = 'SqueezeExcite';
  readonly channels: number;
  readonly squeeze: number;
  readonly activation: SeActivation;
  readonly gate: SeGate;
  readonly fc1: Conv2d;
  readonly fc2: Conv2d;

  constructor(c: SqueezeExciteConfig) {
    super();
    this.channels = c.channels;
    this.squeeze = c.squeeze;
    this.activation = c.activation ?? 'relu';
    this.gate = c.gate ?? 'sigmoid';
    if (!SE_ACTIVATIONS.includes(this.activation)) throw new RangeError(`SqueezeExcite: activation '${String(this.activation)}' should be one of ${SE_ACTIVATIONS.join(', ')}`);
    if (!SE_GATES.includes(this.gate)) throw new RangeError(`SqueezeExcite: gate '${String(this.gate)}' should be one of ${SE_GATES.join(', ')}`);
    this.fc1 = new Conv2d({ inChannels: c.channels, outChannels: c.squeeze, kernel: 1 });
    this.fc2 = new Conv2d({ inChannels: c.squeeze, outChannels: c.channels, kernel: 1 });
  }

  /** The channel scales [N, C] for x. */
  scales(x: Tensor): Tensor {
    const N = x.shape[0] as number;
    const pooled = ops.reshape(ops.globalAvgPool(x), [N, this.channels, 1, 1]);
    const h = this.fc1.forward(pooled);
    const a = this.activation === 'relu' ? ops.relu(h) : ops.pointwise(h, ops.SILU);
    const z = this.fc2.forward(a);
    const s = this.gate === 'sigmoid' ? ops.sigmoid(z) : ops.pointwise(z, ops.hardSigmoidFn(1 / 6, 0.5));
    return ops.reshape(s, [N, this.channels]);
  }

  override forward(x: Tensor): Tensor {
    if (x.rank !== 4 || x.shape[1] !== this.channels) throw new ShapeError(`SqueezeExcite(${this.channels}): input ${x.describe()} should be [N, ${this.channels}, H, W]`);
    const y = ops.channelScale(x, this.scales(x));
    y.channels = x.channels;
    return y;
  }

  override children(): ReadonlyArray<readonly [string, Module]> {
    return [['fc1', this.fc1], ['fc2', this.fc2]];
  }

  override outputShape(input: Shape): Shape {
    if (input.length !== 4 || input[1] !== this.channels) throw new ShapeError(`SqueezeExcite(${this.channels}): its input ${shapeString(input)} should be [N, ${this.channels}, H, W]`);
    return input;
  }

  override macs(): number {
    return 2 * this.channels * this.squeeze;
  }

  override spec(): ModuleSpec {
    return { type: this.type, channels: this.channels, squeeze: this.squeeze, activation: this.activation, gate: this.gate };
  }
}
registerModule('SqueezeExcite', (r) => new SqueezeExcite({
  channels: r.int('channels'), squeeze: r.int('squeeze'), activation: r.oneOf('activation', SE_ACTIVATIONS, 'relu'), gate: r.oneOf('gate', SE_GATES, 'sigmoid'),
}));
