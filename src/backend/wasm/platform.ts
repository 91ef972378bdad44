/**
 * What the kernel loader and the thread pool need from the runtime they run in: reading and
 * compiling a kernel build, starting a worker, counting cores. `node-platform.ts` implements it for
 * Node; `src/browser/platform.ts` for browsers.
 */
import '../../tensor/webassembly.js';

export type SimdVariant = 'simd' | 'relaxed';

/** What a pool worker reports: that it is ready, or an error (with the kernel that raised it). */
export interface WorkerMessage {
  readonly ready?: boolean;
  readonly error?: string;
  readonly kernel?: string;
}

export interface WorkerHandle {
  postMessage(msg: unknown): void;
  terminate(): unknown;
  /** Node: stop this worker from keeping the process alive. */
  unref?(): void;
}

export interface WasmPlatform {
  readonly name: string;
  /**
   * The kernel build `variant`, compiled; null when this runtime cannot run it (no SIMD, or no
   * relaxed SIMD). `patch`, when given, rewrites the module's bytes before they are compiled.
   */
  compileKernels(variant: SimdVariant, patch?: (bytes: Uint8Array<ArrayBuffer>) => Uint8Array<ArrayBuffer>): Promise<WebAssembly.Module | null>;
  /**
   * Starts a worker running `script`, which defines `run(message, post)`, then calls `run` with the
   * first message the worker receives and a function that posts back to `onMessage`.
   */
  spawnWorker(script: string, onMessage: (m: WorkerMessage) => void): Promise<WorkerHandle>;
  /** Threads worth starting when the caller does not say. */
  cores(): Promise<number>;
}
