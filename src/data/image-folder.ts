import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import type { Sharp } from 'sharp';
import { InMemoryDataset, sharedInt32, sharedUint8 } from './dataset.js';
import { DataError, describeError } from './errors.js';
import { isMissingPackage, MissingPackageError } from '../optional.js';
import { readRegularFile, readRegularText } from './files.js';

export const IMAGE_EXTENSIONS: readonly string[] = Object.freeze(['.png', '.jpg', '.jpeg', '.webp']);

export interface ImageFolderOptions {
  /** Target size, square or [height, width]. Without it every image must already have the same size. */
  readonly size?: number | readonly [height: number, width: number];
  /** 'cover' (default): scale to cover, then centre-crop; 'fill': stretch to the exact size. */
  readonly fit?: 'cover' | 'fill';
  /** 'rgb' (default): 3 channels; 'grayscale': 1 channel. Alpha is dropped. */
  readonly color?: 'rgb' | 'grayscale';
  /** A saved class list (see readClassList) so class indices stay stable between runs and machines. */
  readonly classNames?: readonly string[];
  /** Images decoded at once (default 8). */
  readonly concurrency?: number;
}

/** Pixels (height x width) an image may have, checked from its header before it is decoded. */
export const MAX_IMAGE_PIXELS = 4096 * 4096;
/** Bytes an image file may have. */
const MAX_IMAGE_FILE_BYTES = 64 * 2 ** 20;
/** Bytes the decoded images of one folder may take together. */
export const MAX_FOLDER_BYTES = 2 ** 31;

/** Checks the options a caller passed (they may come from JSON), naming the option at fault. */
function checkOptions(root: string, o: ImageFolderOptions): readonly [number, number] | undefined {
  const fail = (field: string, expected: string, got: unknown): never => {
    throw new DataError(`${field} should be ${expected}, got ${JSON.stringify(got) ?? String(got)}`, { file: root, field, expected });
  };
  const side = (d: unknown): d is number => typeof d === 'number' && Number.isSafeInteger(d) && d >= 1 && d <= 4096;
  let size: readonly [number, number] | undefined;
  if (o.size !== undefined) {
    const s: unknown = o.size;
    if (side(s)) size = [s, s];
    else if (Array.isArray(s) && s.length === 2 && side(s[0]) && side(s[1])) size = [s[0], s[1]];
    else fail('size', 'a whole number in [1, 4096] or a pair [height, width] of them', s);
  }
  if (o.fit !== undefined && o.fit !== 'cover' && o.fit !== 'fill') fail('fit', "'cover' or 'fill'", o.fit);
  if (o.color !== undefined && o.color !== 'rgb' && o.color !== 'grayscale') fail('color', "'rgb' or 'grayscale'", o.color);
  if (o.concurrency !== undefined && !(Number.isSafeInteger(o.concurrency) && o.concurrency >= 1 && o.concurrency <= 256)) fail('concurrency', 'a whole number in [1, 256]', o.concurrency);
  if (o.classNames !== undefined && !(Array.isArray(o.classNames) && o.classNames.every((c) => typeof c === 'string'))) fail('classNames', 'a list of strings', o.classNames);
  return size;
}

/** Byte-wise code-point order: the same on every machine and locale. */
function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch (e) {
    throw new DataError(`cannot list folder (${describeError(e)})`, { file: dir, cause: e });
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Subfolder names of `root`, sorted by code point; hidden entries are ignored. */
export function discoverClasses(root: string): string[] {
  if (!isDirectory(root)) throw new DataError('image folder not found or not a folder', { file: root, field: 'root' });
  const classes = listDir(root)
    .filter((name) => !name.startsWith('.') && isDirectory(join(root, name)))
    .sort(compareNames);
  if (classes.length === 0) {
    throw new DataError('no class folders found: expected <root>/<class>/*.png|jpg|jpeg|webp', {
      file: root,
      field: 'classes',
      expected: 'at least one class folder',
      actual: 'none',
    });
  }
  return classes;
}

/** Writes a class list as JSON, to keep class indices stable (e.g. next to a trained model). */
export function saveClassList(file: string, classNames: readonly string[]): void {
  writeFileSync(file, `${JSON.stringify({ classes: classNames }, null, 2)}\n`);
}

export function readClassList(file: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readRegularText(file, { maxBytes: 16 * 2 ** 20, what: 'a class list' }));
  } catch (e) {
    throw new DataError(`cannot read class list (${describeError(e)})`, { file, cause: e });
  }
  const classes = (parsed as { classes?: unknown } | null)?.classes;
  if (!Array.isArray(classes) || classes.length === 0 || !classes.every((c): c is string => typeof c === 'string' && c.length > 0)) {
    throw new DataError('expected {"classes": [non-empty strings]}', { file, field: 'classes', expected: 'a non-empty array of names' });
  }
  const dup = classes.find((c, i) => classes.indexOf(c) !== i);
  if (dup !== undefined) throw new DataError(`class "${dup}" is listed twice`, { file, field: 'classes' });
  return classes;
}

interface Decoded {
  readonly data: Buffer;
  readonly width: number;
  readonly height: number;
  readonly channels: number;
}

type SharpFactory = (input: Uint8Array, options: { autoOrient?: boolean; failOn?: 'error'; limitInputPixels?: number | false }) => Sharp;

/** sharp is a native addon: it is loaded on first use, so the rest of the data layer works without it. */
async function loadSharp(): Promise<SharpFactory> {
  try {
    return (await import('sharp')).default;
  } catch (e) {
    if (isMissingPackage(e, 'sharp')) throw new MissingPackageError('sharp', 'image folders', { cause: e });
    throw new DataError(`image folders need the sharp package, which failed to load (${describeError(e)})`, { field: 'sharp', cause: e });
  }
}

async function decode(sharp: SharpFactory, file: string, options: ImageFolderOptions, size: readonly [number, number] | undefined): Promise<Decoded> {
  const channels = options.color === 'grayscale' ? 1 : 3;
  const bytes = readRegularFile(file, { maxBytes: MAX_IMAGE_FILE_BYTES, what: 'an image' });
  let header: { width?: number | undefined; height?: number | undefined };
  try {
    header = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (e) {
    throw new DataError(`cannot decode image (${describeError(e)})`, { file, field: 'image', cause: e });
  }
  const [w, h] = [header.width ?? 0, header.height ?? 0];
  if (!(w >= 1 && h >= 1)) throw new DataError('cannot decode image (its header gives no size)', { file, field: 'image' });
  if (w * h > MAX_IMAGE_PIXELS) {
    throw new DataError(`image is ${w}x${h} (${w * h} pixels), more than the ${MAX_IMAGE_PIXELS} pixels (4096x4096) an image may have`, { file, field: 'pixels', expected: `<= ${MAX_IMAGE_PIXELS} pixels`, actual: `${w * h} pixels` });
  }
  try {
    let img = sharp(bytes, { autoOrient: true, failOn: 'error', limitInputPixels: MAX_IMAGE_PIXELS }).removeAlpha();
    img = channels === 1 ? img.toColourspace('b-w') : img.toColourspace('srgb');
    if (size !== undefined) {
      img = img.resize({ height: size[0], width: size[1], fit: options.fit ?? 'cover', position: 'centre' });
    }
    const { data, info } = await img.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    if (info.channels !== channels) throw new Error(`decoder produced ${info.channels} channels, expected ${channels}`);
    return { data, width: info.width, height: info.height, channels };
  } catch (e) {
    throw new DataError(`cannot decode image (${describeError(e)})`, { file, field: 'image', cause: e });
  }
}

/**
 * Loads root/<class>/*.png|jpg|jpeg|webp into memory as uint8 CHW images. Classes are the sorted folder
 * names, or `classNames` when given (folders absent on disk are allowed then, unknown folders are not).
 * Files within a class are taken in sorted order.
 */
export async function loadImageFolder(root: string, options: ImageFolderOptions = {}): Promise<InMemoryDataset> {
  const onDisk = discoverClasses(root);
  const classNames = options.classNames ?? onDisk;
  if (options.classNames !== undefined) {
    const known = new Set(options.classNames);
    if (known.size !== options.classNames.length || options.classNames.length === 0) {
      throw new DataError('classNames must be a non-empty list without duplicates', { file: root, field: 'classNames' });
    }
    const unknown = onDisk.find((c) => !known.has(c));
    if (unknown !== undefined) {
      throw new DataError(`class folder "${unknown}" is not in the given class list (${options.classNames.length} classes)`, {
        file: join(root, unknown),
        field: 'classNames',
      });
    }
  }
  const size = checkOptions(root, options);
  const files: string[] = [];
  const labels: number[] = [];
  for (const name of onDisk) {
    const dir = join(root, name);
    const images = listDir(dir)
      .filter((f) => !f.startsWith('.') && IMAGE_EXTENSIONS.includes(extname(f).toLowerCase()))
      .sort(compareNames);
    if (images.length === 0) {
      throw new DataError(`class folder has no images (expected ${IMAGE_EXTENSIONS.join(', ')})`, {
        file: dir,
        field: 'images',
        expected: 'at least one image',
        actual: 'none',
      });
    }
    const label = classNames.indexOf(name);
    for (const f of images) {
      files.push(join(dir, f));
      labels.push(label);
    }
  }

  const channels = options.color === 'grayscale' ? 1 : 3;
  const sharp = await loadSharp();
  const first = await decode(sharp, files[0]!, options, size);
  const [height, width] = [first.height, first.width];
  const hw = height * width;
  const itemSize = channels * hw;
  if (files.length * itemSize > MAX_FOLDER_BYTES) {
    throw new DataError(`${files.length} images of ${channels}x${height}x${width} need ${files.length * itemSize} bytes, more than the ${MAX_FOLDER_BYTES} a folder may take; pass a smaller size`, { file: root, field: 'size' });
  }
  const pixels = sharedUint8(files.length * itemSize);
  const store = (d: Decoded, i: number): void => {
    if (d.width !== width || d.height !== height) {
      throw new DataError(
        `image is ${d.width}x${d.height} but ${files[0]} is ${width}x${height}; pass size to resize images to one size`,
        { file: files[i], field: 'size', expected: `${width}x${height}`, actual: `${d.width}x${d.height}` },
      );
    }
    const base = i * itemSize;
    // sharp gives interleaved HWC; the dataset stores planar CHW
    for (let c = 0; c < channels; c++) {
      const plane = base + c * hw;
      for (let p = 0; p < hw; p++) pixels[plane + p] = d.data[p * channels + c]!;
    }
  };
  store(first, 0);
  const concurrency = Math.max(1, options.concurrency ?? 8);
  let next = 1;
  const failures: { index: number; error: unknown }[] = [];
  const worker = async (): Promise<void> => {
    while (next < files.length && failures.length === 0) {
      const i = next++;
      try {
        store(await decode(sharp, files[i]!, options, size), i);
      } catch (error) {
        failures.push({ index: i, error });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, files.length) }, worker));
  // files decode out of order; report the first failing file in sorted order among those tried
  if (failures.length > 0) throw failures.sort((a, b) => a.index - b.index)[0]!.error;

  const labelArray = sharedInt32(labels.length);
  labelArray.set(labels);
  return new InMemoryDataset({ name: root, pixels, labels: labelArray, shape: [channels, height, width], classNames, files });
}
