import type { LinearMemory } from '../../tensor/memory.js';
import { CONV_DESC_INTS, ConvDescField, type ConvGeometry, type Kernels } from '../kernels.js';

type ConvKernels = Pick<Kernels, 'conv2dForward' | 'conv2dBackwardInput' | 'conv2dBackwardWeight'>;

function readDesc(mem: LinearMemory, desc: number): ConvGeometry {
  const i32 = mem.i32.subarray(desc >>> 2, (desc >>> 2) + CONV_DESC_INTS);
  return Object.fromEntries(Object.entries(ConvDescField).map(([k, i]) => [k, i32[i]!])) as unknown as ConvGeometry;
}

/**
 * Calls visit(ih, iw, oh, ow) for every output pixel and kernel tap (kh, kw) whose input pixel lies in
 * the image: ih = oh * strideH - padTop + kh * dilationH, and the same across.
 */
function forEachTap(g: ConvGeometry, kh: number, kw: number, visit: (ih: number, iw: number, oh: number, ow: number) => void): void {
  for (let oh = 0; oh < g.OH; oh++) {
    const ih = oh * g.strideH - g.padTop + kh * g.dilationH;
    if (ih < 0 || ih >= g.H) continue;
    for (let ow = 0; ow < g.OW; ow++) {
      const iw = ow * g.strideW - g.padLeft + kw * g.dilationW;
      if (iw >= 0 && iw < g.W) visit(ih, iw, oh, ow);
    }
  }
}

/** Direct loops over NCHW images and [M, C/groups, KH, KW] weights, summed in float64. */
export function convReference(mem: LinearMemory): ConvKernels {
  return {
    conv2dForward(desc, x, w, bias, y, n0, n1, m0, m1) {
      const g = readDesc(mem, desc);
      const v = mem.f32;
      const Cg = g.C / g.groups, Mg = g.M / g.groups;
      const plane = g.OH * g.OW;
      const acc = new Float64Array(plane);
      for (let n = n0; n < n1; n++) {
        for (let m = m0; m < m1; m++) {
          acc.fill(bias === 0 ? 0 : v[(bias >>> 2) + m]!);
          const grp = Math.floor(m / Mg);
          for (let c = 0; c < Cg; c++) {
            const xc = (x >>> 2) + (n * g.C + grp * Cg + c) * g.H * g.W;
            for (let kh = 0; kh < g.KH; kh++) {
              for (let kw = 0; kw < g.KW; kw++) {
                const wv = v[(w >>> 2) + ((m * Cg + c) * g.KH + kh) * g.KW + kw]!;
                forEachTap(g, kh, kw, (ih, iw, oh, ow) => { acc[oh * g.OW + ow]! += wv * v[xc + ih * g.W + iw]!; });
              }
            }
          }
          v.set(acc, (y >>> 2) + (n * g.M + m) * plane);
        }
      }
    },

    conv2dBackwardInput(desc, dy, w, dx, n0, n1, c0, c1) {
      const g = readDesc(mem, desc);
      const v = mem.f32;
      const Cg = g.C / g.groups, Mg = g.M / g.groups;
      const acc = new Float64Array(g.H * g.W);
      for (let n = n0; n < n1; n++) {
        for (let c = c0; c < c1; c++) {
          acc.fill(0);
          const grp = Math.floor(c / Cg);
          for (let m = grp * Mg; m < (grp + 1) * Mg; m++) {
            const dym = (dy >>> 2) + (n * g.M + m) * g.OH * g.OW;
            for (let kh = 0; kh < g.KH; kh++) {
              for (let kw = 0; kw < g.KW; kw++) {
                const wv = v[(w >>> 2) + ((m * Cg + c - grp * Cg) * g.KH + kh) * g.KW + kw]!;
                forEachTap(g, kh, kw, (ih, iw, oh, ow) => { acc[ih * g.W + iw]! += wv * v[dym + oh * g.OW + ow]!; });
              }
            }
          }
          v.set(acc, (dx >>> 2) + (n * g.C + c) * g.H * g.W);
        }
      }
    },

    conv2dBackwardWeight(desc, x, dy, dw, n0, n1, m0, m1, beta) {
      const g = readDesc(mem, desc);
      const v = mem.f32;
      const Cg = g.C / g.groups, Mg = g.M / g.groups;
      for (let m = m0; m < m1; m++) {
        const grp = Math.floor(m / Mg);
        for (let c = 0; c < Cg; c++) {
          for (let kh = 0; kh < g.KH; kh++) {
            for (let kw = 0; kw < g.KW; kw++) {
              let s = 0;
              for (let n = n0; n < n1; n++) {
                const xc = (x >>> 2) + (n * g.C + grp * Cg + c) * g.H * g.W;
                const dym = (dy >>> 2) + (n * g.M + m) * g.OH * g.OW;
                forEachTap(g, kh, kw, (ih, iw, oh, ow) => { s += v[dym + oh * g.OW + ow]! * v[xc + ih * g.W + iw]!; });
              }
              const at = (dw >>> 2) + ((m * Cg + c) * g.KH + kh) * g.KW + kw;
              v[at] = beta === 0 ? s : Math.fround(beta) * v[at]! + s;
            }
          }
        }
      }
    },
  };
}
