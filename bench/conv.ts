/**
 * conv: a 3x3 convolution 64 → 64 channels on 32x32 images (pad 1, stride 1, no bias) at batch 1
 * and 32, and the GEMM of its im2col form (M=64, N=1024, K=576), on Parsimony (the native backend
 * when built, and each WebAssembly SIMD build; 1 and 2 threads), onnxruntime-node (CPU, 1 and 2
 * intra-op threads) and tfjs-wasm (SIMD, 1 thread).
 *
 * Every configuration's output is checked against the reference (Parsimony's first configuration)
 * before it is timed. Configurations run one after another, each closed before the next starts so
 * that no idle thread pool competes for the cores, in rounds of alternating order.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import * as tf from '@tensorflow/tfjs-core';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import type { SimdVariant } from '../src/backend/wasm/loader.js';
import type { Tensor } from '../src/tensor/tensor.js';
import {
  BenchRng, contentionLine, environment, keepAlive, printTable, round, spreadText, summarize, time, VERIFY_RELATIVE, verifyOutputs, writeResults,
  type Bench, type BenchOptions, type Cell, type Timing,
} from './harness.js';
import { buildConvModel, buildMatMulModel, OPSET } from './onnx-build.js';
import { nativeStatus } from '../src/backend/native/addon.js';

const C = 64;
const M = 64;
const H = 32;
const W = 32;
const K = 3;
const PAD = 1;
const BATCHES = [1, 32] as const;
const THREADS = [1, 2] as const;
const VARIANTS: readonly SimdVariant[] = ['simd', 'relaxed'];
/** The GEMM of the conv's im2col form at batch 1: weights [M, C·K·K] times columns [C·K·K, H·W]. */
const GEMM = { M, N: H * W, K: C * K * K } as const;

type EngineName = 'parsimony' | 'onnxruntime-node' | 'tfjs-wasm';

interface Case {
  readonly id: string;
  readonly op: 'conv' | 'gemm';
  readonly batch: number;
  readonly macs: number;
  readonly label: string;
}

const CASES: readonly Case[] = [
  ...BATCHES.map((n): Case => ({ id: `conv_n${n}`, op: 'conv', batch: n, macs: n * M * H * W * C * K * K, label: `conv N=${n}` })),
  { id: 'gemm', op: 'gemm', batch: 1, macs: GEMM.M * GEMM.N * GEMM.K, label: `gemm ${GEMM.M}x${GEMM.N}x${GEMM.K}` },
];

interface Inputs {
  /** [32, C, H, W], NCHW; batch 1 uses the first image. */
  readonly x: Float32Array;
  /** [M, C, K, K]. */
  readonly w: Float32Array;
  /** [GEMM.M, GEMM.K], row-major. */
  readonly a: Float32Array;
  /** [GEMM.K, GEMM.N], row-major. */
  readonly b: Float32Array;
}

function makeInputs(): Inputs {
  const rng = new BenchRng(20240611);
  const bound = Math.sqrt(3 / (C * K * K));
  const maxBatch = Math.max(...BATCHES);
  return {
    x: rng.floats(maxBatch * C * H * W),
    w: rng.floats(M * C * K * K, -bound, bound),
    a: rng.floats(GEMM.M * GEMM.K, -bound, bound),
    b: rng.floats(GEMM.K * GEMM.N),
  };
}

function imageBatch(x: Float32Array, n: number): Float32Array {
  return x.subarray(0, n * C * H * W);
}

/** One engine configuration, ready to compute a case: `prepare` returns the timed function and its output. */
interface Runner {
  readonly engine: EngineName;
  /** What runs the engine's kernels: Parsimony's `native` or `wasm`, onnxruntime's `cpu` provider, tfjs's `wasm`. */
  readonly backend: string;
  readonly variant: string;
  readonly threads: number;
  readonly notes: Readonly<Record<string, unknown>>;
  prepare(c: Case): Promise<{ run: () => unknown; output: () => Promise<Float32Array> }>;
  close(): Promise<void>;
}

interface ConfigSpec {
  readonly engine: EngineName;
  readonly backend: string;
  readonly variant: string;
  readonly threads: number;
  readonly open: (inputs: Inputs) => Promise<Runner>;
}

/** Imported when first needed, so that a broken build of ours becomes a skipped row and the other engines still run. */
async function loadParsimony() {
  const [{ Engine, setEngine }, { splitRange }, { gemmScratchBytes }, ops] = await Promise.all([
    import('../src/autograd/engine.js'), import('../src/backend/backend.js'), import('../src/backend/scratch.js'), import('../src/ops/index.js'),
  ]);
  return { Engine, setEngine, splitRange, gemmScratchBytes, ops };
}

/** variant: the WebAssembly build, or `native` for the native backend's best build on this CPU. */
async function openParsimony(variant: SimdVariant | 'native', threads: number, inputs: Inputs): Promise<Runner> {
  const { Engine, setEngine, splitRange, gemmScratchBytes, ops } = await loadParsimony();
  const e = await keepAlive(Engine.create(variant === 'native' ? { backend: 'native', threads } : { backend: 'wasm', threads, simd: variant }));
  const gotVariant = e.backend.native !== null ? 'native' : e.backend.variant;
  if (gotVariant !== variant || e.backend.threads !== threads) {
    const got = `${e.backend.name}, ${e.backend.threads} thread(s)`;
    e.close();
    throw new Error(`asked for the ${variant} build on ${threads} thread(s), the backend gave ${got}`);
  }
  setEngine(e);
  const w = e.tensor(inputs.w, [M, C, K, K], 'float32', e.persistent);
  const xs = new Map(BATCHES.map((n) => [n, e.tensor(imageBatch(inputs.x, n), [n, C, H, W], 'float32', e.persistent)]));
  const a = e.tensor(inputs.a, [GEMM.M, GEMM.K], 'float32', e.persistent);
  const b = e.tensor(inputs.b, [GEMM.K, GEMM.N], 'float32', e.persistent);
  const c = e.zeros([GEMM.M, GEMM.N], 'float32', e.persistent);
  const be = e.backend;
  return {
    engine: 'parsimony', backend: e.backend.kind, variant: e.backend.native?.isa ?? variant, threads,
    notes: { conv: 'ops.conv2d under engine.noGrad, engine.endStep() after each repetition', gemm: 'backend gemm kernel, output columns split across the threads' },
    async prepare(cs) {
      setEngine(e);
      if (cs.op === 'conv') {
        const x = xs.get(cs.batch as (typeof BATCHES)[number]);
        if (x === undefined) throw new Error(`no input for batch ${cs.batch}`);
        const conv = (): Tensor => e.noGrad(() => ops.conv2d(x, w, null, { padding: PAD, stride: 1 }));
        return {
          run: () => {
            conv();
            e.endStep();
          },
          output: async () => {
            const y = conv().f32().slice();
            e.endStep();
            return y;
          },
        };
      }
      const parts = splitRange(GEMM.N, be.threads);
      const bytes = gemmScratchBytes();
      const run = (): void => {
        const scratch = be.scratch(bytes);
        be.parallel('gemm', parts.map(([n0, n1], t): Parameters<typeof be.kernels.gemm> =>
          [0, 0, GEMM.M, n1 - n0, GEMM.K, 1, a.ptr, GEMM.K, b.ptr + n0 * 4, GEMM.N, 0, c.ptr + n0 * 4, GEMM.N, scratch[t] as number]));
      };
      return { run, output: async () => { run(); return c.f32().slice(); } };
    },
    async close() {
      e.close();
    },
  };
}

async function openOrt(threads: number, inputs: Inputs): Promise<Runner> {
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  };
  const sessions: ort.InferenceSession[] = [];
  return {
    engine: 'onnxruntime-node', backend: 'cpu', variant: 'cpu', threads,
    notes: { opset: OPSET, session: options, timed: 'await session.run(feeds), which returns the output as a new JS tensor', gemm: 'MatMul with the [M, K] operand as an initializer, [K, N] as the input' },
    async prepare(cs) {
      let model: Uint8Array;
      let feeds: Record<string, ort.Tensor>;
      if (cs.op === 'conv') {
        model = buildConvModel({ input: [cs.batch, C, H, W], weight: inputs.w, weightShape: [M, C, K, K], pads: [PAD, PAD, PAD, PAD], strides: [1, 1] });
        feeds = { x: new ort.Tensor('float32', imageBatch(inputs.x, cs.batch).slice(), [cs.batch, C, H, W]) };
      } else {
        model = buildMatMulModel({ aShape: [GEMM.M, GEMM.K], bShape: [GEMM.K, GEMM.N], a: inputs.a });
        feeds = { b: new ort.Tensor('float32', inputs.b.slice(), [GEMM.K, GEMM.N]) };
      }
      const session = await ort.InferenceSession.create(model, options);
      sessions.push(session);
      const run = (): Promise<ort.InferenceSession.OnnxValueMapType> => session.run(feeds);
      return {
        run,
        output: async () => {
          const y = (await run())['y'];
          if (y === undefined) throw new Error('onnxruntime-node: the session returned no output y');
          return Float32Array.from(y.data as Float32Array);
        },
      };
    },
    async close() {
      for (const s of sessions) await s.release();
    },
  };
}

const require = createRequire(import.meta.url);
const round4 = (x: number): number => round(x, 4);
let tfjsReady: Promise<void> | null = null;

function initTfjs(): Promise<void> {
  tfjsReady ??= (async () => {
    const dist = join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + '/';
    setWasmPaths(dist);
    if (!(await tf.setBackend('wasm'))) throw new Error(`tfjs: the wasm backend did not initialise (binaries looked up in ${dist})`);
    await tf.ready();
  })();
  return tfjsReady;
}

/** NCHW → NHWC. */
function toNhwc(x: Float32Array, n: number, c: number, h: number, w: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < n; i++) for (let ch = 0; ch < c; ch++) for (let p = 0; p < h * w; p++) out[(i * h * w + p) * c + ch] = x[(i * c + ch) * h * w + p] as number;
  return out;
}

function toNchw(x: Float32Array, n: number, c: number, h: number, w: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < n; i++) for (let ch = 0; ch < c; ch++) for (let p = 0; p < h * w; p++) out[(i * c + ch) * h * w + p] = x[(i * h * w + p) * c + ch] as number;
  return out;
}

/** [M, C, KH, KW] → [KH, KW, C, M], the filter layout of tf.conv2d. */
function toHwio(w: Float32Array): Float32Array {
  const out = new Float32Array(w.length);
  for (let m = 0; m < M; m++) for (let c = 0; c < C; c++) for (let k = 0; k < K * K; k++) out[(k * C + c) * M + m] = w[(m * C + c) * K * K + k] as number;
  return out;
}

async function openTfjs(inputs: Inputs): Promise<Runner> {
  await initTfjs();
  const held: tf.Tensor[] = [];
  const w = tf.tensor4d(toHwio(inputs.w), [K, K, C, M]);
  held.push(w);
  return {
    engine: 'tfjs-wasm', backend: 'wasm', variant: tf.env().getBool('WASM_HAS_SIMD_SUPPORT') ? 'simd' : 'scalar', threads: 1,
    notes: {
      backend: tf.getBackend(),
      multithread: tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT'),
      timed: 'tf.conv2d / tf.matMul on tensors already in NHWC / HWIO layout, result disposed; layout transposes are done before timing',
    },
    async prepare(cs) {
      if (cs.op === 'conv') {
        const x = tf.tensor4d(toNhwc(imageBatch(inputs.x, cs.batch), cs.batch, C, H, W), [cs.batch, H, W, C]);
        held.push(x);
        const conv = (): tf.Tensor4D => tf.conv2d(x, w, 1, PAD, 'NHWC');
        return {
          run: () => conv().dispose(),
          output: async () => {
            const y = conv();
            const data = toNchw(y.dataSync() as Float32Array, cs.batch, M, H, W);
            y.dispose();
            return data;
          },
        };
      }
      const a = tf.tensor2d(inputs.a, [GEMM.M, GEMM.K]);
      const b = tf.tensor2d(inputs.b, [GEMM.K, GEMM.N]);
      held.push(a, b);
      return {
        run: () => tf.matMul(a, b).dispose(),
        output: async () => {
          const y = tf.matMul(a, b);
          const data = Float32Array.from(y.dataSync() as Float32Array);
          y.dispose();
          return data;
        },
      };
    },
    async close() {
      for (const t of held) t.dispose();
    },
  };
}

function configs(): ConfigSpec[] {
  const out: ConfigSpec[] = [];
  const native = nativeStatus();
  for (const threads of THREADS) {
    if (native.ok) out.push({ engine: 'parsimony', backend: 'native', variant: native.addon.isas()[0] as string, threads, open: (i) => openParsimony('native', threads, i) });
    for (const variant of VARIANTS) out.push({ engine: 'parsimony', backend: 'wasm', variant, threads, open: (i) => openParsimony(variant, threads, i) });
  }
  for (const threads of THREADS) out.push({ engine: 'onnxruntime-node', backend: 'cpu', variant: 'cpu', threads, open: (i) => openOrt(threads, i) });
  out.push({ engine: 'tfjs-wasm', backend: 'wasm', variant: 'simd', threads: 1, open: (i) => openTfjs(i) });
  return out;
}

interface Row {
  readonly engine: EngineName;
  readonly backend: string;
  readonly variant: string;
  readonly threads: number;
  readonly batch: number;
  readonly op: 'conv' | 'gemm';
  readonly median_ms: number;
  readonly gflops: number;
  readonly min_ms: number;
  readonly p10_ms: number;
  readonly p90_ms: number;
  readonly reps: number;
  readonly warmup: number;
  /** Median of each round, to show whether one round met more interference than the others. */
  readonly round_medians_ms: readonly number[];
  readonly macs: number;
  readonly verified_relative_diff: number;
}

interface Skipped {
  readonly engine: EngineName;
  readonly backend: string;
  readonly variant: string;
  readonly threads: number;
  readonly reason: string;
}

function configLabel(c: { engine: string; backend: string; variant: string; threads: number }): string {
  return `${c.engine} ${c.backend === c.variant ? c.backend : `${c.backend} ${c.variant}`} t${c.threads}`;
}

/** Configurations run in this many rounds, alternating their order, so that a burst of load from elsewhere falls on all of them. */
function roundsFor(options: BenchOptions): number {
  return options.quick ? 1 : Math.min(3, options.reps);
}

interface Measured {
  readonly spec: ConfigSpec;
  readonly cs: Case;
  readonly samples: number[];
  readonly roundMedians: number[];
  worstAgreement: number;
}

export const convBench: Bench = {
  name: 'conv',
  defaults: { warmup: 5, reps: 30 },
  quick: { warmup: 1, reps: 3 },
  description: 'conv 64→64 3x3 on 32x32 at N=1 and N=32, and its GEMM (64x1024x576): Parsimony vs onnxruntime-node vs tfjs-wasm',
  async run(options: BenchOptions) {
    const inputs = makeInputs();
    const warmup = options.warmup;
    const rounds = roundsFor(options);
    const repsPerRound = Math.ceil(options.reps / rounds);
    const skipped: Skipped[] = [];
    const notes: Record<string, unknown> = {};
    const reference = new Map<string, { label: string; data: Float32Array }>();
    const measured = new Map<string, Measured>();
    const unavailable = new Set<string>();
    const all = configs();

    for (let pass = 0; pass < rounds; pass++) {
      for (const spec of pass % 2 === 0 ? all : [...all].reverse()) {
        const label = configLabel(spec);
        if (unavailable.has(label)) continue;
        let runner: Runner;
        try {
          runner = await spec.open(inputs);
        } catch (e) {
          const reason = (e as Error).message;
          console.error(`conv: ${label} is unavailable: ${reason}`);
          skipped.push({ engine: spec.engine, backend: spec.backend, variant: spec.variant, threads: spec.threads, reason });
          unavailable.add(label);
          continue;
        }
        notes[label] = runner.notes;
        try {
          for (const cs of CASES) {
            const key = `${label}|${cs.id}`;
            if (unavailable.has(key)) continue;
            let prepared: Awaited<ReturnType<Runner['prepare']>>;
            let y: Float32Array;
            try {
              prepared = await runner.prepare(cs);
              y = await prepared.output();
            } catch (e) {
              const reason = `${cs.label}: ${(e as Error).message}`;
              console.error(`conv: ${label} cannot run ${reason}`);
              skipped.push({ engine: spec.engine, backend: spec.backend, variant: spec.variant, threads: spec.threads, reason });
              unavailable.add(key);
              continue;
            }
            let ref = reference.get(cs.id);
            if (ref === undefined) {
              ref = { label, data: y };
              reference.set(cs.id, ref);
            }
            const agreement = verifyOutputs(`${label} ${cs.label}`, y, ref.data, ref.label);
            const t: Timing = await time(prepared.run, { warmup, reps: repsPerRound });
            let m = measured.get(key);
            if (m === undefined) {
              m = { spec, cs, samples: [], roundMedians: [], worstAgreement: 0 };
              measured.set(key, m);
            }
            m.samples.push(...t.samples);
            m.roundMedians.push(round4(t.median));
            m.worstAgreement = Math.max(m.worstAgreement, agreement.relative);
            console.error(`conv: round ${pass + 1}/${rounds} ${label} ${cs.label}: median ${t.median.toFixed(3)} ms`);
          }
        } finally {
          await runner.close();
        }
      }
    }

    const rows: Row[] = [];
    for (const cs of CASES) {
      for (const spec of all) {
        const m = measured.get(`${configLabel(spec)}|${cs.id}`);
        if (m === undefined) continue;
        const t = summarize(m.samples);
        rows.push({
          engine: spec.engine, backend: spec.backend, variant: spec.variant, threads: spec.threads, batch: cs.batch, op: cs.op,
          median_ms: round4(t.median), gflops: round((2 * cs.macs) / (t.median * 1e6), 3),
          min_ms: round4(t.min), p10_ms: round4(t.p10), p90_ms: round4(t.p90), reps: t.n, warmup,
          round_medians_ms: m.roundMedians, macs: cs.macs,
          verified_relative_diff: Number(m.worstAgreement.toExponential(3)),
        });
      }
    }

    /** variant: a WebAssembly build, `native` (Parsimony's native backend), or null for the engine's only one. */
    const find = (engine: EngineName, variant: string | null, threads: number, id: string): Row | undefined => {
      const cs = CASES.find((c) => c.id === id);
      if (cs === undefined) return undefined;
      const fits = (r: Row): boolean => variant === null || (variant === 'native' ? r.backend === 'native' : r.backend !== 'native' && r.variant === variant);
      return rows.find((r) => r.engine === engine && fits(r) && r.threads === threads && r.op === cs.op && r.batch === cs.batch);
    };
    /** Speed of a over speed of b (= median time of b / median time of a): above 1, a is faster. */
    const speedRatio = (a: Row | undefined, b: Row | undefined): number | null =>
      a === undefined || b === undefined ? null : round(b.median_ms / a.median_ms, 3);
    const perCase = (f: (id: string) => number | null): Record<string, number | null> =>
      Object.fromEntries(CASES.map((c) => [c.id, f(c.id)]));

    const ratios: Record<string, unknown> = {
      definition: 'speed ratios from medians of this run: median time of the second ÷ median time of the first (= GFLOP/s of the first ÷ GFLOP/s of the second); above 1 the first is faster',
    };
    ratios['parsimony relaxed t1 / tfjs-wasm'] = perCase((id) => speedRatio(find('parsimony', 'relaxed', 1, id), find('tfjs-wasm', null, 1, id)));
    ratios['parsimony simd t1 / tfjs-wasm'] = perCase((id) => speedRatio(find('parsimony', 'simd', 1, id), find('tfjs-wasm', null, 1, id)));
    for (const v of VARIANTS) ratios[`parsimony ${v} t2 / t1`] = { conv_n32: speedRatio(find('parsimony', v, 2, 'conv_n32'), find('parsimony', v, 1, 'conv_n32')) };
    for (const v of VARIANTS) {
      for (const t of THREADS) ratios[`parsimony ${v} t${t} / onnxruntime-node t${t}`] = perCase((id) => speedRatio(find('parsimony', v, t, id), find('onnxruntime-node', null, t, id)));
    }
    for (const t of THREADS) {
      ratios[`parsimony native t${t} / onnxruntime-node t${t}`] = perCase((id) => speedRatio(find('parsimony', 'native', t, id), find('onnxruntime-node', null, t, id)));
      ratios[`parsimony native t${t} / parsimony relaxed t${t}`] = perCase((id) => speedRatio(find('parsimony', 'native', t, id), find('parsimony', 'relaxed', t, id)));
    }
    ratios['parsimony native t2 / t1'] = { conv_n32: speedRatio(find('parsimony', 'native', 2, 'conv_n32'), find('parsimony', 'native', 1, 'conv_n32')) };
    ratios['onnxruntime-node t2 / t1'] = { conv_n32: speedRatio(find('onnxruntime-node', null, 2, 'conv_n32'), find('onnxruntime-node', null, 1, 'conv_n32')) };

    const table: Cell[][] = rows.map((r) => [CASES.find((c) => c.op === r.op && c.batch === r.batch)?.label ?? r.op, r.engine, r.backend, r.variant, r.threads, r.batch,
      r.median_ms, r.gflops, spreadText({ median: r.median_ms, p10: r.p10_ms, p90: r.p90_ms } as Timing), '']);
    for (const s of skipped) table.push([null, s.engine, s.backend, s.variant, s.threads, null, null, null, null, `not measured: ${s.reason}`]);
    printTable(`conv (${rounds} round(s) of warm-up ${warmup} + ${repsPerRound} repetitions per configuration; median and p10/p90 spread of all repetitions)`, ['case', 'engine', 'backend', 'variant', 'threads', 'batch', 'median ms', 'GFLOP/s', 'spread p10/p90', 'note'], table);

    const ratioRows: Cell[][] = [];
    for (const [k, v] of Object.entries(ratios)) {
      if (k === 'definition') continue;
      for (const [id, r] of Object.entries(v as Record<string, number | null>)) ratioRows.push([k, CASES.find((c) => c.id === id)?.label ?? id, r]);
    }
    printTable('speed ratios, same run (above 1: the first is faster)', ['ratio', 'case', 'value'], ratioRows);

    const env = environment(options, ['onnxruntime-node', 'onnxruntime-common', '@tensorflow/tfjs-core', '@tensorflow/tfjs-backend-wasm', 'onnx-proto', 'typescript', 'assemblyscript'], {
      onnxruntime_versions: ort.env.versions,
      parsimony_variants: [...VARIANTS],
      parsimony_threads: [...THREADS],
      threads_by_row: 'each row names its own SIMD variant and thread count',
      schedule: `${rounds} round(s); in each, every configuration is opened, verified, warmed up ${warmup} times, timed ${repsPerRound} times and closed before the next; order reversed every other round; a row's statistics pool all its repetitions`,
      verification: `before timing, each configuration's output is compared with the reference of its case: max |diff| / max |reference| must stay below ${VERIFY_RELATIVE}`,
      verification_reference: Object.fromEntries([...reference].map(([id, r]) => [id, r.label])),
      shapes: { conv: `x [N, ${C}, ${H}, ${W}] · w [${M}, ${C}, ${K}, ${K}], pad ${PAD}, stride 1, no bias`, gemm: `[${GEMM.M}, ${GEMM.K}] · [${GEMM.K}, ${GEMM.N}]` },
      notes,
    });
    console.log(contentionLine(env));
    const path = writeResults('conv', { rows, skipped, env, ratios });
    console.log(`\nwrote ${path}`);
    if (skipped.some((s) => s.engine === 'parsimony')) throw new Error(`conv: ${skipped.filter((s) => s.engine === 'parsimony').map(configLabel).join(', ')} could not run (see "skipped" in ${path})`);
  },
};
