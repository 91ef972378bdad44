import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Engine } from '../../src/autograd/engine.js';
import { Concat } from '../../src/nn/concat.js';
import { BatchNorm2d, Conv2d, GlobalAvgPool, Linear, manualSeed, ReLU, Sequential } from '../../src/nn/layers.js';
import { addLKAMs, gates } from '../../src/nn/lkam.js';
import type { Module } from '../../src/nn/module.js';
import { SqueezeExcite } from '../../src/nn/squeeze-excite.js';
import { compile } from '../../src/infer/index.js';
import { images, randomizeBatchNorms, spreadSwitches, trainingGraph, useEngine } from './helpers.js';
import { checkSkippingPlan } from './skipping.js';

const SHAPE = [3, 12, 11] as const;

const cbr = (c: Conv2d, relu = true): Module[] => [c, new BatchNorm2d(c.outChannels), ...(relu ? [new ReLU()] : [])];

/** A stem, a Concat of two gated branches, a conv reading it, a gated depthwise conv, squeeze-excite, a gated 1x1 projection, the head. */
function composed(seed: number): Module {
  manualSeed(seed);
  const m = new Sequential([
    ...cbr(new Conv2d({ inChannels: 3, outChannels: 8, kernel: 3, padding: 1 })),
    new Concat([new Sequential(cbr(new Conv2d({ inChannels: 8, outChannels: 6, kernel: 3, padding: 1 }))), new Sequential(cbr(new Conv2d({ inChannels: 8, outChannels: 5, kernel: 1 })))]),
    ...cbr(new Conv2d({ inChannels: 11, outChannels: 12, kernel: 3, padding: 1 })),
    ...cbr(new Conv2d({ inChannels: 12, outChannels: 12, kernel: 3, padding: 1, groups: 12 })),
    new SqueezeExcite({ channels: 12, squeeze: 4 }),
    ...cbr(new Conv2d({ inChannels: 12, outChannels: 10, kernel: 1 }), false),
    new GlobalAvgPool(),
    new Linear({ inFeatures: 10, outFeatures: 4 }),
  ]);
  const gated = addLKAMs(m);
  spreadSwitches(gated, seed + 100);
  randomizeBatchNorms(gated, seed + 200);
  return gated.eval();
}

for (const threads of [1, 2]) {
  describe(`Concat carries channel subsets and squeeze-excite scales a compact activation (wasm, ${threads} thread(s))`, () => {
    let e: Engine;
    before(async () => { e = await useEngine('wasm', threads); });
    after(() => e.close());

    test('the conv after a Concat reads only the planes its gated branches switched on, the projection after squeeze-excite only the depthwise kernels on; no dense copies', () => {
      const m = composed(7);
      assert.equal(gates(m).length, 5, 'both Concat branches, the conv after it, the depthwise conv and the projection are gated');
      const N = 4;
      const per = SHAPE.reduce((a, b) => a * b, 1);
      const x = images(N, 41, SHAPE).map((v, i) => v * (0.3 + 0.5 * Math.floor(i / per)));
      const check = checkSkippingPlan(m, SHAPE, x);
      const { on } = trainingGraph(m, x, SHAPE);
      const layer = (name: string) => check.layers.find((l) => l.name === name)!;
      const [b0, b1, after, dw, proj] = ['3.0.0.block.0', '3.1.0.block.0', '4.block.0', '5.block.0', '7.block.0'];
      for (const name of [b0, b1, after, dw, proj]) assert.ok(on.get(name!)!.total < N * layer(name!).kernels, `${name}: some kernels are off`);
      for (let n = 0; n < N; n++) {
        const concatOn = on.get(b0!)!.counts[n]! + on.get(b1!)!.counts[n]!;
        assert.equal(layer(after!).inputsRead[n], concatOn, `image ${n}: the conv after the Concat reads the branches' kernels on`);
        assert.equal(layer(after!).macs[n], on.get(after!)!.counts[n]! * concatOn * 9 * 132, `image ${n}: its multiply-adds`);
        assert.equal(layer(proj!).inputsRead[n], on.get(dw!)!.counts[n], `image ${n}: the projection reads the depthwise kernels on, through squeeze-excite`);
        assert.equal(layer(proj!).macs[n], on.get(proj!)!.counts[n]! * on.get(dw!)!.counts[n]! * 132, `image ${n}: the projection's multiply-adds`);
      }
      const plan = compile(m, { inputShape: SHAPE, maxBatch: N });
      try {
        const steps = plan.describe();
        assert.ok(!steps.some((s) => s.startsWith('scatter')), `no step copies a compact value into a dense one: ${steps.join(', ')}`);
      } finally {
        plan.dispose();
      }
    });
  });
}
