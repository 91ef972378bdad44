import type { LinearMemory } from '../../tensor/memory.js';
import type { Kernels } from '../kernels.js';

type LossKernels = Pick<Kernels, 'softmaxCrossEntropy' | 'softmaxCrossEntropyBackward' | 'argmaxRows'>;

const f = Math.fround;

export function lossReference(mem: LinearMemory): LossKernels {
  return {
    softmaxCrossEntropy(logits, labels, N, C, probs, losses) {
      const v = mem.f32;
      for (let n = 0; n < N; n++) {
        const row = (logits >>> 2) + n * C;
        if (C === 0) {
          v[(losses >>> 2) + n] = 0;
          continue;
        }
        let m = -Infinity;
        for (let i = 0; i < C; i++) m = Math.max(m, v[row + i]!);
        let s = 0;
        for (let i = 0; i < C; i++) s += Math.exp(v[row + i]! - m);
        for (let i = 0; i < C; i++) v[(probs >>> 2) + n * C + i] = Math.exp(v[row + i]! - m) / s;
        v[(losses >>> 2) + n] = m + Math.log(s) - v[row + mem.i32[(labels >>> 2) + n]!]!;
      }
    },
    softmaxCrossEntropyBackward(probs, labels, N, C, scale, dlogits) {
      const v = mem.f32;
      const sc = f(scale);
      for (let n = 0; n < N; n++) {
        const label = mem.i32[(labels >>> 2) + n]!;
        for (let i = 0; i < C; i++) v[(dlogits >>> 2) + n * C + i] = sc * f(v[(probs >>> 2) + n * C + i]! - (i === label ? 1 : 0));
      }
    },
    argmaxRows(x, N, C, out) {
      const v = mem.f32;
      for (let n = 0; n < N; n++) {
        let best = -Infinity;
        let idx = C > 0 ? 0 : -1;
        for (let i = 0; i < C; i++) {
          const val = v[(x >>> 2) + n * C + i]!;
          if (val > best || (Number.isNaN(val) && !Number.isNaN(best))) {
            best = val;
            idx = i;
          }
        }
        mem.i32[(out >>> 2) + n] = idx;
      }
    },
  };
}
