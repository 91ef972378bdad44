// Grouped and depthwise convolution over compact activations; see src/backend/kernels.ts for the contract.
//
// Per image and listed output m (group m / (M/G)), each listed input of m's group is copied into a
// zero-padded plane and its taps are accumulated into y's plane, four output pixels at a time
// (contiguous loads at stride 1, even lanes of two loads at stride 2); bias, lower clamp and switch
// value are applied in a last pass. Inputs that are not listed are zero and cost nothing.

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
