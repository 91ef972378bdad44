import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine, setEngine } from '../../src/autograd/engine.js';
import { DataLoader, loadFashionMnist, SubsetDataset } from '../../src/data/index.js';
import { manualSeed } from '../../src/nn/layers.js';
import { addLKAMs, gates, setGains, type GateReading } from '../../src/nn/lkam.js';
import type { Module } from '../../src/nn/module.js';
import { fmnistVgg5 } from '../../src/nn/zoo.js';
import { Adam } from '../../src/optim/index.js';
import { BudgetController } from '../../src/train/budget.js';
import { evaluate, fit, type StepResult } from '../../src/train/fit.js';
import { sparsityTerm } from '../../src/train/objective.js';
import { measureParsimony } from '../../src/train/parsimony.js';

const normalize = { mean: [0.286], std: [0.353] };
const data = loadFashionMnist({ subset: 'builtin' });
const train = new SubsetDataset(data.train, Array.from({ length: 1536 }, (_, i) => i * 3));
const test500 = new SubsetDataset(data.test, Array.from({ length: 500 }, (_, i) => i * 2));

async function run(model: Module, epochs: number, objective?: (readings: readonly GateReading[]) => ReturnType<typeof sparsityTerm>): Promise<StepResult[]> {
  const loader = new DataLoader(train, { batchSize: 64, seed: 1, normalize, workers: 0 });
  const steps: StepResult[] = [];
  const opt = new Adam(model.parameters(), { lr: 2e-3 });
  await fit(model, {
    epochs, optimizer: opt, trainBatches: (e) => loader.epoch(e),
    ...(objective === undefined ? {} : { objective }),
    onStep: (_s, r) => steps.push(r),
  });
  return steps;
}
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const testBatches = () => new DataLoader(test500, { batchSize: 250, shuffle: false, normalize, workers: 0 }).epoch(0);

describe('training on the built-in Fashion-MNIST subset', () => {
  before(async () => {
    setEngine(await Engine.create({ backend: 'wasm', threads: 2 }));
  });

  test('fmnist-vgg5: loss falls and test accuracy rises', async () => {
    manualSeed(3);
    const model = fmnistVgg5();
    const before = evaluate(model, testBatches());
    const steps = await run(model, 2);
    const after = evaluate(model, testBatches());
    const first = mean(steps.slice(0, 5).map((s) => s.loss));
    const last = mean(steps.slice(-5).map((s) => s.loss));
    assert.ok(last < 0.6 * first, `loss ${first.toFixed(3)} → ${last.toFixed(3)} should fall`);
    assert.ok(after.accuracy > before.accuracy + 0.3 && after.accuracy > 0.6, `test accuracy ${before.accuracy} → ${after.accuracy}`);
  });

  test('with LKAMs: switches get sparser and multiply-adds fall while accuracy rises', async () => {
    manualSeed(4);
    const model = addLKAMs(fmnistVgg5());
    setGains(model, 'macs', [1, 1, 28, 28]);
    const before = measureParsimony(model, testBatches(), 10);
    assert.ok(before.layers.every((l) => l.meanOn === 1), 'every kernel starts on');
    const steps = await run(model, 3, (readings) => sparsityTerm(readings, 4));
    const after = measureParsimony(model, testBatches(), 10);
    const meanOn = (r: typeof after) => mean(r.layers.map((l) => l.meanOn));
    assert.ok(meanOn(after) < 0.9, `kernels on: ${meanOn(before)} → ${meanOn(after)}`);
    assert.ok(after.macs.mean < 0.9 * before.macs.mean, `MACs ${before.macs.mean} → ${after.macs.mean}`);
    assert.ok(after.accuracy > before.accuracy + 0.25, `accuracy ${before.accuracy} → ${after.accuracy}`);
    // The training steps themselves did fewer multiply-adds as the switches closed.
    assert.ok(mean(steps.slice(-5).map((s) => s.macs)) < mean(steps.slice(0, 5).map((s) => s.macs)));
    assert.equal(gates(model).length, 4);
  });
});

describe('the compute-budget controller', () => {
  test('raises the sparsity weight while over budget and lowers it while under', () => {
    const c = new BudgetController({ target: 0.4, initialWeight: 1, rate: 0.1 });
    for (let i = 0; i < 20; i++) c.update(0.9e6, 1e6);
    assert.ok(c.weight > 1.5, `weight ${c.weight} after steps over budget`);
    const high = c.weight;
    for (let i = 0; i < 60; i++) c.update(0.1e6, 1e6);
    assert.ok(c.weight < high, `weight ${c.weight} after steps under budget`);
    assert.throws(() => new BudgetController({ target: 1.5 }), /compute budget 1.5 should be a fraction in \(0, 1\]/);
  });

  test('with a ramp, the target falls from dense to the budget and the weight tracks it without winding up', () => {
    const c = new BudgetController({ target: 0.3, initialWeight: 0.1, rate: 0.05, rampSteps: 100 });
    assert.equal(c.targetAt(0), 1);
    assert.ok(Math.abs(c.targetAt(50) - 0.65) < 1e-12);
    assert.equal(c.targetAt(100), 0.3);
    assert.equal(c.targetAt(500), 0.3);
    // A network whose MACs follow the target exactly: the weight barely moves.
    for (let i = 0; i < 100; i++) c.update(c.targetAt(c.stepCount) * 1e6, 1e6);
    assert.ok(c.weight < 0.2, `weight ${c.weight} while on target`);
    // Still dense while the target falls: the weight rises, but far less than without a ramp.
    const ramped = new BudgetController({ target: 0.3, initialWeight: 0.1, rate: 0.05, rampSteps: 100 });
    const flat = new BudgetController({ target: 0.3, initialWeight: 0.1, rate: 0.05 });
    for (let i = 0; i < 30; i++) {
      ramped.update(1e6, 1e6);
      flat.update(1e6, 1e6);
    }
    assert.ok(ramped.weight > 0.1 && ramped.weight < flat.weight / 10, `ramped ${ramped.weight}, flat ${flat.weight}`);
  });
});
