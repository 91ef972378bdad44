/**
 * `parsimony train`: reads the options into a recipe, runs a TrainingRun (src/train/run.ts) and prints
 * its progress and result. Ctrl-C interrupts the run, which writes a checkpoint; --resume continues it.
 */
import { join } from 'node:path';
import { CommanderError, type Command } from 'commander';
import { engine } from '../../autograd/engine.js';
import { RUN_FILES, type EpochMetrics } from '../../report/run.js';
import { camel, dropRetired, RECIPE_NAMES, resolveRecipe, RetiredOptionError, type Recipe, type RunKnobs } from '../../train/recipe.js';
import { checkModelFits, openTrainedModel, prepareFineTune } from '../../train/fine-tune.js';
import { modelNormalize } from '../../io/model-file.js';
import { manualSeed } from '../../nn/layers.js';
import type { Module } from '../../nn/module.js';
import { computeChannelStats, type NormalizeOptions } from '../../data/index.js';
import { lkamOptionsFor, readRunOptions, TrainingRun, type TrainBegin, type TrainingCallbacks, type TrainingResult } from '../../train/run.js';
import { outputFullHelp } from '../commands/train.js';
import { Interrupted, UsageError } from '../errors.js';
import { dataFlags, loadData } from '../inputs.js';
import type { ColorMode } from '../../data/index.js';
import { applyConfig, applyValues } from '../options.js';
import { Output } from '../output.js';
import { startEngine } from './common.js';

export type TrainFlags = Recipe & RunKnobs & { inputSize?: [number, number]; color?: ColorMode; force?: boolean; json?: boolean; quiet?: boolean; plain?: boolean; debug?: boolean; helpAll?: boolean };

/** Options a run's config.json does not record (they say how to run, not what to train). */
const NOT_RECORDED = new Set(['force', 'json', 'quiet', 'plain', 'debug', 'config', 'resume', 'out', 'helpAll']);

/** Resolves --help-all, --config and --resume into the command's option values; returns the flags to train with. */
export function resolveTrainFlags(cmd: Command): TrainFlags {
  let f = cmd.opts<TrainFlags>();
  if (f.helpAll === true) {
    outputFullHelp(cmd);
    throw new CommanderError(0, 'commander.helpDisplayed', '(outputHelp)');
  }
  const file = f.config;
  if (file !== undefined) {
    applyConfig(cmd, file, new Set(['config', 'resume']), (values) => {
      const o: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(values)) o[camel(k)] = v;
      if ('sparsityWarmup' in o) throw new UsageError(`--config ${file}: 'sparsity-warmup' (epochs) became 'ramp', a fraction of the run`);
      try {
        return dropRetired(o, `--config ${file}`);
      } catch (e) {
        throw e instanceof RetiredOptionError ? new UsageError(e.message) : e;
      }
    });
  }
  f = cmd.opts<TrainFlags>();
  if (f.resume !== undefined) {
    const options = readRunOptions(f.resume);
    applyValues(cmd, options, join(f.resume, RUN_FILES.config), NOT_RECORDED);
    f = { ...cmd.opts<TrainFlags>(), out: f.resume };
  }
  return f;
}

function recipeOf(f: TrainFlags): Partial<Recipe> {
  const r: Record<string, unknown> = {};
  for (const k of RECIPE_NAMES) r[k] = f[k];
  return r as Partial<Recipe>;
}

function defaultRunDir(model: string): string {
  const t = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
  return join('runs', `${model}-${t}`);
}

const fmtM = (x: number): string => `${(x / 1e6).toFixed(2)}M`;

/** Progress on the terminal: a header, a bar per epoch, a line per epoch. */
function progress(out: Output, f: TrainFlags, command: string, loadSeconds: number): TrainingCallbacks {
  let bar: ReturnType<Output['bar']> | null = null;
  const payload = (ep: string, loss = '-', acc = '-', sw = '-', macs = '-', ips = '-'): Record<string, string> => ({ ep, loss, acc, sw, macs, ips });
  return {
    onTrainBegin(i: TrainBegin, run: TrainingRun) {
      for (const line of i.resumedPassedOver) out.warn(line);
      if (i.resumedFrom !== null) out.info(`resumed ${i.runDir} at step ${i.resumedFrom} (from ${i.resumedFile})`);
      out.info(`parsimony ${command}: ${f.from === undefined ? f.model : `${f.from} (fine-tuned${f.lkam ? ', its LKAMs starting exactly open' : ''})`} (${(i.denseMacs / 1e6).toFixed(1)} M MACs/image dense, ${i.parameters} parameters)${i.gatedConvs.length > 0 ? `, ${i.gatedConvs.length} LKAMs gating convs ${i.gatedConvs.join(', ')} ('kernels on' below follows this order)` : ''}`);
      out.info(`  data: ${i.trainImages} train / ${i.validationImages} validation / ${i.testImages} test images (${f.data}), loaded in ${loadSeconds.toFixed(2)} s`);
      if (i.keep !== null) {
        out.info(`  compute target: ${run.recipe.keep === undefined ? `${run.recipe.target.toFixed(3)} of the dense multiply-adds (${(1 / run.recipe.target).toFixed(2)}x fewer), ` : ''}each gate keeping ${(100 * i.keep).toFixed(1)}% of its kernels on`);
        if (i.rampSteps > i.totalSteps) {
          const reached = 1 - (1 - i.keep) * (i.totalSteps / i.rampSteps);
          out.info(`  note: this run's ${i.totalSteps} steps are too few to reach the target: the gates' target falls no faster than over ${i.rampSteps} steps (faster, the controllers overshoot and close kernels for good), so it ends at ${(100 * reached).toFixed(0)}% of the kernels on; train more epochs or on more images`);
        }
      }
      const e = engine();
      out.info(`  engine: ${e.backend.name}, ${e.backend.threads} thread(s); batch ${run.recipe.batch}, ${run.recipe.optimizer} lr ${run.recipe.lr}, ${run.recipe.schedule}, ${run.recipe.epochs} epoch(s)${i.runDir === null ? '' : `; run directory ${i.runDir}`}`);
    },
    onEpochBegin(epoch, position, run) {
      const format = `epoch {ep} {bar} {value}/{total} | loss {loss} acc {acc}${run.recipe.lkam ? ' | switch {sw}' : ''} | MACs {macs} | {ips} img/s | ETA {eta_formatted}`;
      bar = out.bar(run.stepsPerEpoch, position, format, payload(`${epoch + 1}/${run.recipe.epochs}`));
    },
    onBatchEnd(s, run) {
      bar?.update(s.position, payload(`${s.epoch + 1}/${run.recipe.epochs}`, s.epochLoss.toFixed(4), `${(100 * s.epochAccuracy).toFixed(1)}%`, s.epochMeanSwitch === null ? '-' : s.epochMeanSwitch.toFixed(3), fmtM(s.epochMacs), s.imagesPerSecond.toFixed(0)));
    },
    onEpochEnd(m: EpochMetrics, run) {
      bar?.stop();
      bar = null;
      const parts = [`  epoch ${m.epoch}/${run.recipe.epochs}: train loss ${m.train.loss.toFixed(4)} acc ${(100 * m.train.accuracy).toFixed(2)}%`, `${m.imagesPerSecond.toFixed(0)} images/s, ${m.seconds.toFixed(1)} s`];
      if (run.recipe.lkam) parts.push(`sparsity term ${m.train.sparsityTerm.toFixed(4)}, sparsity weights ${(m.sparsityWeights ?? []).map((w) => w.toFixed(3)).join(' ')}, mean switch ${(m.train.meanSwitch ?? 0).toFixed(3)}`);
      const v = m.validation;
      if (v !== undefined && v !== null) {
        parts.push(m.macs === null ? `validation loss ${v.loss.toFixed(4)} acc ${(100 * v.accuracy).toFixed(2)}%`
          : `validation acc ${(100 * v.accuracy).toFixed(2)}%, MACs ${(m.macs.mean / 1e6).toFixed(2)} M (${m.macs.reduction.toFixed(2)}x fewer), kernels on ${m.layers.map((l) => `${(100 * l.meanOn).toFixed(0)}%`).join(' ')}`);
      }
      out.info(parts.join(' | '));
    },
    onTrainEnd(r: TrainingResult) {
      bar?.stop();
      bar = null;
      if (r.interrupted === null && r.saved.length > 0) out.info(`  wrote ${[...r.saved, ...(r.eval === null || r.run === null ? [] : [join(r.run, RUN_FILES.eval)])].join(', ')}`);
    },
  };
}

/** The whole training; throws Interrupted after a checkpoint when the user pressed Ctrl-C. */
export async function train(f: TrainFlags, out: Output, command: 'train' | 'demo', onEngine: () => void = () => {}): Promise<TrainingResult> {
  const t0 = performance.now();
  const data = await loadData(dataFlags(f));
  const loadSeconds = (performance.now() - t0) / 1000;
  await startEngine(f.threads === undefined ? {} : { threads: f.threads });
  onEngine();
  const recipe = resolveRecipe(recipeOf(f), 'train');
  // --from: the network is a trained dense model (with --lkam, its LKAMs start exactly open); it keeps its own normalisation.
  let model: Module | undefined;
  let normalize: NormalizeOptions | undefined;
  if (f.from !== undefined) {
    const trained = await openTrainedModel(f.from);
    manualSeed(recipe.seed);
    if (recipe.lkam) {
      const start = prepareFineTune(trained, data, `--data ${f.data}`, { lkam: lkamOptionsFor(recipe, trained.model), gains: recipe.gains, dataNormalize: computeChannelStats(data.train) });
      model = start.model;
      if (f.resume === undefined) normalize = start.normalize;
    } else {
      checkModelFits(trained.file, trained.model, trained.meta, data, `--data ${f.data}`);
      model = trained.model;
      if (f.resume === undefined && trained.format === 'parsimony') normalize = modelNormalize(trained.meta);
    }
  }
  const recorded: Record<string, unknown> = {};
  if (f.threads !== undefined) recorded['threads'] = f.threads;
  if (f.checkpointEvery !== undefined && f.checkpointEvery > 0) recorded['checkpoint-every'] = f.checkpointEvery;
  if (f.inputSize !== undefined) recorded['input-size'] = f.inputSize.join('x');
  if (f.color !== undefined) recorded['color'] = f.color;
  const run = new TrainingRun({
    recipe, data: { train: data.train, test: data.test, ...(normalize === undefined ? {} : { normalize }) }, ...(model === undefined ? {} : { model }), runDir: f.out ?? null, resume: f.resume !== undefined, force: f.force === true,
    interruptDir: () => defaultRunDir(f.model), checkpointEvery: f.checkpointEvery ?? 0, ...(f.save === undefined ? {} : { save: f.save }),
    callbacks: [progress(out, f, command, loadSeconds)], command, rampFloor: command !== 'demo', dataLabel: f.data, recorded,
  });
  const onSigint = (): void => {
    run.interrupt();
    process.removeListener('SIGINT', onSigint);
  };
  process.on('SIGINT', onSigint);
  let result: TrainingResult;
  try {
    result = await run.fit();
  } finally {
    process.removeListener('SIGINT', onSigint);
    out.close();
  }
  const i = result.interrupted;
  if (i !== null) {
    throw new Interrupted(`interrupted ${i.atEpochEnd ? `after epoch ${i.epoch}` : `at epoch ${i.epoch}, step ${i.step}`}: checkpoint written to ${i.checkpoint}; continue with: parsimony train --resume ${result.run}`);
  }
  return result;
}

export async function run(_o: unknown, c: Command): Promise<void> {
  const f = resolveTrainFlags(c);
  const out = new Output(f);
  let started = false;
  try {
    const result = await train(f, out, 'train', () => { started = true; });
    out.data(result);
    const t = result.test;
    if (t !== null) {
      const macs = f.lkam ? `, ${t.macs.reduction.toFixed(2)}x fewer multiply-adds than dense` : '';
      out.result(`test accuracy ${(100 * t.accuracy).toFixed(2)}%${macs}${result.run === null ? '' : ` (run directory ${result.run})`}`);
    }
  } finally {
    if (started) engine().close();
  }
}
