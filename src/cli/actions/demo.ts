/**
 * `parsimony demo`: trains a small parsimonious network on the built-in subset, measures it (test
 * accuracy, multiply-adds, the runtime knob), times it against its dense twin on one thread, and
 * writes the report.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { engine } from '../../autograd/engine.js';
import { knobCurve, knobGrid } from '../../infer/knob.js';
import { modelNormalize } from '../../io/model-file.js';
import { loadModel } from '../../io/node-files.js';
import { RUN_FILES, type BaselineRecord, type KnobRecord } from '../../report/run.js';
import { DEMO_BUDGETS } from '../commands/demo.js';
import { dataFlags, imagesOf, loadData } from '../inputs.js';
import { Output } from '../output.js';
import { benchModel, printBench } from './bench.js';
import { startEngine, writeJson } from './common.js';
import { knobTable } from './eval.js';
import { writeReport } from './report.js';
import { resolveTrainFlags, train, type TrainFlags } from './train.js';
import { NEEDS_LKAM } from '../../train/recipe.js';

const BENCH_IMAGES = 64;

function signed(x: number): string {
  return `${x >= 0 ? '+' : ''}${x.toFixed(2)}`;
}

/** Removes the files of an earlier run in `dir`, so that a new demo does not resume or mix with it. */
function clearRun(dir: string): void {
  if (!existsSync(join(dir, RUN_FILES.config))) return;
  for (const name of Object.values(RUN_FILES)) rmSync(join(dir, name), { force: true });
  rmSync(join(dir, `${RUN_FILES.checkpoint}.prev`), { force: true });
}

export async function run(_o: unknown, c: Command): Promise<void> {
  const f = resolveTrainFlags(c);
  const out = new Output(f);
  const dir = f.out ?? join('runs', 'demo');
  const denseDir = join(dir, 'dense');
  if (f.resume === undefined) for (const d of [dir, denseDir]) clearRun(d);
  const result = await train({ ...f, out: dir }, out, 'demo');
  const ev = result.eval;
  const model = join(dir, RUN_FILES.model);
  if (ev === null) {
    engine().close();
    return;
  }
  // The baseline: the same network and options without LKAMs, trained the same way.
  let baseline: BaselineRecord | null = null;
  if (f.lkam) {
    out.info(`training the dense baseline (the same options without --lkam) into ${denseDir} ...`);
    // The knobs of the LKAMs go back to their defaults: a dense recipe may not set them.
    const same = Object.fromEntries(Object.entries(f).filter(([k]) => !(NEEDS_LKAM as readonly string[]).includes(k) && k !== 'save' && k !== 'resume')) as TrainFlags;
    const dense = await train({ ...same, lkam: false, out: denseDir }, out, 'demo');
    if (dense.eval !== null) {
      baseline = { dir: denseDir, accuracy: dense.eval.accuracy, images: dense.eval.images, how: 'the demo\'s options without --lkam' };
      writeJson(join(dir, RUN_FILES.baseline), baseline);
    }
  }
  // Timings on one thread: what a single-core device would see, and less disturbed by other work.
  await startEngine({ threads: 1 });
  try {
    const loaded = loadModel(model);
    loaded.model.eval();
    const data = await loadData(dataFlags(f));
    const { images, labels } = imagesOf(data.test, modelNormalize(loaded.meta));
    out.info('measuring the runtime knob (compute budgets) ...');
    const points = knobCurve(loaded.model, { images, labels, inputShape: loaded.meta.inputShape }, knobGrid([], DEMO_BUDGETS));
    const knob: KnobRecord = { model, data: f.data, images: labels.length, points };
    writeJson(join(dir, RUN_FILES.knob), knob);
    out.info('timing the compiled plan on one thread: skipping vs the dense twin ...');
    const per = loaded.meta.inputShape.reduce((a, b) => a * b, 1);
    const bench = await benchModel(loaded.model, model, loaded.meta.inputShape, images.subarray(0, Math.min(labels.length, BENCH_IMAGES) * per), { batch: BENCH_IMAGES, reps: 30, warmup: 5, rounds: 3, ort: true }, out);
    writeJson(join(dir, RUN_FILES.bench), bench);
    const report = await writeReport([dir], join(dir, RUN_FILES.report));
    const s1 = bench.speedup['speed-up over the dense twin, batch 1'] ?? null;
    const sBig = Object.entries(bench.speedup).find(([k]) => k.startsWith('speed-up over the dense twin, batch') && !k.endsWith('batch 1'))?.[1] ?? null;
    if (!f.json) {
      out.result('');
      out.result(`runtime knob:\n${knobTable(points)}`);
      out.result('');
      printBench(bench, out);
      out.result('');
      const base = baseline === null ? '' : ` (the dense network trained the same way: ${(100 * baseline.accuracy).toFixed(2)}%, ${signed(100 * (ev.accuracy - baseline.accuracy))} points)`;
      out.result(`demo: test accuracy ${(100 * ev.accuracy).toFixed(2)}%${base} | ${ev.macs.reduction.toFixed(2)}x fewer multiply-adds than dense (${(ev.macs.mean / 1e6).toFixed(2)} M of ${(ev.macs.dense / 1e6).toFixed(2)} M per image) | measured speed-up over the same network run dense (compiled plans, 1 thread): ${s1 === null ? '-' : `${s1.toFixed(2)}x`} at batch 1, ${sBig === null ? '-' : `${sBig.toFixed(2)}x`} at batch ${Math.min(labels.length, BENCH_IMAGES)}`);
      out.result(`report: ${report.file}`);
    }
    out.data({ ...result, baseline, knob: points, bench, report: report.file, speedup: { batch1: s1, batchLarge: sBig } });
  } finally {
    engine().close();
  }
}
