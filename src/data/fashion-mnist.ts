import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { InMemoryDataset } from './dataset.js';
import { DataError } from './errors.js';
import { loadIdxDataset } from './idx.js';

export const FASHION_MNIST_CLASSES: readonly string[] = Object.freeze([
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
]);

/** Where Debian's `dataset-fashion-mnist` package installs the full set. */
export const DEBIAN_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** The four file stems shared by MNIST, Fashion-MNIST and the built-in subset. */
export const IDX_FILE_STEMS = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
} as const;

export type IdxFileSet = { readonly [K in keyof typeof IDX_FILE_STEMS]: string };

/**
 * The built-in 6,000 + 1,000 image subset, `data/fashion-mnist-subset` at the package root.
 * src/data/*.ts and dist/data/*.js sit at the same depth, so one relative URL serves both.
 */
export function builtinFashionMnistDir(): string {
  return fileURLToPath(new URL('../../data/fashion-mnist-subset', import.meta.url));
}

/** The MNIST-style file paths in a folder, each `<stem>.gz` if present, else `<stem>`. */
export function idxFilesIn(dir: string): IdxFileSet {
  const find = (stem: string): string => {
    const gz = join(dir, `${stem}.gz`);
    if (existsSync(gz)) return gz;
    const raw = join(dir, stem);
    if (existsSync(raw)) return raw;
    throw new DataError(`missing ${stem}.gz (or ${stem})`, { file: dir, field: stem, expected: `${stem}.gz or ${stem}` });
  };
  return {
    trainImages: find(IDX_FILE_STEMS.trainImages),
    trainLabels: find(IDX_FILE_STEMS.trainLabels),
    testImages: find(IDX_FILE_STEMS.testImages),
    testLabels: find(IDX_FILE_STEMS.testLabels),
  };
}

export interface FashionMnistOptions {
  /** Folder holding the four IDX files; overrides `subset`. */
  readonly dir?: string;
  /** 'builtin' (default): the committed subset; 'full': Debian's dataset-fashion-mnist files. */
  readonly subset?: 'builtin' | 'full';
}

/** Fashion-MNIST as two in-memory datasets of shape [1, 28, 28] with the ten class names. */
export function loadFashionMnist(options: FashionMnistOptions = {}): { train: InMemoryDataset; test: InMemoryDataset } {
  const subset = options.subset ?? 'builtin';
  const dir = options.dir ?? (subset === 'full' ? DEBIAN_FASHION_MNIST_DIR : builtinFashionMnistDir());
  if (!existsSync(dir)) {
    const hint = subset === 'full' && options.dir === undefined ? ' (install the Debian package dataset-fashion-mnist, or pass dir)' : '';
    throw new DataError(`Fashion-MNIST folder not found${hint}`, { file: dir, field: 'dir' });
  }
  const files = idxFilesIn(dir);
  const classNames = FASHION_MNIST_CLASSES;
  const train = loadIdxDataset(files.trainImages, files.trainLabels, { classNames });
  const test = loadIdxDataset(files.testImages, files.testLabels, { classNames });
  for (const [ds, file] of [[train, files.trainImages], [test, files.testImages]] as const) {
    if (ds.shape[1] !== 28 || ds.shape[2] !== 28) {
      throw new DataError(`Fashion-MNIST images are 28x28, file has ${ds.shape[1]}x${ds.shape[2]}`, { file, field: 'dims', expected: '28x28' });
    }
  }
  return { train, test };
}
