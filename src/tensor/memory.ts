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

/** What an arena holds, for the out-of-memory line. */
export interface ArenaUse {
  readonly name: string;
  readonly bytes: number;
}

const MIB = 1024 * 1024;
function sizeText(bytes: number): string {
  return bytes >= 1024 * MIB ? `${(bytes / (1024 * MIB)).toFixed(2)} GiB` : `${(bytes / MIB).toFixed(1)} MiB`;
}

/** The 4 GiB WebAssembly memory cannot hold an allocation: one line with what was needed, what is free, who holds the rest and what to reduce. */
export class OutOfMemoryError extends Error {
  readonly requested: number;
  readonly free: number;
  constructor(requested: number, free: number, owner: string, holders: readonly ArenaUse[], reduce: string) {
    const held = holders.filter((h) => h.bytes > 0).map((h) => `${h.name} ${sizeText(h.bytes)}`).join(', ');
    super(`out of WebAssembly memory: ${owner} needs ${sizeText(requested)} more, ${sizeText(free)} of the 4 GiB are free (held: ${held || 'nothing'}); ${reduce}`);
    this.name = 'OutOfMemoryError';
    this.requested = requested;
    this.free = free;
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
  /** The arenas holding chunks, for the out-of-memory line. */
  readonly arenas = new Set<Arena>();

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

  /** A chunk of at least `bytes`, reused from released chunks when one fits; `owner` names the arena in the out-of-memory line. */
  takeChunk(bytes: number, owner?: Arena): Chunk {
    let want = alignUp(Math.max(bytes, DEFAULT_CHUNK), PAGE);
    let best = -1;
    for (let i = 0; i < this.freeChunks.length; i++) {
      const c = this.freeChunks[i] as Chunk;
      if (c.size >= want && (best < 0 || c.size < (this.freeChunks[best] as Chunk).size)) best = i;
    }
    if (best >= 0) return this.freeChunks.splice(best, 1)[0] as Chunk;
    const start = this.top;
    // Near the limit a chunk of exactly the request may still fit.
    if (start + want > MAX_PAGES * PAGE) want = alignUp(bytes, PAGE);
    const end = start + want;
    if (end > MAX_PAGES * PAGE) throw this.outOfMemory(bytes, owner);
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      const pages = Math.ceil((end - have) / PAGE);
      try {
        this.memory.grow(pages);
      } catch {
        throw this.outOfMemory(bytes, owner);
      }
    }
    this.top = end;
    return { start, size: want };
  }

  private outOfMemory(bytes: number, owner: Arena | undefined): OutOfMemoryError {
    const free = MAX_PAGES * PAGE - this.top + this.freeChunks.reduce((s, c) => s + c.size, 0);
    const holders = [...this.arenas].map((a) => ({ name: a.name, bytes: a.bytesReserved })).sort((a, b) => b.bytes - a.bytes);
    return new OutOfMemoryError(bytes, free, owner?.name ?? 'an allocation', holders, owner?.reduce ?? 'free some tensors or plans');
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

  /** What a user reduces when this arena does not fit (the out-of-memory line's advice). */
  readonly reduce: string;

  constructor(mem: LinearMemory, name: string, reduce = 'free some tensors or plans') {
    this.mem = mem;
    this.name = name;
    this.reduce = reduce;
    mem.arenas.add(this);
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
    const c = this.mem.takeChunk(need, this);
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
    this.mem.arenas.delete(this);
  }
}
