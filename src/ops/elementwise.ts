/** Element-wise arithmetic, the per-channel gate, reductions to a scalar, reshape and dropout. */
import { engine } from '../autograd/engine.js';
import { ShapeError, shapeString, sizeOf, type Shape, type Tensor } from '../tensor/tensor.js';
import { elementwise, expectFloat, expectSameShape } from './dispatch.js';

export function add(a: Tensor, b: Tensor): Tensor {
  const op = 'add';
  expectFloat(op, 'a', a);
  expectFloat(op, 'b', b);
  expectSameShape(op, a, b);
  const e = engine();
  const y = e.alloc(a.shape);
  elementwise('add', a.size, (i0, i1) => [a.ptr + 4 * i0, b.ptr + 4 * i0, y.ptr + 4 * i0, i1 - i0]);
  if (e.tracks(a, b)) {
    y.requiresGrad = true;
    e.record({ op, inputs: [a, b], output: y, backward: (dy) => [dy, dy] });
  }
  return y;
}

export function mul(a: Tensor, b: Tensor): Tensor {
  const op = 'mul';
  expectFloat(op, 'a', a);
  expectFloat(op, 'b', b);
  expectSameShape(op, a, b);
  const e = engine();
  const y = e.alloc(a.shape);
  elementwise('mul', a.size, (i0, i1) => [a.ptr + 4 * i0, b.ptr + 4 * i0, y.ptr + 4 * i0, i1 - i0]);
  if (e.tracks(a, b)) {
    y.requiresGrad = true;
    e.record({
      op, inputs: [a, b], output: y,
      backward: (dy) => {
        const da = a.requiresGrad ? e.alloc(a.shape) : null;
        const db = b.requiresGrad ? e.alloc(b.shape) : null;
        if (da !== null) elementwise('mul', a.size, (i0, i1) => [dy.ptr + 4 * i0, b.ptr + 4 * i0, da.ptr + 4 * i0, i1 - i0]);
        if (db !== null) elementwise('mul', a.size, (i0, i1) => [dy.ptr + 4 * i0, a.ptr + 4 * i0, db.ptr + 4 * i0, i1 - i0]);
        return [da, db];
      },
    });
  }
  return y;
}

export function scale(x: Tensor, alpha: number): Tensor {
  const op = 'scale';
  expectFloat(op, 'input', x);
  const e = engine();
  const y = e.alloc(x.shape);
  elementwise('scale', x.size, (i0, i1) => [x.ptr + 4 * i0, y.ptr + 4 * i0, i1 - i0, alpha]);
  if (e.tracks(x)) {
    y.requiresGrad = true;
    e.record({
      op, inputs: [x], output: y,
      backward: (dy) => {
        const dx = e.alloc(x.shape);
        elementwise('scale', x.size, (i0, i1) => [dy.ptr + 4 * i0, dx.ptr + 4 * i0, i1 - i0, alpha]);
        return [dx];
      },
    });
  }
  return y;
}

/** y[n, c, ...] = x[n, c, ...] * s[n, c]: one gate value per image and channel. */
export function channelScale(x: Tensor, s: Tensor): Tensor {
  const op = 'channelScale';
  expectFloat(op, 'input', x);
  expectFloat(op, 'gate', s);
  if (x.rank < 2) throw new ShapeError(`${op}: input ${x.describe()} should be [N, C, ...]`);
  const N = x.shape[0] as number;
  const C = x.shape[1] as number;
  if (s.size !== N * C) throw new ShapeError(`${op}: gate ${s.describe()} should have N*C = ${N * C} values for input ${x.describe()}`);
  const HW = x.size / Math.max(1, N * C);
  const e = engine();
  const k = e.backend.kernels;
  const y = e.alloc(x.shape);
  k.channelScale(x.ptr, s.ptr, y.ptr, N, C, HW);
  if (e.tracks(x, s)) {
    y.requiresGrad = true;
    e.record({
      op, inputs: [x, s], output: y,
      backward: (dy) => {
        const dx = x.requiresGrad ? e.alloc(x.shape) : null;
        const ds = e.alloc(s.shape);
        k.channelScaleBackward(x.ptr, s.ptr, dy.ptr, dx === null ? 0 : dx.ptr, ds.ptr, N, C, HW);
        return [dx, s.requiresGrad ? ds : null];
      },
    });
  }
  return y;
}

/** The sum of all elements, as a one-element tensor. */
export function sum(x: Tensor): Tensor {
  const op = 'sum';
  expectFloat(op, 'input', x);
  const e = engine();
  const y = e.alloc([1]);
  y.f32()[0] = e.backend.kernels.sum(x.ptr, x.size);
  if (e.tracks(x)) {
    y.requiresGrad = true;
    e.record({ op, inputs: [x], output: y, backward: (dy) => [e.full(x.shape, dy.item())] });
  }
  return y;
}

export function mean(x: Tensor): Tensor {
  return scale(sum(x), 1 / Math.max(1, x.size));
}

/** The same values under another shape; the gradient is reshaped back. */
export function reshape(x: Tensor, shape: Shape): Tensor {
  const op = 'reshape';
  x.check(op);
  const resolved = [...shape];
  const free = resolved.indexOf(-1);
  if (free >= 0) {
    const known = sizeOf(resolved.filter((_, i) => i !== free));
    if (known === 0 || x.size % known !== 0) throw new ShapeError(`${op}: cannot reshape ${x.describe()} to ${shapeString(shape)}`);
    resolved[free] = x.size / known;
  }
  if (sizeOf(resolved) !== x.size) throw new ShapeError(`${op}: cannot reshape ${x.describe()} to ${shapeString(shape)}`);
  const e = engine();
  const y = x.view(resolved);
  y.requiresGrad = false;
  if (e.tracks(x)) {
    y.requiresGrad = true;
    e.record({ op, inputs: [x], output: y, backward: (dy) => [dy.view(x.shape)] });
  }
  return y;
}

/** [N, ...] → [N, rest]. */
export function flatten(x: Tensor): Tensor {
  return reshape(x, [x.shape[0] ?? 1, -1]);
}

/** Zeroes each element with probability p and scales the rest by 1/(1-p); `seed` makes it repeatable. */
export function dropout(x: Tensor, p: number, seed: number): Tensor {
  const op = 'dropout';
  expectFloat(op, 'input', x);
  if (!(p >= 0 && p < 1)) throw new RangeError(`${op}: p ${p} should be in [0, 1)`);
  const e = engine();
  const y = e.alloc(x.shape);
  const mask = e.alloc(x.shape);
  // One call over the whole range: the mask hashes (seed, index), so it must not depend on a thread split.
  e.backend.kernels.dropoutForward(x.ptr, y.ptr, mask.ptr, x.size, p, seed >>> 0);
  if (e.tracks(x)) {
    y.requiresGrad = true;
    e.record({
      op, inputs: [x], output: y,
      backward: (dy) => {
        const dx = e.alloc(x.shape);
        elementwise('mul', x.size, (i0, i1) => [dy.ptr + 4 * i0, mask.ptr + 4 * i0, dx.ptr + 4 * i0, i1 - i0]);
        return [dx];
      },
    });
  }
  return y;
}
