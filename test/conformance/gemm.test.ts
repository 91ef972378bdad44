import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Kernels } from '../../src/backend/kernels.js';
import { gemmScratchBytes } from '../../src/backend/scratch.js';
import { assertGuards, buf, everyKernelSet, h, prefill, read, SENTINEL, uniform, variants } from '../util/conformance.js';
import { TestRng } from '../util/rng.js';
import { assertClose, close, maxAbs } from '../util/tolerance.js';

const SCRATCH_GUARD = 16;

interface Problem {
  readonly M: number; readonly N: number; readonly K: number;
  readonly transA: number; readonly transB: number;
  readonly alpha: number; readonly beta: number;
  /** Leading dimensions beyond the minimum. */
  readonly padA: number; readonly padB: number; readonly padC: number;
  readonly seed: number;
  /** Floats past a 64-byte boundary at which A starts (B and C follow at other offsets). */
  readonly shift?: number;
}

const describe = (p: Problem): string =>
  `M=${p.M} N=${p.N} K=${p.K} ${p.transA ? 'T' : 'N'}${p.transB ? 'T' : 'N'} alpha=${p.alpha} beta=${p.beta} ld+=${p.padA},${p.padB},${p.padC} shift=${p.shift ?? 0}`;

/**
 * Runs gemm on the reference and on every WASM build from the same A, B and C (C filled with NaN
 * when beta = 0, the cells between its rows and around it holding a sentinel), with scratch exactly
 * gemmScratchBytes long, and compares all of C's buffer.
 */
function check(p: Problem): void {
  h.arena.reset();
  const rng = new TestRng(p.seed);
  const rowsA = p.transA ? p.K : p.M, colsA = p.transA ? p.M : p.K;
  const rowsB = p.transB ? p.N : p.K, colsB = p.transB ? p.K : p.N;
  const lda = colsA + p.padA, ldb = colsB + p.padB, ldc = p.N + p.padC;
  // With alpha = 0 or K = 0, A and B hold NaN: they must not be read.
  const unread = p.alpha === 0 || p.K === 0;
  const av = unread ? new Float32Array(rowsA * lda).fill(NaN) : uniform(rng, rowsA * lda);
  const bv = unread ? new Float32Array(rowsB * ldb).fill(NaN) : uniform(rng, rowsB * ldb);
  const sh = p.shift ?? 0;
  const a = buf(av.length, sh), b = buf(bv.length, (sh + 1) % 4), c = buf(p.M * ldc, (sh + 2) % 4);
  const inC = (i: number): boolean => i % ldc < p.N;
  const c0 = Float32Array.from({ length: c.n }, (_, i) => (!inC(i) ? SENTINEL : p.beta === 0 ? NaN : rng.uniform(-1, 1)));
  const scratchFloats = gemmScratchBytes() / 4;
  const scratch = h.arena.alloc((scratchFloats + SCRATCH_GUARD) * 4);
  const run = (k: Kernels, name: string): Float32Array => {
    prefill(a, av);
    prefill(b, bv);
    prefill(c, c0);
    h.mem.f32.fill(NaN, scratch >>> 2, (scratch >>> 2) + scratchFloats);
    h.mem.f32.fill(SENTINEL, (scratch >>> 2) + scratchFloats, (scratch >>> 2) + scratchFloats + SCRATCH_GUARD);
    k.gemm(p.transA, p.transB, p.M, p.N, p.K, p.alpha, a.ptr, lda, b.ptr, ldb, p.beta, c.ptr, ldc, scratch);
    for (const x of [a, b, c]) assertGuards(x, `${describe(p)} ${name}`);
    assert.deepEqual(read(a), av, `${describe(p)} ${name}: A changed`);
    assert.deepEqual(read(b), bv, `${describe(p)} ${name}: B changed`);
    for (let i = 0; i < SCRATCH_GUARD; i++) {
      if (h.mem.f32[(scratch >>> 2) + scratchFloats + i] !== SENTINEL) assert.fail(`${describe(p)} ${name}: wrote past gemmScratchBytes()`);
    }
    const got = read(c);
    for (let i = 0; i < got.length; i++) {
      if (!inC(i) && got[i] !== SENTINEL) assert.fail(`${describe(p)} ${name}: wrote between C's rows at ${i}`);
      if (inC(i) && Number.isNaN(got[i])) assert.fail(`${describe(p)} ${name}: NaN in C at ${i}`);
    }
    return got;
  };
  const expected = run(h.reference, 'reference');
  // Float32 sums of K products drift from the float64 oracle by about sqrt(K) ulp of the largest product.
  const scale = (unread ? 0 : Math.sqrt(p.K) * maxAbs(av) * maxAbs(bv) * Math.abs(p.alpha)) + Math.abs(p.beta);
  for (const { name, k } of variants) assertClose(run(k, name), expected, close, `${describe(p)} ${name}`, scale);
}

const dim = fc.oneof(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 70 }));
const problem = fc.record({
  M: dim, N: dim, K: dim,
  transA: fc.integer({ min: 0, max: 1 }), transB: fc.integer({ min: 0, max: 1 }),
  alpha: fc.constantFrom(1, -1, 0.5, 2.25),
  beta: fc.constantFrom(0, 0, 1, -0.75, 2),
  padA: fc.constantFrom(0, 0, 1, 3, 17), padB: fc.constantFrom(0, 0, 1, 5, 8), padC: fc.constantFrom(0, 0, 1, 4, 9),
  seed: fc.integer({ min: 0, max: 0x7fffffff }),
  shift: fc.integer({ min: 0, max: 3 }),
});

test('gemm: random M, N, K in 1..70, all transposes, alpha and beta, leading dimensions past the minimum, unaligned; close', () => {
  fc.assert(fc.property(problem, (p) => check(p)), { seed: 7, numRuns: 300 });
});

test('gemm: blocks past MC = 96 rows, NC = 1024 columns and several K blocks (K = 257, 600)', () => {
  const base = { alpha: 1, padA: 1, padB: 2, padC: 3, seed: 11 };
  check({ ...base, M: 97, N: 1029, K: 257, transA: 0, transB: 0, beta: 0 });
  check({ ...base, M: 101, N: 35, K: 600, transA: 1, transB: 1, beta: 1 });
  check({ ...base, M: 13, N: 1100, K: 300, transA: 0, transB: 1, beta: -0.5 });
});

test('gemm: the benchmark shape 64x1024x576 and the linear layer of fmnist-vgg5 (128 -> 10, batch 128)', () => {
  check({ M: 64, N: 1024, K: 576, transA: 0, transB: 0, alpha: 1, beta: 0, padA: 0, padB: 0, padC: 0, seed: 3 });
  // y = x·Wᵀ, dx = dy·W and dW = dyᵀ·x, as src/ops/linear.ts calls them.
  check({ M: 128, N: 10, K: 128, transA: 0, transB: 1, alpha: 1, beta: 0, padA: 0, padB: 0, padC: 0, seed: 4 });
  check({ M: 128, N: 128, K: 10, transA: 0, transB: 0, alpha: 1, beta: 0, padA: 0, padB: 0, padC: 0, seed: 5 });
  check({ M: 10, N: 128, K: 128, transA: 1, transB: 0, alpha: 1, beta: 0, padA: 0, padB: 0, padC: 0, seed: 6 });
});

test('gemm: K = 0 and alpha = 0 give beta * C (beta = 0: zeros over NaN) without reading A or B', () => {
  for (const { K, alpha, beta } of [{ K: 0, alpha: 1, beta: 0 }, { K: 0, alpha: 1, beta: 2 }, { K: 5, alpha: 0, beta: 0 }, { K: 5, alpha: 0, beta: -1 }]) {
    check({ M: 7, N: 9, K, transA: 0, transB: 0, alpha, beta, padA: 0, padB: 0, padC: 2, seed: 9 });
  }
});

test('gemm on a hand-computed product: [[1,2,3],[4,5,6]]·[[1,0],[0,1],[2,-1]] = [[7,-1],[16,-1]], exact', () => {
  h.arena.reset();
  const a = h.arena.alloc(24), b = h.arena.alloc(24), c = h.arena.alloc(16);
  const scratch = h.arena.alloc(gemmScratchBytes());
  for (const { name, k } of everyKernelSet) {
    h.mem.f32.set([1, 2, 3, 4, 5, 6], a >>> 2);
    h.mem.f32.set([1, 0, 0, 1, 2, -1], b >>> 2);
    h.mem.f32.set([1, 1, 1, 1], c >>> 2);
    k.gemm(0, 0, 2, 2, 3, 1, a, 3, b, 2, 0, c, 2, scratch);
    assert.deepEqual(Array.from(h.mem.f32.subarray(c >>> 2, (c >>> 2) + 4)), [7, -1, 16, -1], name);
    // 2·A·B - C, with A stored transposed: C keeps its value.
    h.mem.f32.set([1, 4, 2, 5, 3, 6], a >>> 2);
    k.gemm(1, 0, 2, 2, 3, 2, a, 2, b, 2, -1, c, 2, scratch);
    assert.deepEqual(Array.from(h.mem.f32.subarray(c >>> 2, (c >>> 2) + 4)), [7, -1, 16, -1], `${name} transA, beta -1`);
  }
});
