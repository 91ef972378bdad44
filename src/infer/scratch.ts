/** Per-thread scratch of the inference kernels (layouts in assembly/infer.ts). */
import type { ConvGeometry } from '../backend/kernels.js';

/** Floats readable past the padded planes and the B panel. */
const SLACK = 16;

/** Bytes of a region of n floats or ints, rounded up to 64. */
const region = (n: number): number => Math.ceil((n * 4) / 64) * 64;

/** Floats of conv2dInferPack's arrangement of a weight [M, C, KH, KW]: tiles of 6, 5 or 4 rows, MR (6 or 4) floats per row and k. */
export function packedWeightFloats(g: ConvGeometry): number {
  return (g.M + 5) * g.C * g.KH * g.KW;
}

/** Whether the conv's kernel covers its whole input map (a linear layer): conv2dInfer then does dot products over w's rows. */
export function coversMap(g: ConvGeometry): boolean {
  return g.OH === 1 && g.OW === 1 && g.KH === g.H && g.KW === g.W && g.padTop === 0 && g.padLeft === 0;
}

/** Floats of conv2dInfer's packing scratch (assembly/infer.ts packScratchFloats): panels of every tile, or of groups of tiles within 2^18 floats. */
function packScratchFloats(M: number, K: number): number {
  return Math.min((M + 5) * K, Math.max(1 << 18, 6 * K));
}

/** Deepest K block and widest pixel block of conv2dInfer's GEMM path (GEMM_KC, GEMM_PIXELS in assembly/). */
const KC = 256;
const GEMM_PIXELS = 256;

/** The GEMM path's pixel table, B block and accumulator rows (assembly/infer-gemm.ts). */
export function gemmPathScratchBytes(M: number): number {
  return region(GEMM_PIXELS + 8) + region(KC * GEMM_PIXELS + SLACK) + region((M + 8) * GEMM_PIXELS + SLACK);
}

/**
 * writeConvInferDesc's gemmFrom for g: small maps whose weights outgrow the L2 cache take the GEMM path
 * (streaming them once per 8-pixel row chunk costs more than packing the input into panels), and strided
 * convs, whose rows path packs panels anyway; 0 for 1-pixel outputs (linear layers).
 */
export function convInferGemmFrom(g: ConvGeometry): number {
  if (g.groups !== 1 || g.OH * g.OW === 1) return 0;
  if (g.strideW > 1) return 1;
  return g.M * g.C * g.KH * g.KW >= GEMM_MIN_WEIGHTS ? GEMM_MIN_WEIGHTS : 0;
}
/** Weights (floats) of an image's call from which a stride-1 conv takes the GEMM path. */
const GEMM_MIN_WEIGHTS = 49152;

/**
 * conv2dInfer's scratch; gemmFrom: its descriptor's (above 0, the GEMM path's pixel table, B block and
 * accumulator rows too); padded: whether x's or y's planes are stored padded. A conv covering its
 * compact input map needs only the rows' bias and gate.
 */
export function conv2dInferScratchBytes(g: ConvGeometry, gemmFrom = convInferGemmFrom(g), padded = false): number {
  const rowsPart = 2 * region(g.M + 8) + region(16) + region(48);
  if (coversMap(g) && !padded) return rowsPart;
  const K = g.C * g.KH * g.KW;
  const flat = g.KH * g.KW === 1 && g.strideH === 1 && g.strideW === 1 && g.padTop === 0 && g.padLeft === 0 && g.OH === g.H && g.OW === g.W;
  const Hp = (g.OH - 1) * g.strideH + g.dilationH * (g.KH - 1) + 1;
  const Wp = (g.OW - 1) * g.strideW + g.dilationW * (g.KW - 1) + 1;
  const base = rowsPart + 2 * region(K) + region(packScratchFloats(g.M, K)) + region(flat ? 0 : g.C * Hp * Wp + SLACK) + region(K * 8 + SLACK);
  return gemmFrom > 0 ? base + gemmPathScratchBytes(g.M) : base;
}

export function lkamSwitchesScratchBytes(M: number): number {
  return 3 * region(M);
}

/** The packed bank weights (four outputs a group, per listed input), 4 rows of grid cells, 4 rows of a map row. */
export function lkamBankPoolScratchBytes(C: number, W: number, k: number, grid: number): number {
  return region(Math.ceil(k / 4) * 4 * C) + region(4 * grid * grid) + region(4 * W);
}

/** The slot of each input channel, the tap offsets, one padded input plane. */
export function conv2dGroupedInferScratchBytes(g: ConvGeometry): number {
  const Hp = (g.OH - 1) * g.strideH + g.dilationH * (g.KH - 1) + 1;
  const Wp = (g.OW - 1) * g.strideW + g.dilationW * (g.KW - 1) + 1;
  return region(g.C) + region(g.KH * g.KW) + region(Hp * Wp + SLACK);
}
