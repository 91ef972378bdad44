/**
 * The command line on a user's own data, end to end in child processes: an image folder of PNG files
 * and CIFAR-10 binaries, both written here (small), through train, eval, prune, bench, report and info;
 * and every measuring command refusing a model that does not fit the data, naming both.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, explain, tempDir, type CliResult } from './helpers.js';
import { writeCifar10, writeImageFolder } from '../util/user-data.js';

const SHIPPED = 'models/fmnist-vgg5-lkam.safetensors';
const TINY = ['--model', 'vgg8', '--width', '0.125', '--epochs', '1', '--batch', '16', '--threads', '1', '--seed', '1', '--quiet'];

async function ok(args: readonly string[]): Promise<CliResult> {
  const r = await cli(args);
  assert.equal(r.code, 0, explain(args, r));
  return r;
}

async function refused(args: readonly string[], message: string): Promise<void> {
  const r = await cli(args);
  assert.equal(r.code, 3, explain(args, r));
  assert.ok(r.stderr.includes(message), `expected "${message}" in\n${explain(args, r)}`);
  const lines = r.stderr.trim().split('\n');
  assert.ok((lines[lines.length - 1] as string).includes(message), `the error is the last line:\n${r.stderr}`);
  assert.equal(lines.filter((l) => l.includes(message)).length, 1, `one line:\n${r.stderr}`);
  assert.ok(!/^\s+at /m.test(r.stderr), `no stack trace:\n${r.stderr}`);
}

describe('the CLI on an image folder and on CIFAR-10 binaries', () => {
  const dir = tempDir('parsimony-user-data-');
  const folder = (): string => join(dir(), 'images');
  const cifar = (): string => join(dir(), 'cifar');

  before(async () => {
    await writeImageFolder(folder(), { classes: ['circle', 'square', 'star'], perClass: 10, size: [16, 16] });
    writeCifar10(cifar(), { perBatch: 8, test: 10, names: ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'] });
  });

  for (const [name, data, shape, classes] of [
    ['image folder', folder, [3, 16, 16], ['circle', 'square', 'star']],
    ['CIFAR-10 binaries', cifar, [3, 32, 32], ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']],
  ] as const) {
    test(`${name}: train with LKAMs, then eval, prune, bench, report and info on the run`, async () => {
      const run = join(dir(), name.replace(/\W+/g, '-'));
      if (name === 'image folder') {
        // A dense network first, then fine-tuned from its file with LKAMs added exactly open.
        const dense = join(dir(), 'dense');
        await ok(['train', '--data', data(), ...TINY, '--out', dense]);
        await ok(['train', '--data', data(), '--from', join(dense, 'model.safetensors'), '--lkam', ...TINY, '--out', run]);
        const denseInfo = JSON.parse((await ok(['info', dense, '--json'])).stdout) as { normalize: unknown };
        const tuned = JSON.parse((await ok(['info', run, '--json'])).stdout) as { normalize: unknown; lkams: unknown[]; training: { from: string } };
        assert.deepEqual(tuned.normalize, denseInfo.normalize, 'fine-tuning keeps the normalisation the dense model was trained with');
        assert.ok(tuned.lkams.length > 0);
        assert.equal(tuned.training.from, join(dense, 'model.safetensors'));
      } else {
        await ok(['train', '--data', data(), '--lkam', ...TINY, '--out', run]);
      }
      const info = JSON.parse((await ok(['info', run, '--data', data(), '--json'])).stdout) as { inputShape: number[]; classNames: string[]; normalize: { mean: number[]; std: number[] }; normalizeRecorded: boolean; fitsData: string };
      assert.deepEqual(info.inputShape, shape);
      assert.deepEqual(info.classNames, classes);
      assert.equal(info.normalizeRecorded, true);
      assert.equal(info.normalize.mean.length, 3, 'one mean per channel, from the training split');
      assert.ok(info.normalize.std.every((s) => s > 0));
      const [ev, pr, be] = await Promise.all([
        ok(['eval', run, '--threads', '1', '--json']),
        ok(['prune', run, '--threads', '1', '--json']),
        ok(['bench', run, '--reps', '2', '--rounds', '1', '--warmup', '1', '--batch', '4', '--no-ort', '--json']),
      ]);
      const evr = JSON.parse(ev.stdout) as { data: string; images: number; plan: { accuracy: number; agreesWithGraph: number } };
      assert.equal(evr.data, data());
      assert.ok(evr.images > 0 && evr.plan.agreesWithGraph === 1, ev.stdout);
      assert.equal((JSON.parse(pr.stdout) as { test: { predictionsDiffering: number } }).test.predictionsDiffering, 0);
      assert.ok((JSON.parse(be.stdout) as { rows: unknown[] }).rows.length >= 2);
      await ok(['report', run]);
      const html = readFileSync(join(run, 'report.html'), 'utf8');
      assert.ok(html.includes(classes[0]), 'the report names the classes');
      assert.ok(existsSync(join(run, 'pruned.safetensors')));
    });
  }

  test('eval, prune, bench, report and info refuse a model that does not fit the data, naming both (exit 3)', async () => {
    const shapeLine = `${SHIPPED}: the model reads 1x28x28 images, but --data ${cifar()} holds 3x32x32 images`;
    await Promise.all([
      refused(['eval', SHIPPED, '--data', cifar(), '--threads', '1'], shapeLine),
      refused(['prune', SHIPPED, '--data', cifar(), '--threads', '1'], shapeLine),
      refused(['bench', SHIPPED, '--data', cifar(), '--no-ort'], shapeLine),
      refused(['info', SHIPPED, '--data', cifar()], shapeLine),
      refused(['eval', SHIPPED, '--data', folder(), '--color', 'grayscale', '--input-size', '28', '--threads', '1'], `${SHIPPED}: the model has 10 outputs, but --data ${folder()} has 3 classes ('circle', 'square', 'star')`),
    ]);
    const run = join(dir(), 'image-folder');
    assert.ok(existsSync(join(run, 'model.safetensors')), 'the image-folder run of the first test');
    const tuned = join(run, 'model.safetensors');
    const dense = join(dir(), 'dense', 'model.safetensors');
    await Promise.all([
      refused(['report', run, '--data', cifar()], `${tuned}: the model reads 3x16x16 images, but --data ${cifar()} holds 3x32x32 images`),
      refused(['train', '--from', tuned, '--data', folder(), '--lkam', ...TINY], `${tuned}: the model already has`),
      refused(['train', '--from', dense, '--data', cifar(), '--lkam', ...TINY], `${dense}: the model reads 3x16x16 images, but --data ${cifar()} holds 3x32x32 images`),
    ]);
  });
});
