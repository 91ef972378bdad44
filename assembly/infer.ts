// Inference kernels over compact activations; see src/backend/kernels.ts for the contract.
//
// A compact value of C channels holds, for image n, the planes of the channels its list names, first
// and in list order (list + n*(C+1)*4: count, then ascending ids). conv2dInfer reads only the listed
// input planes and computes only the listed outputs, bias, lower clamp (ReLU) and switch values fused
// into its epilogue. Per image it packs the weight block (listed outputs x listed inputs x taps) into
// MR-row panels; when every output is listed it takes the panels conv2dInferPack made, whole when every
// input is listed too, else reading or copying each listed input's block of them; the input is
// read in place from zero-padded copies of the listed planes (or from the planes themselves when the
// producer stored them padded), 8 output pixels of one row at a time; an image whose weight block
// reaches the descriptor's gemmFrom (or any, when strided) goes through the GEMM path instead
// (assembly/infer-gemm.ts). Padded outputs are stored inside their padded planes, whose borders the
// kernel never writes.

import { expf4, hsum, madd } from './vmath';
import { convGemm } from './infer-gemm';
import { Blocks, inBlocks, Panel } from './infer-tiles';
import { sixes, fives, tileCount, tileStart } from './row-tiles';

const F_C = 1, F_H = 2, F_W = 3, F_M = 4, F_KH = 5, F_KW = 6, F_SH = 7, F_SW = 8;
const F_PT = 9, F_PL = 10, F_DH = 11, F_DW = 12, F_OH = 14, F_OW = 15;
const M_H = 0, M_W = 1, M_COLS = 2, M_SIZE = 3;
const F_X_PADDED = 16, F_Y_TOP = 17, F_Y_LEFT = 18, F_Y_ROWS = 19, F_Y_COLS = 20, F_GEMM_FROM = 21;
const P_C = 1, P_H = 2, P_W = 3, P_KH = 4, P_KW = 5, P_SH = 6, P_SW = 7, P_PT = 8, P_PL = 9, P_OH = 10, P_OW = 11, P_INCLUDE_PAD = 12;

/** Floats readable past the padded planes and the B panel: a row's last 8-pixel read may run 7 past. */
const SLACK: i32 = 16;

@inline function field(desc: usize, i: i32): i32 {
  return load<i32>(desc + (<usize>i << 2));
}

/** Bytes of a scratch region of n floats or ints, so that the next one starts on 64 bytes. */
@inline function region(n: usize): usize {
  return ((n << 2) + 63) & ~(<usize>63);
}

@inline function listCount(list: usize, n: i32, C: i32): i32 {
  return load<i32>(list + ((<usize>n * <usize>(C + 1)) << 2));
}

@inline function listIds(list: usize, n: i32, C: i32): usize {
  return list + ((<usize>n * <usize>(C + 1) + 1) << 2);
}

@inline function zeroFloats(d: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(d + (<usize>i << 2), f32x4.splat(0));
  for (; i < n; i++) store<f32>(d + (<usize>i << 2), 0);
}

@inline function copyFloats(d: usize, s: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(d + (<usize>i << 2), v128.load(s + (<usize>i << 2)));
  for (; i < n; i++) store<f32>(d + (<usize>i << 2), load<f32>(s + (<usize>i << 2)));
}

// ---- conv2dInfer ----

/**
 * max(acc + bias, lo) in four lanes. pmax(x, lo) is one instruction where max is eight in V8 (x64), keeps
 * x when x is NaN, as max does, and differs from max only in giving -0 for max(-0, 0).
 */
@inline function clampLo(x: v128, lv: v128): v128 {
  return f32x4.pmax(x, lv);
}

/** max(acc + bias, lo) * gate for one full row of a tile, stored to p. */
@inline function finish(p: usize, v0: v128, v1: v128, rb: usize, rg: usize, lv: v128): void {
  const bv = v128.load32_splat(rb);
  const gv = v128.load32_splat(rg);
  v128.store(p, f32x4.mul(clampLo(f32x4.add(v0, bv), lv), gv));
  v128.store(p, f32x4.mul(clampLo(f32x4.add(v1, bv), lv), gv), 16);
}

@inline function finish4(p: usize, v: v128, rb: usize, rg: usize, lv: v128): void {
  v128.store(p, f32x4.mul(clampLo(f32x4.add(v, v128.load32_splat(rb)), lv), v128.load32_splat(rg)));
}

@inline function spill(tmp: usize, r: i32, v0: v128, v1: v128): void {
  v128.store(tmp + (<usize>r << 5), v0);
  v128.store(tmp + (<usize>r << 5), v1, 16);
}

/** The epilogue of rows [0, mr) and lanes [0, nr) of a tile whose accumulators were spilled to tmp (8 floats a row). */
function finishEdge(tmp: usize, c: usize, ldc: usize, rb: usize, rg: usize, lp: usize, mr: i32, nr: i32): void {
  const lv = v128.load32_splat(lp);
  for (let r = 0; r < mr; r++) {
    const bv = v128.load32_splat(rb + (<usize>r << 2)), gv = v128.load32_splat(rg + (<usize>r << 2));
    const t = tmp + (<usize>r << 5), d = c + <usize>r * ldc;
    let v = f32x4.mul(clampLo(f32x4.add(v128.load(t), bv), lv), gv);
    let l = 0;
    if (nr >= 4) {
      v128.store(d, v);
      v = f32x4.mul(clampLo(f32x4.add(v128.load(t, 16), bv), lv), gv);
      l = 4;
    }
    if (l < nr) store<f32>(d + (<usize>l << 2), f32x4.extract_lane(v, 0));
    if (l + 1 < nr) store<f32>(d + (<usize>(l + 1) << 2), f32x4.extract_lane(v, 1));
    if (l + 2 < nr) store<f32>(d + (<usize>(l + 2) << 2), f32x4.extract_lane(v, 2));
    if (l + 3 < nr) store<f32>(d + (<usize>(l + 3) << 2), f32x4.extract_lane(v, 3));
  }
}

// The tile kernels: rows [0, mr) of an R x 8 (or R x 4) tile, acc[r][l] = Σ_k a[k*MR + r] * b[koff[k] + l]
// over K (a: an MR-row panel, its first R rows read), then max(acc + bias, lo) * gate with the rows'
// bias and gate (rb, rg) and the clamp at lp, lanes [0, nr) stored to c + r*ldc bytes. A partial tile
// goes through the spill block tmp and finishEdge: inlining its stores, or calling anything while the
// accumulators live, makes V8 spill them (a third slower). Their A type says where the MR floats of
// each k lie: Panel, one after another from a; Blocks, at a + blocks[k] bytes (the listed inputs' rows
// of a conv2dInferPack panel, read in place). The Blocks loop is a second loop beside Panel's, not a
// loop over inputs around it: V8 compiles nested loops here a third to a half slower.

function tile6<A>(K: i32, a: usize, b: usize, koff: usize, c: usize, ldc: usize, rb: usize, rg: usize, lp: usize, mr: i32, nr: i32, tmp: usize,
  blocks: usize, taps: i32): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  let c40 = f32x4.splat(0), c41 = f32x4.splat(0), c50 = f32x4.splat(0), c51 = f32x4.splat(0);
  let kp = koff;
  if (inBlocks<A>()) {
    let ka = blocks;
    const kend = koff + (<usize>K << 2);
    while (kp < kend) {
      const ak = a + <usize>load<i32>(ka);
      const bk = b + (<usize>load<i32>(kp) << 2);
      const b0 = v128.load(bk);
      const b1 = v128.load(bk, 16);
      let av = v128.load32_splat(ak);
      c00 = madd(av, b0, c00);
      c01 = madd(av, b1, c01);
      av = v128.load32_splat(ak, 4);
      c10 = madd(av, b0, c10);
      c11 = madd(av, b1, c11);
      av = v128.load32_splat(ak, 8);
      c20 = madd(av, b0, c20);
      c21 = madd(av, b1, c21);
      av = v128.load32_splat(ak, 12);
      c30 = madd(av, b0, c30);
      c31 = madd(av, b1, c31);
      av = v128.load32_splat(ak, 16);
      c40 = madd(av, b0, c40);
      c41 = madd(av, b1, c41);
      av = v128.load32_splat(ak, 20);
      c50 = madd(av, b0, c50);
      c51 = madd(av, b1, c51);
      kp += 4;
      ka += 4;
    }
  } else {
    const end = a + <usize>K * 24;
    while (a < end) {
      const bk = b + (<usize>load<i32>(kp) << 2);
      const b0 = v128.load(bk);
      const b1 = v128.load(bk, 16);
      let av = v128.load32_splat(a);
      c00 = madd(av, b0, c00);
      c01 = madd(av, b1, c01);
      av = v128.load32_splat(a, 4);
      c10 = madd(av, b0, c10);
      c11 = madd(av, b1, c11);
      av = v128.load32_splat(a, 8);
      c20 = madd(av, b0, c20);
      c21 = madd(av, b1, c21);
      av = v128.load32_splat(a, 12);
      c30 = madd(av, b0, c30);
      c31 = madd(av, b1, c31);
      av = v128.load32_splat(a, 16);
      c40 = madd(av, b0, c40);
      c41 = madd(av, b1, c41);
      av = v128.load32_splat(a, 20);
      c50 = madd(av, b0, c50);
      c51 = madd(av, b1, c51);
      a += 24;
      kp += 4;
    }
  }
  if (mr == 6 && nr == 8) {
    const lv = v128.load32_splat(lp);
    finish(c, c00, c01, rb, rg, lv);
    finish(c + ldc, c10, c11, rb + 4, rg + 4, lv);
    finish(c + 2 * ldc, c20, c21, rb + 8, rg + 8, lv);
    finish(c + 3 * ldc, c30, c31, rb + 12, rg + 12, lv);
    finish(c + 4 * ldc, c40, c41, rb + 16, rg + 16, lv);
    finish(c + 5 * ldc, c50, c51, rb + 20, rg + 20, lv);
    return;
  }
  spill(tmp, 0, c00, c01);
  spill(tmp, 1, c10, c11);
  spill(tmp, 2, c20, c21);
  spill(tmp, 3, c30, c31);
  spill(tmp, 4, c40, c41);
  spill(tmp, 5, c50, c51);
  finishEdge(tmp, c, ldc, rb, rg, lp, mr, nr);
}

/** The 4 x 8 tile from the first 4 rows of an MR-row panel. */
function tile4<A>(K: i32, a: usize, b: usize, koff: usize, c: usize, ldc: usize, rb: usize, rg: usize, lp: usize, mr: i32, nr: i32, tmp: usize,
  blocks: usize, taps: i32): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  const step = <usize>GEMM_MR << 2;
  let kp = koff;
  if (inBlocks<A>()) {
    let ka = blocks;
    const kend = koff + (<usize>K << 2);
    while (kp < kend) {
      const ak = a + <usize>load<i32>(ka);
      const bk = b + (<usize>load<i32>(kp) << 2);
      const b0 = v128.load(bk);
      const b1 = v128.load(bk, 16);
      let av = v128.load32_splat(ak);
      c00 = madd(av, b0, c00);
      c01 = madd(av, b1, c01);
      av = v128.load32_splat(ak, 4);
      c10 = madd(av, b0, c10);
      c11 = madd(av, b1, c11);
      av = v128.load32_splat(ak, 8);
      c20 = madd(av, b0, c20);
      c21 = madd(av, b1, c21);
      av = v128.load32_splat(ak, 12);
      c30 = madd(av, b0, c30);
      c31 = madd(av, b1, c31);
      kp += 4;
      ka += 4;
    }
  } else {
    const end = a + <usize>K * step;
    while (a < end) {
      const bk = b + (<usize>load<i32>(kp) << 2);
      const b0 = v128.load(bk);
      const b1 = v128.load(bk, 16);
      let av = v128.load32_splat(a);
      c00 = madd(av, b0, c00);
      c01 = madd(av, b1, c01);
      av = v128.load32_splat(a, 4);
      c10 = madd(av, b0, c10);
      c11 = madd(av, b1, c11);
      av = v128.load32_splat(a, 8);
      c20 = madd(av, b0, c20);
      c21 = madd(av, b1, c21);
      av = v128.load32_splat(a, 12);
      c30 = madd(av, b0, c30);
      c31 = madd(av, b1, c31);
      a += step;
      kp += 4;
    }
  }
  if (mr == 4 && nr == 8) {
    const lv = v128.load32_splat(lp);
    finish(c, c00, c01, rb, rg, lv);
    finish(c + ldc, c10, c11, rb + 4, rg + 4, lv);
    finish(c + 2 * ldc, c20, c21, rb + 8, rg + 8, lv);
    finish(c + 3 * ldc, c30, c31, rb + 12, rg + 12, lv);
    return;
  }
  spill(tmp, 0, c00, c01);
  spill(tmp, 1, c10, c11);
  spill(tmp, 2, c20, c21);
  spill(tmp, 3, c30, c31);
  finishEdge(tmp, c, ldc, rb, rg, lp, mr, nr);
}

/** The 5 x 8 tile from the first 5 rows of an MR-row panel. */
function tile5<A>(K: i32, a: usize, b: usize, koff: usize, c: usize, ldc: usize, rb: usize, rg: usize, lp: usize, mr: i32, nr: i32, tmp: usize,
  blocks: usize, taps: i32): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0), c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0), c40 = f32x4.splat(0), c41 = f32x4.splat(0);
  const step = <usize>GEMM_MR << 2;
  let kp = koff;
  if (inBlocks<A>()) {
    let ka = blocks;
    const kend = koff + (<usize>K << 2);
    while (kp < kend) {
      const ak = a + <usize>load<i32>(ka);
      const bk = b + (<usize>load<i32>(kp) << 2);
      const b0 = v128.load(bk);
      const b1 = v128.load(bk, 16);
      let av = v128.load32_splat(ak);
      c00 = madd(av, b0, c00);
      c01 = madd(av, b1, c01);
      av = v128.load32_splat(ak, 4);
      c10 = madd(av, b0, c10);
      c11 = madd(av, b1, c11);
      av = v128.load32_splat(ak, 8);
      c20 = madd(av, b0, c20);
      c21 = madd(av, b1, c21);
      av = v128.load32_splat(ak, 12);
      c30 = madd(av, b0, c30);
      c31 = madd(av, b1, c31);
      av = v128.load32_splat(ak, 16);
      c40 = madd(av, b0, c40);
      c41 = madd(av, b1, c41);
      kp += 4;
      ka += 4;
    }
  } else {
    const end = a + <usize>K * step;
    while (a < end) {
      const bk = b + (<usize>load<i32>(kp) << 2);
      const b0 = v128.load(bk);
      const b1 = v128.load(bk, 16);
      let av = v128.load32_splat(a);
      c00 = madd(av, b0, c00);
      c01 = madd(av, b1, c01);
      av = v128.load32_splat(a, 4);
      c10 = madd(av, b0, c10);
      c11 = madd(av, b1, c11);
      av = v128.load32_splat(a, 8);
      c20 = madd(av, b0, c20);
      c21 = madd(av, b1, c21);
      av = v128.load32_splat(a, 12);
      c30 = madd(av, b0, c30);
      c31 = madd(av, b1, c31);
      av = v128.load32_splat(a, 16);
      c40 = madd(av, b0, c40);
      c41 = madd(av, b1, c41);
      a += 24;
      kp += 4;
    }
  }
  if (mr == 5 && nr == 8) {
    const lv = v128.load32_splat(lp);
    finish(c, c00, c01, rb, rg, lv);
    finish(c + ldc, c10, c11, rb + 4, rg + 4, lv);
    finish(c + 2 * ldc, c20, c21, rb + 8, rg + 8, lv);
    finish(c + 3 * ldc, c30, c31, rb + 12, rg + 12, lv);
    finish(c + 4 * ldc, c40, c41, rb + 16, rg + 16, lv);
    return;
  }
  spill(tmp, 0, c00, c01);
  spill(tmp, 1, c10, c11);
  spill(tmp, 2, c20, c21);
  spill(tmp, 3, c30, c31);
  spill(tmp, 4, c40, c41);
  finishEdge(tmp, c, ldc, rb, rg, lp, mr, nr);
}

/** The 6 x 4 tile, as tile6 over four pixels (the last ones of a row). */
function tile6x4<A>(K: i32, a: usize, b: usize, koff: usize, c: usize, ldc: usize, rb: usize, rg: usize, lp: usize, mr: i32, nr: i32, tmp: usize,
  blocks: usize, taps: i32): void {
  let c0 = f32x4.splat(0), c1 = f32x4.splat(0), c2 = f32x4.splat(0), c3 = f32x4.splat(0), c4 = f32x4.splat(0), c5 = f32x4.splat(0);
  let kp = koff;
  if (inBlocks<A>()) {
    let ka = blocks;
    const kend = koff + (<usize>K << 2);
    while (kp < kend) {
      const ak = a + <usize>load<i32>(ka);
      const b0 = v128.load(b + (<usize>load<i32>(kp) << 2));
      c0 = madd(v128.load32_splat(ak), b0, c0);
      c1 = madd(v128.load32_splat(ak, 4), b0, c1);
      c2 = madd(v128.load32_splat(ak, 8), b0, c2);
      c3 = madd(v128.load32_splat(ak, 12), b0, c3);
      c4 = madd(v128.load32_splat(ak, 16), b0, c4);
      c5 = madd(v128.load32_splat(ak, 20), b0, c5);
      kp += 4;
      ka += 4;
    }
  } else {
    const end = a + <usize>K * 24;
    while (a < end) {
      const b0 = v128.load(b + (<usize>load<i32>(kp) << 2));
      c0 = madd(v128.load32_splat(a), b0, c0);
      c1 = madd(v128.load32_splat(a, 4), b0, c1);
      c2 = madd(v128.load32_splat(a, 8), b0, c2);
      c3 = madd(v128.load32_splat(a, 12), b0, c3);
      c4 = madd(v128.load32_splat(a, 16), b0, c4);
      c5 = madd(v128.load32_splat(a, 20), b0, c5);
      a += 24;
      kp += 4;
    }
  }
  if (mr == 6 && nr == 4) {
    const lv = v128.load32_splat(lp);
    finish4(c, c0, rb, rg, lv);
    finish4(c + ldc, c1, rb + 4, rg + 4, lv);
    finish4(c + 2 * ldc, c2, rb + 8, rg + 8, lv);
    finish4(c + 3 * ldc, c3, rb + 12, rg + 12, lv);
    finish4(c + 4 * ldc, c4, rb + 16, rg + 16, lv);
    finish4(c + 5 * ldc, c5, rb + 20, rg + 20, lv);
    return;
  }
  v128.store(tmp, c0);
  v128.store(tmp, c1, 32);
  v128.store(tmp, c2, 64);
  v128.store(tmp, c3, 96);
  v128.store(tmp, c4, 128);
  v128.store(tmp, c5, 160);
  finishEdge(tmp, c, ldc, rb, rg, lp, mr, nr);
}

/** The 4 x 4 tile from the first 4 rows of an MR-row panel. */
function tile4x4<A>(K: i32, a: usize, b: usize, koff: usize, c: usize, ldc: usize, rb: usize, rg: usize, lp: usize, mr: i32, nr: i32, tmp: usize,
  blocks: usize, taps: i32): void {
  let c0 = f32x4.splat(0), c1 = f32x4.splat(0), c2 = f32x4.splat(0), c3 = f32x4.splat(0);
  const step = <usize>GEMM_MR << 2;
  let kp = koff;
  if (inBlocks<A>()) {
    let ka = blocks;
    const kend = koff + (<usize>K << 2);
    while (kp < kend) {
      const ak = a + <usize>load<i32>(ka);
      const b0 = v128.load(b + (<usize>load<i32>(kp) << 2));
      c0 = madd(v128.load32_splat(ak), b0, c0);
      c1 = madd(v128.load32_splat(ak, 4), b0, c1);
      c2 = madd(v128.load32_splat(ak, 8), b0, c2);
      c3 = madd(v128.load32_splat(ak, 12), b0, c3);
      kp += 4;
      ka += 4;
    }
  } else {
    const end = a + <usize>K * step;
    while (a < end) {
      const b0 = v128.load(b + (<usize>load<i32>(kp) << 2));
      c0 = madd(v128.load32_splat(a), b0, c0);
      c1 = madd(v128.load32_splat(a, 4), b0, c1);
      c2 = madd(v128.load32_splat(a, 8), b0, c2);
      c3 = madd(v128.load32_splat(a, 12), b0, c3);
      a += step;
      kp += 4;
    }
  }
  if (mr == 4 && nr == 4) {
    const lv = v128.load32_splat(lp);
    finish4(c, c0, rb, rg, lv);
    finish4(c + ldc, c1, rb + 4, rg + 4, lv);
    finish4(c + 2 * ldc, c2, rb + 8, rg + 8, lv);
    finish4(c + 3 * ldc, c3, rb + 12, rg + 12, lv);
    return;
  }
  v128.store(tmp, c0);
  v128.store(tmp, c1, 32);
  v128.store(tmp, c2, 64);
  v128.store(tmp, c3, 96);
  finishEdge(tmp, c, ldc, rb, rg, lp, mr, nr);
}

/** The 5 x 4 tile from the first 5 rows of an MR-row panel. */
function tile5x4<A>(K: i32, a: usize, b: usize, koff: usize, c: usize, ldc: usize, rb: usize, rg: usize, lp: usize, mr: i32, nr: i32, tmp: usize,
  blocks: usize, taps: i32): void {
  let c0 = f32x4.splat(0), c1 = f32x4.splat(0), c2 = f32x4.splat(0), c3 = f32x4.splat(0), c4 = f32x4.splat(0);
  const step = <usize>GEMM_MR << 2;
  let kp = koff;
  if (inBlocks<A>()) {
    let ka = blocks;
    const kend = koff + (<usize>K << 2);
    while (kp < kend) {
      const ak = a + <usize>load<i32>(ka);
      const bk = b + (<usize>load<i32>(kp) << 2);
      const b0 = v128.load(bk);
      c0 = madd(v128.load32_splat(ak), b0, c0);
      c1 = madd(v128.load32_splat(ak, 4), b0, c1);
      c2 = madd(v128.load32_splat(ak, 8), b0, c2);
      c3 = madd(v128.load32_splat(ak, 12), b0, c3);
      c4 = madd(v128.load32_splat(ak, 16), b0, c4);
      kp += 4;
      ka += 4;
    }
  } else {
    const end = a + <usize>K * step;
    while (a < end) {
      const bk = b + (<usize>load<i32>(kp) << 2);
      const b0 = v128.load(bk);
      c0 = madd(v128.load32_splat(a), b0, c0);
      c1 = madd(v128.load32_splat(a, 4), b0, c1);
      c2 = madd(v128.load32_splat(a, 8), b0, c2);
      c3 = madd(v128.load32_splat(a, 12), b0, c3);
      c4 = madd(v128.load32_splat(a, 16), b0, c4);
      a += 24;
      kp += 4;
    }
  }
  if (mr == 5 && nr == 4) {
    const lv = v128.load32_splat(lp);
    finish4(c, c0, rb, rg, lv);
    finish4(c + ldc, c1, rb + 4, rg + 4, lv);
    finish4(c + 2 * ldc, c2, rb + 8, rg + 8, lv);
    finish4(c + 3 * ldc, c3, rb + 12, rg + 12, lv);
    finish4(c + 4 * ldc, c4, rb + 16, rg + 16, lv);
    return;
  }
  v128.store(tmp, c0);
  v128.store(tmp, c1, 32);
  v128.store(tmp, c2, 64);
  v128.store(tmp, c3, 96);
  v128.store(tmp, c4, 128);
  finishEdge(tmp, c, ldc, rb, rg, lp, mr, nr);
}

/**
 * One 8-pixel panel (nr pixels) against tiles [t0, t1) of an image's `rows` outputs: a points at tile
 * t0's A (tiles aStride bytes apart), c, rb and rg at row tileStart(t0).
 */
function runTiles<A>(rows: i32, t0: i32, t1: i32, K: i32, a: usize, aStride: usize, b: usize, koff: usize, c: usize, ldc: usize, rb: usize, rg: usize,
  lp: usize, nr: i32, blocks: usize, taps: i32): void {
  const tmp = lp + 64;
  const first = tileStart(rows, t0);
  const s = sixes(rows), sf = s + fives(rows);
  let r0 = first;
  for (let t = t0; t < t1; t++) {
    const h = t < s ? 6 : t < sf ? 5 : 4;
    const mr = min<i32>(h, rows - r0);
    const o = <usize>(r0 - first);
    const ct = c + o * ldc, rbt = rb + (o << 2), rgt = rg + (o << 2);
    if (nr > 4) {
      if (h == 6) tile6<A>(K, a, b, koff, ct, ldc, rbt, rgt, lp, mr, nr, tmp, blocks, taps);
      else if (h == 5) tile5<A>(K, a, b, koff, ct, ldc, rbt, rgt, lp, mr, nr, tmp, blocks, taps);
      else tile4<A>(K, a, b, koff, ct, ldc, rbt, rgt, lp, mr, nr, tmp, blocks, taps);
    } else {
      if (h == 6) tile6x4<A>(K, a, b, koff, ct, ldc, rbt, rgt, lp, mr, nr, tmp, blocks, taps);
      else if (h == 5) tile5x4<A>(K, a, b, koff, ct, ldc, rbt, rgt, lp, mr, nr, tmp, blocks, taps);
      else tile4x4<A>(K, a, b, koff, ct, ldc, rbt, rgt, lp, mr, nr, tmp, blocks, taps);
    }
    a += aStride;
    r0 += h;
  }
}

/** runTiles over one panel per tile, or (inPlace) over prepacked panels' rows at the offsets per k in blocks. */
@inline function tilesOf(inPlace: bool, rows: i32, t0: i32, t1: i32, K: i32, a: usize, aStride: usize, b: usize, koff: usize, c: usize, ldc: usize,
  rb: usize, rg: usize, lp: usize, nr: i32, blocks: usize, taps: i32): void {
  if (inPlace) runTiles<Blocks>(rows, t0, t1, K, a, aStride, b, koff, c, ldc, rb, rg, lp, nr, blocks, taps);
  else runTiles<Panel>(rows, t0, t1, K, a, aStride, b, koff, c, ldc, rb, rg, lp, nr, 0, taps);
}

/** Entry i of an id list, or i for the identity (list 0). */
@inline function listed(ids: usize, i: i32): i32 {
  return ids != 0 ? load<i32>(ids + (<usize>i << 2)) : i;
}

/** Taps 0-3 of rows 0-3 (v0..v3) transposed: tap t's four rows to d + t * 24 bytes (6-float panel rows). */
@inline function store4x4(d: usize, v0: v128, v1: v128, v2: v128, v3: v128): void {
  const a = v128.shuffle<f32>(v0, v1, 0, 4, 1, 5), b = v128.shuffle<f32>(v0, v1, 2, 6, 3, 7);
  const c = v128.shuffle<f32>(v2, v3, 0, 4, 1, 5), e = v128.shuffle<f32>(v2, v3, 2, 6, 3, 7);
  v128.store(d, v128.shuffle<f32>(a, c, 0, 1, 4, 5));
  v128.store(d, v128.shuffle<f32>(a, c, 2, 3, 6, 7), 24);
  v128.store(d, v128.shuffle<f32>(b, e, 0, 1, 4, 5), 48);
  v128.store(d, v128.shuffle<f32>(b, e, 2, 3, 6, 7), 72);
}

/** Taps 0-3 of rows 4 and 5 (v4, v5): tap t's two rows to d + t * 24 + 16 bytes. */
@inline function store2x4(d: usize, v4: v128, v5: v128): void {
  const lo = v128.shuffle<f32>(v4, v5, 0, 4, 1, 5), hi = v128.shuffle<f32>(v4, v5, 2, 6, 3, 7);
  v128.store64_lane(d, lo, 0, 16);
  v128.store64_lane(d, lo, 1, 40);
  v128.store64_lane(d, hi, 0, 64);
  v128.store64_lane(d, hi, 1, 88);
}

/** packWeights for 3x3 kernels and 6-float panels: each input channel's 6 x 9 block transposed with vector shuffles. */
function packWeights3x3(w: usize, C: i32, outs: usize, rows: i32, t0: i32, t1: i32, ins: usize, nIn: i32, dst: usize): void {
  const rowBytes = <usize>C * 36;
  for (let t = t0; t < t1; t++) {
    const r0 = tileStart(rows, t), h = tileStart(rows, t + 1) - r0;
    let d = dst + <usize>(t - t0) * <usize>nIn * 216;
    // Rows past the outputs repeat the last one, and a 5-row tile packs a sixth: their results are never stored.
    const last = rows - 1;
    const m0 = listed(outs, min<i32>(r0, last)), m1 = listed(outs, min<i32>(r0 + 1, last));
    const m2 = listed(outs, min<i32>(r0 + 2, last)), m3 = listed(outs, min<i32>(r0 + 3, last));
    const w0 = w + <usize>m0 * rowBytes, w1 = w + <usize>m1 * rowBytes, w2 = w + <usize>m2 * rowBytes, w3 = w + <usize>m3 * rowBytes;
    if (h >= 5) {
      const m4 = listed(outs, min<i32>(r0 + 4, last)), m5 = listed(outs, min<i32>(r0 + 5, last));
      const w4 = w + <usize>m4 * rowBytes, w5 = w + <usize>m5 * rowBytes;
      for (let j = 0; j < nIn; j++) {
        const o = <usize>listed(ins, j) * 36;
        const s0 = w0 + o, s1 = w1 + o, s2 = w2 + o, s3 = w3 + o, s4 = w4 + o, s5 = w5 + o;
        store4x4(d, v128.load(s0), v128.load(s1), v128.load(s2), v128.load(s3));
        store4x4(d + 96, v128.load(s0, 16), v128.load(s1, 16), v128.load(s2, 16), v128.load(s3, 16));
        store2x4(d, v128.load(s4), v128.load(s5));
        store2x4(d + 96, v128.load(s4, 16), v128.load(s5, 16));
        store<f32>(d, load<f32>(s0, 32), 192);
        store<f32>(d, load<f32>(s1, 32), 196);
        store<f32>(d, load<f32>(s2, 32), 200);
        store<f32>(d, load<f32>(s3, 32), 204);
        store<f32>(d, load<f32>(s4, 32), 208);
        store<f32>(d, load<f32>(s5, 32), 212);
        d += 216;
      }
    } else {
      for (let j = 0; j < nIn; j++) {
        const o = <usize>listed(ins, j) * 36;
        const s0 = w0 + o, s1 = w1 + o, s2 = w2 + o, s3 = w3 + o;
        store4x4(d, v128.load(s0), v128.load(s1), v128.load(s2), v128.load(s3));
        store4x4(d + 96, v128.load(s0, 16), v128.load(s1, 16), v128.load(s2, 16), v128.load(s3, 16));
        store<f32>(d, load<f32>(s0, 32), 192);
        store<f32>(d, load<f32>(s1, 32), 196);
        store<f32>(d, load<f32>(s2, 32), 200);
        store<f32>(d, load<f32>(s3, 32), 204);
        d += 216;
      }
    }
  }
}

/**
 * The panels of tiles [t0, t1) of an image's `rows` outputs (K * MR floats each, k-major, MR floats
 * per k, rows past a tile's end zero) of the block A[i][(j, t)] = w[outs[i]][ins[j]][t], K = nIn * taps;
 * outs or ins 0 means the identity. With panelsOf > 0, w is conv2dInferPack's panels of panelsOf outputs.
 */
function packWeights(w: usize, C: i32, taps: i32, outs: usize, rows: i32, t0: i32, t1: i32, ins: usize, nIn: i32, dst: usize, panelsOf: i32 = 0): void {
  if (taps == 9 && GEMM_MR == 6 && panelsOf == 0) {
    packWeights3x3(w, C, outs, rows, t0, t1, ins, nIn, dst);
    return;
  }
  const K = nIn * taps;
  const step = <usize>GEMM_MR << 2;
  // w's rows: a tap is the next float; conv2dInferPack's panels of panelsOf outputs: MR floats on.
  const tapStep: usize = panelsOf > 0 ? step : 4;
  for (let t = t0; t < t1; t++) {
    const r0 = tileStart(rows, t), h = tileStart(rows, t + 1) - r0;
    const panel = dst + <usize>(t - t0) * <usize>K * step;
    for (let r = 0; r < h; r++) {
      let d = panel + (<usize>r << 2);
      const i = r0 + r;
      if (i >= rows) {
        for (let k = 0; k < K; k++) {
          store<f32>(d, 0);
          d += step;
        }
        continue;
      }
      const m = outs != 0 ? load<i32>(outs + (<usize>i << 2)) : i;
      let row = w + ((<usize>m * <usize>C * <usize>taps) << 2);
      if (panelsOf > 0) {
        const pr = panelRow(panelsOf, m);
        row = w + ((<usize>(pr / GEMM_MR) * <usize>C * <usize>taps * <usize>GEMM_MR + <usize>(pr % GEMM_MR)) << 2);
      }
      for (let j = 0; j < nIn; j++) {
        const c = ins != 0 ? load<i32>(ins + (<usize>j << 2)) : j;
        let s = row + <usize>c * <usize>taps * tapStep;
        for (let q = 0; q < taps; q++) {
          store<f32>(d, load<f32>(s));
          d += step;
          s += tapStep;
        }
      }
    }
  }
}

/**
 * The panels of tiles [t0, t1) for every output and the listed inputs, from conv2dInferPack's panels
 * (Kfull * MR floats a tile, each input's taps * MR floats contiguous): one block copy per tile and input.
 */
function gatherPanels(wPacked: usize, Kfull: i32, taps: i32, t0: i32, t1: i32, ins: usize, nIn: i32, dst: usize): void {
  const block = <usize>(taps * GEMM_MR) << 2, last = block - 16;
  const tileBytes = <usize>Kfull * <usize>GEMM_MR << 2;
  let d = dst;
  for (let t = t0; t < t1; t++) {
    const src = wPacked + <usize>t * tileBytes;
    for (let j = 0; j < nIn; j++) {
      const s = src + <usize>load<i32>(ins + (<usize>j << 2)) * block;
      // block >= 16 (MR >= 4): the last vector overlaps the one before it.
      for (let o: usize = 0; o < last; o += 16) v128.store(d + o, v128.load(s + o));
      v128.store(d + last, v128.load(s + last));
      d += block;
    }
  }
}

/**
 * dst[j] (Hp x Wp) = plane j of src (H x W) shifted by (pT, pL), zeros around, for j < planes:
 * every cell of dst is written.
 */
function padCopy(src: usize, planes: i32, H: i32, W: i32, pT: i32, pL: i32, dst: usize, Hp: i32, Wp: i32): void {
  const pR = Wp - pL - W;
  if (W >= 4 && pL >= 0 && pL <= 4 && pR >= 0 && pR <= 4) {
    padCopyRows(src, planes, H, W, pT, pL, dst, Hp, Wp);
    return;
  }
  const j0 = min<i32>(Wp, max<i32>(0, pL)), j1 = max<i32>(j0, min<i32>(Wp, pL + W));
  for (let j = 0; j < planes; j++) {
    const s = src + ((<usize>j * <usize>H * <usize>W) << 2);
    let d = dst + ((<usize>j * <usize>Hp * <usize>Wp) << 2);
    for (let i = 0; i < Hp; i++) {
      const si = i - pT;
      if (si < 0 || si >= H) {
        zeroFloats(d, Wp);
      } else {
        zeroFloats(d, j0);
        copyFloats(d + (<usize>j0 << 2), s + ((<usize>si * <usize>W + <usize>(j0 - pL)) << 2), j1 - j0);
        zeroFloats(d + (<usize>j1 << 2), Wp - j1);
      }
      d += <usize>Wp << 2;
    }
  }
}

/**
 * padCopy of whole rows with side pads of at most 4 and W >= 4: each row is four zeros, the row's
 * vectors (the last one overlapping) and four zeros; the right zeros run up to 4 floats into the next
 * row, written after it, or past the last plane into the region's slack.
 */
function padCopyRows(src: usize, planes: i32, H: i32, W: i32, pT: i32, pL: i32, dst: usize, Hp: i32, Wp: i32): void {
  const z = f32x4.splat(0);
  const rowBytes = <usize>W << 2, tail = rowBytes - 16, dRow = <usize>Wp << 2;
  const lead = <usize>pL << 2;
  const top = min<i32>(max<i32>(pT, 0), Hp), end = min<i32>(Hp, pT + H);
  let s = src, d = dst;
  for (let j = 0; j < planes; j++) {
    const plane = d;
    zeroFloats(d, top * Wp);
    d += <usize>top * dRow;
    s += <usize>(top - pT) * rowBytes;
    for (let i = top; i < end; i++) {
      v128.store(d, z);
      const r = d + lead;
      let o: usize = 0;
      for (; o < tail; o += 16) v128.store(r + o, v128.load(s + o));
      v128.store(r + tail, v128.load(s + tail));
      v128.store(r + rowBytes, z);
      s += rowBytes;
      d += dRow;
    }
    zeroFloats(d, (Hp - max<i32>(end, top)) * Wp);
    d = plane + <usize>Hp * dRow;
    s = src + ((<usize>(j + 1) * <usize>H * <usize>W) << 2);
  }
}

/** B panel (K x 8) of pixels base + l*stride floats (l < nr, zeros past) at each koff[k]. */
function packPanel(panel: usize, base: usize, koff: usize, K: i32, stride: i32, nr: i32): void {
  let d = panel;
  for (let k = 0; k < K; k++) {
    const o = base + (<usize>load<i32>(koff + (<usize>k << 2)) << 2);
    for (let l = 0; l < 8; l++) store<f32>(d + (<usize>l << 2), l < nr ? load<f32>(o + (<usize>(l * stride) << 2)) : 0);
    d += 32;
  }
}

/** Floats of conv2dInfer's packing scratch: every tile's panels, or groups of them within 2^18 floats (src/infer/scratch.ts). */
@inline function packScratchFloats(M: i32, Kfull: i32): i32 {
  return min<i32>((M + 5) * Kfull, max<i32>(1 << 18, 6 * Kfull));
}

/** Σ a[k] b[k] over k < K, four lanes at a time. */
function dot(a: usize, b: usize, K: i32): f32 {
  let v = f32x4.splat(0);
  let k = 0;
  for (; k + 4 <= K; k += 4) v = madd(v128.load(a + (<usize>k << 2)), v128.load(b + (<usize>k << 2)), v);
  let acc = hsum(v);
  for (; k < K; k++) acc += load<f32>(a + (<usize>k << 2)) * load<f32>(b + (<usize>k << 2));
  return acc;
}

/** dot() of rows r0..r3 with x, each finished as max(acc + bias, lo) * gate and stored to d + r * ldc. */
function dot4(r0: usize, r1: usize, r2: usize, r3: usize, x: usize, K: i32, d: usize, ldc: usize, rb: usize, rg: usize, lo: f32): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let k = 0;
  for (; k + 4 <= K; k += 4) {
    const o = <usize>k << 2;
    const xv = v128.load(x + o);
    a0 = madd(v128.load(r0 + o), xv, a0);
    a1 = madd(v128.load(r1 + o), xv, a1);
    a2 = madd(v128.load(r2 + o), xv, a2);
    a3 = madd(v128.load(r3 + o), xv, a3);
  }
  let s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
  for (; k < K; k++) {
    const o = <usize>k << 2;
    const xv = load<f32>(x + o);
    s0 += load<f32>(r0 + o) * xv;
    s1 += load<f32>(r1 + o) * xv;
    s2 += load<f32>(r2 + o) * xv;
    s3 += load<f32>(r3 + o) * xv;
  }
  store<f32>(d, max<f32>(s0 + load<f32>(rb), lo) * load<f32>(rg));
  store<f32>(d + ldc, max<f32>(s1 + load<f32>(rb, 4), lo) * load<f32>(rg, 4));
  store<f32>(d + 2 * ldc, max<f32>(s2 + load<f32>(rb, 8), lo) * load<f32>(rg, 8));
  store<f32>(d + 3 * ldc, max<f32>(s3 + load<f32>(rb, 12), lo) * load<f32>(rg, 12));
}

/** Σ over the listed inputs j of row[ins[j] taps ..] · x[j taps ..], taps floats each. */
function listedDot(row: usize, x: usize, ins: usize, nIn: i32, taps: i32): f32 {
  if (taps == 1) {
    let acc: f32 = 0;
    for (let j = 0; j < nIn; j++) acc += load<f32>(row + (<usize>load<i32>(ins + (<usize>j << 2)) << 2)) * load<f32>(x + (<usize>j << 2));
    return acc;
  }
  let acc: f32 = 0;
  const bytes = <usize>taps << 2;
  for (let j = 0; j < nIn; j++) acc += dot(row + <usize>load<i32>(ins + (<usize>j << 2)) * bytes, x + <usize>j * bytes, taps);
  return acc;
}

/** The tile of conv2dInferPack's panels holding output m of M, and m's row in it. */
@inline function panelRow(M: i32, m: i32): i32 {
  const s = sixes(M), f = fives(M);
  const t = m < s * 6 ? m / 6 : m < s * 6 + f * 5 ? s + (m - s * 6) / 5 : s + f + (m - s * 6 - f * 5) / 4;
  return t * GEMM_MR + m - tileStart(M, t);
}

export function conv2dInfer(desc: usize, x: usize, xList: usize, w: usize, wPacked: usize, bias: usize, lo: f32, gate: usize,
  y: usize, yList: usize, n0: i32, n1: i32, part: i32, parts: i32, macs: usize, scratch: usize): f64 {
  const C = field(desc, F_C), H = field(desc, F_H), W = field(desc, F_W), M = field(desc, F_M);
  const KH = field(desc, F_KH), KW = field(desc, F_KW), sH = field(desc, F_SH), sW = field(desc, F_SW);
  const pT = field(desc, F_PT), pL = field(desc, F_PL), dH = field(desc, F_DH), dW = field(desc, F_DW);
  const OH = field(desc, F_OH), OW = field(desc, F_OW);
  const taps = KH * KW, P = OH * OW, HW = H * W, Kfull = C * taps;
  const yTop = field(desc, F_Y_TOP), yLeft = field(desc, F_Y_LEFT), yCols = field(desc, F_Y_COLS);
  const yPadded = yCols != 0;
  // Padded outputs go row by row: the flat path stores runs of pixels across rows.
  const flat = taps == 1 && sH == 1 && sW == 1 && pT == 0 && pL == 0 && OH == H && OW == W && !yPadded;
  const Hp = (OH - 1) * sH + dH * (KH - 1) + 1, Wp = (OW - 1) * sW + dW * (KW - 1) + 1;
  const planeP = flat ? HW : Hp * Wp;
  const xPadded = field(desc, F_X_PADDED) != 0;
  const planeIn = xPadded ? Hp * Wp : HW;
  const planeOut = yPadded ? field(desc, F_Y_ROWS) * yCols : P;

  // A kernel covering the whole map (a linear layer) is dot products over the listed inputs: it needs only
  // the rows' bias and gate.
  const whole = OH == 1 && OW == 1 && KH == H && KW == W && pT == 0 && pL == 0 && !xPadded && !yPadded;
  const rowBias = scratch;
  const rowGate = rowBias + region(<usize>(M + 8));
  // The clamp is read after the accumulation loop: as a float argument it would hold a vector register
  // through it. The tiles' spill block (6 rows of 8 floats) follows it.
  const loCell = rowGate + region(<usize>(M + 8));
  store<f32>(loCell, lo);
  const koff = loCell + region(16) + region(48);
  const kid = koff + region(<usize>Kfull);
  const apack = kid + region(<usize>Kfull);
  const apackFloats = packScratchFloats(M, Kfull);
  const xpad = apack + region(<usize>apackFloats);
  const panel = xpad + region(flat ? 0 : <usize>C * <usize>Hp * <usize>Wp + SLACK);
  const gemmFrom = field(desc, F_GEMM_FROM);
  const work = panel + region(<usize>Kfull * 8 + SLACK);
  // kid serves only packed B panels (strided or flat-tail pixels).
  if (!whole && (sW != 1 || (flat && P > 1 && P % 8 != 0))) for (let k = 0; k < Kfull; k++) store<i32>(kid + (<usize>k << 2), k * 8);
  const ldc = <usize>planeOut << 2;

  let total: f64 = 0;
  for (let n = n0; n < n1; n++) {
    const nIn = listCount(xList, n, C), nOut = listCount(yList, n, M);
    const ins = listIds(xList, n, C), outs = listIds(yList, n, M);
    const tiles = tileCount(nOut);
    const t0 = tiles * part / parts, t1 = tiles * (part + 1) / parts;
    const i0 = tileStart(nOut, t0), i1 = min<i32>(nOut, tileStart(nOut, t1));
    const rows = i1 - i0;
    let done: f64 = 0;
    if (rows > 0) {
      for (let i = 0; i < rows; i++) {
        const m = load<i32>(outs + (<usize>(i0 + i) << 2));
        store<f32>(rowBias + (<usize>i << 2), bias != 0 ? load<f32>(bias + (<usize>m << 2)) : 0);
        store<f32>(rowGate + (<usize>i << 2), gate != 0 ? load<f32>(gate + ((<usize>n * <usize>M + <usize>m) << 2)) : 1);
      }
      const yOut = y + ((<usize>n * <usize>M + <usize>i0) * <usize>planeOut << 2);
      // The first output pixel of each plane.
      const yMap = yOut + (yPadded ? <usize>(yTop * yCols + yLeft) << 2 : 0);
      const yRow = yPadded ? yCols : OW;
      if (nIn == 0) {
        // No input: each output is its bias, clamped and gated.
        for (let i = 0; i < rows; i++) {
          const v = max<f32>(load<f32>(rowBias + (<usize>i << 2)), lo) * load<f32>(rowGate + (<usize>i << 2));
          const d = yMap + <usize>i * ldc;
          for (let oh = 0; oh < OH; oh++) for (let ow = 0; ow < OW; ow++) store<f32>(d + (<usize>(oh * yRow + ow) << 2), v);
        }
      } else if (whole) {
        // Dot products over the listed inputs' taps; the weights are w's rows (no panels).
        const xImage = x + ((<usize>n * <usize>C * <usize>HW) << 2);
        let i = 0;
        if (nIn == C) {
          // Four rows a pass share each load of x (the rows stream from memory once).
          for (; i + 4 <= rows; i += 4) {
            const o = outs + (<usize>(i0 + i) << 2), rowBytes = <usize>Kfull << 2;
            dot4(w + <usize>load<i32>(o) * rowBytes, w + <usize>load<i32>(o, 4) * rowBytes, w + <usize>load<i32>(o, 8) * rowBytes, w + <usize>load<i32>(o, 12) * rowBytes,
              xImage, Kfull, yOut + <usize>i * ldc, ldc, rowBias + (<usize>i << 2), rowGate + (<usize>i << 2), lo);
          }
        }
        for (; i < rows; i++) {
          const row = w + ((<usize>load<i32>(outs + (<usize>(i0 + i) << 2)) * <usize>Kfull) << 2);
          const acc = nIn == C ? dot(row, xImage, Kfull) : listedDot(row, xImage, ins, nIn, taps);
          store<f32>(yOut + <usize>i * ldc, max<f32>(acc + load<f32>(rowBias + (<usize>i << 2)), lo) * load<f32>(rowGate + (<usize>i << 2)));
        }
        done = <f64>rows * <f64>nIn * <f64>taps;
      } else {
        const K = nIn * taps;
        const gemm = gemmFrom != 0 && (sW > 1 || <i64>rows * <i64>K >= <i64>gemmFrom);
        // Every output listed: conv2dInferPack's panels, whole, or their listed inputs' blocks, read in place
        // through a table of offsets per k (apack) or copied out. In place costs a load per k in every pixel
        // chunk, the copy a pass per image: in place pays on small maps (7 x 7 3.5% faster, 14 x 14 2% slower).
        const chunks = flat ? (P + 7) >> 3 : OH * ((OW + 7) >> 3);
        const all = wPacked != 0 && nOut == M;
        const inPlace = all && nIn < C && (chunks <= 16 || gemm);
        const prepacked = all && (nIn == C || inPlace);
        if (inPlace) {
          const block = taps * GEMM_MR * 4;
          for (let j = 0; j < nIn; j++) {
            const o = load<i32>(ins + (<usize>j << 2)) * block;
            for (let q = 0; q < taps; q++) store<i32>(apack + (<usize>(j * taps + q) << 2), o + q * GEMM_MR * 4);
          }
        }
        const xImage = x + ((<usize>n * <usize>C * <usize>planeIn) << 2);
        // B offsets per k: plane j's pixel for the tap (flat: the plane itself), from xp. Without padding the
        // GEMM path reads compact planes in place (its panels gather any pixel), rows W apart.
        const direct = gemm && !flat && !xPadded && pT == 0 && pL == 0;
        const xp = flat || xPadded || direct ? xImage : xpad;
        const rowLen = flat || direct ? W : Wp, planeLen = flat || direct ? HW : planeP;
        if (flat) {
          for (let j = 0; j < nIn; j++) store<i32>(koff + (<usize>j << 2), j * HW);
        } else {
          if (!xPadded && !direct) padCopy(xImage, nIn, H, W, pT, pL, xpad, Hp, Wp);
          let k = 0;
          for (let j = 0; j < nIn; j++) {
            for (let kh = 0; kh < KH; kh++) {
              for (let kw = 0; kw < KW; kw++) {
                store<i32>(koff + (<usize>k << 2), j * planeLen + kh * dH * rowLen + kw * dW);
                k++;
              }
            }
          }
        }
        // Tiles go in groups whose packed panels fit apack; prepacked panels are read where they lie.
        const group = prepacked ? t1 - t0 : max<i32>(1, apackFloats / (K * GEMM_MR));
        for (let ga = t0; ga < t1; ga += group) {
          const gb = min<i32>(t1, ga + group);
          let a = apack;
          let aStride = <usize>K * <usize>GEMM_MR << 2;
          if (prepacked) {
            a = wPacked + ((<usize>ga * <usize>Kfull * <usize>GEMM_MR) << 2);
            aStride = <usize>Kfull * <usize>GEMM_MR << 2;
          } else if (all) {
            gatherPanels(wPacked, Kfull, taps, ga, gb, ins, nIn, apack);
          } else if (w != 0) {
            packWeights(w, C, taps, outs, nOut, ga, gb, ins, nIn, apack);
          } else {
            packWeights(wPacked, C, taps, outs, nOut, ga, gb, ins, nIn, apack, M);
          }
          const r = <usize>(tileStart(nOut, ga) - i0);
          const yG = yOut + r * ldc, rb = rowBias + (r << 2), rg = rowGate + (r << 2);
          const yMapG = yMap + r * ldc;
          if (gemm) {
            convGemm(inPlace, nOut, ga, gb, K, a, aStride, apack, xp, koff, OH, OW, flat ? 1 : sH, flat ? 1 : sW, rowLen,
              yMapG, yRow, ldc, rb, rg, lo, work);
          } else if (flat) {
            for (let p0 = 0; p0 < P; p0 += 8) {
              const nr = min<i32>(8, P - p0);
              if (nr == 8) {
                tilesOf(inPlace, nOut, ga, gb, K, a, aStride, xImage + (<usize>p0 << 2), koff, yG + (<usize>p0 << 2), ldc, rb, rg, loCell, 8, apack, taps);
              } else {
                // The last pixels: their 8-float reads would pass the image's planes.
                packPanel(panel, xImage + (<usize>p0 << 2), koff, K, 1, nr);
                tilesOf(inPlace, nOut, ga, gb, K, a, aStride, panel, kid, yG + (<usize>p0 << 2), ldc, rb, rg, loCell, nr, apack, taps);
              }
            }
          } else {
            for (let oh = 0; oh < OH; oh++) {
              for (let ow0 = 0; ow0 < OW; ow0 += 8) {
                const nr = min<i32>(8, OW - ow0);
                const corner = xp + ((<usize>(oh * sH) * <usize>Wp + <usize>(ow0 * sW)) << 2);
                const at = oh * yRow + ow0;
                const c = yMapG + (<usize>at << 2);
                if (sW == 1) {
                  // Short chunks of compact planes store all 8 (or 4) lanes but on the plane's last row: the
                  // lanes past the row fall on the next row's first pixels, which are computed later.
                  const full = nr > 4 ? 8 : 4;
                  tilesOf(inPlace, nOut, ga, gb, K, a, aStride, corner, koff, c, ldc, rb, rg, loCell, !yPadded && at + full <= P ? full : nr, apack, taps);
                } else {
                  packPanel(panel, corner, koff, K, sW, nr);
                  tilesOf(inPlace, nOut, ga, gb, K, a, aStride, panel, kid, c, ldc, rb, rg, loCell, nr, apack, taps);
                }
              }
            }
          }
        }
        done = <f64>rows * <f64>nIn * <f64>taps * <f64>P;
      }
    }
    if (macs != 0) store<f64>(macs + (<usize>n << 3), done);
    total += done;
  }
  return total;
}

export function conv2dInferPack(desc: usize, w: usize, wPacked: usize): void {
  const C = field(desc, F_C), M = field(desc, F_M);
  packWeights(w, C, field(desc, F_KH) * field(desc, F_KW), 0, M, 0, tileCount(M), 0, C, wPacked);
}

// ---- LKAM switches ----

/** The sigmoid of the training graph's kernel (assembly/activation.ts) in four lanes. */
@inline function sigmoid4(v: v128): v128 {
  const e = expf4(f32x4.neg(f32x4.abs(v)));
  const pos = f32x4.div(f32x4.splat(1), f32x4.add(f32x4.splat(1), e));
  return v128.bitselect(pos, f32x4.mul(e, pos), f32x4.ge(v, f32x4.splat(0)));
}

/** Whether switch a ranks before switch b: larger value first, then lower index. */
@inline function ranksBefore(g: usize, a: i32, b: i32): bool {
  const va = load<f32>(g + (<usize>a << 2)), vb = load<f32>(g + (<usize>b << 2));
  return va > vb || (va == vb && a < b);
}

/** Sorts the n ints at idx by ranksBefore (bottom-up merge sort through tmp); returns where the result is. */
function sortByRank(g: usize, idx: usize, tmp: usize, n: i32): usize {
  let src = idx, dst = tmp;
  for (let width = 1; width < n; width <<= 1) {
    for (let lo = 0; lo < n; lo += 2 * width) {
      const mid = min<i32>(lo + width, n), hi = min<i32>(lo + 2 * width, n);
      let i = lo, j = mid, k = lo;
      while (i < mid && j < hi) {
        const a = load<i32>(src + (<usize>i << 2)), b = load<i32>(src + (<usize>j << 2));
        if (ranksBefore(g, b, a)) {
          store<i32>(dst + (<usize>k << 2), b);
          j++;
        } else {
          store<i32>(dst + (<usize>k << 2), a);
          i++;
        }
        k++;
      }
      while (i < mid) store<i32>(dst + (<usize>(k++) << 2), load<i32>(src + (<usize>(i++) << 2)));
      while (j < hi) store<i32>(dst + (<usize>(k++) << 2), load<i32>(src + (<usize>(j++) << 2)));
    }
    const t = src;
    src = dst;
    dst = t;
  }
  return src;
}

export function lkamSwitches(feat: usize, F: i32, fcW: usize, fcB: usize, M: i32, rule: i32, threshold: f32, budget: f64,
  inList: usize, C: i32, gate: usize, outList: usize, macs: usize, n0: i32, n1: i32, scratch: usize): f64 {
  const sigmoid = (rule & 1) != 0, inclusive = (rule & 2) != 0;
  const idx = scratch, tmp = idx + region(<usize>M), flags = tmp + region(<usize>M);
  let total: f64 = 0;
  for (let n = n0; n < n1; n++) {
    const fv = feat + ((<usize>n * <usize>F) << 2);
    const g = gate + ((<usize>n * <usize>M) << 2);
    const ids = listIds(outList, n, M);
    let on = 0;
    // Four switches a vector, each lane's sum in the scalar order (f ascending, no fused multiply-add).
    const rowBytes = <usize>F << 2;
    let m = 0;
    for (; m + 4 <= M; m += 4) {
      const w0 = fcW + <usize>m * rowBytes, w1 = w0 + rowBytes, w2 = w1 + rowBytes, w3 = w2 + rowBytes;
      let acc = f32x4.splat(0);
      let f = 0;
      for (; f + 4 <= F; f += 4) {
        const o = <usize>f << 2;
        const r0 = v128.load(w0 + o), r1 = v128.load(w1 + o), r2 = v128.load(w2 + o), r3 = v128.load(w3 + o);
        const lo01 = v128.shuffle<f32>(r0, r1, 0, 4, 1, 5), hi01 = v128.shuffle<f32>(r0, r1, 2, 6, 3, 7);
        const lo23 = v128.shuffle<f32>(r2, r3, 0, 4, 1, 5), hi23 = v128.shuffle<f32>(r2, r3, 2, 6, 3, 7);
        acc = f32x4.add(acc, f32x4.mul(v128.shuffle<f32>(lo01, lo23, 0, 1, 4, 5), v128.load32_splat(fv + o)));
        acc = f32x4.add(acc, f32x4.mul(v128.shuffle<f32>(lo01, lo23, 2, 3, 6, 7), v128.load32_splat(fv + o, 4)));
        acc = f32x4.add(acc, f32x4.mul(v128.shuffle<f32>(hi01, hi23, 0, 1, 4, 5), v128.load32_splat(fv + o, 8)));
        acc = f32x4.add(acc, f32x4.mul(v128.shuffle<f32>(hi01, hi23, 2, 3, 6, 7), v128.load32_splat(fv + o, 12)));
      }
      for (; f < F; f++) {
        const o = <usize>f << 2;
        const wv = f32x4(load<f32>(w0 + o), load<f32>(w1 + o), load<f32>(w2 + o), load<f32>(w3 + o));
        acc = f32x4.add(acc, f32x4.mul(wv, v128.load32_splat(fv + o)));
      }
      v128.store(tmp + (<usize>m << 2), f32x4.add(acc, fcB != 0 ? v128.load(fcB + (<usize>m << 2)) : f32x4.splat(0)));
    }
    for (; m < M; m++) {
      const wr = fcW + <usize>m * rowBytes;
      let acc: f32 = 0;
      for (let f = 0; f < F; f++) acc += load<f32>(wr + (<usize>f << 2)) * load<f32>(fv + (<usize>f << 2));
      store<f32>(tmp + (<usize>m << 2), acc + (fcB != 0 ? load<f32>(fcB + (<usize>m << 2)) : 0));
    }
    // Four switches a vector: tmp's region holds whole vectors.
    for (let m0 = 0; m0 < M; m0 += 4) {
      const pre = v128.load(tmp + (<usize>m0 << 2));
      v128.store(tmp + (<usize>m0 << 2), sigmoid ? sigmoid4(pre) : f32x4.min(f32x4.max(pre, f32x4.splat(0)), f32x4.splat(1)));
    }
    // Branch-free: whether a switch is on is as good as random.
    const tv = f32x4.splat(threshold);
    m = 0;
    for (; m + 4 <= M; m += 4) {
      const sv = v128.load(tmp + (<usize>m << 2));
      const onv = inclusive ? f32x4.ge(sv, tv) : f32x4.gt(sv, tv);
      v128.store(g + (<usize>m << 2), v128.and(sv, onv));
      const bits = i32x4.bitmask(onv);
      store<i32>(idx + (<usize>on << 2), m);
      on += bits & 1;
      store<i32>(idx + (<usize>on << 2), m + 1);
      on += (bits >> 1) & 1;
      store<i32>(idx + (<usize>on << 2), m + 2);
      on += (bits >> 2) & 1;
      store<i32>(idx + (<usize>on << 2), m + 3);
      on += bits >> 3;
    }
    for (; m < M; m++) {
      const s = load<f32>(tmp + (<usize>m << 2));
      const isOn = inclusive ? s >= threshold : s > threshold;
      store<f32>(g + (<usize>m << 2), select<f32>(s, 0, isOn));
      store<i32>(idx + (<usize>on << 2), m);
      on += <i32>isOn;
    }
    let limit = M;
    if (budget < 1 && on > 0) {
      const nIn = inList != 0 ? listCount(inList, n, C) : C;
      if (nIn > 0) {
        const q = Math.floor(max<f64>(budget, 0) * <f64>M * <f64>C / <f64>nIn);
        if (q < <f64>M) limit = <i32>q;
      }
    }
    if (on > limit) {
      const ranked = sortByRank(g, idx, tmp, on);
      for (let m = 0; m < M; m++) store<i32>(flags + (<usize>m << 2), 0);
      for (let i = 0; i < limit; i++) store<i32>(flags + (<usize>load<i32>(ranked + (<usize>i << 2)) << 2), 1);
      let kept = 0;
      for (let m = 0; m < M; m++) {
        if (load<i32>(flags + (<usize>m << 2)) != 0) store<i32>(ids + (<usize>(kept++) << 2), m);
        else store<f32>(g + (<usize>m << 2), 0);
      }
      on = kept;
    } else {
      for (let i = 0; i < on; i++) store<i32>(ids + (<usize>i << 2), load<i32>(idx + (<usize>i << 2)));
    }
    // Binary switches pass a kept kernel unscaled.
    if ((rule & 4) != 0) for (let i = 0; i < on; i++) store<f32>(g + (<usize>load<i32>(ids + (<usize>i << 2)) << 2), 1);
    store<i32>(outList + ((<usize>n * <usize>(M + 1)) << 2), on);
    const done = <f64>F * <f64>M;
    if (macs != 0) store<f64>(macs + (<usize>n << 3), done);
    total += done;
  }
  return total;
}

// ---- pooling and channel moves over compact values ----

/** Whether v replaces best: NaN beats any number, the first maximum wins ties (as maxPool2dForward). */
@inline function beatsMax(v: f32, best: f32): bool {
  return v > best || (v != v && best == best);
}

export function pool2dInfer(desc: usize, x: usize, xList: usize, y: usize, kind: i32, n0: i32, n1: i32): void {
  const C = field(desc, P_C), H = field(desc, P_H), W = field(desc, P_W), KH = field(desc, P_KH), KW = field(desc, P_KW);
  const sH = field(desc, P_SH), sW = field(desc, P_SW), pT = field(desc, P_PT), pL = field(desc, P_PL);
  const OH = field(desc, P_OH), OW = field(desc, P_OW), includePad = field(desc, P_INCLUDE_PAD) != 0;
  const isMax = kind == 0;
  const fast2x2 = isMax && KH == 2 && KW == 2 && sH == 2 && sW == 2 && pT == 0 && pL == 0;
  // f32x4.max propagates NaN as beatsMax does; only the sign of an all-zero window may differ.
  const fast3x3 = isMax && KH == 3 && KW == 3 && sH == 2 && sW == 2 && pL <= 1;
  // Groups of four outputs from ow read columns 2 ow - pL to 2 ow - pL + 8: inside the row for ow in [vecFirst, vecLast].
  const vecFirst = pL, vecLast = W - 9 + pL >= 0 ? (W - 9 + pL) / 2 : -1;
  for (let n = n0; n < n1; n++) {
    const planes = listCount(xList, n, C);
    for (let j = 0; j < planes; j++) {
      const xp = x + ((<usize>(n * C + j) * <usize>H * <usize>W) << 2);
      const yp = y + ((<usize>(n * C + j) * <usize>OH * <usize>OW) << 2);
      if (fast2x2) {
        for (let oh = 0; oh < OH; oh++) {
          const r0 = xp + ((<usize>(2 * oh) * <usize>W) << 2), r1 = r0 + (<usize>W << 2);
          const yr = yp + ((<usize>oh * <usize>OW) << 2);
          // f32x4.max propagates NaN as beatsMax does; only the sign of an all-zero window may differ.
          // With OW >= 4 the last block is the 4 outputs before OW: an overlap is written twice, the same values.
          const vectors = OW >= 4;
          for (let ow = 0; vectors && ow < OW; ow += 4) {
            const at = min<i32>(ow, OW - 4);
            const o = <usize>(2 * at) << 2;
            const lo = f32x4.max(v128.load(r0 + o), v128.load(r1 + o));
            const hi = f32x4.max(v128.load(r0 + o, 16), v128.load(r1 + o, 16));
            v128.store(yr + (<usize>at << 2), f32x4.max(v128.shuffle<f32>(lo, hi, 0, 2, 4, 6), v128.shuffle<f32>(lo, hi, 1, 3, 5, 7)));
          }
          let ow = vectors ? OW : 0;
          for (; ow < OW; ow++) {
            const o = <usize>(2 * ow) << 2;
            let best = load<f32>(r0 + o);
            let v = load<f32>(r0 + o, 4);
            if (beatsMax(v, best)) best = v;
            v = load<f32>(r1 + o);
            if (beatsMax(v, best)) best = v;
            v = load<f32>(r1 + o, 4);
            if (beatsMax(v, best)) best = v;
            store<f32>(yr + (<usize>ow << 2), best);
          }
        }
        continue;
      }
      for (let oh = 0; oh < OH; oh++) {
        const h0 = oh * sH - pT;
        const hs = max<i32>(h0, 0), he = min<i32>(h0 + KH, H);
        // 3x3 stride-2 max: four outputs whose windows lie inside the row at once, rows past the map repeating a row inside it.
        const rA = xp + ((<usize>hs * <usize>W) << 2), rB = xp + ((<usize>min<i32>(hs + 1, he - 1) * <usize>W) << 2), rC = xp + ((<usize>(he - 1) * <usize>W) << 2);
        for (let ow = 0; ow < OW; ow++) {
          if (fast3x3 && ow >= vecFirst && ow <= vecLast) {
            const o = <usize>(2 * ow - pL) << 2;
            const a = f32x4.max(f32x4.max(v128.load(rA + o), v128.load(rB + o)), v128.load(rC + o));
            const b = f32x4.max(f32x4.max(v128.load(rA + o, 16), v128.load(rB + o, 16)), v128.load(rC + o, 16));
            const c = f32x4.max(f32x4.max(v128.load32_splat(rA + o, 32), v128.load32_splat(rB + o, 32)), v128.load32_splat(rC + o, 32));
            const ev = v128.shuffle<f32>(a, b, 0, 2, 4, 6), od = v128.shuffle<f32>(a, b, 1, 3, 5, 7);
            v128.store(yp + ((<usize>oh * <usize>OW + <usize>ow) << 2), f32x4.max(f32x4.max(ev, od), v128.shuffle<f32>(ev, c, 1, 2, 3, 4)));
            ow += 3;
            continue;
          }
          const w0 = ow * sW - pL;
          const ws = max<i32>(w0, 0), we = min<i32>(w0 + KW, W);
          let v: f32;
          if (isMax) {
            v = -Infinity;
            for (let h = hs; h < he; h++) {
              for (let w = ws; w < we; w++) {
                const e = load<f32>(xp + ((<usize>h * <usize>W + <usize>w) << 2));
                if (beatsMax(e, v)) v = e;
              }
            }
          } else {
            let s: f32 = 0;
            for (let h = hs; h < he; h++) for (let w = ws; w < we; w++) s += load<f32>(xp + ((<usize>h * <usize>W + <usize>w) << 2));
            const count = includePad ? KH * KW : max<i32>(he - hs, 0) * max<i32>(we - ws, 0);
            v = count > 0 ? s / <f32>count : 0;
          }
          store<f32>(yp + ((<usize>oh * <usize>OW + <usize>ow) << 2), v);
        }
      }
    }
  }
}

export function globalPoolInfer(x: usize, xList: usize, C: i32, HW: i32, kind: i32, y: usize, n0: i32, n1: i32): void {
  for (let n = n0; n < n1; n++) {
    const count = listCount(xList, n, C);
    for (let j = 0; j < count; j++) {
      const xp = x + ((<usize>(n * C + j) * <usize>HW) << 2);
      let v: f32;
      let i = 0;
      if (kind == 0) {
        // pmax keeps the first of equal values and skips NaN, which `nan` records instead (one instruction each).
        let a0 = f32x4.splat(-Infinity), a1 = a0, nan = i32x4.splat(0);
        for (; i + 8 <= HW; i += 8) {
          const u = v128.load(xp + (<usize>i << 2)), w = v128.load(xp + (<usize>i << 2), 16);
          a0 = f32x4.pmax(a0, u);
          a1 = f32x4.pmax(a1, w);
          nan = v128.or(nan, v128.or(f32x4.ne(u, u), f32x4.ne(w, w)));
        }
        for (; i + 4 <= HW; i += 4) {
          const u = v128.load(xp + (<usize>i << 2));
          a0 = f32x4.pmax(a0, u);
          nan = v128.or(nan, f32x4.ne(u, u));
        }
        a0 = f32x4.pmax(a0, a1);
        v = max<f32>(max<f32>(f32x4.extract_lane(a0, 0), f32x4.extract_lane(a0, 1)), max<f32>(f32x4.extract_lane(a0, 2), f32x4.extract_lane(a0, 3)));
        if (v128.any_true(nan)) v = NaN;
        for (; i < HW; i++) {
          const e = load<f32>(xp + (<usize>i << 2));
          if (beatsMax(e, v)) v = e;
        }
      } else {
        let acc = f32x4.splat(0);
        for (; i + 4 <= HW; i += 4) acc = f32x4.add(acc, v128.load(xp + (<usize>i << 2)));
        let s: f32 = (f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1)) + (f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3));
        for (; i < HW; i++) s += load<f32>(xp + (<usize>i << 2));
        v = HW > 0 ? s / <f32>HW : 0;
      }
      store<f32>(y + ((<usize>(n * C + j)) << 2), v);
    }
  }
}

export function scatterChannels(x: usize, xList: usize, C: i32, HW: i32, y: usize, n0: i32, n1: i32): void {
  const planeBytes = <usize>HW << 2;
  for (let n = n0; n < n1; n++) {
    const count = listCount(xList, n, C), ids = listIds(xList, n, C);
    const xi = x + <usize>n * <usize>C * planeBytes, yi = y + <usize>n * <usize>C * planeBytes;
    let j = 0;
    for (let c = 0; c < C; c++) {
      const d = yi + <usize>c * planeBytes;
      if (j < count && load<i32>(ids + (<usize>j << 2)) == c) {
        copyFloats(d, xi + <usize>j * planeBytes, HW);
        j++;
      } else {
        zeroFloats(d, HW);
      }
    }
  }
}

export function addChannels(a: usize, aList: usize, b: usize, bList: usize, C: i32, HW: i32, lo: f32, y: usize, n0: i32, n1: i32): void {
  const planeBytes = <usize>HW << 2;
  const lv = f32x4.splat(lo);
  for (let n = n0; n < n1; n++) {
    const ac = listCount(aList, n, C), ai = listIds(aList, n, C);
    const bc = listCount(bList, n, C), bi = listIds(bList, n, C);
    const ab = a + <usize>n * <usize>C * planeBytes, bb = b + <usize>n * <usize>C * planeBytes;
    const yi = y + <usize>n * <usize>C * planeBytes;
    let ja = 0, jb = 0;
    for (let c = 0; c < C; c++) {
      let pa: usize = 0, pb: usize = 0;
      if (ja < ac && load<i32>(ai + (<usize>ja << 2)) == c) pa = ab + <usize>(ja++) * planeBytes;
      if (jb < bc && load<i32>(bi + (<usize>jb << 2)) == c) pb = bb + <usize>(jb++) * planeBytes;
      const d = yi + <usize>c * planeBytes;
      let i = 0;
      if (pa != 0 && pb != 0) {
        for (; i + 4 <= HW; i += 4) {
          const o = <usize>i << 2;
          v128.store(d + o, f32x4.max(f32x4.add(v128.load(pa + o), v128.load(pb + o)), lv));
        }
        for (; i < HW; i++) {
          const o = <usize>i << 2;
          store<f32>(d + o, max<f32>(load<f32>(pa + o) + load<f32>(pb + o), lo));
        }
      } else if (pa != 0 || pb != 0) {
        const s = pa != 0 ? pa : pb;
        for (; i + 4 <= HW; i += 4) {
          const o = <usize>i << 2;
          v128.store(d + o, f32x4.max(v128.load(s + o), lv));
        }
        for (; i < HW; i++) {
          const o = <usize>i << 2;
          store<f32>(d + o, max<f32>(load<f32>(s + o), lo));
        }
      } else {
        const z = max<f32>(0, lo);
        for (; i < HW; i++) store<f32>(d + (<usize>i << 2), z);
      }
    }
  }
}

// ---- LKAM bank and pooling ----

// lkamBankPool takes the bank's outputs four at a time (a group; rows past k get zero weights), eight
// pixels a block: acc[r][l] = Σ_j wg[j*4 + r] * x[j][p0 + l] over the listed input planes j, with wg
// the group's weights packed per image as [listed input][4]. A global pooling reduces the blocks in
// registers; a grid computes one map row at a time into the scratch row and reduces its cells' spans.

/** Bank outputs of group wg (nIn inputs) at 8 pixels xp.. of each plane, to rows d, d + ld, d + 2 ld, d + 3 ld. */
function bankBlock8(wg: usize, nIn: i32, xp: usize, planeBytes: usize, d: usize, ld: usize): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  const end = wg + (<usize>nIn << 4);
  let a = wg;
  while (a < end) {
    const x0 = v128.load(xp), x1 = v128.load(xp, 16);
    let av = v128.load32_splat(a);
    c00 = madd(av, x0, c00);
    c01 = madd(av, x1, c01);
    av = v128.load32_splat(a, 4);
    c10 = madd(av, x0, c10);
    c11 = madd(av, x1, c11);
    av = v128.load32_splat(a, 8);
    c20 = madd(av, x0, c20);
    c21 = madd(av, x1, c21);
    av = v128.load32_splat(a, 12);
    c30 = madd(av, x0, c30);
    c31 = madd(av, x1, c31);
    a += 16;
    xp += planeBytes;
  }
  v128.store(d, c00);
  v128.store(d, c01, 16);
  v128.store(d + ld, c10);
  v128.store(d + ld, c11, 16);
  v128.store(d + 2 * ld, c20);
  v128.store(d + 2 * ld, c21, 16);
  v128.store(d + 3 * ld, c30);
  v128.store(d + 3 * ld, c31, 16);
}

/**
 * Global pooling of group wg over a run of HW >= 8 pixels of planes planeBytes apart: per row, the max
 * (kind 0) or the sum to cells + r * cellStride. Returns false when a max may have met a NaN (pmax skips
 * NaN; the sum of every block then is NaN): the caller redoes it.
 */
function globalBlocks(wg: usize, nIn: i32, xImage: usize, HW: i32, planeBytes: usize, kind: i32, cells: usize, cellStride: usize): bool {
  const isMax = kind == 0;
  const init = isMax ? f32x4.splat(-Infinity) : f32x4.splat(0);
  let r0 = init, r1 = init, r2 = init, r3 = init, canary = f32x4.splat(0);
  const end = wg + (<usize>nIn << 4);
  for (let p0 = 0; p0 < HW; p0 += 8) {
    // The last block ends at HW; its lanes before p0 were counted by the block before.
    const start = min<i32>(p0, HW - 8);
    let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0);
    let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0);
    let xp = xImage + (<usize>start << 2);
    let a = wg;
    while (a < end) {
      const x0 = v128.load(xp), x1 = v128.load(xp, 16);
      let av = v128.load32_splat(a);
      c00 = madd(av, x0, c00);
      c01 = madd(av, x1, c01);
      av = v128.load32_splat(a, 4);
      c10 = madd(av, x0, c10);
      c11 = madd(av, x1, c11);
      av = v128.load32_splat(a, 8);
      c20 = madd(av, x0, c20);
      c21 = madd(av, x1, c21);
      av = v128.load32_splat(a, 12);
      c30 = madd(av, x0, c30);
      c31 = madd(av, x1, c31);
      a += 16;
      xp += planeBytes;
    }
    if (isMax) {
      r0 = f32x4.pmax(r0, f32x4.pmax(c00, c01));
      r1 = f32x4.pmax(r1, f32x4.pmax(c10, c11));
      r2 = f32x4.pmax(r2, f32x4.pmax(c20, c21));
      r3 = f32x4.pmax(r3, f32x4.pmax(c30, c31));
      canary = f32x4.add(canary, f32x4.add(f32x4.add(f32x4.add(c00, c01), f32x4.add(c10, c11)), f32x4.add(f32x4.add(c20, c21), f32x4.add(c30, c31))));
    } else {
      if (start < p0) {
        const skip = i32x4.splat(p0 - start);
        const m0 = i32x4.ge_s(i32x4(0, 1, 2, 3), skip), m1 = i32x4.ge_s(i32x4(4, 5, 6, 7), skip);
        c00 = v128.and(c00, m0);
        c01 = v128.and(c01, m1);
        c10 = v128.and(c10, m0);
        c11 = v128.and(c11, m1);
        c20 = v128.and(c20, m0);
        c21 = v128.and(c21, m1);
        c30 = v128.and(c30, m0);
        c31 = v128.and(c31, m1);
      }
      r0 = f32x4.add(r0, f32x4.add(c00, c01));
      r1 = f32x4.add(r1, f32x4.add(c10, c11));
      r2 = f32x4.add(r2, f32x4.add(c20, c21));
      r3 = f32x4.add(r3, f32x4.add(c30, c31));
    }
  }
  if (isMax) {
    if (hsum(canary) != hsum(canary)) return false;
    store<f32>(cells, max<f32>(max<f32>(f32x4.extract_lane(r0, 0), f32x4.extract_lane(r0, 1)), max<f32>(f32x4.extract_lane(r0, 2), f32x4.extract_lane(r0, 3))));
    store<f32>(cells + cellStride, max<f32>(max<f32>(f32x4.extract_lane(r1, 0), f32x4.extract_lane(r1, 1)), max<f32>(f32x4.extract_lane(r1, 2), f32x4.extract_lane(r1, 3))));
    store<f32>(cells + 2 * cellStride, max<f32>(max<f32>(f32x4.extract_lane(r2, 0), f32x4.extract_lane(r2, 1)), max<f32>(f32x4.extract_lane(r2, 2), f32x4.extract_lane(r2, 3))));
    store<f32>(cells + 3 * cellStride, max<f32>(max<f32>(f32x4.extract_lane(r3, 0), f32x4.extract_lane(r3, 1)), max<f32>(f32x4.extract_lane(r3, 2), f32x4.extract_lane(r3, 3))));
  } else {
    store<f32>(cells, hsum(r0));
    store<f32>(cells + cellStride, hsum(r1));
    store<f32>(cells + 2 * cellStride, hsum(r2));
    store<f32>(cells + 3 * cellStride, hsum(r3));
  }
  return true;
}

/**
 * Whether global poolings over a run with zero padding between rows equal those over the map alone: the
 * padding's bank outputs are 0 (NaN for non-finite weights), which leave a sum alone and a max above 0.
 */
function gapFree(cells: usize, cellStride: usize, rows: i32, kind: i32): bool {
  for (let r = 0; r < rows; r++) {
    const v = load<f32>(cells + <usize>r * cellStride);
    if (kind == 0 ? !(v > 0) : v != v) return false;
  }
  return true;
}

/**
 * Grid pooling of group wg (any sizes, NaN as pool2dInfer): windows of stride floor(S/g) and kernel
 * S - (g-1)*floor(S/g) per axis (gridWindow in src/nn/lkam.ts); cells (4 rows of g*g floats) get each window's max or sum; row holds one map row of the 4 outputs.
 */
function gridRows(wg: usize, nIn: i32, xImage: usize, H: i32, W: i32, xRowBytes: usize, planeBytes: usize, g: i32, kind: i32, cells: usize, row: usize): void {
  const G = g * g;
  const ld = <usize>W << 2;
  const sH = H / g, sW = W / g, KH = H - (g - 1) * sH, KW = W - (g - 1) * sW;
  const isMax = kind == 0;
  for (let i = 0; i < 4 * G; i++) store<f32>(cells + (<usize>i << 2), isMax ? -Infinity : 0);
  for (let h = 0; h < H; h++) {
    const xRow = xImage + <usize>h * xRowBytes;
    if (W >= 8) {
      for (let p0 = 0; p0 < W; p0 += 8) {
        const start = min<i32>(p0, W - 8);
        bankBlock8(wg, nIn, xRow + (<usize>start << 2), planeBytes, row + (<usize>start << 2), ld);
      }
    } else {
      for (let q = 0; q < W; q++) {
        let a0: f32 = 0, a1: f32 = 0, a2: f32 = 0, a3: f32 = 0;
        for (let j = 0; j < nIn; j++) {
          const e = load<f32>(xRow + <usize>j * planeBytes + (<usize>q << 2));
          const a = wg + (<usize>j << 4);
          a0 += load<f32>(a) * e;
          a1 += load<f32>(a, 4) * e;
          a2 += load<f32>(a, 8) * e;
          a3 += load<f32>(a, 12) * e;
        }
        store<f32>(row + (<usize>q << 2), a0);
        store<f32>(row + ld + (<usize>q << 2), a1);
        store<f32>(row + 2 * ld + (<usize>q << 2), a2);
        store<f32>(row + 3 * ld + (<usize>q << 2), a3);
      }
    }
    for (let oh = 0; oh < g; oh++) {
      const hs = oh * sH;
      if (h < hs || h >= hs + KH) continue;
      for (let ow = 0; ow < g; ow++) {
        const ws = ow * sW;
        for (let r = 0; r < 4; r++) {
          const cell = cells + ((<usize>(r * G + oh * g + ow)) << 2);
          const src = row + <usize>r * ld;
          let v = load<f32>(cell);
          for (let q = ws; q < ws + KW; q++) {
            const e = load<f32>(src + (<usize>q << 2));
            if (isMax) {
              if (beatsMax(e, v)) v = e;
            } else {
              v += e;
            }
          }
          store<f32>(cell, v);
        }
      }
    }
  }
}

export function lkamBankPool(x: usize, xList: usize, C: i32, plane: usize, w: usize, bias: usize, k: i32, grid: i32, kind: i32,
  feat: usize, macs: usize, n0: i32, n1: i32, scratch: usize): f64 {
  const H = field(plane, M_H), W = field(plane, M_W), xCols = field(plane, M_COLS), xPlane = field(plane, M_SIZE);
  const HW = H * W, G = grid * grid, groups = (k + 3) >> 2;
  // The pixels from the map's first to its last, with the padding between rows when xCols > W.
  const run = (H - 1) * xCols + W, gaps = xCols != W;
  const planeBytes = <usize>xPlane << 2, xRowBytes = <usize>xCols << 2;
  const KH = H - (grid - 1) * (H / grid), KW = W - (grid - 1) * (W / grid);
  const wpk = scratch;
  const cells = wpk + region(<usize>groups * 4 * <usize>C);
  const row = cells + region(<usize>(4 * G));
  const cellStride = <usize>G << 2;
  let total: f64 = 0;
  for (let n = n0; n < n1; n++) {
    const nIn = listCount(xList, n, C), ids = listIds(xList, n, C);
    const xImage = x + ((<usize>n * <usize>C * <usize>xPlane) << 2);
    const fv = feat + ((<usize>n * <usize>(k * G)) << 2);
    for (let gi = 0; gi < groups; gi++) {
      const wg = wpk + ((<usize>gi * <usize>nIn) << 4);
      for (let j = 0; j < nIn; j++) {
        const c = load<i32>(ids + (<usize>j << 2));
        for (let r = 0; r < 4; r++) {
          const m = gi * 4 + r;
          store<f32>(wg + (<usize>(j * 4 + r) << 2), m < k ? load<f32>(w + ((<usize>m * <usize>C + <usize>c) << 2)) : 0);
        }
      }
      const rows = min<i32>(4, k - gi * 4);
      if (grid != 1 || run < 8 || !globalBlocks(wg, nIn, xImage, run, planeBytes, kind, cells, cellStride) || (gaps && !gapFree(cells, cellStride, rows, kind))) {
        gridRows(wg, nIn, xImage, H, W, xRowBytes, planeBytes, grid, kind, cells, row);
      }
      for (let r = 0; r < rows; r++) {
        const m = gi * 4 + r;
        const b: f32 = bias != 0 ? load<f32>(bias + (<usize>m << 2)) : 0;
        for (let i = 0; i < G; i++) {
          const v = load<f32>(cells + ((<usize>(r * G + i)) << 2));
          store<f32>(fv + ((<usize>(m * G + i)) << 2), (kind == 0 ? v : v / <f32>(KH * KW)) + b);
        }
      }
    }
    const done = <f64>k * <f64>nIn * <f64>HW;
    if (macs != 0) store<f64>(macs + (<usize>n << 3), done);
    total += done;
  }
  return total;
}
