/**
 * The native kernel addon (native/, built at install by node-gyp into build/Release/parsimony.node):
 * found and loaded once per process; where it cannot be loaded, the reason says why.
 *
 * Node's built-in modules are reached through `process.getBuiltinModule`, so that browser bundles,
 * which include this file through the backend, import no Node module.
 */

/** The addon's builds: AVX-512, AVX2 + FMA, NEON, and the portable one. */
export type NativeIsa = 'avx512' | 'avx2' | 'neon' | 'portable';

/** One binding of the kernels to a linear memory and an argument block. */
export interface NativeContext {
  /** Runs kernel `index` (of `kernels`) once per argument list [0, tasks); null when this build declines the call. */
  run(index: number, tasks: number): number | null;
  /** Points the kernels at the memory again (after it grew). */
  bind(memory: Float32Array): void;
  readonly isa: NativeIsa;
  /** The kernels this build implements, by name, in index order. */
  readonly kernels: readonly string[];
}

export interface NativeAddon {
  readonly NativeContext: new (memory: Float32Array, args: Float64Array, isa: NativeIsa) => NativeContext;
  /** The builds this CPU runs, best first. */
  isas(): NativeIsa[];
  /** Doubles per argument list and argument lists per call in the argument block. */
  readonly maxArgs: number;
  readonly maxTasks: number;
}

export type NativeStatus = { readonly ok: true; readonly addon: NativeAddon } | { readonly ok: false; readonly reason: string };

type NodeProcess = { versions?: { node?: string }; getBuiltinModule?: (id: string) => unknown; env?: Record<string, string | undefined> };

let status: NativeStatus | null = null;

function load(): NativeStatus {
  const proc = (globalThis as { process?: NodeProcess }).process;
  if (typeof proc?.versions?.node !== 'string') return { ok: false, reason: 'native kernels run in Node only' };
  if (typeof proc.getBuiltinModule !== 'function') return { ok: false, reason: 'this Node has no process.getBuiltinModule (Node >= 20.16 loads the native kernels)' };
  const { createRequire } = proc.getBuiltinModule('node:module') as typeof import('node:module');
  const { fileURLToPath } = proc.getBuiltinModule('node:url') as typeof import('node:url');
  const { existsSync } = proc.getBuiltinModule('node:fs') as typeof import('node:fs');
  // Not a template literal: bundlers must not try to resolve it.
  const file = fileURLToPath(new URL('../../../build/Release/' + 'parsimony.node', import.meta.url));
  if (!existsSync(file)) return { ok: false, reason: `the native kernels are not built (${file} is missing; \`node scripts/build-native.mjs\` builds them)` };
  try {
    return { ok: true, addon: createRequire(import.meta.url)(file) as NativeAddon };
  } catch (e) {
    return { ok: false, reason: `the native kernels at ${file} do not load: ${(e as Error).message.split('\n')[0]}` };
  }
}

/** Whether the native kernels load here, and the addon when they do. */
export function nativeStatus(): NativeStatus {
  status ??= load();
  return status;
}
