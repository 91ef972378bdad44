/** Branches that read the same input, their outputs concatenated along the channel axis. */
import * as ops from '../ops/index.js';
import { ShapeError, shapeString, type Shape, type Tensor } from '../tensor/tensor.js';
import { childShape, Module, type ModuleSpec, type ShapeWalk } from './module.js';
import { registerModule } from './registry.js';

export class Concat extends Module {
  readonly type = 'Concat';
  constructor(readonly branches: readonly Module[]) {
    super();
    if (branches.length === 0) throw new RangeError('Concat: no branches');
  }
  override forward(x: Tensor): Tensor {
    return ops.concatChannels(this.branches.map((b) => b.forward(x)));
  }
  override children(): ReadonlyArray<readonly [string, Module]> {
    return this.branches.map((b, i) => [String(i), b] as const);
  }
  override outputShape(input: Shape, walk?: ShapeWalk): Shape {
    const shapes = this.branches.map((b, i) => childShape(walk, `branches[${i}]`, b, input));
    const first = shapes[0] as Shape;
    if (shapes.some((s) => s.length !== first.length || s.length < 2 || s.some((d, i) => i !== 1 && d !== first[i]))) {
      throw new ShapeError(`Concat: branches give ${shapes.map(shapeString).join(', ')}, which differ outside the channel axis`);
    }
    return first.map((d, i) => (i === 1 ? shapes.reduce((t, s) => t + (s[1] as number), 0) : d));
  }
  override macs(input: Shape, withGates = true): number {
    return this.branches.reduce((t, b) => t + b.macs(input, withGates), 0);
  }
  override spec(): ModuleSpec {
    return { type: this.type, branches: this.branches.map((b) => b.spec()) };
  }
}
registerModule('Concat', (r) => {
  const branches = r.modules('branches');
  if (branches.length === 0) r.fail('branches', 'should list at least one layer spec');
  return new Concat(branches);
});
