// Kernels of this family; see src/backend/kernels.ts for the contract.
//
// Maximum rule: NaN counts as greater than any number, and the first maximum wins ties.

/** Whether (a, ia) beats (b, ib) under the maximum rule. */
@inline function beats(a: f32, ia: i32, b: f32, ib: i32): bool {
  if (a != a) return b == b || ia < ib;
  if (b != b) return false;
  return a > b || (a == b && ia < ib);
}

/**
 * e^x in four lanes: Cephes expf (reduction by ln 2 split in two, degree-6 polynomial), about 2 ulp;
 * 2^n is applied as two factors so that results from 3e38 down into the subnormals stay correct.
 * Below -103.97 gives 0, above 88.7228 gives +Infinity, NaN stays NaN.
 */
@inline function expf4(x: v128): v128 {
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

/** Natural log of a finite s >= 1 without lookup tables: s = 2^k m, m in [sqrt(1/2), sqrt(2)), log m = 2 atanh((m - 1) / (m + 1)). */
@inline function logAtLeastOne(s: f64): f64 {
  const bits = reinterpret<u64>(s);
  let k = <i32>((bits >> 52) & 0x7ff) - 1023;
  let m = reinterpret<f64>((bits & 0x000fffffffffffff) | 0x3ff0000000000000);
  if (m > 1.4142135623730951) {
    m *= 0.5;
    k++;
  }
  const z = (m - 1) / (m + 1);
  const z2 = z * z;
  let p: f64 = 1.0 / 19;
  p = p * z2 + 1.0 / 17;
  p = p * z2 + 1.0 / 15;
  p = p * z2 + 1.0 / 13;
  p = p * z2 + 1.0 / 11;
  p = p * z2 + 1.0 / 9;
  p = p * z2 + 1.0 / 7;
  p = p * z2 + 1.0 / 5;
  p = p * z2 + 1.0 / 3;
  p = p * z2 + 1;
  return <f64>k * 0.6931471805599453 + 2 * z * p;
}

/** Largest of len floats at p (NaN when any is NaN); -Infinity when len = 0. */
@inline function rowMax(p: usize, len: i32): f32 {
  let mv = f32x4.splat(-Infinity);
  let i = 0;
  for (; i + 4 <= len; i += 4) mv = f32x4.max(mv, v128.load(p + (<usize>i << 2)));
  let m = max<f32>(max<f32>(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)), max<f32>(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)));
  for (; i < len; i++) m = max<f32>(m, load<f32>(p + (<usize>i << 2)));
  return m;
}

// losses[n] = max + log(sum of exp(x - max)) - x[label]: finite for any finite logits. The sum is at least 1.
// C = 0 writes loss 0 and no probabilities.
export function softmaxCrossEntropy(logits: usize, labels: usize, N: i32, C: i32, probs: usize, losses: usize): void {
  for (let n = 0; n < N; n++) {
    const xr = logits + (<usize>n * <usize>C << 2);
    const pr = probs + (<usize>n * <usize>C << 2);
    if (C == 0) {
      store<f32>(losses + (<usize>n << 2), 0);
      continue;
    }
    const m = rowMax(xr, C);
    const mv = f32x4.splat(m);
    let acc = f32x4.splat(0);
    let i = 0;
    for (; i + 4 <= C; i += 4) {
      const e = expf4(f32x4.sub(v128.load(xr + (<usize>i << 2)), mv));
      v128.store(pr + (<usize>i << 2), e);
      acc = f32x4.add(acc, e);
    }
    let s: f64 = <f64>f32x4.extract_lane(acc, 0) + <f64>f32x4.extract_lane(acc, 1) + <f64>f32x4.extract_lane(acc, 2) + <f64>f32x4.extract_lane(acc, 3);
    for (; i < C; i++) {
      const e = f32x4.extract_lane(expf4(f32x4.splat(load<f32>(xr + (<usize>i << 2)) - m)), 0);
      store<f32>(pr + (<usize>i << 2), e);
      s += <f64>e;
    }
    const inv = f32x4.splat(<f32>(1 / s));
    for (i = 0; i + 4 <= C; i += 4) {
      const o = pr + (<usize>i << 2);
      v128.store(o, f32x4.mul(v128.load(o), inv));
    }
    for (; i < C; i++) {
      const o = pr + (<usize>i << 2);
      store<f32>(o, load<f32>(o) * f32x4.extract_lane(inv, 0));
    }
    const label = load<i32>(labels + (<usize>n << 2));
    const xl = load<f32>(xr + (<usize>label << 2));
    store<f32>(losses + (<usize>n << 2), <f32>(<f64>m - <f64>xl + logAtLeastOne(s)));
  }
}

export function softmaxCrossEntropyBackward(probs: usize, labels: usize, N: i32, C: i32, scale: f32, dlogits: usize): void {
  const sv = f32x4.splat(scale);
  for (let n = 0; n < N; n++) {
    const pr = probs + (<usize>n * <usize>C << 2);
    const dr = dlogits + (<usize>n * <usize>C << 2);
    let i = 0;
    for (; i + 4 <= C; i += 4) {
      const o = <usize>i << 2;
      v128.store(dr + o, f32x4.mul(sv, v128.load(pr + o)));
    }
    for (; i < C; i++) {
      const o = <usize>i << 2;
      store<f32>(dr + o, scale * load<f32>(pr + o));
    }
    if (C > 0) {
      const o = <usize>load<i32>(labels + (<usize>n << 2)) << 2;
      store<f32>(dr + o, scale * (load<f32>(pr + o) - 1));
    }
  }
}

// C = 0 gives -1.
export function argmaxRows(x: usize, N: i32, C: i32, out: usize): void {
  const four = i32x4.splat(4);
  for (let n = 0; n < N; n++) {
    const xr = x + (<usize>n * <usize>C << 2);
    let best: f32 = -Infinity;
    let idx = C > 0 ? 0 : -1;
    let i = 0;
    if (C >= 4) {
      let bv = f32x4.splat(-Infinity);
      let iv = i32x4(0, 1, 2, 3);
      let cur = iv;
      for (; i + 4 <= C; i += 4) {
        const v = v128.load(xr + (<usize>i << 2));
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
    for (; i < C; i++) {
      const v = load<f32>(xr + (<usize>i << 2));
      if (v > best || (v != v && best == best)) {
        best = v;
        idx = i;
      }
    }
    store<i32>(out + (<usize>n << 2), idx);
  }
}
