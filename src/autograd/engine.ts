/**
 * The engine: a backend, the two arenas that every tensor lives in, and the tape.
 *
 * - `persistent` holds parameters, their gradients and optimizer state; it is never reset.
 * - `scratch` holds activations, gradients of activations and temporaries; `endStep()` resets it
 *   (and clears the tape), so a training or evaluation loop neither leaks nor frees per op.
 */
import { Backend, type BackendOptions } from '../backend/backend.js';
import { Arena } from '../tensor/memory.js';
import { checkShape, shapeString, Tensor, type DType, type Shape } from '../tensor/tensor.js';

/** One recorded op: how to turn the gradient of `output` into gradients of `inputs`. */
export interface TapeNode {
  readonly op: string;
  readonly inputs: readonly Tensor[];
  readonly output: Tensor;
  /** Returns one gradient per input, or null where the input needs none. */
  readonly backward: (gradOutput: Tensor) => ReadonlyArray<Tensor | null>;
}

export class Engine {
  readonly backend: Backend;
  readonly persistent: Arena;
  readonly scratch: Arena;
  private tape: TapeNode[] = [];
  private gradDepth = 0;

  private constructor(backend: Backend) {
    this.backend = backend;
    this.persistent = new Arena(backend.mem, 'persistent', 'the parameters, their gradients and the optimizer state do not fit: use a smaller model');
    this.scratch = new Arena(backend.mem, 'scratch', 'reduce the batch size or the input size (activations of a step grow with both)');
  }

  static async create(options: BackendOptions = {}): Promise<Engine> {
    return new Engine(await Backend.create(options));
  }

  get gradEnabled(): boolean {
    return this.gradDepth === 0;
  }

  /** Runs fn without recording ops on the tape. */
  noGrad<T>(fn: () => T): T {
    this.gradDepth++;
    try {
      return fn();
    } finally {
      this.gradDepth--;
    }
  }

  alloc(shape: Shape, dtype: DType = 'float32', arena: Arena = this.scratch): Tensor {
    checkShape(shape, 'alloc');
    let n = 1;
    for (const d of shape) n *= d;
    const ptr = arena.alloc(n * 4);
    return new Tensor(this.backend.mem, arena, ptr, shape, dtype);
  }

  zeros(shape: Shape, dtype: DType = 'float32', arena: Arena = this.scratch): Tensor {
    const t = this.alloc(shape, dtype, arena);
    this.backend.kernels.fill(t.ptr, t.size, 0);
    return t;
  }

  full(shape: Shape, value: number, arena: Arena = this.scratch): Tensor {
    const t = this.alloc(shape, 'float32', arena);
    this.backend.kernels.fill(t.ptr, t.size, value);
    return t;
  }

  /** A tensor holding a copy of `data`. */
  tensor(data: ArrayLike<number>, shape: Shape, dtype: DType = 'float32', arena: Arena = this.scratch): Tensor {
    let n = 1;
    for (const d of shape) n *= d;
    if (data.length !== n) throw new RangeError(`tensor: ${data.length} values do not fill shape ${shapeString(shape)} (${n} elements)`);
    const t = this.alloc(shape, dtype, arena);
    if (dtype === 'float32') this.backend.mem.f32.set(data, t.ptr >>> 2);
    else this.backend.mem.i32.set(data, t.ptr >>> 2);
    return t;
  }

  /** A parameter: persistent, requires a gradient. */
  parameter(data: ArrayLike<number>, shape: Shape, name: string): Tensor {
    const t = this.tensor(data, shape, 'float32', this.persistent);
    t.requiresGrad = true;
    t.name = name;
    return t;
  }

  record(node: TapeNode): void {
    this.tape.push(node);
  }

  /** Whether an op with these inputs must be recorded. */
  tracks(...inputs: ReadonlyArray<Tensor | null | undefined>): boolean {
    if (!this.gradEnabled) return false;
    for (const t of inputs) if (t?.requiresGrad === true) return true;
    return false;
  }

  get tapeLength(): number {
    return this.tape.length;
  }

  /**
   * Back-propagates from a scalar `loss` through the tape. Gradients of leaves (parameters, inputs
   * that require a gradient) are added to their `grad`, allocated on first use in the leaf's own arena
   * and zeroed by the optimizer; gradients of op outputs live in scratch until consumed.
   */
  backward(loss: Tensor, gradLoss?: Tensor): void {
    loss.check('backward');
    if (gradLoss === undefined && loss.size !== 1) throw new Error(`backward: ${loss.describe()} is not a scalar; pass its gradient`);
    const k = this.backend.kernels;
    const grads = new Map<Tensor, Tensor>();
    grads.set(loss, gradLoss ?? this.full(loss.shape, 1));
    const produced = new Set<Tensor>();
    for (const node of this.tape) produced.add(node.output);
    for (let i = this.tape.length - 1; i >= 0; i--) {
      const node = this.tape[i] as TapeNode;
      const g = grads.get(node.output);
      if (g === undefined) continue;
      grads.delete(node.output);
      const gin = node.backward(g);
      for (let j = 0; j < node.inputs.length; j++) {
        const x = node.inputs[j] as Tensor;
        const gx = gin[j];
        if (gx === null || gx === undefined || !x.requiresGrad) continue;
        if (gx.size !== x.size) throw new Error(`backward of ${node.op}: gradient ${shapeString(gx.shape)} for input ${x.describe()}`);
        if (!produced.has(x)) {
          // A leaf (a parameter, or an input that asked for its gradient): accumulate in its own grad.
          if (x.grad === null) x.grad = this.zeros(x.shape, 'float32', x.arena);
          k.axpy(x.size, 1, gx.ptr, x.grad.ptr);
          continue;
        }
        const prev = grads.get(x);
        if (prev === undefined) {
          grads.set(x, gx);
        } else {
          // Out of place: a backward may hand the same gradient tensor to several inputs.
          const sum = this.alloc(x.shape);
          k.add(prev.ptr, gx.ptr, sum.ptr, x.size);
          grads.set(x, sum);
        }
      }
    }
    this.tape = [];
  }

  /** Frees every scratch tensor and clears the tape. */
  endStep(): void {
    this.tape = [];
    this.scratch.reset();
  }

  close(): void {
    this.backend.close();
  }
}

let current: Engine | null = null;

/** Creates the default engine (once; later calls with the same options return it). */
export async function init(options: BackendOptions = {}): Promise<Engine> {
  current?.close();
  current = await Engine.create(options);
  return current;
}

export function setEngine(e: Engine): void {
  current = e;
}

export function engine(): Engine {
  if (current === null) throw new Error('no engine: call `await init()` first');
  return current;
}
