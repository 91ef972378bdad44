// Kernels of this family; see src/backend/kernels.ts for the contract.
//
// Each row x[n, c, 0..HW) is reduced in float32 lanes; rows are summed in float64. A channel with
// N * HW = 0 gets mean 0, variance 0, dgamma 0 and dbeta 0.

import { hsum, madd } from './vmath';

@inline function rowAddr(base: usize, n: i32, c: i32, C: i32, HW: i32): usize {
  return base + ((<usize>n * <usize>C + <usize>c) * <usize>HW << 2);
}

/** Sum of (p[i] - shift) over len floats. */
@inline function rowSumShifted(p: usize, len: i32, shift: f32): f32 {
  const sv = f32x4.splat(shift);
  let acc0 = f32x4.splat(0);
  let acc1 = f32x4.splat(0);
  let i = 0;
  for (; i + 8 <= len; i += 8) {
    const o = p + (<usize>i << 2);
    acc0 = f32x4.add(acc0, f32x4.sub(v128.load(o), sv));
    acc1 = f32x4.add(acc1, f32x4.sub(v128.load(o, 16), sv));
  }
  if (i + 4 <= len) {
    acc0 = f32x4.add(acc0, f32x4.sub(v128.load(p + (<usize>i << 2)), sv));
    i += 4;
  }
  let s = hsum(f32x4.add(acc0, acc1));
  for (; i < len; i++) s += load<f32>(p + (<usize>i << 2)) - shift;
  return s;
}

/** Sum of (p[i] - shift)^2 over len floats. */
@inline function rowSumSquaresShifted(p: usize, len: i32, shift: f32): f32 {
  const sv = f32x4.splat(shift);
  let acc0 = f32x4.splat(0);
  let acc1 = f32x4.splat(0);
  let i = 0;
  for (; i + 8 <= len; i += 8) {
    const o = p + (<usize>i << 2);
    const d0 = f32x4.sub(v128.load(o), sv);
    const d1 = f32x4.sub(v128.load(o, 16), sv);
    acc0 = madd(d0, d0, acc0);
    acc1 = madd(d1, d1, acc1);
  }
  if (i + 4 <= len) {
    const d = f32x4.sub(v128.load(p + (<usize>i << 2)), sv);
    acc0 = madd(d, d, acc0);
    i += 4;
  }
  let s = hsum(f32x4.add(acc0, acc1));
  for (; i < len; i++) {
    const d = load<f32>(p + (<usize>i << 2)) - shift;
    s += d * d;
  }
  return s;
}

/** Sum of g[i] * (p[i] - shift) over len floats. */
@inline function rowDotShifted(g: usize, p: usize, len: i32, shift: f32): f32 {
  const sv = f32x4.splat(shift);
  let acc0 = f32x4.splat(0);
  let acc1 = f32x4.splat(0);
  let i = 0;
  for (; i + 8 <= len; i += 8) {
    const o = <usize>i << 2;
    acc0 = madd(v128.load(g + o), f32x4.sub(v128.load(p + o), sv), acc0);
    acc1 = madd(v128.load(g + o, 16), f32x4.sub(v128.load(p + o, 16), sv), acc1);
  }
  if (i + 4 <= len) {
    const o = <usize>i << 2;
    acc0 = madd(v128.load(g + o), f32x4.sub(v128.load(p + o), sv), acc0);
    i += 4;
  }
  let s = hsum(f32x4.add(acc0, acc1));
  for (; i < len; i++) {
    const o = <usize>i << 2;
    s += load<f32>(g + o) * (load<f32>(p + o) - shift);
  }
  return s;
}

// Shifting by the channel's first element keeps a constant channel's mean exact and its variance 0.
export function batchNormStats(x: usize, N: i32, C: i32, HW: i32, c0: i32, c1: i32, mean: usize, variance: usize): void {
  const count = <f64>N * <f64>HW;
  for (let c = c0; c < c1; c++) {
    let m: f32 = 0;
    let v: f32 = 0;
    if (count > 0) {
      const first = load<f32>(rowAddr(x, 0, c, C, HW));
      let s: f64 = 0;
      for (let n = 0; n < N; n++) s += <f64>rowSumShifted(rowAddr(x, n, c, C, HW), HW, first);
      m = <f32>(<f64>first + s / count);
      let d: f64 = 0;
      let dd: f64 = 0;
      for (let n = 0; n < N; n++) {
        const row = rowAddr(x, n, c, C, HW);
        d += <f64>rowSumShifted(row, HW, m);
        dd += <f64>rowSumSquaresShifted(row, HW, m);
      }
      v = <f32>max<f64>((dd - d * d / count) / count, 0);
    }
    store<f32>(mean + (<usize>c << 2), m);
    store<f32>(variance + (<usize>c << 2), v);
  }
}

export function batchNormApply(x: usize, y: usize, N: i32, C: i32, HW: i32, c0: i32, c1: i32, scale: usize, shift: usize): void {
  for (let n = 0; n < N; n++) {
    for (let c = c0; c < c1; c++) {
      const a = load<f32>(scale + (<usize>c << 2));
      const b = load<f32>(shift + (<usize>c << 2));
      const av = f32x4.splat(a);
      const bv = f32x4.splat(b);
      const xr = rowAddr(x, n, c, C, HW);
      const yr = rowAddr(y, n, c, C, HW);
      let i = 0;
      for (; i + 4 <= HW; i += 4) {
        const o = <usize>i << 2;
        v128.store(yr + o, madd(v128.load(xr + o), av, bv));
      }
      for (; i < HW; i++) {
        const o = <usize>i << 2;
        store<f32>(yr + o, load<f32>(xr + o) * a + b);
      }
    }
  }
}

/**
 * The training-mode backward of channel c whose statistics were taken over `count` elements, at which
 * alone dy is nonzero: dbeta = sum of dy, dgamma = sum of dy * xhat, and
 * dx = k * (count * dy - dbeta - xhat * dgamma) with k = gamma * invstd / count, expanded as
 * dx = gamma * invstd * dy - k * dbeta - k * dgamma * invstd * (x - mean). count = 0 writes no dx.
 */
@inline function backwardChannel(x: usize, dy: usize, dx: usize, N: i32, C: i32, HW: i32, c: i32, count: f64,
  mean: usize, invstd: usize, gamma: usize, dgamma: usize, dbeta: usize): void {
  const m = load<f32>(mean + (<usize>c << 2));
  const is = load<f32>(invstd + (<usize>c << 2));
  let sdy: f64 = 0;
  let sdyx: f64 = 0;
  for (let n = 0; n < N; n++) {
    const row = rowAddr(dy, n, c, C, HW);
    sdy += <f64>rowSumShifted(row, HW, 0);
    sdyx += <f64>rowDotShifted(row, rowAddr(x, n, c, C, HW), HW, m);
  }
  const db = <f32>sdy;
  const dg = <f32>(sdyx * <f64>is);
  store<f32>(dbeta + (<usize>c << 2), db);
  store<f32>(dgamma + (<usize>c << 2), dg);
  if (count == 0) return;
  const g64 = <f64>load<f32>(gamma + (<usize>c << 2)) * <f64>is;
  const k = g64 / count;
  const a = <f32>g64;
  const b = <f32>(-k * <f64>db);
  const e = <f32>(-k * <f64>dg * <f64>is);
  const av = f32x4.splat(a), bv = f32x4.splat(b), ev = f32x4.splat(e), mv = f32x4.splat(m);
  for (let n = 0; n < N; n++) {
    const xr = rowAddr(x, n, c, C, HW);
    const dyr = rowAddr(dy, n, c, C, HW);
    const dxr = rowAddr(dx, n, c, C, HW);
    let i = 0;
    for (; i + 4 <= HW; i += 4) {
      const o = <usize>i << 2;
      v128.store(dxr + o, madd(ev, f32x4.sub(v128.load(xr + o), mv), madd(av, v128.load(dyr + o), bv)));
    }
    for (; i < HW; i++) {
      const o = <usize>i << 2;
      store<f32>(dxr + o, e * (load<f32>(xr + o) - m) + (a * load<f32>(dyr + o) + b));
    }
  }
}

export function batchNormBackward(x: usize, dy: usize, dx: usize, N: i32, C: i32, HW: i32, c0: i32, c1: i32,
  mean: usize, invstd: usize, gamma: usize, dgamma: usize, dbeta: usize): void {
  const count = <f64>N * <f64>HW;
  for (let c = c0; c < c1; c++) backwardChannel(x, dy, dx, N, C, HW, c, count, mean, invstd, gamma, dgamma, dbeta);
}

// A channel with counts[c] = 0 reads nothing: mean, invstd and gamma may hold anything there.
export function batchNormBackwardMasked(x: usize, dy: usize, dx: usize, N: i32, C: i32, HW: i32, c0: i32, c1: i32,
  mean: usize, invstd: usize, gamma: usize, counts: usize, dgamma: usize, dbeta: usize): void {
  for (let c = c0; c < c1; c++) {
    const count = <f64>load<f32>(counts + (<usize>c << 2));
    if (count != 0) {
      backwardChannel(x, dy, dx, N, C, HW, c, count, mean, invstd, gamma, dgamma, dbeta);
      continue;
    }
    store<f32>(dbeta + (<usize>c << 2), 0);
    store<f32>(dgamma + (<usize>c << 2), 0);
    if (HW > 0) for (let n = 0; n < N; n++) memory.fill(rowAddr(dx, n, c, C, HW), 0, <usize>HW << 2);
  }
}
