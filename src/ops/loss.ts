/** Softmax cross-entropy (mean over the batch) and arg-max predictions. */
import { engine } from '../autograd/engine.js';
import { ShapeError, type Tensor } from '../tensor/tensor.js';
import { expectFloat, expectRank } from './dispatch.js';

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
