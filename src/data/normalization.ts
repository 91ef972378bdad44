/** Per-channel normalisation of pixel values: what a network reads is (pixel · scale - mean[c]) / std[c]. No Node imports. */
import type { ImageShape, PixelArray } from './dataset.js';

export interface NormalizeOptions {
  /** Per channel (or one value for all channels), in the scaled [0, 1] range. */
  readonly mean: readonly number[];
  readonly std: readonly number[];
}

/**
 * Fashion-MNIST's pixel mean and deviation: what models trained before the normalisation was stored
 * in the model file were trained with, and so what a file without it is read with.
 */
export const FASHION_MNIST_NORMALIZE: NormalizeOptions = Object.freeze({ mean: Object.freeze([0.286]), std: Object.freeze([0.353]) });

/** Why `n` cannot normalise images of `channels` channels (one value, or one per channel; std > 0), or null. */
export function normalizeProblem(n: NormalizeOptions, channels: number): string | null {
  for (const [key, values] of [['mean', n.mean], ['std', n.std]] as const) {
    if (values.length !== 1 && values.length !== channels) return `normalize.${key} has ${values.length} values, expected 1 or ${channels} (one per channel)`;
    const bad = values.findIndex((v) => !Number.isFinite(v) || (key === 'std' && v <= 0));
    if (bad >= 0) return `normalize.${key}[${bad}] is ${values[bad]}, expected a finite number${key === 'std' ? ' > 0' : ''}`;
  }
  return null;
}

/**
 * `count` images of `shape` from `pixels` (CHW each, uint8 scaled by 1/255 or float32 as stored),
 * normalised into one NCHW float32 array, computed as the data loader computes a batch.
 */
export function normalizeImages(pixels: PixelArray, shape: ImageShape, n: NormalizeOptions, out?: Float32Array): Float32Array {
  const [C, H, W] = shape;
  const hw = H * W;
  const per = C * hw;
  const count = Math.floor(pixels.length / per);
  const problem = normalizeProblem(n, C);
  if (problem !== null) throw new RangeError(`normalizeImages: ${problem}`);
  const result = out ?? new Float32Array(count * per);
  if (result.length < count * per) throw new RangeError(`normalizeImages: output holds ${result.length} values, ${count} images need ${count * per}`);
  const scale = pixels instanceof Uint8Array ? 1 / 255 : 1;
  for (let i = 0; i < count; i++) {
    for (let c = 0; c < C; c++) {
      const m = n.mean[n.mean.length === 1 ? 0 : c] as number;
      const sd = n.std[n.std.length === 1 ? 0 : c] as number;
      const base = i * per + c * hw;
      for (let j = 0; j < hw; j++) result[base + j] = ((pixels[base + j] as number) * scale - m) / sd;
    }
  }
  return result;
}
