import { Worker } from 'node:worker_threads';
import type * as WorkerThreads from 'node:worker_threads';
import { DataError } from './errors.js';
import {
  assembleBatch,
  epochEnd,
  fillPermutation,
  hashSeed,
  mix32,
  uniformInt,
  xoshiroNext,
  xoshiroSeed,
  type BatchSource,
} from './kernel.js';

/**
 * Batch prefetching on a worker thread, for a training loop that runs synchronously on the main thread.
 *
 * The worker fills a ring of batch slots in SharedArrayBuffers; the main thread takes them in order,
 * blocking in Atomics.wait when the next one is not ready. All signalling goes through shared memory
 * because the main thread's event loop does not run while it blocks, so worker messages or 'error'
 * events would never be seen.
 */

/** Indices into the shared control array. */
const CTRL = {
  job: 0,
  status: 1,
  workerBell: 2,
  mainBell: 3,
  errorLength: 4,
  progress: 5,
  started: 6,
  slotBase: 8,
  slotStride: 8,
  slotState: 0,
  slotJob: 1,
  slotSeq: 2,
  slotEpoch: 3,
  slotPosition: 4,
  slotCount: 5,
} as const;

const SLOT_FREE = 0;
const SLOT_READY = 1;
const STATUS_RUNNING = 0;
const STATUS_FAILED = 1;
const STATUS_EXITED = 2;
const ERROR_BYTES = 16384;

type Ctrl = typeof CTRL;

interface Slot {
  readonly x: Float32Array;
  readonly y: Int32Array;
}

interface WorkerData {
  readonly source: BatchSource;
  readonly batchSize: number;
  readonly dropLast: boolean;
  readonly control: Int32Array;
  readonly errorBytes: Uint8Array;
  readonly slots: readonly Slot[];
  readonly ctrl: Ctrl;
  readonly codes: { readonly free: number; readonly ready: number; readonly running: number; readonly failed: number; readonly exited: number };
}

interface Job {
  readonly jobId: number;
  readonly seed: number;
  readonly epoch: number;
  readonly position: number;
}

interface Kernel {
  readonly fillPermutation: typeof fillPermutation;
  readonly epochEnd: typeof epochEnd;
  readonly assembleBatch: typeof assembleBatch;
}

/**
 * Records a worker failure in shared memory and wakes the consumer; the first failure wins. Runs inside the
 * worker from its source text, like prefetchWorkerMain, and has no nested functions so that it works even
 * where esbuild's __name helper would be missing.
 */
function reportWorkerFailure(d: WorkerData, e: unknown, status: number): void {
  if (Atomics.load(d.control, d.ctrl.status) !== d.codes.running) return;
  const text = e instanceof Error ? (e.stack ?? `${e.name}: ${e.message}`) : String(e);
  const bytes = new TextEncoder().encode(text).subarray(0, d.errorBytes.length);
  d.errorBytes.set(bytes);
  Atomics.store(d.control, d.ctrl.errorLength, bytes.length);
  Atomics.store(d.control, d.ctrl.status, status);
  Atomics.add(d.control, d.ctrl.workerBell, 1);
  Atomics.notify(d.control, d.ctrl.workerBell);
}

type WaitAsync = (a: Int32Array, index: number, value: number) => { async: boolean; value: Promise<string> | string };

/**
 * The worker's entry point. It runs from its source text inside the worker, so it may use only its
 * parameters and JavaScript globals.
 */
function prefetchWorkerMain(wt: typeof WorkerThreads, kernel: Kernel, report: typeof reportWorkerFailure): void {
  const d = wt.workerData as WorkerData;
  const ctrl = d.control;
  const K = d.ctrl;
  const src = d.source;
  const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;
  const perm = new Int32Array(src.length);
  let permKey = '';

  const ring = (index: number): void => {
    Atomics.add(ctrl, index, 1);
    Atomics.notify(ctrl, index);
  };
  const fail = (e: unknown, status: number): void => report(d, e, status);
  process.on('uncaughtException', (e) => fail(e, d.codes.failed));
  process.on('exit', (code) => fail(`prefetch worker exited (code ${code})`, d.codes.exited));
  Atomics.store(ctrl, K.started, 1);
  ring(K.workerBell);

  const run = async (job: Job): Promise<void> => {
    const end = kernel.epochEnd(src.length, d.batchSize, d.dropLast);
    let epoch = job.epoch;
    let position = job.position;
    for (let seq = 0; ; seq++) {
      if (Atomics.load(ctrl, K.job) !== job.jobId) return;
      if (position >= end) {
        epoch += 1;
        position = 0;
      }
      const key = `${job.seed}/${epoch}`;
      if (key !== permKey) {
        kernel.fillPermutation(perm, job.seed, epoch, src.shuffle);
        permKey = key;
      }
      const slot = seq % d.slots.length;
      const base = K.slotBase + slot * K.slotStride;
      while (Atomics.load(ctrl, base + K.slotState) !== d.codes.free) {
        const bell = Atomics.load(ctrl, K.mainBell);
        if (Atomics.load(ctrl, K.job) !== job.jobId) return;
        if (Atomics.load(ctrl, base + K.slotState) === d.codes.free) break;
        const w = waitAsync(ctrl, K.mainBell, bell);
        if (w.async) await w.value;
      }
      if (Atomics.load(ctrl, K.job) !== job.jobId) return;
      const count = Math.min(d.batchSize, src.length - position);
      const { x, y } = d.slots[slot]!;
      kernel.assembleBatch(src, perm, job.seed, epoch, position, count, x, y);
      Atomics.store(ctrl, base + K.slotJob, job.jobId);
      Atomics.store(ctrl, base + K.slotSeq, seq);
      Atomics.store(ctrl, base + K.slotEpoch, epoch);
      Atomics.store(ctrl, base + K.slotPosition, position);
      Atomics.store(ctrl, base + K.slotCount, count);
      Atomics.store(ctrl, base + K.slotState, d.codes.ready);
      Atomics.add(ctrl, K.progress, 1);
      ring(K.workerBell);
      position += count;
    }
  };

  wt.parentPort!.on('message', (job: Job) => {
    run(job).catch((e: unknown) => fail(e, d.codes.failed));
  });
}

let workerSource: string | undefined;

/**
 * The worker program: the kernel functions and the entry point from their own source text, so TS run
 * through tsx and JS compiled by tsc both work without a loader or a copied .mjs file.
 */
export function prefetchWorkerSource(): string {
  if (workerSource !== undefined) return workerSource;
  const kernel = [mix32, hashSeed, xoshiroSeed, xoshiroNext, uniformInt, fillPermutation, epochEnd, assembleBatch];
  workerSource = [
    "'use strict';",
    // esbuild (tsx) with keepNames wraps nested functions in __name(); outside its module that helper is absent
    'var __name = (fn) => fn;',
    ...kernel.map((f) => f.toString()),
    // process.getBuiltinModule (Node >= 20.16) also works where the eval'd code runs as ESM without require
    "const wt = typeof process.getBuiltinModule === 'function' ? process.getBuiltinModule('node:worker_threads') : require('node:worker_threads');",
    reportWorkerFailure.toString(),
    `try { (${prefetchWorkerMain.toString()})(wt, { fillPermutation, epochEnd, assembleBatch }, reportWorkerFailure); }`,
    `catch (e) { reportWorkerFailure(wt.workerData, e, ${STATUS_FAILED}); }`,
  ].join('\n');
  return workerSource;
}

export interface PrefetcherOptions {
  readonly source: BatchSource;
  readonly batchSize: number;
  readonly dropLast: boolean;
  /** Batches assembled ahead of the consumer. */
  readonly slots: number;
  /** How long the consumer waits for a worker that makes no progress before it throws. */
  readonly stallTimeoutMs: number;
  /** Names the data in errors. */
  readonly name: string;
}

export interface PrefetchedBatch {
  readonly x: Float32Array;
  readonly y: Int32Array;
  readonly count: number;
  readonly epoch: number;
  readonly position: number;
}

/** Main-thread side of the prefetch worker: a stream of batches from (seed, epoch, position) onwards. */
export class Prefetcher {
  private readonly worker: Worker;
  private readonly control: Int32Array;
  private readonly errorBytes: Uint8Array;
  private readonly slots: Slot[];
  private readonly itemSize: number;
  private readonly stallTimeoutMs: number;
  private readonly name: string;
  private readonly end: number;
  private jobId = 0;
  private seq = 0;
  private held = -1;
  private closed = false;
  private next: { seed: number; epoch: number; position: number } | null = null;

  constructor(options: PrefetcherOptions) {
    const { source, batchSize } = options;
    if (!(source.pixels.buffer instanceof SharedArrayBuffer) || !(source.labels.buffer instanceof SharedArrayBuffer)) {
      throw new Error('Prefetcher: pixels and labels must be on a SharedArrayBuffer');
    }
    if (!Number.isInteger(options.slots) || options.slots < 1) {
      throw new DataError(`prefetch must be a positive integer, got ${options.slots}`, { field: 'prefetch', expected: '>= 1', actual: String(options.slots) });
    }
    this.itemSize = source.channels * source.height * source.width;
    this.stallTimeoutMs = options.stallTimeoutMs;
    this.name = options.name;
    this.end = epochEnd(source.length, batchSize, options.dropLast);
    this.control = new Int32Array(new SharedArrayBuffer(4 * (CTRL.slotBase + CTRL.slotStride * options.slots)));
    this.errorBytes = new Uint8Array(new SharedArrayBuffer(ERROR_BYTES));
    this.slots = Array.from({ length: options.slots }, () => ({
      x: new Float32Array(new SharedArrayBuffer(4 * batchSize * this.itemSize)),
      y: new Int32Array(new SharedArrayBuffer(4 * batchSize)),
    }));
    const workerData: WorkerData = {
      source,
      batchSize,
      dropLast: options.dropLast,
      control: this.control,
      errorBytes: this.errorBytes,
      slots: this.slots,
      ctrl: CTRL,
      codes: { free: SLOT_FREE, ready: SLOT_READY, running: STATUS_RUNNING, failed: STATUS_FAILED, exited: STATUS_EXITED },
    };
    // execArgv: [] keeps flags such as --input-type=module or a TS loader away from the plain-JS worker
    this.worker = new Worker(prefetchWorkerSource(), { eval: true, workerData, execArgv: [], stdout: false, stderr: false });
    // the worker is a helper: it must never keep the process alive
    this.worker.unref();
    // failures are read from shared memory in take(); this listener only keeps 'error' from being unhandled
    this.worker.on('error', () => undefined);
  }

  /** True when the next batch of the stream is the one at (seed, epoch, position). */
  isAt(seed: number, epoch: number, position: number): boolean {
    const n = this.next;
    if (n === null) return false;
    let { epoch: e, position: p } = n;
    if (p >= this.end) {
      e += 1;
      p = 0;
    }
    return n.seed === seed && e === epoch && p === position;
  }

  /** Abandons the current stream and starts one at (seed, epoch, position). */
  restart(seed: number, epoch: number, position: number): void {
    this.checkOpen();
    this.release();
    this.jobId = (this.jobId + 1) | 0;
    this.seq = 0;
    Atomics.store(this.control, CTRL.job, this.jobId);
    for (let s = 0; s < this.slots.length; s++) Atomics.store(this.control, this.slotIndex(s, CTRL.slotState), SLOT_FREE);
    this.ringMain();
    this.next = { seed, epoch, position };
    const job: Job = { jobId: this.jobId, seed, epoch, position };
    this.worker.postMessage(job);
  }

  /** The next batch, blocking until the worker has it. Views stay valid until the next take or release. */
  take(): PrefetchedBatch {
    this.checkOpen();
    if (this.next === null) throw new Error('Prefetcher.take before restart');
    this.release();
    const c = this.control;
    const slot = this.seq % this.slots.length;
    const state = this.slotIndex(slot, CTRL.slotState);
    let progress = Atomics.load(c, CTRL.progress);
    let lastProgressAt = Date.now();
    for (;;) {
      const bell = Atomics.load(c, CTRL.workerBell);
      if (Atomics.load(c, state) === SLOT_READY) {
        if (Atomics.load(c, this.slotIndex(slot, CTRL.slotJob)) === this.jobId && Atomics.load(c, this.slotIndex(slot, CTRL.slotSeq)) === this.seq) break;
        // a batch of an abandoned stream, finished after the restart
        Atomics.store(c, state, SLOT_FREE);
        this.ringMain();
        continue;
      }
      if (Atomics.load(c, CTRL.status) !== STATUS_RUNNING) throw this.workerError();
      Atomics.wait(c, CTRL.workerBell, bell, 200);
      const now = Date.now();
      const p = Atomics.load(c, CTRL.progress);
      if (p !== progress) {
        progress = p;
        lastProgressAt = now;
      } else if (now - lastProgressAt > this.stallTimeoutMs) {
        const what = Atomics.load(c, CTRL.started) === 0 ? 'did not start' : 'produced no batch';
        throw new DataError(`prefetch worker ${what} within ${this.stallTimeoutMs} ms`, {
          file: this.name,
          field: 'prefetch',
          expected: `a batch within stallTimeoutMs = ${this.stallTimeoutMs}`,
        });
      }
    }
    const count = Atomics.load(c, this.slotIndex(slot, CTRL.slotCount));
    const epoch = Atomics.load(c, this.slotIndex(slot, CTRL.slotEpoch));
    const position = Atomics.load(c, this.slotIndex(slot, CTRL.slotPosition));
    this.held = slot;
    this.seq += 1;
    this.next = { seed: this.next.seed, epoch, position: position + count };
    const { x, y } = this.slots[slot]!;
    return { x: x.subarray(0, count * this.itemSize), y: y.subarray(0, count), count, epoch, position };
  }

  /** Hands the slot of the last taken batch back to the worker. */
  release(): void {
    if (this.held < 0) return;
    Atomics.store(this.control, this.slotIndex(this.held, CTRL.slotState), SLOT_FREE);
    this.held = -1;
    this.ringMain();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.jobId = (this.jobId + 1) | 0;
    Atomics.store(this.control, CTRL.job, this.jobId);
    this.ringMain();
    void this.worker.terminate().catch(() => undefined);
  }

  private slotIndex(slot: number, field: number): number {
    return CTRL.slotBase + slot * CTRL.slotStride + field;
  }

  private ringMain(): void {
    Atomics.add(this.control, CTRL.mainBell, 1);
    Atomics.notify(this.control, CTRL.mainBell);
  }

  private checkOpen(): void {
    if (this.closed) throw new Error(`${this.name}: the DataLoader was closed`);
  }

  private workerError(): DataError {
    const n = Atomics.load(this.control, CTRL.errorLength);
    // TextDecoder rejects views on a SharedArrayBuffer
    const text = new TextDecoder().decode(this.errorBytes.slice(0, n));
    const firstLine = text.split('\n')[0] ?? text;
    const cause = new Error(firstLine);
    cause.stack = text;
    return new DataError(`prefetch worker failed: ${firstLine}`, { file: this.name, field: 'prefetch', cause });
  }
}
