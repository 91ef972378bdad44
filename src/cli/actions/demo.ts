/**
 * `parsimony demo`: trains a small parsimonious network on the built-in subset, measures it (test
 * accuracy, multiply-adds, the runtime knob), times it against its dense twin on one thread, and
 * writes the report.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { engine, init } from '../../autograd/engine.js';
import { knobCurve, knobGrid } from '../../infer/knob.js';
import { loadModel } from '../../io/node-files.js';
import { RUN_FILES, type KnobRecord } from '../../report/run.js';
import { DEMO_BUDGETS } from '../commands/demo.js';
import { imagesOf, loadData } from '../inputs.js';
import { Output } from '../output.js';
import { benchModel, printBench } from './bench.js';
import { writeJson } from './common.js';
import { knobTable } from './eval.js';
import { writeReport } from './report.js';
import { resolveTrainFlags, train } from './train.js';

const BENCH_IMAGES = 64;

export async function run(_o: unknown, c: Command): Promise<void> {
  const f = resolveTrainFlags(c);
  const out = new Output(f);
  const dir = f.out ?? join('runs', 'demo');
  if (f.resume === undefined && existsSync(join(dir, RUN_FILES.config))) {
    for (const name of Object.values(RUN_FILES)) rmSync(join(dir, name), { force: true });
    rmSync(join(dir, `${RUN_FILES.checkpoint}.prev`), { force: true });
  }
  const result = await train({ ...f, out: dir }, out, 'demo');
  const ev = result.eval;
  const model = join(dir, RUN_FILES.model);
  if (ev === null) {
    engine().close();
    return;
  }
  // Timings on one thread: what a single-core device would see, and less disturbed by other work.
  await init({ threads: 1 });
  try {
    const loaded = loadModel(model);
    loaded.model.eval();
    const data = loadData(f.data, f.limit);
    const { images, labels } = imagesOf(data.test);
    out.info('measuring the runtime knob (compute budgets) ...');
    const points = knobCurve(loaded.model, { images, labels, inputShape: loaded.meta.inputShape }, knobGrid([], DEMO_BUDGETS));
    const knob: KnobRecord = { model, data: f.data, images: labels.length, points };
    writeJson(join(dir, RUN_FILES.knob), knob);
    out.info('timing the compiled plan on one thread: skipping vs the dense twin ...');
    const per = loaded.meta.inputShape.reduce((a, b) => a * b, 1);
    const bench = await benchModel(loaded.model, model, loaded.meta.inputShape, images.subarray(0, Math.min(labels.length, BENCH_IMAGES) * per), { batch: BENCH_IMAGES, reps: 30, warmup: 5, rounds: 3, ort: false }, out);
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
      out.result(`demo: test accuracy ${(100 * ev.accuracy).toFixed(2)}% | ${ev.macs.reduction.toFixed(2)}x fewer multiply-adds than dense (${(ev.macs.mean / 1e6).toFixed(2)} M of ${(ev.macs.dense / 1e6).toFixed(2)} M per image) | measured speed-up over the same network run dense (compiled plans, 1 thread): ${s1 === null ? '-' : `${s1.toFixed(2)}x`} at batch 1, ${sBig === null ? '-' : `${sBig.toFixed(2)}x`} at batch ${Math.min(labels.length, BENCH_IMAGES)}`);
      out.result(`report: ${report.file}`);
    }
    out.data({ ...result, knob: points, bench, report: report.file, speedup: { batch1: s1, batchLarge: sBig } });
  } finally {
    engine().close();
  }
}
