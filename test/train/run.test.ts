import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { init } from '../../src/autograd/engine.js';
import { loadFashionMnist } from '../../src/data/index.js';
import { parseSafetensors } from '../../src/io/safetensors.js';
import { RecipeError, resolveRecipe } from '../../src/train/recipe.js';
import { TrainingRun, type TrainingCallbacks } from '../../src/train/run.js';
import { keepForTarget, expectedFraction } from '../../src/train/target.js';
import { addLKAMs } from '../../src/nn/lkam.js';
import { fmnistVgg5 } from '../../src/nn/zoo.js';
import { cli, explain } from '../cli/helpers.js';

const RECIPE = { model: 'fmnist-vgg5-narrow', limit: 96, batch: 16, epochs: 2, lkam: true, seed: 5 } as const;
const FLAGS = ['--model', 'fmnist-vgg5-narrow', '--limit', '96', '--batch', '16', '--epochs', '2', '--lkam', '--seed', '5', '--threads', '1'];

describe('TrainingRun: the library runs what the command line runs', () => {
  let dir = '';
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'parsimony-run-'));
    await init({ threads: 1 });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const data = () => loadFashionMnist({ subset: 'builtin' });

  test('the same recipe through the API and through `parsimony train` writes the same model file, bit for bit', async () => {
    const viaCli = join(dir, 'cli');
    const args = ['train', ...FLAGS, '--out', viaCli, '--quiet'];
    const child = cli(args);
    const viaApi = join(dir, 'api');
    const result = await new TrainingRun({ recipe: RECIPE, data: data(), runDir: viaApi, command: 'train', dataLabel: 'builtin' }).fit();
    const r = await child;
    assert.equal(r.code, 0, explain(args, r));
    const a = readFileSync(join(viaCli, 'model.safetensors'));
    const b = readFileSync(join(viaApi, 'model.safetensors'));
    assert.ok(a.equals(b), 'identical model files (weights and training record)');
    const metrics = (d: string): unknown[] => readFileSync(join(d, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => {
      const m = JSON.parse(l) as Record<string, unknown>;
      delete m['seconds'];
      delete m['imagesPerSecond'];
      return m;
    });
    assert.deepEqual(metrics(viaApi), metrics(viaCli), 'the same per-epoch measurements');
    assert.match(r.stdout, new RegExp(`test accuracy ${(100 * (result.test?.accuracy ?? -1)).toFixed(2)}%`));
    const training = JSON.parse(parseSafetensors(a).metadata.get('training') ?? '{}') as Record<string, unknown>;
    assert.equal(training['target'], 0.32, 'the training record is the recipe');
    assert.equal(training['validation'], 0.1);
  });

  test('callbacks see the run in order; one that stops the run ends it as finished, with the test measurement', async () => {
    const seen: string[] = [];
    const cb: TrainingCallbacks = {
      onTrainBegin: (i) => seen.push(`begin ${i.trainImages}/${i.validationImages}/${i.testImages}`),
      onEpochBegin: (e) => seen.push(`epoch ${e}`),
      onBatchEnd: (s, run) => {
        seen.push(`step ${s.step}`);
        if (s.step === 3) run.stop();
      },
      onEpochEnd: (m) => seen.push(`end ${m.epoch}`),
      onTrainEnd: (r) => seen.push(`done ${r.test === null ? 'none' : 'tested'}`),
    };
    const result = await new TrainingRun({ recipe: { ...RECIPE, epochs: 3 }, data: data(), callbacks: [cb] }).fit();
    assert.deepEqual(seen, ['begin 86/10/96', 'epoch 0', 'step 1', 'step 2', 'step 3', 'done tested']);
    assert.equal(result.epochs.length, 0);
    assert.ok(result.test !== null && result.test.count === 96);
    assert.equal(result.interrupted, null);
  });

  test('interrupt() leaves a checkpoint; resuming it gives the uninterrupted run', async () => {
    const whole = await new TrainingRun({ recipe: RECIPE, data: data(), runDir: join(dir, 'whole') }).fit();
    const cut = join(dir, 'cut');
    const stopper: TrainingCallbacks = { onBatchEnd: (s, run) => { if (s.step === 7) run.interrupt(); } };
    const first = await new TrainingRun({ recipe: RECIPE, data: data(), runDir: cut, callbacks: [stopper] }).fit();
    assert.deepEqual(first.interrupted, { epoch: 2, step: 7, atEpochEnd: false, checkpoint: join(cut, 'checkpoint.ckpt') });
    const resumed = await new TrainingRun({ recipe: RECIPE, data: data(), runDir: cut, resume: true }).fit();
    assert.equal(resumed.resumedFrom, 7);
    assert.equal(resumed.test?.accuracy, whole.test?.accuracy);
    assert.ok(readFileSync(join(cut, 'model.safetensors')).equals(readFileSync(join(dir, 'whole', 'model.safetensors'))));
  });

  test('a recipe value out of range names the option and the range', () => {
    assert.throws(() => resolveRecipe({ batch: 1e6 }), (e: unknown) => e instanceof RecipeError && /^recipe: batch should be a whole number in 1\.\.4096, got 1000000$/.test(e.message));
    assert.throws(() => resolveRecipe({ keep: 0.5 }), /--keep needs LKAMs \(--lkam\)/);
    assert.throws(() => new TrainingRun({ recipe: { lkam: true, grid: 9, limit: 16 }, data: data() }), /--grid should be a whole number in 1\.\.7: the smallest maps an LKAM of --model fmnist-vgg5 reads are 7x7, got 9/);
  });
});

describe('the compute target', () => {
  before(async () => {
    await init({ threads: 1 });
  });
  test('the keep fraction for a target costs that target, in expectation', () => {
    const model = addLKAMs(fmnistVgg5(), { layers: [0, 1, 2, 3, 4] });
    for (const target of [0.25, 0.32, 0.5]) {
      const k = keepForTarget(model, [1, 28, 28], target);
      assert.ok(Math.abs(expectedFraction(model, [1, 28, 28], k) - target) < 1e-9, `target ${target}: keep ${k}`);
    }
    // Gated convs reading gated maps cost about keep squared: a third of the multiply-adds needs a keep near 0.57.
    const third = keepForTarget(model, [1, 28, 28], 1 / 3);
    assert.ok(third > 0.55 && third < 0.59, `keep ${third}`);
  });
});

describe('the ramp of the compute target', () => {
  test('a fraction of the run, but never faster than the measured recipe; 0 is no ramp', async () => {
    const { rampStepsFor, RAMP_STEPS_PER_KEEP } = await import('../../src/train/target.js');
    // The measured recipe: 10 epochs of 844 steps, ramp 0.3, keep 0.556: the fraction decides.
    assert.equal(rampStepsFor(0.3, 8440, 0.5557), 2532);
    // A short run: the floor decides, and the run ends before the target.
    assert.equal(rampStepsFor(0.3, 850, 0.5557), Math.ceil((1 - 0.5557) * RAMP_STEPS_PER_KEEP));
    assert.equal(rampStepsFor(0, 850, 0.5557), 0);
  });
});
