import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Engine } from '../../src/autograd/engine.js';
import { knobCurve, knobGrid } from '../../src/infer/knob.js';
import { compile } from '../../src/infer/plan.js';
import { manualSeed } from '../../src/nn/layers.js';
import { addLKAMs } from '../../src/nn/lkam.js';
import { fmnistVgg5 } from '../../src/nn/zoo.js';
import { TestRng } from '../util/rng.js';
import { randomizeBatchNorms, spreadSwitches, useEngine } from '../infer/helpers.js';

describe('knobCurve: accuracy against multiply-adds per runtime setting', () => {
  let e: Engine;
  before(async () => {
    e = await useEngine('wasm', 1);
  });
  after(() => e.close());

  test('knobGrid: the default operating point first, then every threshold with every budget; empty lists mean the defaults', () => {
    assert.deepEqual(knobGrid([0, 0.2], [1, 0.5]), [{ budget: 1 }, { threshold: 0, budget: 1 }, { threshold: 0, budget: 0.5 }, { threshold: 0.2, budget: 1 }, { threshold: 0.2, budget: 0.5 }]);
    assert.deepEqual(knobGrid([], [0.3]), [{ budget: 1 }, { budget: 0.3 }]);
    assert.deepEqual(knobGrid([0.1], []), [{ budget: 1 }, { threshold: 0.1, budget: 1 }]);
    assert.deepEqual(knobGrid([], [1, 0.5]), [{ budget: 1 }, { budget: 0.5 }]);
  });

  test('budgets 1 → 0: multiply-adds fall; each point matches the plan run by hand (N=70, batches of 32)', () => {
    manualSeed(5);
    const model = addLKAMs(fmnistVgg5({ width: 0.25 }));
    randomizeBatchNorms(model, 6);
    spreadSwitches(model, 7);
    model.eval();
    const n = 70;
    const rng = new TestRng(8);
    const images = Float32Array.from({ length: n * 784 }, () => rng.uniform(-1, 1));
    const labels = Int32Array.from({ length: n }, (_, i) => i % 10);
    const settings = knobGrid([], [1, 0.5, 0.2, 0]);
    const points = knobCurve(model, { images, labels, inputShape: [1, 28, 28] }, settings, { maxBatch: 32 });
    assert.equal(points.length, 4);
    for (let i = 1; i < points.length; i++) assert.ok(points[i]!.meanMacs <= points[i - 1]!.meanMacs, `budget ${points[i]!.budget} costs no more than ${points[i - 1]!.budget}`);
    assert.ok(points[3]!.meanMacs < points[0]!.meanMacs, 'budget 0 skips work');

    const plan = compile(model, { inputShape: [1, 28, 28], maxBatch: n });
    try {
      for (const p of points) {
        const out = plan.run(images, { budget: p.budget });
        const t = plan.telemetry();
        let correct = 0;
        for (let i = 0; i < n; i++) {
          const row = Array.from(out.subarray(i * 10, i * 10 + 10));
          if (row.indexOf(Math.max(...row)) === labels[i]) correct++;
        }
        assert.equal(p.accuracy, correct / n, `budget ${p.budget}: accuracy`);
        const mean = t.macs.reduce((a, b) => a + b, 0) / n;
        assert.ok(Math.abs(p.meanMacs - mean) <= 1e-9 * mean, `budget ${p.budget}: mean MACs ${p.meanMacs} vs ${mean}`);
        assert.equal(p.denseMacs, t.denseMacs);
        assert.equal(p.images, n);
        assert.equal(p.threshold, null);
      }
    } finally {
      plan.dispose();
    }
  });

  test('refuses images that do not match the labels', () => {
    manualSeed(1);
    const model = addLKAMs(fmnistVgg5({ width: 0.25 }));
    model.eval();
    assert.throws(() => knobCurve(model, { images: new Float32Array(784 * 2), labels: new Int32Array(3), inputShape: [1, 28, 28] }, [{}]), /3 labels need 2352 floats of images, got 1568/);
  });
});
