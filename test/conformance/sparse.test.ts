import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { convOutSize, writeConvDesc, type ConvGeometry, type Kernels } from '../../src/backend/kernels.js';
import { sparseConvScratchBytes } from '../../src/backend/sparse-scratch.js';
import { convScratchBytes } from '../../src/backend/scratch.js';
import { allocF32, kernelHarness, readF32 } from '../util/kernel-harness.js';
import { TestRng } from '../util/rng.js';
import { assertClose, close, maxAbs } from '../util/tolerance.js';

const h = await kernelHarness();

interface Case {
  readonly g: ConvGeometry;
  readonly outActive: Uint8Array;
  readonly inActive: Uint8Array;
  readonly bias: boolean;
  readonly seed: number;
}

function geometry(N: number, C: number, H: number, W: number, M: number, K: number, stride: number, pad: number, dil: number): ConvGeometry {
  return {
    N, C, H, W, M, KH: K, KW: K, strideH: stride, strideW: stride, padTop: pad, padLeft: pad, dilationH: dil, dilationW: dil, groups: 1,
    OH: convOutSize(H, K, stride, pad, pad, dil), OW: convOutSize(W, K, stride, pad, pad, dil),
  };
}

/** Index lists as the kernels read them: per image, the active channels first, ascending. */
function lists(active: Uint8Array, N: number, C: number): { idx: number; count: number; pairs: number[] } {
  const idx = new Int32Array(N * C).fill(-1);
  const count = new Int32Array(N);
  for (let n = 0; n < N; n++) {
    let k = 0;
    for (let c = 0; c < C; c++) if (active[n * C + c] === 1) idx[n * C + k++] = c;
    count[n] = k;
  }
  const ip = h.arena.alloc(idx.length * 4 + 4);
  h.mem.i32.set(idx, ip >>> 2);
  const cp = h.arena.alloc(count.length * 4 + 4);
  h.mem.i32.set(count, cp >>> 2);
  return { idx: ip, count: cp, pairs: Array.from(count) };
}

interface Outputs { y: Float32Array; dx: Float32Array; dw: Float32Array; macs: [number, number, number] }

function run(k: Kernels, c: Case): Outputs {
  const g = c.g;
  const rng = new TestRng(c.seed);
  const xs = g.N * g.C * g.H * g.W, ys = g.N * g.M * g.OH * g.OW, ws = g.M * g.C * g.KH * g.KW;
  const desc = h.arena.alloc(64);
  writeConvDesc(h.mem.i32, desc, g);
  const x = allocF32(h, xs, { rng });
  const w = allocF32(h, ws, { rng });
  const b = c.bias ? allocF32(h, g.M, { rng }) : 0;
  const dy = allocF32(h, ys, { rng });
  const y = allocF32(h, ys, Array.from({ length: ys }, () => 777));
  const dx = allocF32(h, xs, Array.from({ length: xs }, () => 777));
  const dw = allocF32(h, ws, Array.from({ length: ws }, () => 777));
  const out = lists(c.outActive, g.N, g.M);
  const inn = lists(c.inActive, g.N, g.C);
  const scratch = h.arena.alloc(sparseConvScratchBytes(g));
  const m1 = k.conv2dForwardSparse(desc, x, w, b, y, 0, g.N, out.idx, out.count, inn.idx, inn.count, scratch);
  const m2 = k.conv2dBackwardInputSparse(desc, dy, w, dx, 0, g.N, out.idx, out.count, inn.idx, inn.count, scratch);
  const m3 = k.conv2dBackwardWeightSparse(desc, x, dy, dw, 0, g.N, out.idx, out.count, inn.idx, inn.count, 0, scratch);
  return { y: readF32(h, y, ys), dx: readF32(h, dx, xs), dw: readF32(h, dw, ws), macs: [m1, m2, m3] };
}

function expectedMacs(c: Case): number {
  const g = c.g;
  let t = 0;
  for (let n = 0; n < g.N; n++) {
    let o = 0, i = 0;
    for (let m = 0; m < g.M; m++) o += c.outActive[n * g.M + m] as number;
    for (let ch = 0; ch < g.C; ch++) i += c.inActive[n * g.C + ch] as number;
    t += o * i * g.KH * g.KW * g.OH * g.OW;
  }
  return t;
}

function check(c: Case): void {
  h.arena.reset();
  const ref = run(h.reference, c);
  const want = expectedMacs(c);
  assert.deepEqual(ref.macs, [want, want, want], 'reference MAC counts');
  // Float32 sums over up to C*KH*KW terms of products of values in [-1, 1].
  const scale = Math.sqrt(c.g.C * c.g.KH * c.g.KW);
  for (const v of h.wasm) {
    const got = run(v.kernels, c);
    const label = `${v.variant} N=${c.g.N} C=${c.g.C} M=${c.g.M} ${c.g.H}x${c.g.W} k${c.g.KH} s${c.g.strideH} p${c.g.padTop} d${c.g.dilationH}`;
    assert.deepEqual(got.macs, [want, want, want], `${label}: MAC counts`);
    assertClose(got.y, ref.y, close, `${label} forward`, scale * Math.max(1, maxAbs(ref.y)) / 10);
    assertClose(got.dx, ref.dx, close, `${label} backward-input`, scale * Math.max(1, maxAbs(ref.dx)) / 10);
    assertClose(got.dw, ref.dw, close, `${label} backward-weight`, scale * Math.max(1, maxAbs(ref.dw)) / 10);
  }
}

function randomActive(rng: TestRng, n: number, p: number): Uint8Array {
  return Uint8Array.from({ length: n }, () => (rng.next() < p ? 1 : 0));
}

test('sparse convs equal their reference twins over random shapes and channel sets', () => {
  fc.assert(fc.property(
    fc.record({
      N: fc.integer({ min: 1, max: 3 }), C: fc.integer({ min: 1, max: 9 }), M: fc.integer({ min: 1, max: 11 }),
      H: fc.integer({ min: 3, max: 9 }), W: fc.integer({ min: 3, max: 9 }), K: fc.constantFrom(1, 3),
      stride: fc.constantFrom(1, 2), pad: fc.integer({ min: 0, max: 1 }), dil: fc.constantFrom(1, 2),
      pOut: fc.constantFrom(0, 0.3, 0.7, 1), pIn: fc.constantFrom(0, 0.5, 1), bias: fc.boolean(), seed: fc.integer({ min: 1, max: 1e6 }),
    }),
    (r) => {
      const g = geometry(r.N, r.C, r.H, r.W, r.M, r.K, r.stride, r.pad, r.dil);
      fc.pre(g.OH >= 1 && g.OW >= 1);
      const rng = new TestRng(r.seed);
      check({ g, outActive: randomActive(rng, r.N * r.M, r.pOut), inActive: randomActive(rng, r.N * r.C, r.pIn), bias: r.bias, seed: r.seed });
    },
  ), { seed: 11, numRuns: 60 });
});

test('fmnist-vgg5 shapes: conv3x3 64→64 on 14x14, about half the kernels on', () => {
  const rng = new TestRng(3);
  const g = geometry(2, 64, 14, 14, 64, 3, 1, 1, 1);
  check({ g, outActive: randomActive(rng, 2 * 64, 0.5), inActive: randomActive(rng, 2 * 64, 0.5), bias: false, seed: 5 });
});

test('all channels on: the sparse forward equals the dense kernel', () => {
  const g = geometry(2, 5, 7, 7, 6, 3, 1, 1, 1);
  const all = (n: number) => new Uint8Array(n).fill(1);
  for (const v of h.wasm) {
    h.arena.reset();
    const sparse = run(v.kernels, { g, outActive: all(g.N * g.M), inActive: all(g.N * g.C), bias: true, seed: 9 });
    const rng = new TestRng(9);
    const desc = h.arena.alloc(64);
    writeConvDesc(h.mem.i32, desc, g);
    const x = allocF32(h, g.N * g.C * 49, { rng });
    const w = allocF32(h, g.M * g.C * 9, { rng });
    const b = allocF32(h, g.M, { rng });
    const y = allocF32(h, g.N * g.M * 49);
    v.kernels.conv2dForward(desc, x, w, b, y, 0, g.N, 0, g.M, h.arena.alloc(convScratchBytes(g)));
    assertClose(sparse.y, readF32(h, y, g.N * g.M * 49), close, `${v.variant}: sparse with every channel on vs dense`);
  }
});
