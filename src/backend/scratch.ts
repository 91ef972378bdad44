/** Per-thread scratch sizes that the kernels in assembly/ rely on (see the `scratch` argument in kernels.ts). */
import type { ConvGeometry } from './kernels.js';

// Mirrors of the blocking constants in assembly/gemm.ts and the scratch layouts in assembly/conv.ts.
const NR = 8;
const KC = 256;
const MC = 96;
const NC = 1024;
const TILE = 64;
/** Rows of a packed A block round up to the register tile height (4 or 6 by build): at most 7 extra rows. */
const TILE_ROWS_SLACK = 7;
/** Floats that the padded image and the B panel keep past their end for whole-vector reads and writes. */
const SLACK = 16;
/** Integers of the pixel-segment table of one B panel and its column addresses. */
const SEGMENTS = 64;
const BATCH_BELOW = 256;
const BATCH_PIXELS = 512;
const XPAD_BUDGET = 262144;
/**
 * Floats of the dcol block of the strided backward-input: R rows by a width of at most 512, at least 8,
 * that shrinks as R grows. The bound grows with R, so that a geometry with fewer channels never needs more.
 */
const DCOL_BUDGET = 65536;

/** Each region starts on a 64-byte boundary. */
const region = (floats: number): number => Math.ceil(floats / 16) * 16;

export function gemmScratchBytes(): number {
  return 4 * (region(MC * KC) + region(KC * NC) + region(TILE));
}

/**
 * Floats of the padded planes of one batch of images: images with fewer than BATCH_BELOW output pixels
 * go in batches of up to BATCH_PIXELS pixels and XPAD_BUDGET floats. This bound (not the exact batch)
 * grows with the plane size.
 */
function batchPlaneFloats(P: number, planeFloats: number): number {
  if (P >= BATCH_BELOW) return planeFloats;
  return Math.max(planeFloats, Math.min(Math.floor(BATCH_PIXELS / P) * planeFloats, XPAD_BUDGET));
}

/** Floats of the correlation (forward, and the stride-1 backward-input) with Cs source channels, Mo outputs, P output pixels and padded planes Hp x Wp per group. */
function correlationFloats(groups: number, Mo: number, Kk: number, Cs: number, P: number, Hp: number, Wp: number): number {
  return region(groups * (Mo + TILE_ROWS_SLACK) * Kk) + region(Kk) + region(batchPlaneFloats(P, Cs * Hp * Wp) + SLACK)
    + region(KC * NR + SLACK) + region(TILE) + region(SEGMENTS);
}

export function convScratchBytes(g: ConvGeometry): number {
  const Cg = g.C / g.groups, Mg = g.M / g.groups;
  const taps = g.KH * g.KW;
  const Kg = Cg * taps;
  const Hp = (g.OH - 1) * g.strideH + g.dilationH * (g.KH - 1) + 1;
  const Wp = (g.OW - 1) * g.strideW + g.dilationW * (g.KW - 1) + 1;
  const forward = correlationFloats(g.groups, Mg, Kg, Cg, g.OH * g.OW, Hp, Wp);
  let backwardInput: number;
  if (g.strideH === 1 && g.strideW === 1) {
    const Hq = g.H + g.dilationH * (g.KH - 1), Wq = g.W + g.dilationW * (g.KW - 1);
    backwardInput = correlationFloats(g.groups, Cg, Mg * taps, Mg, g.H * g.W, Hq, Wq);
  } else {
    backwardInput = region(g.groups * (Kg + TILE_ROWS_SLACK) * Mg) + region(KC * NR + SLACK) + region(Math.max(DCOL_BUDGET, Kg * NR)) + region(TILE);
  }
  const backwardWeight = region((Mg + TILE_ROWS_SLACK) * KC) + region(Kg) + region(Cg * Hp * Wp + SLACK)
    + region(KC * NR + SLACK) + region(TILE);
  return 4 * Math.max(forward, backwardInput, backwardWeight);
}
