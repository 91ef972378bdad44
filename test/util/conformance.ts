/**
 * What the kernel conformance suites share: buffers with sentinel guards in the harness memory, a runner
 * that calls a kernel on the reference twin and on every WASM build from the same inputs and compares all
 * they wrote, and central differences for the gradient checks of the reference twins.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Kernels } from '../../src/backend/kernels.js';
import { kernelHarness } from './kernel-harness.js';
import { TestRng } from './rng.js';
import { assertClose, close, exact, type Tolerance } from './tolerance.js';

export const h = await kernelHarness();

export interface KernelSet { readonly name: string; readonly k: Kernels }
/** The WASM builds this runtime runs, then the native builds this CPU runs (when the addon is built). */
export const variants: readonly KernelSet[] = [...h.wasm.map((w) => ({ name: w.variant, k: w.kernels })), ...h.native.map((n) => ({ name: n.name, k: n.kernels }))];
/** The reference twin, then the WASM and native builds. */
export const everyKernelSet: readonly KernelSet[] = [{ name: 'reference', k: h.reference }, ...variants];

/** What prefill writes around (and, for outputs, into) a buffer; a kernel never produces it from test inputs. */
export const SENTINEL = 12345.5;
const GUARD = 8;

/** n float32 (or int32) values placed `shift` floats past a 64-byte boundary, with GUARD sentinel cells each side. */
export interface Buf { readonly ptr: number; readonly n: number; readonly base: number; readonly int: boolean }

export function buf(n: number, shift = 0, int = false): Buf {
  const base = h.arena.alloc((n + 2 * GUARD + 4) * 4);
  return { ptr: base + (GUARD + shift) * 4, n, base, int };
}

/** Fills b and its guards with SENTINEL, then writes `data` into b. */
export function prefill(b: Buf, data?: ArrayLike<number>): void {
  h.mem.f32.fill(SENTINEL, b.base >>> 2, (b.base >>> 2) + b.n + 2 * GUARD + 4);
  if (data !== undefined) (b.int ? h.mem.i32 : h.mem.f32).set(data, b.ptr >>> 2);
}

export function read(b: Buf): Float32Array {
  return h.mem.f32.slice(b.ptr >>> 2, (b.ptr >>> 2) + b.n);
}

export function readInt(b: Buf): Int32Array {
  return h.mem.i32.slice(b.ptr >>> 2, (b.ptr >>> 2) + b.n);
}

export function assertGuards(b: Buf, label: string): void {
  const v = h.mem.f32;
  for (let i = b.base >>> 2; i < (b.base >>> 2) + b.n + 2 * GUARD + 4; i++) {
    if (i >= b.ptr >>> 2 && i < (b.ptr >>> 2) + b.n) continue;
    if (v[i] !== SENTINEL) assert.fail(`${label}: wrote outside its output, ${i - (b.ptr >>> 2)} floats from its start`);
  }
}

export function uniform(rng: TestRng, n: number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniform(lo, hi);
  return a;
}

/**
 * Runs `call` on the reference and on every WASM build from the same inputs, with outputs pre-filled
 * with a sentinel, and compares every buffer (inputs too: some are updated in place; int32 buffers
 * exactly) and the return value.
 */
export function conform(label: string, inputs: ReadonlyArray<readonly [Buf, ArrayLike<number>]>, outputs: readonly Buf[],
  call: (k: Kernels) => number | void, tol: (variant: string) => Tolerance, scale = 0): void {
  const run = (k: Kernels, name: string): { outs: Array<Float32Array | Int32Array>; ret: number | void } => {
    for (const b of outputs) prefill(b);
    for (const [b, data] of inputs) prefill(b, data);
    const ret = call(k);
    const all = [...outputs, ...inputs.map(([b]) => b)];
    for (const b of all) assertGuards(b, `${label} ${name}`);
    return { outs: all.map((b) => (b.int ? readInt(b) : read(b))), ret };
  };
  const expected = run(h.reference, 'reference');
  for (const { name, k } of variants) {
    const got = run(k, name);
    got.outs.forEach((o, i) => assertClose(o, expected.outs[i]!, o instanceof Int32Array ? exact : tol(name), `${label} ${name} buffer ${i}`, scale));
    if (typeof expected.ret === 'number') assertClose([got.ret as number], [expected.ret], tol(name), `${label} ${name} result`, scale);
  }
}

export const always = (t: Tolerance) => (): Tolerance => t;
/** Exact in the plain SIMD build; the relaxed and native builds may fuse a multiply-add. */
export const exactUnlessFused = (v: string): Tolerance => (v === 'simd' || v === 'reference' ? exact : close);

export const seed = fc.integer({ min: 0, max: 0x7fffffff });
/** How many floats past a 64-byte boundary a buffer starts. */
export const shift = fc.integer({ min: 0, max: 3 });

/** Sum of w[i] * y[i] in float64 over the finite y[i] (an output that no input moves, such as -Infinity, adds nothing). */
export function weightedSum(y: ArrayLike<number>, w: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) if (Number.isFinite(y[i])) s += w[i]! * y[i]!;
  return s;
}

/** (L(v + eps e_i) - L(v - eps e_i)) divided by the step as float32 represents it. */
export function centralDifference(v: Float32Array, i: number, eps: number, objective: (v: Float32Array) => number): number {
  const plus = v.slice(), minus = v.slice();
  plus[i] = v[i]! + eps;
  minus[i] = v[i]! - eps;
  return (objective(plus) - objective(minus)) / (plus[i]! - minus[i]!);
}

/**
 * Central differences of L(x) = weightedSum(forward(x), w) at every element of xv; where `skip.at` holds
 * (at a kink, say) the analytic value is copied instead.
 */
export function numericGradient(forward: (x: Float32Array) => ArrayLike<number>, xv: Float32Array, w: ArrayLike<number>, eps: number,
  skip?: { readonly at: (i: number) => boolean; readonly analytic: ArrayLike<number> }): Float64Array {
  const objective = (v: Float32Array): number => weightedSum(forward(v), w);
  return Float64Array.from(xv, (_, i) => (skip?.at(i) ? skip.analytic[i]! : centralDifference(xv, i, eps, objective)));
}
