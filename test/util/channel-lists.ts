/** Channel lists and compact values as the inference kernels read them, for the conformance tests. */
import { TestRng } from './rng.js';

/** A random channel set per image: each channel on with probability pOn (pOn 1 gives complete lists). */
export function randomSets(rng: TestRng, N: number, C: number, pOn: number): number[][] {
  return Array.from({ length: N }, () => Array.from({ length: C }, (_, c) => c).filter(() => rng.next() < pOn));
}

/** Channel lists as the kernels read them: per image, count then ids, C + 1 ints. */
export function listData(sets: number[][], C: number): Int32Array {
  const out = new Int32Array(sets.length * (C + 1)).fill(-7);
  sets.forEach((s, n) => {
    out[n * (C + 1)] = s.length;
    s.forEach((c, i) => { out[n * (C + 1) + 1 + i] = c; });
  });
  return out;
}

/** A compact value: image n's first |sets[n]| planes random, the unlisted ones NaN (a kernel that reads them spoils its output). */
export function compactData(rng: TestRng, sets: number[][], C: number, HW: number): Float32Array {
  const out = new Float32Array(sets.length * C * HW).fill(NaN);
  sets.forEach((s, n) => {
    for (let i = 0; i < s.length * HW; i++) out[n * C * HW + i] = rng.uniform(-1, 1);
  });
  return out;
}
