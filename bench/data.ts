/**
 * Data-layer benchmark: `npx tsx bench/data.ts [--reps N] [--warmup N] [--quick]`.
 *
 * (a) Loading the full Fashion-MNIST from Debian's dataset-fashion-mnist files (and the built-in subset).
 * (b) DataLoader throughput at batch 128 with shuffling and normalisation, with and without augmentation,
 *     in-thread (workers: 0) and with the prefetch worker (workers: 1): one timed repetition is one full
 *     epoch consumed by an empty loop, so it measures delivery alone.
 * (c) Main-thread cost per batch when the consumer is busy (a simulated training step of STEP_MS spent
 *     spinning): what the loader adds to each step, the number prefetching exists to shrink.
 *
 * Prints tables and writes bench/results/data.json. Also exported as a Bench for bench/main.ts.
 */
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import {
  DEBIAN_FASHION_MNIST_DIR,
  DataLoader,
  InMemoryDataset,
  loadFashionMnist,
  type DataLoaderOptions,
  type Dataset,
} from '../src/data/index.js';
import { BenchRng, environment, parseArgs, printTable, round, spreadText, time, writeResults, type Bench, type BenchOptions, type Cell } from './harness.js';

const BATCH = 128;
const STEP_MS = 2;
/** The fmnist reference training step consumes at most about this many images/s; the loader must beat it tenfold. */
const TRAINING_IMAGES_PER_SECOND = 1000;

interface LoaderRow {
  readonly dataset: string;
  readonly config: string;
  readonly workers: 0 | 1;
  readonly batches_per_s: number;
  readonly images_per_s: number;
  readonly epoch_ms_median: number;
  readonly epoch_ms_p10: number;
  readonly epoch_ms_p90: number;
  readonly spread: string;
  readonly reps: number;
  readonly main_thread_ms_per_batch_with_busy_step: number;
}

function syntheticCifar(n: number): InMemoryDataset {
  const rng = new BenchRng(12345);
  const pixels = new Uint8Array(new SharedArrayBuffer(n * 3 * 32 * 32));
  for (let i = 0; i < pixels.length; i++) pixels[i] = Math.floor(rng.next() * 256);
  const labels = new Int32Array(new SharedArrayBuffer(n * 4));
  for (let i = 0; i < n; i++) labels[i] = i % 10;
  return new InMemoryDataset({ name: `synthetic CIFAR-shaped (${n} x 3x32x32)`, pixels, labels, shape: [3, 32, 32], classNames: Array.from({ length: 10 }, String) });
}

function spin(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

async function measureLoader(ds: Dataset, label: string, config: string, opts: Omit<DataLoaderOptions, 'batchSize'>, o: BenchOptions): Promise<LoaderRow[]> {
  const rows: LoaderRow[] = [];
  for (const workers of [0, 1] as const) {
    const loader = new DataLoader(ds, { ...opts, batchSize: BATCH, seed: 1, workers });
    let epoch = 0;
    let checksum = 0;
    const t = await time(() => {
      for (const b of loader.epoch(epoch++)) checksum += b.y[0]!;
    }, { warmup: o.warmup, reps: o.reps });
    // busy consumer: a fixed spin per batch stands in for the training step
    const busyBatches = Math.min(loader.length, o.quick ? 50 : 200);
    let n = 0;
    const t0 = performance.now();
    for (const b of loader.epoch(epoch++)) {
      checksum += b.y[0]!;
      spin(STEP_MS);
      if (++n === busyBatches) break;
    }
    const perBatch = (performance.now() - t0) / n - STEP_MS;
    loader.close();
    if (!Number.isFinite(checksum)) throw new Error('unreachable: checksum keeps the loop observable');
    rows.push({
      dataset: label,
      config,
      workers,
      batches_per_s: round((loader.length / t.median) * 1000, 1),
      images_per_s: round((ds.length / t.median) * 1000, 0),
      epoch_ms_median: round(t.median, 2),
      epoch_ms_p10: round(t.p10, 2),
      epoch_ms_p90: round(t.p90, 2),
      spread: spreadText(t),
      reps: t.n,
      main_thread_ms_per_batch_with_busy_step: round(Math.max(0, perBatch), 3),
    });
  }
  return rows;
}

export const dataBench: Bench = {
  name: 'data',
  description: 'Fashion-MNIST load time; DataLoader batches/s and images/s, in-thread and with the prefetch worker',
  defaults: { warmup: 1, reps: 5 },
  quick: { warmup: 1, reps: 2 },
  async run(o: BenchOptions): Promise<void> {
    const haveFull = existsSync(DEBIAN_FASHION_MNIST_DIR);
    const loadRows: Cell[][] = [];
    const loads: Record<string, unknown>[] = [];
    for (const subset of haveFull ? (['full', 'builtin'] as const) : (['builtin'] as const)) {
      const t = await time(() => loadFashionMnist({ subset }), { warmup: o.warmup, reps: o.reps });
      const { train, test } = loadFashionMnist({ subset });
      const images = train.length + test.length;
      loadRows.push([subset, images, t.median, spreadText(t), round((images / t.median) * 1000, 0)]);
      loads.push({ subset, images, ms_median: round(t.median, 2), ms_p10: round(t.p10, 2), ms_p90: round(t.p90, 2), reps: t.n, samples_ms: t.samples.map((s) => round(s, 2)) });
    }
    printTable(`Fashion-MNIST load, train + test, gunzip + IDX decode + checks (warm-up ${o.warmup}, ${o.reps} reps)`, ['subset', 'images', 'ms (median)', 'spread', 'images/s'], loadRows);
    if (!haveFull) console.log(`(full set skipped: ${DEBIAN_FASHION_MNIST_DIR} not installed)`);

    const fm = loadFashionMnist({ subset: haveFull ? 'full' : 'builtin' }).train;
    const fmLabel = `Fashion-MNIST train (${fm.length})`;
    const norm = { mean: [0.286], std: [0.353] };
    const cifar = syntheticCifar(o.quick ? 10_000 : 50_000);
    const cifarNorm = { mean: [0.49, 0.48, 0.45], std: [0.25, 0.24, 0.26] };
    const rows: LoaderRow[] = [
      ...(await measureLoader(fm, fmLabel, 'shuffle + normalise', { normalize: norm }, o)),
      ...(await measureLoader(fm, fmLabel, 'shuffle + normalise + crop(pad 2) + flip', { normalize: norm, augment: { crop: { padding: 2 }, flip: true } }, o)),
      ...(await measureLoader(cifar, cifar.name, 'shuffle + normalise', { normalize: cifarNorm }, o)),
      ...(await measureLoader(cifar, cifar.name, 'shuffle + normalise + crop(pad 4) + flip', { normalize: cifarNorm, augment: { crop: { padding: 4 }, flip: true } }, o)),
    ];
    printTable(
      `DataLoader, batch ${BATCH}, one epoch per rep (warm-up ${o.warmup}, ${o.reps} reps; median, p10/p90 spread); last column: main-thread ms per batch beyond a ${STEP_MS} ms busy step`,
      ['dataset', 'config', 'workers', 'batches/s', 'images/s', 'epoch ms', 'spread', 'ms/batch on main'],
      rows.map((r) => [r.dataset, r.config, r.workers, r.batches_per_s, r.images_per_s, r.epoch_ms_median, r.spread, r.main_thread_ms_per_batch_with_busy_step]),
    );
    const slowest = Math.min(...rows.map((r) => r.images_per_s));
    const ratios = {
      definition: 'slowest loader images/s divided by the images/s the fmnist reference training step consumes at best',
      slowest_images_per_s: slowest,
      training_images_per_s: TRAINING_IMAGES_PER_SECOND,
      headroom: round(slowest / TRAINING_IMAGES_PER_SECOND, 1),
    };
    console.log(`\nslowest configuration delivers ${slowest} images/s: ${ratios.headroom}x the ${TRAINING_IMAGES_PER_SECOND} images/s a training step consumes (target > 10x)`);
    const env = environment(o, ['typescript', 'tsx', 'sharp'], {
      batch: BATCH,
      busy_step_ms: STEP_MS,
      fashion_mnist_source: haveFull ? DEBIAN_FASHION_MNIST_DIR : 'built-in subset (Debian files absent)',
      loader_timing: 'one rep = one full epoch (dropLast false) iterated by an empty loop; each rep uses the next epoch number, so a new permutation; the prefetch worker is started during warm-up',
      busy_step: `first ${o.quick ? 50 : 200} batches of one more epoch, spinning ${STEP_MS} ms per batch; reported: (elapsed / batches) - ${STEP_MS} ms`,
    });
    const path = writeResults('data', { loads, loader: rows, ratios, env });
    console.log(`\nwrote ${path}`);
    if (ratios.headroom < 10) throw new Error(`data: the slowest loader configuration delivers only ${slowest} images/s (< 10x ${TRAINING_IMAGES_PER_SECOND})`);
  },
};

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = parseArgs(process.argv.slice(2));
  const base = args.quick ? dataBench.quick : dataBench.defaults;
  dataBench.run({ warmup: args.warmup ?? base.warmup, reps: args.reps ?? base.reps, quick: args.quick }).then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(e instanceof Error ? (e.stack ?? e.message) : e);
      process.exit(1);
    },
  );
}
