/** Layer normalisation over the channel axis of [N, C, ...]: each position's C values, then a per-channel scale and shift. */
import { engine } from '../autograd/engine.js';
import { ShapeError, type Tensor } from '../tensor/tensor.js';
import { expectFloat } from './dispatch.js';

/** y[n, c, p] = (x[n, c, p] - mean) / sqrt(var + eps) · weight[c] + bias[c], mean and var over c at (n, p). */
export function channelLayerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps: number): Tensor {
  const op = 'channelLayerNorm';
  expectFloat(op, 'input', x);
  if (x.rank < 2) throw new ShapeError(`${op}: input ${x.describe()} should be [N, C, ...]`);
  const N = x.shape[0] as number, C = x.shape[1] as number;
  if (weight.size !== C || bias.size !== C) throw new ShapeError(`${op}: weight ${weight.describe()} and bias ${bias.describe()} should have ${C} values`);
  const P = x.size / (N * C);
  const e = engine();
  const y = e.alloc(x.shape);
  const xs = x.f32(), ys = y.f32(), w = weight.f32(), b = bias.f32();
  // Per (n, p): the normalised values and 1 / sqrt(var + eps), kept for the gradient.
  const xhat = new Float64Array(x.size);
  const inv = new Float64Array(N * P);
  for (let n = 0; n < N; n++) {
    for (let p = 0; p < P; p++) {
      let mean = 0;
      for (let c = 0; c < C; c++) mean += xs[(n * C + c) * P + p] as number;
      mean /= C;
      let v = 0;
      for (let c = 0; c < C; c++) v += ((xs[(n * C + c) * P + p] as number) - mean) ** 2;
      const r = 1 / Math.sqrt(v / C + eps);
      inv[n * P + p] = r;
      for (let c = 0; c < C; c++) {
        const i = (n * C + c) * P + p;
        const h = ((xs[i] as number) - mean) * r;
        xhat[i] = h;
        ys[i] = h * (w[c] as number) + (b[c] as number);
      }
    }
  }
  if (e.tracks(x, weight, bias)) {
    y.requiresGrad = true;
    e.record({
      op, inputs: [x, weight, bias], output: y,
      backward: (dy) => {
        const g = dy.f32(), wv = weight.f32();
        const dx = e.alloc(x.shape), dw = e.zeros([C]), db = e.zeros([C]);
        const d = dx.f32(), dws = dw.f32(), dbs = db.f32();
        const gw = new Float64Array(C), gb = new Float64Array(C);
        for (let n = 0; n < N; n++) {
          for (let p = 0; p < P; p++) {
            let s1 = 0, s2 = 0;
            for (let c = 0; c < C; c++) {
              const i = (n * C + c) * P + p;
              const gh = (g[i] as number) * (wv[c] as number);
              s1 += gh;
              s2 += gh * (xhat[i] as number);
              gw[c] = (gw[c] as number) + (g[i] as number) * (xhat[i] as number);
              gb[c] = (gb[c] as number) + (g[i] as number);
            }
            const r = inv[n * P + p] as number;
            for (let c = 0; c < C; c++) {
              const i = (n * C + c) * P + p;
              const gh = (g[i] as number) * (wv[c] as number);
              d[i] = (r / C) * (C * gh - s1 - (xhat[i] as number) * s2);
            }
          }
        }
        dws.set(gw);
        dbs.set(gb);
        return [dx, weight.requiresGrad ? dw : null, bias.requiresGrad ? db : null];
      },
    });
  }
  return y;
}
