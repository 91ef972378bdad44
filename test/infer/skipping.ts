/**
 * The check every gated family runs: the compiled plan skips in every gated conv (depthwise and
 * grouped included) and its outputs equal the masked plan's and the model's eval outputs.
 */
import assert from 'node:assert/strict';
import { compile, type LayerTelemetry } from '../../src/infer/index.js';
import { gates } from '../../src/nn/lkam.js';
import type { Module } from '../../src/nn/module.js';
import { assertClose, close, loose, maxAbs, type Tolerance } from '../util/tolerance.js';
import { trainingGraph } from './helpers.js';

export interface SkipCheck {
  /** The gated layers of the skipping plan's last run. */
  readonly layers: readonly LayerTelemetry[];
  /** Per image: multiply-adds the skipping plan did, and those of the masked plan. */
  readonly macs: Float64Array;
  readonly maskedMacs: Float64Array;
}

/**
 * Compiles `model` (eval mode, with LKAMs) skipping and masked for the images x of `inputShape` and asserts:
 * every gate of the model is a gated conv of the plan; per image, a gated conv computes exactly the
 * kernels its LKAM switched on, those of the model's eval forward, and no more multiply-adds than
 * its dense ones times the fraction of kernels on (fewer than dense whenever a kernel is off); the
 * skipping, masked and eval outputs agree (`vsModel` tolerance against the model, close between plans).
 */
export function checkSkippingPlan(model: Module, inputShape: readonly number[], x: Float32Array, vsModel: Tolerance = loose): SkipCheck {
  const per = inputShape.reduce((a, b) => a * b, 1);
  const N = x.length / per;
  const ref = trainingGraph(model, x, inputShape, 'skip');
  const skip = compile(model, { inputShape, maxBatch: N });
  const masked = compile(model, { inputShape, maxBatch: N, skip: false });
  try {
    const ys = skip.run(x);
    const ym = masked.run(x);
    assertClose(ys, ym, close, 'skipping plan vs masked plan', maxAbs(ym));
    assertClose(ys, ref.out, vsModel, 'skipping plan vs the model in eval mode', maxAbs(ref.out));
    const t = skip.telemetry();
    const gated = t.layers.filter((l) => l.gated);
    const names = new Map(model.modules().map(([p, m]) => [m, p]));
    const expected = gates(model).map((g) => `${names.get(g)}.block.0`);
    assert.deepEqual(gated.map((l) => l.name).sort(), [...expected].sort(), 'every gate of the model is a gated conv of the plan');
    for (const l of gated) {
      const set = ref.on.get(l.name)!;
      assert.deepEqual(Array.from(l.onKernels!), Array.from(set.active), `${l.name}: the kernels switched on are the model's`);
      for (let n = 0; n < N; n++) {
        const on = l.activeKernels[n] as number;
        assert.equal(l.computedKernels[n], on, `${l.name}, image ${n}: computes only the kernels switched on`);
        const done = l.macs[n] as number;
        assert.ok(done <= (l.denseMacs * on) / l.kernels, `${l.name}, image ${n}: ${done} multiply-adds for ${on} of ${l.kernels} kernels, dense ${l.denseMacs}`);
        if (on < l.kernels) assert.ok(done < l.denseMacs, `${l.name}, image ${n}: skips (${done} of ${l.denseMacs} multiply-adds)`);
      }
    }
    return { layers: gated, macs: t.macs, maskedMacs: masked.telemetry().macs };
  } finally {
    skip.dispose();
    masked.dispose();
  }
}
