/** Layer normalisation over channels (ConvNeXt's LayerNorm, written there between NCHW/NHWC permutes). */
import { engine } from '../autograd/engine.js';
import * as ops from '../ops/index.js';
import { ShapeError, shapeString, type Shape, type Tensor } from '../tensor/tensor.js';
import { Module, type ModuleSpec } from './module.js';
import { registerModule } from './registry.js';

export class ChannelLayerNorm extends Module {
  readonly type = 'ChannelLayerNorm';
  readonly channels: number;
  readonly eps: number;
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(channels: number, eps = 1e-6) {
    super();
    if (!Number.isInteger(channels) || channels < 1) throw new RangeError(`ChannelLayerNorm: channels ${channels} should be a whole number >= 1`);
    if (!(eps > 0) || !Number.isFinite(eps)) throw new RangeError(`ChannelLayerNorm: eps ${eps} should be a finite number > 0`);
    this.channels = channels;
    this.eps = eps;
    const e = engine();
    this.weight = e.parameter(new Float32Array(channels).fill(1), [channels], 'weight');
    this.bias = e.parameter(new Float32Array(channels), [channels], 'bias');
  }
  override forward(x: Tensor): Tensor {
    return ops.channelLayerNorm(x, this.weight, this.bias, this.eps);
  }
  override ownParameters(): ReadonlyArray<readonly [string, Tensor]> {
    return [['weight', this.weight], ['bias', this.bias]];
  }
  override outputShape(input: Shape): Shape {
    if (input.length < 2 || input[1] !== this.channels) throw new ShapeError(`ChannelLayerNorm(${this.channels}): its input ${shapeString(input)} should have ${this.channels} channels`);
    return input;
  }
  override spec(): ModuleSpec {
    return { type: this.type, channels: this.channels, eps: this.eps };
  }
}
registerModule('ChannelLayerNorm', (r) => new ChannelLayerNorm(r.int('channels'), r.number('eps', { min: 0, above: true }, 1e-6)));
