import type { LinearMemory } from '../../tensor/memory.js';
import { ConvDescField as F, type Kernels } from '../kernels.js';

const f = Math.fround;

/** The plain twin of conv2dGroupedInfer: direct loops over each listed output's listed group inputs, float64 sums. */
export function groupedReference(mem: LinearMemory): Pick<Kernels, 'conv2dGroupedInfer'> {
  return {
    conv2dGroupedInfer(desc, x, xList, w, bias, lo, gate, y, yList, n0, n1, part, parts, macs) {
      const i32 = mem.i32, v = mem.f32;
      const g = (k: keyof typeof F): number => i32[(desc >>> 2) + F[k]] as number;
      const C = g('C'), H = g('H'), W = g('W'), M = g('M'), KH = g('KH'), KW = g('KW'), G = g('groups');
      const sh = g('strideH'), sw = g('strideW'), pt = g('padTop'), pl = g('padLeft'), dh = g('dilationH'), dw = g('dilationW');
      const OH = g('OH'), OW = g('OW');
      const Cg = C / G, Mg = M / G, P = OH * OW;
      let total = 0;
      for (let n = n0; n < n1; n++) {
        const xl = (xList >>> 2) + n * (C + 1), yl = (yList >>> 2) + n * (M + 1);
        const ins = Array.from(i32.subarray(xl + 1, xl + 1 + (i32[xl] as number)));
        const outs = Array.from(i32.subarray(yl + 1, yl + 1 + (i32[yl] as number)));
        const i0 = Math.floor((outs.length * part) / parts), i1 = Math.floor((outs.length * (part + 1)) / parts);
        let done = 0;
        for (let i = i0; i < i1; i++) {
          const m = outs[i] as number;
          const c0 = Math.floor(m / Mg) * Cg;
          const reads = ins.map((c, j) => [c, j] as const).filter(([c]) => c >= c0 && c < c0 + Cg);
          const b = bias === 0 ? 0 : (v[(bias >>> 2) + m] as number);
          const s = gate === 0 ? 1 : (v[(gate >>> 2) + n * M + m] as number);
          for (let oh = 0; oh < OH; oh++) {
            for (let ow = 0; ow < OW; ow++) {
              let acc = 0;
              for (const [c, j] of reads) {
                for (let kh = 0; kh < KH; kh++) {
                  const ih = oh * sh - pt + kh * dh;
                  if (ih < 0 || ih >= H) continue;
                  for (let kw = 0; kw < KW; kw++) {
                    const iw = ow * sw - pl + kw * dw;
                    if (iw < 0 || iw >= W) continue;
                    acc += (v[(x >>> 2) + ((n * C + j) * H + ih) * W + iw] as number) * (v[(w >>> 2) + ((m * Cg + c - c0) * KH + kh) * KW + kw] as number);
                  }
                }
              }
              v[(y >>> 2) + (n * M + i) * P + oh * OW + ow] = f(Math.max(f(f(acc) + b), lo) * s);
            }
          }
          done += reads.length * KH * KW * P;
        }
        if (macs !== 0) new Float64Array(mem.memory.buffer, macs, n + 1)[n] = done;
        total += done;
      }
      return total;
    },
  };
}
