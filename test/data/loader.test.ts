import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  DataLoader,
  InMemoryDataset,
  SubsetDataset,
  loadFashionMnist,
  type Batch,
  type Dataset,
  type DataLoaderOptions,
  type DatasetItem,
} from '../../src/data/index.js';
import { assembleBatch, fillPermutation, hashSeed, mix32, type BatchSource } from '../../src/data/kernel.js';
import { assertDataError, copyBatch, tempDir, TOL } from './helpers.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** n samples of shape [1, 2, 2] whose first two bytes encode the sample index; label = i % 10. */
function numbered(n: number): InMemoryDataset {
  const pixels = new Uint8Array(n * 4);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    pixels.set([i & 255, i >> 8, 7, 9], i * 4);
    labels[i] = i % 10;
  }
  return new InMemoryDataset({ name: 'numbered', pixels, labels, shape: [1, 2, 2], classNames: Array.from({ length: 10 }, String) });
}

/** Raw-value batches (scale 1, no normalisation) → sample ids. */
const ids = (b: Batch): number[] => Array.from({ length: b.size }, (_, s) => b.x[s * 4]! + 256 * b.x[s * 4 + 1]!);

function collect(loader: DataLoader, epoch: number, limit = Infinity): ReturnType<typeof copyBatch>[] {
  const out: ReturnType<typeof copyBatch>[] = [];
  for (const b of loader.epoch(epoch)) {
    out.push(copyBatch(b));
    if (out.length >= limit) break;
  }
  return out;
}

test('an epoch visits every sample once; batch sizes, dropLast and length', () => {
  const ds = numbered(1000);
  const loader = new DataLoader(ds, { batchSize: 64, seed: 1, scale: 1, workers: 0 });
  assert.equal(loader.length, 16);
  const batches: Batch[] = [];
  const seen: number[] = [];
  for (const b of loader.epoch(0)) {
    batches.push(b);
    seen.push(...ids(b));
    assert.deepEqual(b.shape, [b.size, 1, 2, 2]);
    assert.equal(b.x.length, b.size * 4);
    assert.deepEqual(Array.from(b.y), ids(b).map((i) => i % 10), 'labels travel with their images');
  }
  assert.deepEqual(batches.map((b) => b.size), [...new Array(15).fill(64), 40]);
  assert.deepEqual(batches.map((b) => b.index), Array.from({ length: 16 }, (_, i) => i));
  assert.deepEqual([...seen].sort((a, b) => a - b), Array.from({ length: 1000 }, (_, i) => i));
  assert.notDeepEqual(seen, Array.from({ length: 1000 }, (_, i) => i), 'shuffled');
  const dropping = new DataLoader(ds, { batchSize: 64, seed: 1, scale: 1, workers: 0, dropLast: true });
  assert.equal(dropping.length, 15);
  assert.deepEqual(collect(dropping, 0).map((b) => b.y.length), new Array(15).fill(64));
  const ordered = new DataLoader(ds, { batchSize: 300, shuffle: false, scale: 1, workers: 0 });
  assert.deepEqual(collect(ordered, 0).flatMap((b) => ids({ ...b, size: b.y.length } as Batch)), Array.from({ length: 1000 }, (_, i) => i));
});

test('same seed gives the same batches; another seed or epoch gives another order', () => {
  const ds = numbered(500);
  const opts: DataLoaderOptions = { batchSize: 50, seed: 11, scale: 1, workers: 0 };
  const a = collect(new DataLoader(ds, opts), 0);
  assert.deepEqual(collect(new DataLoader(ds, opts), 0), a);
  assert.notDeepEqual(collect(new DataLoader(ds, { ...opts, seed: 12 }), 0), a);
  assert.notDeepEqual(collect(new DataLoader(ds, opts), 1), a);
});

test('normalisation: (v * scale - mean[c]) / std[c] per channel, uint8 and float32 storage alike', () => {
  const raw = [0, 1, 128, 255, 17, 200];
  const pixels = Uint8Array.from(raw);
  const ds = new InMemoryDataset({ name: 'n', pixels, labels: Int32Array.from([0]), shape: [2, 1, 3], classNames: ['a'] });
  const mean = [0.5, 0.25];
  const std = [0.25, 2];
  const [b] = collect(new DataLoader(ds, { batchSize: 1, workers: 0, normalize: { mean, std } }), 0);
  raw.forEach((v, k) => {
    const c = k < 3 ? 0 : 1;
    assert.ok(Math.abs(b!.x[k]! - (v / 255 - mean[c]!) / std[c]!) <= TOL.close, `value ${k}`);
  });
  const fds = new InMemoryDataset({ name: 'f', pixels: Float32Array.from(raw.map((v) => v / 255)), labels: Int32Array.from([0]), shape: [2, 1, 3], classNames: ['a'] });
  const [fb] = collect(new DataLoader(fds, { batchSize: 1, workers: 0, normalize: { mean, std } }), 0);
  raw.forEach((_, k) => assert.ok(Math.abs(fb!.x[k]! - b!.x[k]!) <= TOL.close, `float path value ${k}`));
  // one mean/std broadcasts to every channel; without normalize only the scale applies
  const [s] = collect(new DataLoader(ds, { batchSize: 1, workers: 0, normalize: { mean: [0.5], std: [0.5] } }), 0);
  assert.ok(Math.abs(s!.x[5]! - (200 / 255 - 0.5) / 0.5) <= TOL.close);
  const [plain] = collect(new DataLoader(ds, { batchSize: 1, workers: 0 }), 0);
  assert.deepEqual(Array.from(plain!.x), raw.map((v) => Math.fround(v / 255)));
});

test('augmentation: each sample is its image shifted within the padding, maybe mirrored; padding is raw 0', () => {
  // one sample of [1, 3, 4] with distinct values 1..12, repeated 400 times
  const n = 400;
  const img = Array.from({ length: 12 }, (_, k) => k + 1);
  const pixels = new Uint8Array(n * 12);
  for (let i = 0; i < n; i++) pixels.set(img, i * 12);
  const ds = new InMemoryDataset({ name: 'aug', pixels, labels: new Int32Array(n), shape: [1, 3, 4], classNames: ['a'] });
  const P = 1;
  const mean = 0.1;
  const std = 0.5;
  const loader = new DataLoader(ds, { batchSize: 100, seed: 5, workers: 0, scale: 1, normalize: { mean: [mean], std: [std] }, augment: { crop: { padding: P }, flip: true } });
  const padValue = Math.fround((0 - mean) / std);
  const expectedFor = (dy: number, dx: number, flip: boolean): number[] => {
    const out: number[] = [];
    for (let r = 0; r < 3; r++) {
      for (let q = 0; q < 4; q++) {
        const sr = r + dy - P;
        const sc = (flip ? 3 - q : q) + dx - P;
        out.push(sr < 0 || sr >= 3 || sc < 0 || sc >= 4 ? padValue : Math.fround((img[sr * 4 + sc]! - mean) / std));
      }
    }
    return out;
  };
  const seen = new Map<string, number>();
  let flips = 0;
  for (const b of loader.epoch(0)) {
    for (let s = 0; s < b.size; s++) {
      const got = Array.from(b.x.subarray(s * 12, (s + 1) * 12));
      const matches: string[] = [];
      for (let dy = 0; dy <= 2 * P; dy++) for (let dx = 0; dx <= 2 * P; dx++) for (const f of [false, true]) if (JSON.stringify(expectedFor(dy, dx, f)) === JSON.stringify(got)) matches.push(`${dy},${dx},${f}`);
      assert.equal(matches.length, 1, `sample ${b.position + s} matches exactly one crop/flip: ${got.join(' ')}`);
      seen.set(matches[0]!, (seen.get(matches[0]!) ?? 0) + 1);
      if (matches[0]!.endsWith('true')) flips++;
    }
  }
  assert.equal(seen.size, 18, 'every offset and flip occurs');
  assert.ok(flips > 150 && flips < 250, `flip rate ${flips}/400`);
  // flip alone keeps each row whole, in order or reversed
  for (const b of new DataLoader(ds, { batchSize: 400, seed: 5, workers: 0, scale: 1, augment: { flip: true } }).epoch(0)) {
    for (let s = 0; s < b.size; s++) {
      const row = Array.from(b.x.subarray(s * 12, s * 12 + 4));
      assert.ok(JSON.stringify(row) === '[1,2,3,4]' || JSON.stringify(row) === '[4,3,2,1]');
    }
  }
});

test('augmentation draws depend on (seed, epoch, position): same across runs, new each epoch', () => {
  const { train } = loadFashionMnist();
  const opts: DataLoaderOptions = { batchSize: 256, seed: 3, workers: 0, shuffle: false, augment: { crop: { padding: 2 }, flip: true } };
  const a = collect(new DataLoader(train, opts), 0, 2);
  assert.deepEqual(collect(new DataLoader(train, opts), 0, 2), a);
  assert.notDeepEqual(collect(new DataLoader(train, opts), 1, 2)[0]!.x, a[0]!.x);
});

test('in-thread and worker loading give identical batches, across epoch boundaries', () => {
  const { train } = loadFashionMnist();
  const split = new SubsetDataset(train, Array.from({ length: 3000 }, (_, i) => (i * 7) % 6000));
  for (const extra of [
    { normalize: { mean: [0.286], std: [0.353] } },
    { normalize: { mean: [0.286], std: [0.353] }, augment: { crop: { padding: 4 }, flip: true }, dropLast: true },
  ] satisfies Partial<DataLoaderOptions>[]) {
    for (const ds of [train, split] as Dataset[]) {
      const opts: DataLoaderOptions = { batchSize: 128, seed: 99, ...extra };
      const local = new DataLoader(ds, { ...opts, workers: 0 });
      const worker = new DataLoader(ds, { ...opts, workers: 1, prefetch: 3 });
      try {
        for (const e of [0, 1]) {
          const a = collect(local, e);
          const b = collect(worker, e);
          assert.equal(b.length, local.length);
          assert.equal(a.length, b.length);
          a.forEach((batch, i) => assert.deepEqual(b[i], batch, `${ds.name} epoch ${e} batch ${i}`));
        }
      } finally {
        worker.close();
      }
    }
  }
});

test('checkpoint resume: a restored loader continues at the exact position, in either mode', () => {
  const { train } = loadFashionMnist();
  const opts: DataLoaderOptions = { batchSize: 100, seed: 21, normalize: { mean: [0.3], std: [0.3] }, augment: { crop: { padding: 2 }, flip: true } };
  const reference = new DataLoader(train, { ...opts, workers: 0 });
  const full = [...collect(reference, 0), ...collect(reference, 1), ...collect(reference, 2)];
  for (const [firstWorkers, secondWorkers] of [[0, 1], [1, 0], [1, 1]] as const) {
    const first = new DataLoader(train, { ...opts, workers: firstWorkers });
    const seenBefore: ReturnType<typeof copyBatch>[] = [...collect(first, 0)];
    let saved = '';
    for (const b of first.epoch(1)) {
      seenBefore.push(copyBatch(b));
      if (b.index === 16) {
        saved = JSON.stringify(first.getState());
        break;
      }
    }
    first.close();
    assert.deepEqual(JSON.parse(saved), { seed: 21, epoch: 1, position: 1700, samples: 6000 });
    const second = new DataLoader(train, { ...opts, seed: 0, workers: secondWorkers });
    second.setState(JSON.parse(saved));
    const after: ReturnType<typeof copyBatch>[] = [];
    for (let e = second.getState().epoch; e < 3; e++) after.push(...collect(second, e));
    second.close();
    assert.equal(seenBefore.length + after.length, full.length);
    [...seenBefore, ...after].forEach((b, i) => assert.deepEqual(b, full[i], `modes ${firstWorkers}→${secondWorkers}, batch ${i}`));
  }
});

test('epoch() continues an interrupted epoch; setState and a new epoch() retire older iterators', () => {
  const ds = numbered(100);
  const loader = new DataLoader(ds, { batchSize: 10, seed: 2, scale: 1, workers: 0 });
  const all = collect(new DataLoader(ds, { batchSize: 10, seed: 2, scale: 1, workers: 0 }), 0);
  const firstThree = collect(loader, 0, 3);
  assert.deepEqual(loader.getState(), { seed: 2, epoch: 0, position: 30, samples: 100 });
  assert.deepEqual([...firstThree, ...collect(loader, 0)], all);
  assert.deepEqual(loader.getState(), { seed: 2, epoch: 1, position: 0, samples: 100 });
  const it = loader.epoch(1);
  it.next();
  loader.setState({ seed: 2, epoch: 0, position: 0, samples: 100 });
  assert.throws(() => it.next(), /superseded/);
  loader.close();
  assert.throws(() => loader.epoch(0).next(), /closed/);
});

test('bad loader options and states are named', () => {
  const ds = numbered(10);
  assertDataError(() => new DataLoader(ds, { batchSize: 0 }), ['numbered: DataLoader option batchSize must be a positive integer, got 0'], { field: 'batchSize' });
  assertDataError(() => new DataLoader(ds, { batchSize: 20, dropLast: true }), ['dropLast with batchSize 20 leaves no batch from 10 samples']);
  assertDataError(() => new DataLoader(ds, { batchSize: 2, normalize: { mean: [0, 0], std: [1, 1] } }), ['normalize.mean must be 1 values (one per channel) or 1']);
  assertDataError(() => new DataLoader(ds, { batchSize: 2, normalize: { mean: [0], std: [0] } }), ['normalize.std must be finite and > 0']);
  assertDataError(() => new DataLoader(ds, { batchSize: 2, augment: { crop: { padding: -1 } } }), ['augment.crop.padding must be an integer in 0..2']);
  assertDataError(() => new DataLoader(ds, { batchSize: 2, workers: 2 as 1 }), ['workers must be 0 or 1']);
  const loader = new DataLoader(ds, { batchSize: 2, workers: 0 });
  assertDataError(() => loader.setState({ seed: 0, epoch: 0, position: 0, samples: 11 }), ['loader state was saved for a dataset of 11 samples, this one has 10'], { field: 'state.samples' });
  assertDataError(() => loader.setState({ seed: 0, epoch: 0, position: 12, samples: 10 }), ['state.position must be an integer in 0..10']);
});

/** A dataset whose storage points past its pixels: the kernel must refuse it, in either thread. */
function brokenStorage(): Dataset {
  const inner = numbered(20);
  return {
    name: 'broken',
    length: 20,
    shape: inner.shape,
    classNames: inner.classNames,
    numClasses: 10,
    item: (i: number): DatasetItem => inner.item(i),
    storage: () => ({ pixels: inner.pixels, labels: inner.labels, indices: Int32Array.from({ length: 20 }, (_, i) => (i === 13 ? 1_000_000 : i)) }),
  };
}

test('errors in the prefetch worker surface on the main thread with the worker message', () => {
  const local = new DataLoader(brokenStorage(), { batchSize: 4, shuffle: false, workers: 0 });
  assert.throws(() => collect(local, 0), { name: 'RangeError', message: 'sample 13 of the dataset maps to stored sample 1000000, outside the 20 stored samples' });
  const worker = new DataLoader(brokenStorage(), { batchSize: 4, shuffle: false, workers: 1 });
  try {
    const got: number[] = [];
    const e = assertDataError(() => {
      for (const b of worker.epoch(0)) got.push(b.position);
    }, ['broken: prefetch worker failed: RangeError: sample 13 of the dataset maps to stored sample 1000000, outside the 20 stored samples'], { field: 'prefetch' });
    assert.deepEqual(got, [0, 4, 8], 'batches before the failing one arrive');
    assert.match(String((e.cause as Error).stack), /assembleBatch/);
  } finally {
    worker.close();
  }
});

test('the prefetch worker never keeps the process alive', () => {
  const script = `
    import { DataLoader, loadFashionMnist } from ${JSON.stringify(join(repoRoot, 'src/data/index.ts'))};
    const loader = new DataLoader(loadFashionMnist().train, { batchSize: 64, workers: 1 });
    let n = 0;
    for (const b of loader.epoch(0)) { if (++n === 3) break; }
    console.log('took', n);
  `;
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: repoRoot, encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'took 3');
  assert.ok(Date.now() - t0 < 15_000);
});

const tsc = join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');

test('compiled by tsc (no tsx in the worker or the main thread), worker batches equal in-thread batches', {
  skip: existsSync(tsc) ? false : 'typescript is not installed',
}, () => {
  const { dir, cleanup } = tempDir();
  try {
    const out = join(dir, 'dist');
    mkdirSync(out);
    const config = join(dir, 'tsconfig.json');
    writeFileSync(config, JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, skipLibCheck: true, types: ['node'], typeRoots: [join(repoRoot, 'node_modules/@types')], rootDir: join(repoRoot, 'src'), outDir: out },
      files: [join(repoRoot, 'src/data/index.ts')],
    }));
    const build = spawnSync(process.execPath, [tsc, '-p', config], { encoding: 'utf8' });
    assert.equal(build.status, 0, build.stdout + build.stderr);
    assert.ok(existsSync(join(out, 'data', 'prefetch.js')));
    const script = `
      import { DataLoader, InMemoryDataset } from ${JSON.stringify(join(out, 'data', 'index.js'))};
      const n = 1000, pixels = new Uint8Array(n * 3 * 8 * 8), labels = new Int32Array(n);
      for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 2654435761) >>> 24;
      for (let i = 0; i < n; i++) labels[i] = i % 3;
      const ds = new InMemoryDataset({ name: 'synthetic', pixels, labels, shape: [3, 8, 8], classNames: ['a', 'b', 'c'] });
      const sums = [];
      for (const workers of [0, 1]) {
        const l = new DataLoader(ds, { batchSize: 64, seed: 4, workers, normalize: { mean: [0.5], std: [0.2] }, augment: { crop: { padding: 2 }, flip: true } });
        let s = 0;
        for (const b of l.epoch(0)) for (let i = 0; i < b.x.length; i++) s = (s * 31 + Math.round(b.x[i] * 1e4) + b.y[i % b.size]) % 1000000007;
        sums.push(s);
      }
      console.log(JSON.stringify(sums));
    `;
    writeFileSync(join(out, 'package.json'), '{"type": "module"}');
    symlinkSync(join(repoRoot, 'node_modules'), join(dir, 'node_modules'));
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: dir, encoding: 'utf8', timeout: 20_000 });
    assert.equal(run.status, 0, run.stderr);
    const [a, b] = JSON.parse(run.stdout) as [number, number];
    assert.equal(a, b);
  } finally {
    cleanup();
  }
});

/** The per-pixel definition of a batch, written for clarity: the reference twin of assembleBatch. */
function referenceBatch(src: BatchSource, perm: Int32Array, seed: number, epoch: number, position: number, count: number): { x: number[]; y: number[] } {
  const { channels: C, height: H, width: W, cropPadding: P } = src;
  const x: number[] = [];
  const y: number[] = [];
  for (let s = 0; s < count; s++) {
    const k = perm[position + s]!;
    const stored = src.indices === null ? k : src.indices[k]!;
    y.push(src.labels[stored]!);
    let dy = P;
    let dx = P;
    let flip = false;
    if (P > 0 || src.flip) {
      const h1 = mix32(hashSeed(seed ^ 0x41554731, epoch, position + s));
      const h2 = mix32(h1);
      const h3 = mix32(h2);
      dy = Math.floor((h1 / 2 ** 32) * (2 * P + 1));
      dx = Math.floor((h2 / 2 ** 32) * (2 * P + 1));
      flip = src.flip && h3 >>> 31 === 1;
    }
    for (let c = 0; c < C; c++) {
      for (let r = 0; r < H; r++) {
        for (let q = 0; q < W; q++) {
          const sr = r + dy - P;
          const sc = (flip ? W - 1 - q : q) + dx - P;
          const v = sr < 0 || sr >= H || sc < 0 || sc >= W ? 0 : src.pixels[((stored * C + c) * H + sr) * W + sc]!;
          x.push(Math.fround((v * src.scale - src.mean[c]!) / src.std[c]!));
        }
      }
    }
  }
  return { x, y };
}

test('assembleBatch equals its per-pixel reference over random shapes, paddings (up to the image size) and flips', () => {
  fc.assert(
    fc.property(
      fc.record({
        C: fc.integer({ min: 1, max: 3 }),
        H: fc.integer({ min: 1, max: 7 }),
        W: fc.integer({ min: 1, max: 7 }),
        n: fc.integer({ min: 1, max: 12 }),
        padFraction: fc.double({ min: 0, max: 1, noNaN: true }),
        flip: fc.boolean(),
        float: fc.boolean(),
        seed: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        epoch: fc.integer({ min: 0, max: 1000 }),
      }),
      ({ C, H, W, n, padFraction, flip, float, seed, epoch }) => {
        const P = Math.round(padFraction * Math.max(H, W));
        const size = n * C * H * W;
        const raw = Array.from({ length: size }, (_, i) => (i * 2654435761) >>> 24);
        const pixels = float ? Float32Array.from(raw, (v) => v / 255) : Uint8Array.from(raw);
        const scale = float ? 1 : 1 / 255;
        const mean = Float64Array.from({ length: C }, (_, c) => 0.1 * c);
        const std = Float64Array.from({ length: C }, (_, c) => 0.5 + 0.25 * c);
        const lut = float ? null : Float32Array.from({ length: C * 256 }, (_, k) => (((k % 256) * scale) - mean[Math.floor(k / 256)]!) / std[Math.floor(k / 256)]!);
        const src: BatchSource = {
          pixels, labels: Int32Array.from({ length: n }, (_, i) => i % 5), indices: null, length: n, storedSamples: n,
          channels: C, height: H, width: W, lut, scale, mean, std,
          pad: Float32Array.from({ length: C }, (_, c) => (0 - mean[c]!) / std[c]!), cropPadding: P, flip, shuffle: true,
        };
        const perm = new Int32Array(n);
        fillPermutation(perm, seed, epoch, true);
        const x = new Float32Array(size);
        const y = new Int32Array(n);
        assembleBatch(src, perm, seed, epoch, 0, n, x, y);
        const want = referenceBatch(src, perm, seed, epoch, 0, n);
        assert.deepEqual(Array.from(y), want.y);
        assert.deepEqual(Array.from(x), want.x.map((v) => (float ? Math.fround(v) : v)));
      },
    ),
    { seed: 7, numRuns: 300 },
  );
});
