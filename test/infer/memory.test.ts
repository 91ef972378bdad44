import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Engine } from '../../src/autograd/engine.js';
import { compile } from '../../src/infer/index.js';
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
