import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { CIFAR_IMAGE_BYTES, loadCifar10, loadCifar100, readCifarFiles } from '../../src/data/index.js';
import { assertDataError, tempDir } from './helpers.js';

/** A pixel value that encodes (record, channel, row, column), so layout mistakes show. */
const pixelValue = (r: number, c: number, y: number, x: number): number => (r * 37 + c * 101 + y * 7 + x * 3) & 255;

/** CIFAR binary records: label byte(s), then the R, G and B planes of 32x32, row-major. */
function cifarRecords(labels: readonly (readonly number[])[], firstRecord = 0): Uint8Array {
  const recordBytes = labels[0]!.length + CIFAR_IMAGE_BYTES;
  const out = new Uint8Array(labels.length * recordBytes);
  labels.forEach((ls, i) => {
    const at = i * recordBytes;
    out.set(ls, at);
    for (let c = 0; c < 3; c++) for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) out[at + ls.length + c * 1024 + y * 32 + x] = pixelValue(firstRecord + i, c, y, x);
  });
  return out;
}

function checkPixels(pixels: Uint8Array, record: number, sample: number): void {
  for (const [c, y, x] of [[0, 0, 0], [1, 5, 9], [2, 31, 31], [2, 17, 3]] as const) {
    assert.equal(pixels[c * 1024 + y * 32 + x], pixelValue(record, c, y, x), `record ${record} sample ${sample} c${c} y${y} x${x}`);
  }
}

test('CIFAR-10: five train batches and a test batch, CHW planes, names from batches.meta.txt', () => {
  const { dir, cleanup } = tempDir();
  try {
    const root = join(dir, 'cifar-10-batches-bin');
    mkdirSync(root);
    for (let b = 1; b <= 5; b++) writeFileSync(join(root, `data_batch_${b}.bin`), cifarRecords([[b - 1], [9], [b]], (b - 1) * 3));
    writeFileSync(join(root, 'test_batch.bin'), cifarRecords([[3], [4]], 100));
    const names = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
    writeFileSync(join(root, 'batches.meta.txt'), `${names.join('\n')}\n\n`);
    const { train, test: t } = loadCifar10({ dir }); // the parent folder is accepted too
    assert.equal(train.length, 15);
    assert.deepEqual(train.shape, [3, 32, 32]);
    assert.deepEqual(train.classNames, names);
    assert.deepEqual(Array.from(train.labels), [0, 9, 1, 1, 9, 2, 2, 9, 3, 3, 9, 4, 4, 9, 5]);
    for (let i = 0; i < 15; i++) checkPixels(train.item(i).pixels as Uint8Array, i, i);
    assert.equal(t.length, 2);
    checkPixels(t.item(1).pixels as Uint8Array, 101, 1);
    assert.deepEqual(Array.from(t.labels), [3, 4]);
  } finally {
    cleanup();
  }
});

test('CIFAR-10 without batches.meta.txt uses "0".."9"', () => {
  const { dir, cleanup } = tempDir();
  try {
    for (let b = 1; b <= 5; b++) writeFileSync(join(dir, `data_batch_${b}.bin`), cifarRecords([[1]]));
    writeFileSync(join(dir, 'test_batch.bin'), cifarRecords([[2]]));
    assert.deepEqual(loadCifar10({ dir }).train.classNames, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
  } finally {
    cleanup();
  }
});

test('CIFAR-100: fine or coarse labels as chosen, names from the label-name files', () => {
  const { dir, cleanup } = tempDir();
  try {
    writeFileSync(join(dir, 'train.bin'), cifarRecords([[19, 99], [0, 5], [7, 42]]));
    writeFileSync(join(dir, 'test.bin'), cifarRecords([[3, 30]], 50));
    writeFileSync(join(dir, 'fine_label_names.txt'), Array.from({ length: 100 }, (_, i) => `fine${i}`).join('\n'));
    writeFileSync(join(dir, 'coarse_label_names.txt'), Array.from({ length: 20 }, (_, i) => `coarse${i}`).join('\r\n'));
    const fine = loadCifar100({ dir });
    assert.deepEqual(Array.from(fine.train.labels), [99, 5, 42]);
    assert.equal(fine.train.numClasses, 100);
    assert.equal(fine.train.classNames[42], 'fine42');
    checkPixels(fine.train.item(2).pixels as Uint8Array, 2, 2);
    const coarse = loadCifar100({ dir, label: 'coarse' });
    assert.deepEqual(Array.from(coarse.train.labels), [19, 0, 7]);
    assert.equal(coarse.train.numClasses, 20);
    assert.equal(coarse.test.classNames[3], 'coarse3');
    checkPixels(coarse.test.item(0).pixels as Uint8Array, 50, 0);
  } finally {
    cleanup();
  }
});

test('bad CIFAR input: file size not a multiple of the record size', () => {
  const { dir, cleanup } = tempDir();
  try {
    const file = join(dir, 'data_batch_1.bin');
    writeFileSync(file, new Uint8Array(2 * 3073 + 100));
    const e = assertDataError(() => readCifarFiles([file], { format: 'cifar10' }), [
      `${file}: file has 6246 bytes, not a whole number of 3073-byte CIFAR-10 record (1 label byte + 3072 pixel bytes): 2 records and 100 bytes left over`,
    ], { file, field: 'size' });
    assert.equal(e.expected, 'a positive multiple of 3073 bytes');
    // a CIFAR-10 file read as CIFAR-100 is caught the same way
    writeFileSync(file, new Uint8Array(3073));
    assertDataError(() => readCifarFiles([file], { format: 'cifar100' }), ['3074-byte CIFAR-100 record']);
    writeFileSync(file, new Uint8Array(0));
    assertDataError(() => readCifarFiles([file], { format: 'cifar10' }), ['file has 0 bytes']);
  } finally {
    cleanup();
  }
});

test('bad CIFAR input: label out of range, missing file, wrong class-name count', () => {
  const { dir, cleanup } = tempDir();
  try {
    const file = join(dir, 'b.bin');
    writeFileSync(file, cifarRecords([[1], [10]]));
    assertDataError(() => readCifarFiles([file], { format: 'cifar10' }), [`${file}: label 10 in record 1 (byte 3073) is out of range: expected 0..9`], { field: 'record[1].label' });
    const f100 = join(dir, 'c.bin');
    writeFileSync(f100, cifarRecords([[20, 1]]));
    assertDataError(() => readCifarFiles([f100], { format: 'cifar100', label: 'coarse' }), ['coarse label 20 in record 0 (byte 0) is out of range: expected 0..19']);
    assert.equal(readCifarFiles([f100], { format: 'cifar100', label: 'fine' }).labels[0], 1);
    assertDataError(() => loadCifar10({ dir }), [`${dir}: missing data_batch_1.bin, data_batch_2.bin, data_batch_3.bin, data_batch_4.bin, data_batch_5.bin, test_batch.bin: a CIFAR-10 binary folder holds`], { file: dir });
    writeFileSync(join(dir, 'batches.meta.txt'), 'cat\ndog\n');
    assertDataError(() => loadCifar10({ dir }), ['expected 10 class names, one per line, found 2'], { file: join(dir, 'batches.meta.txt') });
  } finally {
    cleanup();
  }
});
