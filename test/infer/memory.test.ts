import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Engine } from '../../src/autograd/engine.js';
import { classify, EXIT } from '../../src/cli/errors.js';
import { compile } from '../../src/infer/index.js';
import { fmnistVgg5 } from '../../src/nn/zoo.js';
import { SGD } from '../../src/optim/index.js';
import { OutOfMemoryError } from '../../src/tensor/memory.js';
import { trainStep } from '../../src/train/fit.js';
import { manualSeed } from '../../src/nn/layers.js';
import { addLKAMs } from '../../src/nn/lkam.js';
import type { Module } from '../../src/nn/module.js';
import { resnet18, vgg11bn, weightBytes } from './families.js';
import { useEngine } from './helpers.js';

const SHAPE = [3, 224, 224] as const;
/** What a plan may hold beyond its activations, in model weights. */
const PLAN_WEIGHT_RATIO = 1.3;

describe('a compiled plan holds at most 1.3x the model\'s weights beyond its activations (wasm, 2 threads)', () => {
  let e: Engine;
  before(async () => { e = await useEngine('wasm', 2); });
  after(() => e.close());

  const cases: Array<[string, () => Module]> = [
    ['vgg11_bn at width 1/4 (the 512*7*7 linear dominates)', () => vgg11bn(0.25)],
    ['resnet18', () => resnet18()],
    ['resnet18 with LKAMs', () => addLKAMs(resnet18())],
  ];
  for (const [name, build] of cases) {
    test(name, () => {
      manualSeed(3);
      const m = build().eval();
      const weights = weightBytes(m);
      for (const skip of [true, false]) {
        const plan = compile(m, { inputShape: SHAPE, maxBatch: 2, skip });
        try {
          const beyond = plan.memory.bytes - plan.memory.activationBytes;
          assert.ok(beyond <= PLAN_WEIGHT_RATIO * weights,
            `${name}, ${skip ? 'skipping' : 'masked'}: ${beyond} bytes beyond activations for ${weights} bytes of weights (${(beyond / weights).toFixed(3)}x)`);
          assert.ok(beyond >= weights * 0.9, `${name}: the plan holds its weights (${beyond} bytes for ${weights})`);
        } finally {
          plan.dispose();
        }
      }
    });
  }
});

describe('what does not fit the 4 GiB WebAssembly memory is refused with one line: needed, free, held, what to reduce', () => {
  let e: Engine;
  before(async () => { e = await useEngine('wasm', 1); });
  after(() => e.close());

  const line = (owner: string, reduce: string): RegExp =>
    new RegExp(`^out of WebAssembly memory: ${owner} needs [0-9.]+ (MiB|GiB) more, [0-9.]+ (MiB|GiB) of the 4 GiB are free \\(held: [^)]*\\); ${reduce}[^\\n]*$`);

  test('a plan for too many images names maxBatch; its memory goes back', () => {
    manualSeed(4);
    const m = fmnistVgg5().eval();
    const arenas = e.backend.mem.arenas.size;
    assert.throws(() => compile(m, { inputShape: [1, 28, 28], maxBatch: 100_000 }), (err: unknown) => {
      assert.ok(err instanceof OutOfMemoryError);
      assert.match(err.message, line('inference-plan', 'reduce maxBatch \\(100000: the activation buffers grow with it\\)'));
      assert.ok(err.requested > err.free, `${err.requested} bytes asked, ${err.free} free`);
      assert.deepEqual(classify(err), { code: EXIT.input, line: err.message });
      return true;
    });
    assert.equal(e.backend.mem.arenas.size, arenas, 'the failed plan\'s arenas are released');
    const plan = compile(m, { inputShape: [1, 28, 28], maxBatch: 4 });
    plan.dispose();
  });

  test('a training batch too large for its activations names the batch size; the next step runs', () => {
    manualSeed(5);
    const m = fmnistVgg5();
    const opt = new SGD(m.parameters(), { lr: 0.01 });
    const N = 60_000;
    const big = { x: new Float32Array(N * 784), y: new Int32Array(N), shape: [N, 1, 28, 28] as const };
    assert.throws(() => trainStep(m, opt, big), (err: unknown) => {
      assert.ok(err instanceof OutOfMemoryError);
      assert.match(err.message, line('scratch', 'reduce the batch size or the input size'));
      return true;
    });
    const r = trainStep(m, opt, { x: new Float32Array(2 * 784), y: new Int32Array(2), shape: [2, 1, 28, 28] });
    assert.ok(Number.isFinite(r.loss));
  });
});
