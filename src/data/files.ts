/**
 * Reading files a user names: only regular files are opened (a FIFO, a device or a folder is refused
 * without blocking), their size is known before anything is allocated, and gzip data is inflated no
 * further than the caller allows.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { DataError, describeError } from './errors.js';

function kindOf(s: Stats): string {
  if (s.isDirectory()) return 'a folder';
  if (s.isFIFO()) return 'a FIFO (named pipe)';
  if (s.isCharacterDevice()) return 'a character device';
  if (s.isBlockDevice()) return 'a block device';
  if (s.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** Opens `file` for reading if it is a regular file (following symlinks); O_NONBLOCK keeps a FIFO from blocking the open. */
export function openRegular(file: string): { fd: number; size: number } {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EISDIR') throw new DataError('is a folder, expected a regular file', { file, field: 'file', cause: e });
    throw new DataError(code === 'ENOENT' ? 'no such file' : `cannot read file (${describeError(e)})`, { file, field: 'file', cause: e });
  }
  const s = fstatSync(fd);
  if (!s.isFile()) {
    closeSync(fd);
    throw new DataError(`is ${kindOf(s)}, expected a regular file`, { file, field: 'file', expected: 'a regular file', actual: kindOf(s) });
  }
  return { fd, size: s.size };
}

/** Bytes `fd` yields from `position` into `out`, stopping at end of file. */
function readInto(fd: number, out: Uint8Array, position: number): number {
  let got = 0;
  while (got < out.length) {
    const n = readSync(fd, out, got, out.length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

export interface ReadOptions {
  /** Refuse files larger than this many bytes; `what` says what the file was expected to be. */
  readonly maxBytes?: number;
  readonly what?: string;
}

function size(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : bytes >= 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(1)} MiB` : `${bytes} bytes`;
}

/** The whole of a regular file, refusing other kinds of file and files above `maxBytes`. */
export function readRegularFile(file: string, options: ReadOptions = {}): Uint8Array {
  const { fd, size: bytes } = openRegular(file);
  try {
    const max = options.maxBytes ?? Number.MAX_SAFE_INTEGER;
    if (bytes > max) throw new DataError(`has ${size(bytes)}, more than the ${size(max)} ${options.what ?? 'a file of this kind'} may have`, { file, field: 'size', expected: `<= ${max} bytes`, actual: `${bytes} bytes` });
    const out = new Uint8Array(bytes);
    const got = readInto(fd, out, 0);
    if (got !== bytes) throw new DataError(`file shrank while reading: expected ${bytes} bytes, read ${got}`, { file, field: 'size' });
    return out;
  } finally {
    closeSync(fd);
  }
}

/** A regular file's text (UTF-8). */
export function readRegularText(file: string, options: ReadOptions = {}): string {
  return new TextDecoder().decode(readRegularFile(file, options));
}

/** True when the bytes start with the gzip magic 1f 8b. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/**
 * The first `count` inflated bytes of gzip data (fewer when it inflates to less), inflating only a
 * prefix of the input: never more than about 1 KiB of input per 1 MiB of output.
 */
export function gunzipHead(bytes: Uint8Array, count: number, file: string): Uint8Array {
  for (let take = 1024; ; take *= 4) {
    const prefix = bytes.subarray(0, Math.min(take, bytes.length));
    let out: Uint8Array;
    try {
      out = gunzipSync(prefix, { finishFlush: 2 /* Z_SYNC_FLUSH: a cut stream yields what it has */, maxOutputLength: Math.max(count, 1032 * prefix.length + 64) });
    } catch (e) {
      throw new DataError(`gzip data is corrupt (${describeError(e)})`, { file, field: 'gzip', cause: e });
    }
    if (out.length >= count || prefix.length === bytes.length) return out.subarray(0, Math.min(count, out.length));
  }
}

/**
 * Inflates gzip data that should give exactly `expected` bytes (what a header promised): inflation
 * stops one byte past the promise, so the memory held is what the header justifies.
 */
export function gunzipExpected(bytes: Uint8Array, expected: number, file: string, promise: string): Uint8Array {
  try {
    const out = gunzipSync(bytes, { maxOutputLength: expected + 1 });
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
      throw new DataError(`gzip data inflates to more than the ${expected} bytes ${promise}`, { file, field: 'gzip', expected: `${expected} bytes`, actual: `more than ${expected} bytes` });
    }
    throw new DataError(`gzip data is corrupt or truncated (${describeError(e)})`, { file, field: 'gzip', cause: e });
  }
}
