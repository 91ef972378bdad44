// Kernels of this family; see src/backend/kernels.ts for the contract.
//
// Maximum rule: NaN counts as greater than any number, and the first maximum wins ties.

import { expf4, rowArgmax } from './vmath';

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
  for (let n = 0; n < N; n++) store<i32>(out + (<usize>n << 2), rowArgmax(x + (<usize>n * <usize>C << 2), C));
}
