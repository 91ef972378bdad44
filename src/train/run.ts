/**
 * The training run: a recipe, data and (optionally) a network in; epochs of steps, the per-gate
 * controllers of the compute target, evaluation on the validation split, checkpoints, metrics and the
 * final model out. Callbacks (onTrainBegin, onEpochBegin, onBatchEnd, onEpochEnd, onTrainEnd) observe
 * it and may stop it; it never prints.
 */
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { readRegularText } from '../data/files.js';
import { parseJson } from '../io/json.js';
import { join } from 'node:path';
import { engine } from '../autograd/engine.js';
import { computeChannelStats, DataLoader, FASHION_MNIST_NORMALIZE, InMemoryDataset, splitDataset, SubsetDataset, type Dataset, type NormalizeOptions } from '../data/index.js';
import { lockRunDir, startRunDir } from '../io/run-dir.js';
import { resume as resumeCheckpoint, saveCheckpoint } from '../io/checkpoint.js';
import type { JsonValue, ModelMeta } from '../io/model-file.js';
import { saveModel, writeFileAtomic } from '../io/node-files.js';
import { Conv2d, globalRng, manualSeed, Residual, Sequential } from '../nn/layers.js';
import { addLKAMs, ConvIndexError, convsInOrder, gates, setGains, type AddLkamOptions, type GateReading } from '../nn/lkam.js';
import type { Module } from '../nn/module.js';
import { Adam, AdamW, SGD, constant, cosine, linearWarmup, stepDecay, type Optimizer, type Schedule } from '../optim/index.js';
import { RUN_FILES, readMetrics, type EpochMetrics, type EvalRecord } from '../report/run.js';
import type { Tensor } from '../tensor/tensor.js';
import { BudgetController } from './budget.js';
import { evaluateModel, measureOn } from './evaluation.js';
import { trainEpochs, type StepResult } from './fit.js';
import { MODELS } from './models.js';
import { denseMacs, type ParsimonyReport } from './parsimony.js';
import { sparsityTerm } from './objective.js';
import { estimateTrainingBytes, ENGINE_BYTES } from './memory.js';
import { migrateRecorded, RecipeError, recordRecipe, resolveRecipe, type Recipe } from './recipe.js';
import { correctedKeep, keepForTarget, minimumFraction, rampStepsFor } from './target.js';


/** The data of a run: the training images (the run holds out its validation split) and the test split, read once at the end. */
export interface TrainingData {
  readonly train: Dataset;
  readonly test: Dataset;
  /** Per-channel normalisation; default: computed from the part trained on (a resumed run: what its config.json records). */
  readonly normalize?: NormalizeOptions;
}

/** The data or the network does not fit the recipe (a wrong class count, a grid larger than the maps). */
export class TrainingInputError extends Error {
  override readonly name = 'TrainingInputError';
}

/** What a run says once it has built everything. */
export interface TrainBegin {
  readonly denseMacs: number;
  readonly parameters: number;
  /** Index of each gated conv among the network's convs. */
  readonly gatedConvs: readonly number[];
  readonly trainImages: number;
  readonly validationImages: number;
  readonly testImages: number;
  readonly stepsPerEpoch: number;
  readonly totalSteps: number;
  /** Steps over which the gates' target falls to `keep` (more than totalSteps: the run ends before it gets there). */
  readonly rampSteps: number;
  /** The fraction of kernels each gate keeps on (null without LKAMs). */
  readonly keep: number | null;
  readonly runDir: string | null;
  /** The step a resumed run continues from (null: a fresh run). */
  readonly resumedFrom: number | null;
  readonly resumedFile: string | null;
  /** Newer checkpoint files a resumed run passed over: why, and where each unusable file was set aside. */
  readonly resumedPassedOver: readonly string[];
}

/** One step, as the loop measured it. */
export interface StepReport extends StepResult {
  readonly epoch: number;
  /** Steps done, this one included. */
  readonly step: number;
  /** Steps of this epoch done. */
  readonly position: number;
  readonly lr: number;
  /** The epoch so far: mean task loss, accuracy, mean switch value (null without gates), multiply-adds per image, images per second. */
  readonly epochLoss: number;
  readonly epochAccuracy: number;
  readonly epochMeanSwitch: number | null;
  readonly epochMacs: number;
  readonly imagesPerSecond: number;
}

export interface TrainingCallbacks {
  onTrainBegin?(info: TrainBegin, run: TrainingRun): void;
  onEpochBegin?(epoch: number, position: number, run: TrainingRun): void;
  onBatchEnd?(report: StepReport, run: TrainingRun): void;
  onEpochEnd?(metrics: EpochMetrics, run: TrainingRun): void;
  onTrainEnd?(result: TrainingResult, run: TrainingRun): void;
}

export interface TrainingRunOptions {
  /** Recipe values; the rest take their defaults. */
  readonly recipe?: Readonly<Partial<Recipe>>;
  readonly data: TrainingData;
  /** A network to train instead of building `recipe.model` (LKAMs are added when `recipe.lkam` and it has none). */
  readonly model?: Module;
  /** Run directory: config.json, metrics.jsonl, checkpoints, model.safetensors, eval.json. */
  readonly runDir?: string | null;
  /** Continue `runDir` from its checkpoint. */
  readonly resume?: boolean;
  /** Replace a run already in `runDir` (its files are removed first). */
  readonly force?: boolean;
  /** Where an interrupted run without a run directory writes its checkpoint. */
  readonly interruptDir?: () => string;
  /** Also checkpoint every n steps (0: at the end of each epoch and when interrupted). */
  readonly checkpointEvery?: number;
  /** Also write the trained model here. */
  readonly save?: string;
  /** false: the ramp is exactly `ramp` of the run however short, so the controllers may overshoot the target (the demo's short tour). */
  readonly rampFloor?: boolean;
  readonly callbacks?: readonly TrainingCallbacks[];
  /** Recorded in config.json: the command that ran, the data's name, and options that say how it ran. */
  readonly command?: string;
  readonly dataLabel?: string;
  readonly recorded?: Readonly<Record<string, unknown>>;
}

/** The trained model on the test split, measured once at the end. */
export interface TestMeasurement {
  readonly accuracy: number;
  readonly loss: number;
  readonly count: number;
  readonly macs: ParsimonyReport['macs'];
}

export interface TrainingResult {
  readonly epochs: EpochMetrics[];
  /** null when the run was interrupted. */
  readonly test: TestMeasurement | null;
  /** Where an interrupted run stopped: 1-based epoch, steps done, whether between epochs, and its checkpoint. */
  readonly interrupted: { readonly epoch: number; readonly step: number; readonly atEpochEnd: boolean; readonly checkpoint: string } | null;
  readonly run: string | null;
  /** The model files written (the run directory's and --save). */
  readonly saved: string[];
  readonly resumedFrom: number | null;
  readonly eval: EvalRecord | null;
}

/** Sums over the steps of an epoch so far; kept in checkpoints so a resumed epoch reports the whole epoch. */
interface EpochSums {
  loss: number;
  correct: number;
  count: number;
  extra: number;
  switchSum: number;
  switchSteps: number;
  macs: number;
  steps: number;
  seconds: number;
}
const zeroSums = (): EpochSums => ({ loss: 0, correct: 0, count: 0, extra: 0, switchSum: 0, switchSteps: 0, macs: 0, steps: 0, seconds: 0 });
function isSums(v: unknown): v is EpochSums {
  if (typeof v !== 'object' || v === null) return false;
  return Object.keys(zeroSums()).every((k) => typeof (v as Record<string, unknown>)[k] === 'number');
}

/** The normalisation a run directory's config.json records; runs from before it was recorded used Fashion-MNIST's. */
function recordedNormalize(dir: string): NormalizeOptions {
  const file = join(dir, RUN_FILES.config);
  let saved: { data?: { normalize?: { mean?: unknown; std?: unknown } } };
  try {
    saved = parseJson(readRegularText(file, { maxBytes: 16 * 2 ** 20, what: 'a run config' })) as typeof saved;
  } catch {
    return FASHION_MNIST_NORMALIZE;
  }
  const n = saved.data?.normalize;
  const numbers = (v: unknown): v is number[] => Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number' && Number.isFinite(x));
  if (n === undefined) return FASHION_MNIST_NORMALIZE;
  if (!numbers(n.mean) || !numbers(n.std)) throw new TrainingInputError(`${file}: data.normalize should be {"mean": [numbers], "std": [numbers]}`);
  return { mean: n.mean, std: n.std };
}

/** The LKAMs a recipe adds to `model`: its bank, pooling, grid, switch and the convs its `layers` names. */
export function lkamOptionsFor(r: Recipe, model: Module): AddLkamOptions & { readonly layers: readonly number[] } {
  const convs = convsInOrder(model).length;
  const layers = r.layers === 'all' ? Array.from({ length: convs }, (_, i) => i) : r.layers === 'all-but-first' ? Array.from({ length: Math.max(0, convs - 1) }, (_, i) => i + 1) : r.layers;
  return { bank: r.bank, pool: r.pool, grid: r.grid, switchKind: r.switch, layers };
}

/** The first `n` images of a dataset (quick trials). */
function firstImages(ds: Dataset, n: number): Dataset {
  if (n >= ds.length) return ds;
  if (ds instanceof InMemoryDataset) {
    const per = ds.shape[0] * ds.shape[1] * ds.shape[2];
    return new InMemoryDataset({ name: ds.name, pixels: ds.pixels.subarray(0, n * per), labels: ds.labels.subarray(0, n), shape: ds.shape, classNames: ds.classNames });
  }
  return new SubsetDataset(ds, Array.from({ length: n }, (_, i) => i), ds.name);
}

/** The smaller side of each conv's input maps, in the order `convsInOrder` numbers the convs. */
function convInputSides(model: Module, inputShape: readonly number[]): number[] {
  const out: number[] = [];
  const walk = (m: Module, shape: readonly number[]): readonly number[] => {
    if (m instanceof Sequential) {
      let s = shape;
      for (const l of m.layers) s = walk(l, s);
      return s;
    }
    if (m instanceof Residual) walk(m.body, shape);
    else if (m instanceof Conv2d) out.push(Math.min(shape[2] as number, shape[3] as number));
    return m.outputShape([...shape]);
  };
  walk(model, inputShape);
  return out;
}

function makeOptimizer(r: Recipe, model: Module): Optimizer {
  const params = model.parameters();
  return r.optimizer === 'sgd' ? new SGD(params, { lr: r.lr, momentum: 0.9, nesterov: true, weightDecay: 5e-4 })
    : r.optimizer === 'adamw' ? new AdamW(params, { lr: r.lr }) : new Adam(params, { lr: r.lr });
}

/** The recorded options of a run directory's config.json, rewritten to this version's recipe (see migrateRecorded). */
export function readRunOptions(dir: string): Record<string, unknown> {
  const file = join(dir, RUN_FILES.config);
  if (!existsSync(file)) throw new TrainingInputError(`--resume ${dir}: not a run directory (no ${RUN_FILES.config})`);
  let saved: unknown;
  try {
    saved = parseJson(readRegularText(file, { maxBytes: 16 * 2 ** 20, what: 'a run config' }));
  } catch (e) {
    throw new TrainingInputError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const options = (saved as { options?: unknown }).options;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw new TrainingInputError(`${file}: no "options" object`);
  return migrateRecorded(options as Record<string, unknown>, `--resume ${dir}`);
}

export class TrainingRun {
  readonly recipe: Recipe;
  readonly model: Module;
  readonly optimizer: Optimizer;
  readonly stepsPerEpoch: number;
  readonly totalSteps: number;
  /** Steps over which the sparsity weight rises and the gates' targets fall. */
  readonly rampSteps: number;
  readonly denseMacs: number;
  private readonly o: TrainingRunOptions;
  private readonly train: Dataset;
  private readonly validation: Dataset | null;
  private readonly test: Dataset;
  private readonly normalize: NormalizeOptions;
  private readonly loader: DataLoader;
  private readonly schedule: Schedule;
  /** One controller per gate (the compute target); null without LKAMs. */
  private readonly keep: BudgetController[] | null;
  private readonly keepStart: number | null;
  private readonly corrects: boolean;
  private readonly inputShape: readonly number[];
  private runDir: string | null;
  private stopAt: 'none' | 'finish' | 'interrupt' = 'none';

  /** Builds the network, optimizer, loader and controllers; the engine must be initialised. */
  constructor(o: TrainingRunOptions) {
    this.o = o;
    const r = resolveRecipe(o.recipe ?? {});
    this.recipe = r;
    const limited = r.limit === undefined ? o.data.train : firstImages(o.data.train, r.limit);
    this.test = r.limit === undefined ? o.data.test : firstImages(o.data.test, r.limit);
    if (r.validation > 0) {
      const split = splitDataset(limited, { validation: r.validation, seed: r.seed });
      this.train = split.train;
      this.validation = split.validation;
    } else {
      this.train = limited;
      this.validation = null;
    }
    this.normalize = o.data.normalize ?? (o.resume === true && o.runDir != null ? recordedNormalize(o.runDir) : computeChannelStats(this.train));
    this.inputShape = [1, ...limited.shape];
    manualSeed(r.seed);
    let model = o.model ?? MODELS[r.model]({ width: r.width, classes: limited.numClasses, inChannels: limited.shape[0] });
    if (r.lkam && gates(model).length === 0) {
      const layers = lkamOptionsFor(r, model).layers;
      const sides = convInputSides(model, this.inputShape);
      const side = Math.min(...layers.map((i) => sides[i] ?? Infinity));
      if (r.grid > side) throw new RecipeError('--grid', r.grid, `a whole number in 1..${side}: the smallest maps an LKAM of --model ${r.model} reads are ${side}x${side}`);
      try {
        model = addLKAMs(model, lkamOptionsFor(r, model));
      } catch (err) {
        if (!(err instanceof ConvIndexError)) throw err;
        throw new RecipeError('--layers', layers.join(','), `conv indices of --model ${r.model}, which has ${err.convs} convs (0 to ${err.convs - 1})`);
      }
      setGains(model, r.gains, this.inputShape);
    }
    this.model = model;
    this.checkFits();
    this.optimizer = makeOptimizer(r, model);
    const augment = { ...(r.cropPadding > 0 ? { crop: { padding: r.cropPadding } } : {}), ...(r.flip ? { flip: true } : {}) };
    this.loader = new DataLoader(this.train, { batchSize: r.batch, shuffle: true, seed: r.seed, normalize: this.normalize, augment, workers: 1 });
    this.stepsPerEpoch = this.loader.length;
    this.totalSteps = this.stepsPerEpoch * r.epochs;
    const base: Schedule = r.schedule === 'cosine' ? cosine(Math.max(1, this.totalSteps - r.warmup)) : r.schedule === 'step' ? stepDecay(Math.max(1, Math.round(this.totalSteps / 3))) : constant();
    this.schedule = r.warmup > 0 ? linearWarmup(r.warmup, base) : base;
    this.denseMacs = denseMacs(model, this.inputShape);
    const gs = gates(model);
    const keepStart = gs.length > 0 ? r.keep ?? keepForTarget(model, this.inputShape, r.target) : null;
    this.rampSteps = keepStart === null || o.rampFloor === false ? Math.round(r.ramp * this.totalSteps) : rampStepsFor(r.ramp, this.totalSteps, keepStart);
    if (keepStart !== null) {
      const keep = keepStart;
      this.keepStart = keep;
      this.keep = gs.map(() => new BudgetController({ target: keep, initialWeight: r.sparsity, rampSteps: this.rampSteps }));
    } else {
      this.keepStart = null;
      this.keep = null;
    }
    this.corrects = this.keep !== null && r.keep === undefined && this.validation !== null;
    this.runDir = o.runDir ?? null;
  }

  /** Refuses data the network cannot read and targets it cannot reach, before anything is trained. */
  private checkFits(): void {
    const r = this.recipe;
    const outputs = this.model.outputShape(this.inputShape)[1];
    const classes = this.train.numClasses;
    if (outputs !== classes) throw new TrainingInputError(`--model ${r.model} has ${outputs} outputs, but the data has ${classes} classes`);
    if (r.lkam) {
      if (r.keep === undefined) {
        const min = minimumFraction(this.model, this.inputShape);
        if (r.target < min) throw new RecipeError('--target', r.target, `at least ${min.toFixed(3)} for --model ${r.model} (the ungated layers and the LKAMs cost that much with every gate at one kernel)`);
      }
    }
    const bytes = estimateTrainingBytes(this.model, this.inputShape, r.batch);
    if (bytes > ENGINE_BYTES) {
      throw new RecipeError('--batch and --width', `${r.batch} and ${r.width}`, `a configuration that fits the engine's ${(ENGINE_BYTES / 2 ** 30).toFixed(0)} GiB: this one needs about ${(bytes / 2 ** 30).toFixed(1)} GiB (parameters, gradients, optimizer state and the activations of one batch)`);
    }
  }

  /** Ends the run after the current step as if its epochs were done: the final test measurement and model follow. */
  stop(): void {
    if (this.stopAt === 'none') this.stopAt = 'finish';
  }

  /** Ends the run after the current step with a checkpoint and nothing else, so that it can resume. */
  interrupt(): void {
    this.stopAt = 'interrupt';
  }

  private get callbacks(): readonly TrainingCallbacks[] {
    return this.o.callbacks ?? [];
  }

  private writeConfig(dir: string): void {
    mkdirSync(dir, { recursive: true });
    const e = engine();
    const config = {
      command: this.o.command ?? 'library', name: dir.replace(/\/+$/, '').split('/').pop(),
      options: { ...recordRecipe(this.recipe), ...(this.o.recorded ?? {}) },
      created: new Date().toISOString(), engine: { kernels: e.backend.name, threads: e.backend.threads }, node: process.version,
      data: { name: this.o.dataLabel ?? this.recipe.data, train: this.train.length, validation: this.validation?.length ?? 0, test: this.test.length, shape: [...this.train.shape], classNames: [...this.train.classNames], normalize: { mean: [...this.normalize.mean], std: [...this.normalize.std] } },
      network: { denseMacs: this.denseMacs, parameters: this.model.parameterCount(), lkams: gates(this.model).length },
    };
    writeFileAtomic(join(dir, RUN_FILES.config), `${JSON.stringify(config, null, 2)}\n`);
    writeFileSync(join(dir, RUN_FILES.metrics), '');
  }

  /** Trains to the end (or until a callback stops or interrupts the run). */
  async fit(): Promise<TrainingResult> {
    const r = this.recipe;
    const opt = this.optimizer;
    const rngs = { nn: globalRng() };
    let startEpoch = 0;
    let step = 0;
    let sums = zeroSums();
    let resumedFrom: number | null = null;
    let resumedFile: string | null = null;
    let resumedPassedOver: string[] = [];
    if (this.runDir !== null) {
      const ckpt = join(this.runDir, RUN_FILES.checkpoint);
      if (this.o.resume === true) {
        lockRunDir(this.runDir);
        const got = resumeCheckpoint(ckpt, { model: this.model, optimizer: opt, loader: this.loader, rngs });
        if (got === null) throw new TrainingInputError(`--resume ${this.runDir}: no ${RUN_FILES.checkpoint} to resume from`);
        startEpoch = got.epoch;
        step = got.step;
        resumedFrom = got.step;
        resumedFile = got.file;
        resumedPassedOver = got.skipped.map((s, i) => `${s.message}; resuming from ${got.file} instead (the unusable file is kept as ${got.setAside[i]})`);
        const extra = got.extra as { sums?: unknown; keep?: { weight: number; fraction: number; target?: number }[] } | undefined;
        if (extra !== undefined && isSums(extra.sums)) sums = { ...extra.sums };
        if (this.keep !== null && extra?.keep !== undefined) {
          for (const [i, c] of this.keep.entries()) {
            const saved = extra.keep[i];
            if (saved === undefined) continue;
            c.weight = saved.weight;
            c.fraction = saved.fraction;
            if (saved.target !== undefined) c.target = saved.target;
            c.stepCount = step;
          }
        }
        const kept = readMetrics(join(this.runDir, RUN_FILES.metrics)).filter((m) => m.epoch <= startEpoch);
        writeFileSync(join(this.runDir, RUN_FILES.metrics), kept.map((m) => `${JSON.stringify(m)}\n`).join(''));
      } else {
        startRunDir(this.runDir, this.o.force === true);
        this.writeConfig(this.runDir);
      }
    }
    const checkpoint = (epoch: number): string => {
      if (this.runDir === null) {
        this.runDir = this.o.interruptDir?.() ?? null;
        if (this.runDir === null) throw new TrainingInputError('an interrupted run without a run directory has nowhere to write its checkpoint');
        startRunDir(this.runDir, false);
        this.writeConfig(this.runDir);
      }
      const file = join(this.runDir, RUN_FILES.checkpoint);
      const extra: JsonValue = { sums: { ...sums }, ...(this.keep === null ? {} : { keep: this.keep.map((c) => ({ weight: c.weight, fraction: c.fraction, target: c.target })) }) };
      saveCheckpoint(file, { model: this.model, optimizer: opt, loader: this.loader, rngs, epoch, step, extra });
      return file;
    };

    const info: TrainBegin = {
      denseMacs: this.denseMacs, parameters: this.model.parameterCount(),
      gatedConvs: convsInOrder(this.model).flatMap((c, i) => (c.gate === null ? [] : [i])),
      trainImages: this.train.length, validationImages: this.validation?.length ?? 0, testImages: this.test.length,
      stepsPerEpoch: this.stepsPerEpoch, totalSteps: this.totalSteps, rampSteps: this.rampSteps, keep: this.keepStart, runDir: this.runDir, resumedFrom, resumedFile, resumedPassedOver,
    };
    for (const c of this.callbacks) c.onTrainBegin?.(info, this);

    const keep = this.keep;
    const objective = keep === null ? undefined : (readings: readonly GateReading[]): Tensor | null => sparsityTerm(readings, keep.map((c) => c.weight), r.sparsityPower);
    const epochs: EpochMetrics[] = [];
    let interrupted: TrainingResult['interrupted'] = null;
    try {
      await trainEpochs({
        model: this.model, optimizer: opt, startEpoch, startStep: step, epochs: r.epochs,
        lr: (s) => r.lr * this.schedule(s),
        batches: (epoch) => this.loader.epoch(epoch),
        ...(objective === undefined ? {} : { objective }),
        onEpochBegin: (epoch) => {
          const st = this.loader.getState();
          const position = st.epoch === epoch ? Math.ceil(st.position / r.batch) : 0;
          for (const c of this.callbacks) c.onEpochBegin?.(epoch, position, this);
          return position;
        },
        onStep: (res, epoch, s, position, seconds) => {
          step = s;
          sums.loss += res.loss * res.count;
          sums.correct += res.correct;
          sums.count += res.count;
          sums.extra += res.extraLoss;
          sums.macs += res.macs;
          sums.steps++;
          if (res.meanSwitch !== null) {
            sums.switchSum += res.meanSwitch;
            sums.switchSteps++;
          }
          if (keep !== null) for (const [i, k] of res.kept.entries()) (keep[i] as BudgetController).update(k, 1);
          sums.seconds += seconds;
          const report: StepReport = {
            ...res, epoch, step: s, position, lr: opt.lr,
            epochLoss: sums.count > 0 ? sums.loss / sums.count : 0, epochAccuracy: sums.count > 0 ? sums.correct / sums.count : 0,
            epochMeanSwitch: sums.switchSteps > 0 ? sums.switchSum / sums.switchSteps : null, epochMacs: sums.steps > 0 ? sums.macs / sums.steps : 0,
            imagesPerSecond: sums.seconds > 0 ? sums.count / sums.seconds : 0,
          };
          for (const c of this.callbacks) c.onBatchEnd?.(report, this);
          if (this.stopAt === 'interrupt') {
            interrupted = { epoch: epoch + 1, step: s, atEpochEnd: false, checkpoint: checkpoint(epoch) };
            return 'stop';
          }
          if (this.stopAt === 'finish') return 'stop';
          if ((this.o.checkpointEvery ?? 0) > 0 && s % (this.o.checkpointEvery as number) === 0) checkpoint(epoch);
          return 'go';
        },
        onEpochEnd: (epoch, s) => {
          const m = this.epochMetrics(epoch, s, sums);
          epochs.push(m);
          sums = zeroSums();
          if (this.runDir !== null) {
            appendFileSync(join(this.runDir, RUN_FILES.metrics), `${JSON.stringify(m)}\n`);
            checkpoint(epoch + 1);
          }
          for (const c of this.callbacks) c.onEpochEnd?.(m, this);
          if (this.stopAt === 'interrupt') {
            interrupted = { epoch: epoch + 1, step: s, atEpochEnd: true, checkpoint: this.runDir === null ? checkpoint(epoch + 1) : join(this.runDir, RUN_FILES.checkpoint) };
            return 'stop';
          }
          return this.stopAt === 'finish' ? 'stop' : 'go';
        },
      });
    } finally {
      this.loader.close();
    }
    if (interrupted !== null) {
      const result: TrainingResult = { epochs, test: null, interrupted, run: this.runDir, saved: [], resumedFrom, eval: null };
      for (const c of this.callbacks) c.onTrainEnd?.(result, this);
      return result;
    }
    return this.finish(epochs, resumedFrom);
  }

  /** An epoch's record: the training sums, and the validation split measured (after which the gates' target is corrected). */
  private epochMetrics(epoch: number, step: number, sums: EpochSums): EpochMetrics {
    let p: ParsimonyReport | null = null;
    if (this.validation !== null) {
      p = measureOn(this.model, this.validation, this.normalize);
      // After the ramp, the gates' target moves so that the validation cost lands at --target.
      if (this.corrects && this.keep !== null && step >= this.rampSteps && p.macs.dense > 0) {
        const k = correctedKeep((this.keep[0] as BudgetController).target, this.recipe.target, p.macs.mean / p.macs.dense);
        for (const c of this.keep) c.target = k;
      }
    }
    const gated = this.keep !== null;
    return {
      epoch: epoch + 1, step, seconds: sums.seconds, imagesPerSecond: sums.seconds > 0 ? sums.count / sums.seconds : 0, lr: this.optimizer.lr,
      train: {
        loss: sums.count > 0 ? sums.loss / sums.count : 0, accuracy: sums.count > 0 ? sums.correct / sums.count : 0, sparsityTerm: sums.steps > 0 ? sums.extra / sums.steps : 0,
        sparsityWeight: gated ? (this.keep as BudgetController[]).reduce((a, c) => a + c.weight, 0) / (this.keep as BudgetController[]).length : 0,
        meanSwitch: sums.switchSteps > 0 ? sums.switchSum / sums.switchSteps : null,
        macs: sums.steps > 0 ? sums.macs / sums.steps : this.denseMacs,
      },
      test: null,
      validation: p === null ? null : { loss: p.loss, accuracy: p.accuracy },
      macs: p === null || !gated ? null : { dense: p.macs.dense, mean: p.macs.mean, min: p.macs.min, median: p.macs.median, max: p.macs.max, reduction: p.macs.reduction },
      layers: (gated && p !== null ? p.layers : []).map((l) => ({ name: l.name, conv: l.conv, kernels: l.kernels, meanOn: l.meanOn, meanSwitch: l.meanSwitch, alwaysOff: l.alwaysOff, sometimesOff: l.sometimesOff, neverOff: l.neverOff })),
      ...(gated ? { sparsityWeights: (this.keep as BudgetController[]).map((c) => c.weight), keepTarget: (this.keep as BudgetController[])[0]?.target ?? null } : {}),
    };
  }

  /** The test split, read once; the model file and eval.json. */
  private finish(epochs: EpochMetrics[], resumedFrom: number | null): TrainingResult {
    const r = this.recipe;
    this.model.eval();
    const final = measureOn(this.model, this.test, this.normalize);
    const gated = this.keep !== null;
    const meta: ModelMeta = {
      inputShape: [...this.train.shape],
      classNames: [...this.train.classNames],
      normalize: { mean: [...this.normalize.mean], std: [...this.normalize.std] },
      training: {
        ...(recordRecipe(r) as Record<string, JsonValue>),
        normalize: { mean: [...this.normalize.mean], std: [...this.normalize.std] },
        testAccuracy: final.accuracy,
        macReduction: gated ? final.macs.reduction : null,
      },
    };
    const saved: string[] = [];
    if (this.o.save !== undefined) {
      saveModel(this.o.save, this.model, meta);
      saved.push(this.o.save);
    }
    let evalRecord: EvalRecord | null = null;
    if (this.runDir !== null) {
      const file = join(this.runDir, RUN_FILES.model);
      saveModel(file, this.model, meta);
      saved.push(file);
      evalRecord = evaluateModel(this.model, this.test, { model: file, data: this.o.dataLabel ?? r.data }, this.normalize, final);
      writeFileAtomic(join(this.runDir, RUN_FILES.eval), `${JSON.stringify(evalRecord)}\n`);
    }
    const result: TrainingResult = {
      epochs, test: { accuracy: final.accuracy, loss: final.loss, count: final.count, macs: final.macs },
      interrupted: null, run: this.runDir, saved, resumedFrom, eval: evalRecord,
    };
    for (const c of this.callbacks) c.onTrainEnd?.(result, this);
    return result;
  }
}
