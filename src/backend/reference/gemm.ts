import type { LinearMemory } from '../../tensor/memory.js';
import type { Kernels } from '../kernels.js';

/** C = alpha * op(A) * op(B) + beta * C with float64 sums; beta = 0 ignores C, and so does the result of K = 0 or alpha = 0. */
export function gemmReference(mem: LinearMemory): Pick<Kernels, 'gemm'> {
  return {
    gemm(transA, transB, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc) {
      const v = mem.f32;
      const ai = a >>> 2, bi = b >>> 2, ci = c >>> 2;
      const A = (i: number, k: number): number => v[ai + (transA ? k * lda + i : i * lda + k)]!;
      const B = (k: number, j: number): number => v[bi + (transB ? j * ldb + k : k * ldb + j)]!;
      const al = Math.fround(alpha), be = Math.fround(beta);
      for (let i = 0; i < M; i++) {
        for (let j = 0; j < N; j++) {
          let s = 0;
          if (al !== 0) for (let k = 0; k < K; k++) s += A(i, k) * B(k, j);
          const at = ci + i * ldc + j;
          v[at] = al * s + (be === 0 ? 0 : be * v[at]!);
        }
      }
    },
  };
}
