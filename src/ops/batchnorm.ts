/** batchNorm: per-channel normalisation of [N, C, ...] with batch statistics (training) or running ones (eval). */
import { engine } from '../autograd/engine.js';
import { ShapeError, type Tensor } from '../tensor/tensor.js';
import { expectFloat, overRanges } from './dispatch.js';

export interface BatchNormState {
  readonly gamma: Tensor;
  readonly beta: Tensor;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  readonly momentum: number;
  readonly eps: number;
}

export function batchNorm(x: Tensor, s: BatchNormState, training: boolean): Tensor {
  const op = 'batchNorm';
  expectFloat(op, 'input', x);
  if (x.rank < 2) throw new ShapeError(`${op}: input ${x.describe()} should be [N, C, ...]`);
  const N = x.shape[0] as number;
  const C = x.shape[1] as number;
  const HW = x.size / Math.max(1, N * C);
  for (const [what, t] of [['gamma', s.gamma], ['beta', s.beta], ['running mean', s.runningMean], ['running variance', s.runningVar]] as const) {
    if (t.size !== C) throw new ShapeError(`${op}: ${what} ${t.describe()} should have ${C} elements for input ${x.describe()}`);
  }
  const e = engine();
  const mem = e.backend.mem;
  const y = e.alloc(x.shape);
  const scale = e.alloc([C]);
  const shift = e.alloc([C]);
  if (!training) {
    const f = mem.f32;
    const g = s.gamma.ptr >>> 2, bt = s.beta.ptr >>> 2, rm = s.runningMean.ptr >>> 2, rv = s.runningVar.ptr >>> 2;
    const sc = scale.ptr >>> 2, sh = shift.ptr >>> 2;
    for (let c = 0; c < C; c++) {
      const k = (f[g + c] as number) / Math.sqrt((f[rv + c] as number) + s.eps);
      f[sc + c] = k;
      f[sh + c] = (f[bt + c] as number) - (f[rm + c] as number) * k;
    }
    overRanges('batchNormApply', C, (c0, c1) => [x.ptr, y.ptr, N, C, HW, c0, c1, scale.ptr, shift.ptr]);
    if (e.tracks(x)) {
      // Eval mode is an affine map with frozen statistics and frozen gamma/beta.
      y.requiresGrad = true;
      e.record({
        op, inputs: [x], output: y,
        backward: (dy) => {
          const dx = e.alloc(x.shape);
          const zero = e.zeros([C]);
          overRanges('batchNormApply', C, (c0, c1) => [dy.ptr, dx.ptr, N, C, HW, c0, c1, scale.ptr, zero.ptr]);
          return [dx];
        },
      });
    }
    return y;
  }
  if (N * HW < 2) throw new ShapeError(`${op}: training needs more than one value per channel, input is ${x.describe()}`);
  const mean = e.alloc([C]);
  const variance = e.alloc([C]);
  const invstd = e.alloc([C]);
  overRanges('batchNormStats', C, (c0, c1) => [x.ptr, N, C, HW, c0, c1, mean.ptr, variance.ptr]);
  {
    const f = mem.f32;
    const g = s.gamma.ptr >>> 2, bt = s.beta.ptr >>> 2, rm = s.runningMean.ptr >>> 2, rv = s.runningVar.ptr >>> 2;
    const m = mean.ptr >>> 2, v = variance.ptr >>> 2, is = invstd.ptr >>> 2, sc = scale.ptr >>> 2, sh = shift.ptr >>> 2;
    const count = N * HW;
    const mom = s.momentum;
    for (let c = 0; c < C; c++) {
      const mu = f[m + c] as number;
      const va = f[v + c] as number;
      const inv = 1 / Math.sqrt(va + s.eps);
      f[is + c] = inv;
      const k = (f[g + c] as number) * inv;
      f[sc + c] = k;
      f[sh + c] = (f[bt + c] as number) - mu * k;
      f[rm + c] = (1 - mom) * (f[rm + c] as number) + mom * mu;
      f[rv + c] = (1 - mom) * (f[rv + c] as number) + mom * va * (count / (count - 1));
    }
  }
  overRanges('batchNormApply', C, (c0, c1) => [x.ptr, y.ptr, N, C, HW, c0, c1, scale.ptr, shift.ptr]);
  if (e.tracks(x, s.gamma, s.beta)) {
    y.requiresGrad = true;
    e.record({
      op, inputs: [x, s.gamma, s.beta], output: y,
      backward: (dy) => {
        const dx = e.alloc(x.shape);
        const dgamma = e.alloc([C]);
        const dbeta = e.alloc([C]);
        overRanges('batchNormBackward', C, (c0, c1) => [x.ptr, dy.ptr, dx.ptr, N, C, HW, c0, c1, mean.ptr, invstd.ptr, s.gamma.ptr, dgamma.ptr, dbeta.ptr]);
        return [x.requiresGrad ? dx : null, dgamma, dbeta];
      },
    });
  }
  return y;
}
