import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { engine, init } from '../../src/autograd/engine.js';
import { compile } from '../../src/infer/plan.js';
import { denseTwin } from '../../src/infer/prune.js';
import { loadModel } from '../../src/io/node-files.js';
import { manualSeed } from '../../src/nn/layers.js';
import { addLKAMs, EXACTLY_OPEN, gates, LKAM, recordGates } from '../../src/nn/lkam.js';
import type { Module } from '../../src/nn/module.js';
import { fmnistVgg5, smallResNet } from '../../src/nn/zoo.js';
import { TestRng } from '../util/rng.js';
import { assertClose, exact } from '../util/tolerance.js';

/** Inputs of every scale, so that an LKAM whose switches depended on them would show it. */
function inputs(n: number, shape: readonly number[], seed: number): Float32Array {
  const rng = new TestRng(seed);
  const per = shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n * per);
  for (let i = 0; i < n; i++) {
    const scale = [0, 1e-3, 1, 30][i % 4] as number;
    for (let j = 0; j < per; j++) x[i * per + j] = scale * rng.uniform(-3, 3);
  }
  return x;
}

const nets: ReadonlyArray<readonly [string, () => Module, readonly number[]]> = [
  ['trained fmnist-vgg5 (dense twin of the shipped model)', () => {
    const { model, meta } = loadModel('models/fmnist-vgg5-lkam.safetensors');
    return denseTwin(model, meta.inputShape);
  }, [1, 28, 28]],
  ['random fmnist-vgg5', () => fmnistVgg5({ width: 0.5 }), [1, 28, 28]],
  ['random ResNet, 3x32x32', () => smallResNet({ width: 4, blocks: 2, inChannels: 3, classes: 7 }), [3, 32, 32]],
];

describe('addLKAMs starts exactly open', () => {
  before(async () => {
    // Bit-identity holds within one kernel family: the gated graph's sparse convs run on WebAssembly.
    await init({ threads: 1, backend: 'wasm' });
  });

  for (const [name, make, shape] of nets) {
    test(`${name}: every switch is exactly 1 and the outputs are bit-identical (graph in eval and training mode, compiled plan)`, () => {
      manualSeed(11);
      const base = make();
      const n = 8;
      const x = inputs(n, shape, 3);
      const e = engine();
      base.eval();
      const dense = base.forward(e.tensor(x, [n, ...shape])).f32().slice();
      const gated = addLKAMs(base);
      assert.ok(gates(gated).length > 0);
      gated.eval();
      const { value: logits, readings } = recordGates(() => gated.forward(e.tensor(x, [n, ...shape])));
      assertClose(logits.f32(), dense, exact, 'eval-mode logits');
      assert.equal(readings.length, gates(gated).length);
      for (const r of readings) {
        assert.equal(r.gate.lkam.initOpen, EXACTLY_OPEN);
        const s = r.switches.values.f32();
        assert.ok(s.every((v) => v === 1), `switches of a gate: ${[...new Set(s)].join(', ')}`);
      }
      const p0 = compile(base, { inputShape: [...shape], maxBatch: n });
      const p1 = compile(gated, { inputShape: [...shape], maxBatch: n, skip: true });
      try {
        assertClose(p1.run(x), p0.run(x), exact, 'compiled plan logits');
      } finally {
        p0.dispose();
        p1.dispose();
      }
      // Batch statistics: both forwards normalise with the batch's own mean and variance.
      base.train();
      const denseTrain = base.forward(e.tensor(x, [n, ...shape])).f32().slice();
      gated.train();
      assertClose(gated.forward(e.tensor(x, [n, ...shape])).f32(), denseTrain, exact, 'training-mode logits');
    });
  }

  test('the old initial value stays available: a switch opened at 0.9 scales its kernels', () => {
    manualSeed(2);
    const l = new LKAM({ inChannels: 3, switches: 4, initOpen: 0.9 });
    const s = l.forward(engine().tensor(inputs(2, [3, 5, 5], 1), [2, 3, 5, 5])).f32();
    assert.ok(s.every((v) => Math.abs(v - 0.9) < 1e-7));
  });
});
