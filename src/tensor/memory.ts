/**
 * Linear memory shared by the kernels, the worker threads and the tensors.
 *
 * One `WebAssembly.Memory` holds every tensor. It is split into chunks that arenas own; an arena
 * hands out 64-byte-aligned blocks by bumping a pointer and frees them all at once with `reset()`.
 * See docs/architecture.md, "Memory and lifetimes".
 */
import './webassembly.js';

const PAGE = 65536;
export const ALIGN = 64;
const DEFAULT_CHUNK = 32 * 1024 * 1024;
/** Pages reserved at the bottom of memory: address 0 stays unused so that 0 can mean "no buffer". */
const RESERVED_PAGES = 1;
const MAX_PAGES = 65536;

export class OutOfMemoryError extends Error {
  constructor(requested: number, used: number) {
    super(`out of memory: cannot allocate ${requested} bytes with ${used} bytes in use (the limit is 4 GiB of WebAssembly memory)`);
    this.name = 'OutOfMemoryError';
  }
}

interface Chunk {
  readonly start: number;
  readonly size: number;
}

export function alignUp(n: number, a: number = ALIGN): number {
  return Math.ceil(n / a) * a;
}

export class LinearMemory {
  readonly memory: WebAssembly.Memory;
  readonly shared: boolean;
  private top: number;
  private freeChunks: Chunk[] = [];
  private f32Cache: Float32Array | null = null;
  private i32Cache: Int32Array | null = null;
  private u8Cache: Uint8Array | null = null;
  private cachedBuffer: ArrayBufferLike | null = null;

  constructor(options: { shared?: boolean; initialPages?: number } = {}) {
    const shared = options.shared ?? typeof SharedArrayBuffer !== 'undefined';
    const initial = Math.max(options.initialPages ?? 256, RESERVED_PAGES + 1);
    this.memory = new WebAssembly.Memory({ initial, maximum: MAX_PAGES, shared } as WebAssembly.MemoryDescriptor);
    this.shared = shared;
    this.top = RESERVED_PAGES * PAGE;
  }

  /** Bytes handed out to chunks so far (the high-water mark). */
  get bytesReserved(): number {
    return this.top;
  }

  private refresh(): void {
    const buf = this.memory.buffer;
    if (buf !== this.cachedBuffer || this.f32Cache === null || this.f32Cache.byteLength !== buf.byteLength) {
      this.cachedBuffer = buf;
      this.f32Cache = new Float32Array(buf);
      this.i32Cache = new Int32Array(buf);
      this.u8Cache = new Uint8Array(buf);
    }
  }

  /** Whole-memory views; they are replaced whenever memory grows, so never keep them across allocations. */
  get f32(): Float32Array {
    this.refresh();
    return this.f32Cache as Float32Array;
  }
  get i32(): Int32Array {
    this.refresh();
    return this.i32Cache as Int32Array;
  }
  get u8(): Uint8Array {
    this.refresh();
    return this.u8Cache as Uint8Array;
  }

  /** A chunk of at least `bytes`, reused from released chunks when one fits. */
  takeChunk(bytes: number): Chunk {
    const want = alignUp(Math.max(bytes, DEFAULT_CHUNK), PAGE);
    let best = -1;
    for (let i = 0; i < this.freeChunks.length; i++) {
      const c = this.freeChunks[i] as Chunk;
      if (c.size >= want && (best < 0 || c.size < (this.freeChunks[best] as Chunk).size)) best = i;
    }
    if (best >= 0) return this.freeChunks.splice(best, 1)[0] as Chunk;
    const start = this.top;
    const end = start + want;
    if (end > MAX_PAGES * PAGE) throw new OutOfMemoryError(bytes, this.top);
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      const pages = Math.ceil((end - have) / PAGE);
      try {
        this.memory.grow(pages);
      } catch {
        throw new OutOfMemoryError(bytes, this.top);
      }
    }
    this.top = end;
    return { start, size: want };
  }

  giveBack(chunk: Chunk): void {
    this.freeChunks.push(chunk);
  }
}

/**
 * A bump allocator over chunks of a LinearMemory. `reset()` frees everything at once and bumps
 * `generation`, which is how tensors allocated here learn that they are disposed.
 */
export class Arena {
  readonly name: string;
  private readonly mem: LinearMemory;
  private chunks: Chunk[] = [];
  private current = 0;
  private offset = 0;
  private _generation = 0;
  private _bytesUsed = 0;
  private _peak = 0;

  constructor(mem: LinearMemory, name: string) {
    this.mem = mem;
    this.name = name;
  }

  get generation(): number {
    return this._generation;
  }
  get bytesUsed(): number {
    return this._bytesUsed;
  }
  get peakBytes(): number {
    return this._peak;
  }
  get bytesReserved(): number {
    return this.chunks.reduce((s, c) => s + c.size, 0);
  }

  alloc(bytes: number): number {
    const need = alignUp(Math.max(bytes, 1));
    while (this.current < this.chunks.length) {
      const c = this.chunks[this.current] as Chunk;
      if (this.offset + need <= c.size) {
        const ptr = c.start + this.offset;
        this.offset += need;
        this._bytesUsed += need;
        if (this._bytesUsed > this._peak) this._peak = this._bytesUsed;
        return ptr;
      }
      this.current++;
      this.offset = 0;
    }
    const c = this.mem.takeChunk(need);
    this.chunks.push(c);
    this.current = this.chunks.length - 1;
    this.offset = need;
    this._bytesUsed += need;
    if (this._bytesUsed > this._peak) this._peak = this._bytesUsed;
    return c.start;
  }

  /** Frees every block; tensors allocated before become disposed. */
  reset(): void {
    this.current = 0;
    this.offset = 0;
    this._bytesUsed = 0;
    this._generation++;
  }

  /** Returns the chunks to the memory for other arenas. */
  release(): void {
    for (const c of this.chunks) this.mem.giveBack(c);
    this.chunks = [];
    this.reset();
  }
}
