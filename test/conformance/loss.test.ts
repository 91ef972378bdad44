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
interface Buf { readonly ptr: number; readonly n: number; readonly base: number; readonly int: boolean }
function buf(n: number, shift = 0, int = false): Buf {
  const base = h.arena.alloc((n + 2 * GUARD + 4) * 4);
  return { ptr: base + (GUARD + shift) * 4, n, base, int };
}
function prefill(b: Buf, data?: ArrayLike<number>): void {
  h.mem.f32.fill(SENTINEL, b.base >>> 2, (b.base >>> 2) + b.n + 2 * GUARD + 4);
  if (data !== undefined) (b.int ? h.mem.i32 : h.mem.f32).set(data, b.ptr >>> 2);
}
function read(b: Buf): Float32Array {
  return h.mem.f32.slice(b.ptr >>> 2, (b.ptr >>> 2) + b.n);
}
function readInt(b: Buf): Int32Array {
  return h.mem.i32.slice(b.ptr >>> 2, (b.ptr >>> 2) + b.n);
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
  const run = (k: Kernels, name: string): { outs: Array<Float32Array | Int32Array>; ret: number | void } => {
    for (const b of outputs) prefill(b);
    for (const [b, data] of inputs) prefill(b, data);
    const ret = call(k);
    const all = [...outputs, ...inputs.map(([b]) => b)];
    for (const b of all) assertGuards(b, `${label} ${name}`);
    return { outs: all.map((b) => (b.int ? readInt(b) : read(b))), ret };
  };
  const expected = run(h.reference, 'reference');
  for (const { name, k } of variants) {
    const got = run(k, name);
    got.outs.forEach((o, i) => assertClose(o, expected.outs[i]!, o instanceof Int32Array ? exact : tol(name), `${label} ${name} buffer ${i}`, scale));
    if (typeof expected.ret === 'number') assertClose([got.ret as number], [expected.ret], tol(name), `${label} ${name} result`, scale);
  }
}
const always = (t: Tolerance) => (): Tolerance => t;
/** Exact in the plain SIMD build; the relaxed build may fuse a multiply-add. */
const exactUnlessFused = (v: string): Tolerance => (v === 'relaxed' ? close : exact);

const seed = fc.integer({ min: 0, max: 0x7fffffff });
const shift = fc.integer({ min: 0, max: 3 });
const rows = fc.record({ N: fc.integer({ min: 0, max: 5 }), C: fc.oneof(fc.integer({ min: 1, max: 37 }), fc.integer({ min: 38, max: 1000 })) });
const everyKernelSet = (): ReadonlyArray<{ readonly name: string; readonly k: Kernels }> => [{ name: 'reference', k: h.reference }, ...variants];

/** Logits at one of three scales: ordinary, large (up to 1e4 either way) or tied on a coarse grid. */
function logits(rng: TestRng, n: number, kind: number): Float32Array {
  if (kind === 0) return uniform(rng, n, -8, 8);
  if (kind === 1) return Float32Array.from({ length: n }, () => (rng.next() < 0.5 ? rng.uniform(-1e4, 1e4) : rng.int(-1, 1) * 1e4));
  return Float32Array.from({ length: n }, () => rng.int(-2, 2));
}

test('softmaxCrossEntropy and its backward: random rows, C up to 1000, logits up to ±1e4; close', () => {
  fc.assert(fc.property(rows, shift, shift, seed, fc.integer({ min: 0, max: 2 }), fc.float({ noNaN: true, min: -2, max: 2 }),
    ({ N, C }, sx, sp, s, kind, scale) => {
      h.arena.reset();
      const rng = new TestRng(s);
      const x = buf(N * C, sx), labels = buf(N, sp, true), probs = buf(N * C, sp), losses = buf(N, sx), dx = buf(N * C, sx);
      const lv = Int32Array.from({ length: N }, () => rng.int(0, C - 1));
      const label = `N=${N} C=${C} logits=${['ordinary', 'large', 'tied'][kind]}`;
      const xv = logits(rng, N * C, kind);
      conform(`softmaxCrossEntropy ${label}`, [[x, xv], [labels, lv]], [probs, losses],
        (k) => k.softmaxCrossEntropy(x.ptr, labels.ptr, N, C, probs.ptr, losses.ptr), always(close), 1);
      assert.ok(read(losses).every((v) => Number.isFinite(v) && v >= 0), `${label}: a loss is not finite or negative`);
      assert.ok(read(probs).every((v) => v >= 0 && v <= 1), `${label}: a probability outside [0, 1]`);
      for (let n = 0; n < N; n++) {
        const rowSum = read(probs).subarray(n * C, (n + 1) * C).reduce((a, b) => a + b, 0);
        assert.ok(Math.abs(rowSum - 1) < 1e-5, `${label}: row ${n} sums to ${rowSum}`);
      }
      conform(`softmaxCrossEntropyBackward ${label}`, [[probs, read(probs)], [labels, lv]], [dx],
        (k) => k.softmaxCrossEntropyBackward(probs.ptr, labels.ptr, N, C, scale, dx.ptr), always(exact));
    }), { seed: 42, numRuns: 100 });
});

test('softmaxCrossEntropy with logits ±1e4: finite, the winning class has probability 1 and loss 0, a loser has loss 2e4', () => {
  h.arena.reset();
  const C = 7;
  const xv = [-1e4, 1e4, 0, -1e4, 3, 1e4 - 30, -5];
  const x = buf(2 * C, 1), labels = buf(2, 0, true), probs = buf(2 * C, 2), losses = buf(2, 3);
  for (const { name, k } of everyKernelSet()) {
    prefill(x, [...xv, ...xv]);
    prefill(labels, [1, 0]);
    k.softmaxCrossEntropy(x.ptr, labels.ptr, 2, C, probs.ptr, losses.ptr);
    const l = read(losses), p = read(probs);
    assertClose([l[0]!, l[1]!], [Math.log1p(Math.exp(-30)), 2e4 + Math.log1p(Math.exp(-30))], close, `losses ${name}`);
    assertClose(p.subarray(0, C), [0, 1, 0, 0, 0, Math.exp(-30), 0], close, `probs ${name}`);
  }
});

test('argmaxRows: the first maximum wins, also across SIMD lanes; NaN beats numbers; C = 0 gives -1', () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 37 }), shift, seed, fc.boolean(), (N, C, sx, s, nan) => {
    h.arena.reset();
    const rng = new TestRng(s);
    const xv = logits(rng, N * C, 2);
    if (nan && N * C > 0) xv[rng.int(0, N * C - 1)] = NaN;
    const x = buf(N * C, sx), out = buf(N, 1, true);
    conform(`argmaxRows N=${N} C=${C}`, [[x, xv]], [out], (k) => k.argmaxRows(x.ptr, N, C, out.ptr), always(exact));
  }), { seed: 42, numRuns: 100 });
  const cases: Array<[number[], number]> = [
    [[1, 3, 2, 3, 0, 3, 3, 1, 3], 1], [[0, 0, 0, 0, 0, 0, 5, 0, 5], 6], [[-Infinity, -Infinity, -Infinity, -Infinity, -Infinity], 0],
    [[1, 2, 9, NaN, 4, NaN, 9, 9], 3], [[1, 2, 3, 4, 5, 6, 7, 8, NaN], 8], [[2, 1], 0], [[], -1],
  ];
  for (const [data, at] of cases) {
    const x = buf(data.length, 1), out = buf(1, 0, true);
    for (const { name, k } of everyKernelSet()) {
      prefill(x, data);
      k.argmaxRows(x.ptr, 1, data.length, out.ptr);
      assert.equal(readInt(out)[0], at, `argmax of [${data}] ${name}`);
    }
  }
});

/** The reference backward against central differences of scale * (sum of losses) from the reference forward. */
function lossGradientCheck(N: number, C: number, s: number, backward: Kernels['softmaxCrossEntropyBackward']): void {
  h.arena.reset();
  const rng = new TestRng(s);
  const scale = 1 / N;
  const x = buf(N * C), labels = buf(N, 0, true), probs = buf(N * C), losses = buf(N), dx = buf(N * C);
  prefill(labels, Int32Array.from({ length: N }, () => rng.int(0, C - 1)));
  const objective = (v: Float32Array): number => {
    prefill(x, v);
    h.reference.softmaxCrossEntropy(x.ptr, labels.ptr, N, C, probs.ptr, losses.ptr);
    return read(losses).reduce((a, b) => a + scale * b, 0);
  };
  const xv = uniform(rng, N * C, -3, 3);
  objective(xv);
  backward(probs.ptr, labels.ptr, N, C, scale, dx.ptr);
  const eps = 1e-2;
  const numeric = Float64Array.from(xv, (_, i) => {
    const plus = xv.slice(), minus = xv.slice();
    plus[i] = xv[i]! + eps;
    minus[i] = xv[i]! - eps;
    return (objective(plus) - objective(minus)) / (plus[i]! - minus[i]!);
  });
  assertClose(read(dx), numeric, loose, `softmaxCrossEntropyBackward N=${N} C=${C} against central differences`);
}

test('reference softmaxCrossEntropyBackward matches central differences of the reference loss', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 12 }), seed,
    (N, C, s) => lossGradientCheck(N, C, s, h.reference.softmaxCrossEntropyBackward)), { seed: 42, numRuns: 25 });
});

test('the gradient check rejects a backward with the one-hot term of the wrong sign', () => {
  const wrong: Kernels['softmaxCrossEntropyBackward'] = (probs, labels, N, C, scale, dx) => {
    h.reference.softmaxCrossEntropyBackward(probs, labels, N, C, scale, dx);
    for (let n = 0; n < N; n++) h.mem.f32[(dx >>> 2) + n * C + h.mem.i32[(labels >>> 2) + n]!]! += 2 * scale;
  };
  assert.throws(() => lossGradientCheck(3, 5, 9, wrong), /against central differences/);
  lossGradientCheck(3, 5, 9, h.reference.softmaxCrossEntropyBackward);
});

test('softmaxCrossEntropy over C equal logits gives loss log(C) and probabilities 1/C', () => {
  for (const C of [1, 2, 3, 7, 100, 999, 1000, 4099]) {
    h.arena.reset();
    const x = buf(C, 1), labels = buf(1, 0, true), probs = buf(C, 2), losses = buf(1, 3);
    for (const { name, k } of everyKernelSet()) {
      prefill(x, new Float32Array(C).fill(-3.5));
      prefill(labels, [C - 1]);
      k.softmaxCrossEntropy(x.ptr, labels.ptr, 1, C, probs.ptr, losses.ptr);
      assertClose(read(losses), [Math.log(C)], close, `loss C=${C} ${name}`);
      assertClose(read(probs), new Float32Array(C).fill(1 / C), close, `probs C=${C} ${name}`);
    }
  }
});
