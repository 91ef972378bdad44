import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CONV_DESC_INTS, convOutSize, writeConvDesc, type ConvGeometry, type Kernels } from '../../src/backend/kernels.js';
import { conv2dGroupedInferScratchBytes } from '../../src/infer/scratch.js';
import { h, everyKernelSet, buf, prefill, uniform, conform, always, seed, shift, assertGuards } from '../util/conformance.js';
import { TestRng } from '../util/rng.js';
import { compactData, listData, randomSets } from '../util/channel-lists.js';
import { close } from '../util/tolerance.js';

// Depthwise (Cg = 1, multiplier 1 or 2) and grouped convs, odd map sizes, strides 1-3.
const groupedCase = fc.record({
  N: fc.integer({ min: 1, max: 3 }), G: fc.integer({ min: 1, max: 7 }), Cg: fc.constantFrom(1, 1, 2, 3), Mg: fc.constantFrom(1, 1, 2),
  H: fc.integer({ min: 1, max: 17 }), W: fc.oneof(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 10, max: 23 })),
  KH: fc.integer({ min: 1, max: 3 }), KW: fc.integer({ min: 1, max: 5 }), stride: fc.integer({ min: 1, max: 2 }), strideW: fc.integer({ min: 1, max: 3 }),
  pad: fc.integer({ min: 0, max: 2 }), padW: fc.integer({ min: 0, max: 2 }), dil: fc.integer({ min: 1, max: 2 }),
  pIn: fc.constantFrom(0, 0.4, 0.8, 1), pOut: fc.constantFrom(0, 0.5, 1), parts: fc.integer({ min: 1, max: 3 }),
  bias: fc.boolean(), relu: fc.boolean(), gate: fc.boolean(),
}).filter((r) => convOutSize(r.H, r.KH, r.stride, r.pad, r.pad, r.dil) >= 1 && convOutSize(r.W, r.KW, r.strideW, r.padW, r.padW, r.dil) >= 1);

interface GroupedCase {
  readonly N: number; readonly G: number; readonly Cg: number; readonly Mg: number; readonly H: number; readonly W: number; readonly KH: number; readonly KW: number;
  readonly stride: number; readonly strideW: number; readonly pad: number; readonly padW: number; readonly dil: number;
  readonly pIn: number; readonly pOut: number; readonly parts: number; readonly bias: boolean; readonly relu: boolean; readonly gate: boolean;
}

/** The kernel on one case, against the reference, with its scratch guarded and its multiply-adds counted. */
function checkGrouped(r: GroupedCase, s: number, sy: number): void {
  {
    h.arena.reset();
    const C = r.G * r.Cg, M = r.G * r.Mg;
    const g: ConvGeometry = {
      N: r.N, C, H: r.H, W: r.W, M, KH: r.KH, KW: r.KW, strideH: r.stride, strideW: r.strideW, padTop: r.pad, padLeft: r.padW,
      dilationH: r.dil, dilationW: r.dil, groups: r.G,
      OH: convOutSize(r.H, r.KH, r.stride, r.pad, r.pad, r.dil), OW: convOutSize(r.W, r.KW, r.strideW, r.padW, r.padW, r.dil),
    };
    const rng = new TestRng(s);
    const HW = g.H * g.W, P = g.OH * g.OW, taps = g.KH * g.KW;
    const ins = randomSets(rng, g.N, C, r.pIn);
    const outs = randomSets(rng, g.N, M, r.pOut);
    const desc = h.arena.alloc(CONV_DESC_INTS * 4);
    writeConvDesc(h.mem.i32, desc, g);
    const x = buf(g.N * C * HW), xList = buf(g.N * (C + 1), 0, true), yList = buf(g.N * (M + 1), 0, true);
    const w = buf(M * r.Cg * taps), bias = buf(M), gate = buf(g.N * M);
    const y = buf(g.N * M * P, sy), macs = buf(g.N * r.parts, 0, true);
    const guarded = buf(conv2dGroupedInferScratchBytes(g) / 4);
    const label = `conv2dGroupedInfer x=[${g.N},${C},${g.H},${g.W}] w=[${M},${r.Cg},${g.KH},${g.KW}] G=${r.G} s=${g.strideH},${g.strideW} p=${g.padTop},${g.padLeft} d=${r.dil} in=${JSON.stringify(ins)} out=${JSON.stringify(outs)} parts=${r.parts}`;
    const call = (k: Kernels): number => {
      let total = 0;
      for (let p = 0; p < r.parts; p++) {
        total += k.conv2dGroupedInfer(desc, x.ptr, xList.ptr, w.ptr, r.bias ? bias.ptr : 0, r.relu ? 0 : -Infinity, r.gate ? gate.ptr : 0,
          y.ptr, yList.ptr, 0, g.N, p, r.parts, macs.ptr + p * g.N * 8, guarded.ptr);
      }
      return total;
    };
    conform(label, [[x, compactData(rng, ins, C, HW)], [xList, listData(ins, C)], [yList, listData(outs, M)], [w, uniform(rng, w.n)],
      [bias, uniform(rng, M)], [gate, uniform(rng, g.N * M, 0, 1)]], [y], call, always(close), 4);
    // Per image: OH*OW*KH*KW for each (listed output, listed input of its group) pair, nothing for the rest.
    for (const { name, k } of everyKernelSet) {
      prefill(y);
      prefill(macs);
      prefill(guarded);
      const total = call(k);
      assertGuards(guarded, `${label} ${name}: scratch of conv2dGroupedInferScratchBytes`);
      const perImage = new Float64Array(h.mem.memory.buffer, macs.ptr, g.N * r.parts);
      let expected = 0;
      for (let n = 0; n < g.N; n++) {
        const on = new Set(ins[n]);
        let pairs = 0;
        for (const m of outs[n] as number[]) {
          const c0 = Math.floor(m / r.Mg) * r.Cg;
          for (let c = c0; c < c0 + r.Cg; c++) if (on.has(c)) pairs += taps * P;
        }
        let sum = 0;
        for (let p = 0; p < r.parts; p++) sum += perImage[p * g.N + n] as number;
        assert.equal(sum, pairs, `${label} ${name}: multiply-adds of image ${n}`);
        expected += pairs;
      }
      assert.equal(total, expected, `${label} ${name}: multiply-adds returned`);
    }
  }
}

test('conv2dGroupedInfer: depthwise and grouped, compact in and out lists, every part split, fused bias/ReLU/gate; close, MACs exact', () => {
  fc.assert(fc.property(groupedCase, seed, shift, checkGrouped), { seed: 11, numRuns: 300 });
});

// The 3x3 depthwise path: weights in registers, strides 1-2 across (split planes at 2), rows of 1-30 pixels.
const depthwise3x3Case = fc.record({
  N: fc.integer({ min: 1, max: 2 }), G: fc.integer({ min: 1, max: 6 }), Cg: fc.constant(1), Mg: fc.constantFrom(1, 1, 2),
  H: fc.integer({ min: 1, max: 13 }), W: fc.integer({ min: 1, max: 30 }), KH: fc.constant(3), KW: fc.constant(3),
  stride: fc.integer({ min: 1, max: 2 }), strideW: fc.integer({ min: 1, max: 2 }), pad: fc.integer({ min: 0, max: 2 }), padW: fc.integer({ min: 0, max: 2 }),
  dil: fc.constant(1), pIn: fc.constantFrom(0.5, 1), pOut: fc.constantFrom(0.5, 1), parts: fc.integer({ min: 1, max: 2 }),
  bias: fc.boolean(), relu: fc.boolean(), gate: fc.boolean(),
}).filter((r) => convOutSize(r.H, 3, r.stride, r.pad, r.pad, 1) >= 1 && convOutSize(r.W, 3, r.strideW, r.padW, r.padW, 1) >= 1);

test('conv2dGroupedInfer: 3x3 depthwise, strides 1-2, pads 0-2, odd widths 1-30, compact lists, every part split; close, MACs exact', () => {
  fc.assert(fc.property(depthwise3x3Case, seed, shift, checkGrouped), { seed: 31, numRuns: 200 });
});
