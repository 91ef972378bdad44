import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  InMemoryDataset,
  SubsetDataset,
  classCounts,
  computeChannelStats,
  materialize,
  splitDataset,
  type Dataset,
  type DatasetItem,
} from '../../src/data/index.js';
import { assertDataError, TOL } from './helpers.js';

/** n samples of shape [1, 1, 2]; sample i holds [i, 2i] and label i % k. */
function tiny(n: number, k: number): InMemoryDataset {
  const pixels = new Uint8Array(n * 2);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    pixels[2 * i] = i & 255;
    pixels[2 * i + 1] = (2 * i) & 255;
    labels[i] = i % k;
  }
  return new InMemoryDataset({ name: 'tiny', pixels, labels, shape: [1, 1, 2], classNames: Array.from({ length: k }, (_, c) => `c${c}`) });
}

test('InMemoryDataset: item is a view; bad sizes and labels are named', () => {
  const ds = tiny(5, 3);
  const it = ds.item(4);
  assert.deepEqual(Array.from(it.pixels), [4, 8]);
  assert.equal(it.label, 1);
  assert.equal(it.pixels.buffer, ds.pixels.buffer);
  assert.throws(() => ds.item(5), /index 5 is outside 0..4/);
  assertDataError(() => new InMemoryDataset({ name: 'd', pixels: new Uint8Array(5), labels: new Int32Array(3), shape: [1, 1, 2], classNames: ['a'] }), [
    'd: 3 labels need 6 pixel values of shape [1, 1, 2], got 5',
  ]);
  assertDataError(() => new InMemoryDataset({ name: 'd', pixels: new Uint8Array(4), labels: Int32Array.from([0, 2]), shape: [1, 1, 2], classNames: ['a', 'b'] }), [
    'd: label 2 at index 1 is out of range: expected 0..1 (2 classes)',
  ], { field: 'label[1]' });
});

test('splitDataset (stratified): exact sizes, per-class proportions, disjoint, seeded', () => {
  const ds = tiny(1000, 4);
  const { train, validation } = splitDataset(ds, { validation: 0.1, seed: 3 });
  assert.equal(validation.length, 100);
  assert.equal(train.length, 900);
  assert.deepEqual(classCounts(validation), [25, 25, 25, 25]);
  const all = new Set([...train.indices, ...validation.indices]);
  assert.equal(all.size, 1000);
  const again = splitDataset(ds, { validation: 0.1, seed: 3 });
  assert.deepEqual(again.validation.indices, validation.indices);
  assert.notDeepEqual(splitDataset(ds, { validation: 0.1, seed: 4 }).validation.indices, validation.indices);
  for (let i = 1; i < validation.length; i++) assert.ok(validation.indices[i - 1]! < validation.indices[i]!);
});

test('splitDataset (stratified) with uneven classes hits the requested count by largest remainder', () => {
  // class sizes 5, 3, 2 (labels from a custom array)
  const labels = Int32Array.from([0, 0, 0, 0, 0, 1, 1, 1, 2, 2]);
  const ds = new InMemoryDataset({ name: 'u', pixels: new Uint8Array(10), labels, shape: [1, 1, 1], classNames: ['a', 'b', 'c'] });
  const { validation } = splitDataset(ds, { validation: 3, seed: 0 });
  assert.equal(validation.length, 3);
  // quotas 1.5, 0.9, 0.6 → floors 1, 0, 0 → remainders give b then c
  assert.deepEqual(classCounts(validation), [1, 1, 1]);
});

test('splitDataset (not stratified) and bad validation sizes', () => {
  const ds = tiny(50, 5);
  const { train, validation } = splitDataset(ds, { validation: 7, seed: 1, stratify: false });
  assert.equal(validation.length, 7);
  assert.equal(train.length, 43);
  assertDataError(() => splitDataset(ds, { validation: 0, seed: 1 }), ['tiny: validation must be a fraction in (0, 1) or a whole number of samples in 1..49, got 0'], { field: 'validation' });
  assertDataError(() => splitDataset(ds, { validation: 50, seed: 1 }), ['got 50']);
  assertDataError(() => splitDataset(ds, { validation: 0.001, seed: 1 }), ['leaves an empty part']);
});

test('SubsetDataset composes indices over shared storage', () => {
  const ds = tiny(10, 2);
  const a = new SubsetDataset(ds, [9, 7, 5, 3]);
  const b = new SubsetDataset(a, [3, 0]);
  assert.deepEqual(Array.from(b.item(0).pixels), [3, 6]);
  const st = b.storage();
  assert.ok(st !== undefined);
  assert.equal(st.pixels, ds.pixels);
  assert.deepEqual(Array.from(st.indices ?? []), [3, 9]);
  assert.throws(() => new SubsetDataset(ds, [10]), /index 10 is outside 0..9/);
});

test('materialize copies a dataset without storage', () => {
  const inner = tiny(4, 2);
  const plain: Dataset = {
    name: 'plain',
    length: 4,
    shape: [1, 1, 2],
    classNames: ['x', 'y'],
    numClasses: 2,
    item: (i: number): DatasetItem => inner.item(i),
  };
  const m = materialize(plain);
  assert.deepEqual(Array.from(m.pixels), Array.from(inner.pixels));
  assert.deepEqual(Array.from(m.labels), Array.from(inner.labels));
});

test('computeChannelStats: per-channel mean and population std in scaled units', () => {
  // 2 samples of [2, 1, 2]: channel 0 values 0, 255, 255, 0; channel 1 values 51 everywhere
  const pixels = Uint8Array.from([0, 255, 51, 51, 255, 0, 51, 51]);
  const ds = new InMemoryDataset({ name: 's', pixels, labels: Int32Array.from([0, 0]), shape: [2, 1, 2], classNames: ['a'] });
  const { mean, std } = computeChannelStats(ds);
  assert.ok(Math.abs(mean[0]! - 0.5) <= TOL.close);
  assert.ok(Math.abs(std[0]! - 0.5) <= TOL.close);
  assert.ok(Math.abs(mean[1]! - 0.2) <= TOL.close);
  assert.ok(Math.abs(std[1]!) <= TOL.close);
  const raw = computeChannelStats(ds, { scale: 1 });
  assert.ok(Math.abs(raw.mean[0]! - 127.5) <= TOL.close);
});
