import { checkLabels, InMemoryDataset, sharedFloat32, sharedInt32, sharedUint8, type PixelArray } from './dataset.js';
import { DataError } from './errors.js';
import { gunzipExpected, gunzipHead, isGzip, readRegularFile } from './files.js';

export { isGzip } from './files.js';

export type IdxType = 'u8' | 'i8' | 'i16' | 'i32' | 'f32' | 'f64';
export type IdxData = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

/** A decoded IDX file: element type, dimensions (outermost first) and the values in host byte order. */
export interface IdxArray {
  readonly type: IdxType;
  readonly dims: readonly number[];
  readonly data: IdxData;
}

const TYPE_BY_CODE: ReadonlyMap<number, { type: IdxType; bytes: number }> = new Map([
  [0x08, { type: 'u8', bytes: 1 }],
  [0x09, { type: 'i8', bytes: 1 }],
  [0x0b, { type: 'i16', bytes: 2 }],
  [0x0c, { type: 'i32', bytes: 4 }],
  [0x0d, { type: 'f32', bytes: 4 }],
  [0x0e, { type: 'f64', bytes: 8 }],
]);

const CODE_BY_TYPE: Readonly<Record<IdxType, number>> = { u8: 0x08, i8: 0x09, i16: 0x0b, i32: 0x0c, f32: 0x0d, f64: 0x0e };
const BYTES_BY_TYPE: Readonly<Record<IdxType, number>> = { u8: 1, i8: 1, i16: 2, i32: 4, f32: 4, f64: 8 };

const hex = (b: number): string => b.toString(16).padStart(2, '0');

/** Bytes an IDX file (inflated) may hold. */
export const MAX_IDX_BYTES = 2 ** 31;
/** The longest IDX header: 4 bytes and 255 dims. */
const MAX_HEADER_BYTES = 4 + 4 * 255;

/**
 * Gunzips when the bytes carry the gzip magic, else returns them unchanged. The IDX header is
 * inflated first, and the rest no further than the header says.
 */
export function maybeGunzip(bytes: Uint8Array, file: string): Uint8Array {
  if (!isGzip(bytes)) return bytes;
  const header = idxHeader(gunzipHead(bytes, MAX_HEADER_BYTES, file), file, true);
  return gunzipExpected(bytes, header.headerBytes + header.dataBytes, file, `its IDX header describes (${describeContents(header.dims, header.type)})`);
}

/** Reads a whole regular file (no FIFO, device or folder), naming it in the error when it cannot be read. */
export function readBytes(file: string): Uint8Array {
  return readRegularFile(file, { maxBytes: MAX_IDX_BYTES + MAX_HEADER_BYTES, what: 'an IDX file' });
}

function describeContents(dims: readonly number[], type: IdxType): string {
  if (dims.length === 1) return `${dims[0]} labels`;
  if (dims.length === 3) return `${dims[0]} images of ${dims[1]}x${dims[2]}`;
  return `an array of ${dims.join('x')} ${type}`;
}

interface IdxHeader {
  readonly type: IdxType;
  readonly dims: number[];
  readonly headerBytes: number;
  readonly count: number;
  readonly dataBytes: number;
}

/** Reads and checks an IDX header; `inflated` says the bytes are the start of inflated gzip data. */
function idxHeader(bytes: Uint8Array, file: string, inflated = false): IdxHeader {
  const what = inflated ? 'the inflated data has' : 'file has';
  if (bytes.length < 4) {
    throw new DataError(`truncated IDX header: ${what} ${bytes.length} bytes, the header needs at least 4`, {
      file,
      field: 'header',
      expected: '>= 4 bytes',
      actual: `${bytes.length} bytes`,
    });
  }
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw new DataError(`not an IDX file: expected magic bytes 00 00 at offset 0, found ${hex(bytes[0]!)} ${hex(bytes[1]!)}`, {
      file,
      field: 'magic',
      expected: '00 00',
      actual: `${hex(bytes[0]!)} ${hex(bytes[1]!)}`,
    });
  }
  const code = bytes[2]!;
  const t = TYPE_BY_CODE.get(code);
  if (t === undefined) {
    throw new DataError(`unknown IDX type code 0x${hex(code)} at offset 2 (expected 08 u8, 09 i8, 0b i16, 0c i32, 0d f32 or 0e f64)`, {
      file,
      field: 'type',
      expected: '0x08, 0x09, 0x0b, 0x0c, 0x0d or 0x0e',
      actual: `0x${hex(code)}`,
    });
  }
  const ndims = bytes[3]!;
  if (ndims === 0) throw new DataError('IDX header declares 0 dimensions, expected at least 1', { file, field: 'dims', expected: '>= 1', actual: '0' });
  const headerBytes = 4 + 4 * ndims;
  if (bytes.length < headerBytes) {
    throw new DataError(`truncated IDX header: ${what} ${bytes.length} bytes, a header with ${ndims} dimensions needs ${headerBytes}`, {
      file,
      field: 'dims',
      expected: `${headerBytes} bytes`,
      actual: `${bytes.length} bytes`,
    });
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < ndims; i++) dims.push(view.getUint32(4 + 4 * i, false));
  // a product of u32 dims can pass 2^53; the bound below still rejects it
  const count = dims.reduce((a, b) => a * b, 1);
  const expectedBytes = count * t.bytes;
  if (expectedBytes > MAX_IDX_BYTES) {
    throw new DataError(`header says ${describeContents(dims, t.type)} (${expectedBytes} bytes), more than the ${MAX_IDX_BYTES} bytes an IDX file may hold`, {
      file, field: 'dims', expected: `<= ${MAX_IDX_BYTES} bytes`, actual: `${expectedBytes} bytes`,
    });
  }
  return { type: t.type, dims, headerBytes, count, dataBytes: expectedBytes };
}

/**
 * Decodes an IDX file (uncompressed bytes). The header is checked against the real byte length before
 * anything sized from it is allocated.
 */
export function decodeIdx(bytes: Uint8Array, file = '<IDX bytes>'): IdxArray {
  const { type, dims, headerBytes, count, dataBytes: expectedBytes } = idxHeader(bytes, file);
  const dataBytes = bytes.length - headerBytes;
  if (dataBytes !== expectedBytes) {
    const extra = dataBytes > expectedBytes ? ` (${dataBytes - expectedBytes} bytes more than the header describes)` : '';
    throw new DataError(`header says ${describeContents(dims, type)} (${expectedBytes} bytes), file has ${dataBytes} bytes of data${extra}`, {
      file,
      field: 'dims',
      expected: `${expectedBytes} bytes`,
      actual: `${dataBytes} bytes`,
    });
  }
  return { type, dims, data: decodeValues(bytes, headerBytes, count, type) };
}

function decodeValues(bytes: Uint8Array, offset: number, count: number, type: IdxType): IdxData {
  if (type === 'u8') return bytes.subarray(offset, offset + count);
  if (type === 'i8') return new Int8Array(bytes.buffer, bytes.byteOffset + offset, count);
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, count * BYTES_BY_TYPE[type]);
  switch (type) {
    case 'i16': {
      const out = new Int16Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt16(2 * i, false);
      return out;
    }
    case 'i32': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt32(4 * i, false);
      return out;
    }
    case 'f32': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i, false);
      return out;
    }
    case 'f64': {
      const out = new Float64Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(8 * i, false);
      return out;
    }
  }
}

/** Reads an IDX file, gzip-compressed (by magic 1f 8b, whatever its name) or raw. */
export function readIdx(file: string): IdxArray {
  return decodeIdx(maybeGunzip(readBytes(file), file), file);
}

/** Encodes an IDX file (uncompressed). */
export function encodeIdx(arr: IdxArray): Uint8Array {
  const count = arr.dims.reduce((a, b) => a * b, 1);
  if (arr.data.length !== count) throw new RangeError(`encodeIdx: dims ${arr.dims.join('x')} need ${count} values, data has ${arr.data.length}`);
  if (arr.dims.length < 1 || arr.dims.length > 255) throw new RangeError(`encodeIdx: 1..255 dimensions, got ${arr.dims.length}`);
  const width = BYTES_BY_TYPE[arr.type];
  const header = 4 + 4 * arr.dims.length;
  const out = new Uint8Array(header + count * width);
  const view = new DataView(out.buffer);
  out[2] = CODE_BY_TYPE[arr.type];
  out[3] = arr.dims.length;
  arr.dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  const d = arr.data;
  for (let i = 0; i < count; i++) {
    const v = d[i]!;
    const o = header + i * width;
    switch (arr.type) {
      case 'u8': view.setUint8(o, v); break;
      case 'i8': view.setInt8(o, v); break;
      case 'i16': view.setInt16(o, v, false); break;
      case 'i32': view.setInt32(o, v, false); break;
      case 'f32': view.setFloat32(o, v, false); break;
      case 'f64': view.setFloat64(o, v, false); break;
    }
  }
  return out;
}

export interface IdxDatasetOptions {
  /** Class names; their count bounds the labels. Default: "0".."max label". */
  readonly classNames?: readonly string[];
  /** Name for the dataset (default: the images file). */
  readonly name?: string;
}

/**
 * Pairs an images array (count x rows x columns) with a labels array (count) into an in-memory dataset
 * of shape [1, rows, columns]. uint8 images stay uint8; other element types become float32.
 */
export function idxDataset(
  images: IdxArray,
  labels: IdxArray,
  files: { readonly images: string; readonly labels: string },
  options: IdxDatasetOptions = {},
): InMemoryDataset {
  if (images.dims.length !== 3) {
    throw new DataError(`expected 3 dimensions (images, rows, columns), header has ${images.dims.length} (${images.dims.join('x')})`, {
      file: files.images,
      field: 'dims',
      expected: '3 dimensions',
      actual: `${images.dims.length} dimensions`,
    });
  }
  if (labels.dims.length !== 1) {
    throw new DataError(`expected 1 dimension (labels), header has ${labels.dims.length} (${labels.dims.join('x')})`, {
      file: files.labels,
      field: 'dims',
      expected: '1 dimension',
      actual: `${labels.dims.length} dimensions`,
    });
  }
  if (labels.type === 'f32' || labels.type === 'f64') {
    throw new DataError(`labels must be integers, file holds ${labels.type}`, { file: files.labels, field: 'type', expected: 'u8, i8, i16 or i32', actual: labels.type });
  }
  const [n, rows, cols] = images.dims as [number, number, number];
  if (labels.dims[0] !== n) {
    throw new DataError(`${labels.dims[0]} labels, but ${files.images} has ${n} images`, {
      file: files.labels,
      field: 'dims[0]',
      expected: String(n),
      actual: String(labels.dims[0]),
    });
  }
  const labelValues = sharedInt32(n);
  labelValues.set(labels.data);
  let classNames = options.classNames;
  if (classNames === undefined) {
    let max = -1;
    for (let i = 0; i < n; i++) max = Math.max(max, labelValues[i]!);
    classNames = Array.from({ length: Math.max(1, max + 1) }, (_, i) => String(i));
  }
  let pixels: PixelArray;
  if (images.type === 'u8') {
    pixels = sharedUint8(images.data.length);
    pixels.set(images.data);
  } else {
    pixels = sharedFloat32(images.data.length);
    pixels.set(images.data);
    const per = rows * cols;
    for (let i = 0; i < pixels.length; i++) {
      if (!Number.isFinite(pixels[i])) {
        throw new DataError(`pixel ${i % per} of image ${Math.floor(i / per)} is ${pixels[i]}; pixels must be finite numbers`, { file: files.images, field: 'pixels', expected: 'finite numbers', actual: String(pixels[i]) });
      }
    }
  }
  checkLabels(labelValues, classNames.length, files.labels);
  return new InMemoryDataset({
    name: options.name ?? files.images,
    pixels,
    labels: labelValues,
    shape: [1, rows, cols],
    classNames,
  });
}

/** Reads an images file and a labels file (each gzip or raw) into an in-memory dataset. */
export function loadIdxDataset(images: string, labels: string, options: IdxDatasetOptions = {}): InMemoryDataset {
  return idxDataset(readIdx(images), readIdx(labels), { images, labels }, options);
}
