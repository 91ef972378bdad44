import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Kernels } from '../../src/backend/kernels.js';
import { h, everyKernelSet, buf, prefill, read, uniform, conform, exactUnlessFused, seed, shift } from '../util/conformance.js';
import { TestRng } from '../util/rng.js';
import { assertClose, close } from '../util/tolerance.js';

const len = fc.oneof(fc.integer({ min: 0, max: 37 }), fc.integer({ min: 38, max: 500 }));

const sgdOptions = fc.record({
  lr: fc.constantFrom(0.1, 0.01), momentum: fc.constantFrom(0, 0.9), dampening: fc.constantFrom(0, 0.1),
  weightDecay: fc.constantFrom(0, 1e-2), nesterov: fc.constantFrom(0, 1), firstStep: fc.constantFrom(0, 1),
});
const adamOptions = fc.record({
  lr: fc.constantFrom(1e-3, 0.1), beta1: fc.constantFrom(0.9, 0.5), beta2: fc.constantFrom(0.999, 0.9), eps: fc.constantFrom(1e-8, 1e-6),
  weightDecay: fc.constantFrom(0, 1e-2), decoupled: fc.constantFrom(0, 1), t: fc.integer({ min: 1, max: 100 }),
});

test('sgdStep: momentum, dampening, Nesterov, weight decay, first step; n in 0..500 at unaligned offsets', () => {
  fc.assert(fc.property(len, shift, shift, seed, sgdOptions, (n, sa, sb, s, o) => {
    h.arena.reset();
    const rng = new TestRng(s);
    const p = buf(n, sa), g = buf(n, sb), b = buf(n, sa);
    const noBuffer = o.momentum === 0 && s % 2 === 0;
    const ins = [[p, uniform(rng, n)], [g, uniform(rng, n)], [b, uniform(rng, n)]] as const;
    conform(`sgdStep n=${n} ${JSON.stringify(o)} buf=${noBuffer ? 0 : 'given'}`, ins, [],
      (k) => k.sgdStep(p.ptr, g.ptr, noBuffer ? 0 : b.ptr, n, o.lr, o.momentum, o.dampening, o.weightDecay, o.nesterov, o.firstStep),
      exactUnlessFused);
  }), { seed: 42, numRuns: 100 });
});

test('adamStep: Adam and AdamW, with and without weight decay; n in 0..500 at unaligned offsets', () => {
  fc.assert(fc.property(len, shift, shift, seed, adamOptions, (n, sa, sb, s, o) => {
    h.arena.reset();
    const rng = new TestRng(s);
    const p = buf(n, sa), g = buf(n, sb), m = buf(n, sb), v = buf(n, sa);
    const ins = [[p, uniform(rng, n)], [g, uniform(rng, n)], [m, uniform(rng, n, -0.1, 0.1)], [v, uniform(rng, n, 0, 0.01)]] as const;
    const bc1 = 1 - o.beta1 ** o.t, bc2 = 1 - o.beta2 ** o.t;
    conform(`adamStep n=${n} ${JSON.stringify(o)}`, ins, [],
      (k) => k.adamStep(p.ptr, g.ptr, m.ptr, v.ptr, n, o.lr, o.beta1, o.beta2, o.eps, o.weightDecay, o.decoupled, bc1, bc2),
      exactUnlessFused);
  }), { seed: 42, numRuns: 100 });
});

/** One parameter through `steps`, read back after each step. */
function trajectory(k: Kernels, p0: number, grads: readonly number[], step: (k: Kernels, p: number, g: number, t: number) => void): number[] {
  h.arena.reset();
  const p = buf(1, 1), g = buf(1, 2);
  prefill(p, [p0]);
  return grads.map((gv, t) => {
    prefill(g, [gv]);
    step(k, p.ptr, g.ptr, t + 1);
    return read(p)[0]!;
  });
}

test('sgdStep by hand: p = 1, g = 0.5, lr = 0.1, momentum 0.9', () => {
  for (const { name, k } of everyKernelSet) {
    const b = buf(1);
    const plain = (nesterov: number) => (kk: Kernels, p: number, g: number, t: number) => kk.sgdStep(p, g, b.ptr, 1, 0.1, 0.9, 0, 0, nesterov, t === 1 ? 1 : 0);
    // buf = 0.5, p = 1 - 0.05; then buf = 0.9 * 0.5 + 0.5 = 0.95, p = 0.95 - 0.095.
    assertClose(trajectory(k, 1, [0.5, 0.5], plain(0)), [0.95, 0.855], close, `sgd momentum ${name}`);
    // Nesterov: d = 0.5 + 0.9 * 0.5 = 0.95, p = 1 - 0.095; then buf = 0.95, d = 0.5 + 0.855 = 1.355, p = 0.905 - 0.1355.
    assertClose(trajectory(k, 1, [0.5, 0.5], plain(1)), [0.905, 0.7695], close, `sgd nesterov ${name}`);
    // Weight decay 0.1, no momentum: d = 0.5 + 0.1 * 1 = 0.6, p = 1 - 0.06.
    assertClose(trajectory(k, 1, [0.5], (kk, p, g) => kk.sgdStep(p, g, 0, 1, 0.1, 0, 0, 0.1, 0, 0)), [0.94], close, `sgd weight decay ${name}`);
    // Dampening 0.5: buf = 0.5 first, then 0.9 * 0.5 + 0.5 * 0.5 = 0.7; p = 0.95 - 0.07.
    assertClose(trajectory(k, 1, [0.5, 0.5], (kk, p, g, t) => kk.sgdStep(p, g, b.ptr, 1, 0.1, 0.9, 0.5, 0, 0, t === 1 ? 1 : 0)), [0.95, 0.88], close, `sgd dampening ${name}`);
  }
});

test('adamStep by hand: the first step moves p by lr against the gradient sign; AdamW also shrinks p by lr * weightDecay', () => {
  for (const { name, k } of everyKernelSet) {
    const m = buf(1), v = buf(1);
    const adam = (wd: number, decoupled: number) => (kk: Kernels, p: number, g: number, t: number) => {
      if (t === 1) {
        prefill(m, [0]);
        prefill(v, [0]);
      }
      kk.adamStep(p, g, m.ptr, v.ptr, 1, 0.1, 0.9, 0.999, 1e-8, wd, decoupled, 1 - 0.9 ** t, 1 - 0.999 ** t);
    };
    // m = 0.05, v = 0.00025; m / bc1 = 0.5, sqrt(v / bc2) = 0.5: p = 1 - 0.1 * 0.5 / (0.5 + 1e-8).
    assertClose(trajectory(k, 1, [0.5], adam(0, 0)), [1 - 0.1 * 0.5 / (0.5 + 1e-8)], close, `adam ${name}`);
    // AdamW, weight decay 0.1: p = 1 * (1 - 0.01) - 0.1.
    assertClose(trajectory(k, 1, [-0.5], adam(0.1, 1)), [0.99 + 0.1], close, `adamw ${name}`);
    // Adam with L2: g = -0.5 + 0.1 = -0.4, still one lr step.
    assertClose(trajectory(k, 1, [-0.5], adam(0.1, 0)), [1.1], close, `adam l2 ${name}`);
  }
});

/** PyTorch's update formulas in float64, for comparison over several steps. */
function sgdFormula(p: number[], grads: number[][], o: { lr: number; momentum: number; dampening: number; weightDecay: number; nesterov: number }): number[] {
  const buf = p.map(() => 0);
  grads.forEach((g, t) => {
    p.forEach((pv, i) => {
      let d = g[i]! + o.weightDecay * pv;
      if (o.momentum !== 0) {
        buf[i] = t === 0 ? d : o.momentum * buf[i]! + (1 - o.dampening) * d;
        d = o.nesterov ? d + o.momentum * buf[i]! : buf[i]!;
      }
      p[i] = pv - o.lr * d;
    });
  });
  return p;
}
function adamFormula(p: number[], grads: number[][], o: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; decoupled: number }): number[] {
  const m = p.map(() => 0), v = p.map(() => 0);
  grads.forEach((g, step) => {
    const t = step + 1;
    p.forEach((pv, i) => {
      let gi = g[i]!;
      if (o.decoupled) pv *= 1 - o.lr * o.weightDecay;
      else gi += o.weightDecay * pv;
      m[i] = o.beta1 * m[i]! + (1 - o.beta1) * gi;
      v[i] = o.beta2 * v[i]! + (1 - o.beta2) * gi * gi;
      const mhat = m[i]! / (1 - o.beta1 ** t), vhat = v[i]! / (1 - o.beta2 ** t);
      p[i] = pv - (o.lr * mhat) / (Math.sqrt(vhat) + o.eps);
    });
  });
  return p;
}

test('five steps of every kernel set against PyTorch update formulas in float64', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 13 }), seed, sgdOptions, adamOptions, (n, s, so, ao) => {
    const rng = new TestRng(s);
    const p0 = Array.from({ length: n }, () => rng.uniform(-1, 1));
    const grads = Array.from({ length: 5 }, () => Array.from({ length: n }, () => rng.uniform(-1, 1)));
    const sgdExpected = sgdFormula(p0.slice(), grads, so);
    const adamExpected = adamFormula(p0.slice(), grads, ao);
    for (const { name, k } of everyKernelSet) {
      h.arena.reset();
      const p = buf(n, 1), g = buf(n, 2), b = buf(n, 3), m = buf(n), v = buf(n, 1);
      prefill(p, p0);
      grads.forEach((gv, t) => {
        prefill(g, gv);
        k.sgdStep(p.ptr, g.ptr, b.ptr, n, so.lr, so.momentum, so.dampening, so.weightDecay, so.nesterov, t === 0 ? 1 : 0);
      });
      assertClose(read(p), sgdExpected, close, `sgd ${name} ${JSON.stringify(so)}`);
      prefill(p, p0);
      prefill(m, new Float32Array(n));
      prefill(v, new Float32Array(n));
      grads.forEach((gv, t) => {
        prefill(g, gv);
        k.adamStep(p.ptr, g.ptr, m.ptr, v.ptr, n, ao.lr, ao.beta1, ao.beta2, ao.eps, ao.weightDecay, ao.decoupled, 1 - ao.beta1 ** (t + 1), 1 - ao.beta2 ** (t + 1));
      });
      assertClose(read(p), adamExpected, close, `adam ${name} ${JSON.stringify(ao)}`);
    }
  }), { seed: 42, numRuns: 40 });
});

test('sgdStep with momentum 0 and no buffer leaves memory near address 0 alone', () => {
  h.arena.reset();
  const p = buf(9, 1), g = buf(9, 2);
  const low = h.mem.f32.slice(0, 64);
  for (const { name, k } of everyKernelSet) {
    prefill(p, new Float32Array(9).fill(1));
    prefill(g, new Float32Array(9).fill(2));
    k.sgdStep(p.ptr, g.ptr, 0, 9, 0.25, 0, 0, 0, 0, 1);
    assert.deepEqual(Array.from(read(p)), new Array(9).fill(0.5), `sgd ${name}`);
    assert.deepEqual(h.mem.f32.slice(0, 64), low, `sgd ${name} wrote near address 0`);
  }
});
