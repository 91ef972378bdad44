import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Engine } from '../../src/autograd/engine.js';
import { compile } from '../../src/infer/index.js';
import { Conv2d } from '../../src/nn/layers.js';
import { gates } from '../../src/nn/lkam.js';
import { images, net, trainingGraph, useEngine } from './helpers.js';
import { COMPUTE_BACKENDS } from '../util/backends.js';

const SHAPE = [1, 28, 28] as const;

/** Images of different brightness, so that their switch sets differ. */
function varied(n: number, seed: number): Float32Array {
  return images(n, seed).map((v, i) => v * (0.2 + 0.4 * Math.floor(i / 784)));
}

for (const backend of COMPUTE_BACKENDS) for (const threads of [1, 2]) {
  describe(`skipped kernels and input channels are not computed (${backend}, ${threads} thread(s))`, () => {
    let e: Engine;
    before(async () => { e = await useEngine(backend, threads); });
    after(() => e.close());

    test('fmnistVgg5 with LKAMs: each layer reports active_out x active_in x 9 x HW per image, from the training graph switch sets', () => {
      const m = net('fmnistVgg5', { lkams: true, seed: 7 });
      const N = 4;
      const x = varied(N, 21);
      const { on } = trainingGraph(m, x, SHAPE);
      const skip = compile(m, { inputShape: SHAPE, maxBatch: N });
      const masked = compile(m, { inputShape: SHAPE, maxBatch: N, skip: false });
      try {
        for (const batch of [1, N]) {
          skip.run(x.subarray(0, batch * 784));
          const t = skip.telemetry();
          assert.deepEqual(t.layers.map((l) => l.name), ['0', '3.block.0', '5.block.0', '6.block.0', '8.block.0', '10']);
          // [name, kernels, pixels]: the gated convs of fmnist-vgg5 and the maps they compute.
          const gated = [['3.block.0', 32, 784], ['5.block.0', 64, 196], ['6.block.0', 64, 196], ['8.block.0', 128, 49]] as const;
          for (let n = 0; n < batch; n++) {
            const layer = (name: string) => t.layers.find((l) => l.name === name)!;
            assert.equal(layer('0').macs[n], 32 * 1 * 9 * 784, `conv 0, image ${n}`);
            let inputs = 32;
            let total = 32 * 9 * 784;
            for (const [name, M, P] of gated) {
              const active = on.get(name)!.counts[n]!;
              const l = layer(name);
              assert.equal(l.computedKernels[n], active, `${name}, image ${n}: kernels computed`);
              assert.equal(l.inputsRead[n], inputs, `${name}, image ${n}: input channels read`);
              assert.equal(l.macs[n], active * inputs * 9 * P, `${name}, image ${n}: multiply-adds`);
              assert.ok(active < M, `${name}, image ${n}: some kernels should be off`);
              total += active * inputs * 9 * P;
              inputs = active;
            }
            assert.equal(layer('10').macs[n], 10 * inputs, `linear, image ${n}: reads only the switched-on channels`);
            total += 10 * inputs;
            // LKAMs: a bank of 4 1x1 convs over the channels they read, then 4 features to M switches.
            const lkam = 4 * 32 * 784 + 4 * 32 + 4 * on.get('3.block.0')!.counts[n]! * 196 + 4 * 64 + 4 * on.get('5.block.0')!.counts[n]! * 196 + 4 * 64
              + 4 * on.get('6.block.0')!.counts[n]! * 49 + 4 * 128;
            assert.equal(t.lkamMacs[n], lkam, `LKAM multiply-adds, image ${n}`);
            assert.equal(t.macs[n], total + lkam, `all multiply-adds, image ${n}`);
            assert.ok((t.macs[n] as number) < t.denseMacs, `image ${n}: ${t.macs[n]} multiply-adds should be below dense ${t.denseMacs}`);
          }
          masked.run(x.subarray(0, batch * 784));
          const pixels: Record<string, number> = { '0': 9 * 784, '3.block.0': 9 * 784, '5.block.0': 9 * 196, '6.block.0': 9 * 196, '8.block.0': 9 * 49, '10': 1 };
          for (const l of masked.telemetry().layers) {
            for (let n = 0; n < batch; n++) assert.equal(l.macs[n], l.kernels * l.inChannels * pixels[l.name]!, `masked ${l.name}, image ${n}: every kernel from every input`);
          }
        }
      } finally {
        skip.dispose();
        masked.dispose();
      }
    });

    test('smallResNet with LKAMs: strided and 1x1 convs, residual adds; each layer reports computed x read x taps x pixels', () => {
      const m = net('smallResNet', { lkams: true, seed: 8 });
      const N = 3;
      const x = varied(N, 22);
      const { on } = trainingGraph(m, x, SHAPE);
      const plan = compile(m, { inputShape: SHAPE, maxBatch: N });
      try {
        plan.run(x);
        const t = plan.telemetry();
        const shapes = new Map<string, { taps: number; P: number }>();
        // Output sizes of the convs: stem and stage 1 at 28x28, stage 2 at 14x14, stage 3 at 7x7.
        for (const [path, mod] of m.modules()) {
          if (!(mod instanceof Conv2d) || path.includes('lkam')) continue;
          const side = path.startsWith('3') || path === '0' ? 28 : path.startsWith('5') ? 14 : 7;
          shapes.set(path, { taps: mod.kernel[0] * mod.kernel[1], P: side * side });
        }
        let sparse = 0;
        for (const l of t.layers) {
          if (l.name === '10') continue;
          const g = shapes.get(l.name)!;
          for (let n = 0; n < N; n++) {
            assert.equal(l.macs[n], l.computedKernels[n]! * l.inputsRead[n]! * g.taps * g.P, `${l.name}, image ${n}`);
            if (l.gated) {
              assert.equal(l.computedKernels[n], on.get(l.name)!.counts[n], `${l.name}, image ${n}: the training graph's switches`);
              assert.ok(l.computedKernels[n]! < l.kernels);
              sparse++;
            }
          }
        }
        // Body convs read the first gated conv's active channels only.
        for (const stage of ['3', '5', '7']) {
          const first = t.layers.find((l) => l.name === `${stage}.body.0.block.0`)!;
          const second = t.layers.find((l) => l.name === `${stage}.body.1.block.0`)!;
          for (let n = 0; n < N; n++) assert.equal(second.inputsRead[n], first.computedKernels[n], `stage ${stage}, image ${n}`);
        }
        assert.equal(sparse, 6 * N);
        for (let n = 0; n < N; n++) assert.ok((t.macs[n] as number) < t.denseMacs, `image ${n} below dense`);
      } finally {
        plan.dispose();
      }
    });
  });
}

test('the LKAMs of the plan are those of the model, in forward order', async () => {
  const e = await useEngine('wasm', 1);
  try {
    const m = net('smallResNet', { lkams: true });
    const plan = compile(m, { inputShape: SHAPE, maxBatch: 1 });
    const names = new Map(m.modules().map(([p, mod]) => [mod, p]));
    assert.deepEqual(plan.gates, gates(m).map((g) => `${names.get(g)}.lkam`));
    plan.dispose();
  } finally {
    e.close();
  }
});
