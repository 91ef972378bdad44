/**
 * Runs a kernel on the reference twin, on each WASM build and on each native build (when the addon is
 * built) over the same linear memory, so that conformance tests compare outputs written from identical inputs.
 */
import { Arena, LinearMemory } from '../../src/tensor/memory.js';
import type { Kernels } from '../../src/backend/kernels.js';
import { nativeStatus } from '../../src/backend/native/addon.js';
import { NativeKernels } from '../../src/backend/native/kernels.js';
import { createReferenceKernels } from '../../src/backend/reference/index.js';
import { compileKernels, instantiateKernels, type SimdVariant } from '../../src/backend/wasm/loader.js';
import { TestRng } from './rng.js';

export interface KernelHarness {
  readonly mem: LinearMemory;
  readonly arena: Arena;
  readonly reference: Kernels;
  /** The WASM builds this runtime can run: simd always, relaxed when validated. */
  readonly wasm: ReadonlyArray<{ readonly variant: SimdVariant; readonly kernels: Kernels }>;
  /**
   * The native builds this CPU runs (none when the addon is not built), each over the last WASM build
   * for the kernels it does not implement; named `native-<isa>`.
   */
  readonly native: ReadonlyArray<{ readonly name: string; readonly kernels: Kernels }>;
}

let harness: Promise<KernelHarness> | null = null;

export function kernelHarness(): Promise<KernelHarness> {
  harness ??= (async () => {
    const mem = new LinearMemory({ shared: true });
    const arena = new Arena(mem, 'test');
    const wasm: { variant: SimdVariant; kernels: Kernels }[] = [];
    for (const v of ['simd', 'relaxed'] as const) {
      try {
        const c = await compileKernels(v);
        wasm.push({ variant: v, kernels: instantiateKernels(c, mem.memory) });
      } catch (e) {
        if (v === 'simd') throw e;
      }
    }
    const status = nativeStatus();
    const native = !status.ok ? [] : status.addon.isas().map((isa) => ({
      name: `native-${isa}`, kernels: new NativeKernels(status.addon, mem, isa).overlay(wasm[wasm.length - 1]!.kernels),
    }));
    return { mem, arena, reference: createReferenceKernels(mem), wasm, native };
  })();
  return harness;
}

/** Allocates n float32 values (filled from `data`, or uniform in [lo, hi) from `rng`, or zeros). */
export function allocF32(h: KernelHarness, n: number, fill?: ArrayLike<number> | { rng: TestRng; lo?: number; hi?: number }): number {
  const ptr = h.arena.alloc(n * 4);
  const view = h.mem.f32.subarray(ptr >>> 2, (ptr >>> 2) + n);
  if (fill === undefined) view.fill(0);
  else if ('rng' in fill) for (let i = 0; i < n; i++) view[i] = fill.rng.uniform(fill.lo ?? -1, fill.hi ?? 1);
  else view.set(fill);
  return ptr;
}

export function allocI32(h: KernelHarness, values: ArrayLike<number>): number {
  const ptr = h.arena.alloc(values.length * 4);
  h.mem.i32.set(values, ptr >>> 2);
  return ptr;
}

/** A copy of n float32 values at ptr. */
export function readF32(h: KernelHarness, ptr: number, n: number): Float32Array {
  return h.mem.f32.slice(ptr >>> 2, (ptr >>> 2) + n);
}

export function readI32(h: KernelHarness, ptr: number, n: number): Int32Array {
  return h.mem.i32.slice(ptr >>> 2, (ptr >>> 2) + n);
}

export function writeF32(h: KernelHarness, ptr: number, data: ArrayLike<number>): void {
  h.mem.f32.set(data, ptr >>> 2);
}
