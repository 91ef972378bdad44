// conv2dInfer's GEMM path, for maps whose weights outgrow the L2 cache: per image and K block (at most
// GEMM_KC steps of (listed input, tap)), the block's rows of every output pixel are packed into B panels
// (im2col over the pixels in row-major order, 8 a panel and 4 in the last when at most 4 are left, so a
// 7 x 7 map fills 49 of 52 lanes instead of 49 of 56), then each row tile's A slice (in L1) meets every
// panel, its sums accumulating in a padded block of the tiles' rows; bias, lower clamp and gate are
// applied when that block is copied out. The tiles come from assembly/infer-tiles.ts (generated).

import { tileOf, Blocks, Panel } from './infer-tiles';
import { fives, sixes, tileStart } from './row-tiles';

/** Floats readable past the accumulator block and the B block by whole-vector reads. */
const SLACK: i32 = 16;
/** Output pixels per block (a multiple of 8). */
const GEMM_PIXELS: i32 = 256;

@inline function region(n: usize): usize {
  return ((n << 2) + 63) & ~(<usize>63);
}

/** Pixels of the padded accumulator rows: whole panels of 8, the last of 4 when at most 4 pixels are left. */
@inline function paddedPixels(P: i32): i32 {
  const full = (P - 1) >> 3;
  return (full << 3) + (P - (full << 3) <= 4 ? 4 : 8);
}

/**
 * The B panels of K steps [k0, k0 + kn) for every pixel: panel p0 / 8 at bb + p0 * kn floats, `pixels`
 * floats per step; pixel p of step k is xp[koff[k] + pix[p]]; lanes past P repeat pixel P - 1.
 */
function packBlock(xp: usize, koff: usize, k0: i32, kn: i32, pix: usize, P: i32, Pp: i32, bb: usize): void {
  const kp0 = koff + (<usize>k0 << 2), kend = kp0 + (<usize>kn << 2);
  for (let p0 = 0; p0 < Pp; p0 += 8) {
    const pixels = min<i32>(8, Pp - p0);
    const stride = <usize>pixels << 2;
    const panel = bb + ((<usize>p0 * <usize>kn) << 2);
    for (let g = 0; g < pixels; g += 4) {
      const q = p0 + g;
      const last = P - 1;
      const o0 = load<i32>(pix + (<usize>min<i32>(q, last) << 2)), o1 = load<i32>(pix + (<usize>min<i32>(q + 1, last) << 2));
      const o2 = load<i32>(pix + (<usize>min<i32>(q + 2, last) << 2)), o3 = load<i32>(pix + (<usize>min<i32>(q + 3, last) << 2));
      let d = panel + (<usize>g << 2);
      let kp = kp0;
      const s0 = xp + (<usize>o0 << 2);
      if (q + 3 < P && o3 - o0 == 3) {
        // Pixels step by at least 1: a span of 3 is four neighbours.
        while (kp < kend) {
          v128.store(d, v128.load(s0 + (<usize>load<i32>(kp) << 2)));
          d += stride;
          kp += 4;
        }
      } else if (q + 3 < P && o1 - o0 == 2 && o2 - o1 == 2 && o3 - o2 == 2) {
        // Every second pixel of one row: 8 floats read, of which the 8th may be the row's or plane's next.
        while (kp < kend) {
          const s = s0 + (<usize>load<i32>(kp) << 2);
          v128.store(d, v128.shuffle<f32>(v128.load(s), v128.load(s, 16), 0, 2, 4, 6));
          d += stride;
          kp += 4;
        }
      } else {
        const s1 = xp + (<usize>o1 << 2), s2 = xp + (<usize>o2 << 2), s3 = xp + (<usize>o3 << 2);
        while (kp < kend) {
          const o = <usize>load<i32>(kp) << 2;
          let v = v128.load32_splat(s0 + o);
          v = f32x4.replace_lane(v, 1, load<f32>(s1 + o));
          v = f32x4.replace_lane(v, 2, load<f32>(s2 + o));
          v = f32x4.replace_lane(v, 3, load<f32>(s3 + o));
          v128.store(d, v);
          d += stride;
          kp += 4;
        }
      }
    }
  }
}

/** Tiles [t0, t1) over one K block of kn steps: tile t's A at a + (t - t0) * aStride (+ the block's offset), its rows' sums at cb. */
function blockTiles<A>(rows: i32, t0: i32, t1: i32, k0: i32, kn: i32, a: usize, aStride: usize, blocks: usize, bb: usize, Pp: i32,
  cb: usize, ldc: usize): void {
  const first = tileStart(rows, t0);
  const s = sixes(rows), sf = s + fives(rows);
  const bl = blocks + (<usize>k0 << 2);
  const aBlock = sizeof<A>() == 8 ? 0 : <usize>k0 * <usize>GEMM_MR << 2;
  const accumulate = k0 > 0;
  let at = a + aBlock;
  for (let t = t0; t < t1; t++) {
    const h = t < s ? 6 : t < sf ? 5 : 4;
    const ct = cb + <usize>(tileStart(rows, t) - first) * ldc;
    for (let p0 = 0; p0 < Pp; p0 += 8) {
      tileOf<A>(h, min<i32>(8, Pp - p0), kn, at, bl, bb + ((<usize>p0 * <usize>kn) << 2), ct + (<usize>p0 << 2), ldc, accumulate);
    }
    at += aStride;
  }
}

/**
 * One image's tiles [t0, t1) of `rows` listed outputs through the GEMM path: K steps with B offsets
 * koff (floats from xp), output pixel (oh, ow) at xp + oh * sH * rowLen + ow * sW; A as runTiles takes
 * it (inPlace: Blocks through the table blocks); the tiles' first row at yMap, rows ldcY bytes apart,
 * pixel rows yRow floats apart; rb, rg the rows' bias and gate; work: GEMM path scratch
 * (gemmPathScratchBytes in src/infer/scratch.ts). Pixels go in blocks of GEMM_PIXELS, so that a K
 * block's panels stay in L2.
 */
export function convGemm(inPlace: bool, rows: i32, t0: i32, t1: i32, K: i32, a: usize, aStride: usize, blocks: usize, xp: usize, koff: usize,
  OH: i32, OW: i32, sH: i32, sW: i32, rowLen: i32, yMap: usize, yRow: i32, ldcY: usize, rb: usize, rg: usize, lo: f32, work: usize): void {
  const P = OH * OW;
  const pix = work;
  const bb = pix + region(<usize>GEMM_PIXELS + 8);
  const cb = bb + region(<usize>GEMM_KC * <usize>GEMM_PIXELS + SLACK);
  const kc = gemmBlockDepth(K);
  const count = min<i32>(rows, tileStart(rows, t1)) - tileStart(rows, t0);
  for (let q0 = 0; q0 < P; q0 += GEMM_PIXELS) {
    const n = min<i32>(GEMM_PIXELS, P - q0), Pp = paddedPixels(n);
    const ldc = <usize>Pp << 2;
    for (let p = 0; p < n; p++) {
      const q = q0 + p, oh = q / OW, ow = q - oh * OW;
      store<i32>(pix + (<usize>p << 2), oh * sH * rowLen + ow * sW);
    }
    for (let k0 = 0; k0 < K; k0 += kc) {
      const kn = min<i32>(kc, K - k0);
      packBlock(xp, koff, k0, kn, pix, n, Pp, bb);
      if (inPlace) blockTiles<Blocks>(rows, t0, t1, k0, kn, a, aStride, blocks, bb, Pp, cb, ldc);
      else blockTiles<Panel>(rows, t0, t1, k0, kn, a, aStride, blocks, bb, Pp, cb, ldc);
    }
    finishBlock(cb, ldc, count, q0, n, OW, yMap, yRow, ldcY, rb, rg, lo);
  }
}

/** y = max(acc + bias, lo) * gate for pixels [q0, q0 + n) of `count` rows; pmax keeps NaN sums as max does (see clampLo in infer.ts). */
function finishBlock(cb: usize, ldc: usize, count: i32, q0: i32, n: i32, OW: i32, yMap: usize, yRow: i32, ldcY: usize, rb: usize, rg: usize, lo: f32): void {
  const lv = f32x4.splat(lo);
  for (let i = 0; i < count; i++) {
    const b = load<f32>(rb + (<usize>i << 2)), g = load<f32>(rg + (<usize>i << 2));
    const bv = f32x4.splat(b), gv = f32x4.splat(g);
    const src = cb + <usize>i * ldc, dst = yMap + <usize>i * ldcY;
    // Runs of pixels that are contiguous in y: the whole block when y's rows are OW apart, else row pieces.
    let p = 0;
    while (p < n) {
      const q = q0 + p, oh = q / OW, ow = q - oh * OW;
      const run = yRow == OW ? n - p : min<i32>(OW - ow, n - p);
      const s = src + (<usize>p << 2), d = dst + (<usize>(oh * yRow + ow) << 2);
      let l = 0;
      for (; l + 4 <= run; l += 4) {
        const o = <usize>l << 2;
        v128.store(d + o, f32x4.mul(f32x4.pmax(f32x4.add(v128.load(s + o), bv), lv), gv));
      }
      for (; l < run; l++) {
        const o = <usize>l << 2;
        const v = load<f32>(s + o) + b;
        store<f32>(d + o, (v < lo ? lo : v) * g);
      }
      p += run;
    }
  }
}
