/** `parsimony eval MODEL`: the compiled plan on the test set, and the runtime-knob curve. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readRegularText } from '../../data/files.js';
import { parseJson } from '../../io/json.js';
import { RunDirError } from '../../io/run-dir.js';
import { knobCurve, knobGrid, type KnobPoint } from '../../infer/knob.js';
import { layerLabel, RUN_FILES, type EvalRecord, type KnobRecord } from '../../report/run.js';
import { UsageError } from '../errors.js';
import { evaluateModel } from '../evaluation.js';
import type { DataOptions } from '../../data/index.js';
import { dataForModel, imagesOf, normalizeOf, openModel } from '../inputs.js';
import { Output } from '../output.js';
import { mega, pct, table, withEngine, writeJson } from './common.js';

interface EvalFlags extends Partial<DataOptions> {
  thresholds?: number[];
  budgets?: number[];
  out?: string;
  knobOut?: string;
  force?: boolean;
  threads?: number;
  json: boolean;
  quiet: boolean;
  plain: boolean;
}

/** One row per point; the default operating point (each LKAM's own rule, budget 1) is named as such. */
export function knobTable(points: readonly KnobPoint[]): string {
  return table(['setting', 'threshold', 'budget', 'accuracy', 'M MACs/image', 'of dense', 'ms/image'],
    points.map((p) => [p.threshold === null && p.budget === 1 ? 'default' : '', p.threshold === null ? 'own' : p.threshold, p.budget, pct(p.accuracy), (p.meanMacs / 1e6).toFixed(2), pct(p.macFraction), p.imageMs.toFixed(3)]));
}

/** Refuses to replace an evaluation of more images (e.g. the full test set) with one of `images`. */
function keepFullerEvaluation(file: string, images: number): void {
  if (!existsSync(file)) return;
  let before: unknown;
  try {
    before = parseJson(readRegularText(file, { maxBytes: 256 * 2 ** 20, what: 'an evaluation' }));
  } catch {
    return;
  }
  const n = (before as { images?: unknown } | null)?.images;
  if (typeof n === 'number' && n > images) {
    throw new RunDirError(`${file} holds an evaluation of ${n} images, this one would use ${images}; pass --force to replace it, or --out another file`);
  }
}

export async function run(arg: string, f: EvalFlags): Promise<void> {
    const out = new Output(f);
    if (f.thresholds === undefined && f.budgets === undefined && f.knobOut !== undefined) throw new UsageError('--knob-out needs --thresholds or --budgets');
    await withEngine(f.threads, async () => {
      const src = openModel(arg);
      const data = await dataForModel(src, f);
      const where = data.source;
      const normalize = normalizeOf(src);
      const evalFile = f.out ?? (src.runDir === null ? null : join(src.runDir, RUN_FILES.eval));
      if (evalFile !== null && f.force !== true) keepFullerEvaluation(evalFile, data.test.length);
      out.info(`eval: ${src.file} on ${data.test.length} test images (${data.description})`);
      const record: EvalRecord = evaluateModel(src.model, data.test, { model: src.file, data: where }, normalize);
      if (evalFile !== null) writeJson(evalFile, record);
      let knob: KnobRecord | null = null;
      if (f.thresholds !== undefined || f.budgets !== undefined) {
        const { images, labels } = imagesOf(data.test, normalize);
        const points = knobCurve(src.model, { images, labels, inputShape: src.meta.inputShape }, knobGrid(f.thresholds ?? [], f.budgets ?? []));
        knob = { model: src.file, data: where, images: labels.length, points };
        const knobFile = f.knobOut ?? (src.runDir === null ? null : join(src.runDir, RUN_FILES.knob));
        if (knobFile !== null) writeJson(knobFile, knob);
        out.result(`runtime knob (${labels.length} images):\n${knobTable(points)}`);
        if (knobFile !== null) out.info(`wrote ${knobFile}`);
      }
      const p = record.plan;
      out.result(`accuracy ${pct(p.accuracy)} | ${mega(p.meanMacs)} multiply-adds per image (${p.reduction.toFixed(2)}x fewer than dense ${mega(p.denseMacs)}; LKAMs ${mega(p.lkamMacs)}) | ${p.imageMs.toFixed(3)} ms per image at batch ${p.batch}, ${p.threads} thread(s)`);
      if (record.layers.length > 0) out.result(`kernels on: ${record.layers.map((l) => `${layerLabel(l)} ${pct(l.meanOn)} (${l.alwaysOff} never on)`).join(', ')}`);
      if (evalFile !== null) out.info(`wrote ${evalFile}`);
      const { perImageMacs: _m, labels: _l, predictions: _p, cheapest: _c, costliest: _k, ...summary } = record;
      out.data({ file: evalFile, ...summary, knob: knob?.points ?? null });
    });
}
