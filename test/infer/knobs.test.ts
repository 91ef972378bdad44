import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Engine } from '../../src/autograd/engine.js';
import { compile, type InferencePlan, type RunOptions } from '../../src/infer/index.js';
import { gates } from '../../src/nn/lkam.js';
import { assertClose, close, loose, maxAbs } from '../util/tolerance.js';
import { images, net, spreadSwitches, trainingGraph, useEngine } from './helpers.js';

const SHAPE = [1, 28, 28] as const;
const N = 4;
/** Output pixels times taps of fmnist-vgg5's gated convs. */
const PIXELS_TIMES_TAPS: Record<string, number> = { '3.block.0': 9 * 784, '5.block.0': 9 * 196, '6.block.0': 9 * 196, '8.block.0': 9 * 49 };

function varied(seed: number): Float32Array {
  return images(N, seed).map((v, i) => v * (0.2 + 0.4 * Math.floor(i / 784)));
}

/** Runs both plans with the same knobs; they must agree, and the skipping one's telemetry is returned. */
function both(skip: InferencePlan, masked: InferencePlan, x: Float32Array, o: RunOptions, label: string) {
  const ys = skip.run(x, o);
  const ym = masked.run(x, o);
  assertClose(ys, ym, close, `${label}: skipping vs masked`, maxAbs(ym));
  return { out: ys, t: skip.telemetry() };
}

describe('per-call knobs: thresholds and compute budgets', () => {
  let e: Engine;
  before(async () => { e = await useEngine('wasm', 2); });
  after(() => e.close());

  test('sigmoid switches: the default is each LKAM threshold; a threshold (one, or one per LKAM) equals the training graph with those thresholds', () => {
    const m = net('fmnistVgg5', { lkams: true, seed: 9, lkam: { switchKind: 'sigmoid' } });
    spreadSwitches(m, 31, -1.5, 1.5);
    const x = varied(41);
    const skip = compile(m, { inputShape: SHAPE, maxBatch: N });
    const masked = compile(m, { inputShape: SHAPE, maxBatch: N, skip: false });
    try {
      for (const thresholds of [null, [0.6, 0.6, 0.6, 0.6], [0.3, 0.5, 0.65, 0.7]] as const) {
        const gs = gates(m);
        gs.forEach((g, i) => { g.lkam.threshold = thresholds === null ? 0.5 : (thresholds[i] as number); });
        const ref = trainingGraph(m, x, SHAPE);
        for (const set of ref.on.values()) assert.ok(set.total > 0 && set.total < set.N * set.C, 'the sigmoid switches should be partly off');
        const knob: RunOptions = thresholds === null ? {} : { threshold: thresholds.every((t) => t === 0.6) ? 0.6 : thresholds };
        const { out, t } = both(skip, masked, x, knob, `thresholds ${JSON.stringify(thresholds)}`);
        assertClose(out, ref.out, loose, `thresholds ${JSON.stringify(thresholds)} vs the training graph`, maxAbs(ref.out));
        for (const l of t.layers.filter((q) => q.gated)) assert.deepEqual(Array.from(l.onKernels!), Array.from(ref.on.get(l.name)!.active), `${l.name} with thresholds ${JSON.stringify(thresholds)}`);
      }
    } finally {
      gates(m).forEach((g) => { g.lkam.threshold = 0.5; });
      skip.dispose();
      masked.dispose();
    }
  });

  test('hard switches: a higher threshold turns more kernels off and does fewer multiply-adds', () => {
    const m = net('fmnistVgg5', { lkams: true, seed: 10 });
    const x = varied(42);
    const skip = compile(m, { inputShape: SHAPE, maxBatch: N });
    const masked = compile(m, { inputShape: SHAPE, maxBatch: N, skip: false });
    try {
      const base = both(skip, masked, x, {}, 'default').t;
      const strict = both(skip, masked, x, { threshold: 0.5 }, 'threshold 0.5').t;
      for (let n = 0; n < N; n++) {
        assert.ok((strict.macs[n] as number) < (base.macs[n] as number), `image ${n}: ${strict.macs[n]} multiply-adds at threshold 0.5, ${base.macs[n]} by default`);
        const l0 = base.layers.find((l) => l.name === '3.block.0')!, s0 = strict.layers.find((l) => l.name === '3.block.0')!;
        for (let k = 0; k < 32; k++) if (s0.onKernels![n * 32 + k] === 1) assert.equal(l0.onKernels![n * 32 + k], 1, 'a kernel on at 0.5 is on at 0');
      }
    } finally {
      skip.dispose();
      masked.dispose();
    }
  });

  test('budgets: the largest switches are kept, within budget x dense multiply-adds per layer; skipping equals masked', () => {
    const m = net('fmnistVgg5', { lkams: true, seed: 11 });
    spreadSwitches(m, 32, 0.2, 1.5);
    const x = varied(43);
    const ref = trainingGraph(m, x, SHAPE);
    const skip = compile(m, { inputShape: SHAPE, maxBatch: N });
    const masked = compile(m, { inputShape: SHAPE, maxBatch: N, skip: false });
    try {
      let previous = Infinity;
      for (const budget of [1, 0.6, 0.3, 0.1]) {
        const { t } = both(skip, masked, x, { budget }, `budget ${budget}`);
        const total = t.macs.reduce((a, b) => a + b, 0);
        assert.ok(total < previous || budget === 1, `budget ${budget}: ${total} multiply-adds, ${previous} at the budget before`);
        previous = total;
        for (const l of t.layers.filter((q) => q.gated)) {
          const denseLayer = l.kernels * l.inChannels * PIXELS_TIMES_TAPS[l.name]!;
          for (let n = 0; n < N; n++) {
            assert.ok(l.computedKernels[n]! <= Math.floor((budget * l.kernels * l.inChannels) / l.inputsRead[n]!), `${l.name} image ${n}: ${l.computedKernels[n]} kernels over budget ${budget}`);
            assert.ok(l.macs[n]! <= budget * denseLayer + 1e-6, `${l.name} image ${n}: ${l.macs[n]} multiply-adds over ${budget} x ${denseLayer}`);
          }
        }
        // The first gated conv reads all 32 channels of conv 0: it keeps the floor(32 budget) largest switches of the training graph.
        const first = t.layers.find((l) => l.name === '3.block.0')!;
        const s = ref.switches.get('3.block.0')!;
        for (let n = 0; n < N; n++) {
          const ranked = Array.from({ length: 32 }, (_, k) => k).filter((k) => s[n * 32 + k]! > 0)
            .sort((a, b) => s[n * 32 + b]! - s[n * 32 + a]! || a - b).slice(0, Math.floor(budget * 32)).sort((a, b) => a - b);
          const kept = Array.from({ length: 32 }, (_, k) => k).filter((k) => first.onKernels![n * 32 + k] === 1);
          assert.deepEqual(kept, ranked, `budget ${budget}, image ${n}: the kept kernels of 3.block.0`);
        }
      }
      const none = both(skip, masked, x, { budget: 0 }, 'budget 0');
      for (const l of none.t.layers.filter((q) => q.gated)) assert.ok(l.macs.every((v) => v === 0), `budget 0: ${l.name} computes nothing`);
      assert.ok(none.out.every(Number.isFinite));
    } finally {
      skip.dispose();
      masked.dispose();
    }
  });
});
