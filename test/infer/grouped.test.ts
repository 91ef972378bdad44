import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Engine } from '../../src/autograd/engine.js';
import { BatchNorm2d, Conv2d, GlobalAvgPool, Linear, manualSeed, ReLU, Sequential } from '../../src/nn/layers.js';
import { addLKAMs } from '../../src/nn/lkam.js';
import type { Module } from '../../src/nn/module.js';
import { images, randomizeBatchNorms, spreadSwitches, trainingGraph, useEngine } from './helpers.js';
import { checkSkippingPlan } from './skipping.js';

const SHAPE = [3, 15, 13] as const;

/** A MobileNet-like net: stem, 1x1 expand, 3x3 depthwise (stride 2), 1x1 project, 3x3 grouped (4 groups), 5x5 depthwise with multiplier 2, head. */
function mobileLike(seed: number): Module {
  manualSeed(seed);
  const cbr = (c: Conv2d): Module[] => [c, new BatchNorm2d(c.outChannels), new ReLU()];
  const m = new Sequential([
    ...cbr(new Conv2d({ inChannels: 3, outChannels: 8, kernel: 3, padding: 1 })),
    ...cbr(new Conv2d({ inChannels: 8, outChannels: 24, kernel: 1 })),
    ...cbr(new Conv2d({ inChannels: 24, outChannels: 24, kernel: 3, stride: 2, padding: 1, groups: 24 })),
    ...cbr(new Conv2d({ inChannels: 24, outChannels: 16, kernel: 1 })),
    ...cbr(new Conv2d({ inChannels: 16, outChannels: 20, kernel: 3, padding: 1, groups: 4 })),
    ...cbr(new Conv2d({ inChannels: 20, outChannels: 40, kernel: 5, padding: 2, groups: 20 })),
    new GlobalAvgPool(),
    new Linear({ inFeatures: 40, outFeatures: 10 }),
  ]);
  const gated = addLKAMs(m);
  spreadSwitches(gated, seed + 100);
  randomizeBatchNorms(gated, seed + 200);
  return gated.eval();
}

/** Images of different brightness, so that their switch sets differ. */
function varied(n: number, seed: number): Float32Array {
  const per = SHAPE.reduce((a, b) => a * b, 1);
  return images(n, seed, SHAPE).map((v, i) => v * (0.2 + 0.4 * Math.floor(i / per)));
}

for (const threads of [1, 2]) {
  describe(`depthwise and grouped convs skip in compiled plans (wasm, ${threads} thread(s))`, () => {
    let e: Engine;
    before(async () => { e = await useEngine('wasm', threads); });
    after(() => e.close());

    test('every gated conv, depthwise and grouped included, computes only the kernels on from only the inputs on; multiply-adds exact', () => {
      const m = mobileLike(5);
      const N = 4;
      const x = varied(N, 31);
      const check = checkSkippingPlan(m, SHAPE, x);
      const { on } = trainingGraph(m, x, SHAPE);
      // [gated conv, groups, inputs per group, the gated conv it reads (null: the stem, all on), taps x pixels].
      const layers = [
        ['3.block.0', 1, 8, null, 1 * 15 * 13],
        ['4.block.0', 24, 1, '3.block.0', 9 * 8 * 7],
        ['5.block.0', 1, 24, '4.block.0', 1 * 8 * 7],
        ['6.block.0', 4, 4, '5.block.0', 9 * 8 * 7],
        ['7.block.0', 20, 1, '6.block.0', 25 * 8 * 7],
      ] as const;
      assert.deepEqual(check.layers.map((l) => l.name), layers.map((l) => l[0]));
      let skipped = 0;
      for (const [name, G, Cg, from, pixels] of layers) {
        const l = check.layers.find((q) => q.name === name)!;
        const outs = on.get(name)!;
        const Mg = l.kernels / G;
        assert.ok(outs.total > 0 && outs.total < N * l.kernels, `${name}: the switches should be partly off`);
        for (let n = 0; n < N; n++) {
          const inOn = (c: number): boolean => from === null || on.get(from)!.active[n * l.inChannels + c] === 1;
          let pairs = 0;
          for (let k = 0; k < l.kernels; k++) {
            if (outs.active[n * l.kernels + k] !== 1) continue;
            const c0 = Math.floor(k / Mg) * Cg;
            for (let c = c0; c < c0 + Cg; c++) if (inOn(c)) pairs++;
          }
          assert.equal(l.macs[n], pairs * pixels, `${name}, image ${n}: (kernel on, input on) pairs x taps x pixels`);
          assert.equal(l.inputsRead[n], from === null ? l.inChannels : on.get(from)!.counts[n], `${name}, image ${n}: input planes read`);
          skipped += l.denseMacs - (l.macs[n] as number);
        }
      }
      const dw = check.layers.find((l) => l.name === '4.block.0')!;
      assert.ok(dw.groups === 24 && dw.denseMacs === 24 * 9 * 56);
      assert.ok(skipped > 0);
      for (let n = 0; n < N; n++) assert.ok((check.macs[n] as number) < (check.maskedMacs[n] as number), `image ${n}: fewer multiply-adds than masked`);
    });
  });
}
