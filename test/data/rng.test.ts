import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng, mix32 } from '../../src/data/index.js';
import { fillPermutation, xoshiroNext } from '../../src/data/kernel.js';

test('xoshiro128** matches the reference C implementation from state [1, 2, 3, 4]', () => {
  const s = new Uint32Array([1, 2, 3, 4]);
  const got = Array.from({ length: 8 }, () => xoshiroNext(s));
  assert.deepEqual(got, [11520, 0, 5927040, 70819200, 2031721883, 1637235492, 1287239034, 3734860849]);
});

test('mix32 matches the reference C splitmix32 finaliser', () => {
  assert.deepEqual([0, 1, 0xdeadbeef, 0xffffffff].map(mix32), [1684164658, 1580013426, 46217145, 3950124170]);
});

test('same seed gives the same stream, different seeds differ', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  const c = new Rng(43);
  const sa = Array.from({ length: 16 }, () => a.nextUint32());
  assert.deepEqual(sa, Array.from({ length: 16 }, () => b.nextUint32()));
  assert.notDeepEqual(sa, Array.from({ length: 16 }, () => c.nextUint32()));
});

test('getState/setState resumes the exact stream', () => {
  const a = new Rng(7);
  for (let i = 0; i < 5; i++) a.nextUint32();
  const saved = a.getState();
  const expected = Array.from({ length: 10 }, () => a.nextUint32());
  const b = new Rng(999);
  b.setState(saved);
  assert.deepEqual(Array.from({ length: 10 }, () => b.nextUint32()), expected);
  assert.throws(() => b.setState([0, 0, 0, 0]), /all-zero/);
});

test('nextInt stays in range and is roughly uniform (chi-square, n=7, 70,000 draws)', () => {
  const r = new Rng(1);
  const counts = new Array<number>(7).fill(0);
  for (let i = 0; i < 70_000; i++) {
    const v = r.nextInt(7);
    assert.ok(v >= 0 && v < 7 && Number.isInteger(v));
    counts[v]! += 1;
  }
  const chi2 = counts.reduce((s, c) => s + (c - 10_000) ** 2 / 10_000, 0);
  // 6 degrees of freedom: P(chi2 > 22.46) = 0.001
  assert.ok(chi2 < 22.46, `chi2 = ${chi2}, counts ${counts.join(',')}`);
  assert.throws(() => r.nextInt(0), RangeError);
});

test('fillPermutation is a permutation, seeded by (seed, epoch), identity without shuffle', () => {
  const p = new Int32Array(1000);
  fillPermutation(p, 5, 0, true);
  assert.deepEqual([...p].sort((a, b) => a - b), Array.from({ length: 1000 }, (_, i) => i));
  const q = new Int32Array(1000);
  fillPermutation(q, 5, 0, true);
  assert.deepEqual(q, p);
  fillPermutation(q, 5, 1, true);
  assert.notDeepEqual(q, p);
  fillPermutation(q, 6, 0, true);
  assert.notDeepEqual(q, p);
  fillPermutation(q, 5, 0, false);
  assert.deepEqual(Array.from(q), Array.from({ length: 1000 }, (_, i) => i));
});

test('shuffled positions are close to uniform: element 0 lands in each of 4 places ~1/4 of the time', () => {
  const counts = [0, 0, 0, 0];
  const p = new Int32Array(4);
  for (let e = 0; e < 8000; e++) {
    fillPermutation(p, 3, e, true);
    counts[p.indexOf(0)]! += 1;
  }
  for (const c of counts) assert.ok(Math.abs(c - 2000) < 200, `counts ${counts.join(',')}`);
});
