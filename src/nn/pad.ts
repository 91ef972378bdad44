/** Spatial padding as a layer (ONNX Pad, PyTorch's ZeroPad2d, ConstantPad2d, ReflectionPad2d, ReplicationPad2d). */
import * as ops from '../ops/index.js';
import { ShapeError, shapeString, type Shape, type Tensor } from '../tensor/tensor.js';
import { Stateless, type ModuleSpec } from './module.js';
import { registerModule } from './registry.js';

export class Pad2d extends Stateless {
  readonly type = 'Pad2d';
  /** [top, left, bottom, right]. */
  readonly pads: readonly [number, number, number, number];
  readonly mode: ops.PadMode;
  readonly value: number;
  constructor(pads: readonly [number, number, number, number], mode: ops.PadMode = 'constant', value = 0) {
    super();
    if (pads.length !== 4 || pads.some((p) => !Number.isInteger(p) || p < 0)) throw new RangeError(`Pad2d: pads [${pads.join(', ')}] should be four whole numbers >= 0`);
    if (!ops.PAD_MODES.includes(mode)) throw new RangeError(`Pad2d: mode '${String(mode)}' should be one of ${ops.PAD_MODES.join(', ')}`);
    if (!Number.isFinite(value)) throw new RangeError(`Pad2d: value ${value} should be finite`);
    this.pads = [...pads] as [number, number, number, number];
    this.mode = mode;
    this.value = value;
  }
  override forward(x: Tensor): Tensor {
    return ops.pad2d(x, { pads: this.pads, mode: this.mode, value: this.value });
  }
  override outputShape(input: Shape): Shape {
    if (input.length !== 4) throw new ShapeError(`Pad2d: its input ${shapeString(input)} should be [N, C, H, W]`);
    const [n, c, h, w] = input as [number, number, number, number];
    const [t, l, b, r] = this.pads;
    if (this.mode === 'reflect' && (t >= h || b >= h || l >= w || r >= w)) throw new ShapeError(`Pad2d: reflect padding [${this.pads.join(', ')}] needs maps larger than it, got ${h}x${w}`);
    return [n, c, h + t + b, w + l + r];
  }
  override spec(): ModuleSpec {
    return { type: this.type, pads: [...this.pads], mode: this.mode, value: this.value };
  }
}
registerModule('Pad2d', (r) => {
  const pads = r.child('pads');
  if (!Array.isArray(pads) || pads.length !== 4 || pads.some((p) => typeof p !== 'number' || !Number.isSafeInteger(p) || p < 0 || p > 65_536)) r.fail('pads', 'should be four whole numbers in [0, 65536]');
  return new Pad2d(pads as [number, number, number, number], r.oneOf('mode', ops.PAD_MODES, 'constant'), r.number('value', {}, 0));
});
