/** Max and average pooling (windowed and global), forward and gradient. */
import { engine } from '../autograd/engine.js';
import { POOL_DESC_INTS, writePoolDesc, type PoolGeometry } from '../backend/kernels.js';
import { ShapeError, type Tensor } from '../tensor/tensor.js';
import { expectFloat, expectRank, overRanges, pair } from './dispatch.js';

export interface Pool2dOptions {
  readonly kernel: number | readonly [number, number];
  /** Default: the kernel size. */
  readonly stride?: number | readonly [number, number];
  readonly padding?: number | readonly [number, number];
  /** Average pooling only: count padded cells in the divisor (default true, as PyTorch). */
  readonly countIncludePad?: boolean;
  /** Round the output size up (default false); the last window starts inside the input or its leading padding. */
  readonly ceilMode?: boolean;
}

/** Pooled size along one side with symmetric padding, floor or ceil mode (as PyTorch and ONNX). */
export function pooledSize(size: number, kernel: number, stride: number, pad: number, ceil: boolean): number {
  const span = size + 2 * pad - kernel;
  if (!ceil) return Math.floor(span / stride) + 1;
  const out = Math.ceil(span / stride) + 1;
  return (out - 1) * stride >= size + pad ? out - 1 : out;
}

function poolGeometry(op: string, x: Tensor, o: Pool2dOptions): PoolGeometry {
  expectRank(op, 'input', x, 4);
  expectFloat(op, 'input', x);
  const [N, C, H, W] = x.shape as [number, number, number, number];
  const [KH, KW] = pair(o.kernel, 'kernel', op);
  const [strideH, strideW] = pair(o.stride ?? o.kernel, 'stride', op);
  const [padTop, padLeft] = pair(o.padding ?? 0, 'padding', op);
  if (KH < 1 || KW < 1 || strideH < 1 || strideW < 1) throw new RangeError(`${op}: kernel and stride should be >= 1`);
  if (padTop * 2 > KH || padLeft * 2 > KW) throw new RangeError(`${op}: padding ${padTop}x${padLeft} should be at most half the ${KH}x${KW} window`);
  const OH = pooledSize(H, KH, strideH, padTop, o.ceilMode === true);
  const OW = pooledSize(W, KW, strideW, padLeft, o.ceilMode === true);
  if (OH < 1 || OW < 1) throw new ShapeError(`${op}: input ${x.describe()} is smaller than the ${KH}x${KW} window`);
  return { N, C, H, W, KH, KW, strideH, strideW, padTop, padLeft, OH, OW, countIncludePad: o.countIncludePad === false ? 0 : 1 };
}

export function maxPool2d(x: Tensor, o: Pool2dOptions): Tensor {
  const op = 'maxPool2d';
  const g = poolGeometry(op, x, o);
  const e = engine();
  const desc = e.alloc([POOL_DESC_INTS], 'int32');
  writePoolDesc(e.backend.mem.i32, desc.ptr, g);
  const y = e.alloc([g.N, g.C, g.OH, g.OW]);
  const argmax = e.alloc([g.N, g.C, g.OH, g.OW], 'int32');
  overRanges('maxPool2dForward', g.N, (n0, n1) => [desc.ptr, x.ptr, y.ptr, argmax.ptr, n0, n1]);
  y.channels = x.channels;
  if (e.tracks(x)) {
    y.requiresGrad = true;
    e.record({
      op, inputs: [x], output: y,
      backward: (dy) => {
        const dx = e.alloc(x.shape);
        overRanges('maxPool2dBackward', g.N, (n0, n1) => [desc.ptr, dy.ptr, argmax.ptr, dx.ptr, n0, n1]);
        return [dx];
      },
    });
  }
  return y;
}

export function avgPool2d(x: Tensor, o: Pool2dOptions): Tensor {
  const op = 'avgPool2d';
  const g = poolGeometry(op, x, o);
  const e = engine();
  const desc = e.alloc([POOL_DESC_INTS], 'int32');
  writePoolDesc(e.backend.mem.i32, desc.ptr, g);
  const y = e.alloc([g.N, g.C, g.OH, g.OW]);
  overRanges('avgPool2dForward', g.N, (n0, n1) => [desc.ptr, x.ptr, y.ptr, n0, n1]);
  y.channels = x.channels;
  if (e.tracks(x)) {
    y.requiresGrad = true;
    e.record({
      op, inputs: [x], output: y,
      backward: (dy) => {
        const dx = e.alloc(x.shape);
        overRanges('avgPool2dBackward', g.N, (n0, n1) => [desc.ptr, dy.ptr, dx.ptr, n0, n1]);
        return [dx];
      },
    });
  }
  return y;
}

/** [N, C, H, W] → [N, C]: the mean of each plane. */
export function globalAvgPool(x: Tensor): Tensor {
  const op = 'globalAvgPool';
  expectRank(op, 'input', x, 4);
  expectFloat(op, 'input', x);
  const [N, C, H, W] = x.shape as [number, number, number, number];
  const e = engine();
  const y = e.alloc([N, C]);
  overRanges('globalAvgPoolForward', N * C, (p0, p1) => [x.ptr + 4 * p0 * H * W, y.ptr + 4 * p0, p1 - p0, H * W]);
  if (e.tracks(x)) {
    y.requiresGrad = true;
    e.record({
      op, inputs: [x], output: y,
      backward: (dy) => {
        const dx = e.alloc(x.shape);
        overRanges('globalAvgPoolBackward', N * C, (p0, p1) => [dy.ptr + 4 * p0, dx.ptr + 4 * p0 * H * W, p1 - p0, H * W]);
        return [dx];
      },
    });
  }
  return y;
}

/** [N, C, H, W] → [N, C]: the maximum of each plane. */
export function globalMaxPool(x: Tensor): Tensor {
  const op = 'globalMaxPool';
  expectRank(op, 'input', x, 4);
  expectFloat(op, 'input', x);
  const [N, C, H, W] = x.shape as [number, number, number, number];
  const e = engine();
  const y = e.alloc([N, C]);
  const argmax = e.alloc([N, C], 'int32');
  overRanges('globalMaxPoolForward', N * C, (p0, p1) => [x.ptr + 4 * p0 * H * W, y.ptr + 4 * p0, argmax.ptr + 4 * p0, p1 - p0, H * W]);
  if (e.tracks(x)) {
    y.requiresGrad = true;
    e.record({
      op, inputs: [x], output: y,
      backward: (dy) => {
        const dx = e.alloc(x.shape);
        overRanges('globalMaxPoolBackward', N * C, (p0, p1) => [dy.ptr + 4 * p0, argmax.ptr + 4 * p0, dx.ptr + 4 * p0 * H * W, p1 - p0, H * W]);
        return [dx];
      },
    });
  }
  return y;
}
