// Grouped and depthwise convolution over compact activations; see src/backend/kernels.ts for the contract.
//
// Per image and listed output m (group m / (M/G)), each listed input of m's group is copied into a
// zero-padded plane and its taps are accumulated into y's plane, four output pixels at a time
// (contiguous loads at stride 1, even lanes of two loads at stride 2); bias, lower clamp and switch
// value are applied in a last pass. Inputs that are not listed are zero and cost nothing. 3x3
// depthwise convs (dilation 1, stride 1 or 2 across) keep the nine weights in registers and apply the
// epilogue as they store, eight pixels a step; at stride 2 the padded copy splits even and odd columns
// into two planes, so that every tap is a contiguous load.

import { madd } from './vmath';

const F_C = 1, F_H = 2, F_W = 3, F_M = 4, F_KH = 5, F_KW = 6, F_SH = 7, F_SW = 8;
const F_PT = 9, F_PL = 10, F_DH = 11, F_DW = 12, F_G = 13, F_OH = 14, F_OW = 15;

/** Floats readable past the padded plane: a stride-2 chunk reads 8 floats from its first tap. */
const SLACK: i32 = 16;

@inline function field(desc: usize, i: i32): i32 {
  return load<i32>(desc + (<usize>i << 2));
}

@inline function region(n: usize): usize {
  return ((n << 2) + 63) & ~(<usize>63);
}

/** dst (Hp x Wp) = src (H x W) at (pT, pL), zeros around; every cell of dst is written. */
function padPlane(src: usize, H: i32, W: i32, pT: i32, pL: i32, dst: usize, Hp: i32, Wp: i32): void {
  const j0 = min<i32>(Wp, max<i32>(0, pL)), j1 = max<i32>(j0, min<i32>(Wp, pL + W));
  let d = dst;
  for (let i = 0; i < Hp; i++) {
    const si = i - pT;
    let j = 0;
    if (si >= 0 && si < H) {
      for (; j < j0; j++) store<f32>(d + (<usize>j << 2), 0);
      const s = src + ((<usize>si * <usize>W + <usize>(j0 - pL)) << 2);
      const n = j1 - j0;
      let k = 0;
      for (; k + 4 <= n; k += 4) v128.store(d + (<usize>(j0 + k) << 2), v128.load(s + (<usize>k << 2)));
      for (; k < n; k++) store<f32>(d + (<usize>(j0 + k) << 2), load<f32>(s + (<usize>k << 2)));
      j = j1;
    }
    for (; j < Wp; j++) store<f32>(d + (<usize>j << 2), 0);
    d += <usize>Wp << 2;
  }
}

/**
 * acc (OH x OW, at dst) = (first ? 0 : acc) + Σ_t wt[t] · xp[oh*sH*Wp + ow*sW + koff[t]] over the
 * taps, xp a padded plane of Wp columns.
 */
function accumulate(dst: usize, first: bool, xp: usize, Wp: i32, OH: i32, OW: i32, sH: i32, sW: i32, wt: usize, koff: usize, taps: i32): void {
  const tEnd = <usize>taps << 2;
  for (let oh = 0; oh < OH; oh++) {
    const row = xp + ((<usize>(oh * sH) * <usize>Wp) << 2);
    const d = dst + ((<usize>oh * <usize>OW) << 2);
    let ow = 0;
    if (sW == 1) {
      for (; ow + 4 <= OW; ow += 4) {
        const at = row + (<usize>ow << 2);
        let acc = first ? f32x4.splat(0) : v128.load(d + (<usize>ow << 2));
        for (let t: usize = 0; t < tEnd; t += 4) acc = madd(v128.load32_splat(wt + t), v128.load(at + (<usize>load<i32>(koff + t) << 2)), acc);
        v128.store(d + (<usize>ow << 2), acc);
      }
    } else if (sW == 2) {
      // 8 floats from each tap's first pixel; the even lanes are the 4 outputs' pixels.
      for (; ow + 4 <= OW; ow += 4) {
        const at = row + (<usize>(ow * 2) << 2);
        let acc = first ? f32x4.splat(0) : v128.load(d + (<usize>ow << 2));
        for (let t: usize = 0; t < tEnd; t += 4) {
          const p = at + (<usize>load<i32>(koff + t) << 2);
          acc = madd(v128.load32_splat(wt + t), v128.shuffle<f32>(v128.load(p), v128.load(p, 16), 0, 2, 4, 6), acc);
        }
        v128.store(d + (<usize>ow << 2), acc);
      }
    }
    for (; ow < OW; ow++) {
      const at = row + (<usize>(ow * sW) << 2);
      let acc: f32 = first ? 0 : load<f32>(d + (<usize>ow << 2));
      for (let t: usize = 0; t < tEnd; t += 4) acc += load<f32>(wt + t) * load<f32>(at + (<usize>load<i32>(koff + t) << 2));
      store<f32>(d + (<usize>ow << 2), acc);
    }
  }
}

/**
 * padPlane into two planes of the even and odd columns of the padded plane: even column 2q at
 * ev + (i * We + q) floats, odd column 2q + 1 at od + (i * Wo + q); every cell of both is written.
 */
function padPlaneSplit(src: usize, H: i32, W: i32, pT: i32, pL: i32, ev: usize, od: usize, Hp: i32, We: i32, Wo: i32): void {
  const z = f32x4.splat(0);
  const Wp = We + Wo;
  // Padded columns [pL, end) hold the row; the others are zero.
  const end = min<i32>(Wp, pL + W);
  for (let i = 0; i < Hp; i++) {
    const e = ev + ((<usize>i * <usize>We) << 2), o = od + ((<usize>i * <usize>Wo) << 2);
    const si = i - pT;
    if (si < 0 || si >= H) {
      let q = 0;
      for (; q + 4 <= We; q += 4) v128.store(e + (<usize>q << 2), z);
      for (; q < We; q++) store<f32>(e + (<usize>q << 2), 0);
      q = 0;
      for (; q + 4 <= Wo; q += 4) v128.store(o + (<usize>q << 2), z);
      for (; q < Wo; q++) store<f32>(o + (<usize>q << 2), 0);
      continue;
    }
    const s = src + ((<usize>si * <usize>W) << 2) - (<usize>pL << 2);
    let c = 0;
    for (; c < pL; c++) store<f32>(((c & 1) == 0 ? e : o) + (<usize>(c >> 1) << 2), 0);
    if ((c & 1) != 0 && c < end) {
      store<f32>(o + (<usize>(c >> 1) << 2), load<f32>(s + (<usize>c << 2)));
      c++;
    }
    // From an even column on, eight at a time into four of each plane.
    for (; c + 8 <= end; c += 8) {
      const v0 = v128.load(s + (<usize>c << 2)), v1 = v128.load(s + (<usize>c << 2), 16);
      const q0 = <usize>(c >> 1) << 2;
      v128.store(e + q0, v128.shuffle<f32>(v0, v1, 0, 2, 4, 6));
      v128.store(o + q0, v128.shuffle<f32>(v0, v1, 1, 3, 5, 7));
    }
    for (; c < end; c++) store<f32>(((c & 1) == 0 ? e : o) + (<usize>(c >> 1) << 2), load<f32>(s + (<usize>c << 2)));
    for (; c < Wp; c++) store<f32>(((c & 1) == 0 ? e : o) + (<usize>(c >> 1) << 2), 0);
  }
}

/** max(acc + b, lo) * s to d: pmax in four lanes, max for a single one (as conv2dGroupedInfer's last pass). */
@inline function finish4(d: usize, acc: v128, bv: v128, lv: v128, sv: v128): void {
  v128.store(d, f32x4.mul(f32x4.pmax(f32x4.add(acc, bv), lv), sv));
}

/**
 * One 3x3 depthwise output plane (OH x OW at d) with its epilogue: rows oh * sH + kh of a padded plane;
 * at stride 1 across, column ow + kw of xp (Wp columns); at stride 2, the even and odd column planes of
 * padPlaneSplit (tap kw at ev[ow], od[ow], ev[ow + 1]). Taps accumulate in order, as accumulate() does.
 */
function depthwise3x3(d: usize, xp: usize, od: usize, rowE: i32, rowO: i32, OH: i32, OW: i32, sH: i32, sW: i32, wt: usize, b: f32, lo: f32, s: f32): void {
  const w0 = v128.load32_splat(wt), w1 = v128.load32_splat(wt, 4), w2 = v128.load32_splat(wt, 8);
  const w3 = v128.load32_splat(wt, 12), w4 = v128.load32_splat(wt, 16), w5 = v128.load32_splat(wt, 20);
  const w6 = v128.load32_splat(wt, 24), w7 = v128.load32_splat(wt, 28), w8 = v128.load32_splat(wt, 32);
  const bv = f32x4.splat(b), lv = f32x4.splat(lo), sv = f32x4.splat(s);
  const eRow = <usize>rowE << 2, oRow = <usize>rowO << 2;
  // Tap kw's column offset in bytes from the output's first read: stride 1: kw; stride 2: planes.
  const split = sW == 2;
  for (let oh = 0; oh < OH; oh++) {
    const e0 = xp + <usize>(oh * sH) * eRow, e1 = e0 + eRow, e2 = e1 + eRow;
    const o0 = split ? od + <usize>(oh * sH) * oRow : e0 + 4, o1 = o0 + (split ? oRow : eRow), o2 = o1 + (split ? oRow : eRow);
    const f0 = e0 + (split ? 4 : 8), f1 = f0 + eRow, f2 = f1 + eRow;
    const dr = d + ((<usize>oh * <usize>OW) << 2);
    let ow = 0;
    for (; ow + 8 <= OW; ow += 8) {
      const q = <usize>ow << 2;
      let a = f32x4.mul(w0, v128.load(e0 + q)), c = f32x4.mul(w0, v128.load(e0 + q, 16));
      a = madd(w1, v128.load(o0 + q), a); c = madd(w1, v128.load(o0 + q, 16), c);
      a = madd(w2, v128.load(f0 + q), a); c = madd(w2, v128.load(f0 + q, 16), c);
      a = madd(w3, v128.load(e1 + q), a); c = madd(w3, v128.load(e1 + q, 16), c);
      a = madd(w4, v128.load(o1 + q), a); c = madd(w4, v128.load(o1 + q, 16), c);
      a = madd(w5, v128.load(f1 + q), a); c = madd(w5, v128.load(f1 + q, 16), c);
      a = madd(w6, v128.load(e2 + q), a); c = madd(w6, v128.load(e2 + q, 16), c);
      a = madd(w7, v128.load(o2 + q), a); c = madd(w7, v128.load(o2 + q, 16), c);
      a = madd(w8, v128.load(f2 + q), a); c = madd(w8, v128.load(f2 + q, 16), c);
      finish4(dr + q, a, bv, lv, sv);
      finish4(dr + q + 16, c, bv, lv, sv);
    }
    // The last pixels of a row of at least 4 go as the 4 that end it (those before are stored again, the same values).
    for (; ow < OW && OW >= 4; ow += 4) {
      if (ow + 4 > OW) ow = OW - 4;
      const q = <usize>ow << 2;
      let a = f32x4.mul(w0, v128.load(e0 + q));
      a = madd(w1, v128.load(o0 + q), a);
      a = madd(w2, v128.load(f0 + q), a);
      a = madd(w3, v128.load(e1 + q), a);
      a = madd(w4, v128.load(o1 + q), a);
      a = madd(w5, v128.load(f1 + q), a);
      a = madd(w6, v128.load(e2 + q), a);
      a = madd(w7, v128.load(o2 + q), a);
      a = madd(w8, v128.load(f2 + q), a);
      finish4(dr + q, a, bv, lv, sv);
    }
    for (; ow < OW; ow++) {
      const q = <usize>ow << 2;
      let a: f32 = 0;
      a += load<f32>(wt) * load<f32>(e0 + q);
      a += load<f32>(wt, 4) * load<f32>(o0 + q);
      a += load<f32>(wt, 8) * load<f32>(f0 + q);
      a += load<f32>(wt, 12) * load<f32>(e1 + q);
      a += load<f32>(wt, 16) * load<f32>(o1 + q);
      a += load<f32>(wt, 20) * load<f32>(f1 + q);
      a += load<f32>(wt, 24) * load<f32>(e2 + q);
      a += load<f32>(wt, 28) * load<f32>(o2 + q);
      a += load<f32>(wt, 32) * load<f32>(f2 + q);
      store<f32>(dr + q, max<f32>(a + b, lo) * s);
    }
  }
}

export function conv2dGroupedInfer(desc: usize, x: usize, xList: usize, w: usize, bias: usize, lo: f32, gate: usize,
  y: usize, yList: usize, n0: i32, n1: i32, part: i32, parts: i32, macs: usize, scratch: usize): f64 {
  const C = field(desc, F_C), H = field(desc, F_H), W = field(desc, F_W), M = field(desc, F_M);
  const KH = field(desc, F_KH), KW = field(desc, F_KW), sH = field(desc, F_SH), sW = field(desc, F_SW);
  const pT = field(desc, F_PT), pL = field(desc, F_PL), dH = field(desc, F_DH), dW = field(desc, F_DW);
  const G = field(desc, F_G), OH = field(desc, F_OH), OW = field(desc, F_OW);
  const taps = KH * KW, P = OH * OW, HW = H * W, Cg = C / G, Mg = M / G;
  const Hp = (OH - 1) * sH + dH * (KH - 1) + 1, Wp = (OW - 1) * sW + dW * (KW - 1) + 1;
  const slot = scratch;
  const koff = slot + region(<usize>C);
  const xpad = koff + region(<usize>taps);
  for (let kh = 0; kh < KH; kh++) for (let kw = 0; kw < KW; kw++) store<i32>(koff + (<usize>(kh * KW + kw) << 2), kh * dH * Wp + kw * dW);
  const wTaps = <usize>taps << 2;
  const dw3 = Cg == 1 && KH == 3 && KW == 3 && dH == 1 && dW == 1 && (sW == 1 || sW == 2);
  let total: f64 = 0;
  for (let n = n0; n < n1; n++) {
    const xl = xList + ((<usize>n * <usize>(C + 1)) << 2), yl = yList + ((<usize>n * <usize>(M + 1)) << 2);
    const nIn = load<i32>(xl), nOut = load<i32>(yl);
    for (let c = 0; c < C; c++) store<i32>(slot + (<usize>c << 2), -1);
    for (let j = 0; j < nIn; j++) store<i32>(slot + (<usize>load<i32>(xl + (<usize>(j + 1) << 2)) << 2), j);
    const i0 = nOut * part / parts, i1 = nOut * (part + 1) / parts;
    const xImage = x + ((<usize>n * <usize>C * <usize>HW) << 2);
    let done: f64 = 0;
    for (let i = i0; i < i1; i++) {
      const m = load<i32>(yl + (<usize>(i + 1) << 2));
      const c0 = (m / Mg) * Cg;
      const d = y + ((<usize>n * <usize>M + <usize>i) * <usize>P << 2);
      let first = true;
      if (dw3) {
        const j = load<i32>(slot + (<usize>c0 << 2));
        if (j >= 0) {
          const b: f32 = bias != 0 ? load<f32>(bias + (<usize>m << 2)) : 0;
          const s: f32 = gate != 0 ? load<f32>(gate + ((<usize>n * <usize>M + <usize>m) << 2)) : 1;
          const src = xImage + ((<usize>j * <usize>HW) << 2);
          if (sW == 2) {
            const We = (Wp + 1) >> 1, Wo = Wp >> 1;
            const od = xpad + ((<usize>Hp * <usize>We) << 2);
            padPlaneSplit(src, H, W, pT, pL, xpad, od, Hp, We, Wo);
            depthwise3x3(d, xpad, od, We, Wo, OH, OW, sH, 2, w + <usize>m * wTaps, b, lo, s);
          } else {
            padPlane(src, H, W, pT, pL, xpad, Hp, Wp);
            depthwise3x3(d, xpad, 0, Wp, Wp, OH, OW, sH, 1, w + <usize>m * wTaps, b, lo, s);
          }
          done += <f64>(taps * P);
          continue;
        }
      }
      for (let c = c0; c < c0 + Cg; c++) {
        const j = load<i32>(slot + (<usize>c << 2));
        if (j < 0) continue;
        padPlane(xImage + ((<usize>j * <usize>HW) << 2), H, W, pT, pL, xpad, Hp, Wp);
        accumulate(d, first, xpad, Wp, OH, OW, sH, sW, w + (<usize>(m * Cg + c - c0) * wTaps), koff, taps);
        first = false;
        done += <f64>(taps * P);
      }
      const b: f32 = bias != 0 ? load<f32>(bias + (<usize>m << 2)) : 0;
      const s: f32 = gate != 0 ? load<f32>(gate + ((<usize>n * <usize>M + <usize>m) << 2)) : 1;
      if (first) {
        // No listed input in the group: the output is its bias, clamped and gated.
        const v = max<f32>(b, lo) * s;
        for (let p = 0; p < P; p++) store<f32>(d + (<usize>p << 2), v);
        continue;
      }
      const bv = f32x4.splat(b), lv = f32x4.splat(lo), sv = f32x4.splat(s);
      let p = 0;
      for (; p + 4 <= P; p += 4) {
        const q = d + (<usize>p << 2);
        v128.store(q, f32x4.mul(f32x4.pmax(f32x4.add(v128.load(q), bv), lv), sv));
      }
      for (; p < P; p++) {
        const q = d + (<usize>p << 2);
        store<f32>(q, max<f32>(load<f32>(q) + b, lo) * s);
      }
    }
    if (macs != 0) store<f64>(macs + (<usize>n << 3), done);
    total += done;
  }
  return total;
}
