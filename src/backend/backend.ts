/**
 * A backend is a kernel table bound to one linear memory, plus the threads that can run it.
 * `reference` runs the plain-TypeScript twins on one thread; `wasm` runs the SIMD kernels on
 * `threads` threads (the caller and threads-1 workers).
 */
import { Arena, LinearMemory } from '../tensor/memory.js';
import type { KernelName, Kernels } from './kernels.js';
import { createReferenceKernels } from './reference/index.js';
import { compileKernels, instantiateKernels, type SimdVariant, type VariantChoice } from './wasm/loader.js';
import { nodePlatform } from './wasm/node-platform.js';
import type { WasmPlatform } from './wasm/platform.js';
import { ThreadPool } from './wasm/pool.js';

export type BackendKind = 'wasm' | 'reference';

export interface BackendOptions {
  readonly kind?: BackendKind;
  /** Threads for the wasm backend, the calling thread included; default: available cores. */
  readonly threads?: number;
  /** WASM build: `auto` picks relaxed SIMD when the runtime has it. */
  readonly simd?: VariantChoice;
  /** Where the wasm backend gets its kernel builds and workers; default Node's (browsers: src/browser). */
  readonly platform?: WasmPlatform;
}

export function availableCores(): number {
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
  if (nav?.hardwareConcurrency !== undefined && nav.hardwareConcurrency > 0) return nav.hardwareConcurrency;
  const os = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  const env = os?.env?.PARSIMONY_THREADS;
  if (env !== undefined && Number(env) > 0) return Number(env);
  return 1;
}

export class Backend {
  readonly kind: BackendKind;
  readonly variant: SimdVariant | 'reference';
  readonly mem: LinearMemory;
  readonly kernels: Kernels;
  readonly threads: number;
  private readonly pool: ThreadPool | null;
  private readonly scratchArena: Arena;
  private scratchPtrs: number[] = [];
  private scratchBytes = 0;

  private constructor(kind: BackendKind, variant: SimdVariant | 'reference', mem: LinearMemory, kernels: Kernels, pool: ThreadPool | null) {
    this.kind = kind;
    this.variant = variant;
    this.mem = mem;
    this.kernels = kernels;
    this.pool = pool;
    this.threads = pool === null ? 1 : pool.workers + 1;
    this.scratchArena = new Arena(mem, 'kernel-scratch', 'reduce the batch size or the input size');
  }

  static async create(options: BackendOptions = {}): Promise<Backend> {
    const kind = options.kind ?? 'wasm';
    if (kind === 'reference') {
      const mem = new LinearMemory({ shared: typeof SharedArrayBuffer !== 'undefined' });
      return new Backend('reference', 'reference', mem, createReferenceKernels(mem), null);
    }
    const platform = options.platform ?? nodePlatform;
    const requested = options.threads ?? (await platform.cores());
    if (!Number.isInteger(requested) || requested < 1) throw new Error(`threads must be a whole number >= 1, got ${requested}`);
    const canShare = typeof SharedArrayBuffer !== 'undefined' && (typeof crossOriginIsolated === 'undefined' || crossOriginIsolated);
    const threads = canShare ? requested : 1;
    const compiled = await compileKernels(options.simd ?? 'auto', { platform, sharedMemory: canShare });
    const mem = new LinearMemory({ shared: canShare });
    const kernels = instantiateKernels(compiled, mem.memory);
    const pool = threads > 1 ? await ThreadPool.create(compiled.module, mem.memory, threads - 1, platform) : null;
    return new Backend('wasm', compiled.variant, mem, kernels, pool);
  }

  get name(): string {
    return this.kind === 'reference' ? 'reference' : `wasm-${this.variant}`;
  }

  /** One scratch block per thread, each at least `bytes` long; valid until the next call asks for more. */
  scratch(bytes: number): readonly number[] {
    if (bytes > this.scratchBytes || this.scratchPtrs.length === 0) {
      this.scratchArena.reset();
      this.scratchBytes = Math.max(bytes, this.scratchBytes * 2, 1 << 20);
      this.scratchPtrs = [];
      for (let t = 0; t < this.threads; t++) this.scratchPtrs.push(this.scratchArena.alloc(this.scratchBytes));
    }
    return this.scratchPtrs;
  }

  /**
   * Runs `name` once per argument list, in parallel; list 0 runs on the calling thread.
   * Returns the sum of the calls' numeric results (0 for kernels that return nothing).
   */
  parallel<K extends KernelName>(name: K, argLists: ReadonlyArray<Parameters<Kernels[K]>>): number {
    const f = this.kernels[name] as (...a: number[]) => unknown;
    const asNumber = (r: unknown): number => (typeof r === 'number' ? r : 0);
    if (this.pool === null || argLists.length <= 1) {
      let total = 0;
      for (const a of argLists) total += asNumber(f(...(a as number[])));
      return total;
    }
    const results = this.pool.run(name, argLists as ReadonlyArray<ArrayLike<number>>, (a) => asNumber(f(...Array.from(a))));
    return results.reduce((s, r) => s + r, 0);
  }

  close(): void {
    this.pool?.close();
  }
}

/** Splits [0, total) into at most `parts` contiguous ranges of near-equal size, none empty. */
export function splitRange(total: number, parts: number): Array<[number, number]> {
  const p = Math.max(1, Math.min(parts, total));
  const out: Array<[number, number]> = [];
  for (let i = 0; i < p; i++) {
    const a = Math.floor((total * i) / p);
    const b = Math.floor((total * (i + 1)) / p);
    if (b > a) out.push([a, b]);
  }
  return out;
}
