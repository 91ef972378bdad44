/** `parsimony prune MODEL`: removes the kernels that no image of a data split switches on. */
import { join, resolve } from 'node:path';
import type { JsonValue } from '../../io/model-file.js';
import { saveModel } from '../../io/node-files.js';
import { refuseReplace } from '../../io/run-dir.js';
import { neverOnRemovals, planMacs } from '../../infer/measure.js';
import { compile } from '../../infer/plan.js';
import { pruneStatic } from '../../infer/prune.js';
import { convsInOrder } from '../../nn/lkam.js';
import { RUN_FILES } from '../../report/run.js';
import type { DataOptions } from '../../data/index.js';
import { dataForModel, imagesOf, normalizeOf, openModel } from '../inputs.js';
import { Output } from '../output.js';
import { mega, withEngine, writeJson } from './common.js';

interface PruneFlags extends Partial<DataOptions> {
  split: 'train' | 'test';
  out?: string;
  force?: boolean;
  threads?: number;
  json: boolean;
  quiet: boolean;
  plain: boolean;
}

const BATCH = 64;

/** Arg-max of each row of `out` ([n, classes]). */
function predictions(out: Float32Array, classes: number): Int32Array {
  const n = out.length / classes;
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let k = 1; k < classes; k++) if ((out[i * classes + k] as number) > (out[i * classes + best] as number)) best = k;
    p[i] = best;
  }
  return p;
}

function runAll(plan: ReturnType<typeof compile>, images: Float32Array, per: number): Float32Array {
  const n = images.length / per;
  const out = new Float32Array(n * plan.outputSize);
  for (let n0 = 0; n0 < n; n0 += plan.maxBatch) {
    const b = Math.min(plan.maxBatch, n - n0);
    out.set(plan.run(images.subarray(n0 * per, (n0 + b) * per)), n0 * plan.outputSize);
  }
  return out;
}

export async function run(arg: string, f: PruneFlags): Promise<void> {
    const out = new Output(f);
    await withEngine(f.threads, async () => {
      const src = openModel(arg);
      const data = await dataForModel(src, f);
      const where = data.source;
      const normalize = normalizeOf(src);
      const shape = src.meta.inputShape;
      const per = shape.reduce((a, b) => a * b, 1);
      const split = f.split === 'train' ? data.train : data.test;
      out.info(`prune: ${src.file}: finding kernels never on over ${split.length} ${f.split} images (${data.description})`);
      const calibration = imagesOf(split, normalize).images;
      const gatedPlan = compile(src.model, { inputShape: shape, maxBatch: BATCH, skip: true });
      let removed: Map<string, number[]>;
      let gatedTest: Float32Array;
      let gatedMacs: number;
      const test = imagesOf(data.test, normalize);
      try {
        removed = neverOnRemovals(src.model, gatedPlan, calibration);
        gatedTest = runAll(gatedPlan, test.images, per);
        gatedMacs = planMacs(gatedPlan, test.images).mean;
      } finally {
        gatedPlan.dispose();
      }
      const pruned = pruneStatic(src.model, removed, { inputShape: shape });
      pruned.eval();
      const prunedPlan = compile(pruned, { inputShape: shape, maxBatch: BATCH, skip: true });
      let prunedTest: Float32Array;
      let prunedMacs: number;
      let dense: number;
      try {
        prunedTest = runAll(prunedPlan, test.images, per);
        prunedMacs = planMacs(prunedPlan, test.images).mean;
        dense = prunedPlan.denseMacs;
      } finally {
        prunedPlan.dispose();
      }
      const classes = gatedTest.length / test.labels.length;
      const pg = predictions(gatedTest, classes);
      const pp = predictions(prunedTest, classes);
      let differ = 0;
      let correct = 0;
      for (let i = 0; i < pg.length; i++) {
        if (pg[i] !== pp[i]) differ++;
        if (pp[i] === test.labels[i]) correct++;
      }
      let maxDiff = 0;
      for (let i = 0; i < gatedTest.length; i++) maxDiff = Math.max(maxDiff, Math.abs((gatedTest[i] as number) - (prunedTest[i] as number)));
      const file = f.out ?? (src.runDir !== null ? join(src.runDir, RUN_FILES.pruned) : src.file.replace(/(\.safetensors)?$/, '.pruned.safetensors'));
      if (resolve(file) === resolve(src.file)) refuseReplace(file, 'the model being pruned', f.force === true, ', or choose another --out');
      const removedObj = Object.fromEntries(removed);
      const kernelsRemoved = [...removed.values()].reduce((a, k) => a + k.length, 0);
      const training = src.meta.training;
      const prunedInfo = { removed: removedObj, kernelsRemoved, split: f.split, data: where, images: split.length, from: src.file };
      const base = training !== undefined && training !== null && typeof training === 'object' && !Array.isArray(training) ? training : { original: training ?? null };
      saveModel(file, pruned, { ...src.meta, training: { ...(base as Record<string, JsonValue>), pruned: prunedInfo as unknown as JsonValue } });
      const result = {
        file, kernelsRemoved, removed: removedObj, split: f.split, calibrationImages: split.length,
        test: { images: pg.length, predictionsDiffering: differ, maxOutputDifference: maxDiff, accuracy: pg.length > 0 ? correct / pg.length : 0 },
        macs: { dense, gated: gatedMacs, pruned: prunedMacs },
        parameters: { gated: src.model.parameterCount(), pruned: pruned.parameterCount() },
      };
      if (src.runDir !== null) writeJson(join(src.runDir, RUN_FILES.prune), result);
      const convIndex = new Map(convsInOrder(src.model).map((c, i) => [c.path, i]));
      const convName = (path: string): string => (convIndex.has(path) ? `conv ${convIndex.get(path) as number}` : path);
      out.result(`removed ${kernelsRemoved} kernel(s): ${removed.size === 0 ? 'none' : [...removed].map(([p, k]) => `${convName(p)}: ${k.length}`).join(', ')}`);
      out.result(`parameters ${src.model.parameterCount()} -> ${pruned.parameterCount()}; multiply-adds per test image ${mega(gatedMacs)} (gated) -> ${mega(prunedMacs)} (pruned), dense ${mega(dense)}`);
      out.result(`test predictions differing between gated and pruned: ${differ} of ${pg.length} (largest output difference ${maxDiff.toExponential(2)})`);
      out.result(`wrote ${file}`);
      out.data(result);
    });
}
