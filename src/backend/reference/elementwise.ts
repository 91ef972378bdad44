import type { LinearMemory } from '../../tensor/memory.js';
import type { Kernels } from '../kernels.js';

type ElementwiseKernels = Pick<Kernels, 'fill' | 'copy' | 'add' | 'sub' | 'mul' | 'scale' | 'axpy' | 'addBias' | 'channelSum'
  | 'channelScale' | 'channelScaleBackward' | 'sum' | 'sumSquares' | 'countNonFinite' | 'dropoutForward'>;

const f = Math.fround;

/** lowbias32 (C. Wellons), the mixer that assembly/elementwise.ts uses. */
export function mix32(h: number): number {
  h = (h ^ (h >>> 16)) >>> 0;
  h = Math.imul(h, 0x7feb352d) >>> 0;
  h = (h ^ (h >>> 15)) >>> 0;
  h = Math.imul(h, 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** The uniform in [0, 1) that decides dropout element i (counted from the pointers passed). */
export function dropoutUniform(seed: number, i: number): number {
  const key = mix32(seed >>> 0);
  const h = mix32((mix32((i + key) >>> 0) ^ key) >>> 0);
  return (h >>> 8) / 16777216;
}

export function elementwiseReference(mem: LinearMemory): ElementwiseKernels {
  const binary = (op: (a: number, b: number) => number) => (a: number, b: number, y: number, n: number): void => {
    const v = mem.f32;
    const ai = a >>> 2, bi = b >>> 2, yi = y >>> 2;
    for (let i = 0; i < n; i++) v[yi + i] = op(v[ai + i]!, v[bi + i]!);
  };
  return {
    fill(y, n, value) {
      mem.f32.fill(value, y >>> 2, (y >>> 2) + n);
    },
    copy(x, y, n) {
      mem.f32.copyWithin(y >>> 2, x >>> 2, (x >>> 2) + n);
    },
    add: binary((a, b) => a + b),
    sub: binary((a, b) => a - b),
    mul: binary((a, b) => a * b),
    scale(x, y, n, alpha) {
      const v = mem.f32;
      const a = f(alpha);
      for (let i = 0; i < n; i++) v[(y >>> 2) + i] = a * v[(x >>> 2) + i]!;
    },
    axpy(n, alpha, x, y) {
      const v = mem.f32;
      const a = f(alpha);
      for (let i = 0; i < n; i++) v[(y >>> 2) + i] = f(a * v[(x >>> 2) + i]!) + v[(y >>> 2) + i]!;
    },
    addBias(y, bias, N, C, HW) {
      const v = mem.f32;
      for (let n = 0; n < N; n++) {
        for (let c = 0; c < C; c++) {
          const b = v[(bias >>> 2) + c]!;
          const row = (y >>> 2) + (n * C + c) * HW;
          for (let i = 0; i < HW; i++) v[row + i] = v[row + i]! + b;
        }
      }
    },
    channelSum(x, N, C, HW, out, beta) {
      const v = mem.f32;
      const b = f(beta);
      for (let c = 0; c < C; c++) {
        let s = 0;
        for (let n = 0; n < N; n++) {
          const row = (x >>> 2) + (n * C + c) * HW;
          for (let i = 0; i < HW; i++) s += v[row + i]!;
        }
        const o = (out >>> 2) + c;
        v[o] = b === 0 ? s : f(b * v[o]!) + f(s);
      }
    },
    channelScale(x, s, y, N, C, HW) {
      const v = mem.f32;
      for (let p = 0; p < N * C; p++) {
        const k = v[(s >>> 2) + p]!;
        for (let i = 0; i < HW; i++) v[(y >>> 2) + p * HW + i] = v[(x >>> 2) + p * HW + i]! * k;
      }
    },
    channelScaleBackward(x, s, dy, dx, ds, N, C, HW) {
      const v = mem.f32;
      for (let p = 0; p < N * C; p++) {
        const k = v[(s >>> 2) + p]!;
        let acc = 0;
        for (let i = 0; i < HW; i++) {
          const g = v[(dy >>> 2) + p * HW + i]!;
          if (dx !== 0) v[(dx >>> 2) + p * HW + i] = g * k;
          acc += g * v[(x >>> 2) + p * HW + i]!;
        }
        if (ds !== 0) v[(ds >>> 2) + p] = acc;
      }
    },
    sum(x, n) {
      const v = mem.f32;
      let s = 0;
      for (let i = 0; i < n; i++) s += v[(x >>> 2) + i]!;
      return s;
    },
    sumSquares(x, n) {
      const v = mem.f32;
      let s = 0;
      for (let i = 0; i < n; i++) s += v[(x >>> 2) + i]! * v[(x >>> 2) + i]!;
      return s;
    },
    countNonFinite(x, n) {
      const v = mem.f32;
      let count = 0;
      for (let i = 0; i < n; i++) if (!Number.isFinite(v[(x >>> 2) + i]!)) count++;
      return count;
    },
    dropoutForward(x, y, mask, n, p, seed) {
      const v = mem.f32;
      const pf = f(p);
      const keep = f(1 / f(1 - pf));
      for (let i = 0; i < n; i++) {
        const m = dropoutUniform(seed, i) >= pf ? keep : 0;
        v[(mask >>> 2) + i] = m;
        v[(y >>> 2) + i] = v[(x >>> 2) + i]! * m;
      }
    },
  };
}
