/**
 * The safetensors container (https://github.com/huggingface/safetensors): an 8-byte little-endian
 * header length N, N bytes of UTF-8 JSON `{name: {dtype, shape, data_offsets: [begin, end]},
 * "__metadata__": {string: string}}` padded with spaces so that the data starts at a multiple of 8,
 * then the raw little-endian tensor data, offsets relative to its start.
 *
 * Bytes in, bytes out: no Node imports, so the browser can read and write model files too.
 * Parsing checks every header number against the byte length before anything is allocated from it.
 *
 * Writing records two CRC-32s in the metadata (other readers ignore them): `data_crc32` of the data
 * section and `metadata_crc32` of the other metadata entries (sorted, as JSON pairs); reading
 * verifies them when present, so flipped bits in a file are refused rather than computed with.
 */
import { crc32, crc32Hex } from './crc32.js';
import { parseJson } from './json.js';
import { z } from 'zod';
import { describeError, ModelFileError } from './errors.js';

export type TensorDType = 'F32' | 'I32';
export const SUPPORTED_DTYPES: readonly TensorDType[] = ['F32', 'I32'];
const BYTES_PER_ELEMENT: Readonly<Record<TensorDType, number>> = { F32: 4, I32: 4 };

/** The largest header we read, whatever the length field says. */
export const MAX_HEADER_BYTES = 16 * 1024 * 1024;
const METADATA_KEY = '__metadata__';

export interface TensorRecord {
  readonly name: string;
  readonly dtype: TensorDType;
  readonly shape: readonly number[];
  readonly data: Float32Array | Int32Array;
}

/** A tensor as the header describes it; `begin`/`end` are absolute byte offsets in the file. */
export interface TensorEntry {
  readonly name: string;
  readonly dtype: TensorDType;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

export const DATA_CRC_KEY = 'data_crc32';
export const METADATA_CRC_KEY = 'metadata_crc32';

export interface SafetensorsFile {
  readonly file: string;
  readonly bytes: Uint8Array;
  /** The metadata, without the checksum entries. */
  readonly metadata: ReadonlyMap<string, string>;
  /** Whether the file recorded both checksums (and they matched: a mismatch is refused). */
  readonly checksummed: boolean;
  /** In data order. */
  readonly tensors: ReadonlyMap<string, TensorEntry>;
}

const hostIsLittleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeText(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

/** The element bytes of `data` in little-endian order. */
function littleEndianBytes(data: Float32Array | Int32Array): Uint8Array {
  const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (hostIsLittleEndian) return view;
  const out = new Uint8Array(view.length);
  for (let i = 0; i < view.length; i += 4) {
    out[i] = view[i + 3]!;
    out[i + 1] = view[i + 2]!;
    out[i + 2] = view[i + 1]!;
    out[i + 3] = view[i]!;
  }
  return out;
}

/** The CRC-32 of metadata entries (checksums excluded): sorted, as JSON pairs. */
export function metadataCrc(entries: Iterable<readonly [string, string]>): string {
  const pairs = [...entries].filter(([k]) => k !== DATA_CRC_KEY && k !== METADATA_CRC_KEY).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return crc32Hex(crc32(new TextEncoder().encode(JSON.stringify(pairs))));
}

export interface EncodeOptions {
  /** Record the two checksums in the metadata (default true). */
  readonly checksums?: boolean;
}

/** Encodes tensors (in the given order) and string metadata as one safetensors file, with its checksums. */
export function encodeSafetensors(tensors: readonly TensorRecord[], metadata: Readonly<Record<string, string>>, options: EncodeOptions = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (options.checksums === false) {
    if (Object.keys(metadata).length > 0) header[METADATA_KEY] = { ...metadata };
  } else {
    let dataCrc = 0;
    for (const t of tensors) dataCrc = crc32(littleEndianBytes(t.data), dataCrc);
    header[METADATA_KEY] = { ...metadata, [DATA_CRC_KEY]: crc32Hex(dataCrc), [METADATA_CRC_KEY]: metadataCrc(Object.entries(metadata)) };
  }
  let offset = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (t.name === METADATA_KEY || t.name === '') throw new RangeError(`safetensors: '${t.name}' cannot name a tensor`);
    if (seen.has(t.name)) throw new RangeError(`safetensors: tensor ${t.name} is listed twice`);
    seen.add(t.name);
    const n = elementCount(t.shape);
    if (t.data.length !== n) throw new RangeError(`safetensors: tensor ${t.name} has ${t.data.length} values, its shape ${shapeText(t.shape)} needs ${n}`);
    if ((t.dtype === 'F32') !== (t.data instanceof Float32Array)) throw new TypeError(`safetensors: tensor ${t.name} is ${t.dtype} but holds a ${t.data.constructor.name}`);
    const bytes = n * BYTES_PER_ELEMENT[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLength = Math.ceil((8 + json.length) / 8) * 8 - 8;
  const out = new Uint8Array(8 + headerLength + offset);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, headerLength, true);
  dv.setUint32(4, 0, true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let at = 8 + headerLength;
  for (const t of tensors) {
    out.set(littleEndianBytes(t.data), at);
    at += t.data.byteLength;
  }
  return out;
}

const wholeNumber = z.number({ error: 'should be a number' }).refine(Number.isSafeInteger, { error: 'should be a whole number' }).refine((v) => v >= 0, { error: 'should be >= 0' });
const entrySchema = z.strictObject(
  {
    dtype: z.string({ error: 'should be a string' }),
    shape: z.array(wholeNumber, { error: 'should be a list of whole numbers' }),
    data_offsets: z.tuple([wholeNumber, wholeNumber], { error: 'should be [begin, end]' }),
  },
  { error: (iss) => (iss.code === 'unrecognized_keys' ? `has unknown fields ${iss.keys.join(', ')}` : 'should be an object {dtype, shape, data_offsets}') },
);
const metadataValue = z.string({ error: 'should be a string' });

/** The first zod issue as `path: message`. */
function firstIssue(error: z.ZodError): { path: string; message: string } {
  const issue = error.issues[0];
  if (issue === undefined) return { path: '', message: 'is invalid' };
  const path = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
  return { path, message: issue.message };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export interface ParseOptions {
  /** The name used in error messages (default `model.safetensors`). */
  readonly file?: string;
  readonly maxHeaderBytes?: number;
}

/** Validates the container (length field, header JSON, dtypes, shapes, offsets) without copying tensor data. */
export function parseSafetensors(bytes: Uint8Array, options: ParseOptions = {}): SafetensorsFile {
  const file = options.file ?? 'model.safetensors';
  const cap = options.maxHeaderBytes ?? MAX_HEADER_BYTES;
  const fail = (message: string, details: { tensor?: string; field?: string; cause?: unknown } = {}): never => {
    throw new ModelFileError(file, message, details);
  };
  if (bytes.length < 8) fail(`the file has ${bytes.length} bytes; a safetensors file starts with an 8-byte header length`, { field: 'header_length' });
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const low = dv.getUint32(0, true);
  const high = dv.getUint32(4, true);
  const headerLength = high * 2 ** 32 + low;
  if (high !== 0 || headerLength > cap) fail(`the header length field says ${headerLength} bytes, more than the ${cap}-byte limit`, { field: 'header_length' });
  if (headerLength > bytes.length - 8) fail(`the header length field says ${headerLength} bytes, but only ${bytes.length - 8} bytes follow it`, { field: 'header_length' });
  if (headerLength < 2) fail(`the header length field says ${headerLength} bytes, too short for a JSON object`, { field: 'header_length' });

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLength));
  } catch (e) {
    return fail('the header is not valid UTF-8', { field: 'header', cause: e });
  }
  if (!text.startsWith('{')) fail(`the header should be a JSON object starting with '{', it starts with ${JSON.stringify(text.slice(0, 8))}`, { field: 'header' });
  let header: unknown;
  try {
    header = parseJson(text);
  } catch (e) {
    return fail(`the header is not valid JSON (${describeError(e)})`, { field: 'header', cause: e });
  }
  if (!isPlainObject(header)) return fail('the header should be a JSON object', { field: 'header' });

  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;
  const metadata = new Map<string, string>();
  const entries: TensorEntry[] = [];
  for (const [name, value] of Object.entries(header)) {
    if (name === METADATA_KEY) {
      if (!isPlainObject(value)) fail(`${METADATA_KEY} should be an object of strings`, { field: METADATA_KEY });
      for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
        const r = metadataValue.safeParse(v);
        if (!r.success) fail(`${METADATA_KEY}.${key} ${firstIssue(r.error).message}`, { field: `${METADATA_KEY}.${key}` });
        metadata.set(key, v as string);
      }
      continue;
    }
    if (name === '') fail('a tensor has an empty name', { field: 'header' });
    const r = entrySchema.safeParse(value);
    if (!r.success) {
      const { path, message } = firstIssue(r.error);
      fail(`tensor ${name}: ${path === '' ? 'its header entry' : path.slice(1)} ${message}`, { tensor: name, field: path === '' ? 'header' : path.slice(1) });
    }
    const { dtype, shape, data_offsets: [begin, end] } = r.data as z.infer<typeof entrySchema>;
    if (!(SUPPORTED_DTYPES as readonly string[]).includes(dtype)) {
      fail(`tensor ${name}: dtype ${dtype} is not supported (supported: ${SUPPORTED_DTYPES.join(', ')})`, { tensor: name, field: 'dtype' });
    }
    if (begin > end) fail(`tensor ${name}: data_offsets [${begin}, ${end}] end before they begin`, { tensor: name, field: 'data_offsets' });
    if (end > dataLength) fail(`tensor ${name}: data_offsets [${begin}, ${end}] reach past the ${dataLength} bytes of data`, { tensor: name, field: 'data_offsets' });
    const has = end - begin;
    const needs = elementCount(shape) * BYTES_PER_ELEMENT[dtype as TensorDType];
    if (has !== needs) {
      fail(`tensor ${name} has ${has} bytes, its header says ${needs} (shape ${shapeText(shape)} ${dtype})`, { tensor: name, field: 'data_offsets' });
    }
    entries.push({ name, dtype: dtype as TensorDType, shape, begin: dataStart + begin, end: dataStart + end });
  }

  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = dataStart;
  let previous: TensorEntry | null = null;
  for (const t of entries) {
    if (t.begin < cursor) {
      fail(`tensor ${t.name}: data_offsets [${t.begin - dataStart}, ${t.end - dataStart}] overlap tensor ${previous?.name ?? '?'}`, { tensor: t.name, field: 'data_offsets' });
    }
    if (t.begin > cursor) {
      fail(`tensor ${t.name}: data_offsets begin at ${t.begin - dataStart}, leaving bytes ${cursor - dataStart}..${t.begin - dataStart} of the data unused`, { tensor: t.name, field: 'data_offsets' });
    }
    cursor = t.end;
    previous = t;
  }
  if (cursor !== bytes.length) {
    fail(`the tensors cover ${cursor - dataStart} bytes of data, the file has ${dataLength} after the header`, { field: 'data_offsets' });
  }
  const recorded = [DATA_CRC_KEY, METADATA_CRC_KEY].map((k) => metadata.get(k));
  for (const [i, v] of recorded.entries()) {
    const key = i === 0 ? DATA_CRC_KEY : METADATA_CRC_KEY;
    if (v !== undefined && !/^[0-9a-f]{8}$/.test(v)) fail(`${METADATA_KEY}.${key} ${JSON.stringify(v)} should be 8 hex digits`, { field: `${METADATA_KEY}.${key}` });
    metadata.delete(key);
  }
  const [dataWant, metaWant] = recorded;
  if (dataWant !== undefined) {
    const got = crc32Hex(crc32(bytes.subarray(dataStart)));
    if (got !== dataWant) fail(`the data section is corrupt: its CRC-32 is ${got}, the header recorded ${dataWant} when the file was written`, { field: `${METADATA_KEY}.${DATA_CRC_KEY}` });
  }
  if (metaWant !== undefined) {
    const got = metadataCrc(metadata);
    if (got !== metaWant) fail(`the metadata is corrupt: its CRC-32 is ${got}, the header recorded ${metaWant} when the file was written`, { field: `${METADATA_KEY}.${METADATA_CRC_KEY}` });
  }
  const checksummed = dataWant !== undefined && metaWant !== undefined;
  return { file, bytes, metadata, checksummed, tensors: new Map(entries.map((t) => [t.name, t])) };
}

/** A copy of one tensor's values. */
export function readTensor(f: SafetensorsFile, t: TensorEntry): Float32Array | Int32Array {
  const n = (t.end - t.begin) / BYTES_PER_ELEMENT[t.dtype];
  const out = t.dtype === 'F32' ? new Float32Array(n) : new Int32Array(n);
  const raw = new Uint8Array(out.buffer);
  raw.set(f.bytes.subarray(t.begin, t.end));
  if (!hostIsLittleEndian) raw.set(littleEndianBytes(out));
  return out;
}

/** Index of the first NaN or infinity, or -1. */
export function firstNonFinite(values: Float32Array): number {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return i;
  return -1;
}
