import type { LinearMemory } from '../../tensor/memory.js';
import { ConvDescField as F, ConvInferDescField as IF, MapPlaneField as MF, PoolDescField as PF, type Kernels } from '../kernels.js';

type InferKernels = Pick<Kernels, 'conv2dInfer' | 'conv2dInferPack' | 'lkamSwitches' | 'lkamBankPool' | 'pool2dInfer' | 'globalPoolInfer' | 'scatterChannels' | 'addChannels'>;

const f = Math.fround;

/** The listed channels of image n. */
function listed(i32: Int32Array, list: number, n: number, C: number): number[] {
  const at = (list >>> 2) + n * (C + 1);
  const count = i32[at] as number;
  return Array.from(i32.subarray(at + 1, at + 1 + count));
}

function f64View(mem: LinearMemory, ptr: number, n: number): Float64Array {
  return new Float64Array(mem.memory.buffer, ptr, n);
}

/** Whether v replaces best: NaN beats any number, the first maximum wins ties. */
function beatsMax(v: number, best: number): boolean {
  return v > best || (Number.isNaN(v) && !Number.isNaN(best));
}

/** The sigmoid as the WASM kernels compute it, from e = exp(-|x|). */
function sigmoid(x: number): number {
  const e = f(Math.exp(-Math.abs(x)));
  const pos = f(1 / f(1 + e));
  return x >= 0 ? pos : f(e * pos);
}

/**
 * Plain twins of the inference kernels: direct loops over the listed channels, float64 sums for the
 * convolution, float32 steps where the WASM kernels' exact order is part of the contract (the switch
 * pre-activations, pooling sums).
 */
export function inferReference(mem: LinearMemory): InferKernels {
  return {
    conv2dInfer(desc, x, xList, w, wPacked, bias, lo, gate, y, yList, n0, n1, part, parts, macs) {
      const i32 = mem.i32, v = mem.f32;
      const g = (k: keyof typeof F): number => i32[(desc >>> 2) + F[k]] as number;
      const C = g('C'), H = g('H'), W = g('W'), M = g('M'), KH = g('KH'), KW = g('KW');
      const sh = g('strideH'), sw = g('strideW'), pt = g('padTop'), pl = g('padLeft'), dh = g('dilationH'), dw = g('dilationW');
      const OH = g('OH'), OW = g('OW');
      const P = OH * OW;
      // The reference arrangement of wPacked is w itself.
      const wt = w !== 0 ? w : wPacked;
      const at = (k: keyof typeof IF): number => i32[(desc >>> 2) + IF[k]] as number;
      // Input planes: compact H x W, or padded as the conv's own padded copy (map at (pt, pl)).
      const xPadded = at('xPadded') !== 0;
      const xRows = xPadded ? (OH - 1) * sh + dh * (KH - 1) + 1 : H, xCols = xPadded ? (OW - 1) * sw + dw * (KW - 1) + 1 : W;
      const xTop = xPadded ? pt : 0, xLeft = xPadded ? pl : 0;
      const yCols = at('yCols') !== 0 ? at('yCols') : OW, yRows = at('yCols') !== 0 ? at('yRows') : OH;
      const yTop = at('yTop'), yLeft = at('yLeft');
      let total = 0;
      for (let n = n0; n < n1; n++) {
        const ins = listed(i32, xList, n, C);
        const outs = listed(i32, yList, n, M);
        const i0 = Math.floor((outs.length * part) / parts), i1 = Math.floor((outs.length * (part + 1)) / parts);
        for (let i = i0; i < i1; i++) {
          const m = outs[i] as number;
          const b = bias === 0 ? 0 : (v[(bias >>> 2) + m] as number);
          const s = gate === 0 ? 1 : (v[(gate >>> 2) + n * M + m] as number);
          const base = (y >>> 2) + (n * M + i) * yRows * yCols;
          for (let oh = 0; oh < OH; oh++) {
            for (let ow = 0; ow < OW; ow++) {
              let acc = 0;
              ins.forEach((c, j) => {
                for (let kh = 0; kh < KH; kh++) {
                  const ih = oh * sh - pt + kh * dh;
                  if (ih < 0 || ih >= H) continue;
                  for (let kw = 0; kw < KW; kw++) {
                    const iw = ow * sw - pl + kw * dw;
                    if (iw < 0 || iw >= W) continue;
                    acc += (v[(x >>> 2) + ((n * C + j) * xRows + ih + xTop) * xCols + iw + xLeft] as number) * (v[(wt >>> 2) + ((m * C + c) * KH + kh) * KW + kw] as number);
                  }
                }
              });
              v[base + (oh + yTop) * yCols + ow + yLeft] = f(Math.max(f(f(acc) + b), lo) * s);
            }
          }
        }
        const done = (i1 - i0) * ins.length * KH * KW * P;
        if (macs !== 0) f64View(mem, macs, n + 1)[n] = done;
        total += done;
      }
      return total;
    },
    conv2dInferPack(desc, w, wPacked) {
      const i32 = mem.i32;
      const size = (i32[(desc >>> 2) + F.M] as number) * (i32[(desc >>> 2) + F.C] as number) * (i32[(desc >>> 2) + F.KH] as number) * (i32[(desc >>> 2) + F.KW] as number);
      mem.f32.copyWithin(wPacked >>> 2, w >>> 2, (w >>> 2) + size);
    },
    lkamSwitches(feat, F_, fcW, fcB, M, rule, threshold, budget, inList, C, gate, outList, macs, n0, n1) {
      const v = mem.f32, i32 = mem.i32;
      const useSigmoid = (rule & 1) !== 0, inclusive = (rule & 2) !== 0;
      const thr = f(threshold);
      let total = 0;
      for (let n = n0; n < n1; n++) {
        const values: number[] = [];
        let on: number[] = [];
        for (let m = 0; m < M; m++) {
          let acc = 0;
          for (let k = 0; k < F_; k++) acc = f(acc + f((v[(fcW >>> 2) + m * F_ + k] as number) * (v[(feat >>> 2) + n * F_ + k] as number)));
          const pre = f(acc + (fcB === 0 ? 0 : (v[(fcB >>> 2) + m] as number)));
          const s = useSigmoid ? sigmoid(pre) : Math.min(Math.max(pre, 0), 1);
          values.push(s);
          if (inclusive ? s >= thr : s > thr) on.push(m);
        }
        if (budget < 1 && on.length > 0) {
          const nIn = inList === 0 ? C : (i32[(inList >>> 2) + n * (C + 1)] as number);
          const limit = nIn > 0 ? Math.min(M, Math.floor((Math.max(budget, 0) * M * C) / nIn)) : M;
          if (on.length > limit) {
            const kept = [...on].sort((a, b) => (values[b] as number) - (values[a] as number) || a - b).slice(0, limit);
            on = kept.sort((a, b) => a - b);
          }
        }
        const keep = new Set(on);
        for (let m = 0; m < M; m++) v[(gate >>> 2) + n * M + m] = keep.has(m) ? ((rule & 4) !== 0 ? 1 : (values[m] as number)) : 0;
        const at = (outList >>> 2) + n * (M + 1);
        i32[at] = on.length;
        on.forEach((m, i) => { i32[at + 1 + i] = m; });
        if (macs !== 0) f64View(mem, macs, n + 1)[n] = F_ * M;
        total += F_ * M;
      }
      return total;
    },
    lkamBankPool(x, xList, C, plane, w, bias, k, grid, kind, feat, macs, n0, n1) {
      const v = mem.f32;
      const pf = (k: keyof typeof MF): number => mem.i32[(plane >>> 2) + MF[k]] as number;
      const H = pf('H'), W = pf('W'), xCols = pf('cols'), xPlane = pf('size');
      const HW = H * W, G = grid * grid;
      const sH = Math.floor(H / grid), sW = Math.floor(W / grid), KH = H - (grid - 1) * sH, KW = W - (grid - 1) * sW;
      const map = new Float32Array(HW);
      let total = 0;
      for (let n = n0; n < n1; n++) {
        const ins = listed(mem.i32, xList, n, C);
        for (let m = 0; m < k; m++) {
          const b = bias === 0 ? 0 : (v[(bias >>> 2) + m] as number);
          for (let p = 0; p < HW; p++) {
            let acc = 0;
            const at = Math.floor(p / W) * xCols + (p % W);
            ins.forEach((c, j) => { acc += (v[(x >>> 2) + (n * C + j) * xPlane + at] as number) * (v[(w >>> 2) + m * C + c] as number); });
            map[p] = f(acc) + b;
          }
          for (let oh = 0; oh < grid; oh++) {
            for (let ow = 0; ow < grid; ow++) {
              let out = kind === 0 ? -Infinity : 0;
              for (let hh = oh * sH; hh < oh * sH + KH; hh++) {
                for (let q = ow * sW; q < ow * sW + KW; q++) {
                  const e = map[hh * W + q] as number;
                  if (kind === 0) {
                    if (beatsMax(e, out)) out = e;
                  } else {
                    out = f(out + e);
                  }
                }
              }
              v[(feat >>> 2) + n * k * G + m * G + oh * grid + ow] = kind === 0 ? out : out / (KH * KW);
            }
          }
        }
        const done = k * ins.length * HW;
        if (macs !== 0) f64View(mem, macs, n + 1)[n] = done;
        total += done;
      }
      return total;
    },
    pool2dInfer(desc, x, xList, y, kind, n0, n1) {
      const i32 = mem.i32, v = mem.f32;
      const g = (k: keyof typeof PF): number => i32[(desc >>> 2) + PF[k]] as number;
      const C = g('C'), H = g('H'), W = g('W'), KH = g('KH'), KW = g('KW'), sh = g('strideH'), sw = g('strideW');
      const pt = g('padTop'), pl = g('padLeft'), OH = g('OH'), OW = g('OW'), includePad = g('countIncludePad') !== 0;
      for (let n = n0; n < n1; n++) {
        const planes = listed(i32, xList, n, C).length;
        for (let j = 0; j < planes; j++) {
          const xp = (x >>> 2) + (n * C + j) * H * W;
          const yp = (y >>> 2) + (n * C + j) * OH * OW;
          for (let oh = 0; oh < OH; oh++) {
            for (let ow = 0; ow < OW; ow++) {
              const h0 = oh * sh - pt, w0 = ow * sw - pl;
              const hs = Math.max(h0, 0), he = Math.min(h0 + KH, H), ws = Math.max(w0, 0), we = Math.min(w0 + KW, W);
              let out: number;
              if (kind === 0) {
                out = -Infinity;
                for (let h = hs; h < he; h++) for (let q = ws; q < we; q++) if (beatsMax(v[xp + h * W + q] as number, out)) out = v[xp + h * W + q] as number;
              } else {
                let s = 0;
                for (let h = hs; h < he; h++) for (let q = ws; q < we; q++) s = f(s + (v[xp + h * W + q] as number));
                const count = includePad ? KH * KW : Math.max(he - hs, 0) * Math.max(we - ws, 0);
                out = count > 0 ? s / count : 0;
              }
              v[yp + oh * OW + ow] = out;
            }
          }
        }
      }
    },
    globalPoolInfer(x, xList, C, HW, kind, y, n0, n1) {
      const v = mem.f32;
      for (let n = n0; n < n1; n++) {
        const count = listed(mem.i32, xList, n, C).length;
        for (let j = 0; j < count; j++) {
          const xp = (x >>> 2) + (n * C + j) * HW;
          let out: number;
          if (kind === 0) {
            out = -Infinity;
            for (let i = 0; i < HW; i++) if (beatsMax(v[xp + i] as number, out)) out = v[xp + i] as number;
          } else {
            let s = 0;
            for (let i = 0; i < HW; i++) s += v[xp + i] as number;
            out = HW > 0 ? s / HW : 0;
          }
          v[(y >>> 2) + n * C + j] = out;
        }
      }
    },
    scatterChannels(x, xList, C, HW, y, n0, n1) {
      const v = mem.f32;
      for (let n = n0; n < n1; n++) {
        v.fill(0, (y >>> 2) + n * C * HW, (y >>> 2) + (n + 1) * C * HW);
        listed(mem.i32, xList, n, C).forEach((c, j) => {
          const s = (x >>> 2) + (n * C + j) * HW;
          v.copyWithin((y >>> 2) + (n * C + c) * HW, s, s + HW);
        });
      }
    },
    addChannels(a, aList, b, bList, C, HW, lo, y, n0, n1) {
      const v = mem.f32;
      for (let n = n0; n < n1; n++) {
        const sum = new Float32Array(C * HW);
        for (const [src, list] of [[a, aList], [b, bList]] as const) {
          listed(mem.i32, list, n, C).forEach((c, j) => {
            for (let i = 0; i < HW; i++) sum[c * HW + i] = f((sum[c * HW + i] as number) + (v[(src >>> 2) + (n * C + j) * HW + i] as number));
          });
        }
        for (let i = 0; i < C * HW; i++) v[(y >>> 2) + n * C * HW + i] = Math.max(sum[i] as number, lo);
      }
    },
  };
}
