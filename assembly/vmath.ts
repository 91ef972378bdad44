// Vector helpers shared by the kernel families; nothing here is exported from the module.
//
// Constants are immediates (v128.const, f32.const): no lookup tables, so the module carries no static
// data segment that instantiation would write into the shared memory.

// The relaxed build fuses; the plain SIMD build rounds the product first.
@inline export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

@inline export function hsum(v: v128): f32 {
  return (f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1)) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

/**
 * e^x in four lanes: Cephes expf (reduction by ln 2 split in two, degree-6 polynomial), about 2 ulp;
 * 2^n is applied as two factors so that results from 3e38 down into the subnormals stay correct.
 * Below -103.97 gives 0, above 88.7228 gives +Infinity, NaN stays NaN.
 */
@inline export function expf4(x: v128): v128 {
  const xc = f32x4.max(f32x4.min(x, f32x4.splat(88.72283905206835)), f32x4.splat(-103.97207708399179));
  const fx = f32x4.nearest(f32x4.mul(xc, f32x4.splat(1.44269504088896341)));
  let r = f32x4.sub(xc, f32x4.mul(fx, f32x4.splat(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(fx, f32x4.splat(-2.12194440e-4)));
  let p = f32x4.splat(1.9875691500e-4);
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.3981999507e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(8.3334519073e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(4.1665795894e-2));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.6666665459e-1));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(5.0000001201e-1));
  p = f32x4.add(f32x4.add(f32x4.mul(f32x4.mul(p, r), r), r), f32x4.splat(1));
  const n = i32x4.trunc_sat_f32x4_s(fx);
  const n1 = i32x4.shr_s(n, 1);
  const bias = i32x4.splat(127);
  const y = f32x4.mul(f32x4.mul(p, i32x4.shl(i32x4.add(n1, bias), 23)), i32x4.shl(i32x4.add(i32x4.sub(n, n1), bias), 23));
  const under = f32x4.lt(x, f32x4.splat(-103.97207708399179));
  const over = f32x4.gt(x, f32x4.splat(88.72283905206835));
  return v128.bitselect(f32x4.splat(Infinity), v128.andnot(y, under), over);
}

/** Whether (a, ia) beats (b, ib) when NaN counts as greater than any number and the lower index wins ties. */
@inline function beats(a: f32, ia: i32, b: f32, ib: i32): bool {
  if (a != a) return b == b || ia < ib;
  if (b != b) return false;
  return a > b || (a == b && ia < ib);
}

/** Index of the first maximum of len floats at p, NaN counting as greater than any number; -1 when len = 0. */
@inline export function rowArgmax(p: usize, len: i32): i32 {
  let best: f32 = -Infinity;
  let idx = len > 0 ? 0 : -1;
  let i = 0;
  if (len >= 4) {
    const four = i32x4.splat(4);
    let bv = f32x4.splat(-Infinity);
    let iv = i32x4(0, 1, 2, 3);
    let cur = iv;
    for (; i + 4 <= len; i += 4) {
      const v = v128.load(p + (<usize>i << 2));
      const m = v128.or(f32x4.gt(v, bv), v128.and(f32x4.ne(v, v), f32x4.eq(bv, bv)));
      bv = v128.bitselect(v, bv, m);
      iv = v128.bitselect(cur, iv, m);
      cur = i32x4.add(cur, four);
    }
    best = f32x4.extract_lane(bv, 0);
    idx = i32x4.extract_lane(iv, 0);
    const b1 = f32x4.extract_lane(bv, 1), i1 = i32x4.extract_lane(iv, 1);
    if (beats(b1, i1, best, idx)) { best = b1; idx = i1; }
    const b2 = f32x4.extract_lane(bv, 2), i2 = i32x4.extract_lane(iv, 2);
    if (beats(b2, i2, best, idx)) { best = b2; idx = i2; }
    const b3 = f32x4.extract_lane(bv, 3), i3 = i32x4.extract_lane(iv, 3);
    if (beats(b3, i3, best, idx)) { best = b3; idx = i3; }
  }
  for (; i < len; i++) {
    const v = load<f32>(p + (<usize>i << 2));
    if (v > best || (v != v && best == best)) {
      best = v;
      idx = i;
    }
  }
  return idx;
}
