import type { LinearMemory } from '../../tensor/memory.js';
import type { Kernels } from '../kernels.js';

type BatchNormKernels = Pick<Kernels, 'batchNormStats' | 'batchNormApply' | 'batchNormBackward' | 'batchNormBackwardMasked'>;

const f = Math.fround;

/** x viewed as [N, C, HW]; a channel with N * HW = 0 gets mean 0, variance 0, dgamma 0 and dbeta 0. */
export function batchNormReference(mem: LinearMemory): BatchNormKernels {
  return {
    batchNormStats(x, N, C, HW, c0, c1, mean, variance) {
      const v = mem.f32;
      const count = N * HW;
      for (let c = c0; c < c1; c++) {
        let s = 0;
        for (let n = 0; n < N; n++) for (let i = 0; i < HW; i++) s += v[(x >>> 2) + (n * C + c) * HW + i]!;
        const m = count > 0 ? s / count : 0;
        let ss = 0;
        for (let n = 0; n < N; n++) for (let i = 0; i < HW; i++) ss += (v[(x >>> 2) + (n * C + c) * HW + i]! - m) ** 2;
        v[(mean >>> 2) + c] = m;
        v[(variance >>> 2) + c] = count > 0 ? ss / count : 0;
      }
    },
    batchNormApply(x, y, N, C, HW, c0, c1, scale, shift) {
      const v = mem.f32;
      for (let n = 0; n < N; n++) {
        for (let c = c0; c < c1; c++) {
          const a = v[(scale >>> 2) + c]!, b = v[(shift >>> 2) + c]!;
          for (let i = 0; i < HW; i++) {
            const at = (n * C + c) * HW + i;
            v[(y >>> 2) + at] = f(v[(x >>> 2) + at]! * a) + b;
          }
        }
      }
    },
    batchNormBackward(x, dy, dx, N, C, HW, c0, c1, mean, invstd, gamma, dgamma, dbeta) {
      for (let c = c0; c < c1; c++) backwardChannel(mem.f32, x, dy, dx, N, C, HW, c, N * HW, mean, invstd, gamma, dgamma, dbeta);
    },
    batchNormBackwardMasked(x, dy, dx, N, C, HW, c0, c1, mean, invstd, gamma, counts, dgamma, dbeta) {
      const v = mem.f32;
      for (let c = c0; c < c1; c++) {
        const count = v[(counts >>> 2) + c]!;
        if (count !== 0) {
          backwardChannel(v, x, dy, dx, N, C, HW, c, count, mean, invstd, gamma, dgamma, dbeta);
          continue;
        }
        v[(dbeta >>> 2) + c] = 0;
        v[(dgamma >>> 2) + c] = 0;
        for (let n = 0; n < N; n++) v.fill(0, (dx >>> 2) + (n * C + c) * HW, (dx >>> 2) + (n * C + c + 1) * HW);
      }
    },
  };
}

/** Channel c of the training-mode backward, its statistics taken over `count` elements (dy is zero at all others). */
function backwardChannel(v: Float32Array, x: number, dy: number, dx: number, N: number, C: number, HW: number, c: number, count: number,
  mean: number, invstd: number, gamma: number, dgamma: number, dbeta: number): void {
  const m = v[(mean >>> 2) + c]!, is = v[(invstd >>> 2) + c]!, g = v[(gamma >>> 2) + c]!;
  let db = 0, dg = 0;
  for (let n = 0; n < N; n++) {
    for (let i = 0; i < HW; i++) {
      const at = (n * C + c) * HW + i;
      db += v[(dy >>> 2) + at]!;
      dg += v[(dy >>> 2) + at]! * (v[(x >>> 2) + at]! - m) * is;
    }
  }
  v[(dbeta >>> 2) + c] = db;
  v[(dgamma >>> 2) + c] = dg;
  for (let n = 0; n < N; n++) {
    for (let i = 0; i < HW; i++) {
      const at = (n * C + c) * HW + i;
      const xhat = (v[(x >>> 2) + at]! - m) * is;
      v[(dx >>> 2) + at] = ((g * is) / count) * (count * v[(dy >>> 2) + at]! - db - xhat * dg);
    }
  }
}
