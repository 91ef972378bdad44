/** Optimizers update parameters from their accumulated gradients; state lives in persistent memory. */
import { engine } from '../autograd/engine.js';
import type { Tensor } from '../tensor/tensor.js';

export abstract class Optimizer {
  readonly params: readonly Tensor[];
  /** Current learning rate; schedules set it before each step. */
  lr: number;
  /** Steps taken so far. */
  stepCount = 0;

  constructor(params: readonly Tensor[], lr: number) {
    if (!(lr >= 0) || !Number.isFinite(lr)) throw new RangeError(`learning rate ${lr} should be a finite number >= 0`);
    for (const p of params) {
      if (!p.requiresGrad) throw new TypeError(`optimizer: ${p.describe()} is not a parameter (requiresGrad is false)`);
    }
    this.params = params;
    this.lr = lr;
  }

  /** Sets every parameter's gradient to zero (allocating it on first use). */
  zeroGrad(): void {
    const e = engine();
    for (const p of this.params) {
      if (p.grad === null) p.grad = e.zeros(p.shape, 'float32', e.persistent);
      else e.backend.kernels.fill(p.grad.ptr, p.grad.size, 0);
    }
  }

  step(): void {
    this.stepCount++;
    for (let i = 0; i < this.params.length; i++) {
      const p = this.params[i] as Tensor;
      if (p.grad === null) continue;
      this.update(i, p, p.grad);
    }
  }

  protected abstract update(index: number, p: Tensor, grad: Tensor): void;

  /** Named state tensors (for checkpoints), by parameter index. */
  abstract stateTensors(): Array<[string, Tensor]>;
}

/** A lazily allocated persistent zero buffer per parameter. */
export function stateBuffer(store: Array<Tensor | null>, index: number, like: Tensor): Tensor {
  let t = store[index] ?? null;
  if (t === null) {
    const e = engine();
    t = e.zeros(like.shape, 'float32', e.persistent);
    store[index] = t;
  }
  return t;
}
