/**
 * model: a whole network at inference. `npm run bench -- model [--model FILE]` times, at batch 1
 * (latency, one image per call, the images taken in turn) and batch 64 (throughput), on 1 and 2
 * threads, on each of our backends (native when the addon is built, and wasm):
 * - ours dense: the plan of the dense twin (same weights, no LKAMs, every kernel computed);
 * - ours parsimonious: what one deploys: the gated model without the kernels that no calibration image
 *   switches on (static pruning), skipping per image the kernels it switches off;
 * - ours pruned: the same pruned model with every remaining kernel computed (static pruning only);
 * - onnxruntime-node on the dense twin and on the pruned model (exported with src/io's ONNX exporter);
 * - tfjs-wasm on the dense twin (batch norm folded into the convs, fused conv + bias + ReLU).
 * FILE is a model file (src/io); `--onnx FILE` imports an ONNX file (onnxruntime-node's dense row runs
 * the file itself; a network without LKAMs gets them added and calibrated as below); without either,
 * fmnist-vgg5 with LKAMs is built from seeded random weights and its switch biases calibrated so that
 * about a third of the kernels are on. Models of 25 M MACs and more run with 16 timed images at batch 1
 * only. Last, the dense plan is profiled per step (CPU time, 1 thread, batch 1) with each conv's GFLOP/s.
 *
 * Images: the test images of the built-in Fashion-MNIST subset (normalised as training does) when the
 * model reads 1x28x28, else seeded random ones; never-on kernels are found on other images (the
 * subset's training images, or another seeded random set), so pruning is not fitted to the timed ones. Every configuration's outputs are checked before it is
 * timed: ours against the training graph, the other engines against ours.
 */
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import * as tf from '@tensorflow/tfjs-core';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import type { Engine } from '../src/autograd/engine.js';
import type { InferencePlan } from '../src/infer/index.js';
import type { Module } from '../src/nn/module.js';
import { tfForward, type TfLayer } from '../web/tf-layers.js';
import type { NormalizeOptions } from '../src/data/normalization.js';
import {
  BenchRng, contentionLine, environment, keepAlive, printTable, round, summarize, time, UsageError, verifyOutputs, writeResults, VERIFY_RELATIVE,
  type Bench, type BenchOptions, type Cell, type Timing,
} from './harness.js';

const THREADS = [1, 2] as const;

/** How much work a run does: small models get many images and batch 64, ImageNet-sized ones a few. */
interface Scale {
  /** Images that are timed and over which switch statistics and the MAC reduction are measured. */
  readonly calibration: number;
  /** Images on which the kernels that are never on (removed by static pruning) are found. */
  readonly pruning: number;
  /** Batch sizes timed; the largest is the plans' maxBatch, the images batch 1 takes in turn and those verified. */
  readonly batches: readonly number[];
}
const SMALL: Scale = { calibration: 512, pruning: 2048, batches: [1, 64] };
const LARGE: Scale = { calibration: 16, pruning: 32, batches: [1] };
/** Dense multiply-adds per image from which a model runs at the LARGE scale. */
const LARGE_MACS = 2.5e7;
/** Fraction of the kernels of the random model that are on, on average. */
const TARGET_ON = 1 / 3;
const SEED = 20241125;

type EngineName = 'parsimony' | 'onnxruntime-node' | 'tfjs-wasm';
/** Our backends: the native kernels (when built) and WebAssembly. */
type OurBackend = 'native' | 'wasm';
type Mode = 'dense' | 'parsimonious' | 'pruned';

/** `--NAME FILE` or `--NAME=FILE` from the command line (bench/main.ts leaves --model and --onnx to us). */
function fileArgument(argv: readonly string[], name: 'model' | 'onnx'): string | null {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === `--${name}`) {
      const v = argv[i + 1];
      if (v === undefined || v.startsWith('--')) throw new UsageError(`--${name} needs a file`);
      return v;
    }
    if (a.startsWith(`--${name}=`)) return a.slice(`--${name}=`.length);
  }
  return null;
}

export async function loadParsimony() {
  const [engineMod, infer, io, onnx, lkam, layers, zoo, data, native] = await Promise.all([
    import('../src/autograd/engine.js'), import('../src/infer/index.js'), import('../src/io/index.js'), import('../src/onnx.js'), import('../src/nn/lkam.js'),
    import('../src/nn/layers.js'), import('../src/nn/zoo.js'), import('../src/data/index.js'), import('../src/backend/native/addon.js'),
  ]);
  return { ...engineMod, ...infer, ...io, ...onnx, ...lkam, ...layers, ...zoo, ...data, ...native };
}
type P = Awaited<ReturnType<typeof loadParsimony>>;

/** Test (or training) images of the built-in subset, normalised; null when the model does not read 1x28x28 or the subset is missing. */
function fashionImages(p: P, shape: readonly number[], n: number, normalize: NormalizeOptions, split: 'test' | 'train' = 'test'): Float32Array | null {
  if (shape.length !== 3 || shape[0] !== 1 || shape[1] !== 28 || shape[2] !== 28) return null;
  try {
    const d = p.loadFashionMnist({ subset: 'builtin' })[split];
    const count = Math.min(n, d.length);
    return p.normalizeImages(d.pixels.subarray(0, count * 784), d.shape, normalize);
  } catch {
    return null;
  }
}

/**
 * Calibrates the LKAM switches of a randomly initialised gated model, gate by gate in forward order:
 * a fifth of the kernels never on (zero weights, bias -1), a tenth always on, and the rest on for the
 * fraction of the calibration images that makes the mean TARGET_ON, from switch weights w and bias b
 * set so that the pre-activation w·f + b crosses 0 at the right quantile of w·f.
 */
function calibrateSwitches(p: P, e: Engine, model: Module, x: Float32Array, shape: readonly number[]): void {
  const rng = new BenchRng(SEED + 1);
  const n = x.length / shape.reduce((a, b) => a * b, 1);
  const input = e.tensor(x, [n, ...shape], 'float32', e.persistent);
  const neverFraction = 0.2, alwaysFraction = 0.1;
  const rate = (TARGET_ON - alwaysFraction) / (1 - neverFraction - alwaysFraction);
  for (const g of p.gates(model)) {
    const M = g.lkam.switches, F = g.lkam.fc.inFeatures;
    const w = g.lkam.fc.weight.f32(), b = g.lkam.fc.bias!.f32();
    const direction = rng.floats(M * F, -1, 1);
    // Switch values s = clamp(0.5 + eps w·f, 0, 1) stay in the linear range, so z = w·f = (s - 0.5) / eps.
    let eps = 1e-4;
    let z = new Float64Array(0);
    for (let attempt = 0; attempt < 6; attempt++) {
      for (let i = 0; i < w.length; i++) w[i] = eps * (direction[i] as number);
      b.fill(0.5);
      const s = e.noGrad(() => p.recordGates(() => model.predict(input)).readings.find((r) => r.gate === g)!.switches.values.f32().slice());
      e.endStep();
      if (s.every((v) => v > 0.05 && v < 0.95)) {
        z = Float64Array.from(s, (v) => (v - 0.5) / eps);
        break;
      }
      eps /= 10;
    }
    if (z.length === 0) throw new Error(`calibrating ${g.lkam.switches} switches: the LKAM features are too large to keep the switches linear`);
    const kinds = Array.from({ length: M }, (_, m) => m).sort(() => rng.next() - 0.5);
    for (let j = 0; j < M; j++) {
      const m = kinds[j] as number;
      const row = w.subarray(m * F, (m + 1) * F);
      if (j < neverFraction * M || j >= (1 - alwaysFraction) * M) {
        row.fill(0);
        b[m] = j < neverFraction * M ? -1 : 1;
        continue;
      }
      const values = Array.from({ length: n }, (_, i) => z[i * M + m] as number).sort((u, v) => u - v);
      const q = values[Math.min(n - 1, Math.floor((1 - rate) * n))] as number;
      const spread = Math.max(1e-6, (values[n - 1] as number) - (values[0] as number));
      const scale = 4 / spread;
      for (let f = 0; f < F; f++) row[f] = scale * (direction[m * F + f] as number);
      b[m] = -scale * q;
    }
  }
}

interface Models {
  readonly name: string;
  readonly description: string;
  readonly inputShape: readonly number[];
  readonly gated: Module;
  readonly dense: Module;
  readonly pruned: Module;
  readonly images: Float32Array;
  readonly imageSource: string;
  readonly pruningSource: string;
  readonly removed: Record<string, number[]>;
  readonly hasGates: boolean;
  readonly scale: Scale;
  /** The plans' maxBatch: the largest batch timed. */
  readonly maxBatch: number;
  /** The ONNX file the model came from (onnxruntime-node's dense session runs it), or null. */
  readonly onnxFile: { readonly bytes: Uint8Array; readonly input: string; readonly output: string } | null;
}

/** Where the model comes from: a model file (src/io), an ONNX file (imported; ONNX Runtime runs the file itself), or neither (the seeded random gated fmnist-vgg5). */
export interface ModelSource {
  readonly model: string | null;
  readonly onnx: string | null;
}

export async function buildModels(p: P, e: Engine, source: ModelSource): Promise<Models> {
  let gated: Module;
  let inputShape: readonly number[];
  let name: string;
  let description: string;
  // ONNX files record no normalisation: their images get Fashion-MNIST's, as the CLI trained with.
  let normalize: NormalizeOptions = p.FASHION_MNIST_NORMALIZE;
  let onnxFile: Models['onnxFile'] = null;
  let calibrate = false;
  if (source.onnx !== null) {
    const bytes = new Uint8Array(readFileSync(source.onnx));
    const { importOnnx } = await import('../src/onnx.js');
    const imported = importOnnx(bytes, { file: source.onnx });
    inputShape = imported.inputShape;
    name = basename(source.onnx).replace(/\.[^.]*$/, '');
    onnxFile = { bytes, input: imported.input, output: imported.output };
    if (p.gates(imported.model).length > 0) {
      gated = imported.model;
      description = `ONNX file ${source.onnx} (imported with its LKAMs; onnxruntime-node runs the file itself as the dense row)`;
    } else {
      p.manualSeed(SEED);
      gated = p.addLKAMs(imported.model, {});
      calibrate = true;
      description = `ONNX file ${source.onnx} (dense: the file as imported, and as onnxruntime-node runs it; gated: LKAMs added before every conv but the first, seeded, switch biases set so that about ${Math.round(100 * TARGET_ON)}% of the kernels are on)`;
    }
  } else if (source.model !== null) {
    const loaded = p.loadModel(source.model);
    normalize = p.modelNormalize(loaded.meta);
    gated = loaded.model;
    inputShape = loaded.meta.inputShape;
    name = basename(source.model).replace(/\.[^.]*$/, '');
    description = `model file ${source.model}`;
  } else {
    inputShape = [1, 28, 28];
    p.manualSeed(SEED);
    gated = p.addLKAMs(p.fmnistVgg5(), {});
    calibrate = true;
    name = 'fmnist-vgg5-lkam-random';
    description = `fmnist-vgg5 with LKAMs, seeded random weights (seed ${SEED}), switch biases set so that about ${Math.round(100 * TARGET_ON)}% of the kernels are on (${name}; not a trained model)`;
  }
  gated.eval();
  const per = inputShape.reduce((a, b) => a * b, 1);
  const denseMacsPerImage = (() => {
    const plan = p.compile(gated, { inputShape, maxBatch: 1, backend: e.backend, threads: 1 });
    try {
      return plan.denseMacs;
    } finally {
      plan.dispose();
    }
  })();
  const scale = denseMacsPerImage >= LARGE_MACS ? LARGE : SMALL;
  const maxBatch = Math.max(...scale.batches);
  const fashion = fashionImages(p, inputShape, scale.calibration, normalize);
  const images = fashion ?? new BenchRng(SEED + 2).floats(scale.calibration * per, -1, 1);
  const imageSource = fashion !== null ? `the first ${fashion.length / per} test images of the built-in Fashion-MNIST subset, normalised (mean ${normalize.mean.join(', ')}, std ${normalize.std.join(', ')})` : `${scale.calibration} seeded random images uniform in [-1, 1]`;
  if (calibrate) calibrateSwitches(p, e, gated, images, inputShape);
  const hasGates = p.gates(gated).length > 0;
  const dense = p.denseTwin(gated, inputShape);
  const pruning = fashionImages(p, inputShape, scale.pruning, normalize, 'train') ?? new BenchRng(SEED + 3).floats(scale.pruning * per, -1, 1);
  const pruningSource = fashion !== null ? `the first ${pruning.length / per} training images of the built-in Fashion-MNIST subset` : `${scale.pruning} other seeded random images`;
  const probe = p.compile(gated, { inputShape, maxBatch, backend: e.backend, threads: 1 });
  const found = p.neverOnRemovals(gated, probe, pruning);
  probe.dispose();
  // Convs whose kernels cannot go (a residual add needs its channels on both sides) keep them: those are still skipped per image.
  let removed = found;
  let pruned: Module;
  try {
    pruned = p.pruneStatic(gated, found, { inputShape });
  } catch (err) {
    if (!(err instanceof p.PruneError)) throw err;
    removed = new Map();
    for (const [path, kernels] of found) {
      const next = new Map([...removed, [path, kernels]]);
      try {
        p.pruneStatic(gated, next, { inputShape });
        removed = next;
      } catch (e2) {
        if (!(e2 instanceof p.PruneError)) throw e2;
      }
    }
    pruned = p.pruneStatic(gated, removed, { inputShape });
  }
  pruned.eval();
  dense.eval();
  return { name, description, inputShape, gated, dense, pruned, images, imageSource, pruningSource, removed: Object.fromEntries(removed), hasGates, scale, maxBatch, onnxFile };
}

/** The training graph's eval outputs for `n` images (the reference every engine is checked against). */
function graphOutputs(e: Engine, m: Module, x: Float32Array, shape: readonly number[], n: number): Float32Array {
  const per = shape.reduce((a, b) => a * b, 1);
  const out = e.noGrad(() => m.predict(e.tensor(x.subarray(0, n * per), [n, ...shape])).f32().slice());
  e.endStep();
  return out;
}

/** How many of n images' predicted classes (arg max of the outputs) differ between a and b, and the largest output difference. */
function predictionChanges(a: Float32Array, b: Float32Array, n: number): { images: number; predictions: number; maxAbsDiff: number } {
  const classes = a.length / n;
  let predictions = 0, maxAbsDiff = 0;
  const argmax = (x: Float32Array, i: number): number => {
    let best = 0;
    for (let c = 1; c < classes; c++) if ((x[i * classes + c] as number) > (x[i * classes + best] as number)) best = c;
    return best;
  };
  for (let i = 0; i < n; i++) if (argmax(a, i) !== argmax(b, i)) predictions++;
  for (let j = 0; j < a.length; j++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs((a[j] as number) - (b[j] as number)));
  return { images: n, predictions, maxAbsDiff };
}

/** One engine configuration: `prepare` returns the timed call for a mode and batch, and its output on the first images. */
interface Runner {
  readonly engine: EngineName;
  /** What runs the kernels: ours `native` or `wasm`, onnxruntime's `cpu` provider, tfjs's `wasm`. */
  readonly backend: string;
  readonly threads: number;
  readonly notes: Readonly<Record<string, unknown>>;
  readonly modes: readonly Mode[];
  prepare(mode: Mode, batch: number): Promise<{ run: () => unknown; output: () => Promise<Float32Array> }>;
  close(): Promise<void>;
}

interface Shared {
  readonly p: P;
  readonly models: Models;
  readonly per: number;
  /** Per mode, the reference outputs of the first maxBatch images. */
  readonly reference: Record<Mode, Float32Array>;
  readonly onnx: Partial<Record<Mode, { bytes: Uint8Array; input: string; output: string }>>;
}

/** Image i of the batch-1 rotation. */
function image(s: Shared, i: number): Float32Array {
  return s.models.images.subarray((i % s.models.maxBatch) * s.per, (i % s.models.maxBatch + 1) * s.per);
}

async function openParsimony(s: Shared, threads: number, backend: OurBackend): Promise<Runner> {
  const { p, models } = s;
  const e = await keepAlive(p.Engine.create({ backend, threads }));
  if (e.backend.threads !== threads) {
    e.close();
    throw new Error(`asked for ${threads} thread(s), the backend gave ${e.backend.threads}`);
  }
  const compileFor = (m: Module, skip: boolean): InferencePlan => p.compile(m, { inputShape: models.inputShape, maxBatch: models.maxBatch, skip, backend: e.backend });
  const plans: Record<Mode, InferencePlan> = { dense: compileFor(models.dense, true), parsimonious: compileFor(models.pruned, true), pruned: compileFor(models.pruned, false) };
  const whole = models.images.subarray(0, models.maxBatch * s.per);
  return {
    engine: 'parsimony', backend, threads, modes: ['dense', 'parsimonious', 'pruned'],
    notes: {
      kernels: e.backend.name,
      timed: 'plan.run(images): copy in, every step, copy out (a new Float32Array); batch 1 takes the 64 images in turn',
      plans: Object.fromEntries(Object.entries(plans).map(([k, v]) => [k, v.describe()])),
    },
    async prepare(mode, batch) {
      const plan = plans[mode];
      let i = 0;
      const run = batch === 1 ? () => plan.run(image(s, i++)) : () => plan.run(whole);
      return { run, output: async () => plan.run(whole) };
    },
    async close() {
      for (const plan of Object.values(plans)) plan.dispose();
      e.close();
    },
  };
}

async function openOrt(s: Shared, threads: number): Promise<Runner> {
  const options: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' };
  const sessions = new Map<Mode, ort.InferenceSession>();
  const modes = (['dense', 'pruned'] as const).filter((m) => s.onnx[m] !== undefined);
  for (const mode of modes) sessions.set(mode, await ort.InferenceSession.create(s.onnx[mode]!.bytes, options));
  const shape = s.models.inputShape;
  const B = s.models.maxBatch;
  const singles = Array.from({ length: B }, (_, i) => new ort.Tensor('float32', image(s, i).slice(), [1, ...shape]));
  const whole = new ort.Tensor('float32', s.models.images.slice(0, B * s.per), [B, ...shape]);
  return {
    engine: 'onnxruntime-node', backend: 'cpu', threads, modes,
    notes: { session: options, timed: 'await session.run({input}) (outputs returned as new JS tensors); batch 1 takes the 64 images in turn', graph: 'src/io exportOnnx, opset 13' },
    async prepare(mode, batch) {
      const session = sessions.get(mode)!;
      const { input, output } = s.onnx[mode]!;
      let i = 0;
      const run = batch === 1 ? () => session.run({ [input]: singles[i++ % B]! }) : () => session.run({ [input]: whole });
      return {
        run,
        output: async () => {
          const y = (await session.run({ [input]: whole }))[output];
          if (y === undefined) throw new Error(`onnxruntime-node: no output ${output}`);
          return Float32Array.from(y.data as Float32Array);
        },
      };
    },
    async close() {
      for (const session of sessions.values()) await session.release();
    },
  };
}

const require = createRequire(import.meta.url);
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

/** A dense network as tfjs layers (web/tf-layers.ts): convs with their batch norm folded, fused with bias and ReLU. */
export function tfjsLayers(p: P, model: Module): TfLayer[] {
  const build = (m: Module): TfLayer[] => {
    if (m instanceof p.Sequential) {
      const parts: TfLayer[] = [];
      const layers = m.layers;
      for (let i = 0; i < layers.length; i++) {
        const l = layers[i] as Module;
        if (l instanceof p.Conv2d) {
          const bn = layers[i + 1] instanceof p.BatchNorm2d ? (layers[++i] as InstanceType<P['BatchNorm2d']>) : null;
          const relu = layers[i + 1] instanceof p.ReLU;
          if (relu) i++;
          parts.push(conv(l, bn, relu));
          continue;
        }
        parts.push(...build(l));
      }
      return parts;
    }
    if (m instanceof p.Conv2d) return [conv(m, null, false)];
    if (m instanceof p.ReLU) return [{ op: 'relu' }];
    if (m instanceof p.Dropout) return [];
    if (m instanceof p.MaxPool2d || m instanceof p.AvgPool2d) {
      // tfjs leaves an average pool's padding out of the count, and has no ceil mode.
      const [ph, pw] = m.padding;
      if (ph !== pw || (ph !== 0 && m instanceof p.AvgPool2d) || m.ceilMode) throw new Error(`tfjs: ${m.type} with padding ${ph}x${pw}${m.ceilMode ? ', ceil mode' : ''} is not built here`);
      return [{ op: 'pool', kind: m instanceof p.MaxPool2d ? 'max' : 'avg', kernel: m.kernel, strides: m.stride, pad: ph }];
    }
    if (m instanceof p.GlobalAvgPool) return [{ op: 'global', kind: 'avg' }];
    if (m instanceof p.GlobalMaxPool) return [{ op: 'global', kind: 'max' }];
    if (m instanceof p.Flatten) return [{ op: 'flatten' }];
    if (m instanceof p.Linear) {
      const w = m.weight.f32();
      const weight = new Array<number>(m.inFeatures * m.outFeatures);
      for (let o = 0; o < m.outFeatures; o++) for (let i = 0; i < m.inFeatures; i++) weight[i * m.outFeatures + o] = w[o * m.inFeatures + i] as number;
      return [{ op: 'linear', weight, inFeatures: m.inFeatures, outFeatures: m.outFeatures, bias: m.bias === null ? null : Array.from(m.bias.f32()) }];
    }
    if (m instanceof p.Residual) return [{ op: 'residual', body: build(m.body), shortcut: m.shortcut === null ? null : build(m.shortcut) }];
    throw new Error(`tfjs: no builder for layer type ${m.type}`);
  };
  const conv = (c: InstanceType<P['Conv2d']>, bn: InstanceType<P['BatchNorm2d']> | null, relu: boolean): TfLayer => {
    if (c.groups !== 1 || c.dilation[0] !== 1 || c.dilation[1] !== 1) throw new Error('tfjs: grouped or dilated convs are not built here');
    const [KH, KW] = c.kernel;
    const M = c.outChannels, C = c.inChannels;
    const w = c.weight.f32();
    const scale = new Float64Array(M).fill(1), shift = new Float64Array(M);
    if (bn !== null) {
      const g = bn.gamma.f32(), be = bn.beta.f32(), mu = bn.runningMean.f32(), va = bn.runningVar.f32();
      for (let m = 0; m < M; m++) {
        scale[m] = (g[m] as number) / Math.sqrt((va[m] as number) + bn.eps);
        shift[m] = (be[m] as number) - (mu[m] as number) * (scale[m] as number);
      }
    }
    const hwio = new Float32Array(M * C * KH * KW);
    for (let m = 0; m < M; m++) for (let ch = 0; ch < C; ch++) for (let k = 0; k < KH * KW; k++) hwio[(k * C + ch) * M + m] = (w[(m * C + ch) * KH * KW + k] as number) * (scale[m] as number);
    const bias = Array.from({ length: M }, (_, m) => Math.fround((c.bias === null ? 0 : (c.bias.f32()[m] as number) * (scale[m] as number)) + (shift[m] as number)));
    return { op: 'conv', filter: Array.from(hwio), shape: [KH, KW, C, M], bias, strides: c.stride, pad: c.padding, relu };
  };
  return build(model);
}

async function openTfjs(s: Shared): Promise<Runner> {
  await initTfjs();
  const { forward, held } = tfForward(tf, tfjsLayers(s.p, s.models.dense));
  const [C, H, W] = s.models.inputShape as [number, number, number];
  const nhwc = (x: Float32Array, n: number): tf.Tensor4D => {
    const out = new Float32Array(x.length);
    for (let i = 0; i < n; i++) for (let c = 0; c < C; c++) for (let q = 0; q < H * W; q++) out[(i * H * W + q) * C + c] = x[(i * C + c) * H * W + q] as number;
    return tf.tensor4d(out, [n, H, W, C]);
  };
  const B = s.models.maxBatch;
  const singles = Array.from({ length: B }, (_, i) => nhwc(image(s, i), 1));
  const whole = nhwc(s.models.images.subarray(0, B * s.per), B);
  held.push(...singles, whole);
  return {
    engine: 'tfjs-wasm', backend: 'wasm', threads: 1, modes: ['dense'],
    notes: {
      backend: tf.getBackend(), simd: tf.env().getBool('WASM_HAS_SIMD_SUPPORT'), multithread: tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT'),
      timed: 'tf.tidy(forward) on NHWC tensors made before timing, then dataSync() of the output (the value leaves the engine as ours and onnxruntime return theirs)',
      graph: 'batch norm folded into the conv weights, tf.fused.conv2d with bias and ReLU, maxPool, mean, matMul',
    },
    async prepare(_mode, batch) {
      let i = 0;
      const call = (x: tf.Tensor4D): Float32Array => {
        const y = tf.tidy(() => forward(x));
        const data = y.dataSync() as Float32Array;
        y.dispose();
        return data;
      };
      const run = batch === 1 ? () => call(singles[i++ % B]!) : () => call(whole);
      return { run, output: async () => Float32Array.from(call(whole)) };
    },
    async close() {
      for (const t of held) t.dispose();
    },
  };
}

interface Row {
  readonly engine: EngineName;
  readonly backend: string;
  readonly mode: Mode;
  readonly threads: number;
  readonly batch: number;
  readonly median_ms: number;
  readonly images_per_s: number;
  readonly min_ms: number;
  readonly p10_ms: number;
  readonly p90_ms: number;
  readonly reps: number;
  readonly warmup: number;
  readonly round_medians_ms: readonly number[];
  readonly verified_relative_diff: number;
}

interface Skipped {
  readonly engine: EngineName;
  readonly backend: string;
  readonly threads: number;
  readonly mode: Mode | null;
  readonly reason: string;
}

interface ConfigSpec {
  readonly engine: EngineName;
  readonly backend: string;
  readonly threads: number;
  readonly open: (s: Shared) => Promise<Runner>;
}

function configs(ours: readonly OurBackend[]): ConfigSpec[] {
  const out: ConfigSpec[] = [];
  for (const backend of ours) for (const threads of THREADS) out.push({ engine: 'parsimony', backend, threads, open: (s) => openParsimony(s, threads, backend) });
  for (const threads of THREADS) out.push({ engine: 'onnxruntime-node', backend: 'cpu', threads, open: (s) => openOrt(s, threads) });
  out.push({ engine: 'tfjs-wasm', backend: 'wasm', threads: 1, open: (s) => openTfjs(s) });
  return out;
}

function specLabel(c: { engine: string; backend: string; threads: number }): string {
  return c.engine === 'parsimony' ? `parsimony ${c.backend} t${c.threads}` : `${c.engine} t${c.threads}`;
}

/** Mean of the per-image multiply-adds of a plan over the calibration images, with the layers' mean active kernels. */
function measureMacs(p: P, e: Engine, model: Module, models: Models, skip: boolean): { mean: number; dense: number; layers: Array<{ name: string; kernels: number; mean_active: number }> } {
  const plan = p.compile(model, { inputShape: models.inputShape, maxBatch: models.maxBatch, skip, backend: e.backend, threads: 1 });
  try {
    const m = p.planMacs(plan, models.images);
    return { mean: m.mean, dense: m.dense, layers: m.layers.map((l) => ({ name: l.name, kernels: l.kernels, mean_active: round(l.meanActive, 2) })) };
  } finally {
    plan.dispose();
  }
}

/** The process's CPU time in ms: the profile's clock, so that other jobs on a shared machine do not count. */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

interface LayerProfile {
  readonly reps: number;
  readonly steps: ReadonlyArray<{ label: string; ms: number; macs: number | null; gflops: number | null }>;
  /** The slowest conv (groups 1), grouped/depthwise conv and linear step, by GFLOP/s. */
  readonly slowest: Record<'conv' | 'grouped conv' | 'linear', { label: string; gflops: number } | null>;
}

/** Per-step medians of the dense plan at batch 1 on one thread, timed by CPU time, with each conv's GFLOP/s. */
function profileLayers(p: P, e: Engine, models: Models, reps: number): LayerProfile {
  const plan = p.compile(models.dense, { inputShape: models.inputShape, maxBatch: 1, backend: e.backend, threads: 1 });
  try {
    const per = models.inputShape.reduce((a, b) => a * b, 1);
    const samples: number[][] = [];
    for (let r = 0; r < reps + 2; r++) {
      plan.run(models.images.subarray((r % models.maxBatch) * per, (r % models.maxBatch + 1) * per), { profile: cpuMs });
      if (r < 2) continue;
      (plan.telemetry().steps ?? []).forEach((s, i) => { (samples[i] ??= []).push(s.ms); });
    }
    const t = plan.telemetry();
    const macs = new Map(t.layers.map((l) => [l.name, l.macs[0] as number]));
    const kindOf = (label: string): keyof LayerProfile['slowest'] | null => (label.startsWith('grouped conv ') ? 'grouped conv' : label.startsWith('conv ') ? 'conv' : label.startsWith('linear ') ? 'linear' : null);
    const slowest: LayerProfile['slowest'] = { conv: null, 'grouped conv': null, linear: null };
    const steps = (t.steps ?? []).map((s, i) => {
      const ms = summarize(samples[i] ?? [0]).median;
      const kind = kindOf(s.label);
      const m = kind === null ? undefined : macs.get(s.label.slice(kind.length + 1));
      const gflops = m === undefined || ms <= 0 ? null : (2 * m) / ms / 1e6;
      if (kind !== null && gflops !== null && (slowest[kind] === null || gflops < slowest[kind]!.gflops)) slowest[kind] = { label: s.label, gflops: round(gflops, 2) };
      return { label: s.label, ms: round(ms, 4), macs: m ?? null, gflops: gflops === null ? null : round(gflops, 2) };
    });
    return { reps, steps, slowest };
  } finally {
    plan.dispose();
  }
}

export const modelBench: Bench = {
  name: 'model',
  defaults: { warmup: 10, reps: 90 },
  quick: { warmup: 2, reps: 6 },
  description: 'a whole model at batch 1 and 64 (--model FILE, --onnx FILE, or fmnist-vgg5 + LKAMs with random weights): ours dense / parsimonious / static-pruned vs onnxruntime-node and tfjs-wasm; the dense plan per step',
  async run(options: BenchOptions) {
    const p = await loadParsimony();
    const argv = process.argv.slice(2);
    const source: ModelSource = { model: fileArgument(argv, 'model'), onnx: fileArgument(argv, 'onnx') };
    if (source.model !== null && source.onnx !== null) throw new UsageError('model: give --model FILE or --onnx FILE, not both');
    const setup = await p.Engine.create({ backend: 'wasm', threads: 1 });
    p.setEngine(setup);
    const models = await buildModels(p, setup, source);
    console.log(`model: ${models.description}`);
    console.log(`images: ${models.imageSource}`);
    if (!models.hasGates) console.log('the model has no LKAMs: parsimonious and pruned plans compute what the dense one does');
    const per = models.inputShape.reduce((a, b) => a * b, 1);

    const gatedMacs = measureMacs(p, setup, models.gated, models, true);
    const parsMacs = measureMacs(p, setup, models.pruned, models, true);
    const prunedMacs = measureMacs(p, setup, models.pruned, models, false);
    const denseMacs = gatedMacs.dense;
    const macReduction = denseMacs / parsMacs.mean;
    const prunedReduction = denseMacs / prunedMacs.mean;
    const timedImages = models.images.length / per;
    const prunedOutputs = graphOutputs(setup, models.pruned, models.images, models.inputShape, timedImages);
    const prunedReference = prunedOutputs.subarray(0, (prunedOutputs.length / timedImages) * models.maxBatch);
    // The parsimonious and pruned plans run the same pruned model: one reference serves both.
    const reference: Record<Mode, Float32Array> = {
      dense: graphOutputs(setup, models.dense, models.images, models.inputShape, models.maxBatch),
      parsimonious: prunedReference,
      pruned: prunedReference,
    };
    // Pruning was found on other images: a timed image may switch on a kernel that none of those did.
    const pruningChanges = predictionChanges(graphOutputs(setup, models.gated, models.images, models.inputShape, timedImages), prunedOutputs, timedImages);
    const onnx: Shared['onnx'] = {};
    const exportNotes: Record<string, string> = {};
    if (models.onnxFile !== null) onnx.dense = models.onnxFile;
    for (const [mode, m] of [['dense', models.dense], ['pruned', models.pruned]] as const) {
      if (onnx[mode] !== undefined) continue;
      try {
        const ex = p.exportOnnx(m, { inputShape: models.inputShape });
        onnx[mode] = { bytes: ex.bytes, input: ex.input, output: ex.output };
      } catch (err) {
        exportNotes[mode] = (err as Error).message;
      }
    }
    const shared: Shared = { p, models, per, reference, onnx };

    const rounds = options.quick ? 1 : Math.min(3, options.reps);
    const repsPerRound = Math.ceil(options.reps / rounds);
    const ours: OurBackend[] = p.nativeStatus().ok ? ['native', 'wasm'] : ['wasm'];
    const all = configs(ours);
    const samples = new Map<string, { spec: ConfigSpec; mode: Mode; batch: number; samples: number[]; roundMedians: number[]; agreement: number }>();
    const skipped: Skipped[] = [];
    const unavailable = new Set<string>();
    const notes: Record<string, unknown> = {};
    for (const [mode, reason] of Object.entries(exportNotes)) skipped.push({ engine: 'onnxruntime-node', backend: 'cpu', threads: 0, mode: mode as Mode, reason: `ONNX export: ${reason}` });

    for (let pass = 0; pass < rounds; pass++) {
      for (const spec of pass % 2 === 0 ? all : [...all].reverse()) {
        const label = specLabel(spec);
        if (unavailable.has(label)) continue;
        let runner: Runner;
        try {
          runner = await spec.open(shared);
        } catch (err) {
          const reason = (err as Error).message;
          console.error(`model: ${label} is unavailable: ${reason}`);
          skipped.push({ engine: spec.engine, backend: spec.backend, threads: spec.threads, mode: null, reason });
          unavailable.add(label);
          continue;
        }
        notes[label] = runner.notes;
        try {
          for (const mode of runner.modes) {
            for (const batch of models.scale.batches) {
              const key = `${label}|${mode}|${batch}`;
              if (unavailable.has(key)) continue;
              let prepared: Awaited<ReturnType<Runner['prepare']>>;
              let agreement: number;
              try {
                prepared = await runner.prepare(mode, batch);
                const y = await prepared.output();
                agreement = verifyOutputs(`${label} ${mode}`, y, reference[mode], `the training graph of the ${mode} model`).relative;
              } catch (err) {
                const reason = (err as Error).message;
                console.error(`model: ${label} ${mode} batch ${batch}: ${reason}`);
                skipped.push({ engine: spec.engine, backend: spec.backend, threads: spec.threads, mode, reason });
                unavailable.add(key);
                continue;
              }
              const t: Timing = await time(prepared.run, { warmup: options.warmup, reps: batch === 1 ? repsPerRound : Math.max(3, Math.ceil(repsPerRound / 6)) });
              const m = samples.get(key) ?? { spec, mode, batch, samples: [], roundMedians: [], agreement: 0 };
              m.samples.push(...t.samples);
              m.roundMedians.push(round(t.median, 4));
              m.agreement = Math.max(m.agreement, agreement);
              samples.set(key, m);
              console.error(`model: round ${pass + 1}/${rounds} ${label} ${mode} batch ${batch}: median ${t.median.toFixed(3)} ms`);
            }
          }
        } finally {
          await runner.close();
        }
      }
    }
    const layerProfile = profileLayers(p, setup, models, options.quick ? 3 : 15);
    setup.close();

    const rows: Row[] = [...samples.values()].map((m) => {
      const t = summarize(m.samples);
      return {
        engine: m.spec.engine, backend: m.spec.backend, mode: m.mode, threads: m.spec.threads, batch: m.batch,
        median_ms: round(t.median, 4), images_per_s: round((m.batch * 1000) / t.median, 1),
        min_ms: round(t.min, 4), p10_ms: round(t.p10, 4), p90_ms: round(t.p90, 4), reps: t.n, warmup: options.warmup,
        round_medians_ms: m.roundMedians, verified_relative_diff: Number(m.agreement.toExponential(3)),
      };
    });
    const order = (r: Row): number => models.scale.batches.indexOf(r.batch) * 10000 + r.threads * 1000 + (['parsimony', 'onnxruntime-node', 'tfjs-wasm'] as const).indexOf(r.engine) * 100
      + (r.engine === 'parsimony' ? ours.indexOf(r.backend as OurBackend) * 10 : 0) + (['dense', 'parsimonious', 'pruned'] as const).indexOf(r.mode);
    rows.sort((a, b) => order(a) - order(b));
    /** Our rows on our first backend (native when built), unless `backend` says which. */
    const find = (engine: EngineName, mode: Mode, threads: number, batch: number, backend: OurBackend = ours[0] as OurBackend): Row | undefined =>
      rows.find((r) => r.engine === engine && (engine !== 'parsimony' || r.backend === backend) && r.mode === mode && r.threads === threads && r.batch === batch);
    /** Median time of b ÷ median time of a: above 1, a is faster. */
    const speed = (a: Row | undefined, b: Row | undefined): number | null => (a === undefined || b === undefined ? null : round(b.median_ms / a.median_ms, 3));
    const macsOf = (mode: Mode): number => (mode === 'dense' ? denseMacs : mode === 'parsimonious' ? parsMacs.mean : prunedMacs.mean);

    printTable(`${models.name}: medians of ${rounds} round(s) (batch 1: one image per call, the images in turn)`, ['engine', 'backend', 'mode', 'threads', 'batch', 'median ms', 'images/s', 'p10–p90 ms', 'M MACs/image'],
      [...rows.map((r): Cell[] => [r.engine, r.backend, r.mode, r.threads, r.batch, r.median_ms, r.images_per_s, `${r.p10_ms.toFixed(3)}–${r.p90_ms.toFixed(3)}`, round(macsOf(r.mode) / 1e6, 2)]),
        ...skipped.map((s): Cell[] => [s.engine, s.backend, s.mode ?? '—', s.threads, null, null, null, `not measured: ${s.reason}`, null])]);

    const realized = speed(find('parsimony', 'parsimonious', 1, 1), find('parsimony', 'dense', 1, 1));
    const ratios: Record<string, number | null> = {
      'ours dense / ours parsimonious, batch 1, 1 thread (realized speed-up)': realized,
      'ours dense / ours parsimonious, batch 64, 1 thread': speed(find('parsimony', 'parsimonious', 1, 64), find('parsimony', 'dense', 1, 64)),
      'ours dense / ours parsimonious, batch 1, 2 threads': speed(find('parsimony', 'parsimonious', 2, 1), find('parsimony', 'dense', 2, 1)),
      'ours dense / ours parsimonious, batch 64, 2 threads': speed(find('parsimony', 'parsimonious', 2, 64), find('parsimony', 'dense', 2, 64)),
      'ours dense / ours pruned, batch 1, 1 thread': speed(find('parsimony', 'pruned', 1, 1), find('parsimony', 'dense', 1, 1)),
      'onnxruntime dense / ours parsimonious, batch 1, 1 thread': speed(find('parsimony', 'parsimonious', 1, 1), find('onnxruntime-node', 'dense', 1, 1)),
      'onnxruntime dense / ours parsimonious, batch 64, 1 thread': speed(find('parsimony', 'parsimonious', 1, 64), find('onnxruntime-node', 'dense', 1, 64)),
      'onnxruntime pruned / ours parsimonious, batch 1, 1 thread': speed(find('parsimony', 'parsimonious', 1, 1), find('onnxruntime-node', 'pruned', 1, 1)),
      'onnxruntime dense / ours parsimonious, batch 1, 2 threads': speed(find('parsimony', 'parsimonious', 2, 1), find('onnxruntime-node', 'dense', 2, 1)),
      'tfjs-wasm dense / ours parsimonious, batch 1, 1 thread': speed(find('parsimony', 'parsimonious', 1, 1), find('tfjs-wasm', 'dense', 1, 1)),
      'tfjs-wasm dense / ours parsimonious, batch 64, 1 thread': speed(find('parsimony', 'parsimonious', 1, 64), find('tfjs-wasm', 'dense', 1, 64)),
      'tfjs-wasm dense / ours dense, batch 1, 1 thread': speed(find('parsimony', 'dense', 1, 1), find('tfjs-wasm', 'dense', 1, 1)),
      'onnxruntime dense / ours dense, batch 1, 1 thread': speed(find('parsimony', 'dense', 1, 1), find('onnxruntime-node', 'dense', 1, 1)),
    };
    if (ours.includes('native')) {
      for (const batch of models.scale.batches) {
        ratios[`ours wasm dense / ours native dense, batch ${batch}, 1 thread`] = speed(find('parsimony', 'dense', 1, batch, 'native'), find('parsimony', 'dense', 1, batch, 'wasm'));
        ratios[`ours wasm parsimonious / ours native parsimonious, batch ${batch}, 1 thread`] = speed(find('parsimony', 'parsimonious', 1, batch, 'native'), find('parsimony', 'parsimonious', 1, batch, 'wasm'));
        ratios[`ours wasm dense / ours wasm parsimonious, batch ${batch}, 1 thread`] = speed(find('parsimony', 'parsimonious', 1, batch, 'wasm'), find('parsimony', 'dense', 1, batch, 'wasm'));
      }
    }
    printTable('speed ratios, same run (median time of the second ÷ median time of the first; above 1 the first is faster)', ['ratio', 'value'], Object.entries(ratios).map(([k, v]) => [k, v]));

    const realized64 = ratios['ours dense / ours parsimonious, batch 64, 1 thread'] ?? null;
    const bar = {
      ours: ours[0],
      mac_reduction: round(macReduction, 3),
      realized_speedup: realized,
      realized_speedup_batch64: realized64,
      'batch 64: speed-up >= 0.85 x MAC reduction': realized64 === null ? null : realized64 >= 0.85 * macReduction,
      'parsimonious >= 2x faster than onnxruntime dense (batch 1, 1 thread)': (ratios['onnxruntime dense / ours parsimonious, batch 1, 1 thread'] ?? 0) >= 2,
      'parsimonious >= 2x faster than onnxruntime dense (batch 64, 1 thread)': (ratios['onnxruntime dense / ours parsimonious, batch 64, 1 thread'] ?? 0) >= 2,
      'speed-up >= 0.85 x MAC reduction': realized === null ? null : realized >= 0.85 * macReduction,
      'parsimonious batch-1 latency below onnxruntime dense (1 thread)': (ratios['onnxruntime dense / ours parsimonious, batch 1, 1 thread'] ?? 0) > 1,
      'parsimonious >= 3x faster than tfjs-wasm dense (batch 1, 1 thread)': (ratios['tfjs-wasm dense / ours parsimonious, batch 1, 1 thread'] ?? 0) >= 3,
    };
    console.log(`\nMAC reduction ${macReduction.toFixed(2)}x (dense ${(denseMacs / 1e6).toFixed(2)} M, parsimonious mean ${(parsMacs.mean / 1e6).toFixed(2)} M per image, LKAMs included, over ${timedImages} images; unpruned gated model ${(gatedMacs.mean / 1e6).toFixed(2)} M); static pruning alone ${prunedReduction.toFixed(2)}x`);
    console.log(`static pruning (${Object.values(models.removed).reduce((a, r) => a + r.length, 0)} never-on kernels on ${models.pruningSource}) changes ${pruningChanges.predictions} of ${pruningChanges.images} timed images' predictions (largest output difference ${pruningChanges.maxAbsDiff.toExponential(2)})`);
    console.log(`realized speed-up ${realized ?? '—'}x = ${realized === null ? '—' : (realized / macReduction).toFixed(2)} of the MAC reduction (bar: 0.85)`);
    console.log(`kernels on per image (mean of ${timedImages}): ${parsMacs.layers.map((l) => `${l.name} ${l.mean_active}/${l.kernels}`).join(', ')}`);
    console.log(`bar: ${JSON.stringify(bar)}`);
    printTable(`dense plan per step, 1 thread, batch 1: median of ${layerProfile.reps} profiled runs, process CPU time (other jobs' time excluded)`, ['step', 'ms', 'M MACs', 'GFLOP/s'],
      layerProfile.steps.map((r): Cell[] => [r.label, round(r.ms, 4), r.macs === null ? null : round(r.macs / 1e6, 2), r.gflops === null ? null : round(r.gflops, 1)]));
    for (const [kind, v] of Object.entries(layerProfile.slowest)) if (v !== null) console.log(`slowest ${kind}: ${v.label} at ${v.gflops.toFixed(1)} GFLOP/s`);

    const env = environment(options, ['onnxruntime-node', 'onnxruntime-common', '@tensorflow/tfjs-core', '@tensorflow/tfjs-backend-wasm', 'onnx-proto', 'typescript', 'assemblyscript'], {
      onnxruntime_versions: ort.env.versions,
      threads: [...THREADS],
      batches: [...models.scale.batches],
      scale: models.scale,
      schedule: `${rounds} round(s); in each, every engine configuration is opened, each of its modes and batches verified, warmed up ${options.warmup} times and timed (batch 1: ${repsPerRound} calls, batch 64: ${Math.max(3, Math.ceil(repsPerRound / 6))}), then closed; order reversed every other round`,
      verification: `before timing, outputs on the first ${models.maxBatch} images are compared with the training graph of the same model (dense twin, gated, pruned): max |diff| / max |reference| below ${VERIFY_RELATIVE}`,
      images: models.imageSource,
      notes,
    });
    console.log(contentionLine(env));
    const path = writeResults(`model-${models.name}`, {
      model: models.name,
      description: models.description,
      mac_reduction: round(macReduction, 4),
      pruned_mac_reduction: round(prunedReduction, 4),
      macs_per_image: { dense: denseMacs, parsimonious_mean: round(parsMacs.mean, 1), pruned_mean: round(prunedMacs.mean, 1), gated_unpruned_mean: round(gatedMacs.mean, 1) },
      pruning: { images: models.pruningSource, changes_on_timed_images: pruningChanges },
      kernels_on: parsMacs.layers,
      kernels_removed_by_pruning: models.removed,
      rows, skipped, ratios, bar, layer_profile: layerProfile, env,
    });
    console.log(`\nwrote ${path}`);
    if (skipped.some((s) => s.engine === 'parsimony')) throw new Error(`model: ${skipped.filter((s) => s.engine === 'parsimony').map((s) => `${s.backend} ${s.mode ?? ''} t${s.threads}`).join(', ')} could not run (see "skipped" in ${path})`);
  },
};
