/**
 * `parsimony train`: trains a network on Fashion-MNIST, with or without LKAMs; with --out, into a run
 * directory (config, per-epoch metrics, checkpoints, the model, its test measurements). Ctrl-C writes
 * a checkpoint and stops; --resume RUN continues bit for bit.
 */
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { engine } from '../../autograd/engine.js';
import { computeChannelStats, DataLoader, FASHION_MNIST_NORMALIZE, type ColorMode, type NormalizeOptions } from '../../data/index.js';
import { resume, saveCheckpoint } from '../../io/checkpoint.js';
import { parseJson } from '../../io/json.js';
import { lockRunDir, startRunDir } from '../../io/run-dir.js';
import { readRegularText } from '../../data/files.js';
import { modelNormalize, type JsonValue } from '../../io/model-file.js';
import { saveModel, writeFileAtomic } from '../../io/node-files.js';
import { globalRng, manualSeed } from '../../nn/layers.js';
import { addLKAMs, batchShapingLoss, ConvIndexError, convsInOrder, gates, setGains, sparsityLoss, type GainKind, type LkamPool, type SaturatedKind, type SwitchKind } from '../../nn/lkam.js';
import type { Module } from '../../nn/module.js';
import * as ops from '../../ops/index.js';
import { Adam, AdamW, SGD, constant, cosine, linearWarmup, stepDecay, type Optimizer, type Schedule } from '../../optim/index.js';
import { RUN_FILES, readMetrics, type EpochMetrics, type EvalRecord } from '../../report/run.js';
import { BudgetController } from '../../train/budget.js';
import { trainStep, type EpochReport, type EvalResult } from '../../train/fit.js';
import { checkModelFits, openTrainedModel, prepareFineTune } from '../../train/fine-tune.js';
import { denseMacs, type ParsimonyReport } from '../../train/parsimony.js';
import { InputError, Interrupted, UsageError } from '../errors.js';
import { evaluateModel, testParsimony } from '../evaluation.js';
import { dataFlags, loadData, MODELS, type ModelShape } from '../inputs.js';
import { applyConfig, applyValues } from '../options.js';
import { Output } from '../output.js';
import { startEngine } from './common.js';

export interface TrainFlags {
  model: string;
  width: number;
  data: string;
  inputSize?: [number, number];
  color?: ColorMode;
  from?: string;
  epochs: number;
  batch: number;
  lr: number;
  optimizer: 'adam' | 'adamw' | 'sgd';
  schedule: 'cosine' | 'step' | 'constant';
  warmup: number;
  threads?: number;
  seed: number;
  json: boolean;
  quiet: boolean;
  plain: boolean;
  debug: boolean;
  lkam: boolean;
  sparsity: number;
  sparsityWarmup: number;
  sparsityPower: number;
  gains: GainKind;
  bank: number;
  pool: LkamPool;
  grid: number;
  layers?: number[];
  switch: SwitchKind;
  deadSwitches: 'keep' | 'ste';
  saturatedSwitches: SaturatedKind;
  switchNoise: number;
  lkamDetach: boolean;
  distill: number;
  batchShaping: number;
  batchShapingPrior: number[];
  budget?: number;
  keep?: number;
  save?: string;
  out?: string;
  resume?: string;
  force?: boolean;
  limit?: number;
  cropPadding: number;
  flip: boolean;
  checkpointEvery: number;
  config?: string;
}

export interface TrainResult {
  readonly epochs: EpochReport[];
  readonly parsimony: ParsimonyReport[];
  /** The run directory, when there is one. */
  readonly run: string | null;
  /** The final model file(s) written. */
  readonly saved: string[];
  /** The step training resumed from (null: started afresh). */
  readonly resumedFrom: number | null;
  readonly eval: EvalRecord | null;
}

/** Options a run's config.json does not record (they say how to run, not what to train). */
const NOT_RECORDED = new Set(['force', 'json', 'quiet', 'plain', 'debug', 'config', 'resume', 'out']);

/**
 * Options added after runs were recorded whose default differs from what those runs did: a run
 * directory whose config.json lacks one resumes with the value given here (option key, value).
 */
const ADDED_SINCE: Readonly<Record<string, readonly [string, unknown]>> = {
  'saturated-switches': ['saturatedSwitches', 'keep'], // the plain clamp, before 'pull' became the default
};

/** Resolves --config and --resume into the command's option values; returns the flags to train with. */
export function resolveTrainFlags(cmd: Command): TrainFlags {
  let f = cmd.opts<TrainFlags>();
  if (f.config !== undefined) applyConfig(cmd, f.config, new Set(['config', 'resume']));
  f = cmd.opts<TrainFlags>();
  if (f.resume !== undefined) {
    const file = join(f.resume, RUN_FILES.config);
    if (!existsSync(file)) throw new InputError(`--resume ${f.resume}: not a run directory (no ${RUN_FILES.config})`);
    const text = readRegularText(file, { maxBytes: 16 * 2 ** 20, what: 'a run config' });
    let saved: unknown;
    try {
      saved = parseJson(text);
    } catch (e) {
      throw new InputError(`${file}: not valid JSON (${(e as Error).message})`);
    }
    const options = (saved as { options?: unknown }).options;
    if (typeof options !== 'object' || options === null) throw new InputError(`${file}: no "options" object`);
    applyValues(cmd, options as Record<string, unknown>, file, new Set([...NOT_RECORDED]));
    for (const [name, [key, value]] of Object.entries(ADDED_SINCE)) {
      if (!(name in options) && cmd.getOptionValueSource(key) === 'default') cmd.setOptionValue(key, value);
    }
    f = { ...cmd.opts<TrainFlags>(), out: f.resume };
  }
  if (f.lkam !== true && f.budget !== undefined) throw new UsageError('--budget needs LKAMs (--lkam)');
  if (f.lkam !== true && f.keep !== undefined) throw new UsageError('--keep needs LKAMs (--lkam)');
  if (f.lkam !== true && f.switchNoise > 0) throw new UsageError('--switch-noise needs LKAMs (--lkam)');
  if (f.switchNoise > 0 && f.switch === 'sigmoid') throw new UsageError("--switch-noise applies to 'hard' and 'binary' switches, not --switch sigmoid");
  if (f.switchNoise > 0 && f.sparsityPower !== 1) throw new UsageError('--switch-noise and --sparsity-power: with noise the sparsity term counts open kernels, so it has no power; choose one');
  if (f.keep !== undefined && f.budget !== undefined) throw new UsageError('--keep and --budget both set the sparsity weight: choose one (--keep per gate, --budget for the whole network)');
  if (f.lkam !== true && f.batchShaping > 0) throw new UsageError('--batch-shaping needs LKAMs (--lkam)');
  if (f.lkam !== true && f.distill > 0) throw new UsageError('--distill needs LKAMs (--lkam): the gated network learns from the same network with every gate open');
  return f;
}

function makeOptimizer(f: TrainFlags, model: Module): Optimizer {
  const params = model.parameters();
  return f.optimizer === 'sgd' ? new SGD(params, { lr: f.lr, momentum: 0.9, nesterov: true, weightDecay: 5e-4 })
    : f.optimizer === 'adamw' ? new AdamW(params, { lr: f.lr }) : new Adam(params, { lr: f.lr });
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

function defaultRunDir(model: string): string {
  const t = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
  return join('runs', `${model}-${t}`);
}

function fmtM(x: number): string {
  return `${(x / 1e6).toFixed(2)}M`;
}

/** The whole training: returns the result; throws Interrupted after a checkpoint when the user pressed Ctrl-C. */
export async function train(f: TrainFlags, out: Output, command: 'train' | 'demo'): Promise<TrainResult> {
  const make = (MODELS as Readonly<Record<string, (o: ModelShape) => Module>>)[f.model];
  if (make === undefined) throw new UsageError(`--model should be one of ${Object.keys(MODELS).join(', ')}, got '${f.model}'`);
  const t0 = performance.now();
  const data = await loadData(dataFlags(f));
  const loadSeconds = (performance.now() - t0) / 1000;
  const e = await startEngine(f.threads === undefined ? {} : { threads: f.threads });
  manualSeed(f.seed);
  if (f.layers !== undefined && !f.lkam) throw new UsageError('--layers chooses the convs that LKAMs gate, so it needs --lkam');
  const inputShape = [1, ...data.train.shape];
  const lkamOptions = { bank: f.bank, pool: f.pool, grid: f.grid, switchKind: f.switch, straightThrough: f.deadSwitches === 'ste', detach: f.lkamDetach, noise: f.switchNoise, ...(f.layers === undefined ? {} : { layers: f.layers }) };
  const network = f.from === undefined ? `--model ${f.model}` : `--from ${f.from}`;
  // Computed from the training split; a resumed run reads what it started with (old runs: Fashion-MNIST's).
  let normalize: NormalizeOptions = f.resume !== undefined ? recordedNormalize(f.resume) : computeChannelStats(data.train);
  let model: Module;
  try {
    if (f.from !== undefined) {
      const trained = await openTrainedModel(f.from);
      if (f.lkam) {
        const start = prepareFineTune(trained, data, `--data ${f.data}`, { lkam: lkamOptions, gains: f.gains, dataNormalize: normalize });
        model = start.model;
        if (f.resume === undefined) normalize = start.normalize;
      } else {
        checkModelFits(trained.file, trained.model, trained.meta, data, `--data ${f.data}`);
        model = trained.model;
        if (f.resume === undefined && trained.format === 'parsimony') normalize = modelNormalize(trained.meta);
      }
    } else {
      model = make({ width: f.width, classes: data.train.numClasses, inChannels: data.train.shape[0] });
      if (f.lkam) {
        model = addLKAMs(model, lkamOptions);
        setGains(model, f.gains, inputShape);
      }
    }
  } catch (err) {
    if (!(err instanceof ConvIndexError)) throw err;
    throw new UsageError(`--layers ${f.layers?.join(',')}: ${network} has ${err.convs} convs (indices 0 to ${err.convs - 1}), so ${err.missing.join(', ')} do not exist`);
  }
  const outputs = model.outputShape(inputShape)[1];
  if (outputs !== data.train.numClasses) throw new InputError(`${network} has ${outputs} outputs, but --data ${f.data} has ${data.train.numClasses} classes`);
  const opt = makeOptimizer(f, model);
  const augment = { ...(f.cropPadding > 0 ? { crop: { padding: f.cropPadding } } : {}), ...(f.flip ? { flip: true } : {}) };
  const trainLoader = new DataLoader(data.train, { batchSize: f.batch, shuffle: true, seed: f.seed, normalize, augment, workers: 1 });
  const stepsPerEpoch = trainLoader.length;
  const total = stepsPerEpoch * f.epochs;
  const base: Schedule = f.schedule === 'cosine' ? cosine(Math.max(1, total - f.warmup)) : f.schedule === 'step' ? stepDecay(Math.max(1, Math.round(total / 3))) : constant();
  const schedule = f.warmup > 0 ? linearWarmup(f.warmup, base) : base;
  // With a budget, the warm-up is the controller's: its target falls from dense to the budget over it.
  const budget = f.budget === undefined ? null : new BudgetController({ target: f.budget, initialWeight: f.sparsity, rampSteps: f.sparsityWarmup * stepsPerEpoch });
  const dense = denseMacs(model, inputShape);
  const warm = (step: number): number => (f.sparsityWarmup > 0 ? Math.min(1, step / (f.sparsityWarmup * stepsPerEpoch)) : 1);
  const sparsityAt = (step: number): number => (budget === null ? f.sparsity * warm(step) : budget.weight);
  const gs = gates(model);
  // --keep: one controller per gate, fed that gate's fraction of kernels on.
  const keep = f.keep === undefined ? null : gs.map(() => new BudgetController({ target: f.keep as number, initialWeight: f.sparsity, rampSteps: f.sparsityWarmup * stepsPerEpoch }));

  let runDir = f.out ?? null;
  const options = recordedOptions(f);
  const writeConfig = (dir: string): void => {
    mkdirSync(dir, { recursive: true });
    const config = {
      command, name: dir.replace(/\/+$/, '').split('/').pop(), options,
      created: new Date().toISOString(), engine: { kernels: e.backend.name, threads: e.backend.threads }, node: process.version,
      data: { train: data.train.length, test: data.test.length, shape: [...data.train.shape], classNames: [...data.train.classNames], normalize },
      network: { denseMacs: dense, parameters: model.parameterCount(), lkams: gs.length },
    };
    writeFileAtomic(join(dir, RUN_FILES.config), `${JSON.stringify(config, null, 2)}\n`);
  };

  let startEpoch = 0;
  let step = 0;
  let sums = zeroSums();
  let resumedFrom: number | null = null;
  const rngs = { nn: globalRng() };
  if (runDir !== null) {
    const ckpt = join(runDir, RUN_FILES.checkpoint);
    if (f.resume !== undefined) {
      lockRunDir(runDir);
      const r = resume(ckpt, { model, optimizer: opt, loader: trainLoader, rngs });
      if (r === null) throw new InputError(`--resume ${runDir}: no ${RUN_FILES.checkpoint} to resume from`);
      r.skipped.forEach((s, i) => out.warn(`${s.message}; resuming from ${r.file} instead (the unusable file is kept as ${r.setAside[i]})`));
      startEpoch = r.epoch;
      step = r.step;
      resumedFrom = r.step;
      const extra = r.extra as { sums?: unknown; budget?: { weight: number; fraction: number }; keep?: { weight: number; fraction: number }[] } | undefined;
      if (extra !== undefined && isSums(extra.sums)) sums = { ...extra.sums };
      if (budget !== null && extra?.budget !== undefined) {
        budget.weight = extra.budget.weight;
        budget.fraction = extra.budget.fraction;
        budget.stepCount = step;
      }
      if (keep !== null && extra?.keep !== undefined) {
        for (const [i, c] of keep.entries()) {
          const saved = extra.keep[i];
          if (saved === undefined) continue;
          c.weight = saved.weight;
          c.fraction = saved.fraction;
          c.stepCount = step;
        }
      }
      const kept = readMetrics(join(runDir, RUN_FILES.metrics)).filter((m) => m.epoch <= startEpoch);
      writeFileSync(join(runDir, RUN_FILES.metrics), kept.map((m) => `${JSON.stringify(m)}\n`).join(''));
      out.info(`resumed ${runDir} at epoch ${startEpoch + 1}, step ${step} (from ${r.file})`);
    } else {
      startRunDir(runDir, f.force === true);
      writeConfig(runDir);
      writeFileSync(join(runDir, RUN_FILES.metrics), '');
    }
  }
  const ensureRunDir = (): string => {
    if (runDir === null) {
      runDir = defaultRunDir(f.model);
      startRunDir(runDir, false);
      writeConfig(runDir);
      writeFileSync(join(runDir, RUN_FILES.metrics), '');
    }
    return runDir;
  };
  const checkpoint = (epoch: number): string => {
    const file = join(ensureRunDir(), RUN_FILES.checkpoint);
    const extra: JsonValue = { sums: { ...sums }, ...(budget === null ? {} : { budget: { weight: budget.weight, fraction: budget.fraction } }), ...(keep === null ? {} : { keep: keep.map((c) => ({ weight: c.weight, fraction: c.fraction })) }) };
    saveCheckpoint(file, { model, optimizer: opt, loader: trainLoader, rngs, epoch, step, extra });
    return file;
  };

  out.info(`parsimony ${command}: ${f.from === undefined ? f.model : `${f.from} (fine-tuned${f.lkam ? ', its LKAMs starting exactly open' : ''})`} (${(dense / 1e6).toFixed(1)} M MACs/image dense, ${model.parameterCount()} parameters)${f.lkam ? `, ${gs.length} LKAMs gating convs ${convsInOrder(model).flatMap((c, i) => (c.gate === null ? [] : [i])).join(', ')} ('kernels on' below follows this order)` : ''}`);
  out.info(`  data: ${data.train.length} train / ${data.test.length} test images (${f.data}), loaded in ${loadSeconds.toFixed(2)} s`);
  out.info(`  engine: ${e.backend.name}, ${e.backend.threads} thread(s); batch ${f.batch}, ${f.optimizer} lr ${f.lr}, ${f.schedule}, ${f.epochs} epoch(s)${runDir === null ? '' : `; run directory ${runDir}`}`);

  let stop = false;
  const onSigint = (): void => {
    stop = true;
    process.removeListener('SIGINT', onSigint);
  };
  process.on('SIGINT', onSigint);

  const extraLoss = (m: Module): ReturnType<typeof sparsityLoss> => {
    let s = 0;
    let n = 0;
    for (const g of gs) {
      const sw = g.lkam.lastSwitches;
      if (sw === null) continue;
      s += e.backend.kernels.sum(sw.ptr, sw.size);
      n += sw.size;
    }
    if (n > 0) {
      sums.switchSum += s / n;
      sums.switchSteps++;
    }
    const weight = keep !== null ? keep.map((c) => c.weight) : f.sparsity > 0 || budget !== null ? sparsityAt(opt.stepCount) : null;
    const sparse = weight === null ? null : sparsityLoss(m, weight, f.sparsityPower, f.saturatedSwitches);
    const shaping = f.batchShaping > 0 ? batchShapingLoss(m, f.batchShaping, [f.batchShapingPrior[0] as number, f.batchShapingPrior[1] as number]) : null;
    return sparse === null ? shaping : shaping === null ? sparse : ops.add(sparse, shaping);
  };

  const epochs: EpochReport[] = [];
  const parsimony: ParsimonyReport[] = [];
  try {
    for (let epoch = startEpoch; epoch < f.epochs; epoch++) {
      const position = trainLoader.getState().epoch === epoch ? Math.ceil(trainLoader.getState().position / f.batch) : 0;
      const payload = (): Record<string, string> => ({
        ep: `${epoch + 1}/${f.epochs}`,
        loss: sums.count > 0 ? (sums.loss / sums.count).toFixed(4) : '-',
        acc: sums.count > 0 ? `${((100 * sums.correct) / sums.count).toFixed(1)}%` : '-',
        sw: sums.switchSteps > 0 ? (sums.switchSum / sums.switchSteps).toFixed(3) : '-',
        macs: sums.steps > 0 ? fmtM(sums.macs / sums.steps) : '-',
        ips: sums.seconds > 0 ? (sums.count / sums.seconds).toFixed(0) : '-',
      });
      const bar = out.bar(stepsPerEpoch, position, `epoch {ep} {bar} {value}/{total} | loss {loss} acc {acc}${f.lkam ? ' | switch {sw}' : ''} | MACs {macs} | {ips} img/s | ETA {eta_formatted}`, payload());
      let tStep = performance.now();
      let done = position;
      for (const b of trainLoader.epoch(epoch)) {
        opt.lr = f.lr * schedule(step);
        const r = trainStep(model, opt, b, f.lkam ? extraLoss : undefined, f.lkam ? f.distill : 0);
        step++;
        done++;
        sums.loss += r.loss * r.count;
        sums.correct += r.correct;
        sums.count += r.count;
        sums.extra += r.extraLoss;
        sums.macs += r.macs;
        sums.steps++;
        budget?.update(r.macs, dense);
        if (keep !== null) {
          for (const [i, g] of gs.entries()) {
            const on = g.lastOn;
            if (on !== null) (keep[i] as BudgetController).update(on.total, on.N * on.C);
          }
        }
        const now = performance.now();
        sums.seconds += (now - tStep) / 1000;
        tStep = now;
        bar.update(done, payload());
        if (stop) {
          bar.stop();
          const file = checkpoint(epoch);
          throw new Interrupted(`interrupted at epoch ${epoch + 1}, step ${step}: checkpoint written to ${file}; continue with: parsimony train --resume ${runDir}`);
        }
        if (f.checkpointEvery > 0 && step % f.checkpointEvery === 0) checkpoint(epoch);
        // Lets the SIGINT handler run between steps.
        await new Promise<void>((resolve) => setImmediate(resolve));
        tStep = performance.now();
      }
      bar.stop();
      let test: EvalResult | null = null;
      let p: ParsimonyReport | null = null;
      if (f.lkam) {
        p = testParsimony(model, data.test, normalize);
        parsimony.push(p);
        test = { loss: p.loss, accuracy: p.accuracy, count: p.count };
      } else {
        const q = testParsimony(model, data.test, normalize);
        test = { loss: q.loss, accuracy: q.accuracy, count: q.count };
      }
      const report: EpochReport = {
        epoch: epoch + 1,
        trainLoss: sums.count > 0 ? sums.loss / sums.count : 0,
        trainAccuracy: sums.count > 0 ? sums.correct / sums.count : 0,
        imagesPerSecond: sums.seconds > 0 ? sums.count / sums.seconds : 0,
        seconds: sums.seconds,
        test,
      };
      epochs.push(report);
      const metrics: EpochMetrics = {
        epoch: epoch + 1, step, seconds: report.seconds, imagesPerSecond: report.imagesPerSecond, lr: opt.lr,
        train: {
          loss: report.trainLoss, accuracy: report.trainAccuracy, sparsityTerm: sums.steps > 0 ? sums.extra / sums.steps : 0,
          sparsityWeight: f.lkam ? sparsityAt(opt.stepCount) : 0, meanSwitch: sums.switchSteps > 0 ? sums.switchSum / sums.switchSteps : null,
          macs: sums.steps > 0 ? sums.macs / sums.steps : dense,
        },
        test: { loss: test.loss, accuracy: test.accuracy },
        macs: p === null ? null : { dense: p.macs.dense, mean: p.macs.mean, min: p.macs.min, median: p.macs.median, max: p.macs.max, reduction: p.macs.reduction },
        layers: (p?.layers ?? []).map((l) => ({ name: l.name, conv: l.conv, kernels: l.kernels, meanOn: l.meanOn, meanSwitch: l.meanSwitch, alwaysOff: l.alwaysOff, sometimesOff: l.sometimesOff, neverOff: l.neverOff })),
      };
      const parts = [`  epoch ${epoch + 1}/${f.epochs}: train loss ${report.trainLoss.toFixed(4)} acc ${(100 * report.trainAccuracy).toFixed(2)}%`, `${report.imagesPerSecond.toFixed(0)} images/s, ${report.seconds.toFixed(1)} s`];
      if (p !== null) {
        const weight = budget !== null ? `, sparsity weight ${budget.weight.toFixed(3)}` : keep !== null ? `, sparsity weights ${keep.map((c) => c.weight.toFixed(3)).join(' ')}` : '';
        parts.push(`${f.batchShaping > 0 ? 'sparsity + batch-shaping terms' : 'sparsity term'} ${metrics.train.sparsityTerm.toFixed(4)}${weight}, mean switch ${(metrics.train.meanSwitch ?? 0).toFixed(3)}`);
        parts.push(`test acc ${(100 * p.accuracy).toFixed(2)}%, MACs ${(p.macs.mean / 1e6).toFixed(2)} M (${p.macs.reduction.toFixed(2)}x fewer), kernels on ${p.layers.map((l) => `${(100 * l.meanOn).toFixed(0)}%`).join(' ')}`);
      } else {
        parts.push(`test loss ${test.loss.toFixed(4)} acc ${(100 * test.accuracy).toFixed(2)}%`);
      }
      out.info(parts.join(' | '));
      sums = zeroSums();
      if (stop) ensureRunDir();
      if (runDir !== null) {
        appendFileSync(join(runDir, RUN_FILES.metrics), `${JSON.stringify(metrics)}\n`);
        const file = checkpoint(epoch + 1);
        if (stop) throw new Interrupted(`interrupted after epoch ${epoch + 1}: checkpoint written to ${file}; continue with: parsimony train --resume ${runDir}`);
      }
    }
  } finally {
    process.removeListener('SIGINT', onSigint);
    trainLoader.close();
    out.close();
  }

  model.eval();
  const saved: string[] = [];
  const lastP = parsimony[parsimony.length - 1];
  const lastEpoch = epochs[epochs.length - 1];
  const meta = {
    inputShape: [...data.train.shape],
    classNames: [...data.train.classNames],
    normalize,
    training: {
      model: f.model, width: f.width, from: f.from ?? null, data: f.data, inputSize: f.inputSize ?? null, color: f.color ?? null, epochs: f.epochs, batch: f.batch, lr: f.lr, optimizer: f.optimizer, schedule: f.schedule, seed: f.seed,
      lkam: f.lkam, sparsity: f.sparsity, sparsityPower: f.sparsityPower, gains: f.gains, bank: f.bank, pool: f.pool, grid: f.grid, layers: f.layers ?? null, switch: f.switch, deadSwitches: f.deadSwitches, saturatedSwitches: f.saturatedSwitches, switchNoise: f.switchNoise, lkamDetach: f.lkamDetach, distill: f.distill, batchShaping: f.batchShaping, batchShapingPrior: f.batchShapingPrior, budget: f.budget ?? null, keep: f.keep ?? null,
      normalize: { mean: [...normalize.mean], std: [...normalize.std] },
      limit: f.limit ?? null, cropPadding: f.cropPadding, flip: f.flip,
      testAccuracy: lastP?.accuracy ?? lastEpoch?.test?.accuracy ?? null,
      macReduction: lastP?.macs.reduction ?? null,
    },
  };
  if (f.save !== undefined) {
    saveModel(f.save, model, meta);
    saved.push(f.save);
    out.info(`  saved ${f.save}`);
  }
  let evalRecord: EvalRecord | null = null;
  if (runDir !== null) {
    const file = join(runDir, RUN_FILES.model);
    saveModel(file, model, meta);
    saved.push(file);
    evalRecord = evaluateModel(model, data.test, { model: file, data: f.data }, normalize, lastP);
    writeFileAtomic(join(runDir, RUN_FILES.eval), `${JSON.stringify(evalRecord)}\n`);
    out.info(`  wrote ${file} and ${join(runDir, RUN_FILES.eval)}`);
  }
  return { epochs, parsimony, run: runDir, saved, resumedFrom, eval: evalRecord };
}

/** The normalisation a run directory's config.json records; runs from before it was recorded used Fashion-MNIST's. */
function recordedNormalize(dir: string): NormalizeOptions {
  const file = join(dir, RUN_FILES.config);
  const saved = parseJson(readRegularText(file, { maxBytes: 16 * 2 ** 20, what: 'a run config' })) as { data?: { normalize?: { mean?: unknown; std?: unknown } } };
  const n = saved.data?.normalize;
  const numbers = (v: unknown): v is number[] => Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number' && Number.isFinite(x));
  if (n === undefined) return FASHION_MNIST_NORMALIZE;
  if (!numbers(n.mean) || !numbers(n.std)) throw new InputError(`${file}: data.normalize should be {"mean": [numbers], "std": [numbers]}`);
  return { mean: n.mean, std: n.std };
}

/** The options config.json records, with their command-line names. */
function recordedOptions(f: TrainFlags): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(f)) {
    if (NOT_RECORDED.has(k) || v === undefined) continue;
    out[k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)] = v;
  }
  return out;
}

export async function run(_o: unknown, c: Command): Promise<void> {
  const f = resolveTrainFlags(c);
  const out = new Output(f);
  const result = await train(f, out, 'train');
  try {
    out.data(result);
    const last = result.epochs[result.epochs.length - 1];
    const acc = result.eval?.accuracy ?? last?.test?.accuracy;
    const reduction = result.eval !== null && result.eval.layers.length > 0 ? result.eval.macs.reduction : result.parsimony[result.parsimony.length - 1]?.macs.reduction;
    if (acc !== undefined) {
      const macs = reduction === undefined ? '' : `, ${reduction.toFixed(2)}x fewer multiply-adds than dense`;
      out.result(`test accuracy ${(100 * acc).toFixed(2)}%${macs}${result.run === null ? '' : ` (run directory ${result.run})`}`);
    }
  } finally {
    engine().close();
  }
}
