import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  computeChannelStats, dataOptionsSchema, DEFAULT_VALIDATION_FRACTION, detectKind, FASHION_MNIST_CLASSES, openData, trainingSplits,
} from '../../src/data/index.js';
import { writeCifar10, writeImageFolder } from '../util/user-data.js';
import { assertDataErrorAsync, tempDir, writeIdx } from './helpers.js';

describe('openData: one resolver for --data', () => {
  test('builtin: Fashion-MNIST subset, 1x28x28, ten named classes; --limit keeps the first images', async () => {
    const d = await openData({ data: 'builtin', limit: 50 });
    assert.equal(d.kind, 'fashion-mnist');
    assert.deepEqual(d.inputShape, [1, 28, 28]);
    assert.deepEqual(d.classNames, FASHION_MNIST_CLASSES);
    assert.equal(d.train.length, 50);
    assert.equal(d.test.length, 50);
  });

  test('an image folder: classes from sub-folders, a fixed-seed 20% test split, rgb or grayscale, --input-size', async () => {
    const { dir, cleanup } = tempDir();
    try {
      await writeImageFolder(dir, { classes: ['cat', 'dog', 'eel'], perClass: 5, size: [6, 8] });
      assert.equal(detectKind(dir), 'image-folder');
      const d = await openData({ data: dir });
      assert.equal(d.kind, 'image-folder');
      assert.deepEqual(d.classNames, ['cat', 'dog', 'eel']);
      assert.deepEqual(d.inputShape, [3, 6, 8]);
      assert.equal(d.train.length + d.test.length, 15);
      assert.equal(d.test.length, 3);
      assert.deepEqual(Array.from(d.test.labels).sort(), [0, 1, 2], 'stratified: one test image per class');
      const again = await openData({ data: dir });
      assert.deepEqual(again.test.pixels, d.test.pixels, 'the same test images every time');
      const g = await openData({ data: dir, color: 'grayscale', inputSize: 4 });
      assert.deepEqual(g.inputShape, [1, 4, 4]);
    } finally {
      cleanup();
    }
  });

  test('an image folder with train/ and test/: those splits, the test split sized like the training one', async () => {
    const { dir, cleanup } = tempDir();
    try {
      await writeImageFolder(join(dir, 'train'), { classes: ['a', 'b'], perClass: 3, size: [5, 5] });
      await writeImageFolder(join(dir, 'test'), { classes: ['a', 'b'], perClass: 2, size: [5, 5], seed: 2 });
      const d = await openData({ data: dir });
      assert.equal(d.train.length, 6);
      assert.equal(d.test.length, 4);
      assert.deepEqual(d.classNames, ['a', 'b']);
    } finally {
      cleanup();
    }
  });

  test('a CIFAR-10 binary folder: 3x32x32, the five batches in order, names from batches.meta.txt', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const names = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
      writeCifar10(dir, { perBatch: 4, test: 6, names });
      const d = await openData({ data: dir });
      assert.equal(d.kind, 'cifar10');
      assert.deepEqual(d.inputShape, [3, 32, 32]);
      assert.equal(d.train.length, 20);
      assert.equal(d.test.length, 6);
      assert.deepEqual(d.classNames, names);
    } finally {
      cleanup();
    }
  });

  test('an IDX folder: classes.json names the classes, else Fashion-MNIST names for up to ten classes', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const images = { type: 'u8' as const, dims: [4, 3, 3], data: new Uint8Array(36).map((_, i) => i) };
      const labels = { type: 'u8' as const, dims: [4], data: Uint8Array.of(0, 1, 2, 1) };
      writeIdx(join(dir, 'train-images-idx3-ubyte'), images);
      writeIdx(join(dir, 'train-labels-idx1-ubyte'), labels, true);
      writeIdx(join(dir, 't10k-images-idx3-ubyte'), images, true);
      writeIdx(join(dir, 't10k-labels-idx1-ubyte'), labels);
      const d = await openData({ data: dir });
      assert.equal(d.kind, 'idx');
      assert.deepEqual(d.inputShape, [1, 3, 3]);
      assert.deepEqual(d.classNames, FASHION_MNIST_CLASSES);
      writeFileSync(join(dir, 'classes.json'), JSON.stringify({ classes: ['x', 'y', 'z'] }));
      assert.deepEqual((await openData({ data: dir })).classNames, ['x', 'y', 'z']);
      writeFileSync(join(dir, 'classes.json'), JSON.stringify({ classes: ['x', 'y'] }));
      await assertDataErrorAsync(() => openData({ data: dir }), ['labels go up to 2', 'classes.json names 2 classes']);
    } finally {
      cleanup();
    }
  });
});

describe('openData: bad input gets one line naming the input and what was expected', () => {
  test('a folder without class folders, CIFAR or IDX files', async () => {
    const { dir, cleanup } = tempDir();
    try {
      writeFileSync(join(dir, 'readme.txt'), 'x');
      await assertDataErrorAsync(() => openData({ data: dir }), [dir, 'holds no class folders, CIFAR binaries or IDX files', 'one sub-folder of images per class']);
      await assertDataErrorAsync(() => openData({ data: join(dir, 'readme.txt') }), ['readme.txt', 'is a file, expected a folder']);
      await assertDataErrorAsync(() => openData({ data: join(dir, 'nope') }), ['nope: no such folder']);
    } finally {
      cleanup();
    }
  });

  test('images of mixed sizes: named, with --input-size as the way out; resized they load', async () => {
    const { dir, cleanup } = tempDir();
    try {
      await writeImageFolder(dir, { classes: ['a', 'b'], perClass: 3, size: [6, 6], sizeOf: (c, i) => (c === 1 && i === 2 ? [7, 9] : [6, 6]) });
      await assertDataErrorAsync(() => openData({ data: dir }), [join(dir, 'b', '002.png'), 'image is 9x7, others are 6x6', 'pass --input-size']);
      const d = await openData({ data: dir, inputSize: '6x6' });
      assert.deepEqual(d.inputShape, [3, 6, 6]);
    } finally {
      cleanup();
    }
  });

  test('a CIFAR-10 folder missing a batch names the missing file and what the folder holds', async () => {
    const { dir, cleanup } = tempDir();
    try {
      writeCifar10(dir, { perBatch: 2, test: 2, skip: [3] });
      await assertDataErrorAsync(() => openData({ data: dir }), [dir, 'missing data_batch_3.bin', 'data_batch_1.bin .. data_batch_5.bin and test_batch.bin']);
      rmSync(join(dir, 'test_batch.bin'));
      await assertDataErrorAsync(() => openData({ data: dir }), ['missing data_batch_3.bin, test_batch.bin']);
    } finally {
      cleanup();
    }
  });

  test('--input-size and --color that a fixed format does not have are refused, naming the data', async () => {
    const { dir, cleanup } = tempDir();
    try {
      writeCifar10(dir, { perBatch: 1, test: 1 });
      await assertDataErrorAsync(() => openData({ data: dir, inputSize: 28 }), ['--input-size 28x28 applies to image folders', 'CIFAR-10 data holds 32x32 images']);
      await assertDataErrorAsync(() => openData({ data: dir, color: 'grayscale' }), ['--color grayscale applies to image folders']);
      await assertDataErrorAsync(() => openData({ data: 'builtin', color: 'rgb' }), ['--color rgb', 'grayscale images']);
      assert.equal((await openData({ data: 'builtin', color: 'grayscale', limit: 2 })).inputShape[0], 1);
    } finally {
      cleanup();
    }
  });

  test('the schema checks the options: sizes, colours, limits', () => {
    assert.deepEqual(dataOptionsSchema.parse({ inputSize: '32x48' }).inputSize, [32, 48]);
    assert.deepEqual(dataOptionsSchema.parse({ inputSize: 32 }).inputSize, [32, 32]);
    assert.equal(dataOptionsSchema.parse({}).data, 'builtin');
    assert.match(dataOptionsSchema.safeParse({ inputSize: '0x3' }).error?.issues[0]?.message ?? '', /size in pixels/);
    assert.equal(dataOptionsSchema.safeParse({ color: 'cmyk' }).success, false);
    assert.equal(dataOptionsSchema.safeParse({ limit: 0 }).success, false);
    assert.equal(dataOptionsSchema.safeParse({ epochs: 3 }).success, false, 'unknown keys are refused');
  });
});

describe('trainingSplits', () => {
  test('a seeded, stratified 10% validation split by default; normalisation from the part trained on', async () => {
    const d = await openData({ data: 'builtin' });
    const a = trainingSplits(d.train, { seed: 4 });
    const b = trainingSplits(d.train, { seed: 4 });
    const c = trainingSplits(d.train, { seed: 5 });
    assert.equal(DEFAULT_VALIDATION_FRACTION, 0.1);
    assert.equal(a.validation?.length, Math.round(0.1 * d.train.length));
    assert.equal(a.train.length + (a.validation?.length ?? 0), d.train.length);
    const ids = (x: typeof a): number[] => Array.from((x.validation as unknown as { indices: Int32Array }).indices);
    assert.deepEqual(ids(a), ids(b), 'same seed, same split');
    assert.notDeepEqual(ids(a), ids(c), 'another seed, another split');
    assert.deepEqual(a.normalize, computeChannelStats(a.train));
    assert.ok(Math.abs((a.normalize.mean[0] as number) - 0.286) < 0.01 && Math.abs((a.normalize.std[0] as number) - 0.353) < 0.01, JSON.stringify(a.normalize));
    const none = trainingSplits(d.train, { seed: 4, validation: 0 });
    assert.equal(none.validation, null);
    assert.equal(none.train.length, d.train.length);
  });

  test('per-channel statistics of an RGB folder: one mean and deviation per channel', async () => {
    const { dir, cleanup } = tempDir();
    try {
      await writeImageFolder(dir, { classes: ['a', 'b', 'c'], perClass: 10, size: [4, 4] });
      const d = await openData({ data: dir });
      const s = trainingSplits(d.train, { seed: 0 });
      assert.equal(s.normalize.mean.length, 3);
      assert.equal(s.normalize.std.length, 3);
      assert.ok(new Set(s.normalize.mean).size === 3, 'the channels differ');
    } finally {
      cleanup();
    }
  });
});

