/** Activation layers beyond ReLU: Clip (ReLU6), Sigmoid, SiLU, HardSigmoid, HardSwish, GELU. */
import * as ops from '../ops/index.js';
import type { Tensor } from '../tensor/tensor.js';
import { Stateless, type ModuleSpec } from './module.js';
import { registerModule, type SpecReader } from './registry.js';

/** A bound that JSON writes as null when it is open (infinite). */
function bound(r: SpecReader, key: string, open: number): number {
  const v = r.child(key);
  return v === null || v === undefined ? open : r.number(key);
}

/** min(max(x, lo), hi); ReLU6 is Clip(0, 6). */
export class Clip extends Stateless {
  readonly type = 'Clip';
  constructor(readonly lo: number, readonly hi: number) {
    super();
    if (Number.isNaN(lo) || Number.isNaN(hi) || !(lo <= hi)) throw new RangeError(`Clip: bounds [${lo}, ${hi}] should satisfy lo <= hi`);
  }
  override forward(x: Tensor): Tensor {
    const y = ops.clamp(x, this.lo, this.hi);
    if (this.lo <= 0 && this.hi >= 0) y.channels = x.channels;
    return y;
  }
  override spec(): ModuleSpec {
    // JSON has no infinity: an open bound is null.
    return { type: this.type, lo: Number.isFinite(this.lo) ? this.lo : null, hi: Number.isFinite(this.hi) ? this.hi : null };
  }
}

/** An element-wise function with no parameters: its spec is its type alone. */
abstract class ParameterlessPointwise extends Stateless {
  protected abstract readonly fn: ops.Pointwise;
  override forward(x: Tensor): Tensor {
    return ops.pointwise(x, this.fn);
  }
  override spec(): ModuleSpec {
    return { type: this.type };
  }
}

export class Sigmoid extends Stateless {
  readonly type = 'Sigmoid';
  override forward(x: Tensor): Tensor {
    return ops.sigmoid(x);
  }
  override spec(): ModuleSpec {
    return { type: this.type };
  }
}

/** x · sigmoid(x) (also called Swish). */
export class SiLU extends ParameterlessPointwise {
  readonly type = 'SiLU';
  protected readonly fn = ops.SILU;
}

/** max(0, min(1, alpha · x + beta)); PyTorch's Hardsigmoid is alpha 1/6, beta 0.5. */
export class HardSigmoid extends Stateless {
  readonly type = 'HardSigmoid';
  private readonly fn: ops.Pointwise;
  constructor(readonly alpha = 1 / 6, readonly beta = 0.5) {
    super();
    if (!Number.isFinite(alpha) || !Number.isFinite(beta)) throw new RangeError(`HardSigmoid: alpha ${alpha} and beta ${beta} should be finite`);
    this.fn = ops.hardSigmoidFn(alpha, beta);
  }
  override forward(x: Tensor): Tensor {
    return ops.pointwise(x, this.fn);
  }
  override spec(): ModuleSpec {
    return { type: this.type, alpha: this.alpha, beta: this.beta };
  }
}

/** x · relu6(x + 3) / 6. */
export class HardSwish extends ParameterlessPointwise {
  readonly type = 'HardSwish';
  protected readonly fn = ops.HARD_SWISH;
}

/** x · Φ(x) with the exact normal distribution function. */
export class GELU extends ParameterlessPointwise {
  readonly type = 'GELU';
  protected readonly fn = ops.GELU;
}

registerModule('Clip', (r) => new Clip(bound(r, 'lo', -Infinity), bound(r, 'hi', Infinity)));
registerModule('Sigmoid', () => new Sigmoid());
registerModule('SiLU', () => new SiLU());
registerModule('HardSigmoid', (r) => new HardSigmoid(r.number('alpha', {}, 1 / 6), r.number('beta', {}, 0.5)));
registerModule('HardSwish', () => new HardSwish());
registerModule('GELU', () => new GELU());
