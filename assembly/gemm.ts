// GEMM; see src/backend/kernels.ts for the contract.
//
// BLIS layout: op(A) is packed into panels of MR rows and op(B) into panels of NR columns, each panel
// k-major (MR or NR consecutive floats per k) and zero-padded at the edges; a register-tiled micro-kernel
// multiplies one A panel by one B panel. K is cut into balanced blocks of at most KC. When A has at most
// MC rows it is packed whole per K block and each KC x NR panel of B is packed just before its use (it
// stays in L1 while the A panels stream from L2); otherwise MC x KC blocks of A (96 KiB, L2) meet
// KC x NC blocks of B (1 MiB) packed once per (jc, pc) block.
//
// Names marked @global are shared with conv.ts without becoming module exports.

import { madd } from './vmath';

/**
 * Rows of the register tile. With fused multiply-add, 6 x 8 (12 accumulators, 2 B vectors, 1 A splat)
 * fills V8's 15 allocatable xmm registers and beats 4 x 8 by about 15%; the plain build's separate
 * product needs a 16th, and 6 x 8 measures no faster there, so it keeps 4 x 8 (less waste at the edges).
 */
@global const GEMM_MR: i32 = ASC_FEATURE_RELAXED_SIMD ? 6 : 4;
/** Columns of the register tile: two v128 per row. */
@global const GEMM_NR: i32 = 8;
/** Deepest K block. */
@global const GEMM_KC: i32 = 256;
/** Rows of op(A) per packed block: a multiple of every MR (4, 6, 8). */
const GEMM_MC: i32 = 96;
/** Columns of op(B) per packed block. */
const GEMM_NC: i32 = 1024;
/** Floats of the edge-tile buffer: one MR x NR tile for any MR up to 8. */
@global const GEMM_TILE_FLOATS: i32 = 64;

/** Balanced K blocks: the block depth for K, at most GEMM_KC. */
@global @inline function gemmBlockDepth(K: i32): i32 {
  const blocks = (K + GEMM_KC - 1) / GEMM_KC;
  return (K + blocks - 1) / blocks;
}

/**
 * Rows in the A panel that starts at row i of an mc-row block: MR, fewer in the last panel; and when
 * MR = 6 and the block ends in 6 + 2 rows, those 8 rows go to two panels of 4 (two 4 x 8 tiles beat a
 * 6 x 8 tile plus a 4 x 8 tile computing 2 rows). The panel count stays ceil(mc / MR).
 */
@global @inline function gemmPanelRows(mc: i32, i: i32): i32 {
  const left = mc - i;
  if (GEMM_MR == 6 && mc % 6 == 2 && (left == 8 || left == 4)) return 4;
  return min<i32>(GEMM_MR, left);
}

/** Bytes of an MR-row panel of depth kc. */
@global @inline function gemmPanelBytesA(kc: i32): usize {
  return <usize>kc * <usize>GEMM_MR << 2;
}

/** alpha * acc + bias + beta * C, written to the two vectors at cp (a full row of a tile). */
@inline function finishRow(cp: usize, r0: v128, r1: v128, alpha: f32, beta: f32, bias: usize): void {
  if (alpha != 1) {
    const av = f32x4.splat(alpha);
    r0 = f32x4.mul(r0, av);
    r1 = f32x4.mul(r1, av);
  }
  if (bias != 0) {
    const bv = v128.load32_splat(bias);
    r0 = f32x4.add(r0, bv);
    r1 = f32x4.add(r1, bv);
  }
  if (beta == 1) {
    r0 = f32x4.add(r0, v128.load(cp));
    r1 = f32x4.add(r1, v128.load(cp, 16));
  } else if (beta != 0) {
    const bv = f32x4.splat(beta);
    r0 = madd(bv, v128.load(cp), r0);
    r1 = madd(bv, v128.load(cp, 16), r1);
  }
  v128.store(cp, r0);
  v128.store(cp, r1, 16);
}

/**
 * The same for an mr x nr corner of a tile whose accumulators were spilled to tmp (rows of NR floats).
 * With cols = 0, column j of row i is at c + (i ldc + j) floats; otherwise cols holds one address per
 * column and c is a byte offset added to them (row i then at c + 4 i ldc).
 */
function finishEdge(tmp: usize, c: usize, ldc: i32, alpha: f32, beta: f32, bias: usize, mr: i32, nr: i32, cols: usize): void {
  for (let i = 0; i < mr; i++) {
    const cp = c + (<usize>i * <usize>ldc << 2);
    const tp = tmp + (<usize>i * <usize>GEMM_NR << 2);
    const b: f32 = bias != 0 ? load<f32>(bias + (<usize>i << 2)) : 0;
    for (let j = 0; j < nr; j++) {
      const o = cols != 0 ? cp + <usize>load<u32>(cols + (<usize>j << 2)) : cp + (<usize>j << 2);
      let v = alpha * load<f32>(tp + (<usize>j << 2)) + b;
      if (beta != 0) v += beta * load<f32>(o);
      store<f32>(o, v);
    }
  }
}

@inline function spillRow(tmp: usize, i: i32, r0: v128, r1: v128): void {
  v128.store(tmp + (<usize>i * <usize>GEMM_NR << 2), r0);
  v128.store(tmp + (<usize>i * <usize>GEMM_NR << 2), r1, 16);
}

/**
 * The 4 x 8 tile of C from the first 4 rows of an A panel (MR floats per k) and 8 columns of B:
 * a packed panel (NR floats per k) or, when inPlace, rows found at b + koff[k] floats.
 */
@inline function tile4x8(kc: i32, a: usize, b: usize, koff: usize, inPlace: bool, c: usize, ldc: i32,
  alpha: f32, beta: f32, bias: usize, mr: i32, nr: i32, tmp: usize, cols: usize): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  const end = a + <usize>kc * <usize>GEMM_MR * 4;
  while (a < end) {
    let bk = b;
    if (inPlace) bk = b + (<usize>load<i32>(koff) << 2);
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
    a += <usize>GEMM_MR * 4;
    if (inPlace) koff += 4;
    else b += 32;
  }
  const ldcB = <usize>ldc << 2;
  if (mr == 4 && nr == 8 && cols == 0) {
    finishRow(c, c00, c01, alpha, beta, bias);
    finishRow(c + ldcB, c10, c11, alpha, beta, bias != 0 ? bias + 4 : 0);
    finishRow(c + 2 * ldcB, c20, c21, alpha, beta, bias != 0 ? bias + 8 : 0);
    finishRow(c + 3 * ldcB, c30, c31, alpha, beta, bias != 0 ? bias + 12 : 0);
    return;
  }
  spillRow(tmp, 0, c00, c01);
  spillRow(tmp, 1, c10, c11);
  spillRow(tmp, 2, c20, c21);
  spillRow(tmp, 3, c30, c31);
  finishEdge(tmp, c, ldc, alpha, beta, bias, mr, nr, cols);
}

/** The 6 x 8 tile, as tile4x8. */
@inline function tile6x8(kc: i32, a: usize, b: usize, koff: usize, inPlace: bool, c: usize, ldc: i32,
  alpha: f32, beta: f32, bias: usize, mr: i32, nr: i32, tmp: usize, cols: usize): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  let c40 = f32x4.splat(0), c41 = f32x4.splat(0), c50 = f32x4.splat(0), c51 = f32x4.splat(0);
  const end = a + <usize>kc * 24;
  while (a < end) {
    let bk = b;
    if (inPlace) bk = b + (<usize>load<i32>(koff) << 2);
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
    if (inPlace) koff += 4;
    else b += 32;
  }
  const ldcB = <usize>ldc << 2;
  if (mr == 6 && nr == 8 && cols == 0) {
    finishRow(c, c00, c01, alpha, beta, bias);
    finishRow(c + ldcB, c10, c11, alpha, beta, bias != 0 ? bias + 4 : 0);
    finishRow(c + 2 * ldcB, c20, c21, alpha, beta, bias != 0 ? bias + 8 : 0);
    finishRow(c + 3 * ldcB, c30, c31, alpha, beta, bias != 0 ? bias + 12 : 0);
    finishRow(c + 4 * ldcB, c40, c41, alpha, beta, bias != 0 ? bias + 16 : 0);
    finishRow(c + 5 * ldcB, c50, c51, alpha, beta, bias != 0 ? bias + 20 : 0);
    return;
  }
  spillRow(tmp, 0, c00, c01);
  spillRow(tmp, 1, c10, c11);
  spillRow(tmp, 2, c20, c21);
  spillRow(tmp, 3, c30, c31);
  spillRow(tmp, 4, c40, c41);
  spillRow(tmp, 5, c50, c51);
  finishEdge(tmp, c, ldc, alpha, beta, bias, mr, nr, cols);
}

function micro4x8(kc: i32, a: usize, b: usize, c: usize, ldc: i32, alpha: f32, beta: f32, bias: usize, mr: i32, nr: i32, tmp: usize, cols: usize): void {
  tile4x8(kc, a, b, 0, false, c, ldc, alpha, beta, bias, mr, nr, tmp, cols);
}
function micro4x8InPlace(kc: i32, a: usize, b: usize, koff: usize, c: usize, ldc: i32, alpha: f32, beta: f32, bias: usize, mr: i32, nr: i32, tmp: usize, cols: usize): void {
  tile4x8(kc, a, b, koff, true, c, ldc, alpha, beta, bias, mr, nr, tmp, cols);
}
function micro6x8(kc: i32, a: usize, b: usize, c: usize, ldc: i32, alpha: f32, beta: f32, bias: usize, mr: i32, nr: i32, tmp: usize, cols: usize): void {
  tile6x8(kc, a, b, 0, false, c, ldc, alpha, beta, bias, mr, nr, tmp, cols);
}
function micro6x8InPlace(kc: i32, a: usize, b: usize, koff: usize, c: usize, ldc: i32, alpha: f32, beta: f32, bias: usize, mr: i32, nr: i32, tmp: usize, cols: usize): void {
  tile6x8(kc, a, b, koff, true, c, ldc, alpha, beta, bias, mr, nr, tmp, cols);
}

/** One register tile: the 6-row kernel when the build has it and more than 4 rows remain, else the 4-row one. */
@inline function tile(mr: i32, nr: i32, kc: i32, a: usize, b: usize, koff: usize, c: usize, ldc: i32,
  alpha: f32, beta: f32, bias: usize, tmp: usize, cols: usize): void {
  if (GEMM_MR == 6 && mr > 4) {
    if (koff != 0) micro6x8InPlace(kc, a, b, koff, c, ldc, alpha, beta, bias, mr, nr, tmp, cols);
    else micro6x8(kc, a, b, c, ldc, alpha, beta, bias, mr, nr, tmp, cols);
  } else {
    if (koff != 0) micro4x8InPlace(kc, a, b, koff, c, ldc, alpha, beta, bias, mr, nr, tmp, cols);
    else micro4x8(kc, a, b, c, ldc, alpha, beta, bias, mr, nr, tmp, cols);
  }
}

/**
 * C[mc x nr] = alpha * A * B + bias + beta * C for 8 columns of B against the A panels of mc rows,
 * panelBytes apart. B is a packed panel (kc x NR) when koff = 0; otherwise row k of B is the 8 floats
 * at b + koff[k] floats (then nr must be 8 and all those floats readable). bias (0 for none) holds one
 * float per row; beta = 0 never reads C. cols = 0: C's columns are consecutive from c; otherwise cols
 * holds nr column addresses (of row 0) and c must be 0.
 */
@global function gemmPanel(mc: i32, nr: i32, kc: i32, a: usize, panelBytes: usize, b: usize, koff: usize, c: usize, ldc: i32,
  alpha: f32, beta: f32, bias: usize, tmp: usize, cols: usize): void {
  for (let i = 0; i < mc;) {
    const mr = gemmPanelRows(mc, i);
    tile(mr, nr, kc, a, b, koff, c, ldc, alpha, beta, bias != 0 ? bias + (<usize>i << 2) : 0, tmp, cols);
    a += panelBytes;
    c += <usize>mr * <usize>ldc << 2;
    i += mr;
  }
}

/**
 * Packs the mc x kc block A(i, k) = load(a + i * rs + k * cs) (strides in bytes) into MR-row panels
 * panelBytes apart, zero-padding the rows past mc in the last panel.
 */
@global function gemmPackA(mc: i32, kc: i32, a: usize, rs: usize, cs: usize, ap: usize, panelBytes: usize): void {
  let dst = ap;
  for (let i0 = 0; i0 < mc; dst += panelBytes) {
    const mr = gemmPanelRows(mc, i0);
    const src = a + <usize>i0 * rs;
    i0 += mr;
    if (cs == 4) {
      for (let ii = 0; ii < mr; ii++) {
        const s = src + <usize>ii * rs;
        let d = dst + (<usize>ii << 2);
        for (let k = 0; k < kc; k++) {
          store<f32>(d, load<f32>(s + (<usize>k << 2)));
          d += <usize>GEMM_MR << 2;
        }
      }
      for (let ii = mr; ii < GEMM_MR; ii++) {
        let d = dst + (<usize>ii << 2);
        for (let k = 0; k < kc; k++) {
          store<f32>(d, 0);
          d += <usize>GEMM_MR << 2;
        }
      }
    } else {
      let d = dst;
      for (let k = 0; k < kc; k++) {
        const s = src + <usize>k * cs;
        for (let ii = 0; ii < GEMM_MR; ii++) store<f32>(d + (<usize>ii << 2), ii < mr ? load<f32>(s + <usize>ii * rs) : 0);
        d += <usize>GEMM_MR << 2;
      }
    }
  }
}

/**
 * Packs the kc x nc block B(k, j) = load(b + k * rs + j * cs) (strides in bytes) into NR-column
 * panels of kc * NR floats, zero-padding the columns past nc in the last panel.
 */
@global function gemmPackB(kc: i32, nc: i32, b: usize, rs: usize, cs: usize, bp: usize): void {
  for (let j0 = 0; j0 < nc; j0 += GEMM_NR) {
    const nr = min<i32>(GEMM_NR, nc - j0);
    let d = bp + (<usize>j0 * <usize>kc << 2);
    const src = b + <usize>j0 * cs;
    if (cs == 4 && nr == GEMM_NR) {
      let s = src;
      for (let k = 0; k < kc; k++) {
        v128.store(d, v128.load(s));
        v128.store(d, v128.load(s, 16), 16);
        s += rs;
        d += <usize>GEMM_NR << 2;
      }
    } else if (cs == 4) {
      let s = src;
      for (let k = 0; k < kc; k++) {
        for (let jj = 0; jj < GEMM_NR; jj++) store<f32>(d + (<usize>jj << 2), jj < nr ? load<f32>(s + (<usize>jj << 2)) : 0);
        s += rs;
        d += <usize>GEMM_NR << 2;
      }
    } else {
      for (let jj = 0; jj < GEMM_NR; jj++) {
        const s = src + <usize>jj * cs;
        let dj = d + (<usize>jj << 2);
        for (let k = 0; k < kc; k++) {
          store<f32>(dj, jj < nr ? load<f32>(s + <usize>k * rs) : 0);
          dj += <usize>GEMM_NR << 2;
        }
      }
    }
  }
}

/** C = beta * C over an M x N block (beta = 0 writes zeros without reading C). */
function scaleC(M: i32, N: i32, beta: f32, c: usize, ldc: i32): void {
  for (let i = 0; i < M; i++) {
    const cp = c + (<usize>i * <usize>ldc << 2);
    for (let j = 0; j < N; j++) {
      const o = cp + (<usize>j << 2);
      store<f32>(o, beta == 0 ? 0 : beta * load<f32>(o));
    }
  }
}

export function gemm(transA: i32, transB: i32, M: i32, N: i32, K: i32, alpha: f32,
  a: usize, lda: i32, b: usize, ldb: i32, beta: f32, c: usize, ldc: i32, scratch: usize): void {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0) {
    scaleC(M, N, beta, c, ldc);
    return;
  }
  // op(A)(i, k) and op(B)(k, j) as byte strides.
  const ars: usize = transA != 0 ? 4 : <usize>lda << 2;
  const acs: usize = transA != 0 ? <usize>lda << 2 : 4;
  const brs: usize = transB != 0 ? 4 : <usize>ldb << 2;
  const bcs: usize = transB != 0 ? <usize>ldb << 2 : 4;
  const ap = scratch;
  const bp = ap + (<usize>GEMM_MC * <usize>GEMM_KC << 2);
  const tmp = bp + (<usize>GEMM_KC * <usize>GEMM_NC << 2);
  const kcStep = gemmBlockDepth(K);
  for (let jc = 0; jc < N; jc += GEMM_NC) {
    const nc = min<i32>(GEMM_NC, N - jc);
    for (let pc = 0; pc < K; pc += kcStep) {
      const kc = min<i32>(kcStep, K - pc);
      const betaBlock: f32 = pc == 0 ? beta : 1;
      const panelBytes = gemmPanelBytesA(kc);
      if (M <= GEMM_MC) {
        // All of A fits one block: each B panel is packed just before use and stays in L1.
        gemmPackA(M, kc, a + <usize>pc * acs, ars, acs, ap, panelBytes);
        for (let j = 0; j < nc; j += GEMM_NR) {
          const nr = min<i32>(GEMM_NR, nc - j);
          gemmPackB(kc, nr, b + <usize>pc * brs + <usize>(jc + j) * bcs, brs, bcs, bp);
          gemmPanel(M, nr, kc, ap, panelBytes, bp, 0, c + (<usize>(jc + j) << 2), ldc, alpha, betaBlock, 0, tmp, 0);
        }
        continue;
      }
      gemmPackB(kc, nc, b + <usize>pc * brs + <usize>jc * bcs, brs, bcs, bp);
      for (let ic = 0; ic < M; ic += GEMM_MC) {
        const mc = min<i32>(GEMM_MC, M - ic);
        gemmPackA(mc, kc, a + <usize>ic * ars + <usize>pc * acs, ars, acs, ap, panelBytes);
        const cBlock = c + ((<usize>ic * <usize>ldc + <usize>jc) << 2);
        for (let j = 0; j < nc; j += GEMM_NR) {
          gemmPanel(mc, min<i32>(GEMM_NR, nc - j), kc, ap, panelBytes, bp + (<usize>j * <usize>kc << 2), 0,
            cBlock + (<usize>j << 2), ldc, alpha, betaBlock, 0, tmp, 0);
        }
      }
    }
  }
}
