import { engine } from '../autograd/engine.js';
import type { Tensor } from '../tensor/tensor.js';
import { Optimizer, stateBuffer } from './optimizer.js';

export interface SgdOptions {
  readonly lr: number;
  readonly momentum?: number;
  readonly dampening?: number;
  readonly weightDecay?: number;
  readonly nesterov?: boolean;
}

/** Stochastic gradient descent with PyTorch's momentum, dampening, Nesterov and weight-decay semantics. */
export class SGD extends Optimizer {
  readonly momentum: number;
  readonly dampening: number;
  readonly weightDecay: number;
  readonly nesterov: boolean;
  private readonly buffers: Array<Tensor | null>;
  private readonly started: boolean[];

  constructor(params: readonly Tensor[], o: SgdOptions) {
    super(params, o.lr);
    this.momentum = o.momentum ?? 0;
    this.dampening = o.dampening ?? 0;
    this.weightDecay = o.weightDecay ?? 0;
    this.nesterov = o.nesterov ?? false;
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) throw new RangeError('SGD: Nesterov momentum needs momentum > 0 and dampening 0');
    this.buffers = params.map(() => null);
    this.started = params.map(() => false);
  }

  protected update(i: number, p: Tensor, g: Tensor): void {
    const buf = this.momentum > 0 ? stateBuffer(this.buffers, i, p) : null;
    const first = this.started[i] === true ? 0 : 1;
    this.started[i] = true;
    engine().backend.kernels.sgdStep(p.ptr, g.ptr, buf === null ? 0 : buf.ptr, p.size, this.lr, this.momentum, this.dampening, this.weightDecay, this.nesterov ? 1 : 0, first);
  }

  stateTensors(): Array<[string, Tensor]> {
    const out: Array<[string, Tensor]> = [];
    this.buffers.forEach((b, i) => { if (b !== null) out.push([`momentum.${i}`, b]); });
    return out;
  }
}
