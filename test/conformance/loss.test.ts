import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Kernels } from '../../src/backend/kernels.js';
import { h, everyKernelSet, buf, prefill, read, readInt, uniform, conform, always, seed, shift, numericGradient } from '../util/conformance.js';
import { TestRng } from '../util/rng.js';
import { assertClose, close, exact, loose } from '../util/tolerance.js';

const rows = fc.record({ N: fc.integer({ min: 0, max: 5 }), C: fc.oneof(fc.integer({ min: 1, max: 37 }), fc.integer({ min: 38, max: 1000 })) });

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
  for (const { name, k } of everyKernelSet) {
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
    for (const { name, k } of everyKernelSet) {
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
  const forward = (v: Float32Array): Float32Array => {
    prefill(x, v);
    h.reference.softmaxCrossEntropy(x.ptr, labels.ptr, N, C, probs.ptr, losses.ptr);
    return read(losses);
  };
  const xv = uniform(rng, N * C, -3, 3);
  forward(xv);
  backward(probs.ptr, labels.ptr, N, C, scale, dx.ptr);
  const numeric = numericGradient(forward, xv, Array.from({ length: N }, () => scale), 1e-2);
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
    for (const { name, k } of everyKernelSet) {
      prefill(x, new Float32Array(C).fill(-3.5));
      prefill(labels, [C - 1]);
      k.softmaxCrossEntropy(x.ptr, labels.ptr, 1, C, probs.ptr, losses.ptr);
      assertClose(read(losses), [Math.log(C)], close, `loss C=${C} ${name}`);
      assertClose(read(probs), new Float32Array(C).fill(1 / C), close, `probs C=${C} ${name}`);
    }
  }
});
