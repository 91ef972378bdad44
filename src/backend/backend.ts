/**
 * A backend is a kernel table bound to one linear memory, plus the threads that can run it.
 * `reference` runs the plain-TypeScript twins on one thread; `wasm` runs the SIMD kernels on
 * `threads` threads (the caller and threads-1 workers); `native` (Node, when the addon is built)
 * runs the addon's kernels on its own threads over the same memory, and the WebAssembly kernels for
 * the rest.
 */
import { Arena, LinearMemory } from '../tensor/memory.js';
import type { KernelName, Kernels } from './kernels.js';
import { nativeStatus, type NativeIsa } from './native/addon.js';
import { NativeKernels } from './native/kernels.js';
import { createReferenceKernels } from './reference/index.js';
import { compileKernels, instantiateKernels, type SimdVariant, type VariantChoice } from './wasm/loader.js';
import { isNode, nodePlatform } from './wasm/node-platform.js';
import type { WasmPlatform } from './wasm/platform.js';
import { ThreadPool } from './wasm/pool.js';

export type BackendKind = 'native' | 'wasm' | 'reference';

export interface BackendOptions {
  /** Default: `native` where the addon loads (Node, built at install), else `wasm` (with `fallbackNote` saying why). */
  readonly backend?: BackendKind;
  /** Native build: `auto` picks the best this CPU runs. */
  readonly isa?: NativeIsa | 'auto';
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
  /** The native kernels over the WebAssembly ones, or null. */
  readonly native: NativeKernels | null;
  /** Why the native kernels are not running when they were the default choice; null otherwise. */
  readonly fallbackNote: string | null;
  private readonly pool: ThreadPool | null;
  /** The table beneath the native kernels: what declined native calls run. */
  private readonly wasmKernels: Kernels;
  private readonly scratchArena: Arena;
  private scratchPtrs: number[] = [];
  private scratchBytes = 0;

  private constructor(kind: BackendKind, variant: SimdVariant | 'reference', mem: LinearMemory, kernels: Kernels, pool: ThreadPool | null,
    native: NativeKernels | null = null, fallbackNote: string | null = null) {
    this.kind = kind;
    this.variant = variant;
    this.mem = mem;
    this.native = native;
    this.fallbackNote = fallbackNote;
    this.wasmKernels = kernels;
    this.kernels = native === null ? kernels : native.overlay(kernels);
    this.pool = pool;
    this.threads = pool === null ? 1 : pool.workers + 1;
    this.scratchArena = new Arena(mem, 'kernel-scratch', 'reduce the batch size or the input size');
  }

  static async create(options: BackendOptions = {}): Promise<Backend> {
    let kind = options.backend;
    let fallbackNote: string | null = null;
    const native = nativeStatus();
    if (kind === undefined) {
      kind = native.ok ? 'native' : 'wasm';
      if (!native.ok && options.platform === undefined && isNode()) fallbackNote = `running on WebAssembly: ${native.reason}`;
    }
    if (kind === 'native' && !native.ok) throw new Error(`backend 'native' is not available: ${native.reason}`);
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
    if (kind === 'native' && native.ok) {
      const isa = options.isa ?? 'auto';
      const nk = new NativeKernels(native.addon, mem, isa === 'auto' ? (native.addon.isas()[0] as NativeIsa) : isa);
      return new Backend('native', compiled.variant, mem, kernels, pool, nk);
    }
    return new Backend('wasm', compiled.variant, mem, kernels, pool, null, fallbackNote);
  }

  /** `reference`, `wasm-<build>`, or `native-<isa>` (its fallback kernels are `wasm-<build>`). */
  get name(): string {
    if (this.kind === 'reference') return 'reference';
    return this.native !== null ? `native-${this.native.isa}` : `wasm-${this.variant}`;
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
    if (this.native !== null) {
      const r = this.native.run(name, argLists as ReadonlyArray<ArrayLike<number>>);
      if (r !== null) return r;
    }
    const f = this.wasmKernels[name] as (...a: number[]) => unknown;
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
