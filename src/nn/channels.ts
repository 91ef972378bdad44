/**
 * Channel selection: y[:, c] = x[:, order[c]]. A channel slice (ShuffleNet's split) and a channel
 * shuffle (groups of channels interleaved) are both selections; pruning keeps the selection exact.
 */
import * as ops from '../ops/index.js';
import { ShapeError, shapeString, type Shape, type Tensor } from '../tensor/tensor.js';
import { Module, type ModuleSpec } from './module.js';
import { registerModule } from './registry.js';

export class ChannelSelect extends Module {
  readonly type = 'ChannelSelect';
  /** Reads this many channels. */
  readonly inChannels: number;
  readonly order: readonly number[];
  constructor(inChannels: number, order: readonly number[]) {
    super();
    if (!Number.isInteger(inChannels) || inChannels < 1) throw new RangeError(`ChannelSelect: inChannels ${inChannels} should be a whole number >= 1`);
    if (order.length === 0 || order.some((c) => !Number.isInteger(c) || c < 0 || c >= inChannels)) throw new RangeError(`ChannelSelect: order should list channels in [0, ${inChannels})`);
    this.inChannels = inChannels;
    this.order = [...order];
  }

  /** Channels [start, end). */
  static slice(inChannels: number, start: number, end: number): ChannelSelect {
    return new ChannelSelect(inChannels, Array.from({ length: end - start }, (_, i) => start + i));
  }

  /** As torch's channel_shuffle: channels viewed as [groups, C / groups], transposed, flattened. */
  static shuffle(channels: number, groups: number): ChannelSelect {
    const per = channels / groups;
    if (!Number.isInteger(per)) throw new RangeError(`ChannelSelect: ${channels} channels do not split into ${groups} groups`);
    return new ChannelSelect(channels, Array.from({ length: channels }, (_, c) => (c % groups) * per + Math.floor(c / groups)));
  }

  override forward(x: Tensor): Tensor {
    return ops.selectChannels(x, this.order);
  }

  override outputShape(input: Shape): Shape {
    if (input.length < 2 || input[1] !== this.inChannels) throw new ShapeError(`ChannelSelect: its input ${shapeString(input)} should have ${this.inChannels} channels`);
    return [input[0] as number, this.order.length, ...input.slice(2)];
  }

  override spec(): ModuleSpec {
    return { type: this.type, inChannels: this.inChannels, order: [...this.order] };
  }
}
registerModule('ChannelSelect', (r) => {
  const inChannels = r.int('inChannels');
  const order = r.child('order');
  if (!Array.isArray(order) || order.length === 0 || order.length > 1_000_000 || order.some((c) => typeof c !== 'number' || !Number.isInteger(c) || c < 0 || c >= inChannels)) {
    r.fail('order', `should be a non-empty list of channels in [0, ${inChannels})`);
  }
  return new ChannelSelect(inChannels, order as number[]);
});
