/**
 * The built-in Fashion-MNIST test images for the page: the repo's gzipped IDX files, fetched and
 * gunzipped in the browser, and their normalisation as each model file records it.
 */
import { modelNormalize, normalizeImages, type ModelMeta } from '../src/browser/index.js';
import type { ImageShape } from '../src/data/dataset.js';

export interface TestSet {
  readonly count: number;
  readonly height: number;
  readonly width: number;
  /** count * height * width grey levels, 0 (background) to 255. */
  readonly pixels: Uint8Array;
  readonly labels: Uint8Array;
}

/** One image's grey levels as the network input, normalised as the model file says (as the training data loader did). */
export function normalise(grey: Uint8Array, meta: Pick<ModelMeta, 'inputShape' | 'normalize'>): Float32Array {
  return normalizeImages(grey, meta.inputShape as ImageShape, modelNormalize(meta));
}

async function fetchMaybeGzipped(url: URL | string): Promise<Uint8Array> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`cannot fetch ${String(url)}: HTTP ${res.status}`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  // A server may already have decoded the file (Content-Encoding: gzip); only gunzip what still has the magic.
  if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes;
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** The dimensions of an unsigned-byte IDX file with `dims` dimensions, checked against its length. */
function idxDims(bytes: Uint8Array, dims: number, file: string): number[] {
  const header = 4 + 4 * dims;
  if (bytes.length < header || bytes[0] !== 0 || bytes[1] !== 0 || bytes[2] !== 0x08 || bytes[3] !== dims) {
    throw new Error(`${file}: expected an IDX file of unsigned bytes with ${dims} dimensions (magic 00 00 08 0${dims})`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = Array.from({ length: dims }, (_, i) => view.getUint32(4 + 4 * i, false));
  const size = out.reduce((a, b) => a * b, 1);
  if (bytes.length !== header + size) throw new Error(`${file}: the header says ${out.join('x')} values (${size} bytes), the file has ${bytes.length - header}`);
  return out;
}

export async function loadTestSet(imagesUrl: URL | string, labelsUrl: URL | string): Promise<TestSet> {
  const [images, labels] = await Promise.all([fetchMaybeGzipped(imagesUrl), fetchMaybeGzipped(labelsUrl)]);
  const [count, height, width] = idxDims(images, 3, 'test images') as [number, number, number];
  const [labelCount] = idxDims(labels, 1, 'test labels') as [number];
  if (labelCount !== count) throw new Error(`${count} test images but ${labelCount} labels`);
  return { count, height, width, pixels: images.subarray(16), labels: labels.subarray(8) };
}

export function testImage(set: TestSet, index: number): Uint8Array {
  const size = set.height * set.width;
  return set.pixels.slice(index * size, (index + 1) * size);
}
