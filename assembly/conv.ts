// Convolutions; see src/backend/kernels.ts for the contract, and assembly/gemm.ts for the packed GEMM.
//
// The forward and the stride-1 backward-input are one correlation (the backward-input correlates dy
// with the flipped, transposed weights) that never forms the im2col matrix: each image's group of
// channels is copied once into zero-padded planes, an 8-pixel run within one output row is read by the
// micro-kernel in place, and any other 8 pixels are packed into a B panel first. Images with few output
// pixels go in batches, so that panels run on across images. The strided backward-input multiplies Wᵀ
// by dy into blocks of dcol and scatters them (col2im); the backward-weight multiplies dy by the im2col
// transpose, gathered panel by panel.

import { hsum, madd } from './vmath';

// Descriptor fields (ConvDescField in kernels.ts).
const F_C = 1, F_H = 2, F_W = 3, F_M = 4, F_KH = 5, F_KW = 6, F_SH = 7, F_SW = 8;
const F_PT = 9, F_PL = 10, F_DH = 11, F_DW = 12, F_G = 13, F_OH = 14, F_OW = 15;

/** Floats the padded planes and the B panel keep past their end for whole-vector reads and writes. */
const SLACK: i32 = 16;
/** Integers of the pixel-segment table of one B panel (count, up to 8 runs) and its 8 column addresses. */
const SEGMENTS: i32 = 64;
/**
 * Images with fewer output pixels than BATCH_BELOW are correlated in batches of up to BATCH_PIXELS
 * pixels, so that 8-pixel panels run on across images instead of ending half empty (49 pixels would
 * fill 7 panels of 8 to 87.5%); the padded planes of a batch take at most XPAD_BUDGET floats.
 */
const BATCH_BELOW: i32 = 256;
const BATCH_PIXELS: i32 = 512;
const XPAD_BUDGET: i32 = 262144;
/** Floats of the dcol block of the strided backward-input, and its widest width. */
const DCOL_BUDGET: i32 = 65536;
const DCOL_MAX_WIDTH: i32 = 512;

@inline function field(desc: usize, i: i32): i32 {
  return load<i32>(desc + (<usize>i << 2));
}

/** Bytes of a scratch region of n floats or ints, rounded up so that the next one starts on 64 bytes. */
@inline function region(n: usize): usize {
  return ((n << 2) + 63) & ~(<usize>63);
}

@inline function roundRows(rows: i32): i32 {
  return (rows + GEMM_MR - 1) / GEMM_MR * GEMM_MR;
}

@inline function zeroFloats(d: usize, n: i32): void {
  if (n > 0) memory.fill(d, 0, <usize>n << 2);
}

/** Copies n floats (short rows: a loop beats a bulk-memory call). */
@inline function copyFloats(d: usize, s: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(d + (<usize>i << 2), v128.load(s + (<usize>i << 2)));
  for (; i < n; i++) store<f32>(d + (<usize>i << 2), load<f32>(s + (<usize>i << 2)));
}

/**
 * dst[c][i][j] = src[c][i - pT][j - pL] for c < Cs, i < Hp, j < Wp where the source (Hs x Ws planes)
 * has that pixel; the other cells of dst are left alone (zeroed once per call).
 */
function padCopy(src: usize, Cs: i32, Hs: i32, Ws: i32, pT: i32, pL: i32, dst: usize, Hp: i32, Wp: i32): void {
  const j0 = max<i32>(0, pL), j1 = min<i32>(Wp, pL + Ws);
  const i0 = max<i32>(0, pT), i1 = min<i32>(Hp, pT + Hs);
  if (j0 >= j1 || i0 >= i1) return;
  for (let c = 0; c < Cs; c++) {
    const s = src + (<usize>c * <usize>Hs * <usize>Ws << 2);
    const d = dst + (<usize>c * <usize>Hp * <usize>Wp << 2);
    for (let i = i0; i < i1; i++) {
      copyFloats(d + ((<usize>i * <usize>Wp + <usize>j0) << 2), s + ((<usize>(i - pT) * <usize>Ws + <usize>(j0 - pL)) << 2), j1 - j0);
    }
  }
}

/** koff[k] for k = (c, kh, kw): the offset in floats of tap k from a pixel's corner in planes of Hp x Wp. */
function tapOffsets(koff: usize, Cs: i32, KH: i32, KW: i32, dH: i32, dW: i32, Hp: i32, Wp: i32): void {
  let k: usize = 0;
  for (let c = 0; c < Cs; c++) {
    for (let kh = 0; kh < KH; kh++) {
      for (let kw = 0; kw < KW; kw++) {
        store<i32>(koff + (k << 2), (c * Hp + kh * dH) * Wp + kw * dW);
        k++;
      }
    }
  }
}

/** Images per batch of the correlation for P output pixels per image and padded planes of planeFloats (mirrored in src/backend/scratch.ts). */
@inline function imagesPerBatch(P: i32, planeFloats: i32): i32 {
  if (P >= BATCH_BELOW) return 1;
  return max<i32>(1, min<i32>(BATCH_PIXELS / P, XPAD_BUDGET / planeFloats));
}

/** The offset in floats of pixel t of a batch (P pixels per image, imageFloats apart) from its planes' start. */
@inline function pixelOffset(t: i32, P: i32, OWo: i32, sH: i32, sW: i32, Wp: i32, imageFloats: i32): i32 {
  const i = t / P, p = t - i * P;
  const oh = p / OWo;
  return i * imageFloats + oh * sH * Wp + (p - oh * OWo) * sW;
}

/**
 * The runs of pixels [t0, t0 + nr) of a batch within output rows (stride 1 across): seg[0] = count, then
 * (slot, offset in floats of the run's first pixel). Runs that continue in memory merge.
 */
function pixelRuns(seg: usize, t0: i32, nr: i32, P: i32, OWo: i32, sH: i32, Wp: i32, imageFloats: i32): i32 {
  let n = 0;
  let j = 0;
  let lastSlot = 0, lastOff = 0;
  while (j < nr) {
    const t = t0 + j;
    const ow = (t % P) % OWo;
    const len = min<i32>(OWo - ow, nr - j);
    const off = pixelOffset(t, P, OWo, sH, 1, Wp, imageFloats);
    if (n == 0 || off != lastOff + (j - lastSlot)) {
      const e = seg + (<usize>(1 + 2 * n) << 2);
      store<i32>(e, j);
      store<i32>(e, off, 4);
      lastSlot = j;
      lastOff = off;
      n++;
    }
    j += len;
  }
  store<i32>(seg, n);
  return n;
}

/** B panel (kc x NR) of the pixels in `seg` runs: for each k, each run's 8 floats from plane + off + koff[k]. */
function packRuns(bp: usize, plane: usize, koff: usize, kc: i32, seg: usize, nr: i32, exact: bool): void {
  const n = load<i32>(seg);
  if (n == 1 && nr == GEMM_NR) {
    const s = plane + (<usize>load<i32>(seg, 8) << 2);
    for (let k = 0; k < kc; k++) {
      const o = s + (<usize>load<i32>(koff + (<usize>k << 2)) << 2);
      v128.store(bp, v128.load(o));
      v128.store(bp, v128.load(o, 16), 16);
      bp += 32;
    }
    return;
  }
  if (exact) {
    // Runs read no further than their own pixels: the source has no slack past its end.
    for (let k = 0; k < kc; k++) {
      const ko = <usize>load<i32>(koff + (<usize>k << 2)) << 2;
      for (let r = 0; r < n; r++) {
        const e = seg + (<usize>(1 + 2 * r) << 2);
        const j0 = load<i32>(e), j1 = r + 1 < n ? load<i32>(e, 8) : nr;
        const o = plane + (<usize>load<i32>(e, 4) << 2) + ko;
        for (let j = j0; j < j1; j++) store<f32>(bp + (<usize>j << 2), load<f32>(o + (<usize>(j - j0) << 2)));
      }
      for (let j = nr; j < GEMM_NR; j++) store<f32>(bp + (<usize>j << 2), 0);
      bp += 32;
    }
    return;
  }
  // Each run writes 8 floats from its slot on; the part past the run is overwritten by the next run,
  // the zero tail or the next k (the last k's spill lands in the panel's slack).
  const zero = f32x4.splat(0);
  for (let k = 0; k < kc; k++) {
    const ko = <usize>load<i32>(koff + (<usize>k << 2)) << 2;
    for (let r = 0; r < n; r++) {
      const e = seg + (<usize>(1 + 2 * r) << 2);
      const d = bp + (<usize>load<i32>(e) << 2);
      const o = plane + (<usize>load<i32>(e, 4) << 2) + ko;
      v128.store(d, v128.load(o));
      v128.store(d, v128.load(o, 16), 16);
    }
    if (nr < GEMM_NR) {
      const d = bp + (<usize>nr << 2);
      v128.store(d, zero);
      v128.store(d, zero, 16);
    }
    bp += 32;
  }
}

/** B panel for strides > 1 across: pixel j's corner offset is pix[j]; nothing read past a tap. */
function packPixels(bp: usize, plane: usize, koff: usize, kc: i32, pix: usize, nr: i32): void {
  for (let k = 0; k < kc; k++) {
    const o = plane + (<usize>load<i32>(koff + (<usize>k << 2)) << 2);
    for (let j = 0; j < GEMM_NR; j++) {
      store<f32>(bp + (<usize>j << 2), j < nr ? load<f32>(o + (<usize>load<i32>(pix + (<usize>j << 2)) << 2)) : 0);
    }
    bp += 32;
  }
}

/**
 * out = bias + Σ_tap wt[tap] · plane shifted by the tap, for one channel correlated with one kernel: the
 * depthwise case (one input and one output channel per group), which a GEMM would run with tiles of a
 * single row. plane is padded (Hp x Wp, with slack); wt holds the taps in the order they apply.
 */
function correlatePlane(plane: usize, Wp: i32, wt: usize, taps: i32, koff: usize, bias: f32, out: usize, OHo: i32, OWo: i32, sH: i32, sW: i32): void {
  for (let oh = 0; oh < OHo; oh++) {
    const row = plane + (<usize>(oh * sH * Wp) << 2);
    const o = out + (<usize>(oh * OWo) << 2);
    let ow = 0;
    if (sW == 1) {
      for (; ow + 8 <= OWo; ow += 8) {
        let acc0 = f32x4.splat(bias), acc1 = acc0;
        const at = row + (<usize>ow << 2);
        for (let t = 0; t < taps; t++) {
          const wv = v128.load32_splat(wt + (<usize>t << 2));
          const src = at + (<usize>load<i32>(koff + (<usize>t << 2)) << 2);
          acc0 = madd(wv, v128.load(src), acc0);
          acc1 = madd(wv, v128.load(src, 16), acc1);
        }
        v128.store(o + (<usize>ow << 2), acc0);
        v128.store(o + (<usize>ow << 2), acc1, 16);
      }
      for (; ow + 4 <= OWo; ow += 4) {
        let acc = f32x4.splat(bias);
        const at = row + (<usize>ow << 2);
        for (let t = 0; t < taps; t++) {
          acc = madd(v128.load32_splat(wt + (<usize>t << 2)), v128.load(at + (<usize>load<i32>(koff + (<usize>t << 2)) << 2)), acc);
        }
        v128.store(o + (<usize>ow << 2), acc);
      }
    }
    for (; ow < OWo; ow++) {
      let acc = bias;
      const at = row + (<usize>(ow * sW) << 2);
      for (let t = 0; t < taps; t++) acc += load<f32>(wt + (<usize>t << 2)) * load<f32>(at + (<usize>load<i32>(koff + (<usize>t << 2)) << 2));
      store<f32>(o + (<usize>ow << 2), acc);
    }
  }
}

/**
 * The correlation shared by the forward (transposed = false) and the stride-1 backward-input
 * (transposed = true, dy correlated with the flipped, transposed weights, padding d(K-1) - pad):
 * out[n][o] = bias[o] + Σ_k A[o][k] · col_n[k] for n in [n0,n1) and output channels o in [lo,hi).
 */
function correlate(desc: usize, transposed: bool, src: usize, w: usize, bias: usize, out: usize,
  n0: i32, n1: i32, lo: i32, hi: i32, scratch: usize): void {
  if (n0 >= n1 || lo >= hi) return;
  const C = field(desc, F_C), H = field(desc, F_H), W = field(desc, F_W), M = field(desc, F_M);
  const KH = field(desc, F_KH), KW = field(desc, F_KW), dH = field(desc, F_DH), dW = field(desc, F_DW);
  const G = field(desc, F_G), OH = field(desc, F_OH), OW = field(desc, F_OW);
  const Cg = C / G, Mg = M / G;
  // Source channels (per group and total), source planes, outputs, strides and padding of the correlation.
  let Cs = Cg, Ctot = C, Hs = H, Ws = W, Mo = Mg, Mtot = M, OHo = OH, OWo = OW;
  let sH = field(desc, F_SH), sW = field(desc, F_SW), pT = field(desc, F_PT), pL = field(desc, F_PL);
  if (transposed) {
    Cs = Mg; Ctot = M; Hs = OH; Ws = OW; Mo = Cg; Mtot = C; OHo = H; OWo = W;
    sH = 1; sW = 1; pT = dH * (KH - 1) - pT; pL = dW * (KW - 1) - pL;
  }
  const taps = KH * KW;
  const Kk = Cs * taps;
  const P = OHo * OWo;
  const Hp = (OHo - 1) * sH + dH * (KH - 1) + 1, Wp = (OWo - 1) * sW + dW * (KW - 1) + 1;
  // x itself is the col matrix's source when one run covers consecutive pixels and no padding is needed.
  const direct = KW == 1 && sW == 1 && sH == 1 && pT == 0 && pL == 0 && OWo == Ws && Hp <= Hs;
  const g0 = lo / Mo, g1 = (hi - 1) / Mo + 1;
  const panelBytes = <usize>Kk * <usize>GEMM_MR << 2;

  let aBytes: usize = 0;
  for (let g = g0; g < g1; g++) {
    const rows = min<i32>(hi, (g + 1) * Mo) - max<i32>(lo, g * Mo);
    aBytes += <usize>(roundRows(rows) / GEMM_MR) * panelBytes;
  }
  const planeFloats = Cs * Hp * Wp;
  const batch = min<i32>(n1 - n0, imagesPerBatch(P, planeFloats));
  // Pixel offsets: in the padded planes of a batch, or in src itself (an image of Ctot planes).
  const pitch = direct ? Ws : Wp;
  const imageFloats = direct ? Ctot * Hs * Ws : planeFloats;
  const ap = scratch;
  const koff = ap + ((aBytes + 63) & ~(<usize>63));
  const xpad = koff + region(Kk);
  const panel = xpad + region(<usize>batch * <usize>planeFloats + SLACK);
  const tmp = panel + region(<usize>GEMM_KC * GEMM_NR + SLACK);
  const seg = tmp + region(GEMM_TILE_FLOATS);

  if (Cs == 1 && Mo == 1) {
    // One channel in, one out per group: direct loops over the padded plane, vectors along output rows.
    tapOffsets(koff, 1, KH, KW, dH, dW, Hp, Wp);
    zeroFloats(xpad, planeFloats + SLACK);
    const wt = ap;
    for (let g = lo; g < hi; g++) {
      for (let t = 0; t < taps; t++) {
        store<f32>(wt + (<usize>t << 2), load<f32>(w + ((<usize>g * <usize>taps + <usize>(transposed ? taps - 1 - t : t)) << 2)));
      }
      const bg: f32 = bias != 0 ? load<f32>(bias + (<usize>g << 2)) : 0;
      for (let n = n0; n < n1; n++) {
        padCopy(src + ((<usize>n * <usize>Ctot + <usize>g) * <usize>Hs * <usize>Ws << 2), 1, Hs, Ws, pT, pL, xpad, Hp, Wp);
        correlatePlane(xpad, Wp, wt, taps, koff, bg, out + ((<usize>n * <usize>Mtot + <usize>g) * <usize>P << 2), OHo, OWo, sH, sW);
      }
    }
    return;
  }

  let a = ap;
  for (let g = g0; g < g1; g++) {
    const glo = max<i32>(lo, g * Mo), rows = min<i32>(hi, (g + 1) * Mo) - glo;
    if (!transposed) {
      gemmPackA(rows, Kk, w + (<usize>glo * <usize>Kk << 2), <usize>Kk << 2, 4, a, panelBytes);
    } else {
      packFlippedTransposed(w, g, glo - g * Cg, rows, Cg, Mg, KH, KW, a, panelBytes);
    }
    a += <usize>(roundRows(rows) / GEMM_MR) * panelBytes;
  }
  if (direct) tapOffsets(koff, Cs, KH, KW, dH, dW, Hs, Ws);
  else {
    tapOffsets(koff, Cs, KH, KW, dH, dW, Hp, Wp);
    zeroFloats(xpad, batch * planeFloats + SLACK);
  }

  const kcStep = gemmBlockDepth(Kk);
  const cols = seg + 128;
  for (let n = n0; n < n1; n += batch) {
    const nb = min<i32>(batch, n1 - n);
    const T = nb * P;
    a = ap;
    for (let g = g0; g < g1; g++) {
      const glo = max<i32>(lo, g * Mo), rows = min<i32>(hi, (g + 1) * Mo) - glo;
      const s = src + ((<usize>n * <usize>Ctot + <usize>(g * Cs)) * <usize>Hs * <usize>Ws << 2);
      let plane = s;
      if (!direct) {
        for (let i = 0; i < nb; i++) {
          padCopy(s + (<usize>i * <usize>Ctot * <usize>Hs * <usize>Ws << 2), Cs, Hs, Ws, pT, pL, xpad + (<usize>i * <usize>imageFloats << 2), Hp, Wp);
        }
        plane = xpad;
      }
      const o = out + (<usize>n * <usize>Mtot + <usize>glo) * (<usize>P << 2);
      const b = bias != 0 ? bias + (<usize>glo << 2) : 0;
      for (let t0 = 0; t0 < T; t0 += GEMM_NR) {
        const nr = min<i32>(GEMM_NR, T - t0);
        if (sW == 1) pixelRuns(seg, t0, nr, P, OWo, sH, pitch, imageFloats);
        else for (let j = 0; j < nr; j++) store<i32>(seg + (<usize>j << 2), pixelOffset(t0 + j, P, OWo, sH, sW, pitch, imageFloats));
        // Columns of C: consecutive within one image, else one address each.
        const i0 = t0 / P, p0 = t0 - i0 * P;
        let c = o + ((<usize>i0 * <usize>Mtot * <usize>P + <usize>p0) << 2);
        let colTable: usize = 0;
        if (p0 + nr > P) {
          for (let j = 0; j < nr; j++) {
            const i = (t0 + j) / P;
            store<u32>(cols + (<usize>j << 2), <u32>(o + ((<usize>i * <usize>Mtot * <usize>P + <usize>(t0 + j - i * P)) << 2)));
          }
          c = 0;
          colTable = cols;
        }
        for (let pc = 0; pc < Kk; pc += kcStep) {
          const kc = min<i32>(kcStep, Kk - pc);
          const kp = koff + (<usize>pc << 2);
          const ak = a + (<usize>pc * <usize>GEMM_MR << 2);
          const betaK: f32 = pc == 0 ? 0 : 1, biasK = pc == 0 ? b : 0;
          if (!direct && sW == 1 && nr == GEMM_NR && load<i32>(seg) == 1) {
            // 8 pixels in one run: the micro-kernel reads them in place. Not from x itself, whose planes
            // are often 4 KiB apart (32 x 32) and would all fall in the same few L1 sets.
            gemmPanel(rows, nr, kc, ak, panelBytes, plane + (<usize>load<i32>(seg, 8) << 2), kp, c, P, 1, betaK, biasK, tmp, colTable);
            continue;
          }
          if (sW == 1) packRuns(panel, plane, kp, kc, seg, nr, direct);
          else packPixels(panel, plane, kp, kc, seg, nr);
          gemmPanel(rows, nr, kc, ak, panelBytes, panel, 0, c, P, 1, betaK, biasK, tmp, colTable);
        }
      }
      a += <usize>(roundRows(rows) / GEMM_MR) * panelBytes;
    }
  }
}

/**
 * Packs rows [c, c + rows) (channels within group g) of A'[c][(m, kh, kw)] = w[g Mg + m][c][KH-1-kh][KW-1-kw]
 * into MR-row panels of depth Mg * KH * KW.
 */
function packFlippedTransposed(w: usize, g: i32, c: i32, rows: i32, Cg: i32, Mg: i32, KH: i32, KW: i32, ap: usize, panelBytes: usize): void {
  const taps = KH * KW;
  for (let i0 = 0, p = 0; i0 < rows; p++) {
    const mr = gemmPanelRows(rows, i0);
    let d = ap + <usize>p * panelBytes;
    for (let m = 0; m < Mg; m++) {
      const wm = w + ((<usize>(g * Mg + m) * <usize>Cg + <usize>(c + i0)) * <usize>taps << 2);
      for (let t = taps - 1; t >= 0; t--) {
        for (let ii = 0; ii < GEMM_MR; ii++) {
          store<f32>(d + (<usize>ii << 2), ii < mr ? load<f32>(wm + ((<usize>ii * <usize>taps + <usize>t) << 2)) : 0);
        }
        d += <usize>GEMM_MR << 2;
      }
    }
    i0 += mr;
  }
}

export function conv2dForward(desc: usize, x: usize, w: usize, bias: usize, y: usize, n0: i32, n1: i32, m0: i32, m1: i32, scratch: usize): void {
  correlate(desc, false, x, w, bias, y, n0, n1, m0, m1, scratch);
}

/** The width of the dcol block for R rows of dcol and P output pixels (mirrored in src/backend/scratch.ts). */
@inline function dcolWidth(R: i32, P: i32): i32 {
  const w = min<i32>(DCOL_MAX_WIDTH, max<i32>(GEMM_NR, DCOL_BUDGET / R / GEMM_NR * GEMM_NR));
  return min<i32>(w, (P + GEMM_NR - 1) / GEMM_NR * GEMM_NR);
}

/** The first output column whose tap kw lands at or right of input column 0: ceil((pL - kw dW) / sW), at least 0. */
@inline function firstInside(pL: i32, kwd: i32, sW: i32): i32 {
  const lead = pL - kwd;
  return lead <= 0 ? 0 : (lead + sW - 1) / sW;
}

/** dx[n][c] += the rows [r0, r0 + R) of dcol (block of pixels [p0, p0 + np), row pitch ld) put back where im2col took them. */
function col2im(desc: usize, dcol: usize, ld: i32, c0: i32, R: i32, p0: i32, np: i32, dxImage: usize): void {
  const H = field(desc, F_H), W = field(desc, F_W), KH = field(desc, F_KH), KW = field(desc, F_KW);
  const sH = field(desc, F_SH), sW = field(desc, F_SW), pT = field(desc, F_PT), pL = field(desc, F_PL);
  const dH = field(desc, F_DH), dW = field(desc, F_DW), OW = field(desc, F_OW);
  const taps = KH * KW;
  for (let r = 0; r < R; r++) {
    const c = c0 + r / taps, t = r % taps;
    const kh = t / KW, kw = t - kh * KW;
    // Output columns [owLo, owHi) put tap kw inside the image's columns.
    const owLo = firstInside(pL, kw * dW, sW);
    const owHi = min<i32>(OW, firstInside(pL + W, kw * dW, sW));
    const drow = dcol + (<usize>r * <usize>ld << 2);
    const dxc = dxImage + (<usize>c * <usize>H * <usize>W << 2);
    let p = p0;
    while (p < p0 + np) {
      const oh = p / OW, ow0 = p - oh * OW;
      const len = min<i32>(OW - ow0, p0 + np - p);
      const ih = oh * sH - pT + kh * dH;
      if (ih >= 0 && ih < H) {
        const row = dxc + (<usize>ih * <usize>W << 2);
        const from = max<i32>(ow0, owLo), to = min<i32>(ow0 + len, owHi);
        let at = row + (<usize>(from * sW - pL + kw * dW) << 2);
        let d = drow + (<usize>(p - p0 + from - ow0) << 2);
        for (let ow = from; ow < to; ow++) {
          store<f32>(at, load<f32>(at) + load<f32>(d));
          at += <usize>sW << 2;
          d += 4;
        }
      }
      p += len;
    }
  }
}

export function conv2dBackwardInput(desc: usize, dy: usize, w: usize, dx: usize, n0: i32, n1: i32, c0: i32, c1: i32, scratch: usize): void {
  if (field(desc, F_SH) == 1 && field(desc, F_SW) == 1) {
    correlate(desc, true, dy, w, 0, dx, n0, n1, c0, c1, scratch);
    return;
  }
  if (n0 >= n1 || c0 >= c1) return;
  const C = field(desc, F_C), H = field(desc, F_H), W = field(desc, F_W), M = field(desc, F_M);
  const KH = field(desc, F_KH), KW = field(desc, F_KW), G = field(desc, F_G);
  const OH = field(desc, F_OH), OW = field(desc, F_OW);
  const Cg = C / G, Mg = M / G;
  const taps = KH * KW;
  const Kg = Cg * taps;
  const P = OH * OW;
  const g0 = c0 / Cg, g1 = (c1 - 1) / Cg + 1;
  const panelBytes = <usize>Mg * <usize>GEMM_MR << 2;
  const ncolMax = dcolWidth(Kg, P);

  let aBytes: usize = 0;
  for (let g = g0; g < g1; g++) {
    const rows = (min<i32>(c1, (g + 1) * Cg) - max<i32>(c0, g * Cg)) * taps;
    aBytes += <usize>(roundRows(rows) / GEMM_MR) * panelBytes;
  }
  const ap = scratch;
  const panel = ap + ((aBytes + 63) & ~(<usize>63));
  const dcol = panel + region(<usize>GEMM_KC * GEMM_NR + SLACK);
  const tmp = dcol + region(<usize>Kg * <usize>ncolMax);

  let a = ap;
  for (let g = g0; g < g1; g++) {
    const clo = max<i32>(c0, g * Cg), R = (min<i32>(c1, (g + 1) * Cg) - clo) * taps;
    // A(r, m) = w[g Mg + m][r0 + r]: the rows of Wᵀ for this group's channels in range.
    gemmPackA(R, Mg, w + ((<usize>g * <usize>Mg * <usize>Kg + <usize>(clo - g * Cg) * <usize>taps) << 2), 4, <usize>Kg << 2, a, panelBytes);
    a += <usize>(roundRows(R) / GEMM_MR) * panelBytes;
  }

  const kcStep = gemmBlockDepth(Mg);
  const planeBytes = <usize>H * <usize>W << 2;
  for (let n = n0; n < n1; n++) {
    const dxImage = dx + <usize>n * <usize>C * planeBytes;
    zeroFloats(dxImage + <usize>c0 * planeBytes, (c1 - c0) * H * W);
    a = ap;
    for (let g = g0; g < g1; g++) {
      const clo = max<i32>(c0, g * Cg), R = (min<i32>(c1, (g + 1) * Cg) - clo) * taps;
      const dyg = dy + ((<usize>n * <usize>M + <usize>(g * Mg)) * <usize>P << 2);
      for (let jc = 0; jc < P; jc += ncolMax) {
        const ncol = min<i32>(ncolMax, P - jc);
        for (let jr = 0; jr < ncol; jr += GEMM_NR) {
          const nr = min<i32>(GEMM_NR, ncol - jr);
          for (let pc = 0; pc < Mg; pc += kcStep) {
            const kc = min<i32>(kcStep, Mg - pc);
            gemmPackB(kc, nr, dyg + ((<usize>pc * <usize>P + <usize>(jc + jr)) << 2), <usize>P << 2, 4, panel);
            gemmPanel(R, nr, kc, a + (<usize>pc * <usize>GEMM_MR << 2), panelBytes, panel, 0, dcol + (<usize>jr << 2), ncolMax,
              1, pc == 0 ? 0 : 1, 0, tmp, 0);
          }
        }
        col2im(desc, dcol, ncolMax, clo, R, jc, ncol, dxImage);
      }
      a += <usize>(roundRows(R) / GEMM_MR) * panelBytes;
    }
  }
}

/** Rows t..t+3 of a B panel (8 floats each) from 4 consecutive pixels of the 8 taps at o0..o7 + q. */
@inline function transposeQuad(d: usize, q: usize, o0: usize, o1: usize, o2: usize, o3: usize, o4: usize, o5: usize, o6: usize, o7: usize): void {
  const v0 = v128.load(o0 + q), v1 = v128.load(o1 + q), v2 = v128.load(o2 + q), v3 = v128.load(o3 + q);
  const a = v128.shuffle<f32>(v0, v1, 0, 4, 1, 5), b = v128.shuffle<f32>(v2, v3, 0, 4, 1, 5);
  const c = v128.shuffle<f32>(v0, v1, 2, 6, 3, 7), e = v128.shuffle<f32>(v2, v3, 2, 6, 3, 7);
  v128.store(d, v128.shuffle<f32>(a, b, 0, 1, 4, 5));
  v128.store(d, v128.shuffle<f32>(a, b, 2, 3, 6, 7), 32);
  v128.store(d, v128.shuffle<f32>(c, e, 0, 1, 4, 5), 64);
  v128.store(d, v128.shuffle<f32>(c, e, 2, 3, 6, 7), 96);
  const w0 = v128.load(o4 + q), w1 = v128.load(o5 + q), w2 = v128.load(o6 + q), w3 = v128.load(o7 + q);
  const f = v128.shuffle<f32>(w0, w1, 0, 4, 1, 5), g = v128.shuffle<f32>(w2, w3, 0, 4, 1, 5);
  const h = v128.shuffle<f32>(w0, w1, 2, 6, 3, 7), k = v128.shuffle<f32>(w2, w3, 2, 6, 3, 7);
  v128.store(d, v128.shuffle<f32>(f, g, 0, 1, 4, 5), 16);
  v128.store(d, v128.shuffle<f32>(f, g, 2, 3, 6, 7), 48);
  v128.store(d, v128.shuffle<f32>(h, k, 0, 1, 4, 5), 80);
  v128.store(d, v128.shuffle<f32>(h, k, 2, 3, 6, 7), 112);
}

/**
 * B panel (kc x NR) of the im2col transpose: row t holds col[j][pixel p0 + t] for the nr taps at
 * koff[0..nr) (zeros past nr), pixels following output rows (OW wide, stride sH x sW, row pitch Wp).
 * Runs of 4 pixels in a row, stride 1 across, go through 4 x 4 transposes.
 */
function packGather(bp: usize, plane: usize, koff: usize, nr: i32, p0: i32, kc: i32, OW: i32, sH: i32, sW: i32, Wp: i32): void {
  const full = nr == GEMM_NR;
  const o0 = plane + (<usize>load<i32>(koff) << 2);
  const o1 = full ? plane + (<usize>load<i32>(koff, 4) << 2) : 0, o2 = full ? plane + (<usize>load<i32>(koff, 8) << 2) : 0;
  const o3 = full ? plane + (<usize>load<i32>(koff, 12) << 2) : 0, o4 = full ? plane + (<usize>load<i32>(koff, 16) << 2) : 0;
  const o5 = full ? plane + (<usize>load<i32>(koff, 20) << 2) : 0, o6 = full ? plane + (<usize>load<i32>(koff, 24) << 2) : 0;
  const o7 = full ? plane + (<usize>load<i32>(koff, 28) << 2) : 0;
  let d = bp;
  let p = p0;
  const end = p0 + kc;
  while (p < end) {
    const oh = p / OW, ow = p - oh * OW;
    const run = min<i32>(OW - ow, end - p);
    const base = <usize>(oh * sH * Wp + ow * sW) << 2;
    let i = 0;
    if (full && sW == 1) {
      for (; i + 4 <= run; i += 4) {
        transposeQuad(d, base + (<usize>i << 2), o0, o1, o2, o3, o4, o5, o6, o7);
        d += 128;
      }
    }
    for (; i < run; i++) {
      const q = base + (<usize>(i * sW) << 2);
      if (full) {
        store<f32>(d, load<f32>(o0 + q));
        store<f32>(d, load<f32>(o1 + q), 4);
        store<f32>(d, load<f32>(o2 + q), 8);
        store<f32>(d, load<f32>(o3 + q), 12);
        store<f32>(d, load<f32>(o4 + q), 16);
        store<f32>(d, load<f32>(o5 + q), 20);
        store<f32>(d, load<f32>(o6 + q), 24);
        store<f32>(d, load<f32>(o7 + q), 28);
      } else {
        for (let j = 0; j < GEMM_NR; j++) {
          store<f32>(d + (<usize>j << 2), j < nr ? load<f32>(plane + (<usize>load<i32>(koff + (<usize>j << 2)) << 2) + q) : 0);
        }
      }
      d += 32;
    }
    p += run;
  }
}

/**
 * The backward-weight of one channel per group (depthwise): dw[g][tap] = beta dw + Σ over images and
 * output pixels of dy · the input under the tap, as dot products along output rows.
 */
function depthwiseWeight(x: usize, dy: usize, dw: usize, n0: i32, n1: i32, m0: i32, m1: i32, beta: f32, C: i32, H: i32, W: i32,
  pT: i32, pL: i32, OH: i32, OW: i32, sH: i32, sW: i32, Hp: i32, Wp: i32, taps: i32, koff: usize, xpad: usize, direct: bool): void {
  const pitch = direct ? W : Wp;
  const P = OH * OW;
  for (let g = m0; g < m1; g++) {
    const dwg = dw + (<usize>g * <usize>taps << 2);
    for (let t = 0; t < taps; t++) {
      const o = dwg + (<usize>t << 2);
      store<f32>(o, beta == 0 ? 0 : beta * load<f32>(o));
    }
    for (let n = n0; n < n1; n++) {
      let plane = x + ((<usize>n * <usize>C + <usize>g) * <usize>H * <usize>W << 2);
      if (!direct) {
        padCopy(plane, 1, H, W, pT, pL, xpad, Hp, Wp);
        plane = xpad;
      }
      const dyp = dy + ((<usize>n * <usize>C + <usize>g) * <usize>P << 2);
      for (let t = 0; t < taps; t++) {
        const tap = plane + (<usize>load<i32>(koff + (<usize>t << 2)) << 2);
        // Four accumulators: one would wait out the multiply-add latency at every step.
        let acc0 = f32x4.splat(0), acc1 = f32x4.splat(0), acc2 = f32x4.splat(0), acc3 = f32x4.splat(0);
        let sum: f32 = 0;
        for (let oh = 0; oh < OH; oh++) {
          const row = tap + (<usize>(oh * sH * pitch) << 2);
          const d = dyp + (<usize>(oh * OW) << 2);
          let ow = 0;
          if (sW == 1) {
            for (; ow + 16 <= OW; ow += 16) {
              const dq = d + (<usize>ow << 2), rq = row + (<usize>ow << 2);
              acc0 = madd(v128.load(dq), v128.load(rq), acc0);
              acc1 = madd(v128.load(dq, 16), v128.load(rq, 16), acc1);
              acc2 = madd(v128.load(dq, 32), v128.load(rq, 32), acc2);
              acc3 = madd(v128.load(dq, 48), v128.load(rq, 48), acc3);
            }
            for (; ow + 4 <= OW; ow += 4) acc0 = madd(v128.load(d + (<usize>ow << 2)), v128.load(row + (<usize>ow << 2)), acc0);
          }
          for (; ow < OW; ow++) sum += load<f32>(d + (<usize>ow << 2)) * load<f32>(row + (<usize>(ow * sW) << 2));
        }
        const o = dwg + (<usize>t << 2);
        store<f32>(o, load<f32>(o) + (sum + hsum(f32x4.add(f32x4.add(acc0, acc1), f32x4.add(acc2, acc3)))));
      }
    }
  }
}

export function conv2dBackwardWeight(desc: usize, x: usize, dy: usize, dw: usize, n0: i32, n1: i32, m0: i32, m1: i32, beta: f32, scratch: usize): void {
  if (m0 >= m1) return;
  const C = field(desc, F_C), H = field(desc, F_H), W = field(desc, F_W), M = field(desc, F_M);
  const KH = field(desc, F_KH), KW = field(desc, F_KW), sH = field(desc, F_SH), sW = field(desc, F_SW);
  const pT = field(desc, F_PT), pL = field(desc, F_PL), dH = field(desc, F_DH), dW = field(desc, F_DW);
  const G = field(desc, F_G), OH = field(desc, F_OH), OW = field(desc, F_OW);
  const Cg = C / G, Mg = M / G;
  const Kg = Cg * KH * KW;
  if (n0 >= n1) {
    if (beta == 0) zeroFloats(dw + (<usize>m0 * <usize>Kg << 2), (m1 - m0) * Kg);
    return;
  }
  const P = OH * OW;
  const Hp = (OH - 1) * sH + dH * (KH - 1) + 1, Wp = (OW - 1) * sW + dW * (KW - 1) + 1;
  // Gathers read exactly the taps, so x serves as the padded planes whenever it needs no padding.
  const direct = pT == 0 && pL == 0 && Wp == W && Hp <= H;
  const kcStep = gemmBlockDepth(P);

  const ap = scratch;
  const koff = ap + region(<usize>roundRows(Mg) * <usize>kcStep);
  const xpad = koff + region(Kg);
  const panel = xpad + region(<usize>Cg * <usize>Hp * <usize>Wp + SLACK);
  const tmp = panel + region(<usize>GEMM_KC * GEMM_NR + SLACK);
  tapOffsets(koff, Cg, KH, KW, dH, dW, direct ? H : Hp, direct ? W : Wp);
  if (!direct) zeroFloats(xpad, Cg * Hp * Wp);
  const pitch = direct ? W : Wp;

  if (Cg == 1 && Mg == 1) {
    depthwiseWeight(x, dy, dw, n0, n1, m0, m1, beta, C, H, W, pT, pL, OH, OW, sH, sW, Hp, Wp, Kg, koff, xpad, direct);
    return;
  }

  const g0 = m0 / Mg, g1 = (m1 - 1) / Mg + 1;
  for (let g = g0; g < g1; g++) {
    const glo = max<i32>(m0, g * Mg), rows = min<i32>(m1, (g + 1) * Mg) - glo;
    const dwg = dw + (<usize>glo * <usize>Kg << 2);
    let first = true;
    for (let n = n0; n < n1; n++) {
      const s = x + ((<usize>n * <usize>C + <usize>(g * Cg)) * <usize>H * <usize>W << 2);
      let plane = s;
      if (!direct) {
        padCopy(s, Cg, H, W, pT, pL, xpad, Hp, Wp);
        plane = xpad;
      }
      const dyg = dy + ((<usize>n * <usize>M + <usize>glo) * <usize>P << 2);
      for (let pc = 0; pc < P; pc += kcStep) {
        const kc = min<i32>(kcStep, P - pc);
        const pb = gemmPanelBytesA(kc);
        gemmPackA(rows, kc, dyg + (<usize>pc << 2), <usize>P << 2, 4, ap, pb);
        const bBlock: f32 = first ? beta : 1;
        for (let j0 = 0; j0 < Kg; j0 += GEMM_NR) {
          const nr = min<i32>(GEMM_NR, Kg - j0);
          packGather(panel, plane, koff + (<usize>j0 << 2), nr, pc, kc, OW, sH, sW, pitch);
          gemmPanel(rows, nr, kc, ap, pb, panel, 0, dwg + (<usize>j0 << 2), Kg, 1, bBlock, 0, tmp, 0);
        }
        first = false;
      }
    }
  }
}
