/** The `parsimony` command line. The only layer that prints for people. */
import { Command, InvalidArgumentError, Option } from 'commander';
import { init } from '../autograd/engine.js';
import { DataLoader, loadFashionMnist } from '../data/index.js';
import { manualSeed } from '../nn/layers.js';
import type { Module } from '../nn/module.js';
import { fmnistVgg5, smallResNet } from '../nn/zoo.js';
import { Adam, AdamW, SGD, cosine, constant, linearWarmup, stepDecay, type Optimizer, type Schedule } from '../optim/index.js';
import { fit, type EpochReport } from '../train/fit.js';

const MODELS: Record<string, () => Module> = {
  'fmnist-vgg5': () => fmnistVgg5(),
  'fmnist-vgg5-wide': () => fmnistVgg5({ width: 2 }),
  'resnet-small': () => smallResNet(),
};

function positiveInt(what: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${what} should be a whole number >= 1, got '${v}'`);
    return n;
  };
}
function positiveNumber(what: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${what} should be a number > 0, got '${v}'`);
    return n;
  };
}

interface TrainFlags {
  model: string;
  data: string;
  epochs: number;
  batch: number;
  lr: number;
  optimizer: 'adam' | 'adamw' | 'sgd';
  schedule: 'cosine' | 'step' | 'constant';
  warmup: number;
  threads?: number;
  seed: number;
  json: boolean;
}

async function train(f: TrainFlags): Promise<EpochReport[]> {
  const make = MODELS[f.model];
  if (make === undefined) throw new Error(`--model: unknown model '${f.model}' (known: ${Object.keys(MODELS).join(', ')})`);
  const t0 = performance.now();
  const data = f.data === 'builtin' ? loadFashionMnist({ subset: 'builtin' }) : f.data === 'full' ? loadFashionMnist({ subset: 'full' }) : loadFashionMnist({ dir: f.data });
  const loadSeconds = (performance.now() - t0) / 1000;
  const engine = await init(f.threads === undefined ? {} : { threads: f.threads });
  manualSeed(f.seed);
  const model = make();
  const params = model.parameters();
  const opt: Optimizer = f.optimizer === 'sgd' ? new SGD(params, { lr: f.lr, momentum: 0.9, nesterov: true, weightDecay: 5e-4 })
    : f.optimizer === 'adamw' ? new AdamW(params, { lr: f.lr }) : new Adam(params, { lr: f.lr });
  const normalize = { mean: [0.286], std: [0.353] };
  const trainLoader = new DataLoader(data.train, { batchSize: f.batch, shuffle: true, seed: f.seed, normalize, workers: 1 });
  const testLoader = new DataLoader(data.test, { batchSize: 500, shuffle: false, normalize, workers: 0 });
  const stepsPerEpoch = trainLoader.length;
  const total = stepsPerEpoch * f.epochs;
  const base: Schedule = f.schedule === 'cosine' ? cosine(Math.max(1, total - f.warmup)) : f.schedule === 'step' ? stepDecay(Math.max(1, Math.round(total / 3))) : constant();
  const schedule = f.warmup > 0 ? linearWarmup(f.warmup, base) : base;
  if (!f.json) {
    console.log(`parsimony train: ${f.model} (${(model.macs([1, ...data.train.shape]) / 1e6).toFixed(1)} M MACs/image, ${model.parameterCount()} parameters)`);
    console.log(`  data: ${data.train.length} train / ${data.test.length} test images (${f.data}), loaded in ${loadSeconds.toFixed(2)} s`);
    console.log(`  engine: ${engine.backend.name}, ${engine.backend.threads} thread(s); batch ${f.batch}, ${f.optimizer} lr ${f.lr}, ${f.schedule}, ${f.epochs} epoch(s)`);
  }
  try {
    return fit(model, {
      epochs: f.epochs,
      optimizer: opt,
      stepsPerEpoch,
      schedule,
      trainBatches: (e) => trainLoader.epoch(e),
      testBatches: () => testLoader.epoch(0),
      onEpoch: (r) => {
        if (f.json) return;
        const test = r.test === null ? '' : ` | test loss ${r.test.loss.toFixed(4)} acc ${(100 * r.test.accuracy).toFixed(2)}%`;
        console.log(`  epoch ${r.epoch}/${f.epochs}: train loss ${r.trainLoss.toFixed(4)} acc ${(100 * r.trainAccuracy).toFixed(2)}% | ${r.imagesPerSecond.toFixed(0)} images/s, ${r.seconds.toFixed(1)} s${test}`);
      },
    });
  } finally {
    trainLoader.close();
    testLoader.close();
    engine.close();
  }
}

function trainOptions(cmd: Command, defaults: { epochs: number; data: string }): Command {
  return cmd
    .addOption(new Option('--model <name>', 'network to train').choices(Object.keys(MODELS)).default('fmnist-vgg5'))
    .option('--data <where>', "'builtin' (the 6,000/1,000 subset in the repo), 'full' (Debian's dataset-fashion-mnist), or a folder of IDX files", defaults.data)
    .option('--epochs <n>', 'epochs', positiveInt('--epochs'), defaults.epochs)
    .option('--batch <n>', 'batch size', positiveInt('--batch'), 128)
    .option('--lr <x>', 'base learning rate', positiveNumber('--lr'), 1e-3)
    .addOption(new Option('--optimizer <name>', 'optimizer').choices(['adam', 'adamw', 'sgd']).default('adam'))
    .addOption(new Option('--schedule <name>', 'learning-rate schedule').choices(['cosine', 'step', 'constant']).default('cosine'))
    .option('--warmup <steps>', 'linear warm-up steps', (v) => Number(v), 0)
    .option('--threads <n>', 'threads (default: available cores)', positiveInt('--threads'))
    .option('--seed <n>', 'seed for initialisation and data order', (v) => Number(v), 0)
    .option('--json', 'print the per-epoch reports as JSON', false);
}

export async function main(argv: readonly string[]): Promise<number> {
  const program = new Command('parsimony')
    .description('Train convolutional networks that learn which kernels each input needs, and skip the rest.')
    .option('--debug', 'print stack traces on errors', false)
    .exitOverride();
  let exitCode = 0;
  trainOptions(program.command('train').description('train a network on Fashion-MNIST'), { epochs: 3, data: 'builtin' })
    .action(async (f: TrainFlags) => {
      const reports = await train(f);
      if (f.json) console.log(JSON.stringify(reports, null, 2));
    });
  trainOptions(program.command('demo').description('train fmnist-vgg5 briefly on the built-in subset and report accuracy and speed'), { epochs: 2, data: 'builtin' })
    .action(async (f: TrainFlags) => {
      const reports = await train(f);
      const last = reports[reports.length - 1];
      if (last !== undefined && last.test !== null && !f.json) {
        console.log(`demo: test accuracy ${(100 * last.test.accuracy).toFixed(2)}% after ${reports.length} epoch(s), ${last.imagesPerSecond.toFixed(0)} training images/s`);
      }
      if (f.json) console.log(JSON.stringify(reports, null, 2));
    });
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    const err = e as Error & { code?: string; exitCode?: number };
    if (typeof err.code === 'string' && err.code.startsWith('commander.')) {
      return err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help' ? 0 : 2;
    }
    const debug = argv.includes('--debug');
    console.error(`parsimony: ${debug ? (err.stack ?? err.message) : err.message}`);
    exitCode = 1;
  }
  return exitCode;
}
