/** Spatial padding of [N, C, H, W]: a constant, the reflection (without the edge) or the edge value, and its gradient. */
import { engine } from '../autograd/engine.js';
import { ShapeError, type Tensor } from '../tensor/tensor.js';
import { expectFloat, expectRank } from './dispatch.js';

export const PAD_MODES = ['constant', 'reflect', 'edge'] as const;
export type PadMode = (typeof PAD_MODES)[number];

export interface Pad2dOptions {
  /** [top, left, bottom, right], each >= 0. */
  readonly pads: readonly [number, number, number, number];
  readonly mode: PadMode;
  /** The constant mode's value. */
  readonly value: number;
}

/** The input index an output index along a side of `size` reads, or -1 for the constant. */
export function padSource(i: number, before: number, size: number, mode: PadMode): number {
  const j = i - before;
  if (j >= 0 && j < size) return j;
  if (mode === 'constant') return -1;
  if (mode === 'edge') return j < 0 ? 0 : size - 1;
  if (size === 1) return 0;
  const period = 2 * (size - 1);
  const m = ((j % period) + period) % period;
  return m < size ? m : period - m;
}

export function pad2d(x: Tensor, o: Pad2dOptions): Tensor {
  const op = 'pad2d';
  expectRank(op, 'input', x, 4);
  expectFloat(op, 'input', x);
  const [N, C, H, W] = x.shape as [number, number, number, number];
  const [t, l, b, r] = o.pads;
  if (o.mode === 'reflect' && (t >= H || b >= H || l >= W || r >= W)) throw new ShapeError(`${op}: reflect padding [${o.pads.join(', ')}] needs maps larger than it, got ${H}x${W}`);
  const OH = H + t + b, OW = W + l + r;
  const rows = Array.from({ length: OH }, (_, i) => padSource(i, t, H, o.mode));
  const cols = Array.from({ length: OW }, (_, i) => padSource(i, l, W, o.mode));
  const e = engine();
  const y = e.alloc([N, C, OH, OW]);
  const xs = x.f32(), ys = y.f32();
  for (let p = 0; p < N * C; p++) {
    for (let i = 0; i < OH; i++) {
      const si = rows[i] as number;
      for (let j = 0; j < OW; j++) {
        const sj = cols[j] as number;
        ys[(p * OH + i) * OW + j] = si < 0 || sj < 0 ? o.value : (xs[(p * H + si) * W + sj] as number);
      }
    }
  }
  if (o.mode !== 'constant' || o.value === 0) y.channels = x.channels;
  if (e.tracks(x)) {
    y.requiresGrad = true;
    e.record({
      op, inputs: [x], output: y,
      backward: (dy) => {
        const dx = e.zeros(x.shape);
        const g = dy.f32(), d = dx.f32();
        for (let p = 0; p < N * C; p++) {
          for (let i = 0; i < OH; i++) {
            const si = rows[i] as number;
            if (si < 0) continue;
            for (let j = 0; j < OW; j++) {
              const sj = cols[j] as number;
              if (sj < 0) continue;
              const k = (p * H + si) * W + sj;
              d[k] = (d[k] as number) + (g[(p * OH + i) * OW + j] as number);
            }
          }
        }
        return [dx];
      },
    });
  }
  return y;
}
