/** Softmax cross-entropy (mean over the batch) and arg-max predictions. */
import { engine } from '../autograd/engine.js';
import { ShapeError, type Tensor } from '../tensor/tensor.js';
import { expectFloat, expectRank } from './dispatch.js';
import { betaCdf, betaPdf } from './special.js';

export class LabelError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = 'LabelError';
  }
}

/** Mean over the batch of -log softmax(logits)[label]; labels is an int32 tensor [N]. */
export function softmaxCrossEntropy(logits: Tensor, labels: Tensor): Tensor {
  const op = 'softmaxCrossEntropy';
  expectRank(op, 'logits', logits, 2);
  expectFloat(op, 'logits', logits);
  labels.check(op);
  if (labels.dtype !== 'int32') throw new TypeError(`${op}: labels ${labels.describe()} should be int32`);
  const [N, C] = logits.shape as [number, number];
  if (labels.size !== N) throw new ShapeError(`${op}: ${labels.size} labels for ${N} rows of logits`);
  const li = labels.i32();
  for (let i = 0; i < N; i++) {
    const l = li[i] as number;
    if (l < 0 || l >= C) throw new LabelError(`${op}: label ${l} at position ${i} is outside [0, ${C - 1}]`);
  }
  const e = engine();
  const k = e.backend.kernels;
  const probs = e.alloc([N, C]);
  const losses = e.alloc([N]);
  k.softmaxCrossEntropy(logits.ptr, labels.ptr, N, C, probs.ptr, losses.ptr);
  const loss = e.alloc([1]);
  loss.f32()[0] = N > 0 ? k.sum(losses.ptr, N) / N : 0;
  if (e.tracks(logits)) {
    loss.requiresGrad = true;
    e.record({
      op, inputs: [logits], output: loss,
      backward: (dy) => {
        const d = e.alloc([N, C]);
        k.softmaxCrossEntropyBackward(probs.ptr, labels.ptr, N, C, dy.item() / N, d.ptr);
        return [d];
      },
    });
  }
  return loss;
}

/** The predicted class of each row, as a plain array. */
export function argmax(logits: Tensor): Int32Array {
  expectRank('argmax', 'logits', logits, 2);
  const [N, C] = logits.shape as [number, number];
  const e = engine();
  const out = e.alloc([N], 'int32');
  e.backend.kernels.argmaxRows(logits.ptr, N, C, out.ptr);
  return out.i32().slice();
}

/** Row-wise softmax of [N, C] values, in float64. */
function softmaxRows(v: Float32Array, N: number, C: number): Float64Array {
  const p = new Float64Array(N * C);
  for (let n = 0; n < N; n++) {
    let max = -Infinity;
    for (let c = 0; c < C; c++) max = Math.max(max, v[n * C + c] as number);
    let z = 0;
    for (let c = 0; c < C; c++) z += (p[n * C + c] = Math.exp((v[n * C + c] as number) - max));
    for (let c = 0; c < C; c++) (p[n * C + c] as number) /= z;
  }
  return p;
}

/**
 * Mean over the batch of KL(softmax(target) ‖ softmax(logits)): how far the predicted distribution is
 * from a teacher's. The target is read as constant numbers; the gradient flows into `logits` only.
 */
export function klDivergence(logits: Tensor, target: Tensor): Tensor {
  const op = 'klDivergence';
  expectRank(op, 'logits', logits, 2);
  expectFloat(op, 'logits', logits);
  expectFloat(op, 'target', target);
  if (target.rank !== 2 || target.shape[0] !== logits.shape[0] || target.shape[1] !== logits.shape[1]) {
    throw new ShapeError(`${op}: target ${target.describe()} should have the shape of logits ${logits.describe()}`);
  }
  const [N, C] = logits.shape as [number, number];
  const q = softmaxRows(logits.f32(), N, C);
  const p = softmaxRows(target.f32(), N, C);
  let total = 0;
  const grad = new Float64Array(N * C);
  const k = N > 0 ? 1 / N : 0;
  for (let i = 0; i < N * C; i++) {
    const pi = p[i] as number;
    // 0 · log 0 = 0; q is never exactly 0 where p is not, short of float underflow, which the floor absorbs.
    if (pi > 0) total += pi * (Math.log(pi) - Math.log(Math.max(q[i] as number, Number.MIN_VALUE)));
    grad[i] = k * ((q[i] as number) - pi);
  }
  return scalarLoss(op, logits, total * k, grad);
}

/**
 * Batch-shaping loss of switch values [N, M] in [0, 1] against a Beta(a, b) prior: for each column (one
 * switch), its values sorted over the batch, x_(1) ≤ … ≤ x_(N), are compared with the prior's CDF F:
 * mean over columns of Σ_i (F(x_(i)) − i / (N + 1))² / N. With a U-shaped prior (a, b < 1) it pushes
 * each switch to be open for some inputs and shut for others, rather than to one value for every input.
 */
export function batchShaping(x: Tensor, a: number, b: number): Tensor {
  const op = 'batchShaping';
  expectRank(op, 'switches', x, 2);
  expectFloat(op, 'switches', x);
  const [N, M] = x.shape as [number, number];
  const v = x.f32();
  const grad = new Float64Array(N * M);
  const order = Array.from({ length: N }, (_, i) => i);
  let total = 0;
  for (let m = 0; m < M; m++) {
    order.sort((i, j) => (v[i * M + m] as number) - (v[j * M + m] as number));
    for (let r = 0; r < N; r++) {
      const i = order[r] as number;
      const value = v[i * M + m] as number;
      if (!Number.isFinite(value)) throw new RangeError(`${op}: switches ${x.describe()} has ${value} at [${i}, ${m}]`);
      const diff = betaCdf(value, a, b) - (r + 1) / (N + 1);
      total += diff * diff;
      // The density diverges at 0 and 1 when a or b < 1; a switch there is clamped and gets no gradient anyway.
      const at = Math.min(1 - 1e-4, Math.max(1e-4, value));
      grad[i * M + m] = 2 * diff * (value < 0 || value > 1 ? 0 : betaPdf(at, a, b));
    }
  }
  const scaleBy = N > 0 && M > 0 ? 1 / (N * M) : 0;
  for (let i = 0; i < N * M; i++) grad[i] = (grad[i] as number) * scaleBy;
  return scalarLoss(op, x, total * scaleBy, grad);
}

/** A scalar loss computed on the TS side: its value, and its gradient with respect to `input`. */
function scalarLoss(op: string, input: Tensor, value: number, grad: Float64Array): Tensor {
  const e = engine();
  const loss = e.alloc([1]);
  loss.f32()[0] = value;
  if (e.tracks(input)) {
    loss.requiresGrad = true;
    e.record({
      op, inputs: [input], output: loss,
      backward: (dy) => {
        const d = e.alloc(input.shape);
        const df = d.f32();
        const k = dy.item();
        for (let i = 0; i < grad.length; i++) df[i] = k * (grad[i] as number);
        return [d];
      },
    });
  }
  return loss;
}
