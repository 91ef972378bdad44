import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine, engine, setEngine } from '../../src/autograd/engine.js';
import { DataLoader, loadFashionMnist } from '../../src/data/index.js';
import { manualSeed } from '../../src/nn/layers.js';
import { addLKAMs, gates } from '../../src/nn/lkam.js';
import type { Module } from '../../src/nn/module.js';
import { fmnistVgg5 } from '../../src/nn/zoo.js';
import * as ops from '../../src/ops/index.js';
import { SGD } from '../../src/optim/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { batchTensors, trainStep, type Batch } from '../../src/train/fit.js';
import { TestRng } from '../util/rng.js';

const N = 6;
function batch(): Batch {
  const loader = new DataLoader(loadFashionMnist({ subset: 'builtin' }).train, { batchSize: N, shuffle: false, normalize: { mean: [0.286], std: [0.353] }, workers: 0 });
  for (const b of loader.epoch(0)) return b;
  throw new Error('no batch');
}

function twin(): Module {
  manualSeed(11);
  // Switches inside the clamp's linear range: finite differences at its kink (an exactly open 1) halve the slope.
  return addLKAMs(fmnistVgg5(), { initOpen: 0.9 });
}

const snapshot = (m: Module): Map<string, Float32Array> => new Map(m.stateDict().map(([n, t]) => [n, t.f32().slice()]));

describe('in-place distillation (trainStep with distill)', () => {
  before(async () => {
    setEngine(await Engine.create({ backend: 'wasm', threads: 1 }));
  });

  test('the open pass moves no running statistics, leaves the gates closed again, and reports the gated network', () => {
    const b = batch();
    const plain = twin();
    const distilled = twin();
    const rPlain = trainStep(plain, new SGD(plain.parameters(), { lr: 0.1 }), b);
    const rDistilled = trainStep(distilled, new SGD(distilled.parameters(), { lr: 0.1 }), b, undefined, 1);
    assert.equal(rDistilled.loss, rPlain.loss, 'the reported loss is the gated network\'s cross-entropy');
    assert.equal(rDistilled.macs, rPlain.macs);
    assert.equal(rDistilled.correct, rPlain.correct);
    for (const [name, t] of distilled.namedBuffers()) assert.deepEqual(t.f32(), plain.namedBuffers().find(([n]) => n === name)?.[1].f32(), `buffer ${name}`);
    assert.ok(gates(distilled).every((g) => !g.open), 'gates left open');
    const moved = distilled.namedParameters().filter(([name, t]) => {
      const other = plain.namedParameters().find(([n]) => n === name)?.[1].f32();
      return t.f32().some((v, i) => v !== other?.[i]);
    });
    assert.ok(moved.some(([n]) => n === '3.block.0.weight'), 'the open network\'s loss should reach the gated convs');
    assert.throws(() => trainStep(fmnistVgg5(), new SGD([], { lr: 0.1 }), b, undefined, 1), /distillation needs a model with LKAMs/);
    assert.throws(() => trainStep(plain, new SGD(plain.parameters(), { lr: 0.1 }), b, undefined, 1.5), /distill 1\.5 should be in \[0, 1\]/);
  });

  test('the step descends CE(open) + (1 - a) CE(gated) + a KL(gated ‖ open, held constant): finite differences agree', () => {
    const a = 0.7;
    const b = batch();
    const model = twin();
    const e = engine();
    const lr = 1;
    const start = snapshot(model);
    trainStep(model, new SGD(model.parameters(), { lr }), b, undefined, a);
    const after = snapshot(model);
    // Restore the starting weights and running statistics.
    for (const [n, t] of model.stateDict()) t.f32().set(start.get(n) as Float32Array);
    const gs = gates(model);
    const openLogits = (x: Tensor): Tensor => {
      for (const g of gs) g.open = true;
      try {
        return model.forward(x);
      } finally {
        for (const g of gs) g.open = false;
      }
    };
    model.train(true);
    const teacher = e.noGrad(() => openLogits(batchTensors(b).x).f32().slice());
    e.endStep();
    const objective = (): number => e.noGrad(() => {
      const { x, y } = batchTensors(b);
      const t = openLogits(x);
      const s = model.forward(x);
      const v = ops.softmaxCrossEntropy(t, y).item() + (1 - a) * ops.softmaxCrossEntropy(s, y).item() + a * ops.klDivergence(s, e.tensor(teacher, [N, 10])).item();
      e.endStep();
      return v;
    });
    const rng = new TestRng(5);
    const eps = 1e-2;
    let worst = 0;
    for (const name of ['10.weight', '8.block.0.weight', '3.block.0.weight', '6.lkam.fc.weight', '5.lkam.conv.weight']) {
      const p = model.namedParameters().find(([n]) => n === name)?.[1];
      assert.ok(p !== undefined, name);
      const w = p.f32();
      for (let k = 0; k < 4; k++) {
        const i = Math.floor(rng.uniform(0, w.length));
        const v = w[i] as number;
        w[i] = v + eps;
        const up = objective();
        w[i] = v - eps;
        const down = objective();
        w[i] = v;
        const numeric = (up - down) / (2 * eps);
        const analytic = ((start.get(name) as Float32Array)[i]! - (after.get(name) as Float32Array)[i]!) / lr;
        const err = Math.abs(numeric - analytic) / (1e-3 + 5e-2 * Math.abs(numeric));
        worst = Math.max(worst, err);
        assert.ok(err <= 1, `${name}[${i}]: step ${analytic}, finite difference ${numeric}`);
      }
    }
    assert.ok(worst < 1);
  });
});
