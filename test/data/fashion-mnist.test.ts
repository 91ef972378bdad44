import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { DEBIAN_FASHION_MNIST_DIR, FASHION_MNIST_CLASSES, builtinFashionMnistDir, loadFashionMnist } from '../../src/data/index.js';
import { assertDataError, needsFullFashionMnist, tempDir } from './helpers.js';

const IMAGE_BYTES = 28 * 28;
const IDX3_HEADER = 16;
const IDX1_HEADER = 8;

/** The raw IDX bytes of a file, read without the library under test. */
function rawIdx(file: string): Buffer {
  return gunzipSync(readFileSync(file));
}

const sha = (b: NodeJS.ArrayBufferView): string => createHash('sha256').update(b).digest('hex');

test('class names are the ten Fashion-MNIST classes in label order', () => {
  assert.deepEqual(FASHION_MNIST_CLASSES, ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot']);
});

test('builtinFashionMnistDir resolves data/fashion-mnist-subset at the repository root', () => {
  const expected = join(new URL('../..', import.meta.url).pathname, 'data', 'fashion-mnist-subset');
  assert.equal(builtinFashionMnistDir(), expected);
});

test('built-in subset: 6,000 train and 1,000 test images, exactly 600 / 100 per class', () => {
  const { train, test: t } = loadFashionMnist();
  assert.equal(train.length, 6000);
  assert.equal(t.length, 1000);
  assert.deepEqual(train.shape, [1, 28, 28]);
  assert.deepEqual(train.classNames, FASHION_MNIST_CLASSES);
  assert.deepEqual(train.classCounts(), new Array(10).fill(600));
  assert.deepEqual(t.classCounts(), new Array(10).fill(100));
});

test('built-in subset files match their manifest (content hashes and recorded source indices)', () => {
  const dir = builtinFashionMnistDir();
  const manifest = JSON.parse(readFileSync(join(dir, 'subset.json'), 'utf8')) as {
    files: Record<string, { sha256: string; idxSha256: string }>;
    trainSourceIndices: number[];
    testSourceIndices: number[];
  };
  for (const [name, h] of Object.entries(manifest.files)) {
    const bytes = readFileSync(join(dir, name));
    assert.equal(sha(gunzipSync(bytes)), h.idxSha256, `${name} content`);
    assert.equal(sha(bytes), h.sha256, `${name} gzip bytes`);
    assert.equal(bytes[0], 0x1f);
    assert.deepEqual([...bytes.subarray(4, 8)], [0, 0, 0, 0], `${name}: gzip mtime is 0`);
  }
  for (const [indices, n, limit] of [[manifest.trainSourceIndices, 6000, 60000], [manifest.testSourceIndices, 1000, 10000]] as const) {
    assert.equal(indices.length, n);
    for (let i = 1; i < n; i++) assert.ok(indices[i - 1]! < indices[i]!, 'ascending and distinct');
    assert.ok(indices[0]! >= 0 && indices[n - 1]! < limit);
  }
});

test('full Fashion-MNIST: 6,000 per class in train, 1,000 per class in test', needsFullFashionMnist, () => {
  const { train, test: t } = loadFashionMnist({ subset: 'full' });
  assert.equal(train.length, 60000);
  assert.equal(t.length, 10000);
  assert.deepEqual(train.classCounts(), new Array(10).fill(6000));
  assert.deepEqual(t.classCounts(), new Array(10).fill(1000));
});

test('full Fashion-MNIST: known images equal the raw bytes read independently', needsFullFashionMnist, () => {
  const { train, test: t } = loadFashionMnist({ subset: 'full' });
  for (const [ds, stem, picks] of [
    [train, 'train', [0, 1, 12345, 59999]],
    [t, 't10k', [0, 4321, 9999]],
  ] as const) {
    const images = rawIdx(join(DEBIAN_FASHION_MNIST_DIR, `${stem}-images-idx3-ubyte.gz`));
    const labels = rawIdx(join(DEBIAN_FASHION_MNIST_DIR, `${stem}-labels-idx1-ubyte.gz`));
    for (const i of picks) {
      const want = images.subarray(IDX3_HEADER + i * IMAGE_BYTES, IDX3_HEADER + (i + 1) * IMAGE_BYTES);
      const item = ds.item(i);
      assert.equal(sha(item.pixels), sha(want), `${stem} image ${i}`);
      assert.equal(item.label, labels[IDX1_HEADER + i], `${stem} label ${i}`);
    }
  }
  // first labels as published: train starts Ankle boot, T-shirt, T-shirt, Dress; test starts Ankle boot, Pullover
  assert.deepEqual(Array.from(train.labels.subarray(0, 4)), [9, 0, 0, 3]);
  assert.deepEqual(Array.from(t.labels.subarray(0, 2)), [9, 2]);
});

test('built-in subset: each image equals the full-set image at its recorded source index', needsFullFashionMnist, () => {
  const manifest = JSON.parse(readFileSync(join(builtinFashionMnistDir(), 'subset.json'), 'utf8')) as {
    trainSourceIndices: number[];
    testSourceIndices: number[];
  };
  const sub = loadFashionMnist();
  for (const [split, stem, indices] of [['train', 'train', manifest.trainSourceIndices], ['test', 't10k', manifest.testSourceIndices]] as const) {
    const images = rawIdx(join(DEBIAN_FASHION_MNIST_DIR, `${stem}-images-idx3-ubyte.gz`));
    const labels = rawIdx(join(DEBIAN_FASHION_MNIST_DIR, `${stem}-labels-idx1-ubyte.gz`));
    const ds = sub[split];
    indices.forEach((src, i) => {
      const item = ds.item(i);
      const want = images.subarray(IDX3_HEADER + src * IMAGE_BYTES, IDX3_HEADER + (src + 1) * IMAGE_BYTES);
      assert.ok(Buffer.compare(Buffer.from(item.pixels.buffer, item.pixels.byteOffset, IMAGE_BYTES), want) === 0, `${split} ${i} ← source ${src}`);
      assert.equal(item.label, labels[IDX1_HEADER + src]);
    });
  }
});

test('loadFashionMnist names a missing folder and a missing file', () => {
  const { dir, cleanup } = tempDir();
  try {
    assertDataError(() => loadFashionMnist({ dir: join(dir, 'nope') }), ['Fashion-MNIST folder not found'], { file: join(dir, 'nope') });
    assertDataError(() => loadFashionMnist({ dir }), ['missing train-images-idx3-ubyte.gz (or train-images-idx3-ubyte)'], { file: dir });
  } finally {
    cleanup();
  }
});
