/**
 * The batch kernel: everything that decides which samples form a batch and what their float values are.
 * The prefetch worker runs these same functions from their source text (see prefetch.ts), so that
 * in-thread and worker loading are identical by construction.
 *
 * Constraint for every function in this file: it may call only other functions declared in this file and
 * JavaScript globals; no imports, no module-level constants, no classes.
 */

/** What the kernel reads. Plain data only: the object is sent to the worker as `workerData`. */
export interface BatchSource {
  readonly pixels: Uint8Array | Float32Array;
  readonly labels: Int32Array;
  /** Dataset index → stored sample; null when the dataset is the whole storage. */
  readonly indices: Int32Array | null;
  /** Samples in one epoch (the dataset length). */
  readonly length: number;
  /** Samples in `pixels`; every stored index must be below it. */
  readonly storedSamples: number;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  /** channels x 256 output values for uint8 pixels; null for float32 pixels. */
  readonly lut: Float32Array | null;
  readonly scale: number;
  readonly mean: Float64Array;
  readonly std: Float64Array;
  /** Per channel, the output value of a padded pixel (raw value 0, scaled and normalised). */
  readonly pad: Float32Array;
  readonly cropPadding: number;
  readonly flip: boolean;
  readonly shuffle: boolean;
}

/** The splitmix32 output function: a bijective 32-bit mix. */
export function mix32(x: number): number {
  let z = (x + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  return (z ^ (z >>> 15)) >>> 0;
}

/** Derives an independent 32-bit seed from a seed and two integer coordinates. */
export function hashSeed(seed: number, a: number, b: number): number {
  return mix32(mix32(mix32(seed >>> 0) ^ (a >>> 0)) ^ (b >>> 0));
}

/** Seeds xoshiro128** state from a 32-bit seed through a splitmix32 sequence. */
export function xoshiroSeed(state: Uint32Array, seed: number): void {
  let s = seed >>> 0;
  for (let i = 0; i < 4; i++) {
    s = (s + 0x9e3779b9) >>> 0;
    state[i] = mix32(s);
  }
  // the all-zero state is a fixed point of xoshiro
  if ((state[0]! | state[1]! | state[2]! | state[3]!) === 0) state[0] = 1;
}

/** xoshiro128** (Blackman and Vigna): next uint32. */
export function xoshiroNext(state: Uint32Array): number {
  const s0 = state[0]!;
  const s1 = state[1]!;
  const s2 = state[2]!;
  const s3 = state[3]!;
  const m = Math.imul(s1, 5);
  const result = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
  const t = s1 << 9;
  const n2 = s2 ^ s0;
  const n3 = s3 ^ s1;
  state[0] = s0 ^ n3;
  state[1] = s1 ^ n2;
  state[2] = n2 ^ t;
  state[3] = (n3 << 11) | (n3 >>> 21);
  return result;
}

/** Uniform integer in [0, n), n in [1, 2^32], without modulo bias (rejection of the top partial range). */
export function uniformInt(state: Uint32Array, n: number): number {
  const limit = 4294967296 - (4294967296 % n);
  let x = xoshiroNext(state);
  while (x >= limit) x = xoshiroNext(state);
  return x % n;
}

/** The sample order of one epoch: identity, or a Fisher-Yates shuffle seeded by (seed, epoch). */
export function fillPermutation(out: Int32Array, seed: number, epoch: number, shuffle: boolean): void {
  const n = out.length;
  for (let i = 0; i < n; i++) out[i] = i;
  if (!shuffle) return;
  const state = new Uint32Array(4);
  xoshiroSeed(state, hashSeed(seed, 0x5045524d, epoch));
  for (let i = n - 1; i > 0; i--) {
    const j = uniformInt(state, i + 1);
    const t = out[i]!;
    out[i] = out[j]!;
    out[j] = t;
  }
}

/** The position where an epoch ends: the last partial batch is dropped when `dropLast`. */
export function epochEnd(length: number, batchSize: number, dropLast: boolean): number {
  return dropLast ? length - (length % batchSize) : length;
}

/**
 * Writes `count` samples, taken from epoch order `perm` at `position`, into `x` (NCHW float32) and `y`.
 * Augmentation draws depend only on (seed, epoch, position of the sample in the epoch), so a batch is the
 * same whichever thread assembles it and whatever was assembled before it.
 */
export function assembleBatch(
  src: BatchSource,
  perm: Int32Array,
  seed: number,
  epoch: number,
  position: number,
  count: number,
  x: Float32Array,
  y: Int32Array,
): void {
  const C = src.channels;
  const H = src.height;
  const W = src.width;
  const HW = H * W;
  const CHW = C * HW;
  const P = src.cropPadding;
  const span = 2 * P + 1;
  const augment = P > 0 || src.flip;
  const pixels = src.pixels;
  const lut = src.lut;
  const scale = src.scale;
  for (let s = 0; s < count; s++) {
    const k = perm[position + s]!;
    const stored = src.indices === null ? k : src.indices[k]!;
    if (!(stored >= 0 && stored < src.storedSamples)) {
      throw new RangeError(
        `sample ${k} of the dataset maps to stored sample ${stored}, outside the ${src.storedSamples} stored samples`,
      );
    }
    y[s] = src.labels[stored]!;
    let dy = P;
    let dx = P;
    let flip = false;
    if (augment) {
      const h = hashSeed(seed ^ 0x41554731, epoch, position + s);
      const h1 = mix32(h);
      const h2 = mix32(h1);
      const h3 = mix32(h2);
      dy = Math.floor((h1 / 4294967296) * span);
      dx = Math.floor((h2 / 4294967296) * span);
      flip = src.flip && h3 >>> 31 === 1;
    }
    const inBase = stored * CHW;
    const outBase = s * CHW;
    for (let c = 0; c < C; c++) {
      const inC = inBase + c * HW;
      const outC = outBase + c * HW;
      const lo = c * 256;
      const m = src.mean[c]!;
      const sd = src.std[c]!;
      if (!augment) {
        if (lut !== null) {
          for (let i = 0; i < HW; i++) x[outC + i] = lut[lo + pixels[inC + i]!]!;
        } else {
          for (let i = 0; i < HW; i++) x[outC + i] = (pixels[inC + i]! * scale - m) / sd;
        }
        continue;
      }
      const pad = src.pad[c]!;
      for (let r = 0; r < H; r++) {
        const sr = r + dy - P;
        const outRow = outC + r * W;
        if (sr < 0 || sr >= H) {
          x.fill(pad, outRow, outRow + W);
          continue;
        }
        // output column q reads source column s0 + step * q; columns [qLo, qHi) fall inside the source
        const step = flip ? -1 : 1;
        const s0 = flip ? W - 1 + dx - P : dx - P;
        const qLo = Math.min(W, Math.max(0, flip ? dx - P : P - dx));
        const qHi = Math.max(qLo, Math.min(W, flip ? W + dx - P : W + P - dx));
        x.fill(pad, outRow, outRow + qLo);
        x.fill(pad, outRow + qHi, outRow + W);
        const inRow = inC + sr * W + s0;
        if (lut !== null) {
          for (let q = qLo; q < qHi; q++) x[outRow + q] = lut[lo + pixels[inRow + step * q]!]!;
        } else {
          for (let q = qLo; q < qHi; q++) x[outRow + q] = (pixels[inRow + step * q]! * scale - m) / sd;
        }
      }
    }
  }
}
