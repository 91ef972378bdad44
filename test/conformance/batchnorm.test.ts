import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Kernels } from '../../src/backend/kernels.js';
import { h, SENTINEL, buf, prefill, read, uniform, conform, always, exactUnlessFused, seed, shift, everyKernelSet, centralDifference, weightedSum, type Buf } from '../util/conformance.js';
import { TestRng } from '../util/rng.js';
import { assertClose, close } from '../util/tolerance.js';

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

type ShapeAndRange = { N: number; C: number; HW: number; c0: number; c1: number };
const describe = (s: ShapeAndRange): string => `x=[${s.N},${s.C},${s.HW}] c=[${s.c0},${s.c1})`;

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
  for (const { name, k } of everyKernelSet) {
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

/** Per image and channel (index n * C + c), whether the channel takes part in that image. */
type Active = Uint8Array;
const allActive = (N: number, C: number): Active => new Uint8Array(N * C).fill(1);

/** Per channel: no image (0.15), every image (0.15), or each image with probability 1/2. */
function randomActive(rng: TestRng, N: number, C: number): Active {
  const active = new Uint8Array(N * C);
  for (let c = 0; c < C; c++) {
    const r = rng.next();
    for (let n = 0; n < N; n++) active[n * C + c] = r < 0.15 ? 0 : r < 0.3 ? 1 : rng.next() < 0.5 ? 1 : 0;
  }
  return active;
}

/** v with the planes of inactive (image, channel) pairs set to zero, as ops/sparse.ts gives x and dy. */
function maskPlanes(v: Float32Array, active: Active, HW: number): Float32Array {
  return v.map((e, i) => (active[Math.floor(i / HW)] === 1 ? e : 0));
}

/**
 * Float64 statistics of each channel over its active images: count = active images * HW, mean, and
 * invstd = 1 / sqrt(biased variance + EPS); a channel with count 0 gets mean 0 and invstd 1.
 */
function channelStats(xv: ArrayLike<number>, N: number, C: number, HW: number, active: Active): { mean: Float64Array; invstd: Float64Array; counts: Float64Array } {
  const mean = new Float64Array(C), invstd = new Float64Array(C).fill(1), counts = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    const planes = Array.from({ length: N }, (_, n) => n * C + c).filter((p) => active[p] === 1);
    const count = planes.length * HW;
    counts[c] = count;
    if (count === 0) continue;
    let s = 0;
    for (const p of planes) for (let i = 0; i < HW; i++) s += xv[p * HW + i]!;
    const m = s / count;
    let ss = 0;
    for (const p of planes) for (let i = 0; i < HW; i++) ss += (xv[p * HW + i]! - m) ** 2;
    mean[c] = m;
    invstd[c] = 1 / Math.sqrt(ss / count + EPS);
  }
  return { mean, invstd, counts };
}

/** A training-mode backward called with the masked kernel's arguments (the plain kernel ignores counts). */
type Backward = (k: Kernels) => Kernels['batchNormBackwardMasked'];
const plainBackward: Backward = (k) => (x, dy, dx, N, C, HW, c0, c1, mean, invstd, gamma, _counts, dgamma, dbeta) =>
  k.batchNormBackward(x, dy, dx, N, C, HW, c0, c1, mean, invstd, gamma, dgamma, dbeta);
const maskedBackward: Backward = (k) => (...args) => k.batchNormBackwardMasked(...args);

/**
 * The backward on the reference and the WASM builds over random shapes and channel ranges, with x and dy
 * zero at inactive planes and the statistics over the active images; checks what each call may write.
 */
function conformBackward(name: string, backward: Backward, s: ShapeAndRange, active: Active, sx: number, sy: number, rng: TestRng): void {
  h.arena.reset();
  const { N, C, HW, c0, c1 } = s;
  const total = N * C * HW;
  const x = buf(total, sx), dy = buf(total, sy), dx = buf(total, sx);
  const mean = buf(C, 1), invstd = buf(C, 2), gamma = buf(C, 3), counts = buf(C), dgamma = buf(C, 1), dbeta = buf(C, 2);
  const xv = maskPlanes(channelInput(rng, N, C, HW), active, HW);
  const st = channelStats(xv, N, C, HW, active);
  const gv = uniform(rng, C, -1.5, 1.5);
  const dyv = maskPlanes(uniform(rng, total), active, HW);
  const label = `${name} ${describe(s)} counts=[${st.counts.join(',')}]`;
  conform(label, [[x, xv], [dy, dyv], [mean, st.mean], [invstd, st.invstd], [gamma, gv], [counts, st.counts]], [dx, dgamma, dbeta],
    (k) => backward(k)(x.ptr, dy.ptr, dx.ptr, N, C, HW, c0, c1, mean.ptr, invstd.ptr, gamma.ptr, counts.ptr, dgamma.ptr, dbeta.ptr),
    always(close), 1);
  assertChannelsOnly(dx, N, C, HW, c0, c1, `${label} reference dx`);
  assertChannelsOnly(dgamma, 1, C, 1, c0, c1, `${label} reference dgamma`);
  assertChannelsOnly(dbeta, 1, C, 1, c0, c1, `${label} reference dbeta`);
  assert.ok(read(dx).every((v) => v === SENTINEL || Number.isFinite(v)), `${label}: dx not finite`);
}

test('batchNormBackward: random shapes and channel ranges, constant channels', () => {
  fc.assert(fc.property(shapeAndRange, shift, shift, seed, (s, sx, sy, sd) => {
    conformBackward('batchNormBackward', plainBackward, s, allActive(s.N, s.C), sx, sy, new TestRng(sd));
  }), { seed: 42, numRuns: 100 });
});

test('batchNormBackwardMasked: random shapes and channel ranges, dy zero on a random subset of images per channel, counts 0 to N * HW', () => {
  fc.assert(fc.property(shapeAndRange, shift, shift, seed, (s, sx, sy, sd) => {
    const rng = new TestRng(sd);
    conformBackward('batchNormBackwardMasked', maskedBackward, s, randomActive(rng, s.N, s.C), sx, sy, rng);
  }), { seed: 42, numRuns: 100 });
});

test('batchNormBackwardMasked with every count N * HW reproduces batchNormBackward bit for bit', () => {
  fc.assert(fc.property(shapeAndRange, seed, (s, sd) => {
    h.arena.reset();
    const rng = new TestRng(sd);
    const { N, C, HW, c0, c1 } = s;
    const total = N * C * HW;
    const x = buf(total), dy = buf(total), mean = buf(C), invstd = buf(C), gamma = buf(C), counts = buf(C);
    const outs = [0, 1].map(() => ({ dx: buf(total, 1), dgamma: buf(C, 2), dbeta: buf(C, 3) }));
    const xv = channelInput(rng, N, C, HW);
    const st = channelStats(xv, N, C, HW, allActive(N, C));
    const inputs: ReadonlyArray<readonly [Buf, ArrayLike<number>]> =
      [[x, xv], [dy, uniform(rng, total)], [mean, st.mean], [invstd, st.invstd], [gamma, uniform(rng, C, -1.5, 1.5)], [counts, st.counts]];
    for (const { name, k } of everyKernelSet) {
      for (const [b, data] of inputs) prefill(b, data);
      const results = [plainBackward, maskedBackward].map((backward, i) => {
        const o = outs[i]!;
        for (const b of [o.dx, o.dgamma, o.dbeta]) prefill(b);
        backward(k)(x.ptr, dy.ptr, o.dx.ptr, N, C, HW, c0, c1, mean.ptr, invstd.ptr, gamma.ptr, counts.ptr, o.dgamma.ptr, o.dbeta.ptr);
        return [o.dx, o.dgamma, o.dbeta].map(read);
      });
      assert.deepStrictEqual(results[1], results[0], `${name} ${describe(s)}`);
    }
  }), { seed: 42, numRuns: 50 });
});

test('batchNormBackwardMasked: a channel with count 0 gets dx = +0 and dgamma = dbeta = +0, whatever its statistics, gamma and x', () => {
  h.arena.reset();
  const [N, C, HW] = [3, 3, 7];
  const rng = new TestRng(5);
  const active = Uint8Array.from([0, 1, 0, 0, 0, 0, 0, 1, 0]);
  const x = buf(N * C * HW), dy = buf(N * C * HW), dx = buf(N * C * HW);
  const mean = buf(C), invstd = buf(C), gamma = buf(C), counts = buf(C), dgamma = buf(C), dbeta = buf(C);
  const xv = uniform(rng, N * C * HW, -3, 3);
  const st = channelStats(xv, N, C, HW, active);
  for (const { name, k } of everyKernelSet) {
    prefill(x, xv);
    prefill(dy, maskPlanes(uniform(rng, N * C * HW), active, HW));
    prefill(mean, [NaN, st.mean[1]!, Infinity]);
    prefill(invstd, [NaN, st.invstd[1]!, -Infinity]);
    prefill(gamma, [NaN, 1.5, 1e30]);
    prefill(counts, st.counts);
    for (const b of [dx, dgamma, dbeta]) prefill(b);
    maskedBackward(k)(x.ptr, dy.ptr, dx.ptr, N, C, HW, 0, C, mean.ptr, invstd.ptr, gamma.ptr, counts.ptr, dgamma.ptr, dbeta.ptr);
    const dxv = read(dx);
    for (let i = 0; i < dxv.length; i++) {
      const c = Math.floor(i / HW) % C;
      if (c === 1) assert.ok(Number.isFinite(dxv[i]), `${name}: dx of the active channel not finite at ${i}`);
      else assert.ok(Object.is(dxv[i], 0), `${name}: dx[${i}] of a channel with count 0 is ${dxv[i]}`);
    }
    for (const [label, b] of [['dgamma', dgamma], ['dbeta', dbeta]] as const) {
      const v = read(b);
      assert.ok(Object.is(v[0], 0) && Object.is(v[2], 0) && Number.isFinite(v[1]), `${name}: ${label} = [${v.join(', ')}]`);
    }
  }
});

/**
 * The masked training-mode forward in float64: channel c is normalised over the images where it is active,
 * y = gamma * (x - mean) * invstd + beta there and 0 at inactive planes; objective L = sum of w * y. The reference
 * `backward` (dy = w, zero at inactive planes) gives dx, dgamma and dbeta to compare with central differences of L.
 */
function batchNormGradientCheck(N: number, C: number, HW: number, s: number, active: Active, backward: Backward, name: string): void {
  h.arena.reset();
  const rng = new TestRng(s);
  const total = N * C * HW;
  const isActive = (i: number): boolean => active[Math.floor(i / HW)] === 1;
  const xv = maskPlanes(uniform(rng, total, -2, 2), active, HW), gv = uniform(rng, C, 0.5, 1.5), bv = uniform(rng, C);
  const w = maskPlanes(uniform(rng, total), active, HW);
  const objective = (xs: Float32Array, gs: Float32Array, bs: Float32Array): number => {
    const st = channelStats(xs, N, C, HW, active);
    const y = Float64Array.from(xs, (v, i) => {
      const c = Math.floor(i / HW) % C;
      return isActive(i) ? gs[c]! * (v - st.mean[c]!) * st.invstd[c]! + bs[c]! : 0;
    });
    return weightedSum(y, w);
  };
  const x = buf(total), dy = buf(total), dx = buf(total);
  const mean = buf(C), invstd = buf(C), gamma = buf(C), counts = buf(C), dgamma = buf(C), dbeta = buf(C);
  const st = channelStats(xv, N, C, HW, active);
  for (const [b, data] of [[x, xv], [dy, w], [mean, st.mean], [invstd, st.invstd], [gamma, gv], [counts, st.counts]] as const) prefill(b, data);
  backward(h.reference)(x.ptr, dy.ptr, dx.ptr, N, C, HW, 0, C, mean.ptr, invstd.ptr, gamma.ptr, counts.ptr, dgamma.ptr, dbeta.ptr);
  const eps = 1e-3;
  const label = `x=[${N},${C},${HW}] active=${active.join('')}`;
  // Inactive planes are no input of the masked forward; what dx holds there, callers drop.
  const onActive = (v: ArrayLike<number>): number[] => Array.from(v).filter((_, i) => isActive(i));
  const ndx = Float64Array.from(xv, (_, i) => (isActive(i) ? centralDifference(xv, i, eps, (v) => objective(v, gv, bv)) : 0));
  assertClose(onActive(read(dx)), onActive(ndx), close, `${name} dx ${label} against central differences`);
  assertClose(read(dgamma), Float64Array.from(gv, (_, i) => centralDifference(gv, i, eps, (v) => objective(xv, v, bv))), close, `${name} dgamma ${label} against central differences`);
  assertClose(read(dbeta), Float64Array.from(bv, (_, i) => centralDifference(bv, i, eps, (v) => objective(xv, gv, v))), close, `${name} dbeta ${label} against central differences`);
}

test('reference batchNormBackward matches central differences of the training-mode forward', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 6 }), seed,
    (N, C, HW, s) => {
      fc.pre(N * HW >= 3);
      batchNormGradientCheck(N, C, HW, s, allActive(N, C), plainBackward, 'batchNormBackward');
    }), { seed: 42, numRuns: 20 });
});

test('reference batchNormBackwardMasked matches central differences of the forward normalising each channel over its active images', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 3, max: 6 }), seed,
    (N, C, HW, s) => batchNormGradientCheck(N, C, HW, s, randomActive(new TestRng(s ^ 0x5bd1e995), N, C), maskedBackward, 'batchNormBackwardMasked')),
  { seed: 42, numRuns: 20 });
});

test('the gradient check rejects the eval-mode backward (dx = gamma * invstd * dy) in training mode', () => {
  const evalMode: Backward = (k) => (x, dy, dx, N, C, HW, c0, c1, mean, invstd, gamma, counts, dgamma, dbeta) => {
    plainBackward(k)(x, dy, dx, N, C, HW, c0, c1, mean, invstd, gamma, counts, dgamma, dbeta);
    const v = h.mem.f32;
    for (let i = 0; i < N * C * HW; i++) {
      const c = Math.floor(i / HW) % C;
      v[(dx >>> 2) + i] = v[(gamma >>> 2) + c]! * v[(invstd >>> 2) + c]! * v[(dy >>> 2) + i]!;
    }
  };
  assert.throws(() => batchNormGradientCheck(2, 2, 4, 11, allActive(2, 2), evalMode, 'eval-mode'), /eval-mode dx .* against central differences/);
  batchNormGradientCheck(2, 2, 4, 11, allActive(2, 2), plainBackward, 'batchNormBackward');
});

test('the masked gradient check rejects batchNormBackward, which divides by N * HW, when some images are inactive', () => {
  const active = Uint8Array.from([1, 1, 0, 1, 1, 0]);
  assert.throws(() => batchNormGradientCheck(3, 2, 4, 11, active, plainBackward, 'batchNormBackward'), /batchNormBackward dx .* against central differences/);
  batchNormGradientCheck(3, 2, 4, 11, active, maskedBackward, 'batchNormBackwardMasked');
});
