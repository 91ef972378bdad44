/** The `parsimony` command line. The only layer that prints for people. */
import { Command, InvalidArgumentError, Option } from 'commander';
import { init } from '../autograd/engine.js';
import { DataLoader, loadFashionMnist } from '../data/index.js';
import { manualSeed } from '../nn/layers.js';
import type { Module } from '../nn/module.js';
import { fmnistVgg5, smallResNet } from '../nn/zoo.js';
import { Adam, AdamW, SGD, cosine, constant, linearWarmup, stepDecay, type Optimizer, type Schedule } from '../optim/index.js';
import { fit, type EpochReport } from '../train/fit.js';
import { addLKAMs, setGains, sparsityLoss, type LkamPool, type SwitchKind } from '../nn/lkam.js';
import { denseMacs, measureParsimony, type ParsimonyReport } from '../train/parsimony.js';
import { BudgetController } from '../train/budget.js';
import { saveModel } from '../io/node-files.js';

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
  lkam: boolean;
  sparsity: number;
  sparsityWarmup: number;
  gains: 'uniform' | 'macs';
  bank: number;
  pool: LkamPool;
  grid: number;
  switch: SwitchKind;
  deadSwitches: 'keep' | 'ste';
  budget?: number;
  save?: string;
}

export interface TrainResult {
  readonly epochs: EpochReport[];
  readonly parsimony: ParsimonyReport[];
}

async function train(f: TrainFlags): Promise<TrainResult> {
  const make = MODELS[f.model];
  if (make === undefined) throw new Error(`--model: unknown model '${f.model}' (known: ${Object.keys(MODELS).join(', ')})`);
  const t0 = performance.now();
  const data = f.data === 'builtin' ? loadFashionMnist({ subset: 'builtin' }) : f.data === 'full' ? loadFashionMnist({ subset: 'full' }) : loadFashionMnist({ dir: f.data });
  const loadSeconds = (performance.now() - t0) / 1000;
  const engine = await init(f.threads === undefined ? {} : { threads: f.threads });
  manualSeed(f.seed);
  let model = make();
  if (f.lkam) {
    model = addLKAMs(model, { bank: f.bank, pool: f.pool, grid: f.grid, switchKind: f.switch, straightThrough: f.deadSwitches === 'ste' });
    setGains(model, f.gains, [1, ...data.train.shape]);
  }
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
  const parsimony: ParsimonyReport[] = [];
  const budget = f.budget === undefined ? null : new BudgetController({ target: f.budget, initialWeight: f.sparsity });
  const dense = denseMacs(model, [1, ...data.train.shape]);
  const warm = (step: number): number => (f.sparsityWarmup > 0 ? Math.min(1, step / (f.sparsityWarmup * stepsPerEpoch)) : 1);
  const sparsityAt = (step: number): number => (budget === null ? f.sparsity : budget.weight) * warm(step);
  let extraSum = 0;
  let stepsInEpoch = 0;
  try {
    const epochs = fit(model, {
      epochs: f.epochs,
      optimizer: opt,
      stepsPerEpoch,
      schedule,
      trainBatches: (e) => trainLoader.epoch(e),
      ...(f.lkam ? {} : { testBatches: () => testLoader.epoch(0) }),
      ...(f.lkam && f.sparsity > 0 ? { extraLoss: (m: Module) => sparsityLoss(m, sparsityAt(opt.stepCount)) } : {}),
      onStep: (_step, r) => {
        extraSum += r.extraLoss;
        stepsInEpoch++;
        budget?.update(r.macs, dense);
      },
      onEpoch: (r) => {
        let test = r.test === null ? '' : ` | test loss ${r.test.loss.toFixed(4)} acc ${(100 * r.test.accuracy).toFixed(2)}%`;
        if (f.lkam) {
          const p = measureParsimony(model, testLoader.epoch(0), data.test.numClasses);
          parsimony.push(p);
          const on = p.layers.map((l) => `${(100 * l.meanOn).toFixed(0)}%`).join(' ');
          const weight = budget === null ? '' : `, sparsity weight ${budget.weight.toFixed(3)}`;
          test = ` | sparsity term ${(extraSum / Math.max(1, stepsInEpoch)).toFixed(4)}${weight} | test acc ${(100 * p.accuracy).toFixed(2)}%, MACs ${(p.macs.mean / 1e6).toFixed(2)} M (${p.macs.reduction.toFixed(2)}x fewer), kernels on ${on}`;
        }
        extraSum = 0;
        stepsInEpoch = 0;
        if (!f.json) console.log(`  epoch ${r.epoch}/${f.epochs}: train loss ${r.trainLoss.toFixed(4)} acc ${(100 * r.trainAccuracy).toFixed(2)}% | ${r.imagesPerSecond.toFixed(0)} images/s, ${r.seconds.toFixed(1)} s${test}`);
      },
    });
    if (f.save !== undefined) {
      const last = parsimony[parsimony.length - 1];
      const lastEpoch = epochs[epochs.length - 1];
      model.eval();
      saveModel(f.save, model, {
        inputShape: [...data.train.shape],
        classNames: [...data.train.classNames],
        training: {
          model: f.model, data: f.data, epochs: f.epochs, batch: f.batch, lr: f.lr, optimizer: f.optimizer, schedule: f.schedule, seed: f.seed,
          lkam: f.lkam, sparsity: f.sparsity, gains: f.gains, bank: f.bank, pool: f.pool, grid: f.grid, switch: f.switch, deadSwitches: f.deadSwitches, budget: f.budget ?? null,
          testAccuracy: last?.accuracy ?? lastEpoch?.test?.accuracy ?? null,
          macReduction: last?.macs.reduction ?? null,
        },
      });
      if (!f.json) console.log(`  saved ${f.save}`);
    }
    return { epochs, parsimony };
  } finally {
    trainLoader.close();
    testLoader.close();
    engine.close();
  }
}

/** Typed arrays print as plain lists. */
function jsonReplacer(_key: string, value: unknown): unknown {
  return ArrayBuffer.isView(value) ? Array.from(value as unknown as ArrayLike<number>) : value;
}

function trainOptions(cmd: Command, defaults: { epochs: number; data: string; lkam: boolean }): Command {
  const c = defaults.lkam
    ? cmd.option('--no-lkam', 'train the dense network, without LKAMs')
    : cmd.option('--lkam', 'add LKAMs between consecutive convs and train them with the sparsity term', false);
  return c
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
    .option('--json', 'print the per-epoch reports as JSON', false)
    .option('--sparsity <w>', 'weight of the sparsity term (with --lkam)', (v) => Number(v), 1)
    .option('--sparsity-warmup <epochs>', 'epochs over which the sparsity weight rises linearly from 0', (v) => Number(v), 1)
    .addOption(new Option('--gains <kind>', 'per-gate gains: uniform, or proportional to each kernel\'s multiply-adds').choices(['uniform', 'macs']).default('macs'))
    .option('--bank <k>', '1x1 convolutions in each LKAM', positiveInt('--bank'), 4)
    .addOption(new Option('--pool <kind>', 'LKAM pooling').choices(['max', 'avg']).default('max'))
    .option('--grid <g>', 'LKAM pooling grid (1 = global)', positiveInt('--grid'), 1)
    .addOption(new Option('--switch <kind>', 'switch function').choices(['hard', 'sigmoid']).default('hard'))
    .addOption(new Option('--dead-switches <how>', "hard switches that close for every input: 'keep' them closed (pruned; training skips their kernels) or 'ste' (straight-through gradient, which can reopen them but computes every kernel while training)").choices(['keep', 'ste']).default('keep'))
    .option('--save <file>', 'write the trained model to this file (safetensors) at the end')
    .option('--budget <fraction>', 'train towards this fraction of the dense multiply-adds, adapting the sparsity weight (starting at --sparsity)', (v) => {
      const n = Number(v);
      if (!(n > 0 && n <= 1)) throw new InvalidArgumentError(`--budget should be a fraction in (0, 1], got '${v}'`);
      return n;
    });
}

export async function main(argv: readonly string[]): Promise<number> {
  const program = new Command('parsimony')
    .description('Train convolutional networks that learn which kernels each input needs, and skip the rest.')
    .option('--debug', 'print stack traces on errors', false)
    .exitOverride();
  let exitCode = 0;
  trainOptions(program.command('train').description('train a network on Fashion-MNIST'), { epochs: 3, data: 'builtin', lkam: false })
    .action(async (f: TrainFlags) => {
      const result = await train(f);
      if (f.json) console.log(JSON.stringify(result, jsonReplacer, 2));
    });
  trainOptions(program.command('demo').description('train fmnist-vgg5 briefly on the built-in subset and report accuracy and speed'), { epochs: 3, data: 'builtin', lkam: true })
    .action(async (f: TrainFlags) => {
      const result = await train(f);
      const last = result.epochs[result.epochs.length - 1];
      const lastP = result.parsimony[result.parsimony.length - 1];
      if (last !== undefined && !f.json) {
        const acc = lastP?.accuracy ?? last.test?.accuracy ?? 0;
        const macs = lastP === undefined ? '' : `, ${lastP.macs.reduction.toFixed(2)}x fewer multiply-adds than dense`;
        console.log(`demo: test accuracy ${(100 * acc).toFixed(2)}% after ${result.epochs.length} epoch(s)${macs}, ${last.imagesPerSecond.toFixed(0)} training images/s`);
      }
      if (f.json) console.log(JSON.stringify(result, jsonReplacer, 2));
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
