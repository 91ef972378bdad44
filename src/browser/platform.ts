/**
 * The kernel platform for browsers: builds fetched and compiled while they download
 * (`WebAssembly.compileStreaming`), relaxed SIMD when the browser validates it, Web Workers started
 * from a Blob URL. Threads need shared memory, which browsers grant to cross-origin isolated pages
 * only (COOP `same-origin` and COEP `require-corp` headers); the backend falls back to one thread.
 */
import type { SimdVariant, WasmPlatform, WorkerMessage } from '../backend/wasm/platform.js';

export interface BrowserPlatformOptions {
  /** Where the kernel builds are served; default: beside the bundle, as the bundler emitted them. */
  readonly kernelUrls?: Partial<Readonly<Record<SimdVariant, string | URL>>>;
}

/** What this browser offers the runtime. */
export interface BrowserFeatures {
  readonly simd: boolean;
  readonly relaxedSimd: boolean;
  /** Whether the page may share memory with workers (and so run kernels on several threads). */
  readonly crossOriginIsolated: boolean;
  readonly cores: number;
}

/** `(func (result v128) v128.const 0)`: validates where SIMD128 is on. */
const SIMD_PROBE = probeModule([0xfd, 0x0c, ...new Array<number>(16).fill(0)]);
/** Three `v128.const 0` and `f32x4.relaxed_madd` (opcode 0xfd 0x105): validates where relaxed SIMD is on. */
const RELAXED_PROBE = probeModule([...Array.from({ length: 3 }, () => [0xfd, 0x0c, ...new Array<number>(16).fill(0)]).flat(), 0xfd, 0x85, 0x02]);

/** A module of one function `() -> v128` whose body is `code` (no locals). */
function probeModule(code: readonly number[]): Uint8Array<ArrayBuffer> {
  const body = [0x00, ...code, 0x0b];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b,
    0x03, 0x02, 0x01, 0x00,
    0x0a, body.length + 2, 0x01, body.length, ...body,
  ]);
}

export function browserFeatures(): BrowserFeatures {
  const g = globalThis as { crossOriginIsolated?: boolean; navigator?: { hardwareConcurrency?: number } };
  return {
    simd: WebAssembly.validate(SIMD_PROBE),
    relaxedSimd: WebAssembly.validate(RELAXED_PROBE),
    crossOriginIsolated: g.crossOriginIsolated === true && typeof SharedArrayBuffer !== 'undefined',
    cores: Math.max(1, g.navigator?.hardwareConcurrency ?? 1),
  };
}

function defaultKernelUrl(variant: SimdVariant): URL {
  // Literal URLs, so that bundlers see the files and emit them next to the bundle.
  return variant === 'relaxed'
    ? new URL('../../build/parsimony-relaxed.wasm', import.meta.url)
    : new URL('../../build/parsimony-simd.wasm', import.meta.url);
}

async function fetchOk(url: string | URL): Promise<Response> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`cannot fetch the kernel module ${String(url)}: HTTP ${res.status}`);
  return res;
}

/** Calls the pool's `run` with the worker's first message. */
const BOOT = `
self.onmessage = (e) => { self.onmessage = null; run(e.data, (x) => self.postMessage(x)); };
`;

export function browserPlatform(options: BrowserPlatformOptions = {}): WasmPlatform {
  const urlOf = (v: SimdVariant): string | URL => options.kernelUrls?.[v] ?? defaultKernelUrl(v);
  return {
    name: 'browser',
    async compileKernels(variant, patch) {
      const features = browserFeatures();
      if (!features.simd || (variant === 'relaxed' && !features.relaxedSimd)) return null;
      const url = urlOf(variant);
      if (patch === undefined) {
        try {
          return await WebAssembly.compileStreaming(fetchOk(url));
        } catch (e) {
          // A server that does not send `application/wasm` makes streaming compilation refuse the response.
          if (!(e instanceof TypeError)) throw e;
        }
      }
      // Bytes that must be rewritten (an unshared memory) are compiled once they have all arrived.
      const bytes = new Uint8Array(await (await fetchOk(url)).arrayBuffer());
      return WebAssembly.compile(patch === undefined ? bytes : patch(bytes));
    },
    async spawnWorker(script, onMessage) {
      const url = URL.createObjectURL(new Blob([script, BOOT], { type: 'text/javascript' }));
      const w = new Worker(url);
      w.onmessage = (e: MessageEvent<WorkerMessage>) => {
        URL.revokeObjectURL(url);
        onMessage(e.data);
      };
      w.onerror = (e: ErrorEvent) => {
        URL.revokeObjectURL(url);
        onMessage({ error: e.message });
      };
      return w;
    },
    async cores() {
      return browserFeatures().cores;
    },
  };
}
