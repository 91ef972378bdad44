/**
 * Finds, compiles and instantiates the kernel module. Two builds exist: `simd` (SIMD128) and
 * `relaxed` (adds relaxed-SIMD fused multiply-add); `auto` takes relaxed when the runtime validates it.
 */
import type { Kernels } from '../kernels.js';
import { KERNEL_NAMES } from '../kernels.js';

export type SimdVariant = 'simd' | 'relaxed';
export type VariantChoice = SimdVariant | 'auto';

export interface CompiledKernels {
  readonly module: WebAssembly.Module;
  readonly variant: SimdVariant;
}

const isNode = typeof process !== 'undefined' && typeof process.versions === 'object' && typeof process.versions.node === 'string';

function wasmUrl(variant: SimdVariant): URL {
  return new URL(`../../../build/parsimony-${variant}.wasm`, import.meta.url);
}

let relaxedFlagSet = false;
/** Node 20's V8 keeps relaxed SIMD behind a flag; it must be set before the module is compiled. */
async function enableRelaxedSimdInNode(): Promise<void> {
  if (!isNode || relaxedFlagSet) return;
  const v8 = await import('node:v8');
  v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
  relaxedFlagSet = true;
}

async function readBytes(variant: SimdVariant): Promise<Uint8Array<ArrayBuffer>> {
  const url = wasmUrl(variant);
  if (isNode) {
    const fs = await import('node:fs/promises');
    try {
      return new Uint8Array(await fs.readFile(url));
    } catch (e) {
      throw new Error(`cannot read the kernel module ${url.pathname}: run \`npm run build:wasm\` first (${(e as Error).message})`);
    }
  }
  const res = await fetch(url);
  if (!res.ok) throw new Error(`cannot fetch the kernel module ${url.href}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

const cache = new Map<SimdVariant, Promise<CompiledKernels | null>>();

async function compileVariant(variant: SimdVariant): Promise<CompiledKernels | null> {
  if (variant === 'relaxed') await enableRelaxedSimdInNode();
  const bytes = await readBytes(variant);
  if (!WebAssembly.validate(bytes)) return null;
  const module = await WebAssembly.compile(bytes);
  return { module, variant };
}

export async function compileKernels(choice: VariantChoice = 'auto'): Promise<CompiledKernels> {
  const order: SimdVariant[] = choice === 'auto' ? ['relaxed', 'simd'] : [choice];
  for (const v of order) {
    let p = cache.get(v);
    if (p === undefined) {
      p = compileVariant(v);
      cache.set(v, p);
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
      throw new Error(`kernel ${n} is not in the ${compiled.variant} kernel module (rebuild with \`npm run build:wasm\`)`);
    };
  }
  return table as unknown as Kernels;
}
