// Kernels of this family; see src/backend/kernels.ts for the contract.

import { expf4 } from './vmath';

// f32x4.max and f32.max both propagate NaN and order -0 below +0.
export function relu(x: usize, y: usize, n: i32): void {
  const zero = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(y + o, f32x4.max(v128.load(x + o), zero));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(y + o, max<f32>(load<f32>(x + o), 0));
  }
}

export function reluBackward(y: usize, dy: usize, dx: usize, n: i32): void {
  const zero = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(dx + o, v128.and(v128.load(dy + o), f32x4.gt(v128.load(y + o), zero)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(dx + o, load<f32>(y + o) > 0 ? load<f32>(dy + o) : 0);
  }
}

export function leakyRelu(x: usize, y: usize, n: i32, alpha: f32): void {
  const zero = f32x4.splat(0);
  const av = f32x4.splat(alpha);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const v = v128.load(x + o);
    v128.store(y + o, v128.bitselect(v, f32x4.mul(v, av), f32x4.gt(v, zero)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const v = load<f32>(x + o);
    store<f32>(y + o, v > 0 ? v : v * alpha);
  }
}

export function leakyReluBackward(x: usize, dy: usize, dx: usize, n: i32, alpha: f32): void {
  const zero = f32x4.splat(0);
  const av = f32x4.splat(alpha);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const g = v128.load(dy + o);
    v128.store(dx + o, v128.bitselect(g, f32x4.mul(g, av), f32x4.gt(v128.load(x + o), zero)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const g = load<f32>(dy + o);
    store<f32>(dx + o, load<f32>(x + o) > 0 ? g : g * alpha);
  }
}

/** Sigmoid from e = exp(-|x|), which never overflows: 1 / (1 + e) for x >= 0, e / (1 + e) below. */
@inline function sigmoid4(x: v128): v128 {
  const e = expf4(f32x4.neg(f32x4.abs(x)));
  const pos = f32x4.div(f32x4.splat(1), f32x4.add(f32x4.splat(1), e));
  return v128.bitselect(pos, f32x4.mul(e, pos), f32x4.ge(x, f32x4.splat(0)));
}

// The tail goes through the same lanes, so a value's result does not depend on its position.
export function sigmoid(x: usize, y: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(y + o, sigmoid4(v128.load(x + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(y + o, f32x4.extract_lane(sigmoid4(f32x4.splat(load<f32>(x + o))), 0));
  }
}

export function sigmoidBackward(y: usize, dy: usize, dx: usize, n: i32): void {
  const one = f32x4.splat(1);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const v = v128.load(y + o);
    v128.store(dx + o, f32x4.mul(f32x4.mul(v128.load(dy + o), v), f32x4.sub(one, v)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const v = load<f32>(y + o);
    store<f32>(dx + o, load<f32>(dy + o) * v * (<f32>1 - v));
  }
}

/** Cephes tanhf in four lanes: an odd polynomial below |x| = 0.625, 1 - 2 / (e^2|x| + 1) above; the sign comes from x. */
@inline function tanh4(x: v128): v128 {
  const a = f32x4.abs(x);
  const s = f32x4.mul(a, a);
  let p = f32x4.splat(-5.70498872745e-3);
  p = f32x4.add(f32x4.mul(p, s), f32x4.splat(2.06390887954e-2));
  p = f32x4.add(f32x4.mul(p, s), f32x4.splat(-5.37397155531e-2));
  p = f32x4.add(f32x4.mul(p, s), f32x4.splat(1.33314422036e-1));
  p = f32x4.add(f32x4.mul(p, s), f32x4.splat(-3.33332819422e-1));
  const small = f32x4.add(f32x4.mul(f32x4.mul(p, s), a), a);
  const e = expf4(f32x4.add(a, a));
  const large = f32x4.sub(f32x4.splat(1), f32x4.div(f32x4.splat(2), f32x4.add(e, f32x4.splat(1))));
  const t = v128.bitselect(small, large, f32x4.lt(a, f32x4.splat(0.625)));
  return v128.or(t, v128.and(x, i32x4.splat(0x80000000)));
}

export function tanh(x: usize, y: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(y + o, tanh4(v128.load(x + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(y + o, f32x4.extract_lane(tanh4(f32x4.splat(load<f32>(x + o))), 0));
  }
}

/** dx = dy * (1 - y * y), with y the forward output. */
export function tanhBackward(y: usize, dy: usize, dx: usize, n: i32): void {
  const one = f32x4.splat(1);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const v = v128.load(y + o);
    v128.store(dx + o, f32x4.mul(v128.load(dy + o), f32x4.sub(one, f32x4.mul(v, v))));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const v = load<f32>(y + o);
    store<f32>(dx + o, load<f32>(dy + o) * (<f32>1 - v * v));
  }
}

export function clamp(x: usize, y: usize, n: i32, lo: f32, hi: f32): void {
  const lov = f32x4.splat(lo);
  const hiv = f32x4.splat(hi);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(y + o, f32x4.min(f32x4.max(v128.load(x + o), lov), hiv));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(y + o, min<f32>(max<f32>(load<f32>(x + o), lo), hi));
  }
}

export function clampBackward(x: usize, dy: usize, dx: usize, n: i32, lo: f32, hi: f32): void {
  const lov = f32x4.splat(lo);
  const hiv = f32x4.splat(hi);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const v = v128.load(x + o);
    v128.store(dx + o, v128.and(v128.load(dy + o), v128.and(f32x4.ge(v, lov), f32x4.le(v, hiv))));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const v = load<f32>(x + o);
    store<f32>(dx + o, v >= lo && v <= hi ? load<f32>(dy + o) : 0);
  }
}
