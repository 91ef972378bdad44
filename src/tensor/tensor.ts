/**
 * A tensor is a shape and a dtype over a block of the shared linear memory, owned by an arena.
 * When its arena is reset the tensor is disposed: reading it throws, naming the tensor.
 */
import type { Arena, LinearMemory } from './memory.js';

export type DType = 'float32' | 'int32';
export type Shape = readonly number[];

export class ShapeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShapeError';
  }
}

export class DisposedTensorError extends Error {
  constructor(what: string, arena: string) {
    super(`${what} was disposed: its arena '${arena}' was reset (tensors from a finished step cannot be used)`);
    this.name = 'DisposedTensorError';
  }
}

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeString(shape: Shape): string {
  return `[${shape.join(',')}]`;
}

export function checkShape(shape: Shape, what: string): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(`${what}: shape ${shapeString(shape)} has a dimension that is not a whole number >= 0`);
  }
}

/**
 * Which channels of each image of an [N, C, ...] tensor may be non-zero: active[n * C + c] is 0 when
 * the plane (n, c) is known to be all zeros (its kernel was switched off), so readers may skip it.
 */
export class ChannelSet {
  readonly N: number;
  readonly C: number;
  readonly active: Uint8Array;
  /** Active channels per image. */
  readonly counts: Int32Array;

  constructor(N: number, C: number, active: Uint8Array) {
    if (active.length !== N * C) throw new RangeError(`ChannelSet: ${active.length} flags for ${N}x${C}`);
    this.N = N;
    this.C = C;
    this.active = active;
    this.counts = new Int32Array(N);
    for (let n = 0; n < N; n++) {
      let c = 0;
      for (let k = 0; k < C; k++) c += active[n * C + k] as number;
      this.counts[n] = c;
    }
  }

  get total(): number {
    let t = 0;
    for (const c of this.counts) t += c;
    return t;
  }

  static all(N: number, C: number): ChannelSet {
    return new ChannelSet(N, C, new Uint8Array(N * C).fill(1));
  }
}

export class Tensor {
  readonly shape: Shape;
  readonly dtype: DType;
  readonly size: number;
  /** Byte offset in linear memory. */
  readonly ptr: number;
  readonly arena: Arena;
  readonly mem: LinearMemory;
  private readonly generation: number;
  /** Set on parameters and on op outputs that depend on one. */
  requiresGrad = false;
  /** Gradient accumulated by backward(); parameters keep theirs in persistent memory. */
  grad: Tensor | null = null;
  name: string | null = null;
  /** Known all-zero channel planes, or null when any channel may be non-zero. */
  channels: ChannelSet | null = null;

  constructor(mem: LinearMemory, arena: Arena, ptr: number, shape: Shape, dtype: DType) {
    this.mem = mem;
    this.arena = arena;
    this.ptr = ptr;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.size = sizeOf(shape);
    this.generation = arena.generation;
  }

  get rank(): number {
    return this.shape.length;
  }

  get disposed(): boolean {
    return this.arena.generation !== this.generation;
  }

  describe(): string {
    return `${this.name ?? 'tensor'} ${shapeString(this.shape)} ${this.dtype}`;
  }

  /** Throws if the tensor was disposed; `op` names the caller in the message. */
  check(op: string): void {
    if (this.disposed) throw new DisposedTensorError(`${op}: ${this.describe()}`, this.arena.name);
  }

  /** A live float32 view; invalid after any allocation that grows memory. */
  f32(): Float32Array {
    this.check('f32');
    if (this.dtype !== 'float32') throw new TypeError(`f32: ${this.describe()} is not float32`);
    return this.mem.f32.subarray(this.ptr >>> 2, (this.ptr >>> 2) + this.size);
  }

  i32(): Int32Array {
    this.check('i32');
    if (this.dtype !== 'int32') throw new TypeError(`i32: ${this.describe()} is not int32`);
    return this.mem.i32.subarray(this.ptr >>> 2, (this.ptr >>> 2) + this.size);
  }

  /** A copy of the values, safe to keep after the tensor is disposed. */
  toArray(): Float32Array | Int32Array {
    return this.dtype === 'float32' ? this.f32().slice() : this.i32().slice();
  }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new ShapeError(`item: ${this.describe()} has ${this.size} elements, expected 1`);
    return (this.dtype === 'float32' ? this.f32()[0] : this.i32()[0]) as number;
  }

  /** The same memory under another shape (no copy, no gradient tracking: see ops.reshape). */
  view(shape: Shape): Tensor {
    this.check('view');
    checkShape(shape, 'view');
    if (sizeOf(shape) !== this.size) throw new ShapeError(`view: cannot view ${this.describe()} as ${shapeString(shape)} (${sizeOf(shape)} elements)`);
    const t = new Tensor(this.mem, this.arena, this.ptr, shape, this.dtype);
    t.name = this.name;
    return t;
  }
}
