import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Kernels } from '../../src/backend/kernels.js';
import { h, variants, everyKernelSet, buf, prefill, read, uniform, conform, always, seed, shift, numericGradient } from '../util/conformance.js';
import { TestRng } from '../util/rng.js';
import { assertClose, close, exact, loose, type Tolerance } from '../util/tolerance.js';

const len = fc.integer({ min: 0, max: 37 });
const runs = { seed: 42, numRuns: 150 };
const SPECIAL = [NaN, Infinity, -Infinity, -0, 0, 100, -100, 1e-30];

/** Mostly uniform in [-6, 6], with some special values and exact kinks (0, lo, hi) mixed in. */
function activationInput(rng: TestRng, n: number, kinks: readonly number[] = []): Float32Array {
  const a = uniform(rng, n, -6, 6);
  for (let i = 0; i < n; i++) {
    const r = rng.next();
    if (r < 0.1) a[i] = SPECIAL[rng.int(0, SPECIAL.length - 1)]!;
    else if (r < 0.15 && kinks.length > 0) a[i] = kinks[rng.int(0, kinks.length - 1)]!;
  }
  return a;
}

interface Activation {
  readonly name: string;
  readonly forward: (k: Kernels, x: number, y: number, n: number) => void;
  /** Calls the backward with the forward's input x or output y, whichever the contract names. */
  readonly backward: (k: Kernels, x: number, y: number, dy: number, dx: number, n: number) => void;
  readonly forwardTol: Tolerance;
  readonly kinks: readonly number[];
}
const ALPHA = 0.1;
const LO = -1.5;
const HI = 2.25;
const activations: readonly Activation[] = [
  { name: 'relu', forward: (k, x, y, n) => k.relu(x, y, n), backward: (k, _x, y, dy, dx, n) => k.reluBackward(y, dy, dx, n), forwardTol: exact, kinks: [0] },
  { name: 'leakyRelu', forward: (k, x, y, n) => k.leakyRelu(x, y, n, ALPHA), backward: (k, x, _y, dy, dx, n) => k.leakyReluBackward(x, dy, dx, n, ALPHA), forwardTol: exact, kinks: [0] },
  { name: 'sigmoid', forward: (k, x, y, n) => k.sigmoid(x, y, n), backward: (k, _x, y, dy, dx, n) => k.sigmoidBackward(y, dy, dx, n), forwardTol: close, kinks: [] },
  { name: 'tanh', forward: (k, x, y, n) => k.tanh(x, y, n), backward: (k, _x, y, dy, dx, n) => k.tanhBackward(y, dy, dx, n), forwardTol: close, kinks: [] },
  { name: 'clamp', forward: (k, x, y, n) => k.clamp(x, y, n, LO, HI), backward: (k, x, _y, dy, dx, n) => k.clampBackward(x, dy, dx, n, LO, HI), forwardTol: exact, kinks: [LO, HI] },
];

for (const act of activations) {
  test(`${act.name} forward and backward: n in 0..37, unaligned, NaN/inf/-0 and kinks, ${act.forwardTol.name}`, () => {
    fc.assert(fc.property(len, shift, shift, seed, (n, sa, sb, s) => {
      h.arena.reset();
      const rng = new TestRng(s);
      const x = buf(n, sa), y = buf(n, sb), dy = buf(n, sb), dx = buf(n, sa);
      const xv = activationInput(rng, n, act.kinks);
      conform(`${act.name} n=${n}`, [[x, xv]], [y], (k) => act.forward(k, x.ptr, y.ptr, n), always(act.forwardTol));
      prefill(y);
      act.forward(h.reference, x.ptr, y.ptr, n);
      const yv = read(y);
      const dyv = activationInput(rng, n);
      conform(`${act.name}Backward n=${n}`, [[x, xv], [y, yv], [dy, dyv]], [dx],
        (k) => act.backward(k, x.ptr, y.ptr, dy.ptr, dx.ptr, n), always(exact));
    }), runs);
  });
}

test('activation forwards on special values', () => {
  h.arena.reset();
  const xv = new Float32Array([NaN, Infinity, -Infinity, -0, 0, 1, -1, 100, -100]);
  const x = buf(xv.length, 1), y = buf(xv.length, 2);
  const expected: Record<string, number[]> = {
    relu: [NaN, Infinity, 0, 0, 0, 1, 0, 100, 0],
    leakyRelu: [NaN, Infinity, -Infinity, -0, 0, 1, -Math.fround(ALPHA), 100, -10],
    sigmoid: [NaN, 1, 0, 0.5, 0.5, 1 / (1 + Math.exp(-1)), 1 / (1 + Math.exp(1)), 1, 0],
    tanh: [NaN, 1, -1, -0, 0, Math.tanh(1), -Math.tanh(1), 1, -1],
    clamp: [NaN, HI, LO, -0, 0, 1, -1, HI, LO],
  };
  for (const act of activations) {
    for (const { name, k } of everyKernelSet) {
      prefill(x, xv);
      prefill(y);
      act.forward(k, x.ptr, y.ptr, xv.length);
      assertClose(read(y), expected[act.name]!, act.forwardTol === exact ? exact : close, `${act.name} ${name}`);
    }
  }
});

/** The analytic gradient of the reference backward (or of `backward` when given) next to central differences. */
function gradientCheck(act: Activation, s: number, n: number, backward = act.backward): void {
  h.arena.reset();
  const rng = new TestRng(s);
  const eps = 1e-2;
  const xv = uniform(rng, n, -4, 4);
  const w = uniform(rng, n);
  const x = buf(n), y = buf(n), dy = buf(n), dx = buf(n);
  const forward = (v: Float32Array): Float32Array => {
    prefill(x, v);
    act.forward(h.reference, x.ptr, y.ptr, n);
    return read(y);
  };
  const yv = forward(xv);
  prefill(dy, w);
  backward(h.reference, x.ptr, y.ptr, dy.ptr, dx.ptr, n);
  const analytic = read(dx);
  const nearKink = (i: number): boolean => act.kinks.some((k) => Math.abs(xv[i]! - k) < 2 * eps);
  assert.ok(yv.length === n);
  assertClose(analytic, numericGradient(forward, xv, w, eps, { at: nearKink, analytic }), loose, `${act.name}Backward against central differences`);
}

test('reference backwards match central differences of the reference forwards', () => {
  for (const act of activations) fc.assert(fc.property(fc.integer({ min: 1, max: 24 }), seed, (n, s) => gradientCheck(act, s, n)), { seed: 42, numRuns: 10 });
});

test('the gradient check rejects reluBackward with its mask inverted', () => {
  const relu = activations.find((a) => a.name === 'relu')!;
  const inverted: Activation['backward'] = (_k, _x, y, dy, dx, n) => {
    const v = h.mem.f32;
    for (let i = 0; i < n; i++) v[(dx >>> 2) + i] = v[(y >>> 2) + i]! > 0 ? 0 : v[(dy >>> 2) + i]!;
  };
  assert.throws(() => gradientCheck(relu, 3, 16, inverted), /reluBackward against central differences/);
  gradientCheck(relu, 3, 16);
});

test('sigmoid (a vectorised exp) is within 4 ulp of float64 over [-104, 20], and 0 <= y < 2^-126 where the result is subnormal', () => {
  h.arena.reset();
  const n = 20011;
  const xv = Float32Array.from({ length: n }, (_, i) => -104 + (124 * i) / (n - 1));
  const x = buf(n, 1), y = buf(n, 2);
  for (const { name, k } of variants) {
    prefill(x, xv);
    k.sigmoid(x.ptr, y.ptr, n);
    const got = read(y);
    for (let i = 0; i < n; i++) {
      const v = xv[i]!;
      const expected = v >= 0 ? 1 / (1 + Math.exp(-v)) : Math.exp(v) / (1 + Math.exp(v));
      if (expected < 2 ** -126) {
        assert.ok(got[i]! >= 0 && got[i]! < 2 ** -126, `sigmoid(${v}) ${name} is ${got[i]}, expected ${expected}`);
        continue;
      }
      const ulp = 2 ** (Math.floor(Math.log2(Math.fround(expected))) - 23);
      assert.ok(Math.abs(got[i]! - expected) <= 4 * ulp, `sigmoid(${v}) ${name} is ${got[i]}, expected ${expected} (${Math.abs(got[i]! - expected) / ulp} ulp)`);
    }
  }
});

test('tanh (vectorised) is within 4 ulp of float64 over [-12, 12], odd, and exactly ±1 far out', () => {
  h.arena.reset();
  const n = 24001;
  const xv = Float32Array.from({ length: n }, (_, i) => -12 + (24 * i) / (n - 1));
  const x = buf(n, 3), y = buf(n, 1);
  for (const { name, k } of variants) {
    prefill(x, xv);
    k.tanh(x.ptr, y.ptr, n);
    const got = read(y);
    for (let i = 0; i < n; i++) {
      const expected = Math.tanh(xv[i]!);
      const ulp = expected === 0 ? 2 ** -149 : 2 ** (Math.floor(Math.log2(Math.abs(Math.fround(expected)))) - 23);
      assert.ok(Math.abs(got[i]! - expected) <= 4 * ulp, `tanh(${xv[i]}) ${name} is ${got[i]}, expected ${expected} (${Math.abs(got[i]! - expected) / ulp} ulp)`);
      assert.ok(got[i] === -got[n - 1 - i]!, `tanh ${name} is not odd at ${xv[i]}`);
    }
    prefill(x, [1e-30, -1e-30, 50, -50, 1e30]);
    k.tanh(x.ptr, y.ptr, 5);
    assert.deepEqual(Array.from(read(y).subarray(0, 5)), [Math.fround(1e-30), Math.fround(-1e-30), 1, -1, 1], `tanh far out ${name}`);
  }
});
