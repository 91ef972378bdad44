/**
 * A tiny resumable training run for the crash test (`checkpoint.test.ts` runs it as a child process):
 *
 *   node --import tsx test/io/train-child.ts <dir> [--forget-optimizer]
 *
 * A small CNN whose second conv is gated by an LKAM (trained with the sparsity term), on synthetic
 * 1x8x8 images shuffled and flipped by a seeded DataLoader, per-step input noise from a seeded
 * generator, SGD with momentum and weight decay on a cosine schedule over the global step,
 * a checkpoint every EVERY steps; `<dir>/final.safetensors` at the end. If `<dir>/run.ckpt` (or its
 * .prev) exists the run resumes from it. `--forget-optimizer` resumes but then drops the optimizer's
 * state: the control that shows the test can tell a faithful resume from an unfaithful one.
 * Prints `resumed <step> <file>` and `step <n>` lines for the parent. PARSIMONY_STEP_PAUSE_MS makes
 * each step last at least that long, so that a parent reading the lines can kill the run mid-way.
 */
import { join } from 'node:path';
import { writeSync } from 'node:fs';
import { engine } from '../../src/autograd/engine.js';
import { DataLoader, InMemoryDataset } from '../../src/data/index.js';
import { resume, saveCheckpoint } from '../../src/io/checkpoint.js';
import { saveModel } from '../../src/io/node-files.js';
import { Rng } from '../../src/nn/init.js';
import { BatchNorm2d, Conv2d, GlobalAvgPool, Linear, manualSeed, MaxPool2d, ReLU, Sequential } from '../../src/nn/layers.js';
import { addLKAMs } from '../../src/nn/lkam.js';
import { sparsityTerm } from '../../src/train/objective.js';
import { SGD } from '../../src/optim/sgd.js';
import { cosine } from '../../src/optim/schedule.js';
import { trainStep } from '../../src/train/fit.js';
import { useEngine } from './helpers.js';
import { BATCH, EPOCHS, EVERY, SAMPLES, TOTAL_STEPS } from './train-child-config.js';

const BASE_LR = 0.05;

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: train-child.ts <dir> [--forget-optimizer]');
const forgetOptimizer = process.argv.includes('--forget-optimizer');
const say = (line: string): void => {
  writeSync(1, `${line}\n`);
};

await useEngine();
manualSeed(42);
const model = addLKAMs(new Sequential([
  new Conv2d({ inChannels: 1, outChannels: 4, kernel: 3, padding: 1, bias: false }),
  new BatchNorm2d(4),
  new ReLU(),
  new MaxPool2d(2),
  new Conv2d({ inChannels: 4, outChannels: 6, kernel: 3, padding: 1, bias: false }),
  new BatchNorm2d(6),
  new ReLU(),
  new GlobalAvgPool(),
  new Linear({ inFeatures: 6, outFeatures: 3 }),
]), { bank: 2 });

const data = new Rng(7);
const labels = Int32Array.from({ length: SAMPLES }, (_, i) => i % 3);
const pixels = new Uint8Array(SAMPLES * 64);
for (let i = 0; i < SAMPLES; i++) {
  for (let p = 0; p < 64; p++) pixels[i * 64 + p] = Math.min(255, Math.floor(data.next() * 128 + ((p % 8) < 3 * ((labels[i] as number) + 1) ? 100 : 0)));
}
const dataset = new InMemoryDataset({ name: 'synthetic', pixels, labels, shape: [1, 8, 8], classNames: ['a', 'b', 'c'] });
const loader = new DataLoader(dataset, { batchSize: BATCH, seed: 5, workers: 0, augment: { flip: true } });
let optimizer = new SGD(model.parameters(), { lr: BASE_LR, momentum: 0.9, weightDecay: 1e-4 });
const noise = new Rng(9);
const schedule = cosine(TOTAL_STEPS, 0.1);
const ckpt = join(dir, 'run.ckpt');
const pauseMs = Number(process.env['PARSIMONY_STEP_PAUSE_MS'] ?? 0);
const pause = new Int32Array(new SharedArrayBuffer(4));

const resumed = resume(ckpt, { model, optimizer, loader, rngs: { noise } });
let step = resumed?.step ?? 0;
if (resumed !== null) say(`resumed ${step} ${resumed.file}`);
if (forgetOptimizer) optimizer = new SGD(model.parameters(), { lr: BASE_LR, momentum: 0.9, weightDecay: 1e-4 });

for (let epoch = resumed?.epoch ?? 0; epoch < EPOCHS; epoch++) {
  for (const b of loader.epoch(epoch)) {
    const x = b.x.slice();
    for (let i = 0; i < x.length; i++) x[i] = (x[i] as number) + 0.05 * (noise.next() - 0.5);
    if (pauseMs > 0) Atomics.wait(pause, 0, 0, pauseMs);
    optimizer.lr = BASE_LR * schedule(step);
    trainStep(model, optimizer, { x, y: b.y, shape: b.shape }, (readings) => sparsityTerm(readings, 0.5));
    step++;
    if (step % EVERY === 0) saveCheckpoint(ckpt, { model, optimizer, loader, rngs: { noise }, epoch, step });
    say(`step ${step}`);
  }
}
saveModel(join(dir, 'final.safetensors'), model, { inputShape: [1, 8, 8], classNames: ['a', 'b', 'c'], training: { steps: step } });
engine().close();
say('done');
