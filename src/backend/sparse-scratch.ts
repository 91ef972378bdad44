/** Per-thread scratch of the channel-sparse convolutions (layout in assembly/sparse.ts). */
import type { ConvGeometry } from './kernels.js';
import { convScratchBytes } from './scratch.js';

const region = (floats: number): number => Math.ceil((floats * 4) / 64) * 64;

export function sparseConvScratchBytes(g: ConvGeometry): number {
  const HW = g.H * g.W;
  const P = g.OH * g.OW;
  const taps = g.KH * g.KW;
  const planes = Math.max(g.C * HW, g.M * P);
  return region(16) + region(planes) + region(g.M * g.C * taps) + region(planes) + region(g.M)
    + convScratchBytes({ ...g, N: 1, groups: 1 });
}
