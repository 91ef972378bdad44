/** Channel selection: y[:, c] = x[:, order[c]] (slices, shuffles), and its gradient (the planes added back). */
import { engine } from '../autograd/engine.js';
import { ShapeError, type Tensor } from '../tensor/tensor.js';
import { expectFloat } from './dispatch.js';

export function selectChannels(x: Tensor, order: readonly number[]): Tensor {
  const op = 'selectChannels';
  expectFloat(op, 'input', x);
  if (x.rank < 2) throw new ShapeError(`${op}: input ${x.describe()} should be [N, C, ...]`);
  const N = x.shape[0] as number, C = x.shape[1] as number;
  if (order.length === 0 || order.some((c) => !Number.isInteger(c) || c < 0 || c >= C)) throw new RangeError(`${op}: channels [${order.slice(0, 8).join(', ')}${order.length > 8 ? ', …' : ''}] should be whole numbers in [0, ${C})`);
  const inner = x.size / (N * C);
  const M = order.length;
  const e = engine();
  const y = e.alloc([N, M, ...x.shape.slice(2)]);
  const xs = x.f32(), ys = y.f32();
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < M; c++) {
      const from = (n * C + (order[c] as number)) * inner;
      ys.set(xs.subarray(from, from + inner), (n * M + c) * inner);
    }
  }
  if (e.tracks(x)) {
    y.requiresGrad = true;
    e.record({
      op, inputs: [x], output: y,
      backward: (dy) => {
        const dx = e.zeros(x.shape);
        const g = dy.f32(), d = dx.f32();
        for (let n = 0; n < N; n++) {
          for (let c = 0; c < M; c++) {
            const to = (n * C + (order[c] as number)) * inner, from = (n * M + c) * inner;
            for (let i = 0; i < inner; i++) d[to + i] = (d[to + i] as number) + (g[from + i] as number);
          }
        }
        return [dx];
      },
    });
  }
  return y;
}
