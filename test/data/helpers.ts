import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { existsSync } from 'node:fs';
import assert from 'node:assert/strict';
import { DataError, DEBIAN_FASHION_MNIST_DIR, encodeIdx, type IdxArray } from '../../src/data/index.js';

/** Tolerances, named once: `exact` for integer-valued or copied data, `close` for float32 rounding. */
export const TOL = { exact: 0, close: 1e-6 } as const;

/** A fresh temporary folder, removed by the returned cleanup. */
export function tempDir(prefix = 'parsimony-data-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function writeIdx(path: string, arr: IdxArray, gzip = false): string {
  const raw = encodeIdx(arr);
  writeFileSync(path, gzip ? gzipSync(raw) : raw);
  return path;
}

/** Asserts that `fn` throws a DataError whose message matches every pattern (and optional fields). */
export function assertDataError(fn: () => unknown, patterns: readonly (RegExp | string)[], fields: Partial<Pick<DataError, 'file' | 'field'>> = {}): DataError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  return checkDataError(caught, patterns, fields);
}

export async function assertDataErrorAsync(fn: () => Promise<unknown>, patterns: readonly (RegExp | string)[], fields: Partial<Pick<DataError, 'file' | 'field'>> = {}): Promise<DataError> {
  let caught: unknown;
  try {
    await fn();
  } catch (e) {
    caught = e;
  }
  return checkDataError(caught, patterns, fields);
}

function checkDataError(caught: unknown, patterns: readonly (RegExp | string)[], fields: Partial<Pick<DataError, 'file' | 'field'>>): DataError {
  assert.ok(caught instanceof DataError, `expected a DataError, got ${caught instanceof Error ? `${caught.name}: ${caught.message}` : String(caught)}`);
  for (const p of patterns) {
    if (typeof p === 'string') assert.ok(caught.message.includes(p), `message ${JSON.stringify(caught.message)} lacks ${JSON.stringify(p)}`);
    else assert.match(caught.message, p);
  }
  if (fields.file !== undefined) assert.equal(caught.file, fields.file);
  if (fields.field !== undefined) assert.equal(caught.field, fields.field);
  return caught;
}

/** Skip option for tests that need Debian's dataset-fashion-mnist (absent on CI). */
export const needsFullFashionMnist: { skip: string | false } = {
  skip: existsSync(DEBIAN_FASHION_MNIST_DIR) ? false : `${DEBIAN_FASHION_MNIST_DIR} not installed (Debian package dataset-fashion-mnist)`,
};

/** Copies a batch's views, which the loader reuses. */
export function copyBatch(b: { x: Float32Array; y: Int32Array; epoch: number; position: number }): { x: Float32Array; y: Int32Array; epoch: number; position: number } {
  return { x: b.x.slice(), y: b.y.slice(), epoch: b.epoch, position: b.position };
}
