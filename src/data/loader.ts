import { materialize, toShared, type Dataset, type ImageShape, type PixelArray } from './dataset.js';
import { DataError } from './errors.js';
import { assembleBatch, epochEnd, fillPermutation, type BatchSource } from './kernel.js';
import type { NormalizeOptions } from './normalization.js';
import { Prefetcher } from './prefetch.js';

export type { NormalizeOptions } from './normalization.js';

export interface AugmentOptions {
  /** Random crop back to the image size after padding each side with `padding` black pixels (raw value 0). */
  readonly crop?: { readonly padding: number };
  /** Horizontal flip with probability 1/2. */
  readonly flip?: boolean;
}

export interface DataLoaderOptions {
  readonly batchSize: number;
  /** Reshuffle every epoch (default true). */
  readonly shuffle?: boolean;
  /** Seeds the epoch orders and the augmentation (default 0). */
  readonly seed?: number;
  /** Drop the last batch when it is smaller than batchSize (default false). */
  readonly dropLast?: boolean;
  /** Multiplier applied to stored values before normalisation (default 1/255 for uint8 storage, 1 for float32). */
  readonly scale?: number;
  readonly normalize?: NormalizeOptions;
  readonly augment?: AugmentOptions;
  /** 1 (default): assemble batches ahead on a worker thread; 0: assemble in the calling thread. */
  readonly workers?: 0 | 1;
  /** Batches assembled ahead by the worker (default 4). */
  readonly prefetch?: number;
  /** How long to wait for a worker that makes no progress before throwing (default 30000 ms). */
  readonly stallTimeoutMs?: number;
}

/**
 * One batch in the engine's layout. In both modes `x` and `y` are views into buffers the loader reuses:
 * they are valid until the iterator is advanced. Copy them (`x.slice()`) to keep them longer.
 */
export interface Batch {
  /** size x C x H x W float32, NCHW. */
  readonly x: Float32Array;
  readonly y: Int32Array;
  readonly size: number;
  readonly shape: readonly [number, number, number, number];
  readonly epoch: number;
  /** Position of the batch's first sample in the epoch's order. */
  readonly position: number;
  /** Batch number within the epoch. */
  readonly index: number;
}

/** Where a loader is in its data order; save it in a checkpoint and pass it to setState to resume. */
export interface LoaderState {
  /** Seeds the permutation of every epoch and the augmentation draws. */
  readonly seed: number;
  readonly epoch: number;
  /** Samples of `epoch` already handed out. */
  readonly position: number;
  /** Dataset length the state was taken with; setState refuses a different one. */
  readonly samples: number;
}

const sharedCopies = new WeakMap<object, PixelArray | Int32Array>();

function shared<T extends PixelArray | Int32Array>(a: T): T {
  if (a.buffer instanceof SharedArrayBuffer) return a;
  let copy = sharedCopies.get(a) as T | undefined;
  if (copy === undefined) {
    copy = toShared(a);
    sharedCopies.set(a, copy);
  }
  return copy;
}

function optionError(field: string, expected: string, actual: unknown, name: string): DataError {
  return new DataError(`DataLoader option ${field} must be ${expected}, got ${JSON.stringify(actual)}`, {
    file: name,
    field,
    expected,
    actual: JSON.stringify(actual),
  });
}

function perChannel(values: readonly number[], channels: number, field: string, name: string, positive: boolean): Float64Array {
  if (values.length !== channels && values.length !== 1) throw optionError(field, `${channels} values (one per channel) or 1`, values, name);
  const out = new Float64Array(channels);
  for (let c = 0; c < channels; c++) {
    const v = values[values.length === 1 ? 0 : c]!;
    if (!Number.isFinite(v) || (positive && v <= 0)) throw optionError(field, positive ? 'finite and > 0' : 'finite', values, name);
    out[c] = v;
  }
  return out;
}

function buildSource(ds: Dataset, options: DataLoaderOptions, shuffle: boolean): BatchSource {
  const [C, H, W] = ds.shape;
  const itemSize = C * H * W;
  const st = ds.storage?.() ?? materialize(ds).storage();
  const storedSamples = st.pixels.length / itemSize;
  if (!Number.isInteger(storedSamples) || st.labels.length !== storedSamples) {
    throw new DataError(`storage holds ${st.pixels.length} pixel values and ${st.labels.length} labels, shape [${C}, ${H}, ${W}] needs ${itemSize} values per label`, {
      file: ds.name,
      field: 'storage',
    });
  }
  if (st.indices === null ? storedSamples !== ds.length : st.indices.length !== ds.length) {
    throw new DataError(`storage describes ${st.indices === null ? storedSamples : st.indices.length} samples, the dataset has ${ds.length}`, {
      file: ds.name,
      field: 'storage',
    });
  }
  const name = ds.name;
  const isUint8 = st.pixels instanceof Uint8Array;
  const scale = options.scale ?? (isUint8 ? 1 / 255 : 1);
  if (!Number.isFinite(scale)) throw optionError('scale', 'a finite number', options.scale, name);
  const mean = options.normalize === undefined ? new Float64Array(C) : perChannel(options.normalize.mean, C, 'normalize.mean', name, false);
  const std = options.normalize === undefined ? new Float64Array(C).fill(1) : perChannel(options.normalize.std, C, 'normalize.std', name, true);
  let lut: Float32Array | null = null;
  if (isUint8) {
    lut = new Float32Array(C * 256);
    for (let c = 0; c < C; c++) for (let v = 0; v < 256; v++) lut[c * 256 + v] = (v * scale - mean[c]!) / std[c]!;
  }
  const pad = new Float32Array(C);
  for (let c = 0; c < C; c++) pad[c] = (0 * scale - mean[c]!) / std[c]!;
  const cropPadding = options.augment?.crop?.padding ?? 0;
  if (!Number.isInteger(cropPadding) || cropPadding < 0 || cropPadding > Math.max(H, W)) {
    throw optionError('augment.crop.padding', `an integer in 0..${Math.max(H, W)}`, cropPadding, name);
  }
  return {
    pixels: shared(st.pixels),
    labels: shared(st.labels),
    indices: st.indices,
    length: ds.length,
    storedSamples,
    channels: C,
    height: H,
    width: W,
    lut,
    scale,
    mean,
    std,
    pad,
    cropPadding,
    flip: options.augment?.flip ?? false,
    shuffle,
  };
}

/**
 * Batches a dataset: seeded order, scaling, normalisation, augmentation, and (by default) assembly on a
 * worker thread ahead of a synchronous training loop:
 *
 *     for (let e = loader.getState().epoch; e < epochs; e++)
 *       for (const batch of loader.epoch(e)) trainStep(batch.x, batch.y);
 *
 * Every batch is a pure function of (seed, epoch, position), so `workers: 0` and `workers: 1` give
 * identical batches, and a loader restored with setState continues exactly where the saved one stopped.
 */
export class DataLoader {
  readonly dataset: Dataset;
  readonly batchSize: number;
  readonly shape: ImageShape;
  readonly workers: 0 | 1;
  /** Batches in one epoch, like len(DataLoader) in PyTorch. */
  readonly length: number;
  private readonly source: BatchSource;
  private readonly end: number;
  private readonly dropLast: boolean;
  private seed: number;
  private cursor: { epoch: number; position: number } = { epoch: 0, position: 0 };
  private prefetcher: Prefetcher | null = null;
  private readonly prefetchSlots: number;
  private readonly stallTimeoutMs: number;
  private token = 0;
  private closed = false;
  private local: { x: Float32Array; y: Int32Array; perm: Int32Array; permKey: string } | null = null;

  constructor(dataset: Dataset, options: DataLoaderOptions) {
    const name = dataset.name;
    const bs = options.batchSize;
    if (!Number.isInteger(bs) || bs < 1) throw optionError('batchSize', 'a positive integer', bs, name);
    const seed = options.seed ?? 0;
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw optionError('seed', 'an integer in 0..2^32-1', seed, name);
    const workers = options.workers ?? 1;
    if (workers !== 0 && workers !== 1) throw optionError('workers', '0 or 1', workers, name);
    const dropLast = options.dropLast ?? false;
    this.dataset = dataset;
    this.batchSize = bs;
    this.shape = dataset.shape;
    this.workers = workers;
    this.seed = seed;
    this.prefetchSlots = options.prefetch ?? 4;
    if (!Number.isInteger(this.prefetchSlots) || this.prefetchSlots < 1) throw optionError('prefetch', 'a positive integer', options.prefetch, name);
    this.stallTimeoutMs = options.stallTimeoutMs ?? 30_000;
    this.end = epochEnd(dataset.length, bs, dropLast);
    if (this.end === 0) {
      throw new DataError(
        dataset.length === 0 ? 'the dataset is empty' : `dropLast with batchSize ${bs} leaves no batch from ${dataset.length} samples`,
        { file: name, field: 'batchSize', expected: `at most ${dataset.length}`, actual: String(bs) },
      );
    }
    this.length = Math.ceil(this.end / bs);
    this.source = buildSource(dataset, options, options.shuffle ?? true);
    this.dropLast = dropLast;
  }

  /**
   * Iterates the batches of epoch `e` (default: the current epoch). When the loader stands inside epoch `e`
   * (after some batches, or after setState), iteration continues from there; otherwise it starts at the
   * beginning of `e`. A later call to epoch() or setState() ends an unfinished iterator.
   */
  epoch(e: number = this.cursor.epoch): IterableIterator<Batch> {
    if (!Number.isInteger(e) || e < 0) throw optionError('epoch', 'a non-negative integer', e, this.dataset.name);
    return this.iterate(e, ++this.token);
  }

  private *iterate(e: number, token: number): Generator<Batch, void, undefined> {
    this.checkUsable(token);
    let position = this.cursor.epoch === e ? this.cursor.position : 0;
    this.cursor = { epoch: e, position };
    const [C, H, W] = this.shape;
    try {
      while (position < this.end) {
        this.checkUsable(token);
        const count = Math.min(this.batchSize, this.dataset.length - position);
        let x: Float32Array;
        let y: Int32Array;
        if (this.workers === 1) {
          const p = this.prefetcher ?? this.startPrefetcher();
          if (!p.isAt(this.seed, e, position)) p.restart(this.seed, e, position);
          const b = p.take();
          if (b.epoch !== e || b.position !== position || b.count !== count) {
            throw new Error(`prefetch stream out of step: expected epoch ${e} position ${position}, got epoch ${b.epoch} position ${b.position}`);
          }
          x = b.x;
          y = b.y;
        } else {
          ({ x, y } = this.assembleLocal(e, position, count));
        }
        this.cursor = { epoch: e, position: position + count };
        const batch: Batch = {
          x,
          y,
          size: count,
          shape: [count, C, H, W],
          epoch: e,
          position,
          index: Math.floor(position / this.batchSize),
        };
        position += count;
        yield batch;
      }
      if (token === this.token) this.cursor = { epoch: e + 1, position: 0 };
    } finally {
      if (token === this.token) this.prefetcher?.release();
    }
  }

  private assembleLocal(epoch: number, position: number, count: number): { x: Float32Array; y: Int32Array } {
    const itemSize = this.shape[0] * this.shape[1] * this.shape[2];
    this.local ??= {
      x: new Float32Array(this.batchSize * itemSize),
      y: new Int32Array(this.batchSize),
      perm: new Int32Array(this.dataset.length),
      permKey: '',
    };
    const l = this.local;
    const key = `${this.seed}/${epoch}`;
    if (l.permKey !== key) {
      fillPermutation(l.perm, this.seed, epoch, this.source.shuffle);
      l.permKey = key;
    }
    assembleBatch(this.source, l.perm, this.seed, epoch, position, count, l.x, l.y);
    return { x: l.x.subarray(0, count * itemSize), y: l.y.subarray(0, count) };
  }

  private startPrefetcher(): Prefetcher {
    this.prefetcher = new Prefetcher({
      source: this.source,
      batchSize: this.batchSize,
      dropLast: this.dropLast,
      slots: this.prefetchSlots,
      stallTimeoutMs: this.stallTimeoutMs,
      name: this.dataset.name,
    });
    return this.prefetcher;
  }

  private checkUsable(token: number): void {
    if (this.closed) throw new Error(`${this.dataset.name}: the DataLoader was closed`);
    if (token !== this.token) {
      throw new Error(`${this.dataset.name}: this epoch iterator was superseded by a later epoch() or setState() call`);
    }
  }

  getState(): LoaderState {
    return { seed: this.seed, epoch: this.cursor.epoch, position: this.cursor.position, samples: this.dataset.length };
  }

  /** Moves to a saved position; the next epoch(state.epoch) continues from state.position. */
  setState(state: LoaderState): void {
    const name = this.dataset.name;
    if (state.samples !== this.dataset.length) {
      throw new DataError(`loader state was saved for a dataset of ${state.samples} samples, this one has ${this.dataset.length}`, {
        file: name,
        field: 'state.samples',
        expected: String(this.dataset.length),
        actual: String(state.samples),
      });
    }
    if (!Number.isInteger(state.seed) || state.seed < 0 || state.seed > 0xffffffff) throw optionError('state.seed', 'an integer in 0..2^32-1', state.seed, name);
    if (!Number.isInteger(state.epoch) || state.epoch < 0) throw optionError('state.epoch', 'a non-negative integer', state.epoch, name);
    if (!Number.isInteger(state.position) || state.position < 0 || state.position > this.end) {
      throw optionError('state.position', `an integer in 0..${this.end}`, state.position, name);
    }
    this.token += 1;
    this.prefetcher?.release();
    this.seed = state.seed;
    this.cursor = { epoch: state.epoch, position: state.position };
  }

  /** Stops the worker. Not required before exit: the worker never keeps the process alive. */
  close(): void {
    this.closed = true;
    this.token += 1;
    this.prefetcher?.close();
    this.prefetcher = null;
  }
}
