import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Kernels } from '../../src/backend/kernels.js';
import { kernelHarness } from '../util/kernel-harness.js';
import { TestRng } from '../util/rng.js';
import { assertClose, close, exact, loose, type Tolerance } from '../util/tolerance.js';

const h = await kernelHarness();
const variants: ReadonlyArray<{ readonly name: string; readonly k: Kernels }> = h.wasm.map((w) => ({ name: w.variant, k: w.kernels }));
const SENTINEL = 12345.5;
const GUARD = 8;

/** n float32 values placed `shift` floats past a 64-byte boundary, with GUARD sentinel cells each side. */
interface Buf { readonly ptr: number; readonly n: number; readonly base: number }
function buf(n: number, shift = 0): Buf {
  const base = h.arena.alloc((n + 2 * GUARD + 4) * 4);
  return { ptr: base + (GUARD + shift) * 4, n, base };
}
function prefill(b: Buf, data?: ArrayLike<number>): void {
  h.mem.f32.fill(SENTINEL, b.base >>> 2, (b.base >>> 2) + b.n + 2 * GUARD + 4);
  if (data !== undefined) h.mem.f32.set(data, b.ptr >>> 2);
}
function read(b: Buf): Float32Array {
  return h.mem.f32.slice(b.ptr >>> 2, (b.ptr >>> 2) + b.n);
}
function assertGuards(b: Buf, label: string): void {
  const v = h.mem.f32;
  for (let i = b.base >>> 2; i < (b.base >>> 2) + b.n + 2 * GUARD + 4; i++) {
    if (i >= b.ptr >>> 2 && i < (b.ptr >>> 2) + b.n) continue;
    if (v[i] !== SENTINEL) assert.fail(`${label}: wrote outside its output, ${i - (b.ptr >>> 2)} floats from its start`);
  }
}
function uniform(rng: TestRng, n: number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniform(lo, hi);
  return a;
}

/**
 * Runs `call` on the reference and on every WASM build from the same inputs, with outputs pre-filled
 * with a sentinel, and compares every buffer (inputs too: some are updated in place) and the return value.
 */
function conform(label: string, inputs: ReadonlyArray<readonly [Buf, ArrayLike<number>]>, outputs: readonly Buf[],
  call: (k: Kernels) => number | void, tol: (variant: string) => Tolerance, scale = 0): void {
  const run = (k: Kernels, name: string): { outs: Float32Array[]; ret: number | void } => {
    for (const b of outputs) prefill(b);
    for (const [b, data] of inputs) prefill(b, data);
    const ret = call(k);
    const all = [...outputs, ...inputs.map(([b]) => b)];
    for (const b of all) assertGuards(b, `${label} ${name}`);
    return { outs: all.map((b) => read(b)), ret };
  };
  const expected = run(h.reference, 'reference');
  for (const { name, k } of variants) {
    const got = run(k, name);
    got.outs.forEach((o, i) => assertClose(o, expected.outs[i]!, tol(name), `${label} ${name} buffer ${i}`, scale));
    if (typeof expected.ret === 'number') assertClose([got.ret as number], [expected.ret], tol(name), `${label} ${name} result`, scale);
  }
}
const always = (t: Tolerance) => (): Tolerance => t;
/** Exact in the plain SIMD build; the relaxed build may fuse a multiply-add. */
const exactUnlessFused = (v: string): Tolerance => (v === 'relaxed' ? close : exact);

const seed = fc.integer({ min: 0, max: 0x7fffffff });
const shift = fc.integer({ min: 0, max: 3 });
const EPS = 1e-5;

const shapeAndRange = fc.record({
  N: fc.integer({ min: 0, max: 4 }), C: fc.integer({ min: 1, max: 5 }),
  HW: fc.oneof(fc.integer({ min: 0, max: 37 }), fc.integer({ min: 38, max: 200 })),
}).chain((s) => fc.tuple(fc.constant(s), fc.integer({ min: 0, max: s.C }), fc.integer({ min: 0, max: s.C }))
  .map(([shape, a, b]) => ({ ...shape, c0: Math.min(a, b), c1: Math.max(a, b) })));

/** Per channel: an offset of 0, 5 or -100 plus uniform noise, or a constant. */
function channelInput(rng: TestRng, N: number, C: number, HW: number): Float32Array {
  const x = new Float32Array(N * C * HW);
  for (let c = 0; c < C; c++) {
    const offset = [0, 5, -100][rng.int(0, 2)]!;
    const constant = rng.next() < 0.2;
    const value = rng.uniform(-3, 3);
    for (let n = 0; n < N; n++) for (let i = 0; i < HW; i++) x[(n * C + c) * HW + i] = constant ? value : offset + rng.uniform(-1, 1);
  }
  return x;
}

/** Asserts that exactly the channels [c0, c1) of an [N, C, HW] (or [C] when N = HW = 1) buffer were written. */
function assertChannelsOnly(b: Buf, N: number, C: number, HW: number, c0: number, c1: number, label: string): void {
  const v = read(b);
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) {
      for (let i = 0; i < HW; i++) {
        const inside = c >= c0 && c < c1;
        if (inside === (v[(n * C + c) * HW + i] === SENTINEL)) assert.fail(`${label}: n=${n} c=${c} ${inside ? 'not written' : 'written outside [c0, c1)'}`);
      }
    }
  }
}

const describe = (s: { N: number; C: number; HW: number; c0: number; c1: number }): string => `x=[${s.N},${s.C},${s.HW}] c=[${s.c0},${s.c1})`;

test('batchNormStats: random shapes and channel ranges, offsets up to 100; close', () => {
  fc.assert(fc.property(shapeAndRange, shift, seed, (s, sx, sd) => {
    h.arena.reset();
    const { N, C, HW, c0, c1 } = s;
    const x = buf(N * C * HW, sx), mean = buf(C, 1), variance = buf(C, 2);
    conform(`batchNormStats ${describe(s)}`, [[x, channelInput(new TestRng(sd), N, C, HW)]], [mean, variance],
      (k) => k.batchNormStats(x.ptr, N, C, HW, c0, c1, mean.ptr, variance.ptr), always(close), 1);
    assertChannelsOnly(mean, 1, C, 1, c0, c1, `batchNormStats reference mean ${describe(s)}`);
    assertChannelsOnly(variance, 1, C, 1, c0, c1, `batchNormStats reference variance ${describe(s)}`);
  }), { seed: 42, numRuns: 100 });
});

test('batchNormStats: a constant channel has its value as mean and variance exactly 0; N * HW = 0 gives 0 and 0', () => {
  h.arena.reset();
  const [N, C, HW] = [3, 2, 37];
  const x = buf(N * C * HW, 1), mean = buf(C), variance = buf(C);
  const data = new Float32Array(N * C * HW);
  for (let i = 0; i < data.length; i++) data[i] = Math.floor(i / HW) % C === 0 ? 0.1 : -1234.567;
  for (const { name, k } of [{ name: 'reference', k: h.reference }, ...variants]) {
    prefill(x, data);
    k.batchNormStats(x.ptr, N, C, HW, 0, C, mean.ptr, variance.ptr);
    assert.deepEqual(Array.from(read(mean)), [Math.fround(0.1), Math.fround(-1234.567)], `mean ${name}`);
    assert.deepEqual(Array.from(read(variance)), [0, 0], `variance ${name}`);
    k.batchNormStats(x.ptr, 0, C, HW, 0, C, mean.ptr, variance.ptr);
    assert.deepEqual([...read(mean), ...read(variance)], [0, 0, 0, 0], `N = 0 ${name}`);
  }
});

test('batchNormApply: random shapes and channel ranges', () => {
  fc.assert(fc.property(shapeAndRange, shift, shift, seed, (s, sx, sy, sd) => {
    h.arena.reset();
    const rng = new TestRng(sd);
    const { N, C, HW, c0, c1 } = s;
    const x = buf(N * C * HW, sx), y = buf(N * C * HW, sy), scale = buf(C, sx), shiftBuf = buf(C, sy);
    conform(`batchNormApply ${describe(s)}`, [[x, uniform(rng, N * C * HW, -3, 3)], [scale, uniform(rng, C, -2, 2)], [shiftBuf, uniform(rng, C)]], [y],
      (k) => k.batchNormApply(x.ptr, y.ptr, N, C, HW, c0, c1, scale.ptr, shiftBuf.ptr), exactUnlessFused);
    assertChannelsOnly(y, N, C, HW, c0, c1, `batchNormApply reference ${describe(s)}`);
  }), { seed: 42, numRuns: 100 });
});

/** Stats of x from the reference, and invstd = 1 / sqrt(var + EPS). */
function referenceStats(x: number, N: number, C: number, HW: number): { mean: Float32Array; invstd: Float32Array } {
  const mean = buf(C), variance = buf(C);
  h.reference.batchNormStats(x, N, C, HW, 0, C, mean.ptr, variance.ptr);
  return { mean: read(mean), invstd: read(variance).map((v) => 1 / Math.sqrt(v + EPS)) };
}

test('batchNormBackward: random shapes and channel ranges, constant channels', () => {
  fc.assert(fc.property(shapeAndRange, shift, shift, seed, (s, sx, sy, sd) => {
    h.arena.reset();
    const rng = new TestRng(sd);
    const { N, C, HW, c0, c1 } = s;
    const total = N * C * HW;
    const x = buf(total, sx), dy = buf(total, sy), dx = buf(total, sx);
    const mean = buf(C, 1), invstd = buf(C, 2), gamma = buf(C, 3), dgamma = buf(C, 1), dbeta = buf(C, 2);
    const xv = channelInput(rng, N, C, HW);
    prefill(x, xv);
    const stats = referenceStats(x.ptr, N, C, HW);
    const gv = uniform(rng, C, -1.5, 1.5);
    const dyv = uniform(rng, total);
    const label = `batchNormBackward ${describe(s)}`;
    conform(label, [[x, xv], [dy, dyv], [mean, stats.mean], [invstd, stats.invstd], [gamma, gv]], [dx, dgamma, dbeta],
      (k) => k.batchNormBackward(x.ptr, dy.ptr, dx.ptr, N, C, HW, c0, c1, mean.ptr, invstd.ptr, gamma.ptr, dgamma.ptr, dbeta.ptr),
      always(close), 1);
    assertChannelsOnly(dx, N, C, HW, c0, c1, `${label} reference dx`);
    assertChannelsOnly(dgamma, 1, C, 1, c0, c1, `${label} reference dgamma`);
    assert.ok(read(dx).every((v) => v === SENTINEL || Number.isFinite(v)), `${label}: dx not finite`);
  }), { seed: 42, numRuns: 100 });
});

type Backward = (k: Kernels, x: number, dy: number, dx: number, N: number, C: number, HW: number,
  mean: number, invstd: number, gamma: number, dgamma: number, dbeta: number) => void;
const referenceBackward: Backward = (k, x, dy, dx, N, C, HW, mean, invstd, gamma, dgamma, dbeta) =>
  k.batchNormBackward(x, dy, dx, N, C, HW, 0, C, mean, invstd, gamma, dgamma, dbeta);

/**
 * Training-mode forward y = gamma * (x - mean(x)) * invstd(x) + beta through the reference kernels, objective
 * L = sum of w * y in float64, and the reference backward's dx, dgamma and dbeta against central differences.
 */
function batchNormGradientCheck(N: number, C: number, HW: number, s: number, backward: Backward = referenceBackward): void {
  h.arena.reset();
  const rng = new TestRng(s);
  const total = N * C * HW;
  const x = buf(total), y = buf(total), dy = buf(total), dx = buf(total), scale = buf(C), shiftBuf = buf(C);
  const mean = buf(C), invstd = buf(C), gamma = buf(C), dgamma = buf(C), dbeta = buf(C);
  const xv = uniform(rng, total, -2, 2), gv = uniform(rng, C, 0.5, 1.5), bv = uniform(rng, C), w = uniform(rng, total);
  const objective = (xs: Float32Array, gs: Float32Array, bs: Float32Array): number => {
    prefill(x, xs);
    const st = referenceStats(x.ptr, N, C, HW);
    prefill(scale, gs.map((g, c) => g * st.invstd[c]!));
    prefill(shiftBuf, bs.map((b, c) => b - st.mean[c]! * gs[c]! * st.invstd[c]!));
    h.reference.batchNormApply(x.ptr, y.ptr, N, C, HW, 0, C, scale.ptr, shiftBuf.ptr);
    return read(y).reduce((acc, v, i) => acc + w[i]! * v, 0);
  };
  const central = (vec: Float32Array, i: number, eps: number, at: (v: Float32Array) => number): number => {
    const plus = vec.slice(), minus = vec.slice();
    plus[i] = vec[i]! + eps;
    minus[i] = vec[i]! - eps;
    return (at(plus) - at(minus)) / (plus[i]! - minus[i]!);
  };
  prefill(x, xv);
  const st = referenceStats(x.ptr, N, C, HW);
  prefill(mean, st.mean);
  prefill(invstd, st.invstd);
  prefill(gamma, gv);
  prefill(dy, w);
  backward(h.reference, x.ptr, dy.ptr, dx.ptr, N, C, HW, mean.ptr, invstd.ptr, gamma.ptr, dgamma.ptr, dbeta.ptr);
  const [adx, adg, adb] = [read(dx), read(dgamma), read(dbeta)];
  const eps = 3e-3;
  const label = `x=[${N},${C},${HW}]`;
  assertClose(adx, Float64Array.from(xv, (_, i) => central(xv, i, eps, (v) => objective(v, gv, bv))), loose, `batchNormBackward dx ${label} against central differences`);
  assertClose(adg, Float64Array.from(gv, (_, i) => central(gv, i, eps, (v) => objective(xv, v, bv))), loose, `batchNormBackward dgamma ${label} against central differences`);
  assertClose(adb, Float64Array.from(bv, (_, i) => central(bv, i, eps, (v) => objective(xv, gv, v))), loose, `batchNormBackward dbeta ${label} against central differences`);
}

test('reference batchNormBackward matches central differences of the training-mode forward', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 6 }), seed,
    (N, C, HW, s) => {
      fc.pre(N * HW >= 3);
      batchNormGradientCheck(N, C, HW, s);
    }), { seed: 42, numRuns: 20 });
});

test('the gradient check rejects the eval-mode backward (dx = gamma * invstd * dy) in training mode', () => {
  const evalMode: Backward = (k, x, dy, dx, N, C, HW, mean, invstd, gamma, dgamma, dbeta) => {
    referenceBackward(k, x, dy, dx, N, C, HW, mean, invstd, gamma, dgamma, dbeta);
    const v = h.mem.f32;
    for (let i = 0; i < N * C * HW; i++) {
      const c = Math.floor(i / HW) % C;
      v[(dx >>> 2) + i] = v[(gamma >>> 2) + c]! * v[(invstd >>> 2) + c]! * v[(dy >>> 2) + i]!;
    }
  };
  assert.throws(() => batchNormGradientCheck(2, 2, 4, 11, evalMode), /batchNormBackward dx .* against central differences/);
  batchNormGradientCheck(2, 2, 4, 11);
});
