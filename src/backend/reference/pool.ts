import type { LinearMemory } from '../../tensor/memory.js';
import { PoolDescField, type Kernels, type PoolGeometry } from '../kernels.js';

type PoolKernels = Pick<Kernels, 'maxPool2dForward' | 'maxPool2dBackward' | 'avgPool2dForward' | 'avgPool2dBackward'
  | 'globalAvgPoolForward' | 'globalAvgPoolBackward' | 'globalMaxPoolForward' | 'globalMaxPoolBackward'>;

const f = Math.fround;

function readPoolDesc(i32: Int32Array, ptr: number): PoolGeometry {
  const g: Record<string, number> = {};
  for (const [k, i] of Object.entries(PoolDescField)) g[k] = i32[(ptr >>> 2) + i]!;
  return g as PoolGeometry;
}

/** Whether v replaces best: NaN is greater than any number, and the first maximum wins ties. */
export function beatsMax(v: number, best: number): boolean {
  return v > best || (Number.isNaN(v) && !Number.isNaN(best));
}

/** The in-image part [hs, he) x [ws, we) of the window of output (oh, ow). */
function window(g: PoolGeometry, oh: number, ow: number): { hs: number; he: number; ws: number; we: number } {
  const h0 = oh * g.strideH - g.padTop;
  const w0 = ow * g.strideW - g.padLeft;
  return { hs: Math.max(h0, 0), he: Math.min(h0 + g.KH, g.H), ws: Math.max(w0, 0), we: Math.min(w0 + g.KW, g.W) };
}

function avgDivisor(g: PoolGeometry, hs: number, he: number, ws: number, we: number): number {
  return g.countIncludePad !== 0 ? g.KH * g.KW : Math.max(he - hs, 0) * Math.max(we - ws, 0);
}

export function poolReference(mem: LinearMemory): PoolKernels {
  return {
    maxPool2dForward(desc, x, y, argmax, n0, n1) {
      const v = mem.f32, a = mem.i32;
      const g = readPoolDesc(a, desc);
      for (let p = n0 * g.C; p < n1 * g.C; p++) {
        const xp = (x >>> 2) + p * g.H * g.W;
        for (let oh = 0; oh < g.OH; oh++) {
          for (let ow = 0; ow < g.OW; ow++) {
            const { hs, he, ws, we } = window(g, oh, ow);
            let best = -Infinity;
            let idx = hs < he && ws < we ? hs * g.W + ws : -1;
            for (let h = hs; h < he; h++) {
              for (let w = ws; w < we; w++) {
                const val = v[xp + h * g.W + w]!;
                if (beatsMax(val, best)) {
                  best = val;
                  idx = h * g.W + w;
                }
              }
            }
            const o = p * g.OH * g.OW + oh * g.OW + ow;
            v[(y >>> 2) + o] = best;
            a[(argmax >>> 2) + o] = idx;
          }
        }
      }
    },
    maxPool2dBackward(desc, dy, argmax, dx, n0, n1) {
      const v = mem.f32, a = mem.i32;
      const g = readPoolDesc(a, desc);
      const outs = g.OH * g.OW;
      for (let p = n0 * g.C; p < n1 * g.C; p++) {
        const dxp = (dx >>> 2) + p * g.H * g.W;
        v.fill(0, dxp, dxp + g.H * g.W);
        for (let i = 0; i < outs; i++) {
          const at = a[(argmax >>> 2) + p * outs + i]!;
          if (at >= 0) v[dxp + at] = v[dxp + at]! + v[(dy >>> 2) + p * outs + i]!;
        }
      }
    },
    avgPool2dForward(desc, x, y, n0, n1) {
      const v = mem.f32;
      const g = readPoolDesc(mem.i32, desc);
      for (let p = n0 * g.C; p < n1 * g.C; p++) {
        const xp = (x >>> 2) + p * g.H * g.W;
        for (let oh = 0; oh < g.OH; oh++) {
          for (let ow = 0; ow < g.OW; ow++) {
            const { hs, he, ws, we } = window(g, oh, ow);
            let s = 0;
            for (let h = hs; h < he; h++) for (let w = ws; w < we; w++) s = f(s + v[xp + h * g.W + w]!);
            const count = avgDivisor(g, hs, he, ws, we);
            v[(y >>> 2) + p * g.OH * g.OW + oh * g.OW + ow] = count > 0 ? s / count : 0;
          }
        }
      }
    },
    avgPool2dBackward(desc, dy, dx, n0, n1) {
      const v = mem.f32;
      const g = readPoolDesc(mem.i32, desc);
      for (let p = n0 * g.C; p < n1 * g.C; p++) {
        const dxp = (dx >>> 2) + p * g.H * g.W;
        v.fill(0, dxp, dxp + g.H * g.W);
        for (let oh = 0; oh < g.OH; oh++) {
          for (let ow = 0; ow < g.OW; ow++) {
            const { hs, he, ws, we } = window(g, oh, ow);
            if (hs >= he || ws >= we) continue;
            const share = f(v[(dy >>> 2) + p * g.OH * g.OW + oh * g.OW + ow]! / avgDivisor(g, hs, he, ws, we));
            for (let h = hs; h < he; h++) for (let w = ws; w < we; w++) v[dxp + h * g.W + w] = v[dxp + h * g.W + w]! + share;
          }
        }
      }
    },
    globalAvgPoolForward(x, y, planes, HW) {
      const v = mem.f32;
      for (let p = 0; p < planes; p++) {
        let s = 0;
        for (let i = 0; i < HW; i++) s += v[(x >>> 2) + p * HW + i]!;
        v[(y >>> 2) + p] = HW > 0 ? s / HW : 0;
      }
    },
    globalAvgPoolBackward(dy, dx, planes, HW) {
      const v = mem.f32;
      for (let p = 0; p < planes; p++) v.fill(v[(dy >>> 2) + p]! / HW, (dx >>> 2) + p * HW, (dx >>> 2) + (p + 1) * HW);
    },
    globalMaxPoolForward(x, y, argmax, planes, HW) {
      const v = mem.f32;
      for (let p = 0; p < planes; p++) {
        let best = -Infinity;
        let idx = HW > 0 ? 0 : -1;
        for (let i = 0; i < HW; i++) {
          const val = v[(x >>> 2) + p * HW + i]!;
          if (beatsMax(val, best)) {
            best = val;
            idx = i;
          }
        }
        v[(y >>> 2) + p] = best;
        mem.i32[(argmax >>> 2) + p] = idx;
      }
    },
    globalMaxPoolBackward(dy, argmax, dx, planes, HW) {
      const v = mem.f32;
      for (let p = 0; p < planes; p++) {
        v.fill(0, (dx >>> 2) + p * HW, (dx >>> 2) + (p + 1) * HW);
        const at = mem.i32[(argmax >>> 2) + p]!;
        if (at >= 0) v[(dx >>> 2) + p * HW + at] = v[(dy >>> 2) + p]!;
      }
    },
  };
}
