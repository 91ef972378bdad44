/** `parsimony eval MODEL`: the compiled plan on the test set, and the runtime-knob curve. */
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { knobCurve, knobGrid, type KnobPoint } from '../../infer/knob.js';
import { RUN_FILES, type EvalRecord, type KnobRecord } from '../../report/run.js';
import { UsageError } from '../errors.js';
import { evaluateModel } from '../evaluation.js';
import { checkClasses, checkFits, DATA_HELP, imagesOf, loadData, openModel, trainedOn } from '../inputs.js';
import { numberList, positiveInt } from '../options.js';
import { Output } from '../output.js';
import { addOutputOptions, addThreadsOption, mega, pct, table, withEngine, writeJson } from './common.js';

interface EvalFlags {
  data?: string;
  limit?: number;
  thresholds?: number[];
  budgets?: number[];
  out?: string;
  knobOut?: string;
  threads?: number;
  json: boolean;
  quiet: boolean;
  plain: boolean;
}

export function knobTable(points: readonly KnobPoint[]): string {
  return table(['threshold', 'budget', 'accuracy', 'M MACs/image', 'of dense', 'ms/image'],
    points.map((p) => [p.threshold === null ? 'default' : p.threshold, p.budget, pct(p.accuracy), (p.meanMacs / 1e6).toFixed(2), pct(p.macFraction), p.imageMs.toFixed(3)]));
}

export function evalCommand(program: Command): void {
  const cmd = program.command('eval')
    .argument('<model>', 'a model file, or a run directory (its model.safetensors)')
    .description('measure a model on the test set through the compiled plan (skipping switched-off kernels): accuracy, multiply-adds per image, time per image; with --thresholds/--budgets, the runtime-knob curve')
    .addOption(new Option('--data <where>', `${DATA_HELP} (default: what the model was trained on)`))
    .addOption(new Option('--limit <n>', 'use only the first n test images').argParser(positiveInt('--limit')))
    .addOption(new Option('--thresholds <list>', 'runtime knob: switch thresholds to try, e.g. 0,0.05,0.1,0.2').argParser(numberList('--thresholds', 'finite numbers', Number.isFinite)))
    .addOption(new Option('--budgets <list>', 'runtime knob: compute budgets in [0, 1] to try, e.g. 1,0.8,0.6,0.4').argParser(numberList('--budgets', 'numbers in [0, 1]', (n) => n >= 0 && n <= 1)))
    .addOption(new Option('--out <file>', `where to write the measurements (default: ${RUN_FILES.eval} in the run directory)`))
    .addOption(new Option('--knob-out <file>', `where to write the knob curve (default: ${RUN_FILES.knob} in the run directory)`))
    .addHelpText('after', `
Every pairing of the listed thresholds and budgets is one point of the knob curve (accuracy against
mean multiply-adds per image, LKAMs included).

Examples:
  parsimony eval runs/s1
  parsimony eval runs/s1 --thresholds 0,0.1,0.2,0.3 --budgets 1,0.8,0.6,0.4 --json`);
  addThreadsOption(cmd);
  addOutputOptions(cmd, 'print the measurements (and the knob curve) as JSON on stdout');
  cmd.action(async (arg: string, f: EvalFlags) => {
    const out = new Output(f);
    if (f.thresholds === undefined && f.budgets === undefined && f.knobOut !== undefined) throw new UsageError('--knob-out needs --thresholds or --budgets');
    await withEngine(f.threads, () => {
      const src = openModel(arg);
      const where = f.data ?? trainedOn(src.meta);
      const data = loadData(where, f.limit);
      checkFits(src.file, src.meta.inputShape, data.test, where);
      checkClasses(src.file, src.model.outputShape([1, ...src.meta.inputShape])[1] as number, data.test, where);
      out.info(`eval: ${src.file} on ${data.test.length} test images (${where})`);
      const record: EvalRecord = evaluateModel(src.model, data.test, { model: src.file, data: where });
      const evalFile = f.out ?? (src.runDir === null ? null : join(src.runDir, RUN_FILES.eval));
      if (evalFile !== null) writeJson(evalFile, record);
      let knob: KnobRecord | null = null;
      if (f.thresholds !== undefined || f.budgets !== undefined) {
        const { images, labels } = imagesOf(data.test);
        const points = knobCurve(src.model, { images, labels, inputShape: src.meta.inputShape }, knobGrid(f.thresholds ?? [], f.budgets ?? []));
        knob = { model: src.file, data: where, images: labels.length, points };
        const knobFile = f.knobOut ?? (src.runDir === null ? null : join(src.runDir, RUN_FILES.knob));
        if (knobFile !== null) writeJson(knobFile, knob);
        out.result(`runtime knob (${labels.length} images):\n${knobTable(points)}`);
        if (knobFile !== null) out.info(`wrote ${knobFile}`);
      }
      const p = record.plan;
      out.result(`accuracy ${pct(p.accuracy)} | ${mega(p.meanMacs)} multiply-adds per image (${p.reduction.toFixed(2)}x fewer than dense ${mega(p.denseMacs)}; LKAMs ${mega(p.lkamMacs)}) | ${p.imageMs.toFixed(3)} ms per image at batch ${p.batch}, ${p.threads} thread(s)`);
      if (record.layers.length > 0) out.result(`kernels on: ${record.layers.map((l) => `${l.name} ${pct(l.meanOn)} (${l.alwaysOff} never on)`).join(', ')}`);
      if (evalFile !== null) out.info(`wrote ${evalFile}`);
      const { perImageMacs: _m, labels: _l, predictions: _p, cheapest: _c, costliest: _k, ...summary } = record;
      out.data({ file: evalFile, ...summary, knob: knob?.points ?? null });
    });
  });
}
