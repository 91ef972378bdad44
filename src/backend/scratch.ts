/** Per-thread scratch sizes that the kernels in assembly/ rely on (see the `scratch` argument in kernels.ts). */
import type { ConvGeometry } from './kernels.js';

export function gemmScratchBytes(): number {
  throw new Error('gemmScratchBytes: not built yet');
}

export function convScratchBytes(g: ConvGeometry): number {
  throw new Error(`convScratchBytes(${g.M}): not built yet`);
}
