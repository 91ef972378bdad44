/**
 * Worker threads that run kernels on the shared linear memory, dispatched synchronously:
 * the caller posts one argument list per worker through a shared control block, runs its own
 * share, then waits (spin, then Atomics.wait) until every worker has finished.
 *
 * Workers are started by the platform (platform.ts): worker_threads in Node, Web Workers in
 * cross-origin isolated pages.
 */
import { KERNEL_NAMES, type KernelName } from '../kernels.js';
import { nodePlatform } from './node-platform.js';
import type { WasmPlatform, WorkerHandle } from './platform.js';

const MAX_ARGS = 16;
/** Int32 slots per worker: sequence number, kernel index, argument count, status. */
const SLOT_INTS = 16;
const SEQ = 0;
const FN = 1;
const ARGC = 2;
const STATUS = 3;
/** Int32 slot (before the workers' slots) counting finished tasks. */
const DONE = 0;
const HEADER_INTS = 16;
const SPIN_ITERATIONS = 20000;

/**
 * The worker's program, as source, so it needs no separate file or loader in Node or browsers; the
 * platform adds the lines that call `run` with the first message.
 */
const WORKER_SOURCE = `
"use strict";
const SLOT_INTS = ${SLOT_INTS}, SEQ = ${SEQ}, FN = ${FN}, ARGC = ${ARGC}, STATUS = ${STATUS}, DONE = ${DONE};
const HEADER_INTS = ${HEADER_INTS}, MAX_ARGS = ${MAX_ARGS}, SPIN = ${SPIN_ITERATIONS};
function run(msg, post) {
  const { module, memory, control, index, names } = msg;
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  const fns = names.map((n) => instance.exports[n]);
  const ctl = new Int32Array(control);
  const args = new Float64Array(control, (HEADER_INTS + msg.workers * SLOT_INTS) * 4 + index * MAX_ARGS * 8, MAX_ARGS);
  const base = HEADER_INTS + index * SLOT_INTS;
  let seen = 0;
  post({ ready: true });
  for (;;) {
    let spins = 0;
    while (Atomics.load(ctl, base + SEQ) === seen) {
      if (++spins > SPIN) { Atomics.wait(ctl, base + SEQ, seen); spins = 0; }
    }
    seen = Atomics.load(ctl, base + SEQ);
    const fn = ctl[base + FN];
    if (fn < 0) { Atomics.add(ctl, DONE, 1); Atomics.notify(ctl, DONE); return; }
    try {
      const argc = ctl[base + ARGC];
      const r = fns[fn](...Array.prototype.slice.call(args, 0, argc));
      args[0] = typeof r === 'number' ? r : 0;
      ctl[base + STATUS] = 0;
    } catch (e) {
      ctl[base + STATUS] = 1;
      post({ error: String(e && e.stack || e), kernel: names[fn] });
    }
    Atomics.add(ctl, DONE, 1);
    Atomics.notify(ctl, DONE);
  }
}
`;

/** Whether this thread may block in Atomics.wait (a browser page's main thread may not). */
function threadCanWait(): boolean {
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
    return true;
  } catch {
    return false;
  }
}

export class ThreadPool {
  readonly workers: number;
  private readonly handles: WorkerHandle[];
  private readonly ctl: Int32Array;
  private readonly args: Float64Array[];
  private readonly seq: number[];
  private doneTarget = 0;
  private lastError: string | null = null;
  private closed = false;
  private readonly fnIndex = new Map<string, number>();
  private readonly canWait = threadCanWait();

  private constructor(workers: number, handles: WorkerHandle[], control: SharedArrayBuffer) {
    this.workers = workers;
    this.handles = handles;
    this.ctl = new Int32Array(control);
    this.args = [];
    for (let i = 0; i < workers; i++) {
      this.args.push(new Float64Array(control, (HEADER_INTS + workers * SLOT_INTS) * 4 + i * MAX_ARGS * 8, MAX_ARGS));
    }
    this.seq = new Array<number>(workers).fill(0);
    KERNEL_NAMES.forEach((n, i) => this.fnIndex.set(n, i));
  }

  /** Starts `workers` threads, each with its own instance of `module` over `memory`. */
  static async create(module: WebAssembly.Module, memory: WebAssembly.Memory, workers: number, platform: WasmPlatform = nodePlatform): Promise<ThreadPool> {
    const bytes = (HEADER_INTS + workers * SLOT_INTS) * 4 + workers * MAX_ARGS * 8;
    const control = new SharedArrayBuffer(bytes);
    const handles: WorkerHandle[] = [];
    let pool: ThreadPool | null = null;
    const ready: Promise<void>[] = [];
    for (let i = 0; i < workers; i++) {
      let resolveReady: () => void = () => {};
      let rejectReady: (e: Error) => void = () => {};
      ready.push(new Promise<void>((res, rej) => { resolveReady = res; rejectReady = rej; }));
      const h = await platform.spawnWorker(WORKER_SOURCE, (m) => {
        if (m.ready === true) resolveReady();
        else if (m.error !== undefined) {
          const text = `worker ${i + 1}${m.kernel !== undefined ? ` (kernel ${m.kernel})` : ''}: ${m.error}`;
          if (pool !== null) pool.lastError = text;
          rejectReady(new Error(text));
        }
      });
      h.postMessage({ module, memory, control, index: i, workers, names: KERNEL_NAMES });
      handles.push(h);
    }
    // Workers keep the event loop alive until they are ready; afterwards they must not keep the process running.
    await Promise.all(ready);
    for (const h of handles) h.unref?.();
    pool = new ThreadPool(workers, handles, control);
    return pool;
  }

  /**
   * Runs kernel `name` once per argument list: list 0 on the calling thread through `local`,
   * list i on worker i-1. Returns when all have finished, with each call's numeric result (0 for void kernels).
   */
  run(name: KernelName, argLists: ReadonlyArray<ArrayLike<number>>, local: (args: ArrayLike<number>) => number): number[] {
    if (this.closed) throw new Error('thread pool is closed');
    if (argLists.length - 1 > this.workers) throw new Error(`${name}: ${argLists.length} tasks for ${this.workers + 1} threads`);
    const fn = this.fnIndex.get(name);
    if (fn === undefined) throw new Error(`unknown kernel ${name}`);
    const ctl = this.ctl;
    const tasks = argLists.length - 1;
    for (let t = 0; t < tasks; t++) {
      const a = argLists[t + 1] as ArrayLike<number>;
      if (a.length > MAX_ARGS) throw new Error(`${name}: ${a.length} arguments, at most ${MAX_ARGS}`);
      const base = HEADER_INTS + t * SLOT_INTS;
      const dst = this.args[t] as Float64Array;
      for (let i = 0; i < a.length; i++) dst[i] = a[i] as number;
      ctl[base + FN] = fn;
      ctl[base + ARGC] = a.length;
      this.seq[t] = (this.seq[t] as number) + 1;
      Atomics.store(ctl, base + SEQ, this.seq[t] as number);
      Atomics.notify(ctl, base + SEQ);
    }
    this.doneTarget += tasks;
    const results: number[] = [argLists.length > 0 ? local(argLists[0] as ArrayLike<number>) : 0];
    this.waitDone(name);
    for (let t = 0; t < tasks; t++) results.push((this.args[t] as Float64Array)[0] as number);
    return results;
  }

  private waitDone(name: string): void {
    const ctl = this.ctl;
    let spins = 0;
    for (;;) {
      const done = Atomics.load(ctl, DONE);
      if (done >= this.doneTarget) break;
      if (++spins > SPIN_ITERATIONS && this.canWait) {
        Atomics.wait(ctl, DONE, done, 50);
        spins = 0;
      }
    }
    for (let t = 0; t < this.workers; t++) {
      if (ctl[HEADER_INTS + t * SLOT_INTS + STATUS] !== 0) {
        ctl[HEADER_INTS + t * SLOT_INTS + STATUS] = 0;
        throw new Error(`kernel ${name} failed in worker ${t + 1}${this.lastError !== null ? `: ${this.lastError}` : ''}`);
      }
    }
  }

  /** Stops the workers; the pool cannot be used afterwards. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (let t = 0; t < this.workers; t++) {
      const base = HEADER_INTS + t * SLOT_INTS;
      this.ctl[base + FN] = -1;
      this.seq[t] = (this.seq[t] as number) + 1;
      Atomics.store(this.ctl, base + SEQ, this.seq[t] as number);
      Atomics.notify(this.ctl, base + SEQ);
    }
    for (const h of this.handles) void h.terminate();
  }
}
