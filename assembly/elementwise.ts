// Kernels of this family; see src/backend/kernels.ts for the contract.

import { hsum, madd } from './vmath';

/** Sum of len floats at p: four float32 lanes, then the scalar tail. */
@inline function rowSum(p: usize, len: i32): f32 {
  let acc0 = f32x4.splat(0);
  let acc1 = f32x4.splat(0);
  let i = 0;
  for (; i + 8 <= len; i += 8) {
    const o = <usize>i << 2;
    acc0 = f32x4.add(acc0, v128.load(p + o));
    acc1 = f32x4.add(acc1, v128.load(p + o, 16));
  }
  if (i + 4 <= len) {
    acc0 = f32x4.add(acc0, v128.load(p + (<usize>i << 2)));
    i += 4;
  }
  let s = hsum(f32x4.add(acc0, acc1));
  for (; i < len; i++) s += load<f32>(p + (<usize>i << 2));
  return s;
}

/** Sum of a[i] * b[i] over len floats. */
@inline function rowDot(a: usize, b: usize, len: i32): f32 {
  let acc0 = f32x4.splat(0);
  let acc1 = f32x4.splat(0);
  let i = 0;
  for (; i + 8 <= len; i += 8) {
    const o = <usize>i << 2;
    acc0 = madd(v128.load(a + o), v128.load(b + o), acc0);
    acc1 = madd(v128.load(a + o, 16), v128.load(b + o, 16), acc1);
  }
  if (i + 4 <= len) {
    const o = <usize>i << 2;
    acc0 = madd(v128.load(a + o), v128.load(b + o), acc0);
    i += 4;
  }
  let s = hsum(f32x4.add(acc0, acc1));
  for (; i < len; i++) {
    const o = <usize>i << 2;
    s += load<f32>(a + o) * load<f32>(b + o);
  }
  return s;
}

/** y[i] = x[i] * s over len floats. */
@inline function rowScale(x: usize, y: usize, len: i32, s: f32): void {
  const sv = f32x4.splat(s);
  let i = 0;
  for (; i + 4 <= len; i += 4) {
    const o = <usize>i << 2;
    v128.store(y + o, f32x4.mul(v128.load(x + o), sv));
  }
  for (; i < len; i++) {
    const o = <usize>i << 2;
    store<f32>(y + o, load<f32>(x + o) * s);
  }
}

export function fill(y: usize, n: i32, value: f32): void {
  const v = f32x4.splat(value);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(y + (<usize>i << 2), v);
  for (; i < n; i++) store<f32>(y + (<usize>i << 2), value);
}

export function copy(x: usize, y: usize, n: i32): void {
  if (n > 0) memory.copy(y, x, <usize>n << 2);
}

export function add(a: usize, b: usize, y: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(y + o, f32x4.add(v128.load(a + o), v128.load(b + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(y + o, load<f32>(a + o) + load<f32>(b + o));
  }
}

export function sub(a: usize, b: usize, y: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(y + o, f32x4.sub(v128.load(a + o), v128.load(b + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(y + o, load<f32>(a + o) - load<f32>(b + o));
  }
}

export function mul(a: usize, b: usize, y: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(y + o, f32x4.mul(v128.load(a + o), v128.load(b + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(y + o, load<f32>(a + o) * load<f32>(b + o));
  }
}

export function scale(x: usize, y: usize, n: i32, alpha: f32): void {
  rowScale(x, y, n, alpha);
}

export function axpy(n: i32, alpha: f32, x: usize, y: usize): void {
  const av = f32x4.splat(alpha);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(y + o, madd(av, v128.load(x + o), v128.load(y + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(y + o, alpha * load<f32>(x + o) + load<f32>(y + o));
  }
}

export function addBias(y: usize, bias: usize, N: i32, C: i32, HW: i32): void {
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) {
      const b = load<f32>(bias + (<usize>c << 2));
      const bv = f32x4.splat(b);
      const row = y + ((<usize>n * <usize>C + <usize>c) * <usize>HW << 2);
      let i = 0;
      for (; i + 4 <= HW; i += 4) {
        const o = row + (<usize>i << 2);
        v128.store(o, f32x4.add(v128.load(o), bv));
      }
      for (; i < HW; i++) {
        const o = row + (<usize>i << 2);
        store<f32>(o, load<f32>(o) + b);
      }
    }
  }
}

// beta = 0 ignores out's old contents, NaN included.
export function channelSum(x: usize, N: i32, C: i32, HW: i32, out: usize, beta: f32): void {
  for (let c = 0; c < C; c++) {
    let s: f64 = 0;
    for (let n = 0; n < N; n++) s += <f64>rowSum(x + ((<usize>n * <usize>C + <usize>c) * <usize>HW << 2), HW);
    const o = out + (<usize>c << 2);
    store<f32>(o, beta == 0 ? <f32>s : beta * load<f32>(o) + <f32>s);
  }
}

export function channelScale(x: usize, s: usize, y: usize, N: i32, C: i32, HW: i32): void {
  const planes = <usize>N * <usize>C;
  for (let p: usize = 0; p < planes; p++) {
    const o = p * <usize>HW << 2;
    rowScale(x + o, y + o, HW, load<f32>(s + (p << 2)));
  }
}

// dx = 0 or ds = 0 skips that output.
export function channelScaleBackward(x: usize, s: usize, dy: usize, dx: usize, ds: usize, N: i32, C: i32, HW: i32): void {
  const planes = <usize>N * <usize>C;
  for (let p: usize = 0; p < planes; p++) {
    const o = p * <usize>HW << 2;
    if (dx != 0) rowScale(dy + o, dx + o, HW, load<f32>(s + (p << 2)));
    if (ds != 0) store<f32>(ds + (p << 2), rowDot(dy + o, x + o, HW));
  }
}

export function sum(x: usize, n: i32): f64 {
  let acc0 = f64x2.splat(0);
  let acc1 = f64x2.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const v = v128.load(x + (<usize>i << 2));
    acc0 = f64x2.add(acc0, f64x2.promote_low_f32x4(v));
    acc1 = f64x2.add(acc1, f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1)));
  }
  const acc = f64x2.add(acc0, acc1);
  let s = f64x2.extract_lane(acc, 0) + f64x2.extract_lane(acc, 1);
  for (; i < n; i++) s += <f64>load<f32>(x + (<usize>i << 2));
  return s;
}

// Products of two float32 values are exact in float64.
export function sumSquares(x: usize, n: i32): f64 {
  let acc0 = f64x2.splat(0);
  let acc1 = f64x2.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const v = v128.load(x + (<usize>i << 2));
    const lo = f64x2.promote_low_f32x4(v);
    const hi = f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1));
    acc0 = f64x2.add(acc0, f64x2.mul(lo, lo));
    acc1 = f64x2.add(acc1, f64x2.mul(hi, hi));
  }
  const acc = f64x2.add(acc0, acc1);
  let s = f64x2.extract_lane(acc, 0) + f64x2.extract_lane(acc, 1);
  for (; i < n; i++) {
    const v = <f64>load<f32>(x + (<usize>i << 2));
    s += v * v;
  }
  return s;
}

export function countNonFinite(x: usize, n: i32): i32 {
  const expMask = i32x4.splat(0x7f800000);
  let acc = i32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const bits = v128.and(v128.load(x + (<usize>i << 2)), expMask);
    acc = i32x4.sub(acc, i32x4.eq(bits, expMask));
  }
  let count = i32x4.extract_lane(acc, 0) + i32x4.extract_lane(acc, 1) + i32x4.extract_lane(acc, 2) + i32x4.extract_lane(acc, 3);
  for (; i < n; i++) {
    if ((load<i32>(x + (<usize>i << 2)) & 0x7f800000) == 0x7f800000) count++;
  }
  return count;
}

// lowbias32 (C. Wellons): a bijective 32-bit mixer.
@inline function mix32(h: u32): u32 {
  h ^= h >>> 16;
  h *= 0x7feb352d;
  h ^= h >>> 15;
  h *= 0x846ca68b;
  h ^= h >>> 16;
  return h;
}

@inline function mix32x4(h: v128): v128 {
  h = v128.xor(h, i32x4.shr_u(h, 16));
  h = i32x4.mul(h, i32x4.splat(0x7feb352d));
  h = v128.xor(h, i32x4.shr_u(h, 15));
  h = i32x4.mul(h, i32x4.splat(<i32>0x846ca68b));
  h = v128.xor(h, i32x4.shr_u(h, 16));
  return h;
}

// i counts from the pointers passed: callers that split a range give each part its own seed.
// keep[i] = u >= p with u = (hash(seed, i) >>> 8) / 2^24 and hash = mix32(mix32(i + key) ^ key), key = mix32(seed).
export function dropoutForward(x: usize, y: usize, mask: usize, n: i32, p: f32, seed: i32): void {
  const key = mix32(<u32>seed);
  const keep: f32 = <f32>1 / (<f32>1 - p);
  const unit: f32 = 1.0 / 16777216.0;
  const keyv = i32x4.splat(<i32>key);
  const pv = f32x4.splat(p);
  const keepv = f32x4.splat(keep);
  const unitv = f32x4.splat(unit);
  let idx = i32x4(0, 1, 2, 3);
  const four = i32x4.splat(4);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const h = mix32x4(v128.xor(mix32x4(i32x4.add(idx, keyv)), keyv));
    const u = f32x4.mul(f32x4.convert_i32x4_u(i32x4.shr_u(h, 8)), unitv);
    const m = v128.and(keepv, f32x4.ge(u, pv));
    v128.store(mask + o, m);
    v128.store(y + o, f32x4.mul(v128.load(x + o), m));
    idx = i32x4.add(idx, four);
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const h = mix32(mix32(<u32>i + key) ^ key);
    const u = <f32>(h >>> 8) * unit;
    const m: f32 = u >= p ? keep : 0;
    store<f32>(mask + o, m);
    store<f32>(y + o, load<f32>(x + o) * m);
  }
}
