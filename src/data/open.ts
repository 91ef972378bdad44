/**
 * One resolver for `--data`: the built-in Fashion-MNIST subset, Debian's full set, or a folder of IDX
 * files, CIFAR-10 or CIFAR-100 binaries, or images (one sub-folder per class). Every command opens its
 * data here, so every command reads every format alike.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadCifar10, loadCifar100 } from './cifar.js';
import { computeChannelStats, InMemoryDataset, materialize, splitDataset, type Dataset, type ImageShape } from './dataset.js';
import { DataError } from './errors.js';
import { FASHION_MNIST_CLASSES, IDX_FILE_STEMS, idxFilesIn, loadFashionMnist } from './fashion-mnist.js';
import { loadIdxDataset } from './idx.js';
import { discoverClasses, loadImageFolder, readClassList, type ImageFolderOptions } from './image-folder.js';
import type { NormalizeOptions } from './normalization.js';
import { dataOptionsSchema, type DataOptions, type DataOptionsInput } from './options.js';

export type DataKind = 'fashion-mnist' | 'idx' | 'cifar10' | 'cifar100' | 'image-folder';

export interface OpenedData {
  readonly train: InMemoryDataset;
  readonly test: InMemoryDataset;
  readonly classNames: readonly string[];
  /** [C, H, W] of every image. */
  readonly inputShape: ImageShape;
  readonly kind: DataKind;
  /** The options the data was opened with (`data` as given: builtin, full or the folder). */
  readonly options: DataOptions;
  /** One line on where the splits came from, e.g. "CIFAR-10 binaries in data/c10". */
  readonly description: string;
}

/** The share of an image folder without train/ and test/ folders that is held out as its test split. */
export const IMAGE_FOLDER_TEST_FRACTION = 0.2;
/** The fixed seed of that hold-out, so every command sees the same test images. */
const IMAGE_FOLDER_TEST_SEED = 0x7e57;
/** The share of the training images a validation split holds by default. */
export const DEFAULT_VALIDATION_FRACTION = 0.1;

/** A file in an IDX folder naming its classes, {"classes": [...]} (image folders may hold one too). */
export const CLASS_LIST_FILE = 'classes.json';

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function has(dir: string, ...names: string[]): boolean {
  return names.some((n) => existsSync(join(dir, n)));
}

/** Which format a folder holds, by the files in it. */
export function detectKind(dir: string): Exclude<DataKind, 'fashion-mnist'> {
  if (!existsSync(dir)) throw new DataError('no such folder (--data takes builtin, full or a folder)', { file: dir, field: 'data' });
  if (!isDir(dir)) throw new DataError('is a file, expected a folder (of class sub-folders, CIFAR binaries or IDX files) or builtin or full', { file: dir, field: 'data' });
  const stem = IDX_FILE_STEMS.trainImages;
  if (has(dir, stem, `${stem}.gz`, IDX_FILE_STEMS.testImages, `${IDX_FILE_STEMS.testImages}.gz`)) return 'idx';
  if (has(dir, 'cifar-10-batches-bin', 'batches.meta.txt', 'test_batch.bin') || readdirSync(dir).some((n) => /^data_batch_\d+\.bin$/.test(n))) return 'cifar10';
  if (has(dir, 'cifar-100-binary', 'train.bin', 'test.bin', 'fine_label_names.txt')) return 'cifar100';
  if (!readdirSync(dir).some((n) => !n.startsWith('.') && isDir(join(dir, n)))) {
    throw new DataError(
      'holds no class folders, CIFAR binaries or IDX files: expected one sub-folder of images per class (or train/ and test/ folders of them), CIFAR-10 data_batch_1..5.bin and test_batch.bin, CIFAR-100 train.bin and test.bin, or train-images-idx3-ubyte[.gz] with the other three IDX files',
      { file: dir, field: 'data' },
    );
  }
  return 'image-folder';
}

function withClasses(ds: InMemoryDataset, classNames: readonly string[]): InMemoryDataset {
  return new InMemoryDataset({ name: ds.name, pixels: ds.pixels, labels: ds.labels, shape: ds.shape, classNames, ...(ds.files === undefined ? {} : { files: ds.files }) });
}

/** An IDX folder: class names from classes.json when present, else Fashion-MNIST's ten, else "0".."n-1". */
function openIdx(dir: string): { train: InMemoryDataset; test: InMemoryDataset } {
  const files = idxFilesIn(dir);
  const raw = { train: loadIdxDataset(files.trainImages, files.trainLabels), test: loadIdxDataset(files.testImages, files.testLabels) };
  const listed = existsSync(join(dir, CLASS_LIST_FILE)) ? readClassList(join(dir, CLASS_LIST_FILE)) : null;
  const count = Math.max(raw.train.numClasses, raw.test.numClasses);
  const names = listed ?? (count <= FASHION_MNIST_CLASSES.length ? FASHION_MNIST_CLASSES : Array.from({ length: count }, (_, i) => String(i)));
  for (const [ds, file] of [[raw.train, files.trainLabels], [raw.test, files.testLabels]] as const) {
    if (ds.numClasses > names.length) {
      throw new DataError(`labels go up to ${ds.numClasses - 1}, but ${listed === null ? 'the folder' : CLASS_LIST_FILE} names ${names.length} classes`, { file, field: 'labels', expected: `0..${names.length - 1}` });
    }
  }
  const t = raw.train.shape, s = raw.test.shape;
  if (t.some((d, i) => d !== s[i])) {
    throw new DataError(`test images are ${s.slice(1).join('x')}, training images ${t.slice(1).join('x')}: both splits need one size`, { file: files.testImages, field: 'dims', expected: t.slice(1).join('x') });
  }
  return { train: withClasses(raw.train, names), test: withClasses(raw.test, names) };
}

/** loadImageFolder, its advice for images of mixed sizes given as the data option that resizes them. */
async function loadFolder(root: string, options: ImageFolderOptions): Promise<InMemoryDataset> {
  try {
    return await loadImageFolder(root, options);
  } catch (e) {
    if (!(e instanceof DataError) || e.field !== 'size' || e.file === undefined || e.expected === undefined) throw e;
    throw new DataError(`image is ${e.actual ?? '?'}, others are ${e.expected}: pass --input-size (inputSize) to resize every image to one size`, { file: e.file, field: 'size', expected: e.expected, ...(e.actual === undefined ? {} : { actual: e.actual }) });
  }
}

/** train/ and test/ (or val/) class folders, or class folders at the root with a fixed-seed test hold-out. */
async function openImageFolder(root: string, o: DataOptions): Promise<{ train: InMemoryDataset; test: InMemoryDataset; description: string }> {
  const common = { ...(o.inputSize === undefined ? {} : { size: o.inputSize }), color: o.color ?? 'rgb' };
  const testDir = ['test', 'val'].map((n) => join(root, n)).find(isDir);
  const listFile = join(root, CLASS_LIST_FILE);
  const listed = existsSync(listFile) ? readClassList(listFile) : undefined;
  if (isDir(join(root, 'train')) && testDir !== undefined) {
    const trainDir = join(root, 'train');
    const classNames = listed ?? discoverClasses(trainDir);
    const train = await loadFolder(trainDir, { ...common, classNames });
    const test = await loadFolder(testDir, { ...common, classNames, ...(o.inputSize === undefined ? { size: [train.shape[1], train.shape[2]] as const } : {}) });
    sameSize(train, test, testDir);
    return { train, test, description: `image folders ${trainDir} and ${testDir}` };
  }
  const all = await loadFolder(root, { ...common, ...(listed === undefined ? {} : { classNames: listed }) });
  if (all.length < 2) throw new DataError(`holds ${all.length} image; a test split needs at least 2`, { file: root, field: 'images', expected: 'at least 2 images' });
  const split = splitDataset(all, { validation: IMAGE_FOLDER_TEST_FRACTION, seed: IMAGE_FOLDER_TEST_SEED });
  const named = (ds: Dataset, name: string): InMemoryDataset => {
    const m = materialize(ds);
    return new InMemoryDataset({ name, pixels: m.pixels, labels: m.labels, shape: m.shape, classNames: m.classNames });
  };
  return {
    train: named(split.train, `${root} (training part)`),
    test: named(split.validation, `${root} (test part)`),
    description: `image folder ${root}, ${Math.round(100 * IMAGE_FOLDER_TEST_FRACTION)}% held out as the test split (no train/ and test/ folders)`,
  };
}

function sameSize(train: InMemoryDataset, test: InMemoryDataset, testDir: string): void {
  const a = train.shape, b = test.shape;
  if (a.some((d, i) => d !== b[i])) throw new DataError(`test images are ${b.join('x')}, training images ${a.join('x')}; pass --input-size to give both one size`, { file: testDir, field: 'size' });
}

function firstImages(ds: InMemoryDataset, n: number, spread: boolean): InMemoryDataset {
  if (n >= ds.length) return ds;
  const per = ds.shape[0] * ds.shape[1] * ds.shape[2];
  if (!spread) {
    return new InMemoryDataset({ name: ds.name, pixels: ds.pixels.subarray(0, n * per), labels: ds.labels.subarray(0, n), shape: ds.shape, classNames: ds.classNames });
  }
  const indices = Array.from({ length: n }, (_, i) => Math.floor((i * ds.length) / n));
  const m = materialize(dsView(ds, indices));
  return new InMemoryDataset({ name: ds.name, pixels: m.pixels, labels: m.labels, shape: m.shape, classNames: m.classNames });
}

function dsView(ds: InMemoryDataset, indices: readonly number[]): Dataset {
  return { name: ds.name, length: indices.length, shape: ds.shape, classNames: ds.classNames, numClasses: ds.numClasses, item: (i) => ds.item(indices[i] as number) };
}

/** Refuses --input-size or --color that a fixed-format data set (IDX, CIFAR) does not have. */
function checkFixed(kind: DataKind, o: DataOptions, shape: ImageShape, where: string): void {
  const what = kind === 'cifar10' ? 'CIFAR-10' : kind === 'cifar100' ? 'CIFAR-100' : kind === 'idx' ? 'IDX' : 'Fashion-MNIST';
  if (o.inputSize !== undefined && (o.inputSize[0] !== shape[1] || o.inputSize[1] !== shape[2])) {
    throw new DataError(`--input-size ${o.inputSize.join('x')} applies to image folders; this ${what} data holds ${shape[1]}x${shape[2]} images`, { file: where, field: 'inputSize' });
  }
  if (o.color !== undefined && (o.color === 'rgb' ? 3 : 1) !== shape[0]) {
    throw new DataError(`--color ${o.color} applies to image folders; this ${what} data holds ${shape[0] === 1 ? 'grayscale' : `${shape[0]}-channel`} images`, { file: where, field: 'color' });
  }
}

/**
 * Opens the data the options name (see `dataOptionsSchema`). Every problem with it is a DataError naming
 * the file or folder and what was expected.
 */
export async function openData(input: DataOptionsInput = {}): Promise<OpenedData> {
  const parsed = dataOptionsSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new DataError(`data option ${issue?.path.join('.') ?? ''} ${issue?.message ?? 'is invalid'}`, { field: String(issue?.path[0] ?? 'data') });
  }
  const o = parsed.data;
  const where = o.data;
  let kind: DataKind;
  let both: { train: InMemoryDataset; test: InMemoryDataset };
  let description: string;
  if (where === 'builtin' || where === 'full') {
    kind = 'fashion-mnist';
    both = loadFashionMnist({ subset: where });
    description = where === 'builtin' ? 'the built-in Fashion-MNIST subset' : "Debian's full Fashion-MNIST";
  } else {
    kind = detectKind(where);
    if (kind === 'idx') {
      both = openIdx(where);
      description = `IDX files in ${where}`;
    } else if (kind === 'cifar10') {
      both = loadCifar10({ dir: where });
      description = `CIFAR-10 binaries in ${where}`;
    } else if (kind === 'cifar100') {
      both = loadCifar100({ dir: where });
      description = `CIFAR-100 binaries in ${where}`;
    } else {
      const r = await openImageFolder(where, o);
      both = r;
      description = r.description;
    }
  }
  if (kind !== 'image-folder') checkFixed(kind, o, both.train.shape, where);
  const train = o.limit === undefined ? both.train : firstImages(both.train, o.limit, kind === 'image-folder');
  const test = o.limit === undefined ? both.test : firstImages(both.test, o.limit, kind === 'image-folder');
  return { train, test, classNames: train.classNames, inputShape: train.shape, kind, options: o, description };
}

export interface TrainingSplits {
  /** The images trained on. */
  readonly train: Dataset;
  /** The seeded, stratified hold-out that progress, controllers and early stopping read; null with validation 0. */
  readonly validation: Dataset | null;
  /** Per-channel mean and deviation of `train`, for the loaders and the model file. */
  readonly normalize: NormalizeOptions;
}

/**
 * Splits a training set into the part trained on and a seeded validation split (default 10%, stratified
 * by class), and computes the normalisation from the part trained on.
 */
export function trainingSplits(train: Dataset, options: { readonly seed: number; readonly validation?: number }): TrainingSplits {
  const v = options.validation ?? DEFAULT_VALIDATION_FRACTION;
  if (v === 0) return { train, validation: null, normalize: computeChannelStats(train) };
  const split = splitDataset(train, { validation: v, seed: options.seed });
  return { train: split.train, validation: split.validation, normalize: computeChannelStats(split.train) };
}
