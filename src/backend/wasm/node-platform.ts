/**
 * The kernel platform for Node: builds read from build/ next to the sources, relaxed SIMD enabled
 * through V8's flag, worker_threads.
 *
 * Node's built-in modules are reached through `process.getBuiltinModule` rather than imports, so
 * that browser bundles, which include this file as the backend's default, import no Node modules.
 */
import type { SimdVariant, WasmPlatform, WorkerHandle, WorkerMessage } from './platform.js';

type NodeProcess = { versions?: { node?: string }; getBuiltinModule?: (id: string) => unknown };

function nodeProcess(): NodeProcess | undefined {
  return (globalThis as { process?: NodeProcess }).process;
}

export function isNode(): boolean {
  return typeof nodeProcess()?.versions?.node === 'string';
}

/** A Node built-in module; `process.getBuiltinModule` exists from Node 20.16. */
async function builtin<T>(id: string): Promise<T> {
  const p = nodeProcess();
  if (p === undefined || !isNode()) throw new Error(`${id} is a Node module and this is not Node: in a browser, load Parsimony's browser entry (parsimony/browser) or pass a platform`);
  if (typeof p.getBuiltinModule === 'function') return p.getBuiltinModule(id) as T;
  return (await import(/* @vite-ignore */ id)) as T;
}

function wasmUrl(variant: SimdVariant): URL {
  // Not a template literal: bundlers would emit (or inline) both builds for code that browsers never run.
  return new URL('../../../build/parsimony-' + variant + '.wasm', import.meta.url);
}

let relaxedFlagSet = false;
/** Node 20's V8 keeps relaxed SIMD behind a flag; it must be set before the module is compiled. */
async function enableRelaxedSimd(): Promise<void> {
  if (relaxedFlagSet) return;
  const v8 = await builtin<typeof import('node:v8')>('node:v8');
  v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
  relaxedFlagSet = true;
}

async function readBytes(variant: SimdVariant): Promise<Uint8Array<ArrayBuffer>> {
  const url = wasmUrl(variant);
  const fs = await builtin<typeof import('node:fs/promises')>('node:fs/promises');
  try {
    return new Uint8Array(await fs.readFile(url));
  } catch (e) {
    throw new Error(`cannot read the kernel module ${url.pathname} (${(e as Error).message}): an installed parsimony package ships it, so reinstall the package; in a clone of the repository, run \`npm run build:wasm\``);
  }
}

/** Runs the pool's worker script in a worker_threads worker (CommonJS, evaluated from source). */
const BOOT = `
const { parentPort } = require('node:worker_threads');
parentPort.once('message', (m) => run(m, (x) => parentPort.postMessage(x)));
`;

export const nodePlatform: WasmPlatform = {
  name: 'node',
  async compileKernels(variant, patch) {
    if (variant === 'relaxed') await enableRelaxedSimd();
    const raw = await readBytes(variant);
    const bytes = patch === undefined ? raw : patch(raw);
    if (!WebAssembly.validate(bytes)) return null;
    return WebAssembly.compile(bytes);
  },
  async spawnWorker(script, onMessage) {
    const { Worker } = await builtin<typeof import('node:worker_threads')>('node:worker_threads');
    const w = new Worker(script + BOOT, { eval: true });
    w.on('message', (m: WorkerMessage) => onMessage(m));
    w.on('error', (e: Error) => onMessage({ error: e.stack ?? String(e) }));
    return w satisfies WorkerHandle;
  },
  async cores() {
    const os = await builtin<typeof import('node:os')>('node:os');
    return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  },
};
