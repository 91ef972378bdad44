/**
 * `parsimony demo`: trains a small parsimonious network on the built-in subset, measures it (test
 * accuracy, multiply-adds, the runtime knob), times it against its dense twin, and writes the report.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { engine } from '../../autograd/engine.js';
import { knobCurve, knobGrid } from '../../infer/knob.js';
import { RUN_FILES, type KnobRecord } from '../../report/run.js';
import { imagesOf, loadData } from '../inputs.js';
import { Output } from '../output.js';
import { printBench, benchModel } from './bench.js';
import { writeJson } from './common.js';
import { knobTable } from './eval.js';
import { writeReport } from './report.js';
import { addTrainOptions, resolveTrainFlags, train } from './train.js';

const DEMO_BUDGETS = [1, 0.8, 0.6, 0.4, 0.25];

export function demoCommand(program: Command): void {
  const cmd = program.command('demo')
    .description('the tour: train fmnist-vgg5 with LKAMs on the built-in Fashion-MNIST subset (a few minutes), measure accuracy and multiply-adds, time it against the same network run dense, and write the HTML report')
    .addHelpText('after', `
Steps: train (into --out), eval with the runtime knob (budgets ${DEMO_BUDGETS.join(', ')}), bench (skipping
vs the dense twin, batch 1 and 64, one thread), report (--out/report.html). Every training option applies.`);
  addTrainOptions(cmd, { epochs: 4, lkam: true, sparsity: 2, sparsityWarmup: 1, out: join('runs', 'demo') });
  cmd.action(async (_o: unknown, c: Command) => {
    const f = resolveTrainFlags(c);
    const out = new Output(f);
    const dir = f.out ?? join('runs', 'demo');
    if (f.resume === undefined && existsSync(join(dir, RUN_FILES.config))) {
      for (const name of Object.values(RUN_FILES)) rmSync(join(dir, name), { force: true });
      rmSync(join(dir, `${RUN_FILES.checkpoint}.prev`), { force: true });
    }
    const result = await train({ ...f, out: dir }, out, 'demo');
    try {
      const ev = result.eval;
      const model = result.run === null ? null : join(result.run, RUN_FILES.model);
      if (ev === null || model === null) return;
      const { loadModel } = await import('../../io/node-files.js');
      const loaded = loadModel(model);
      loaded.model.eval();
      const data = loadData(f.data, f.limit);
      const { images, labels } = imagesOf(data.test);
      out.info('measuring the runtime knob (compute budgets) ...');
      const points = knobCurve(loaded.model, { images, labels, inputShape: loaded.meta.inputShape }, knobGrid([], DEMO_BUDGETS));
      const knob: KnobRecord = { model, data: f.data, images: labels.length, points };
      writeJson(join(dir, RUN_FILES.knob), knob);
      out.info('timing the compiled plan: skipping vs the dense twin ...');
      const bench = await benchModel(loaded.model, model, loaded.meta.inputShape, images.subarray(0, Math.min(labels.length, 64) * 784), { batch: 64, reps: 30, warmup: 5, rounds: 3, ort: false }, out);
      writeJson(join(dir, RUN_FILES.bench), bench);
      const report = await writeReport([dir], join(dir, RUN_FILES.report));
      const s1 = bench.speedup['speed-up over the dense twin, batch 1'] ?? null;
      const s64 = Object.entries(bench.speedup).find(([k]) => k.startsWith('speed-up over the dense twin, batch') && !k.endsWith('batch 1'))?.[1] ?? null;
      if (!f.json) {
        out.result('');
        out.result(`runtime knob:\n${knobTable(points)}`);
        out.result('');
        printBench(bench, out);
        out.result('');
        out.result(`demo: test accuracy ${(100 * ev.accuracy).toFixed(2)}% | ${ev.macs.reduction.toFixed(2)}x fewer multiply-adds than dense (${(ev.macs.mean / 1e6).toFixed(2)} M of ${(ev.macs.dense / 1e6).toFixed(2)} M per image) | measured speed-up over the same network run dense: ${s1 === null ? '—' : `${s1.toFixed(2)}x`} at batch 1, ${s64 === null ? '—' : `${s64.toFixed(2)}x`} at batch 64`);
        out.result(`report: ${report.file}`);
      }
      out.data({ ...result, knob: points, bench, report: report.file, speedup: { batch1: s1, batch64: s64 } });
    } finally {
      engine().close();
    }
  });
}
