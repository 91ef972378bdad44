import { engine } from '../autograd/engine.js';
import type { Tensor } from '../tensor/tensor.js';
import { Optimizer, stateBuffer } from './optimizer.js';

export interface AdamOptions {
  readonly lr?: number;
  readonly beta1?: number;
  readonly beta2?: number;
  readonly eps?: number;
  readonly weightDecay?: number;
}

/** Adam (weight decay as L2 on the gradient), PyTorch semantics. */
export class Adam extends Optimizer {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  protected readonly decoupled: boolean = false;
  private readonly m: Array<Tensor | null>;
  private readonly v: Array<Tensor | null>;

  constructor(params: readonly Tensor[], o: AdamOptions = {}) {
    super(params, o.lr ?? 1e-3);
    this.beta1 = o.beta1 ?? 0.9;
    this.beta2 = o.beta2 ?? 0.999;
    this.eps = o.eps ?? 1e-8;
    this.weightDecay = o.weightDecay ?? 0;
    for (const [what, b] of [['beta1', this.beta1], ['beta2', this.beta2]] as const) {
      if (!(b >= 0 && b < 1)) throw new RangeError(`Adam: ${what} ${b} should be in [0, 1)`);
    }
    this.m = params.map(() => null);
    this.v = params.map(() => null);
  }

  protected update(i: number, p: Tensor, g: Tensor): void {
    const m = stateBuffer(this.m, i, p);
    const v = stateBuffer(this.v, i, p);
    const t = this.stepCount;
    const bc1 = 1 - Math.pow(this.beta1, t);
    const bc2 = 1 - Math.pow(this.beta2, t);
    engine().backend.kernels.adamStep(p.ptr, g.ptr, m.ptr, v.ptr, p.size, this.lr, this.beta1, this.beta2, this.eps, this.weightDecay, this.decoupled ? 1 : 0, bc1, bc2);
  }

  stateTensors(): Array<[string, Tensor]> {
    const out: Array<[string, Tensor]> = [];
    this.m.forEach((b, i) => { if (b !== null) out.push([`m.${i}`, b]); });
    this.v.forEach((b, i) => { if (b !== null) out.push([`v.${i}`, b]); });
    return out;
  }
}

/** AdamW: weight decay applied to the parameters directly (decoupled), default 0.01 as PyTorch. */
export class AdamW extends Adam {
  protected override readonly decoupled: boolean = true;
  constructor(params: readonly Tensor[], o: AdamOptions = {}) {
    super(params, { ...o, weightDecay: o.weightDecay ?? 0.01 });
  }
}
