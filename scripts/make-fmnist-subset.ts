/**
 * Regenerates data/fashion-mnist-subset (6,000 train + 1,000 test images, 600 / 100 per class) from the
 * full Fashion-MNIST, byte for byte:
 *
 *     npx tsx scripts/make-fmnist-subset.ts            # write the files
 *     npx tsx scripts/make-fmnist-subset.ts --check    # compare with the committed files, exit 1 on a difference
 *
 * Options: --source <dir> (default /usr/share/datasets/fashion-mnist, Debian's dataset-fashion-mnist),
 * --out <dir> (default data/fashion-mnist-subset at the repository root).
 *
 * The selection is seeded: per class, the indices of that class in ascending order are shuffled with
 * Rng.derive(SEED, split, class) and the first `perClass` kept; the subset lists the kept images in
 * ascending source order. gzip uses level 9 and Node's fixed header (mtime 0), so the same Node zlib
 * reproduces the same bytes; the manifest also records the SHA-256 of the uncompressed IDX content, which
 * does not depend on the zlib build.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import {
  DEBIAN_FASHION_MNIST_DIR,
  FASHION_MNIST_CLASSES,
  IDX_FILE_STEMS,
  Rng,
  encodeIdx,
  idxFilesIn,
  readIdx,
  type IdxArray,
} from '../src/data/index.js';

const SEED = 20251125;
const PER_CLASS = { train: 600, test: 100 } as const;
const SPLIT_STREAM = { train: 0, test: 1 } as const;
const MANIFEST = 'subset.json';

type Split = keyof typeof PER_CLASS;

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function parseArgs(argv: readonly string[]): { source: string; out: string; check: boolean } {
  let source = DEBIAN_FASHION_MNIST_DIR;
  let out = fileURLToPath(new URL('../data/fashion-mnist-subset', import.meta.url));
  let check = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--check') check = true;
    else if (a === '--source' && argv[i + 1] !== undefined) source = argv[++i]!;
    else if (a === '--out' && argv[i + 1] !== undefined) out = argv[++i]!;
    else throw new Error(`unknown argument ${a}; usage: make-fmnist-subset.ts [--check] [--source dir] [--out dir]`);
  }
  return { source, out, check };
}

/** Source indices of the subset of one split, ascending. */
function selectIndices(labels: ArrayLike<number>, perClass: number, seed: number, stream: number, numClasses: number): number[] {
  const byClass: number[][] = Array.from({ length: numClasses }, () => []);
  for (let i = 0; i < labels.length; i++) byClass[labels[i]!]!.push(i);
  const kept: number[] = [];
  byClass.forEach((members, c) => {
    if (members.length < perClass) throw new Error(`class ${c} has ${members.length} images, the subset needs ${perClass}`);
    Rng.derive(seed, stream, c).shuffle(members);
    kept.push(...members.slice(0, perClass));
  });
  return kept.sort((a, b) => a - b);
}

interface SplitOutput {
  readonly indices: number[];
  readonly images: Uint8Array;
  readonly labels: Uint8Array;
}

function subsetOf(images: IdxArray, labels: IdxArray, split: Split): SplitOutput {
  const [, rows, cols] = images.dims as [number, number, number];
  const size = rows * cols;
  const indices = selectIndices(labels.data, PER_CLASS[split], SEED, SPLIT_STREAM[split], FASHION_MNIST_CLASSES.length);
  const px = new Uint8Array(indices.length * size);
  const lb = new Uint8Array(indices.length);
  indices.forEach((src, i) => {
    px.set(images.data.subarray(src * size, (src + 1) * size) as Uint8Array, i * size);
    lb[i] = labels.data[src]!;
  });
  return {
    indices,
    images: encodeIdx({ type: 'u8', dims: [indices.length, rows, cols], data: px }),
    labels: encodeIdx({ type: 'u8', dims: [indices.length], data: lb }),
  };
}

function gzip(bytes: Uint8Array): Uint8Array {
  return gzipSync(bytes, { level: 9 });
}

function main(): void {
  const { source, out, check } = parseArgs(process.argv.slice(2));
  if (!existsSync(source)) throw new Error(`${source}: full Fashion-MNIST not found (install the Debian package dataset-fashion-mnist, or pass --source)`);
  const files = idxFilesIn(source);
  const train = subsetOf(readIdx(files.trainImages), readIdx(files.trainLabels), 'train');
  const test = subsetOf(readIdx(files.testImages), readIdx(files.testLabels), 'test');

  const outputs: [string, Uint8Array][] = [
    [`${IDX_FILE_STEMS.trainImages}.gz`, train.images],
    [`${IDX_FILE_STEMS.trainLabels}.gz`, train.labels],
    [`${IDX_FILE_STEMS.testImages}.gz`, test.images],
    [`${IDX_FILE_STEMS.testLabels}.gz`, test.labels],
  ];
  const compressed = outputs.map(([name, raw]) => [name, raw, gzip(raw)] as const);
  const sourceHashes = Object.fromEntries(
    Object.values(files).map((f) => {
      const bytes = readFileSync(f);
      const raw = f.endsWith('.gz') ? gunzipSync(bytes) : bytes;
      return [f.split('/').pop()!, { sha256: sha256(bytes), idxSha256: sha256(raw) }];
    }),
  );
  const manifest = [
    '{',
    `  "description": "Fashion-MNIST subset: ${PER_CLASS.train} train and ${PER_CLASS.test} test images per class, regenerated by scripts/make-fmnist-subset.ts",`,
    `  "seed": ${SEED},`,
    `  "perClass": { "train": ${PER_CLASS.train}, "test": ${PER_CLASS.test} },`,
    `  "source": ${JSON.stringify({ files: sourceHashes })},`,
    `  "files": ${JSON.stringify(Object.fromEntries(compressed.map(([name, raw, gz]) => [name, { sha256: sha256(gz), idxSha256: sha256(raw) }])))},`,
    `  "trainSourceIndices": ${JSON.stringify(train.indices)},`,
    `  "testSourceIndices": ${JSON.stringify(test.indices)}`,
    '}',
    '',
  ].join('\n');
  const all: [string, Uint8Array][] = [...compressed.map(([name, , gz]) => [name, gz] as [string, Uint8Array]), [MANIFEST, new TextEncoder().encode(manifest)]];

  if (check) {
    let differ = 0;
    for (const [name, bytes] of all) {
      const path = join(out, name);
      const same = existsSync(path) && Buffer.compare(readFileSync(path), bytes) === 0;
      console.log(`${same ? 'same   ' : 'DIFFERS'} ${path}`);
      if (!same) differ += 1;
    }
    process.exit(differ === 0 ? 0 : 1);
  }
  mkdirSync(out, { recursive: true });
  for (const [name, bytes] of all) {
    writeFileSync(join(out, name), bytes);
    console.log(`wrote ${join(out, name)} (${bytes.length} bytes)`);
  }
}

main();
