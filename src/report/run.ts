/**
 * The run directory: what `parsimony train --out RUN` and the commands after it write, and what
 * `parsimony report` reads. Every file is JSON (metrics.jsonl: one JSON object per line); readers
 * check the fields they use and name the file and field when one is wrong.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { readRegularText } from '../data/files.js';
import { parseJson as parseBoundedJson } from '../io/json.js';

/** How large a run's JSON files may be. */
const RUN_FILE_LIMIT = { maxBytes: 256 * 2 ** 20, what: 'a run file' };

export const RUN_FILES = {
  /** Every resolved option of the training command, and how it ran. */
  config: 'config.json',
  /** One line per finished epoch (EpochMetrics). */
  metrics: 'metrics.jsonl',
  model: 'model.safetensors',
  checkpoint: 'checkpoint.ckpt',
  /** The trained model measured on the test set (EvalRecord). */
  eval: 'eval.json',
  /** Accuracy against compute for settings of the runtime knob (KnobRecord). */
  knob: 'knob.json',
  /** Timings of the compiled plan, skipping and dense (BenchRecord). */
  bench: 'bench.json',
  pruned: 'pruned.safetensors',
  prune: 'prune.json',
  onnx: 'model.onnx',
  report: 'report.html',
  /** The dense network trained the same way (BaselineRecord): what the gated run's accuracy is set beside. */
  baseline: 'baseline.json',
} as const;

export class RunFileError extends Error {
  override readonly name = 'RunFileError';
}

const num = z.number();
const macStats = z.object({ dense: num, mean: num, min: num, median: num, max: num, reduction: num });

const layerSummary = z.object({
  name: z.string(), conv: num.nullable().optional(), kernels: num, meanOn: num, meanSwitch: num, alwaysOff: num, sometimesOff: num, neverOff: num,
});

/** What a gated layer is called in tables and plots: its conv's index, as `--layers` counts, else its module path. */
export function layerLabel(l: { readonly name: string; readonly conv?: number | null | undefined }): string {
  return l.conv === undefined || l.conv === null ? `gate ${l.name}` : `conv ${l.conv}`;
}

export const epochMetricsSchema = z.object({
  epoch: num,
  step: num,
  seconds: num,
  imagesPerSecond: num,
  lr: num,
  train: z.object({ loss: num, accuracy: num, sparsityTerm: num, sparsityWeight: num, meanSwitch: num.nullable(), macs: num }),
  test: z.object({ loss: num, accuracy: num }).nullable(),
  /** The held-out validation split (absent in runs recorded before there was one). */
  validation: z.object({ loss: num, accuracy: num }).nullable().optional(),
  macs: macStats.nullable(),
  layers: z.array(layerSummary),
  /** With LKAMs: each gate's sparsity weight at the end of the epoch, and the fraction of kernels every gate aims at. */
  sparsityWeights: z.array(num).optional(),
  keepTarget: num.nullable().optional(),
});
export type EpochMetrics = z.infer<typeof epochMetricsSchema>;

const thumb = z.object({ index: num, label: num, prediction: num, macs: num, shape: z.array(num), pixels: z.string() });

export const evalSchema = z.object({
  model: z.string(),
  data: z.string(),
  classNames: z.array(z.string()),
  images: num,
  /** measureParsimony on the training graph (eval mode). */
  accuracy: num,
  loss: num,
  macs: macStats.extend({ perClass: z.array(num) }),
  layers: z.array(layerSummary.extend({ onRate: z.array(num), onRateByClass: z.array(z.array(num)) })),
  perImageMacs: z.array(num),
  labels: z.array(num),
  predictions: z.array(num),
  /** The compiled plan, skipping, on the same images. */
  plan: z.object({ accuracy: num, meanMacs: num, lkamMacs: num, denseMacs: num, reduction: num, imageMs: num, batch: num, threads: num, agreesWithGraph: num }),
  /** Uint8 pixels (base64) of the images that cost least and most. */
  cheapest: z.array(thumb),
  costliest: z.array(thumb),
});
export type EvalRecord = z.infer<typeof evalSchema>;
export type Thumbnail = z.infer<typeof thumb>;

export const knobPointSchema = z.object({
  threshold: num.nullable(), budget: num, accuracy: num, meanMacs: num, denseMacs: num, macFraction: num, reduction: num, imageMs: num, images: num,
});
export const knobSchema = z.object({ model: z.string(), data: z.string(), images: num, points: z.array(knobPointSchema) });
export type KnobRecord = z.infer<typeof knobSchema>;

export const benchRowSchema = z.object({
  engine: z.string(), mode: z.string(), batch: num, threads: num, medianMs: num, p10Ms: num, p90Ms: num, imagesPerSecond: num, macsPerImage: num.nullable(), reps: num,
});
export const benchSchema = z.object({
  model: z.string(),
  rows: z.array(benchRowSchema),
  speedup: z.record(z.string(), num.nullable()),
  macReduction: num,
  notes: z.array(z.string()),
  env: z.record(z.string(), z.unknown()),
});
export type BenchRecord = z.infer<typeof benchSchema>;

/** The dense network trained with the same options, without LKAMs, measured on the same test images. */
export const baselineSchema = z.object({
  /** Its run directory. */
  dir: z.string(),
  accuracy: num,
  images: num,
  /** How it was trained, in words (e.g. `the demo's options without --lkam`). */
  how: z.string(),
});
export type BaselineRecord = z.infer<typeof baselineSchema>;
export type BenchRow = z.infer<typeof benchRowSchema>;

export interface RunData {
  readonly dir: string;
  readonly name: string;
  readonly config: Readonly<Record<string, unknown>>;
  readonly metrics: readonly EpochMetrics[];
  readonly eval: EvalRecord | null;
  readonly knob: KnobRecord | null;
  readonly bench: BenchRecord | null;
  readonly baseline: BaselineRecord | null;
}

function issueText(e: z.ZodError): string {
  const i = e.issues[0];
  if (i === undefined) return 'is invalid';
  const at = i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '');
  return `${at === '' ? '' : `field ${at} `}${i.message}`;
}

function parseJson(file: string, text: string): unknown {
  try {
    return parseBoundedJson(text);
  } catch (e) {
    throw new RunFileError(`${file}: not valid JSON (${(e as Error).message})`);
  }
}

function readChecked<T>(file: string, schema: z.ZodType<T>): T | null {
  if (!existsSync(file)) return null;
  const r = schema.safeParse(parseJson(file, readRegularText(file, RUN_FILE_LIMIT)));
  if (!r.success) throw new RunFileError(`${file}: ${issueText(r.error)}`);
  return r.data;
}

export function readMetrics(file: string): EpochMetrics[] {
  if (!existsSync(file)) return [];
  const out: EpochMetrics[] = [];
  readRegularText(file, RUN_FILE_LIMIT).split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    const r = epochMetricsSchema.safeParse(parseJson(`${file} line ${i + 1}`, line));
    if (!r.success) throw new RunFileError(`${file} line ${i + 1}: ${issueText(r.error)}`);
    out.push(r.data);
  });
  return out;
}

export function isRunDir(dir: string): boolean {
  return existsSync(dir) && statSync(dir).isDirectory() && existsSync(join(dir, RUN_FILES.config));
}

/** Reads what a run directory holds; missing optional files are null. */
export function readRun(dir: string): RunData {
  if (!existsSync(dir)) throw new RunFileError(`${dir}: no such run directory`);
  if (!statSync(dir).isDirectory()) throw new RunFileError(`${dir}: expected a run directory (from parsimony train --out), got a file`);
  const configFile = join(dir, RUN_FILES.config);
  if (!existsSync(configFile)) throw new RunFileError(`${dir}: not a run directory (no ${RUN_FILES.config}; make one with parsimony train --out ${dir})`);
  const config = readChecked(configFile, z.record(z.string(), z.unknown())) ?? {};
  const name = typeof config['name'] === 'string' ? config['name'] : dir.replace(/\/+$/, '').split('/').pop() ?? dir;
  return {
    dir, name, config,
    metrics: readMetrics(join(dir, RUN_FILES.metrics)),
    eval: readChecked(join(dir, RUN_FILES.eval), evalSchema),
    knob: readChecked(join(dir, RUN_FILES.knob), knobSchema),
    bench: readChecked(join(dir, RUN_FILES.bench), benchSchema),
    baseline: readChecked(join(dir, RUN_FILES.baseline), baselineSchema),
  };
}

/** `a is 1.52x faster than b` (or the reverse), from two median times; within 2% they are "about as fast". */
function faster(a: string, aMs: number, b: string, bMs: number): string {
  if (!(aMs > 0) || !(bMs > 0)) return `${a} and ${b}: not comparable`;
  const r = bMs / aMs;
  if (Math.abs(r - 1) < 0.02) return `${a} is about as fast as ${b} (${aMs.toFixed(3)} vs ${bMs.toFixed(3)} ms)`;
  return r > 1 ? `${a} is ${r.toFixed(2)}x faster than ${b}` : `${b} is ${(1 / r).toFixed(2)}x faster than ${a}`;
}

/** Which engine is faster, in words, per batch size: the skipping plan against the dense twin and, when timed, onnxruntime-node. */
export function speedSentences(b: BenchRecord): string[] {
  const out: string[] = [];
  const batches = [...new Set(b.rows.map((r) => r.batch))].sort((x, y) => x - y);
  for (const batch of batches) {
    const row = (engine: string, mode: string): BenchRow | undefined => b.rows.find((r) => r.engine === engine && r.mode === mode && r.batch === batch);
    const skip = row('parsimony', 'skipping');
    const dense = row('parsimony', 'dense twin');
    const ort = row('onnxruntime-node', 'dense twin');
    if (skip === undefined) continue;
    const parts: string[] = [];
    if (dense !== undefined) parts.push(faster('the skipping plan', skip.medianMs, 'the dense twin', dense.medianMs));
    if (ort !== undefined) parts.push(faster('the skipping plan', skip.medianMs, 'onnxruntime-node running the dense twin', ort.medianMs));
    if (parts.length > 0) out.push(`batch ${batch}: ${parts.join('; ')}`);
  }
  if (!b.rows.some((r) => r.engine === 'onnxruntime-node')) {
    out.push(b.notes.some((n) => n.startsWith('onnxruntime-node: not installed')) ? 'onnxruntime-node: not installed, so not timed' : 'onnxruntime-node: not timed');
  }
  return out;
}
