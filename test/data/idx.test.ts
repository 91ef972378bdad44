import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { decodeIdx, encodeIdx, loadIdxDataset, readIdx, type IdxArray, type IdxType } from '../../src/data/index.js';
import { assertDataError, tempDir, writeIdx } from './helpers.js';

const header = (code: number, dims: number[]): number[] => [0, 0, code, dims.length, ...dims.flatMap((d) => [(d >>> 24) & 255, (d >>> 16) & 255, (d >>> 8) & 255, d & 255])];

test('decodes hand-written big-endian IDX bytes of every element type', () => {
  const cases: [number, number[], IdxType, number[]][] = [
    [0x08, [0x00, 0x7f, 0xff], 'u8', [0, 127, 255]],
    [0x09, [0x00, 0x7f, 0xff], 'i8', [0, 127, -1]],
    [0x0b, [0xff, 0xfe, 0x01, 0x02], 'i16', [-2, 258]],
    [0x0c, [0x80, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00], 'i32', [-2147483648, 65536]],
    [0x0d, [0x3f, 0xc0, 0x00, 0x00, 0xc1, 0x20, 0x00, 0x00], 'f32', [1.5, -10]],
    [0x0e, [0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18], 'f64', [Math.PI]],
  ];
  for (const [code, data, type, values] of cases) {
    const n = values.length;
    const arr = decodeIdx(Uint8Array.from([...header(code, [n]), ...data]), `t.${type}`);
    assert.equal(arr.type, type);
    assert.deepEqual(arr.dims, [n]);
    assert.deepEqual(Array.from(arr.data), values);
  }
});

test('encodeIdx then decodeIdx is the identity for any type and shape (property)', () => {
  const typeArb = fc.constantFrom<IdxType>('u8', 'i8', 'i16', 'i32', 'f32', 'f64');
  fc.assert(
    fc.property(typeArb, fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 }), fc.integer(), (type, dims, seed) => {
      const count = dims.reduce((a, b) => a * b, 1);
      const values = Array.from({ length: count }, (_, i) => ((seed + i * 2654435761) | 0) / 1000);
      const ctor = { u8: Uint8Array, i8: Int8Array, i16: Int16Array, i32: Int32Array, f32: Float32Array, f64: Float64Array }[type];
      const data = ctor.from(values);
      const arr: IdxArray = { type, dims, data };
      const back = decodeIdx(encodeIdx(arr));
      assert.equal(back.type, type);
      assert.deepEqual(back.dims, dims);
      assert.deepEqual(Array.from(back.data), Array.from(data));
    }),
    { seed: 42, numRuns: 200 },
  );
});

test('readIdx reads gzip (by magic, whatever the name) and raw files alike', () => {
  const { dir, cleanup } = tempDir();
  try {
    const arr: IdxArray = { type: 'u8', dims: [2, 2, 3], data: Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]) };
    const raw = readIdx(writeIdx(join(dir, 'a-idx3-ubyte'), arr));
    const gz = readIdx(writeIdx(join(dir, 'b-idx3-ubyte'), arr, true));
    assert.deepEqual(raw, gz);
    assert.deepEqual(Array.from(gz.data), Array.from(arr.data));
  } finally {
    cleanup();
  }
});

test('bad IDX input: wrong magic', () => {
  const bytes = Uint8Array.from([0x50, 0x4b, 0x08, 0x01, 0, 0, 0, 0]);
  assertDataError(() => decodeIdx(bytes, 'x.idx'), ['x.idx: not an IDX file: expected magic bytes 00 00 at offset 0, found 50 4b'], { file: 'x.idx', field: 'magic' });
});

test('bad IDX input: unknown type code, zero dimensions, truncated header', () => {
  assertDataError(() => decodeIdx(Uint8Array.from(header(0x07, [1]).concat([0])), 'x.idx'), ['x.idx: unknown IDX type code 0x07'], { field: 'type' });
  assertDataError(() => decodeIdx(Uint8Array.from([0, 0, 8, 0]), 'x.idx'), ['declares 0 dimensions'], { field: 'dims' });
  assertDataError(() => decodeIdx(Uint8Array.from([0, 0, 8]), 'x.idx'), ['x.idx: truncated IDX header: file has 3 bytes'], { field: 'header' });
  assertDataError(() => decodeIdx(Uint8Array.from(header(8, [60000, 28, 28]).slice(0, 10)), 'x.idx'), [
    'x.idx: truncated IDX header: file has 10 bytes, a header with 3 dimensions needs 16',
  ]);
});

test('bad IDX input: truncated data names the header claim and the real size', () => {
  const { dir, cleanup } = tempDir();
  try {
    const file = join(dir, 'train-images-idx3-ubyte.gz');
    writeFileSync(file, gzipSync(Uint8Array.from([...header(8, [60000, 28, 28]), ...new Uint8Array(1000)])));
    const err = assertDataError(() => readIdx(file), [], { file, field: 'dims' });
    assert.equal(err.message, `${file}: header says 60000 images of 28x28 (47040000 bytes), file has 1000 bytes of data`);
    assert.equal(err.expected, '47040000 bytes');
    assert.equal(err.actual, '1000 bytes');
  } finally {
    cleanup();
  }
});

test('bad IDX input: more data than the header describes; labels wording', () => {
  assertDataError(() => decodeIdx(Uint8Array.from([...header(8, [3]), 1, 2, 3, 4]), 'l.idx'), [
    'l.idx: header says 3 labels (3 bytes), file has 4 bytes of data (1 bytes more than the header describes)',
  ]);
  assertDataError(() => decodeIdx(Uint8Array.from([...header(0x0d, [2, 2]), 1, 2, 3]), 'm.idx'), ['header says an array of 2x2 f32 (16 bytes), file has 3 bytes of data']);
});

test('bad IDX input: absurd header dimensions are rejected before any allocation', () => {
  const bytes = Uint8Array.from([...header(0x0e, [0xffffffff, 0xffffffff, 0xffffffff]), 1, 2, 3]);
  assertDataError(() => decodeIdx(bytes, 'big.idx'), ['big.idx: header says 4294967295 images of 4294967295x4294967295', 'more than the 2147483648 bytes an IDX file may hold']);
});

test('bad IDX input: corrupt or truncated gzip stream', () => {
  const { dir, cleanup } = tempDir();
  try {
    const gz = gzipSync(encodeIdx({ type: 'u8', dims: [100], data: new Uint8Array(100) }));
    const file = join(dir, 'cut.gz');
    writeFileSync(file, gz.subarray(0, gz.length - 12));
    assertDataError(() => readIdx(file), [`${file}: gzip data is corrupt or truncated`], { field: 'gzip' });
    assertDataError(() => readIdx(join(dir, 'missing.gz')), ['missing.gz: no such file']);
  } finally {
    cleanup();
  }
});

test('loadIdxDataset pairs images and labels as [1, H, W] uint8 with class names', () => {
  const { dir, cleanup } = tempDir();
  try {
    const img = writeIdx(join(dir, 'i'), { type: 'u8', dims: [3, 2, 2], data: Uint8Array.from({ length: 12 }, (_, i) => i * 10) }, true);
    const lab = writeIdx(join(dir, 'l'), { type: 'u8', dims: [3], data: Uint8Array.from([2, 0, 1]) });
    const ds = loadIdxDataset(img, lab, { classNames: ['a', 'b', 'c'] });
    assert.deepEqual(ds.shape, [1, 2, 2]);
    assert.equal(ds.length, 3);
    assert.equal(ds.numClasses, 3);
    assert.ok(ds.pixels instanceof Uint8Array);
    assert.deepEqual(Array.from(ds.item(1).pixels), [40, 50, 60, 70]);
    assert.equal(ds.item(0).label, 2);
    assert.ok(ds.pixels.buffer instanceof SharedArrayBuffer, 'pixels are shared with the prefetch worker without a copy');
    const unnamed = loadIdxDataset(img, lab);
    assert.deepEqual(unnamed.classNames, ['0', '1', '2']);
  } finally {
    cleanup();
  }
});

test('bad IDX dataset: label out of range, count mismatch, wrong dimensions, float labels', () => {
  const { dir, cleanup } = tempDir();
  try {
    const img = writeIdx(join(dir, 'img'), { type: 'u8', dims: [3, 2, 2], data: new Uint8Array(12) });
    const lab = writeIdx(join(dir, 'lab'), { type: 'u8', dims: [3], data: Uint8Array.from([1, 12, 0]) });
    assertDataError(() => loadIdxDataset(img, lab, { classNames: Array.from({ length: 10 }, String) }), [
      `${lab}: label 12 at index 1 is out of range: expected 0..9 (10 classes)`,
    ], { file: lab, field: 'label[1]' });

    const lab2 = writeIdx(join(dir, 'lab2'), { type: 'u8', dims: [2], data: Uint8Array.from([1, 0]) });
    assertDataError(() => loadIdxDataset(img, lab2), [`${lab2}: 2 labels, but ${img} has 3 images`], { field: 'dims[0]' });

    const flat = writeIdx(join(dir, 'flat'), { type: 'u8', dims: [3, 4], data: new Uint8Array(12) });
    assertDataError(() => loadIdxDataset(flat, lab2), [`${flat}: expected 3 dimensions (images, rows, columns), header has 2 (3x4)`]);
    assertDataError(() => loadIdxDataset(img, flat), [`${flat}: expected 1 dimension (labels), header has 2`]);

    const fl = writeIdx(join(dir, 'fl'), { type: 'f32', dims: [3], data: Float32Array.from([0, 1, 2]) });
    assertDataError(() => loadIdxDataset(img, fl), [`${fl}: labels must be integers, file holds f32`]);

    const neg = writeIdx(join(dir, 'neg'), { type: 'i8', dims: [3], data: Int8Array.from([0, -1, 0]) });
    assertDataError(() => loadIdxDataset(img, neg, { classNames: ['a', 'b'] }), ['label -1 at index 1 is out of range']);
  } finally {
    cleanup();
  }
});

test('non-uint8 IDX images become float32 storage', () => {
  const { dir, cleanup } = tempDir();
  try {
    const img = writeIdx(join(dir, 'img'), { type: 'f32', dims: [2, 1, 2], data: Float32Array.from([0.5, -1, 2, 3]) });
    const lab = writeIdx(join(dir, 'lab'), { type: 'i32', dims: [2], data: Int32Array.from([1, 0]) });
    const ds = loadIdxDataset(img, lab);
    assert.ok(ds.pixels instanceof Float32Array);
    assert.deepEqual(Array.from(ds.item(0).pixels), [0.5, -1]);
  } finally {
    cleanup();
  }
});
