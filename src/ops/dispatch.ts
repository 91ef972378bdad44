/** Splitting kernel calls across the backend's threads. */
import { splitRange } from '../backend/backend.js';
import type { KernelName, Kernels } from '../backend/kernels.js';
import { engine } from '../autograd/engine.js';
import { shapeString, type Tensor } from '../tensor/tensor.js';

/** Below this many elements an elementwise kernel runs on one thread: waking a worker costs more. */
const PARALLEL_MIN_ELEMENTS = 1 << 16;

/** Runs an elementwise kernel over [0, n), split in contiguous element ranges across threads. */
export function elementwise<K extends KernelName>(name: K, n: number, args: (i0: number, i1: number) => Parameters<Kernels[K]>): void {
  const b = engine().backend;
  const parts = n >= PARALLEL_MIN_ELEMENTS ? b.threads : 1;
  b.parallel(name, splitRange(n, parts).map(([i0, i1]) => args(i0, i1)));
}

/** Runs `name` over index ranges of `total` items, one range per thread. */
export function overRanges<K extends KernelName>(name: K, total: number, args: (r0: number, r1: number, t: number) => Parameters<Kernels[K]>, parts?: number): void {
  const b = engine().backend;
  b.parallel(name, splitRange(total, parts ?? b.threads).map(([r0, r1], t) => args(r0, r1, t)));
}

export function expectRank(op: string, what: string, t: Tensor, rank: number): void {
  t.check(op);
  if (t.rank !== rank) throw new RangeError(`${op}: ${what} ${t.describe()} should have rank ${rank}`);
}

export function expectFloat(op: string, what: string, t: Tensor): void {
  t.check(op);
  if (t.dtype !== 'float32') throw new TypeError(`${op}: ${what} ${t.describe()} should be float32`);
}

export function expectSameShape(op: string, a: Tensor, b: Tensor): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new RangeError(`${op}: shapes ${shapeString(a.shape)} and ${shapeString(b.shape)} differ`);
  }
}

/** A pair from a number or a pair. */
export function pair(v: number | readonly [number, number], what: string, op: string): [number, number] {
  const p: [number, number] = typeof v === 'number' ? [v, v] : [v[0], v[1]];
  if (!Number.isInteger(p[0]) || !Number.isInteger(p[1]) || p[0] < 0 || p[1] < 0) throw new RangeError(`${op}: ${what} ${String(v)} should be whole numbers >= 0`);
  return p;
}
