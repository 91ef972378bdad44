import { DataError } from './errors.js';
import { Rng } from './rng.js';

/** Stored pixel values: uint8 (0..255, compact) or float32. */
export type PixelArray = Uint8Array | Float32Array;

/** [channels, height, width] of one image. */
export type ImageShape = readonly [channels: number, height: number, width: number];

export interface DatasetItem {
  /** One image in CHW order: a view into the dataset's storage, not a copy. */
  readonly pixels: PixelArray;
  readonly label: number;
}

/** Contiguous storage a loader can batch from without calling `item` per sample. */
export interface DatasetStorage {
  /** `storedSamples` images of C*H*W values each, CHW order. */
  readonly pixels: PixelArray;
  readonly labels: Int32Array;
  /** Dataset index → index into the storage; null when dataset index = storage index. */
  readonly indices: Int32Array | null;
}

export interface Dataset {
  /** Used in error messages: a file, a folder or a description. */
  readonly name: string;
  readonly length: number;
  readonly shape: ImageShape;
  readonly classNames: readonly string[];
  readonly numClasses: number;
  item(i: number): DatasetItem;
  /** Implemented by datasets held in memory; loaders copy other datasets once with `materialize`. */
  storage?(): DatasetStorage | undefined;
}

export interface InMemoryDatasetInit {
  readonly name: string;
  /** count x C x H x W values. SharedArrayBuffer-backed arrays are shared with the prefetch worker without a copy. */
  readonly pixels: PixelArray;
  readonly labels: Int32Array;
  readonly shape: ImageShape;
  readonly classNames: readonly string[];
  /** Source file of each sample, when the samples came from separate files. */
  readonly files?: readonly string[];
}

/** Allocates a typed array on a SharedArrayBuffer so a worker can read it without a copy. */
export function sharedUint8(length: number): Uint8Array {
  return new Uint8Array(new SharedArrayBuffer(length));
}

export function sharedFloat32(length: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(length * 4));
}

export function sharedInt32(length: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer(length * 4));
}

/** The array itself when it is already on a SharedArrayBuffer, else a shared copy. */
export function toShared<T extends Uint8Array | Float32Array | Int32Array>(a: T): T {
  if (a.buffer instanceof SharedArrayBuffer) return a;
  const ctor = a.constructor as { new (buffer: SharedArrayBuffer): T };
  const copy = new ctor(new SharedArrayBuffer(a.byteLength));
  (copy as Uint8Array).set(a as Uint8Array);
  return copy;
}

function checkShape(shape: ImageShape, name: string): void {
  if (shape.length !== 3 || shape.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new DataError(`image shape must be three positive integers [C, H, W], got [${shape.join(', ')}]`, {
      file: name,
      field: 'shape',
      expected: '[C, H, W]',
      actual: `[${shape.join(', ')}]`,
    });
  }
}

/** Throws a DataError naming the first label outside [0, numClasses). */
export function checkLabels(labels: ArrayLike<number>, numClasses: number, file: string): void {
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i]!;
    if (!(Number.isInteger(l) && l >= 0 && l < numClasses)) {
      throw new DataError(`label ${l} at index ${i} is out of range: expected 0..${numClasses - 1} (${numClasses} classes)`, {
        file,
        field: `label[${i}]`,
        expected: `0..${numClasses - 1}`,
        actual: String(l),
      });
    }
  }
}

/** Images and labels held in memory, uint8 pixels kept compact (60,000 x 784 bytes for Fashion-MNIST). */
export class InMemoryDataset implements Dataset {
  readonly name: string;
  readonly length: number;
  readonly shape: ImageShape;
  readonly classNames: readonly string[];
  readonly numClasses: number;
  readonly files: readonly string[] | undefined;
  readonly pixels: PixelArray;
  readonly labels: Int32Array;
  private readonly itemSize: number;

  constructor(init: InMemoryDatasetInit) {
    checkShape(init.shape, init.name);
    const [c, h, w] = init.shape;
    this.itemSize = c * h * w;
    this.name = init.name;
    this.length = init.labels.length;
    if (init.pixels.length !== this.length * this.itemSize) {
      throw new DataError(
        `${this.length} labels need ${this.length * this.itemSize} pixel values of shape [${c}, ${h}, ${w}], got ${init.pixels.length}`,
        { file: init.name, field: 'pixels', expected: String(this.length * this.itemSize), actual: String(init.pixels.length) },
      );
    }
    if (init.classNames.length < 1) throw new DataError('a dataset needs at least one class name', { file: init.name, field: 'classNames' });
    if (init.files !== undefined && init.files.length !== this.length) {
      throw new DataError(`${this.length} samples but ${init.files.length} file names`, { file: init.name, field: 'files' });
    }
    checkLabels(init.labels, init.classNames.length, init.name);
    this.shape = [c, h, w];
    this.classNames = Object.freeze([...init.classNames]);
    this.numClasses = this.classNames.length;
    this.files = init.files;
    this.pixels = init.pixels;
    this.labels = init.labels;
  }

  item(i: number): DatasetItem {
    checkIndex(i, this.length, this.name);
    return { pixels: this.pixels.subarray(i * this.itemSize, (i + 1) * this.itemSize), label: this.labels[i]! };
  }

  storage(): DatasetStorage {
    return { pixels: this.pixels, labels: this.labels, indices: null };
  }

  /** Counts of samples per class, indexed by class. */
  classCounts(): number[] {
    return classCounts(this);
  }
}

function checkIndex(i: number, length: number, name: string): void {
  if (!Number.isInteger(i) || i < 0 || i >= length) throw new RangeError(`${name}: index ${i} is outside 0..${length - 1}`);
}

/** A view of some samples of another dataset, by index; storage stays shared. */
export class SubsetDataset implements Dataset {
  readonly name: string;
  readonly length: number;
  readonly shape: ImageShape;
  readonly classNames: readonly string[];
  readonly numClasses: number;
  readonly base: Dataset;
  readonly indices: Int32Array;

  constructor(base: Dataset, indices: ArrayLike<number>, name = `${base.name} (subset)`) {
    const own = new Int32Array(indices.length);
    for (let i = 0; i < indices.length; i++) {
      const k = indices[i]!;
      checkIndex(k, base.length, base.name);
      own[i] = k;
    }
    this.base = base;
    this.indices = own;
    this.name = name;
    this.length = own.length;
    this.shape = base.shape;
    this.classNames = base.classNames;
    this.numClasses = base.numClasses;
  }

  item(i: number): DatasetItem {
    checkIndex(i, this.length, this.name);
    return this.base.item(this.indices[i]!);
  }

  storage(): DatasetStorage | undefined {
    const inner = this.base.storage?.();
    if (inner === undefined) return undefined;
    if (inner.indices === null) return { pixels: inner.pixels, labels: inner.labels, indices: this.indices };
    const composed = new Int32Array(this.length);
    for (let i = 0; i < this.length; i++) composed[i] = inner.indices[this.indices[i]!]!;
    return { pixels: inner.pixels, labels: inner.labels, indices: composed };
  }
}

/** Copies any dataset into memory (float32 storage if any item is float32, else uint8). */
export function materialize(ds: Dataset): InMemoryDataset {
  if (ds instanceof InMemoryDataset) return ds;
  const [c, h, w] = ds.shape;
  const size = c * h * w;
  const first = ds.length > 0 ? ds.item(0).pixels : new Uint8Array(0);
  const pixels: PixelArray = first instanceof Float32Array ? sharedFloat32(ds.length * size) : sharedUint8(ds.length * size);
  const labels = sharedInt32(ds.length);
  for (let i = 0; i < ds.length; i++) {
    const it = ds.item(i);
    if (it.pixels.length !== size) {
      throw new DataError(`item ${i} has ${it.pixels.length} pixel values, shape [${c}, ${h}, ${w}] needs ${size}`, {
        file: ds.name,
        field: `item(${i}).pixels`,
      });
    }
    if (pixels instanceof Uint8Array && !(it.pixels instanceof Uint8Array)) {
      throw new DataError(`item ${i} has float32 pixels while item 0 has uint8 pixels`, { file: ds.name, field: `item(${i}).pixels` });
    }
    pixels.set(it.pixels, i * size);
    labels[i] = it.label;
  }
  return new InMemoryDataset({ name: ds.name, pixels, labels, shape: ds.shape, classNames: ds.classNames });
}

/** Labels of every sample, read from storage when the dataset has it. */
export function datasetLabels(ds: Dataset): Int32Array {
  const st = ds.storage?.();
  const out = new Int32Array(ds.length);
  if (st !== undefined) {
    for (let i = 0; i < ds.length; i++) out[i] = st.labels[st.indices === null ? i : st.indices[i]!]!;
  } else {
    for (let i = 0; i < ds.length; i++) out[i] = ds.item(i).label;
  }
  return out;
}

export function classCounts(ds: Dataset): number[] {
  const counts = new Array<number>(ds.numClasses).fill(0);
  const labels = datasetLabels(ds);
  for (let i = 0; i < labels.length; i++) counts[labels[i]!]! += 1;
  return counts;
}

export interface SplitOptions {
  /** Fraction in (0, 1) of the samples, or a whole number of samples, to hold out for validation. */
  readonly validation: number;
  readonly seed: number;
  /** Keep class proportions equal in both parts (default true). */
  readonly stratify?: boolean;
}

/**
 * Splits into train and validation subsets, seeded. Stratified splits take from each class its share of the
 * validation size, rounded by largest remainder so the total is exact. Both parts keep ascending index order.
 */
export function splitDataset(ds: Dataset, options: SplitOptions): { train: SubsetDataset; validation: SubsetDataset } {
  const n = ds.length;
  const v = options.validation;
  let k: number;
  if (v > 0 && v < 1) k = Math.round(v * n);
  else if (Number.isInteger(v) && v >= 1 && v < n) k = v;
  else {
    throw new DataError(`validation must be a fraction in (0, 1) or a whole number of samples in 1..${n - 1}, got ${v}`, {
      file: ds.name,
      field: 'validation',
      expected: `(0, 1) or 1..${n - 1}`,
      actual: String(v),
    });
  }
  if (k < 1 || k >= n) {
    throw new DataError(`validation ${v} of ${n} samples leaves an empty part`, { file: ds.name, field: 'validation' });
  }
  const inValidation = new Uint8Array(n);
  const rng = Rng.derive(options.seed, 0x53504c54);
  if (options.stratify ?? true) {
    const labels = datasetLabels(ds);
    const byClass: number[][] = Array.from({ length: ds.numClasses }, () => []);
    for (let i = 0; i < n; i++) byClass[labels[i]!]!.push(i);
    const quotas = byClass.map((members) => (members.length * k) / n);
    const take = quotas.map(Math.floor);
    let missing = k - take.reduce((a, b) => a + b, 0);
    const order = quotas.map((q, c) => ({ c, r: q - Math.floor(q) })).sort((a, b) => b.r - a.r || a.c - b.c);
    for (const { c } of order) {
      if (missing === 0) break;
      if (take[c]! < byClass[c]!.length) {
        take[c]! += 1;
        missing -= 1;
      }
    }
    byClass.forEach((members, c) => {
      rng.shuffle(members);
      for (let j = 0; j < take[c]!; j++) inValidation[members[j]!] = 1;
    });
  } else {
    const all = Array.from({ length: n }, (_, i) => i);
    rng.shuffle(all);
    for (let j = 0; j < k; j++) inValidation[all[j]!] = 1;
  }
  const train: number[] = [];
  const validation: number[] = [];
  for (let i = 0; i < n; i++) (inValidation[i] === 1 ? validation : train).push(i);
  return {
    train: new SubsetDataset(ds, train, `${ds.name} (train split)`),
    validation: new SubsetDataset(ds, validation, `${ds.name} (validation split)`),
  };
}

export interface ChannelStats {
  readonly mean: number[];
  readonly std: number[];
}

/**
 * Per-channel mean and (population) standard deviation of the pixel values after scaling (default 1/255 for
 * uint8 storage, 1 for float32), for use as DataLoader `normalize`.
 */
export function computeChannelStats(ds: Dataset, options: { scale?: number } = {}): ChannelStats {
  const [C, H, W] = ds.shape;
  const HW = H * W;
  const sum = new Float64Array(C);
  const sumSq = new Float64Array(C);
  let scale = options.scale;
  if (ds.length === 0) throw new DataError('cannot compute channel statistics of an empty dataset', { file: ds.name });
  for (let i = 0; i < ds.length; i++) {
    const px = ds.item(i).pixels;
    scale ??= px instanceof Uint8Array ? 1 / 255 : 1;
    for (let c = 0; c < C; c++) {
      let s = 0;
      let s2 = 0;
      const base = c * HW;
      for (let j = 0; j < HW; j++) {
        const v = px[base + j]!;
        s += v;
        s2 += v * v;
      }
      sum[c]! += s;
      sumSq[c]! += s2;
    }
  }
  const count = ds.length * HW;
  const mean: number[] = [];
  const std: number[] = [];
  const sc = scale ?? 1;
  for (let c = 0; c < C; c++) {
    const m = sum[c]! / count;
    const variance = Math.max(0, sumSq[c]! / count - m * m);
    mean.push(m * sc);
    std.push(Math.sqrt(variance) * sc);
  }
  return { mean, std };
}
