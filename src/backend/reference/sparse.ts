import type { LinearMemory } from '../../tensor/memory.js';
import type { Kernels } from '../kernels.js';
import { ConvDescField as F } from '../kernels.js';

type SparseKernels = Pick<Kernels, 'conv2dForwardSparse' | 'conv2dBackwardInputSparse' | 'conv2dBackwardWeightSparse'>;

interface Geometry {
  N: number; C: number; H: number; W: number; M: number; KH: number; KW: number; sh: number; sw: number;
  pt: number; pl: number; dh: number; dw: number; OH: number; OW: number;
}

function geometry(i32: Int32Array, desc: number): Geometry {
  const d = desc >>> 2;
  const at = (k: number): number => i32[d + k] as number;
  return {
    N: at(F.N), C: at(F.C), H: at(F.H), W: at(F.W), M: at(F.M), KH: at(F.KH), KW: at(F.KW), sh: at(F.strideH), sw: at(F.strideW),
    pt: at(F.padTop), pl: at(F.padLeft), dh: at(F.dilationH), dw: at(F.dilationW), OH: at(F.OH), OW: at(F.OW),
  };
}

/** Active channels of image n from an index list. */
function active(i32: Int32Array, idx: number, count: number, n: number, C: number): number[] {
  const k = i32[(count >>> 2) + n] as number;
  const out: number[] = [];
  for (let j = 0; j < k; j++) out.push(i32[(idx >>> 2) + n * C + j] as number);
  return out;
}

/**
 * Plain twins of the channel-sparse convolutions (groups = 1): direct loops over the active
 * channels only, float64 sums; each returns the multiply-adds it did (OH*OW*KH*KW per active pair).
 */
export function sparseReference(mem: LinearMemory): SparseKernels {
  return {
    conv2dForwardSparse(desc, x, w, bias, y, n0, n1, outIdx, outCount, inIdx, inCount) {
      const i32 = mem.i32;
      const v = mem.f32;
      const g = geometry(i32, desc);
      let macs = 0;
      for (let n = n0; n < n1; n++) {
        const outs = active(i32, outIdx, outCount, n, g.M);
        const ins = active(i32, inIdx, inCount, n, g.C);
        const base = (y >>> 2) + n * g.M * g.OH * g.OW;
        v.fill(0, base, base + g.M * g.OH * g.OW);
        for (const m of outs) {
          for (let oh = 0; oh < g.OH; oh++) {
            for (let ow = 0; ow < g.OW; ow++) {
              let s = bias === 0 ? 0 : (v[(bias >>> 2) + m] as number);
              for (const c of ins) {
                for (let kh = 0; kh < g.KH; kh++) {
                  const ih = oh * g.sh - g.pt + kh * g.dh;
                  if (ih < 0 || ih >= g.H) continue;
                  for (let kw = 0; kw < g.KW; kw++) {
                    const iw = ow * g.sw - g.pl + kw * g.dw;
                    if (iw < 0 || iw >= g.W) continue;
                    s += (v[(x >>> 2) + ((n * g.C + c) * g.H + ih) * g.W + iw] as number) * (v[(w >>> 2) + ((m * g.C + c) * g.KH + kh) * g.KW + kw] as number);
                  }
                }
              }
              v[base + (m * g.OH + oh) * g.OW + ow] = s;
            }
          }
        }
        macs += outs.length * ins.length * g.KH * g.KW * g.OH * g.OW;
      }
      return macs;
    },

    conv2dBackwardInputSparse(desc, dy, w, dx, n0, n1, outIdx, outCount, inIdx, inCount) {
      const i32 = mem.i32;
      const v = mem.f32;
      const g = geometry(i32, desc);
      let macs = 0;
      for (let n = n0; n < n1; n++) {
        const outs = active(i32, outIdx, outCount, n, g.M);
        const ins = active(i32, inIdx, inCount, n, g.C);
        const plane = g.H * g.W;
        const acc = new Float64Array(g.C * plane);
        for (const m of outs) {
          for (let oh = 0; oh < g.OH; oh++) {
            for (let ow = 0; ow < g.OW; ow++) {
              const d = v[(dy >>> 2) + ((n * g.M + m) * g.OH + oh) * g.OW + ow] as number;
              for (const c of ins) {
                for (let kh = 0; kh < g.KH; kh++) {
                  const ih = oh * g.sh - g.pt + kh * g.dh;
                  if (ih < 0 || ih >= g.H) continue;
                  for (let kw = 0; kw < g.KW; kw++) {
                    const iw = ow * g.sw - g.pl + kw * g.dw;
                    if (iw < 0 || iw >= g.W) continue;
                    acc[c * plane + ih * g.W + iw]! += d * (v[(w >>> 2) + ((m * g.C + c) * g.KH + kh) * g.KW + kw] as number);
                  }
                }
              }
            }
          }
        }
        const base = (dx >>> 2) + n * g.C * plane;
        for (let i = 0; i < g.C * plane; i++) v[base + i] = acc[i] as number;
        macs += outs.length * ins.length * g.KH * g.KW * g.OH * g.OW;
      }
      return macs;
    },

    conv2dBackwardWeightSparse(desc, x, dy, dw, n0, n1, outIdx, outCount, inIdx, inCount, beta) {
      const i32 = mem.i32;
      const v = mem.f32;
      const g = geometry(i32, desc);
      const size = g.M * g.C * g.KH * g.KW;
      const acc = new Float64Array(size);
      if (beta !== 0) for (let i = 0; i < size; i++) acc[i] = v[(dw >>> 2) + i] as number;
      let macs = 0;
      for (let n = n0; n < n1; n++) {
        const outs = active(i32, outIdx, outCount, n, g.M);
        const ins = active(i32, inIdx, inCount, n, g.C);
        for (const m of outs) {
          for (const c of ins) {
            for (let kh = 0; kh < g.KH; kh++) {
              for (let kw = 0; kw < g.KW; kw++) {
                let s = 0;
                for (let oh = 0; oh < g.OH; oh++) {
                  const ih = oh * g.sh - g.pt + kh * g.dh;
                  if (ih < 0 || ih >= g.H) continue;
                  for (let ow = 0; ow < g.OW; ow++) {
                    const iw = ow * g.sw - g.pl + kw * g.dw;
                    if (iw < 0 || iw >= g.W) continue;
                    s += (v[(dy >>> 2) + ((n * g.M + m) * g.OH + oh) * g.OW + ow] as number) * (v[(x >>> 2) + ((n * g.C + c) * g.H + ih) * g.W + iw] as number);
                  }
                }
                acc[((m * g.C + c) * g.KH + kh) * g.KW + kw]! += s;
              }
            }
          }
        }
        macs += outs.length * ins.length * g.KH * g.KW * g.OH * g.OW;
      }
      for (let i = 0; i < size; i++) v[(dw >>> 2) + i] = acc[i] as number;
      return macs;
    },
  };
}
