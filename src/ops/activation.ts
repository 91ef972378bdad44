/** Element-wise activations and their gradients. */
import { engine } from '../autograd/engine.js';
import type { Tensor } from '../tensor/tensor.js';
import { elementwise, expectFloat } from './dispatch.js';

function unary(op: string, x: Tensor, forward: (y: Tensor) => void, backward: (y: Tensor, dy: Tensor, dx: Tensor) => void): Tensor {
  expectFloat(op, 'input', x);
  const e = engine();
  const y = e.alloc(x.shape);
  forward(y);
  if (e.tracks(x)) {
    y.requiresGrad = true;
    e.record({
      op, inputs: [x], output: y,
      backward: (dy) => {
        const dx = e.alloc(x.shape);
        backward(y, dy, dx);
        return [dx];
      },
    });
  }
  return y;
}

export function relu(x: Tensor): Tensor {
  return keepChannels(x, unary('relu', x,
    (y) => elementwise('relu', x.size, (i0, i1) => [x.ptr + 4 * i0, y.ptr + 4 * i0, i1 - i0]),
    (y, dy, dx) => elementwise('reluBackward', x.size, (i0, i1) => [y.ptr + 4 * i0, dy.ptr + 4 * i0, dx.ptr + 4 * i0, i1 - i0])));
}

/** Zero planes of x stay zero planes of y. */
function keepChannels(x: Tensor, y: Tensor): Tensor {
  y.channels = x.channels;
  return y;
}

export function leakyRelu(x: Tensor, alpha = 0.01): Tensor {
  return keepChannels(x, unary('leakyRelu', x,
    (y) => elementwise('leakyRelu', x.size, (i0, i1) => [x.ptr + 4 * i0, y.ptr + 4 * i0, i1 - i0, alpha]),
    (_y, dy, dx) => elementwise('leakyReluBackward', x.size, (i0, i1) => [x.ptr + 4 * i0, dy.ptr + 4 * i0, dx.ptr + 4 * i0, i1 - i0, alpha])));
}

export function sigmoid(x: Tensor): Tensor {
  return unary('sigmoid', x,
    (y) => elementwise('sigmoid', x.size, (i0, i1) => [x.ptr + 4 * i0, y.ptr + 4 * i0, i1 - i0]),
    (y, dy, dx) => elementwise('sigmoidBackward', x.size, (i0, i1) => [y.ptr + 4 * i0, dy.ptr + 4 * i0, dx.ptr + 4 * i0, i1 - i0]));
}

export function tanh(x: Tensor): Tensor {
  return unary('tanh', x,
    (y) => elementwise('tanh', x.size, (i0, i1) => [x.ptr + 4 * i0, y.ptr + 4 * i0, i1 - i0]),
    (y, dy, dx) => elementwise('tanhBackward', x.size, (i0, i1) => [y.ptr + 4 * i0, dy.ptr + 4 * i0, dx.ptr + 4 * i0, i1 - i0]));
}

/**
 * min(max(x, lo), hi); the gradient passes where lo <= x <= hi, and also below lo when
 * `straightThrough` (a straight-through estimator on the lower bound: the backward pass treats
 * max(x, lo) as the identity), and above hi when `passAbove` (likewise for min(x, hi)).
 */
export function clamp(x: Tensor, lo: number, hi: number, straightThrough = false, passAbove = false): Tensor {
  if (!(lo <= hi)) throw new RangeError(`clamp: lo ${lo} should be <= hi ${hi}`);
  const glo = straightThrough ? -Infinity : lo;
  const ghi = passAbove ? Infinity : hi;
  const name = straightThrough ? (passAbove ? 'clampStraightThroughBoth' : 'clampStraightThrough') : passAbove ? 'clampPassAbove' : 'clamp';
  return unary(name, x,
    (y) => elementwise('clamp', x.size, (i0, i1) => [x.ptr + 4 * i0, y.ptr + 4 * i0, i1 - i0, lo, hi]),
    (_y, dy, dx) => elementwise('clampBackward', x.size, (i0, i1) => [x.ptr + 4 * i0, dy.ptr + 4 * i0, dx.ptr + 4 * i0, i1 - i0, glo, ghi]));
}

/**
 * 1 where x > 0, else 0; the backward pass treats the step as the identity (a straight-through
 * estimator), so the gradient reaches x unchanged.
 */
export function stepStraightThrough(x: Tensor): Tensor {
  return unary('stepStraightThrough', x,
    (y) => {
      const xs = x.f32();
      const ys = y.f32();
      for (let i = 0; i < xs.length; i++) ys[i] = (xs[i] as number) > 0 ? 1 : 0;
    },
    (_y, dy, dx) => dx.f32().set(dy.f32()));
}

/**
 * (x + shift)^p - shift^p for x >= 0: a concave penalty for 0 < p < 1 whose slope grows as x falls
 * towards 0 (p / shift^(1-p) at 0, p at 1 for a small shift), so small values are pressed to exactly 0
 * harder than large ones. `shift` > 0 keeps the slope finite at 0.
 */
export function powShifted(x: Tensor, p: number, shift: number): Tensor {
  if (!(p > 0) || !(shift > 0)) throw new RangeError(`powShifted: power ${p} and shift ${shift} should both be > 0`);
  const base = shift ** p;
  return unary('powShifted', x,
    (y) => {
      const xs = x.f32();
      const ys = y.f32();
      for (let i = 0; i < xs.length; i++) {
        const v = xs[i] as number;
        if (!(v >= 0)) throw new RangeError(`powShifted: input ${x.describe()} has ${Number(v.toPrecision(6))} at index ${i}; it is defined for values >= 0`);
        ys[i] = (v + shift) ** p - base;
      }
    },
    (_y, dy, dx) => {
      const xs = x.f32();
      const g = dy.f32();
      const d = dx.f32();
      for (let i = 0; i < xs.length; i++) d[i] = (g[i] as number) * p * ((xs[i] as number) + shift) ** (p - 1);
    });
}
