/**
 * `parsimony bench MODEL`: times the compiled plan of a model skipping switched-off kernels against
 * the plan of its dense twin (same weights, no LKAMs), in the same run, at batch 1 and a larger
 * batch; and the dense ONNX export through onnxruntime-node when that package can be loaded.
 */
import { cpus } from 'node:os';
import { join } from 'node:path';
import { engine } from '../../autograd/engine.js';
import { planMacs, summarizeTimes, timeCalls } from '../../infer/measure.js';
import { compile, type InferencePlan } from '../../infer/plan.js';
import { denseTwin } from '../../infer/prune.js';
import type { Module } from '../../nn/module.js';
import { isMissingPackage, MissingPackageError } from '../../optional.js';
import type { DataOptions } from '../../data/index.js';
import { RUN_FILES, speedSentences, type BenchRecord, type BenchRow } from '../../report/run.js';
import { dataForModel, imagesOf, normalizeOf, openModel } from '../inputs.js';
import { Output } from '../output.js';
import { mega, table, withEngine, writeJson } from './common.js';

interface BenchFlags extends Partial<DataOptions> {
  batch: number;
  reps: number;
  warmup: number;
  rounds: number;
  threads: number;
  ort: boolean;
  out?: string;
  json: boolean;
  quiet: boolean;
  plain: boolean;
}

interface Timed {
  readonly engine: string;
  readonly mode: string;
  readonly batch: number;
  readonly samples: number[];
  readonly macs: number | null;
}

function summarize(t: Timed, threads: number, warmup: number): BenchRow {
  const s = summarizeTimes(t.samples, warmup);
  return {
    engine: t.engine, mode: t.mode, batch: t.batch, threads, medianMs: s.median, p10Ms: s.p10, p90Ms: s.p90,
    imagesPerSecond: s.median > 0 ? (t.batch * 1000) / s.median : 0, macsPerImage: t.macs, reps: s.reps,
  };
}

interface OrtRunner {
  readonly version: string;
  run(x: Float32Array, n: number): Promise<void>;
  close(): Promise<void>;
}

/** The dense twin exported to ONNX in an onnxruntime-node session; null (with the reason) when that package cannot be loaded. */
async function openOrt(dense: Module, inputShape: readonly number[], threads: number): Promise<OrtRunner | string> {
  let ort: typeof import('onnxruntime-node');
  let onnx: typeof import('../../io/onnx-export.js');
  try {
    ort = await import('onnxruntime-node');
  } catch (e) {
    if (isMissingPackage(e, 'onnxruntime-node')) return 'onnxruntime-node: not installed (npm install onnxruntime-node to time it beside parsimony)';
    return `onnxruntime-node cannot be loaded (${(e as Error).message.split('\n')[0]})`;
  }
  try {
    onnx = await import('../../io/onnx-export.js');
  } catch (e) {
    if (e instanceof MissingPackageError) return `onnxruntime-node: not timed, ${e.message}`;
    throw e;
  }
  const ex = onnx.exportOnnx(dense, { inputShape });
  const session = await ort.InferenceSession.create(ex.bytes, { executionProviders: ['cpu'], intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
  return {
    version: ort.env.versions.common ?? 'unknown',
    async run(x, n) {
      await session.run({ [ex.input]: new ort.Tensor('float32', x, [n, ...inputShape]) });
    },
    close: () => session.release(),
  };
}

export async function run(arg: string, f: BenchFlags): Promise<void> {
    const out = new Output(f);
    const { record, src } = await withEngine(f.threads, async () => {
      const src = openModel(arg);
      const data = await dataForModel(src, f);
      const images = imagesOf(data.test, normalizeOf(src), 0, Math.min(data.test.length, Math.max(64, f.batch))).images;
      return { record: await benchModel(src.model, src.file, src.meta.inputShape, images, f, out), src };
    });
    const file = f.out ?? (src.runDir === null ? null : join(src.runDir, RUN_FILES.bench));
    if (file !== null) writeJson(file, record);
    printBench(record, out);
    if (file !== null) out.info(`wrote ${file}`);
    out.data({ file, ...record });
}

export function printBench(r: BenchRecord, out: Output): void {
  out.result(table(['engine', 'mode', 'batch', 'threads', 'median ms', 'p10-p90 ms', 'images/s', 'M MACs/image'],
    r.rows.map((x) => [x.engine, x.mode, x.batch, x.threads, x.medianMs.toFixed(3), `${x.p10Ms.toFixed(3)}-${x.p90Ms.toFixed(3)}`, x.imagesPerSecond.toFixed(0), x.macsPerImage === null ? '-' : (x.macsPerImage / 1e6).toFixed(2)])));
  for (const [k, v] of Object.entries(r.speedup)) out.result(`${k}: ${v === null ? 'not measured' : `${v.toFixed(2)}x`}`);
  out.result(`multiply-add reduction ${r.macReduction.toFixed(2)}x`);
  for (const w of speedSentences(r)) out.result(w);
  for (const n of r.notes) out.info(`note: ${n}`);
}

/** Times `model` skipping vs its dense twin (and onnxruntime-node, dense) on `images`. */
export async function benchModel(model: Module, name: string, inputShape: readonly number[], images: Float32Array, f: Pick<BenchFlags, 'batch' | 'reps' | 'warmup' | 'rounds' | 'ort'>, out: Output): Promise<BenchRecord> {
  const e = engine();
  const threads = e.backend.threads;
  const per = inputShape.reduce((a, b) => a * b, 1);
  const available = images.length / per;
  const big = Math.min(f.batch, available);
  const dense = denseTwin(model, inputShape);
  dense.eval();
  const plans: Array<{ mode: string; plan: InferencePlan }> = [
    { mode: 'dense twin', plan: compile(dense, { inputShape, maxBatch: big }) },
    { mode: 'skipping', plan: compile(model, { inputShape, maxBatch: big, skip: true }) },
  ];
  const notes: string[] = [];
  const timed = new Map<string, Timed>();
  const add = (engineName: string, mode: string, batch: number, samples: readonly number[], macs: number | null): void => {
    const key = `${engineName}|${mode}|${batch}`;
    const t = timed.get(key) ?? { engine: engineName, mode, batch, samples: [], macs };
    t.samples.push(...samples);
    timed.set(key, t);
  };
  let ort: OrtRunner | null = null;
  try {
    const macs = new Map(plans.map((p) => [p.mode, planMacs(p.plan, images.subarray(0, available * per)).mean]));
    if (f.ort) {
      const r = await openOrt(dense, inputShape, threads);
      if (typeof r === 'string') notes.push(r);
      else ort = r;
    }
    const batches = big > 1 ? [1, big] : [1];
    const bar = out.bar(f.rounds * batches.length * (plans.length + (ort === null ? 0 : 1)), 0, 'bench {bar} {value}/{total} {what}', { what: '' });
    let done = 0;
    for (let round = 0; round < f.rounds; round++) {
      for (const batch of batches) {
        const reps = batch === 1 ? f.reps : Math.max(3, Math.ceil(f.reps / 6));
        const order = round % 2 === 0 ? plans : [...plans].reverse();
        for (const { mode, plan } of order) {
          let i = 0;
          const x = images.subarray(0, batch * per);
          const call = batch === 1 ? () => plan.run(images.subarray((i % available) * per, (i++ % available + 1) * per)) : () => plan.run(x);
          const t = timeCalls(call, { warmup: f.warmup, reps });
          add('parsimony', mode, batch, t.samples, macs.get(mode) ?? null);
          bar.update(++done, { what: `${mode} batch ${batch}` });
        }
        if (ort !== null) {
          const samples: number[] = [];
          const x = images.slice(0, batch * per);
          const singles = Array.from({ length: Math.min(available, 64) }, (_, k) => images.slice(k * per, (k + 1) * per));
          for (let k = 0; k < f.warmup + reps; k++) {
            const input = batch === 1 ? (singles[k % singles.length] as Float32Array) : x;
            const t0 = performance.now();
            await ort.run(input, batch);
            if (k >= f.warmup) samples.push(performance.now() - t0);
          }
          add('onnxruntime-node', 'dense twin', batch, samples, macs.get('dense twin') ?? null);
          bar.update(++done, { what: `onnxruntime batch ${batch}` });
        }
      }
    }
    bar.stop();
    const rows = [...timed.values()].map((t) => summarize(t, threads, f.warmup));
    const find = (engineName: string, mode: string, batch: number): BenchRow | undefined => rows.find((r) => r.engine === engineName && r.mode === mode && r.batch === batch);
    const ratio = (a: BenchRow | undefined, b: BenchRow | undefined): number | null => (a === undefined || b === undefined || b.medianMs <= 0 ? null : a.medianMs / b.medianMs);
    const speedup: Record<string, number | null> = {};
    for (const batch of batches) {
      speedup[`speed-up over the dense twin, batch ${batch}`] = ratio(find('parsimony', 'dense twin', batch), find('parsimony', 'skipping', batch));
      if (ort !== null) speedup[`speed-up over onnxruntime-node dense, batch ${batch}`] = ratio(find('onnxruntime-node', 'dense twin', batch), find('parsimony', 'skipping', batch));
    }
    const denseMacs = macs.get('dense twin') ?? 0;
    const skipMacs = macs.get('skipping') ?? 0;
    return {
      model: name, rows, speedup, macReduction: skipMacs > 0 ? denseMacs / skipMacs : 0, notes,
      env: {
        kernels: e.backend.name, threads, node: process.version, cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length,
        images: available, rounds: f.rounds, warmup: f.warmup, reps: f.reps, onnxruntime: ort?.version ?? null,
        macsPerImage: { dense: denseMacs, skipping: skipMacs, note: `${mega(skipMacs)} skipping (LKAMs included) vs ${mega(denseMacs)} dense twin` },
      },
    };
  } finally {
    for (const p of plans) p.plan.dispose();
    await ort?.close();
  }
}
