/**
 * Compiles and instantiates the kernel module. Two builds exist: `simd` (SIMD128) and `relaxed`
 * (adds relaxed-SIMD fused multiply-add); `auto` takes relaxed when the runtime validates it.
 * Where the bytes come from is the platform's business (platform.ts); Node's is the default.
 */
import type { Kernels } from '../kernels.js';
import { KERNEL_NAMES } from '../kernels.js';
import { nodePlatform } from './node-platform.js';
import type { SimdVariant, WasmPlatform } from './platform.js';

export type { SimdVariant } from './platform.js';
export type VariantChoice = SimdVariant | 'auto';

export interface CompiledKernels {
  readonly module: WebAssembly.Module;
  readonly variant: SimdVariant;
}

export interface CompileKernelsOptions {
  /** Default: Node's. */
  readonly platform?: WasmPlatform;
  /**
   * Whether the memory the module will be bound to is shared (default true). The builds import a
   * shared memory; false rewrites that import, for runtimes that cannot share memory (browser pages
   * that are not cross-origin isolated).
   */
  readonly sharedMemory?: boolean;
}

const WASM_MAGIC = [0x00, 0x61, 0x73, 0x6d];
const IMPORT_SECTION = 2;
const IMPORT_FUNC = 0;
const IMPORT_TABLE = 1;
const IMPORT_MEMORY = 2;
const IMPORT_GLOBAL = 3;
const IMPORT_TAG = 4;
const LIMITS_HAS_MAX = 0x01;
const LIMITS_SHARED = 0x02;

/** Reads an unsigned LEB128 at `at`; returns the value and the offset after it. */
function leb(bytes: Uint8Array, at: number): [number, number] {
  let value = 0;
  let shift = 0;
  for (;;) {
    if (at >= bytes.length) throw new Error('kernel module: truncated LEB128 number');
    const b = bytes[at++] as number;
    value += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return [value, at];
    shift += 7;
  }
}

/** Skips a limits record (flags, minimum, optional maximum) at `at`. */
function skipLimits(bytes: Uint8Array, at: number): number {
  const flags = bytes[at] as number;
  let p = leb(bytes, at + 1)[1];
  if ((flags & LIMITS_HAS_MAX) !== 0) p = leb(bytes, p)[1];
  return p;
}

/**
 * A copy of a module's bytes whose imported memories are not shared. Only limits flag bytes change,
 * so every size in the binary stays valid.
 */
export function withUnsharedMemory(bytes: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  if (bytes.length < 8 || WASM_MAGIC.some((b, i) => bytes[i] !== b)) throw new Error('kernel module: not a WebAssembly binary (bad magic)');
  const out = bytes.slice();
  let at = 8;
  while (at < out.length) {
    const id = out[at] as number;
    const [size, start] = leb(out, at + 1);
    at = start + size;
    if (id !== IMPORT_SECTION) continue;
    let [count, p] = leb(out, start);
    for (; count > 0; count--) {
      for (let name = 0; name < 2; name++) {
        const [len, q] = leb(out, p);
        p = q + len;
      }
      const kind = out[p++] as number;
      if (kind === IMPORT_FUNC) p = leb(out, p)[1];
      else if (kind === IMPORT_TABLE) p = skipLimits(out, p + 1);
      else if (kind === IMPORT_MEMORY) {
        out[p] = (out[p] as number) & ~LIMITS_SHARED;
        p = skipLimits(out, p);
      } else if (kind === IMPORT_GLOBAL) p += 2;
      else if (kind === IMPORT_TAG) p = leb(out, p + 1)[1];
      else throw new Error(`kernel module: import of unknown kind ${kind}`);
    }
  }
  return out;
}

const caches = new WeakMap<WasmPlatform, Map<string, Promise<CompiledKernels | null>>>();

async function compileVariant(platform: WasmPlatform, variant: SimdVariant, sharedMemory: boolean): Promise<CompiledKernels | null> {
  const module = await platform.compileKernels(variant, sharedMemory ? undefined : withUnsharedMemory);
  return module === null ? null : { module, variant };
}

export async function compileKernels(choice: VariantChoice = 'auto', options: CompileKernelsOptions = {}): Promise<CompiledKernels> {
  const platform = options.platform ?? nodePlatform;
  const sharedMemory = options.sharedMemory ?? true;
  let cache = caches.get(platform);
  if (cache === undefined) {
    cache = new Map();
    caches.set(platform, cache);
  }
  const order: SimdVariant[] = choice === 'auto' ? ['relaxed', 'simd'] : [choice];
  for (const v of order) {
    const key = `${v}${sharedMemory ? '' : '-unshared'}`;
    let p = cache.get(key);
    if (p === undefined) {
      p = compileVariant(platform, v, sharedMemory);
      cache.set(key, p);
    }
    const compiled = await p;
    if (compiled !== null) return compiled;
  }
  throw new Error(`this runtime cannot run the ${choice === 'auto' ? 'SIMD' : choice} kernel module (WebAssembly SIMD128 is required)`);
}

/** Kernel-table entries that the module does not export (a complete build has none). */
export function missingKernels(compiled: CompiledKernels): string[] {
  const exported = new Set(WebAssembly.Module.exports(compiled.module).map((e) => e.name));
  return KERNEL_NAMES.filter((n) => !exported.has(n));
}

/** An instance bound to `memory`. A kernel the module lacks throws, naming itself, when called. */
export function instantiateKernels(compiled: CompiledKernels, memory: WebAssembly.Memory): Kernels {
  const instance = new WebAssembly.Instance(compiled.module, { env: { memory } });
  const table: Record<string, unknown> = { ...(instance.exports as Record<string, unknown>) };
  for (const n of missingKernels(compiled)) {
    table[n] = () => {
      throw new Error(`kernel ${n} is not in the ${compiled.variant} kernel module, which is older than the code (in a clone, rebuild with \`npm run build:wasm\`; otherwise reinstall parsimony)`);
    };
  }
  return table as unknown as Kernels;
}
