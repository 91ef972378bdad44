/** Concatenation along the channel axis of [N, C, ...] tensors, and its gradient (the slices back). */
import { engine } from '../autograd/engine.js';
import { ShapeError, type Tensor } from '../tensor/tensor.js';
import { expectFloat } from './dispatch.js';

/** [N, C_i, ...] for each input → [N, ΣC_i, ...]. */
export function concatChannels(xs: readonly Tensor[]): Tensor {
  const op = 'concatChannels';
  if (xs.length === 0) throw new RangeError(`${op}: no inputs`);
  const first = xs[0] as Tensor;
  for (const x of xs) {
    expectFloat(op, 'input', x);
    if (x.rank < 2 || x.rank !== first.rank || x.shape[0] !== first.shape[0] || x.shape.slice(2).some((d, i) => d !== first.shape[i + 2])) {
      throw new ShapeError(`${op}: input ${x.describe()} does not match ${first.describe()} outside the channel axis`);
    }
  }
  const N = first.shape[0] as number;
  const inner = first.shape.slice(2).reduce((a, b) => a * b, 1);
  const channels = xs.map((x) => x.shape[1] as number);
  const C = channels.reduce((a, b) => a + b, 0);
  const e = engine();
  const y = e.alloc([N, C, ...first.shape.slice(2)]);
  const ys = y.f32();
  let c0 = 0;
  xs.forEach((x, k) => {
    const src = x.f32();
    const block = (channels[k] as number) * inner;
    for (let n = 0; n < N; n++) ys.set(src.subarray(n * block, (n + 1) * block), (n * C + c0) * inner);
    c0 += channels[k] as number;
  });
  if (e.tracks(...xs)) {
    y.requiresGrad = true;
    e.record({
      op, inputs: [...xs], output: y,
      backward: (dy) => {
        const g = dy.f32();
        let at = 0;
        return xs.map((x, k) => {
          const ck = channels[k] as number;
          const start = at;
          at += ck;
          if (!x.requiresGrad) return null;
          const dx = e.alloc(x.shape);
          const d = dx.f32();
          const block = ck * inner;
          for (let n = 0; n < N; n++) d.set(g.subarray((n * C + start) * inner, (n * C + start) * inner + block), n * block);
          return dx;
        });
      },
    });
  }
  return y;
}
