import { closeSync, existsSync, readSync } from 'node:fs';
import { basename, join } from 'node:path';
import { InMemoryDataset, sharedInt32, sharedUint8 } from './dataset.js';
import { DataError, describeError } from './errors.js';
import { openRegular, readRegularText } from './files.js';

/** Bytes a label-names file may have. */
const MAX_NAME_LIST_BYTES = 1 << 20;

/** Bytes of one 32x32 RGB image: R plane, then G, then B, each row-major. */
export const CIFAR_IMAGE_BYTES = 3 * 32 * 32;

export type CifarFormat = 'cifar10' | 'cifar100';

export interface CifarReadOptions {
  readonly format: CifarFormat;
  /** CIFAR-100 only: which of the two label bytes to keep (default 'fine'). */
  readonly label?: 'fine' | 'coarse';
  /** Class names; default "0".."n-1". Their count must be 10 (CIFAR-10), 100 (fine) or 20 (coarse). */
  readonly classNames?: readonly string[];
  readonly name?: string;
}

interface Layout {
  readonly recordBytes: number;
  readonly labelOffset: number;
  readonly numClasses: number;
  readonly describe: string;
}

function layoutOf(format: CifarFormat, label: 'fine' | 'coarse'): Layout {
  if (format === 'cifar10') {
    return { recordBytes: 1 + CIFAR_IMAGE_BYTES, labelOffset: 0, numClasses: 10, describe: 'CIFAR-10 record (1 label byte + 3072 pixel bytes)' };
  }
  return {
    recordBytes: 2 + CIFAR_IMAGE_BYTES,
    labelOffset: label === 'coarse' ? 0 : 1,
    numClasses: label === 'coarse' ? 20 : 100,
    describe: 'CIFAR-100 record (coarse label byte + fine label byte + 3072 pixel bytes)',
  };
}

function fileSize(file: string): number {
  const { fd, size } = openRegular(file);
  closeSync(fd);
  return size;
}

/**
 * Reads CIFAR binary batch files into one dataset of shape [3, 32, 32], in file order. Every file size is
 * checked before the pixels are allocated.
 */
export function readCifarFiles(files: readonly string[], options: CifarReadOptions): InMemoryDataset {
  const label = options.label ?? 'fine';
  const layout = layoutOf(options.format, label);
  if (files.length === 0) throw new DataError('no CIFAR files given', { field: 'files', expected: 'at least one file' });
  const classNames = options.classNames ?? Array.from({ length: layout.numClasses }, (_, i) => String(i));
  if (classNames.length !== layout.numClasses) {
    throw new DataError(`${classNames.length} class names given, ${options.format}${options.format === 'cifar100' ? ` ${label}` : ''} labels have ${layout.numClasses} classes`, {
      field: 'classNames',
      expected: String(layout.numClasses),
      actual: String(classNames.length),
    });
  }
  const counts = files.map((file) => {
    const size = fileSize(file);
    if (size === 0 || size % layout.recordBytes !== 0) {
      throw new DataError(
        `file has ${size} bytes, not a whole number of ${layout.recordBytes}-byte ${layout.describe}: ${Math.floor(size / layout.recordBytes)} records and ${size % layout.recordBytes} bytes left over`,
        { file, field: 'size', expected: `a positive multiple of ${layout.recordBytes} bytes`, actual: `${size} bytes` },
      );
    }
    return size / layout.recordBytes;
  });
  const total = counts.reduce((a, b) => a + b, 0);
  const pixels = sharedUint8(total * CIFAR_IMAGE_BYTES);
  const labels = sharedInt32(total);
  let sample = 0;
  files.forEach((file, f) => {
    const bytes = readAll(file, counts[f]! * layout.recordBytes);
    for (let r = 0; r < counts[f]!; r++, sample++) {
      const at = r * layout.recordBytes;
      const l = bytes[at + layout.labelOffset]!;
      if (l >= layout.numClasses) {
        const which = options.format === 'cifar100' ? `${label} label` : 'label';
        throw new DataError(`${which} ${l} in record ${r} (byte ${at + layout.labelOffset}) is out of range: expected 0..${layout.numClasses - 1}`, {
          file,
          field: `record[${r}].${options.format === 'cifar100' ? label : 'label'}`,
          expected: `0..${layout.numClasses - 1}`,
          actual: String(l),
        });
      }
      labels[sample] = l;
      const start = at + layout.recordBytes - CIFAR_IMAGE_BYTES;
      pixels.set(bytes.subarray(start, start + CIFAR_IMAGE_BYTES), sample * CIFAR_IMAGE_BYTES);
    }
  });
  return new InMemoryDataset({
    name: options.name ?? files.map((f) => basename(f)).join('+'),
    pixels,
    labels,
    shape: [3, 32, 32],
    classNames,
  });
}

function readAll(file: string, expected: number): Uint8Array {
  const { fd } = openRegular(file);
  try {
    const out = new Uint8Array(expected);
    let got = 0;
    while (got < expected) {
      const n = readSync(fd, out, got, expected - got, got);
      if (n === 0) break;
      got += n;
    }
    if (got !== expected) throw new DataError(`file shrank while reading: expected ${expected} bytes, read ${got}`, { file, field: 'size' });
    return out;
  } finally {
    closeSync(fd);
  }
}

/** Non-empty trimmed lines of a label-names file, or undefined when the file does not exist. */
export function readNameList(file: string, expectedCount: number): string[] | undefined {
  if (!existsSync(file)) return undefined;
  const text = readRegularText(file, { maxBytes: MAX_NAME_LIST_BYTES, what: 'a list of class names' });
  const names = text.split(/\r?\n/).map((s) => s.trim()).filter((s) => s.length > 0);
  if (names.length !== expectedCount) {
    throw new DataError(`expected ${expectedCount} class names, one per line, found ${names.length}`, {
      file,
      field: 'names',
      expected: String(expectedCount),
      actual: String(names.length),
    });
  }
  return names;
}

/** The folder itself, or its `sub` child when the archive was extracted next to it. */
function resolveDir(dir: string, sub: string): string {
  if (!existsSync(dir)) throw new DataError('CIFAR folder not found', { file: dir, field: 'dir' });
  const nested = join(dir, sub);
  return existsSync(nested) ? nested : dir;
}

/** Names every missing file of a folder at once, with what the folder should hold. */
function requireFiles(dir: string, files: readonly string[], expected: string): void {
  const missing = files.filter((f) => !existsSync(f)).map((f) => basename(f));
  if (missing.length > 0) throw new DataError(`missing ${missing.join(', ')}: ${expected}`, { file: dir, field: 'files', expected });
}

/**
 * CIFAR-10 binary version: data_batch_1..5.bin (train, 50,000) and test_batch.bin (10,000); class names from
 * batches.meta.txt when present. `dir` may also be the folder that contains cifar-10-batches-bin.
 */
export function loadCifar10(options: { readonly dir: string }): { train: InMemoryDataset; test: InMemoryDataset } {
  const dir = resolveDir(options.dir, 'cifar-10-batches-bin');
  const classNames = readNameList(join(dir, 'batches.meta.txt'), 10);
  const trainFiles = [1, 2, 3, 4, 5].map((i) => join(dir, `data_batch_${i}.bin`));
  requireFiles(dir, [...trainFiles, join(dir, 'test_batch.bin')], 'a CIFAR-10 binary folder holds data_batch_1.bin .. data_batch_5.bin and test_batch.bin');
  const common = { format: 'cifar10' as const, ...(classNames === undefined ? {} : { classNames }) };
  return {
    train: readCifarFiles(trainFiles, { ...common, name: join(dir, 'data_batch_{1..5}.bin') }),
    test: readCifarFiles([join(dir, 'test_batch.bin')], { ...common, name: join(dir, 'test_batch.bin') }),
  };
}

/**
 * CIFAR-100 binary version: train.bin (50,000) and test.bin (10,000), fine (100) or coarse (20) labels;
 * names from fine_label_names.txt / coarse_label_names.txt when present. `dir` may also be the folder that
 * contains cifar-100-binary.
 */
export function loadCifar100(options: { readonly dir: string; readonly label?: 'fine' | 'coarse' }): {
  train: InMemoryDataset;
  test: InMemoryDataset;
} {
  const dir = resolveDir(options.dir, 'cifar-100-binary');
  const label = options.label ?? 'fine';
  const classNames = readNameList(join(dir, `${label}_label_names.txt`), label === 'fine' ? 100 : 20);
  const common = { format: 'cifar100' as const, label, ...(classNames === undefined ? {} : { classNames }) };
  requireFiles(dir, [join(dir, 'train.bin'), join(dir, 'test.bin')], 'a CIFAR-100 binary folder holds train.bin and test.bin');
  return {
    train: readCifarFiles([join(dir, 'train.bin')], { ...common, name: join(dir, 'train.bin') }),
    test: readCifarFiles([join(dir, 'test.bin')], { ...common, name: join(dir, 'test.bin') }),
  };
}
