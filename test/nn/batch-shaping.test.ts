import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine, engine, setEngine } from '../../src/autograd/engine.js';
import { manualSeed } from '../../src/nn/layers.js';
import { addLKAMs, batchShapingLoss, gates } from '../../src/nn/lkam.js';
import { fmnistVgg5 } from '../../src/nn/zoo.js';
import * as ops from '../../src/ops/index.js';
import { gradCheck } from '../util/gradcheck.js';
import { TestRng } from '../util/rng.js';

const close = (got: number, want: number, tol: number, what: string): void => assert.ok(Math.abs(got - want) <= tol, `${what}: ${got}, expected ${want}`);

describe('Beta prior: special functions', () => {
  test('logGamma at known points', () => {
    close(ops.logGamma(5), Math.log(24), 1e-12, 'log Γ(5)');
    close(ops.logGamma(0.5), 0.5 * Math.log(Math.PI), 1e-12, 'log Γ(1/2)');
    close(ops.logGamma(0.1), Math.log(9.513507698668732), 1e-12, 'log Γ(0.1)');
    assert.throws(() => ops.logGamma(0), /logGamma: x 0 should be > 0/);
  });

  test('betaCdf: closed forms, symmetry, and the density as its derivative', () => {
    for (const x of [0, 0.1, 0.37, 0.5, 0.93, 1]) close(ops.betaCdf(x, 1, 1), x, 1e-12, `uniform at ${x}`);
    // Beta(2, 2): F(x) = 3x² − 2x³.
    for (const x of [0.05, 0.3, 0.5, 0.81]) close(ops.betaCdf(x, 2, 2), 3 * x * x - 2 * x ** 3, 1e-12, `Beta(2, 2) at ${x}`);
    // Beta(1/2, 1/2) (arcsine): F(x) = 2/π asin(√x).
    for (const x of [0.01, 0.2, 0.5, 0.99]) close(ops.betaCdf(x, 0.5, 0.5), (2 / Math.PI) * Math.asin(Math.sqrt(x)), 1e-10, `arcsine at ${x}`);
    for (const x of [0.02, 0.3, 0.6, 0.97]) {
      close(ops.betaCdf(x, 0.6, 0.4), 1 - ops.betaCdf(1 - x, 0.4, 0.6), 1e-12, `symmetry at ${x}`);
      const h = 1e-6;
      close((ops.betaCdf(x + h, 0.6, 0.4) - ops.betaCdf(x - h, 0.6, 0.4)) / (2 * h), ops.betaPdf(x, 0.6, 0.4), 1e-5 * ops.betaPdf(x, 0.6, 0.4), `density at ${x}`);
    }
    assert.throws(() => ops.betaCdf(0.5, 0, 1), /betaCdf: Beta shape parameters 0, 1 should both be finite and > 0/);
  });
});

describe('batch shaping', () => {
  before(async () => {
    setEngine(await Engine.create({ backend: 'wasm', threads: 1 }));
  });

  test('value by hand, independent of the order of the batch', () => {
    const e = engine();
    // Beta(1, 1): F(x) = x. Column 0 sorted 0.2, 0.9 against quantiles 1/3, 2/3; column 1 sorted 0.4, 0.5.
    const want = ((0.2 - 1 / 3) ** 2 + (0.9 - 2 / 3) ** 2 + (0.4 - 1 / 3) ** 2 + (0.5 - 2 / 3) ** 2) / 4;
    close(ops.batchShaping(e.tensor(Float32Array.of(0.9, 0.4, 0.2, 0.5), [2, 2]), 1, 1).item(), want, 1e-7, 'loss');
    close(ops.batchShaping(e.tensor(Float32Array.of(0.2, 0.5, 0.9, 0.4), [2, 2]), 1, 1).item(), want, 1e-7, 'rows swapped');
    assert.throws(() => ops.batchShaping(e.tensor(Float32Array.of(0.2, Number.NaN), [2, 1]), 1, 1), /batchShaping: switches tensor \[2,1\] float32 has NaN at \[1, 0\]/);
    e.endStep();
  });

  test('gradient matches finite differences (U-shaped prior, values inside (0, 1))', () => {
    const r = new TestRng(31);
    const data = Float32Array.from({ length: 24 }, () => r.uniform(0.05, 0.95));
    const res = gradCheck(([x]) => ops.batchShaping(x!, 0.6, 0.4), [{ data, shape: [8, 3] }], { eps: 1e-4, rtol: 5e-2, atol: 1e-3 });
    assert.ok(res.ok, `batchShaping gradient mismatch ${JSON.stringify(res.worst)}`);
  });

  test('descending it alone turns switches that agree on every input into open-for-some, shut-for-others', () => {
    const e = engine();
    const r = new TestRng(8);
    const N = 32;
    const M = 4;
    // Every switch near 0.5 for every image: no per-input selection at all.
    const pre = Float32Array.from({ length: N * M }, () => 0.5 + r.uniform(-0.02, 0.02));
    const spread = (v: Float32Array): number => {
      let far = 0;
      for (const s of v) if (s < 0.1 || s > 0.9) far++;
      return far / v.length;
    };
    const first = spread(pre);
    for (let step = 0; step < 300; step++) {
      const x = e.tensor(pre, [N, M]);
      x.requiresGrad = true;
      const loss = ops.batchShaping(ops.clamp(x, 0, 1), 0.6, 0.4);
      e.backward(loss);
      const g = (x.grad as NonNullable<typeof x.grad>).f32();
      for (let i = 0; i < pre.length; i++) pre[i] = (pre[i] as number) - 100 * (g[i] as number);
      e.endStep();
    }
    const last = spread(Float32Array.from(pre, (v) => Math.min(1, Math.max(0, v))));
    assert.equal(first, 0);
    assert.ok(last > 0.6, `fraction of switch values below 0.1 or above 0.9: ${first} → ${last}`);
  });

  test('batchShapingLoss averages the gates of the last forward', () => {
    manualSeed(2);
    const model = addLKAMs(fmnistVgg5());
    const e = engine();
    assert.equal(batchShapingLoss(model, 1), null, 'no forward yet');
    const r = new TestRng(3);
    model.forward(e.tensor(Float32Array.from({ length: 4 * 784 }, () => r.uniform(-1, 1)), [4, 1, 28, 28]));
    const gs = gates(model);
    let want = 0;
    for (const g of gs) want += ops.batchShaping(g.lkam.lastSwitches!, 0.6, 0.4).item();
    close(batchShapingLoss(model, 2)!.item(), (2 * want) / gs.length, 1e-6, 'mean over gates');
    e.endStep();
  });
});
