import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Kernels } from '../../src/backend/kernels.js';
import { dropoutUniform } from '../../src/backend/reference/elementwise.js';
import { h, variants, everyKernelSet, buf, prefill, read, uniform, conform, always, exactUnlessFused, seed, shift, centralDifference, weightedSum } from '../util/conformance.js';
import { TestRng } from '../util/rng.js';
import { assertClose, close, exact, loose } from '../util/tolerance.js';

const len = fc.integer({ min: 0, max: 37 });
const runs = { seed: 42, numRuns: 150 };

test('add, sub, mul: n in 0..37 at unaligned offsets, exact', () => {
  fc.assert(fc.property(len, shift, shift, shift, seed, (n, sa, sb, sy, s) => {
    h.arena.reset();
    const rng = new TestRng(s);
    const a = buf(n, sa), b = buf(n, sb), y = buf(n, sy);
    const ins = [[a, uniform(rng, n, -3, 3)], [b, uniform(rng, n, -3, 3)]] as const;
    conform(`add n=${n}`, ins, [y], (k) => k.add(a.ptr, b.ptr, y.ptr, n), always(exact));
    conform(`sub n=${n}`, ins, [y], (k) => k.sub(a.ptr, b.ptr, y.ptr, n), always(exact));
    conform(`mul n=${n}`, ins, [y], (k) => k.mul(a.ptr, b.ptr, y.ptr, n), always(exact));
  }), runs);
});

test('add in place (y = a)', () => {
  h.arena.reset();
  const rng = new TestRng(7);
  const a = buf(23, 1), b = buf(23, 2);
  const av = uniform(rng, 23), bv = uniform(rng, 23);
  for (const { name, k } of variants) {
    prefill(a, av);
    prefill(b, bv);
    k.add(a.ptr, b.ptr, a.ptr, 23);
    assertClose(read(a), av.map((x, i) => Math.fround(x + bv[i]!)), exact, `add in place ${name}`);
  }
});

test('fill, copy, scale, axpy: n in 0..37 at unaligned offsets', () => {
  fc.assert(fc.property(len, shift, shift, seed, fc.float({ noNaN: true, min: -4, max: 4 }), (n, sx, sy, s, alpha) => {
    h.arena.reset();
    const rng = new TestRng(s);
    const x = buf(n, sx), y = buf(n, sy);
    const xv = uniform(rng, n, -2, 2), yv = uniform(rng, n, -2, 2);
    conform(`fill n=${n}`, [], [y], (k) => k.fill(y.ptr, n, alpha), always(exact));
    conform(`copy n=${n}`, [[x, xv]], [y], (k) => k.copy(x.ptr, y.ptr, n), always(exact));
    conform(`scale n=${n}`, [[x, xv]], [y], (k) => k.scale(x.ptr, y.ptr, n, alpha), always(exact));
    conform(`axpy n=${n}`, [[x, xv], [y, yv]], [], (k) => k.axpy(n, alpha, x.ptr, y.ptr), exactUnlessFused);
    for (const { name, k } of everyKernelSet) {
      prefill(x, xv);
      prefill(y, yv);
      k.axpy(n, alpha, x.ptr, y.ptr);
      assertClose(read(y), yv.map((v, i) => v + alpha * xv[i]!), close, `axpy n=${n} ${name} against float64`);
    }
  }), runs);
});

test('fill writes the value bit for bit, copy moves NaN and -0 unchanged', () => {
  h.arena.reset();
  const src = new Float32Array([NaN, -0, Infinity, -Infinity, 1e-45, 3.4e38, -1, 0.1, 2]);
  const x = buf(src.length, 3), y = buf(src.length, 1);
  for (const { name, k } of variants) {
    prefill(x, src);
    prefill(y);
    k.copy(x.ptr, y.ptr, src.length);
    assert.deepEqual(new Uint32Array(read(y).buffer), new Uint32Array(src.buffer), `copy ${name}`);
    k.fill(y.ptr, src.length, -0);
    assert.ok(read(y).every((v) => Object.is(v, -0)), `fill -0 ${name}`);
  }
});

const shape = fc.record({ N: fc.integer({ min: 0, max: 3 }), C: fc.integer({ min: 0, max: 5 }), HW: len });

test('addBias, channelScale: odd [N, C, HW], exact', () => {
  fc.assert(fc.property(shape, shift, shift, seed, ({ N, C, HW }, sa, sb, s) => {
    h.arena.reset();
    const rng = new TestRng(s);
    const total = N * C * HW;
    const x = buf(total, sa), y = buf(total, sb), bias = buf(C, sa), gate = buf(N * C, sb);
    const label = `N=${N} C=${C} HW=${HW}`;
    conform(`addBias ${label}`, [[bias, uniform(rng, C)], [y, uniform(rng, total)]], [], (k) => k.addBias(y.ptr, bias.ptr, N, C, HW), always(exact));
    conform(`channelScale ${label}`, [[x, uniform(rng, total)], [gate, uniform(rng, N * C, 0, 2)]], [y],
      (k) => k.channelScale(x.ptr, gate.ptr, y.ptr, N, C, HW), always(exact));
  }), runs);
});

test('addBias adds bias[c] to every element of channel c', () => {
  h.arena.reset();
  const [N, C, HW] = [2, 3, 5];
  const y = buf(N * C * HW, 1), bias = buf(C, 2);
  for (const { name, k } of everyKernelSet) {
    prefill(y, new Float32Array(N * C * HW).fill(1));
    prefill(bias, [10, 20, 30]);
    k.addBias(y.ptr, bias.ptr, N, C, HW);
    const got = read(y);
    for (let i = 0; i < got.length; i++) assert.equal(got[i], 11 + 10 * (Math.floor(i / HW) % C), `addBias ${name} element ${i}`);
  }
});

test('channelSum: beta 0 ignores old contents (NaN too), beta 1 accumulates', () => {
  fc.assert(fc.property(shape, shift, seed, fc.constantFrom(0, 1), ({ N, C, HW }, sx, s, beta) => {
    h.arena.reset();
    const rng = new TestRng(s);
    const x = buf(N * C * HW, sx), out = buf(C, 1);
    const old = uniform(rng, C).map((v, i) => (beta === 0 && i % 2 === 0 ? NaN : v));
    conform(`channelSum N=${N} C=${C} HW=${HW} beta=${beta}`, [[x, uniform(rng, N * C * HW)], [out, old]], [],
      (k) => k.channelSum(x.ptr, N, C, HW, out.ptr, beta), always(close), 1);
    h.reference.channelSum(x.ptr, N, C, HW, out.ptr, beta);
    assert.ok(read(out).every(Number.isFinite), 'channelSum reference with beta 0 kept a NaN');
  }), runs);
});

test('channelScaleBackward: dx exact, ds close; dx = 0 skips dx and writes nothing at address 0', () => {
  fc.assert(fc.property(shape, shift, shift, seed, fc.boolean(), ({ N, C, HW }, sa, sb, s, wantDx) => {
    h.arena.reset();
    const rng = new TestRng(s);
    const total = N * C * HW;
    const x = buf(total, sa), dy = buf(total, sb), dx = buf(total, sb), gate = buf(N * C, sa), ds = buf(N * C, 2);
    const ins = [[x, uniform(rng, total)], [dy, uniform(rng, total)], [gate, uniform(rng, N * C)]] as const;
    const label = `channelScaleBackward N=${N} C=${C} HW=${HW} dx=${wantDx}`;
    const low = h.mem.f32.slice(0, total + 16);
    conform(label, ins, wantDx ? [dx, ds] : [ds], (k) => k.channelScaleBackward(x.ptr, gate.ptr, dy.ptr, wantDx ? dx.ptr : 0, ds.ptr, N, C, HW),
      always(close), 1);
    assert.deepEqual(h.mem.f32.slice(0, total + 16), low, `${label} wrote near address 0`);
    if (wantDx) {
      for (const { name, k } of variants) {
        for (const [b, d] of ins) prefill(b, d);
        prefill(dx);
        k.channelScaleBackward(x.ptr, gate.ptr, dy.ptr, dx.ptr, ds.ptr, N, C, HW);
        const dxRef = read(dx);
        prefill(dx);
        h.reference.channelScaleBackward(x.ptr, gate.ptr, dy.ptr, dx.ptr, ds.ptr, N, C, HW);
        assertClose(dxRef, read(dx), exact, `${label} ${name} dx`);
      }
    }
  }), runs);
});

test('sum, sumSquares: float64 results over n in 0..37 and longer runs', () => {
  fc.assert(fc.property(fc.oneof(len, fc.integer({ min: 38, max: 3000 })), shift, seed, (n, sx, s) => {
    h.arena.reset();
    const rng = new TestRng(s);
    const x = buf(n, sx);
    const xv = uniform(rng, n, -5, 5);
    conform(`sum n=${n}`, [[x, xv]], [], (k) => k.sum(x.ptr, n), always(close), 1);
    conform(`sumSquares n=${n}`, [[x, xv]], [], (k) => k.sumSquares(x.ptr, n), always(close), 1);
  }), runs);
});

test('sum and sumSquares accumulate in float64: 2^24 + 1001 ones is exact', () => {
  h.arena.reset();
  const n = 1002;
  const data = new Float32Array(n).fill(1);
  data[0] = 2 ** 24;
  const x = buf(n, 1);
  for (const { name, k } of everyKernelSet) {
    prefill(x, data);
    assert.equal(k.sum(x.ptr, n), 2 ** 24 + 1001, `sum ${name}`);
    assert.equal(k.sumSquares(x.ptr, n), 2 ** 48 + 1001, `sumSquares ${name}`);
    assert.equal(k.sum(x.ptr, 0), 0, `sum n=0 ${name}`);
  }
});

test('countNonFinite counts NaN and both infinities, not large finite values', () => {
  const special = [NaN, Infinity, -Infinity, 3.4e38, -3.4e38, 1e-45, 0, -0];
  fc.assert(fc.property(len, shift, seed, (n, sx, s) => {
    h.arena.reset();
    const rng = new TestRng(s);
    const data = new Float32Array(n);
    let expected = 0;
    for (let i = 0; i < n; i++) {
      data[i] = rng.next() < 0.4 ? special[rng.int(0, special.length - 1)]! : rng.uniform(-1, 1);
      if (!Number.isFinite(data[i]!)) expected++;
    }
    const x = buf(n, sx);
    conform(`countNonFinite n=${n}`, [[x, data]], [], (k) => k.countNonFinite(x.ptr, n), always(exact));
    prefill(x, data);
    assert.equal(h.reference.countNonFinite(x.ptr, n), expected);
  }), runs);
});

test('dropoutForward: exact against the reference hash for p in {0, 0.1, 0.5, 0.9, 1}', () => {
  fc.assert(fc.property(len, shift, shift, seed, fc.constantFrom(0, 0.1, 0.5, 0.9, 1), (n, sx, sy, s, p) => {
    h.arena.reset();
    const rng = new TestRng(s);
    const x = buf(n, sx), y = buf(n, sy), mask = buf(n, sx);
    conform(`dropoutForward n=${n} p=${p}`, [[x, uniform(rng, n)]], [y, mask], (k) => k.dropoutForward(x.ptr, y.ptr, mask.ptr, n, p, s), always(exact));
  }), runs);
});

test('dropoutForward: masks are 0 or 1/(1-p), drop a fraction p, and seeds give independent masks', () => {
  h.arena.reset();
  const n = 20000;
  const p = 0.3;
  const keep = Math.fround(1 / Math.fround(1 - Math.fround(p)));
  const x = buf(n), y = buf(n), mask = buf(n);
  const xv = new Float32Array(n).fill(2);
  const masks: Float32Array[] = [];
  for (const s of [1234, 1235]) {
    prefill(x, xv);
    variants[0]!.k.dropoutForward(x.ptr, y.ptr, mask.ptr, n, p, s);
    const m = read(mask);
    assert.ok(m.every((v) => v === 0 || v === keep), 'mask holds a value other than 0 and 1/(1-p)');
    assert.deepEqual(read(y), m.map((v) => 2 * v));
    const dropped = m.filter((v) => v === 0).length / n;
    const sigma = Math.sqrt((p * (1 - p)) / n);
    assert.ok(Math.abs(dropped - p) < 5 * sigma, `dropped fraction ${dropped}, expected ${p}`);
    masks.push(m);
  }
  const agree = masks[0]!.filter((v, i) => (v === 0) === (masks[1]![i] === 0)).length / n;
  const expectAgree = p * p + (1 - p) * (1 - p);
  assert.ok(Math.abs(agree - expectAgree) < 5 * Math.sqrt((expectAgree * (1 - expectAgree)) / n),
    `seeds 1234 and 1235 agree on ${agree} of elements, independent masks agree on ${expectAgree}`);
  let shifted = 0;
  for (let i = 0; i < 1000; i++) if ((dropoutUniform(1234, i + 1) < p) === (dropoutUniform(1234, i) < p)) shifted++;
  assert.ok(Math.abs(shifted / 1000 - expectAgree) < 0.07, 'neighbouring indices are correlated');
});

/**
 * The reference channelScaleBackward against central differences of L = sum of w * channelScale(x, s),
 * evaluated in float64 from the reference forward's float32 outputs; `backward` may be a deliberately wrong one.
 */
function channelScaleGradientCheck(N: number, C: number, HW: number, seedValue: number, backward = h.reference.channelScaleBackward): void {
  h.arena.reset();
  const rng = new TestRng(seedValue);
  const total = N * C * HW;
  const x = buf(total), gate = buf(N * C), y = buf(total), dy = buf(total), dx = buf(total), ds = buf(N * C);
  const xv = uniform(rng, total), sv = uniform(rng, N * C), w = uniform(rng, total);
  const objective = (xs: Float32Array, ss: Float32Array): number => {
    prefill(x, xs);
    prefill(gate, ss);
    h.reference.channelScale(x.ptr, gate.ptr, y.ptr, N, C, HW);
    return weightedSum(read(y), w);
  };
  prefill(x, xv);
  prefill(gate, sv);
  prefill(dy, w);
  backward(x.ptr, gate.ptr, dy.ptr, dx.ptr, ds.ptr, N, C, HW);
  const label = `x=[${N},${C},${HW}]`;
  assertClose(read(dx), Float64Array.from(xv, (_, i) => centralDifference(xv, i, 1e-2, (v) => objective(v, sv))), loose, `channelScaleBackward dx ${label} against central differences`);
  assertClose(read(ds), Float64Array.from(sv, (_, i) => centralDifference(sv, i, 1e-2, (v) => objective(xv, v))), loose, `channelScaleBackward ds ${label} against central differences`);
}

test('reference channelScaleBackward matches central differences of the reference channelScale', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 7 }), seed,
    (N, C, HW, s) => channelScaleGradientCheck(N, C, HW, s)), { seed: 42, numRuns: 20 });
});

test('the gradient check rejects a channelScaleBackward whose gate gradient reads the wrong image', () => {
  const wrong: Kernels['channelScaleBackward'] = (x, s, dy, dx, ds, N, C, HW) => {
    h.reference.channelScaleBackward(x, s, dy, dx, ds, N, C, HW);
    const v = h.mem.f32;
    const first = v[(ds >>> 2)]!;
    for (let p = 0; p < N * C - 1; p++) v[(ds >>> 2) + p] = v[(ds >>> 2) + p + 1]!;
    v[(ds >>> 2) + N * C - 1] = first;
  };
  assert.throws(() => channelScaleGradientCheck(2, 2, 5, 4, wrong), /channelScaleBackward ds .* against central differences/);
  channelScaleGradientCheck(2, 2, 5, 4);
});
