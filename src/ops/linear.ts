/** linear: y[N, out] = x[N, in] · weightᵀ + bias, weight [out, in]; and matmul. */
import { engine } from '../autograd/engine.js';
import { gemmScratchBytes } from '../backend/scratch.js';
import { ShapeError, shapeString, type Tensor } from '../tensor/tensor.js';
import { expectFloat, expectRank } from './dispatch.js';
import { macMeter } from './meter.js';

function gemm(transA: number, transB: number, M: number, N: number, K: number, a: number, lda: number, b: number, ldb: number, beta: number, c: number, ldc: number): void {
  const be = engine().backend;
  const scratch = be.scratch(gemmScratchBytes());
  be.kernels.gemm(transA, transB, M, N, K, 1, a, lda, b, ldb, beta, c, ldc, scratch[0] as number);
}

export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  const op = 'linear';
  expectRank(op, 'input', x, 2);
  expectRank(op, 'weight', weight, 2);
  expectFloat(op, 'input', x);
  expectFloat(op, 'weight', weight);
  const [N, IN] = x.shape as [number, number];
  const [OUT, WIN] = weight.shape as [number, number];
  if (IN !== WIN) throw new ShapeError(`${op}: input ${shapeString(x.shape)} has ${IN} features, weight ${shapeString(weight.shape)} expects ${WIN}`);
  if (bias !== null && bias.size !== OUT) throw new ShapeError(`${op}: bias ${bias.describe()} should have ${OUT} elements`);
  const e = engine();
  const k = e.backend.kernels;
  const y = e.alloc([N, OUT]);
  gemm(0, 1, N, OUT, IN, x.ptr, IN, weight.ptr, IN, 0, y.ptr, OUT);
  if (bias !== null) k.addBias(y.ptr, bias.ptr, N, OUT, 1);
  macMeter.addEach(IN * OUT);
  if (e.tracks(x, weight, bias)) {
    y.requiresGrad = true;
    e.record({
      op,
      inputs: bias === null ? [x, weight] : [x, weight, bias],
      output: y,
      backward: (dy) => {
        let dx: Tensor | null = null;
        let dw: Tensor | null = null;
        let db: Tensor | null = null;
        if (x.requiresGrad) {
          dx = e.alloc([N, IN]);
          gemm(0, 0, N, IN, OUT, dy.ptr, OUT, weight.ptr, IN, 0, dx.ptr, IN);
        }
        if (weight.requiresGrad) {
          dw = e.alloc([OUT, IN]);
          gemm(1, 0, OUT, IN, N, dy.ptr, OUT, x.ptr, IN, 0, dw.ptr, IN);
        }
        if (bias?.requiresGrad === true) {
          db = e.alloc([OUT]);
          k.channelSum(dy.ptr, N, OUT, 1, db.ptr, 0);
        }
        return [dx, dw, db];
      },
    });
  }
  return y;
}

/** a [M, K] · b [K, N]. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  const op = 'matmul';
  expectRank(op, 'a', a, 2);
  expectRank(op, 'b', b, 2);
  const [M, K] = a.shape as [number, number];
  const [K2, N] = b.shape as [number, number];
  if (K !== K2) throw new ShapeError(`${op}: ${shapeString(a.shape)} · ${shapeString(b.shape)}: inner sizes ${K} and ${K2} differ`);
  const e = engine();
  const y = e.alloc([M, N]);
  gemm(0, 0, M, N, K, a.ptr, K, b.ptr, N, 0, y.ptr, N);
  if (e.tracks(a, b)) {
    y.requiresGrad = true;
    e.record({
      op,
      inputs: [a, b],
      output: y,
      backward: (dy) => {
        let da: Tensor | null = null;
        let db: Tensor | null = null;
        if (a.requiresGrad) {
          da = e.alloc([M, K]);
          gemm(0, 1, M, K, N, dy.ptr, N, b.ptr, N, 0, da.ptr, K);
        }
        if (b.requiresGrad) {
          db = e.alloc([K, N]);
          gemm(1, 0, K, N, M, a.ptr, K, dy.ptr, N, 0, db.ptr, N);
        }
        return [da, db];
      },
    });
  }
  return y;
}
