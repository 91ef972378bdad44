import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CONV_INFER_DESC_INTS, MAP_PLANE_INTS, convInputPlane, convOutSize, writeConvInferDesc, writeMapPlane, writePoolDesc, type ConvGeometry, type Kernels, type PaddedPlane, type PoolGeometry } from '../../src/backend/kernels.js';
import { conv2dInferScratchBytes, coversMap, lkamBankPoolScratchBytes, lkamSwitchesScratchBytes, packedWeightFloats } from '../../src/infer/scratch.js';
import { h, everyKernelSet, variants, buf, prefill, read, readInt, uniform, conform, always, seed, shift, assertGuards, type Buf } from '../util/conformance.js';
import { TestRng } from '../util/rng.js';
import { compactData, listData, randomSets } from '../util/channel-lists.js';
import { assertClose, close, exact } from '../util/tolerance.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** conv2dInfer's descriptor for g, x's and y's planes as `layout` says (compact by default). */
function inferDesc(g: ConvGeometry, layout: { xPadded: boolean; y: PaddedPlane | null; gemmFrom?: number } = { xPadded: false, y: null }): number {
  const desc = h.arena.alloc(CONV_INFER_DESC_INTS * 4);
  writeConvInferDesc(h.mem.i32, desc, g, layout);
  return desc;
}

/** `planes` H x W planes of data moved into padded planes, zeros around the maps (NaN around NaN-filled planes: nothing may read them). */
function padPlanes(data: Float32Array, planes: number, H: number, W: number, p: PaddedPlane): Float32Array {
  const out = new Float32Array(planes * p.rows * p.cols);
  for (let i = 0; i < planes; i++) {
    const unused = data.subarray(i * H * W, (i + 1) * H * W).every((e) => Number.isNaN(e));
    const d = out.subarray(i * p.rows * p.cols, (i + 1) * p.rows * p.cols).fill(unused ? NaN : 0);
    for (let r = 0; r < H; r++) d.set(data.subarray((i * H + r) * W, (i * H + r + 1) * W), (p.top + r) * p.cols + p.left);
  }
  return out;
}

/** lkamBankPool's map plane (compact H x W unless cols and size say otherwise). */
function mapPlane(H: number, W: number, cols = W, size = H * W): number {
  const ptr = h.arena.alloc(MAP_PLANE_INTS * 4);
  writeMapPlane(h.mem.i32, ptr, H, W, cols, size);
  return ptr;
}

const convCase = fc.record({
  N: fc.integer({ min: 1, max: 3 }), C: fc.integer({ min: 1, max: 11 }), M: fc.integer({ min: 1, max: 15 }),
  H: fc.oneof(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 10, max: 19 })), W: fc.oneof(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 10, max: 30 })),
  KH: fc.integer({ min: 1, max: 3 }), KW: fc.integer({ min: 1, max: 3 }), stride: fc.integer({ min: 1, max: 2 }), strideW: fc.integer({ min: 1, max: 3 }),
  pad: fc.integer({ min: 0, max: 2 }), padW: fc.integer({ min: 0, max: 2 }), dil: fc.integer({ min: 1, max: 2 }),
  pIn: fc.constantFrom(0, 0.3, 0.7, 1), pOut: fc.constantFrom(0, 0.4, 1), parts: fc.integer({ min: 1, max: 3 }),
  bias: fc.boolean(), relu: fc.boolean(), gate: fc.boolean(), weights: fc.constantFrom('rows', 'packed', 'panels only'), gemm: fc.boolean(),
}).filter((r) => convOutSize(r.H, r.KH, r.stride, r.pad, r.pad, r.dil) >= 1 && convOutSize(r.W, r.KW, r.strideW, r.padW, r.padW, r.dil) >= 1);

function convGeometry(r: { N: number; C: number; M: number; H: number; W: number; KH: number; KW: number; stride: number; strideW: number; pad: number; padW: number; dil: number }): ConvGeometry {
  return {
    N: r.N, C: r.C, H: r.H, W: r.W, M: r.M, KH: r.KH, KW: r.KW, strideH: r.stride, strideW: r.strideW, padTop: r.pad, padLeft: r.padW,
    dilationH: r.dil, dilationW: r.dil, groups: 1,
    OH: convOutSize(r.H, r.KH, r.stride, r.pad, r.pad, r.dil), OW: convOutSize(r.W, r.KW, r.strideW, r.padW, r.padW, r.dil),
  };
}

const describeConv = (g: ConvGeometry): string =>
  `x=[${g.N},${g.C},${g.H},${g.W}] w=[${g.M},${g.C},${g.KH},${g.KW}] s=${g.strideH},${g.strideW} p=${g.padTop},${g.padLeft} d=${g.dilationH}`;

test('conv2dInfer: compact in and out lists, every part split, fused bias/ReLU/gate, packed weights, either path; close, MACs exact', () => {
  fc.assert(fc.property(convCase, seed, shift, (r, s, sy) => {
    h.arena.reset();
    const g = convGeometry(r);
    const rng = new TestRng(s);
    const HW = g.H * g.W, P = g.OH * g.OW, taps = g.KH * g.KW;
    const ins = randomSets(rng, g.N, g.C, r.pIn);
    const outs = randomSets(rng, g.N, g.M, r.pOut);
    const desc = inferDesc(g, { xPadded: false, y: null, gemmFrom: r.gemm ? 1 : 0 });
    const x = buf(g.N * g.C * HW), xList = buf(g.N * (g.C + 1), 0, true), yList = buf(g.N * (g.M + 1), 0, true);
    const w = buf(g.M * g.C * taps), bias = buf(g.M), gate = buf(g.N * g.M);
    const y = buf(g.N * g.M * P, sy), macs = buf(2 * g.N * r.parts, 0, true);
    const packed = h.arena.alloc(packedWeightFloats(g) * 4);
    const guarded = buf(conv2dInferScratchBytes(g, r.gemm ? 1 : 0) / 4);
    const scratch = guarded.ptr;
    const lo = r.relu ? 0 : -Infinity;
    const label = `conv2dInfer ${describeConv(g)} in=${JSON.stringify(ins)} out=${JSON.stringify(outs)} parts=${r.parts} ${r.weights}${r.gemm ? ' gemm' : ''}`;
    // 'panels only': w is not passed (0) unless the kernel covers the map, where w's rows are read.
    const wArg = r.weights === 'panels only' && !coversMap(g) ? 0 : w.ptr;
    const call = (k: Kernels): number => {
      if (r.weights !== 'rows') k.conv2dInferPack(desc, w.ptr, packed);
      let total = 0;
      for (let p = 0; p < r.parts; p++) {
        total += k.conv2dInfer(desc, x.ptr, xList.ptr, wArg, r.weights !== 'rows' ? packed : 0, r.bias ? bias.ptr : 0, lo, r.gate ? gate.ptr : 0,
          y.ptr, yList.ptr, 0, g.N, p, r.parts, macs.ptr + p * g.N * 8, scratch);
      }
      return total;
    };
    conform(label, [[x, compactData(rng, ins, g.C, HW)], [xList, listData(ins, g.C)], [yList, listData(outs, g.M)], [w, uniform(rng, w.n)],
      [bias, uniform(rng, g.M)], [gate, uniform(rng, g.N * g.M, 0, 1)]], [y], call, always(close), 4);
    // Each build cuts the parts its own way; every build's per-image counts must add up to the active pairs.
    for (const { name, k } of everyKernelSet) {
      prefill(y);
      prefill(macs);
      prefill(guarded);
      const total = call(k);
      assertGuards(guarded, `${label} ${name}: scratch of conv2dInferScratchBytes`);
      const perImage = new Float64Array(h.mem.memory.buffer, macs.ptr, g.N * r.parts);
      let expected = 0;
      for (let n = 0; n < g.N; n++) {
        const pairs = (outs[n] as number[]).length * (ins[n] as number[]).length * taps * P;
        let sum = 0;
        for (let p = 0; p < r.parts; p++) sum += perImage[p * g.N + n] as number;
        assert.equal(sum, pairs, `${label} ${name}: multiply-adds of image ${n}`);
        expected += pairs;
      }
      assert.equal(total, expected, `${label} ${name}: multiply-adds returned`);
    }
  }), { seed: 7, numRuns: 300 });
});

const planeCase = fc.record({
  padIn: fc.boolean(),
  out: fc.option(fc.record({ top: fc.integer({ min: 0, max: 2 }), left: fc.integer({ min: 0, max: 2 }), bottom: fc.integer({ min: 0, max: 2 }), right: fc.integer({ min: 0, max: 3 }) })),
});

test('conv2dInfer: input planes stored padded (read in place), outputs stored in padded planes (borders zeroed), every part split, either path; close, MACs exact', () => {
  fc.assert(fc.property(convCase, planeCase, seed, (r, pl, s) => {
    h.arena.reset();
    const g = convGeometry(r);
    const rng = new TestRng(s);
    const HW = g.H * g.W, taps = g.KH * g.KW;
    const inPlane = convInputPlane(g);
    const padIn = pl.padIn && inPlane.rows >= inPlane.top + g.H && inPlane.cols >= inPlane.left + g.W;
    const yPlane: PaddedPlane | null = pl.out === null ? null
      : { top: pl.out.top, left: pl.out.left, rows: pl.out.top + g.OH + pl.out.bottom, cols: pl.out.left + g.OW + pl.out.right };
    const xSize = padIn ? inPlane.rows * inPlane.cols : HW, ySize = yPlane === null ? g.OH * g.OW : yPlane.rows * yPlane.cols;
    const ins = randomSets(rng, g.N, g.C, r.pIn);
    const outs = randomSets(rng, g.N, g.M, r.pOut);
    const desc = inferDesc(g, { xPadded: padIn, y: yPlane, gemmFrom: r.gemm ? 1 : 0 });
    const x = buf(g.N * g.C * xSize), xList = buf(g.N * (g.C + 1), 0, true), yList = buf(g.N * (g.M + 1), 0, true);
    const w = buf(g.M * g.C * taps), bias = buf(g.M), gate = buf(g.N * g.M);
    const y = buf(g.N * g.M * ySize), macs = buf(2 * g.N * r.parts, 0, true);
    const packed = h.arena.alloc(packedWeightFloats(g) * 4);
    const scratch = h.arena.alloc(conv2dInferScratchBytes(g, r.gemm ? 1 : 0, padIn || yPlane !== null));
    const compact = compactData(rng, ins, g.C, HW);
    const label = `conv2dInfer ${describeConv(g)} x ${padIn ? JSON.stringify(inPlane) : 'compact'} y ${JSON.stringify(yPlane)} in=${JSON.stringify(ins)} out=${JSON.stringify(outs)} parts=${r.parts} ${r.weights}${r.gemm ? ' gemm' : ''}`;
    const wArg = r.weights === 'panels only' && !coversMap(g) ? 0 : w.ptr;
    const call = (k: Kernels): number => {
      if (r.weights !== 'rows') k.conv2dInferPack(desc, w.ptr, packed);
      let total = 0;
      for (let p = 0; p < r.parts; p++) {
        total += k.conv2dInfer(desc, x.ptr, xList.ptr, wArg, r.weights !== 'rows' ? packed : 0, r.bias ? bias.ptr : 0, r.relu ? 0 : -Infinity, r.gate ? gate.ptr : 0,
          y.ptr, yList.ptr, 0, g.N, p, r.parts, macs.ptr + p * g.N * 8, scratch);
      }
      return total;
    };
    conform(label, [[x, padIn ? padPlanes(compact, g.N * g.C, g.H, g.W, inPlane) : compact], [xList, listData(ins, g.C)], [yList, listData(outs, g.M)],
      [w, uniform(rng, w.n)], [bias, uniform(rng, g.M)], [gate, uniform(rng, g.N * g.M, 0, 1)]], [y], call, always(close), 4);
    for (const { name, k } of everyKernelSet) {
      prefill(macs);
      const total = call(k);
      let expected = 0;
      for (let n = 0; n < g.N; n++) expected += (outs[n] as number[]).length * (ins[n] as number[]).length * taps * g.OH * g.OW;
      assert.equal(total, expected, `${label} ${name}: multiply-adds returned`);
    }
  }), { seed: 23, numRuns: 300 });
});

test('conv2dInfer: a 3x3 conv over 28x28 with 32 of 32 inputs and 11 of 32 outputs, the fmnist case; close', () => {
  h.arena.reset();
  const g = convGeometry({ N: 2, C: 32, M: 32, H: 28, W: 28, KH: 3, KW: 3, stride: 1, strideW: 1, pad: 1, padW: 1, dil: 1 });
  const rng = new TestRng(3);
  const ins = randomSets(rng, 2, 32, 1);
  const outs = randomSets(rng, 2, 32, 0.35);
  const desc = inferDesc(g);
  const x = buf(2 * 32 * 784), xList = buf(2 * 33, 0, true), yList = buf(2 * 33, 0, true), w = buf(32 * 32 * 9), bias = buf(32), y = buf(2 * 32 * 784);
  const scratch = h.arena.alloc(conv2dInferScratchBytes(g));
  conform('conv2dInfer fmnist', [[x, compactData(rng, ins, 32, 784)], [xList, listData(ins, 32)], [yList, listData(outs, 32)], [w, uniform(rng, w.n, -0.1, 0.1)], [bias, uniform(rng, 32)]],
    [y], (k) => k.conv2dInfer(desc, x.ptr, xList.ptr, w.ptr, 0, bias.ptr, 0, 0, y.ptr, yList.ptr, 0, 2, 0, 1, 0, scratch), always(close), 4);
});

test('conv2dInfer: 64 -> 64 3x3 over 14x14 (K = 576 takes two native K blocks), 43 of 64 inputs and 46 of 64 outputs, with and without packed weights; close', () => {
  h.arena.reset();
  const g = convGeometry({ N: 2, C: 64, M: 64, H: 14, W: 14, KH: 3, KW: 3, stride: 1, strideW: 1, pad: 1, padW: 1, dil: 1 });
  const rng = new TestRng(9);
  for (const [pIn, pOut] of [[0.67, 0.72], [0.67, 1], [1, 1]] as const) {
    const ins = randomSets(rng, 2, 64, pIn), outs = randomSets(rng, 2, 64, pOut);
    const desc = inferDesc(g);
    const x = buf(2 * 64 * 196), xList = buf(2 * 65, 0, true), yList = buf(2 * 65, 0, true), w = buf(64 * 64 * 9), bias = buf(64), y = buf(2 * 64 * 196);
    const packed = h.arena.alloc(packedWeightFloats(g) * 4);
    const scratch = h.arena.alloc(conv2dInferScratchBytes(g));
    conform(`conv2dInfer 64x14x14 in=${pIn} out=${pOut}`, [[x, compactData(rng, ins, 64, 196)], [xList, listData(ins, 64)], [yList, listData(outs, 64)], [w, uniform(rng, w.n, -0.1, 0.1)], [bias, uniform(rng, 64)]],
      [y], (k) => {
        k.conv2dInferPack(desc, w.ptr, packed);
        k.conv2dInfer(desc, x.ptr, xList.ptr, w.ptr, pOut === 1 ? packed : 0, bias.ptr, 0, 0, y.ptr, yList.ptr, 0, 2, 0, 1, 0, scratch);
      }, always(close), 4);
  }
});

test('conv2dInfer: every out count 1-40 of 40 (each mix of 6-, 5- and 4-row tiles, padding rows), 3x3 over 7x7 and 14x14 (short rows stored whole), 1 and 2 parts; close', () => {
  const rng = new TestRng(5);
  for (const side of [7, 14]) {
    for (let nOut = 1; nOut <= 40; nOut++) {
      h.arena.reset();
      const g = convGeometry({ N: 2, C: 6, M: 40, H: side, W: side, KH: 3, KW: 3, stride: 1, strideW: 1, pad: 1, padW: 1, dil: 1 });
      const P = side * side;
      const ins = [[0, 2, 3, 5], [1, 4]];
      const outs = [Array.from({ length: nOut }, (_, i) => i), Array.from({ length: nOut }, (_, i) => 39 - i).reverse()];
      const desc = inferDesc(g);
      const x = buf(2 * 6 * P), xList = buf(2 * 7, 0, true), yList = buf(2 * 41, 0, true), w = buf(40 * 6 * 9), bias = buf(40), gate = buf(2 * 40), y = buf(2 * 40 * P);
      const scratch = h.arena.alloc(conv2dInferScratchBytes(g));
      const packed = h.arena.alloc(packedWeightFloats(g) * 4);
      // 'panels only': the rows of each image's panels come from conv2dInferPack's panels (w not passed).
      for (const [parts, weights] of [[1, 'rows'], [2, 'rows'], [1, 'panels only'], [2, 'panels only']] as const) {
        conform(`conv2dInfer ${describeConv(g)} out=${nOut} parts=${parts} ${weights}`, [[x, compactData(rng, ins, 6, P)], [xList, listData(ins, 6)], [yList, listData(outs, 40)],
          [w, uniform(rng, w.n)], [bias, uniform(rng, 40)], [gate, uniform(rng, 80, 0, 1)]], [y], (k) => {
          if (weights !== 'rows') k.conv2dInferPack(desc, w.ptr, packed);
          let total = 0;
          for (let p = 0; p < parts; p++) {
            total += k.conv2dInfer(desc, x.ptr, xList.ptr, weights === 'rows' ? w.ptr : 0, weights === 'rows' ? 0 : packed, bias.ptr, 0, gate.ptr, y.ptr, yList.ptr, 0, 2, p, parts, 0, scratch);
          }
          return total;
        }, always(close), 4);
      }
    }
  }
});

test('conv2dInfer: weights past the packing scratch (M x C x taps > 2^18 floats) go in groups of tiles, per-image panels from rows or from prepacked panels, some and all outputs; close, MACs exact', () => {
  const rng = new TestRng(9);
  h.arena.reset();
  // 17 x 1 maps: 17 pixel chunks, so that a complete output list copies the listed inputs' panels (gatherPanels) too.
  const g = convGeometry({ N: 2, C: 160, M: 800, H: 17, W: 1, KH: 3, KW: 1, stride: 1, strideW: 1, pad: 1, padW: 0, dil: 1 });
  const P = g.OH * g.OW, taps = 3;
  const ins = [Array.from({ length: g.C }, (_, i) => i), randomSets(rng, 1, g.C, 0.85)[0]!];
  const outs = [randomSets(rng, 1, g.M, 0.9)[0]!, Array.from({ length: g.M }, (_, i) => i)];
  for (let n = 0; n < 2; n++) assert.ok(outs[n]!.length * ins[n]!.length * taps > 1 << 18, `image ${n}: its panels pass the packing scratch`);
  const x = buf(2 * g.C * g.H * g.W), xList = buf(2 * (g.C + 1), 0, true), yList = buf(2 * (g.M + 1), 0, true), w = buf(g.M * g.C * taps), bias = buf(g.M);
  const y = buf(2 * g.M * P), macs = buf(2, 0, true);
  const packed = h.arena.alloc(packedWeightFloats(g) * 4);
  for (const gemmFrom of [0, 1]) {
    const desc = inferDesc(g, { xPadded: false, y: null, gemmFrom });
    const guarded = buf(conv2dInferScratchBytes(g, gemmFrom) / 4);
    if (gemmFrom === 0) assert.ok(conv2dInferScratchBytes(g, 0) < packedWeightFloats(g) * 4, 'the scratch holds less than the panels of every tile');
    for (const weights of ['rows', 'packed', 'panels only'] as const) {
      const label = `conv2dInfer ${describeConv(g)} ${weights}${gemmFrom > 0 ? ' gemm' : ''}`;
      const call = (k: Kernels): number => {
        if (weights !== 'rows') k.conv2dInferPack(desc, w.ptr, packed);
        return k.conv2dInfer(desc, x.ptr, xList.ptr, weights === 'panels only' ? 0 : w.ptr, weights === 'rows' ? 0 : packed, bias.ptr, 0, 0, y.ptr, yList.ptr, 0, 2, 0, 1, macs.ptr, guarded.ptr);
      };
      conform(label, [[x, compactData(rng, ins, g.C, g.H * g.W)], [xList, listData(ins, g.C)], [yList, listData(outs, g.M)],
        [w, uniform(rng, w.n, -0.1, 0.1)], [bias, uniform(rng, g.M)]], [y], call, always(close), 4);
      for (const { name, k } of everyKernelSet) {
        prefill(guarded);
        assert.equal(call(k), ins.reduce((s, i, n) => s + i.length * outs[n]!.length * taps * P, 0), `${label} ${name}: multiply-adds`);
        assertGuards(guarded, `${label} ${name}: scratch of conv2dInferScratchBytes`);
      }
    }
  }
});

test('conv2dInfer: every output listed, some inputs, prepacked panels (read in place on 7x10 maps, copied per listed input on 9x20), 1x1/3x3/5x3 kernels, M 1-40, 1 and 3 parts; close, MACs exact', () => {
  const rng = new TestRng(17);
  for (const [KH, KW, H, W] of [[1, 1, 7, 10], [3, 3, 7, 10], [5, 3, 7, 10], [3, 3, 9, 20], [1, 1, 9, 20]] as const) {
    for (const M of [1, 4, 5, 6, 7, 11, 13, 19, 20, 21, 22, 40]) {
      h.arena.reset();
      const g = convGeometry({ N: 3, C: 9, M, H, W, KH, KW, stride: 1, strideW: 1, pad: KH >> 1, padW: KW >> 1, dil: 1 });
      const P = g.OH * g.OW, taps = KH * KW;
      const ins = [[0, 3, 4, 8], [7], Array.from({ length: 9 }, (_, c) => c)];
      const outs = Array.from({ length: 3 }, () => Array.from({ length: M }, (_, i) => i));
      const desc = inferDesc(g);
      const x = buf(3 * 9 * g.H * g.W), xList = buf(3 * 10, 0, true), yList = buf(3 * (M + 1), 0, true), w = buf(M * 9 * taps), bias = buf(M), gate = buf(3 * M);
      const y = buf(3 * M * P), macs = buf(3 * 3, 0, true);
      const packed = h.arena.alloc(packedWeightFloats(g) * 4);
      const scratch = h.arena.alloc(conv2dInferScratchBytes(g));
      for (const parts of [1, 3]) {
        const label = `conv2dInfer ${describeConv(g)} every output, prepacked, parts=${parts}`;
        const call = (k: Kernels): number => {
          k.conv2dInferPack(desc, w.ptr, packed);
          let total = 0;
          for (let p = 0; p < parts; p++) total += k.conv2dInfer(desc, x.ptr, xList.ptr, w.ptr, packed, bias.ptr, 0, gate.ptr, y.ptr, yList.ptr, 0, 3, p, parts, macs.ptr + p * 24, scratch);
          return total;
        };
        const weights = uniform(rng, w.n);
        conform(label, [[x, compactData(rng, ins, 9, g.H * g.W)], [xList, listData(ins, 9)], [yList, listData(outs, M)],
          [w, weights], [bias, uniform(rng, M)], [gate, uniform(rng, 3 * M, 0, 1)]], [y], call, always(close), 4);
        prefill(y);
        call(h.reference);
        const expected = read(y);
        // The builds read the prepacked panels only: with w spoilt after packing, their outputs stay the same.
        for (const { name, k } of variants) {
          prefill(w, weights);
          k.conv2dInferPack(desc, w.ptr, packed);
          prefill(w, new Float32Array(w.n).fill(NaN));
          prefill(y);
          for (let p = 0; p < parts; p++) k.conv2dInfer(desc, x.ptr, xList.ptr, w.ptr, packed, bias.ptr, 0, gate.ptr, y.ptr, yList.ptr, 0, 3, p, parts, 0, scratch);
          assertClose(read(y), expected, close, `${label} ${name}: from the panels alone`, 4);
        }
        prefill(w, weights);
        for (const { name, k } of everyKernelSet) {
          call(k);
          const perImage = new Float64Array(h.mem.memory.buffer, macs.ptr, 3 * parts);
          for (let n = 0; n < 3; n++) {
            let sum = 0;
            for (let p = 0; p < parts; p++) sum += perImage[p * 3 + n] as number;
            assert.equal(sum, M * (ins[n] as number[]).length * taps * P, `${label} ${name}: multiply-adds of image ${n}`);
          }
        }
      }
    }
  }
});

test('conv2dInfer GEMM path: several K blocks (K 360, 520) and pixel blocks (17x17, 300 pixels), tails of 1-8 pixels, strides 1-2, 1x1 flat and 3x3, all/some/few outputs and inputs, prepacked (whole, in place) or packed, 1 and 2 parts; close, MACs exact', () => {
  const rng = new TestRng(29);
  const shapes = [
    { C: 40, H: 7, W: 7, KH: 3, stride: 1 }, { C: 40, H: 17, W: 17, KH: 3, stride: 1 }, { C: 9, H: 15, W: 13, KH: 3, stride: 2 },
    { C: 520, H: 3, W: 3, KH: 1, stride: 1 }, { C: 33, H: 10, W: 30, KH: 1, stride: 1 }, { C: 7, H: 9, W: 11, KH: 1, stride: 2 },
  ];
  for (const sh of shapes) {
    for (const [M, pIn, pOut, packed] of [[23, 1, 1, true], [23, 0.5, 1, true], [40, 0.6, 0.5, true], [5, 1, 1, false], [13, 0.3, 0.7, false]] as const) {
      h.arena.reset();
      const pad = sh.KH >> 1;
      const g = convGeometry({ N: 2, C: sh.C, M, H: sh.H, W: sh.W, KH: sh.KH, KW: sh.KH, stride: sh.stride, strideW: sh.stride, pad, padW: pad, dil: 1 });
      const P = g.OH * g.OW, taps = sh.KH * sh.KH, HW = g.H * g.W;
      const ins = randomSets(rng, 2, sh.C, pIn), outs = randomSets(rng, 2, M, pOut);
      const desc = inferDesc(g, { xPadded: false, y: null, gemmFrom: 1 });
      const x = buf(2 * sh.C * HW), xList = buf(2 * (sh.C + 1), 0, true), yList = buf(2 * (M + 1), 0, true), w = buf(M * sh.C * taps), bias = buf(M), gate = buf(2 * M);
      const y = buf(2 * M * P), macs = buf(2 * 2, 0, true);
      const wPacked = h.arena.alloc(packedWeightFloats(g) * 4);
      const guarded = buf(conv2dInferScratchBytes(g, 1) / 4);
      for (const parts of [1, 2]) {
        const label = `conv2dInfer gemm ${describeConv(g)} in=${ins.map((l) => l.length)} out=${outs.map((l) => l.length)} packed=${packed} parts=${parts}`;
        const call = (k: Kernels): number => {
          if (packed) k.conv2dInferPack(desc, w.ptr, wPacked);
          let total = 0;
          for (let p = 0; p < parts; p++) total += k.conv2dInfer(desc, x.ptr, xList.ptr, w.ptr, packed ? wPacked : 0, bias.ptr, 0, gate.ptr, y.ptr, yList.ptr, 0, 2, p, parts, macs.ptr + p * 16, guarded.ptr);
          return total;
        };
        conform(label, [[x, compactData(rng, ins, sh.C, HW)], [xList, listData(ins, sh.C)], [yList, listData(outs, M)], [w, uniform(rng, w.n)],
          [bias, uniform(rng, M)], [gate, uniform(rng, 2 * M, 0, 1)]], [y], call, always(close), 4);
        for (const { name, k } of everyKernelSet) {
          prefill(guarded);
          const total = call(k);
          assertGuards(guarded, `${label} ${name}: scratch of conv2dInferScratchBytes`);
          const expected = [0, 1].reduce((a, n) => a + (outs[n] as number[]).length * (ins[n] as number[]).length * taps * P, 0);
          assert.equal(total, expected, `${label} ${name}: multiply-adds returned`);
        }
      }
    }
  }
});

test('assembly/infer-tiles.ts is what scripts/gen-infer-tiles.mjs writes', () => {
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'gen-infer-tiles.mjs'), '--check'], { stdio: 'pipe' });
});

test('conv2dInfer on 1x1 maps with 1x1 kernels (linear layers): listed inputs only, every part split; close', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 15 }), fc.integer({ min: 1, max: 3 }),
    fc.constantFrom(0, 0.5, 1), fc.constantFrom(0.4, 1), seed, (N, C, M, parts, pIn, pOut, s) => {
      h.arena.reset();
      const g = convGeometry({ N, C, M, H: 1, W: 1, KH: 1, KW: 1, stride: 1, strideW: 1, pad: 0, padW: 0, dil: 1 });
      const rng = new TestRng(s);
      const ins = randomSets(rng, N, C, pIn), outs = randomSets(rng, N, M, pOut);
      const desc = inferDesc(g);
      const x = buf(N * C), xList = buf(N * (C + 1), 0, true), yList = buf(N * (M + 1), 0, true), w = buf(M * C), bias = buf(M), y = buf(N * M);
      const scratch = h.arena.alloc(conv2dInferScratchBytes(g));
      const packed = h.arena.alloc(packedWeightFloats(g) * 4);
      conform(`conv2dInfer 1x1 N=${N} C=${C} M=${M} parts=${parts}`, [[x, compactData(rng, ins, C, 1)], [xList, listData(ins, C)], [yList, listData(outs, M)], [w, uniform(rng, M * C)], [bias, uniform(rng, M)]], [y],
        (k) => {
          k.conv2dInferPack(desc, w.ptr, packed);
          let total = 0;
          for (let p = 0; p < parts; p++) total += k.conv2dInfer(desc, x.ptr, xList.ptr, w.ptr, packed, bias.ptr, 0, 0, y.ptr, yList.ptr, 0, N, p, parts, 0, scratch);
          return total;
        }, always(close), 4);
    }), { seed: 13, numRuns: 200 });
});

const switchCase = fc.record({
  N: fc.integer({ min: 1, max: 4 }), F: fc.integer({ min: 1, max: 20 }), M: fc.integer({ min: 1, max: 40 }), C: fc.integer({ min: 1, max: 12 }),
  rule: fc.constantFrom(0, 1, 2, 3, 4, 6), threshold: fc.constantFrom(0, 0.1, 0.5, 0.73), budget: fc.constantFrom(1, 0.9, 0.5, 0.25, 0.05, 0),
  pIn: fc.constantFrom(0.2, 0.6, 1), bias: fc.boolean(), inList: fc.boolean(), coarse: fc.boolean(),
});

test('lkamSwitches: hard, sigmoid and binary, strict and inclusive thresholds, MAC budgets with ties; gate close, lists exact', () => {
  fc.assert(fc.property(switchCase, seed, (r, s) => {
    h.arena.reset();
    const rng = new TestRng(s);
    const ins = randomSets(rng, r.N, r.C, r.pIn);
    const feat = buf(r.N * r.F), fcW = buf(r.M * r.F), fcB = buf(r.M), inList = buf(r.N * (r.C + 1), 0, true);
    const gate = buf(r.N * r.M), outList = buf(r.N * (r.M + 1), 0, true), macs = buf(2 * r.N, 0, true);
    const guarded = buf(lkamSwitchesScratchBytes(r.M) / 4);
    const scratch = guarded.ptr;
    // Coarse weights make many pre-activations equal, and hard switches saturate at 0 and 1: ties for the budget.
    const weights = r.coarse ? Float32Array.from({ length: r.M * r.F }, () => rng.int(-2, 2) * 0.25) : uniform(rng, r.M * r.F, -0.5, 0.5);
    const label = `lkamSwitches N=${r.N} F=${r.F} M=${r.M} C=${r.C} rule=${r.rule} threshold=${r.threshold} budget=${r.budget}`;
    conform(label, [[feat, uniform(rng, feat.n, 0, 2)], [fcW, weights], [fcB, uniform(rng, r.M, -1, 1.5)], [inList, listData(ins, r.C)]], [gate, outList, macs],
      (k) => k.lkamSwitches(feat.ptr, r.F, fcW.ptr, r.bias ? fcB.ptr : 0, r.M, r.rule, r.threshold, r.budget, r.inList ? inList.ptr : 0, r.C,
        gate.ptr, outList.ptr, macs.ptr, 0, r.N, scratch), always(close));
    for (const { name, k } of everyKernelSet) {
      prefill(guarded);
      k.lkamSwitches(feat.ptr, r.F, fcW.ptr, r.bias ? fcB.ptr : 0, r.M, r.rule, r.threshold, r.budget, r.inList ? inList.ptr : 0, r.C, gate.ptr, outList.ptr, macs.ptr, 0, r.N, scratch);
      assertGuards(guarded, `${label} ${name}: scratch of lkamSwitchesScratchBytes`);
    }
    const lists = readInt(outList);
    const gates = read(gate);
    for (let n = 0; n < r.N; n++) {
      const count = lists[n * (r.M + 1)] as number;
      const kept = Array.from(lists.subarray(n * (r.M + 1) + 1, n * (r.M + 1) + 1 + count));
      assert.ok(kept.every((m, i) => i === 0 || m > (kept[i - 1] as number)), `${label}: list of image ${n} ascending`);
      if (r.budget < 1) {
        const nIn = r.inList ? (ins[n] as number[]).length : r.C;
        if (nIn > 0) assert.ok(count <= Math.floor((r.budget * r.M * r.C) / nIn), `${label}: image ${n} keeps ${count} switches, over its budget`);
      }
      for (let m = 0; m < r.M; m++) if (!kept.includes(m)) assert.equal(gates[n * r.M + m], 0, `${label}: switch ${m} of image ${n} is off but gates`);
      if ((r.rule & 4) !== 0) for (const m of kept) assert.equal(gates[n * r.M + m], 1, `${label}: binary switch ${m} of image ${n} is on but gates by ${gates[n * r.M + m]}`);
    }
  }), { seed: 11, numRuns: 400 });
});

const poolCase = fc.record({
  N: fc.integer({ min: 1, max: 3 }), C: fc.integer({ min: 1, max: 5 }), H: fc.integer({ min: 1, max: 13 }), W: fc.integer({ min: 1, max: 19 }),
  KH: fc.integer({ min: 1, max: 3 }), KW: fc.integer({ min: 1, max: 3 }), strideH: fc.integer({ min: 1, max: 3 }), strideW: fc.integer({ min: 1, max: 3 }),
  padTop: fc.integer({ min: 0, max: 1 }), padLeft: fc.integer({ min: 0, max: 1 }), countIncludePad: fc.integer({ min: 0, max: 1 }),
  kind: fc.integer({ min: 0, max: 1 }), pOn: fc.constantFrom(0, 0.5, 1), twoByTwo: fc.boolean(), nan: fc.boolean(),
  threeByThree: fc.boolean(), wide: fc.integer({ min: 3, max: 41 }),
}).map((r) => (r.twoByTwo ? { ...r, KH: 2, KW: 2, strideH: 2, strideW: 2, padTop: 0, padLeft: 0, H: Math.max(2, r.H), W: Math.max(2, r.W) } : r))
  .map((r) => (r.threeByThree && !r.twoByTwo ? { ...r, KH: 3, KW: 3, strideH: 2, strideW: 2, H: Math.max(2, r.H), W: r.wide } : r))
  .map((r) => ({ ...r, padTop: Math.min(r.padTop, Math.floor(r.KH / 2)), padLeft: Math.min(r.padLeft, Math.floor(r.KW / 2)) }))
  .filter((r) => convOutSize(r.H, r.KH, r.strideH, r.padTop, r.padTop, 1) >= 1 && convOutSize(r.W, r.KW, r.strideW, r.padLeft, r.padLeft, 1) >= 1);

test('pool2dInfer: max and average over listed planes only, 2x2 and 3x3 stride-2 fast paths and general windows; exact', () => {
  fc.assert(fc.property(poolCase, seed, (r, s) => {
    h.arena.reset();
    const rng = new TestRng(s);
    const g: PoolGeometry = {
      N: r.N, C: r.C, H: r.H, W: r.W, KH: r.KH, KW: r.KW, strideH: r.strideH, strideW: r.strideW, padTop: r.padTop, padLeft: r.padLeft,
      OH: convOutSize(r.H, r.KH, r.strideH, r.padTop, r.padTop, 1), OW: convOutSize(r.W, r.KW, r.strideW, r.padLeft, r.padLeft, 1), countIncludePad: r.countIncludePad,
    };
    const sets = randomSets(rng, r.N, r.C, r.pOn);
    const desc = h.arena.alloc(64);
    writePoolDesc(h.mem.i32, desc, g);
    const x = buf(r.N * r.C * r.H * r.W), list = buf(r.N * (r.C + 1), 0, true), y = buf(r.N * r.C * g.OH * g.OW);
    const data = compactData(rng, sets, r.C, r.H * r.W);
    conform(`pool2dInfer kind=${r.kind} ${JSON.stringify(g)}`, [[x, r.nan ? withNaN(data, sets, r.C, r.H * r.W, rng) : data], [list, listData(sets, r.C)]], [y],
      (k) => k.pool2dInfer(desc, x.ptr, list.ptr, y.ptr, r.kind, 0, r.N), always(exact));
  }), { seed: 5, numRuns: 400 });
});

const channelCase = fc.record({
  N: fc.integer({ min: 1, max: 3 }), C: fc.integer({ min: 1, max: 9 }), HW: fc.integer({ min: 1, max: 41 }),
  pA: fc.constantFrom(0, 0.5, 1), pB: fc.constantFrom(0, 0.5, 1), relu: fc.boolean(), kind: fc.integer({ min: 0, max: 1 }), nan: fc.boolean(),
});

/** The data with one listed value of the first image that has one made NaN (a max must propagate it). */
function withNaN(data: Float32Array, sets: number[][], C: number, HW: number, rng: TestRng): Float32Array {
  const n = sets.findIndex((s) => s.length > 0);
  if (n < 0) return data;
  const out = data.slice();
  out[n * C * HW + rng.int(0, (sets[n] as number[]).length * HW - 1)] = NaN;
  return out;
}

function rangeOf(rng: TestRng, N: number): [number, number] {
  const a = rng.int(0, N), b = rng.int(0, N);
  return [Math.min(a, b), Math.max(a, b)];
}

test('globalPoolInfer (compact), scatterChannels and addChannels (dense): listed planes only, image ranges', () => {
  fc.assert(fc.property(channelCase, seed, (r, s) => {
    h.arena.reset();
    const rng = new TestRng(s);
    const { N, C, HW } = r;
    const a = randomSets(rng, N, C, r.pA), b = randomSets(rng, N, C, r.pB);
    const [n0, n1] = rangeOf(rng, N);
    const xa = buf(N * C * HW), la = buf(N * (C + 1), 0, true), xb = buf(N * C * HW), lb = buf(N * (C + 1), 0, true);
    const pooled = buf(N * C), dense = buf(N * C * HW);
    const da = compactData(rng, a, C, HW);
    const inputs: Array<readonly [Buf, ArrayLike<number>]> = [[xa, r.nan ? withNaN(da, a, C, HW, rng) : da], [la, listData(a, C)], [xb, compactData(rng, b, C, HW)], [lb, listData(b, C)]];
    const label = `N=${N} C=${C} HW=${HW} n=[${n0},${n1})`;
    conform(`globalPoolInfer kind=${r.kind} ${label}`, inputs, [pooled], (k) => k.globalPoolInfer(xa.ptr, la.ptr, C, HW, r.kind, pooled.ptr, n0, n1), always(close));
    conform(`scatterChannels ${label}`, inputs, [dense], (k) => k.scatterChannels(xa.ptr, la.ptr, C, HW, dense.ptr, n0, n1), always(exact));
    conform(`addChannels ${label}`, inputs, [dense], (k) => k.addChannels(xa.ptr, la.ptr, xb.ptr, lb.ptr, C, HW, r.relu ? 0 : -Infinity, dense.ptr, n0, n1), always(exact));
  }), { seed: 9, numRuns: 300 });
});

const bankPoolCase = fc.record({
  N: fc.integer({ min: 1, max: 3 }), C: fc.integer({ min: 1, max: 40 }), k: fc.integer({ min: 1, max: 9 }),
  H: fc.oneof(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 10, max: 28 })), W: fc.oneof(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 10, max: 30 })),
  grid: fc.integer({ min: 1, max: 4 }), kind: fc.integer({ min: 0, max: 1 }), pIn: fc.constantFrom(0, 0.3, 1), bias: fc.boolean(),
  special: fc.constantFrom('none', 'nan', 'inf'),
}).map((r) => ({ ...r, grid: Math.min(r.grid, r.H, r.W) }));

test('lkamBankPool: bank of k 1x1 convs over listed planes, global and grid max/avg pooling, NaN and infinities, image ranges split; close, MACs exact', () => {
  fc.assert(fc.property(bankPoolCase, seed, (r, s) => {
    h.arena.reset();
    const rng = new TestRng(s);
    const { N, C, H, W, k, grid } = r;
    const HW = H * W, F = k * grid * grid;
    const sets = randomSets(rng, N, C, r.pIn);
    const [n0, n1] = rangeOf(rng, N);
    const cut = rng.int(n0, n1);
    const x = buf(N * C * HW), list = buf(N * (C + 1), 0, true), w = buf(k * C), bias = buf(k), feat = buf(N * F), macs = buf(2 * N, 0, true);
    const guarded = buf(lkamBankPoolScratchBytes(C, W, k, grid) / 4);
    let data = compactData(rng, sets, C, HW);
    if (r.special === 'nan') data = withNaN(data, sets, C, HW, rng);
    if (r.special === 'inf') {
      // +Infinity and -Infinity in one image's planes: bank outputs of +inf, -inf and NaN (inf - inf).
      data = withNaN(data, sets, C, HW, rng).map((e) => (Number.isNaN(e) ? Infinity : e));
      const n = sets.findIndex((set) => set.length > 0);
      if (n >= 0) data[n * C * HW + rng.int(0, (sets[n] as number[]).length * HW - 1)] = -Infinity;
    }
    const label = `lkamBankPool N=${N} C=${C} H=${H} W=${W} k=${k} grid=${grid} kind=${r.kind} ${r.special} n=[${n0},${cut},${n1}) in=${JSON.stringify(sets)}`;
    const plane = mapPlane(H, W);
    const call = (kk: Kernels): number =>
      kk.lkamBankPool(x.ptr, list.ptr, C, plane, w.ptr, r.bias ? bias.ptr : 0, k, grid, r.kind, feat.ptr, macs.ptr, n0, cut, guarded.ptr) +
      kk.lkamBankPool(x.ptr, list.ptr, C, plane, w.ptr, r.bias ? bias.ptr : 0, k, grid, r.kind, feat.ptr, macs.ptr, cut, n1, guarded.ptr);
    conform(label, [[x, data], [list, listData(sets, C)], [w, uniform(rng, w.n)], [bias, uniform(rng, k)]], [feat], call, always(close), 4);
    for (const { name, k: kk } of everyKernelSet) {
      prefill(guarded);
      prefill(macs);
      const total = call(kk);
      assertGuards(guarded, `${label} ${name}: scratch of lkamBankPoolScratchBytes`);
      const perImage = new Float64Array(h.mem.memory.buffer, macs.ptr, N);
      let expected = 0;
      for (let n = n0; n < n1; n++) {
        const done = k * (sets[n] as number[]).length * HW;
        assert.equal(perImage[n], done, `${label} ${name}: multiply-adds of image ${n}`);
        expected += done;
      }
      assert.equal(total, expected, `${label} ${name}: multiply-adds returned`);
    }
  }), { seed: 17, numRuns: 400 });
});

test('lkamBankPool: the fmnist LKAMs (32 of 32 planes of 28x28, 9 of 32 of 14x14, 24 of 64 of 7x7), k 4, global max; close', () => {
  const rng = new TestRng(21);
  for (const [C, side, pIn] of [[32, 28, 1], [32, 14, 0.3], [64, 7, 0.4]] as const) {
    h.arena.reset();
    const HW = side * side;
    const sets = randomSets(rng, 2, C, pIn);
    const x = buf(2 * C * HW), list = buf(2 * (C + 1), 0, true), w = buf(4 * C), bias = buf(4), feat = buf(8);
    const scratch = h.arena.alloc(lkamBankPoolScratchBytes(C, side, 4, 1));
    conform(`lkamBankPool C=${C} ${side}x${side}`, [[x, compactData(rng, sets, C, HW)], [list, listData(sets, C)], [w, uniform(rng, w.n, -0.3, 0.3)], [bias, uniform(rng, 4)]], [feat],
      (kk) => kk.lkamBankPool(x.ptr, list.ptr, C, mapPlane(side, side), w.ptr, bias.ptr, 4, 1, 0, feat.ptr, 0, 0, 2, scratch), always(close), 4);
  }
});

const paddingCase = fc.record({ top: fc.integer({ min: 0, max: 2 }), left: fc.integer({ min: 0, max: 2 }), bottom: fc.integer({ min: 0, max: 2 }), right: fc.integer({ min: 0, max: 3 }) });

test('lkamBankPool over padded planes (zeros between rows), global and grid max/avg pooling, NaN and infinities; close, MACs exact', () => {
  fc.assert(fc.property(bankPoolCase, paddingCase, fc.boolean(), seed, (r, pd, negative, s) => {
    h.arena.reset();
    const rng = new TestRng(s);
    const { N, C, H, W, k, grid } = r;
    const HW = H * W, F = k * grid * grid;
    const plane: PaddedPlane = { top: pd.top, left: pd.left, rows: pd.top + H + pd.bottom, cols: pd.left + W + pd.right };
    const size = plane.rows * plane.cols, first = plane.top * plane.cols + plane.left;
    const sets = randomSets(rng, N, C, r.pIn);
    const x = buf(N * C * size), list = buf(N * (C + 1), 0, true), w = buf(k * C), bias = buf(k), feat = buf(N * F), macs = buf(N, 0, true);
    const scratch = h.arena.alloc(lkamBankPoolScratchBytes(C, W, k, grid));
    let data = compactData(rng, sets, C, HW);
    // Non-negative inputs and negative weights: every bank output below the padding's zeros.
    if (negative) data = data.map((e) => Math.abs(e));
    if (r.special === 'nan') data = withNaN(data, sets, C, HW, rng);
    if (r.special === 'inf') data = withNaN(data, sets, C, HW, rng).map((e) => (Number.isNaN(e) ? Infinity : e));
    const weights = negative ? uniform(rng, w.n, -1, -0.1) : uniform(rng, w.n);
    const label = `lkamBankPool padded ${JSON.stringify(plane)} N=${N} C=${C} H=${H} W=${W} k=${k} grid=${grid} kind=${r.kind} ${r.special}${negative ? ' negative' : ''}`;
    const geometry = mapPlane(H, W, plane.cols, size);
    const call = (kk: Kernels): number =>
      kk.lkamBankPool(x.ptr + first * 4, list.ptr, C, geometry, w.ptr, r.bias ? bias.ptr : 0, k, grid, r.kind, feat.ptr, macs.ptr, 0, N, scratch);
    conform(label, [[x, padPlanes(data, N * C, H, W, plane)], [list, listData(sets, C)], [w, weights], [bias, uniform(rng, k)]], [feat], call, always(close), 4);
    for (const { name, k: kk } of everyKernelSet) {
      const total = call(kk);
      let expected = 0;
      for (let n = 0; n < N; n++) expected += k * (sets[n] as number[]).length * HW;
      assert.equal(total, expected, `${label} ${name}: multiply-adds returned`);
    }
  }), { seed: 29, numRuns: 300 });
});
