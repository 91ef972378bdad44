/**
 * Modules: the building blocks of a network. A module owns parameters (persistent tensors with
 * gradients) and buffers (persistent state such as running statistics), and may hold children.
 * Export, pruning and compilation ask each module (methods below); nothing switches on types.
 */
import { engine } from '../autograd/engine.js';
import { ShapeError, shapeString, type Shape, type Tensor } from '../tensor/tensor.js';
import { SpecError } from './registry.js';

/** A JSON description from which `buildModule` recreates the module (weights excluded). */
export interface ModuleSpec {
  readonly type: string;
  readonly [key: string]: unknown;
}

export abstract class Module {
  training = true;
  /** Human-readable kind, also the `type` in specs. */
  abstract readonly type: string;

  abstract forward(x: Tensor): Tensor;

  /** Direct children, by name. */
  children(): ReadonlyArray<readonly [string, Module]> {
    return [];
  }

  /** Own parameters, by name (not those of children). */
  ownParameters(): ReadonlyArray<readonly [string, Tensor]> {
    return [];
  }

  /** Own buffers (persistent, not trained by gradient), by name. */
  ownBuffers(): ReadonlyArray<readonly [string, Tensor]> {
    return [];
  }

  /**
   * Output shape for an input shape (batch dimension included), without computing; a ShapeError when
   * the input does not fit the module (rank, channels, features, too small for a window). A container
   * passes `walk` on through `childShape`, so that a shape walk sees every layer with its path.
   */
  abstract outputShape(input: Shape, walk?: ShapeWalk): Shape;

  /**
   * Multiply-adds of one dense forward pass for one image of this input shape (batch dimension 1);
   * `withGates` false leaves out the LKAMs, giving the cost of the network without them.
   */
  macs(_input: Shape, _withGates = true): number {
    return 0;
  }

  abstract spec(): ModuleSpec;

  namedParameters(prefix = ''): Array<[string, Tensor]> {
    const out: Array<[string, Tensor]> = [];
    for (const [n, t] of this.ownParameters()) out.push([prefix + n, t]);
    for (const [n, c] of this.children()) out.push(...c.namedParameters(`${prefix}${n}.`));
    return out;
  }

  namedBuffers(prefix = ''): Array<[string, Tensor]> {
    const out: Array<[string, Tensor]> = [];
    for (const [n, t] of this.ownBuffers()) out.push([prefix + n, t]);
    for (const [n, c] of this.children()) out.push(...c.namedBuffers(`${prefix}${n}.`));
    return out;
  }

  /** Every parameter and buffer, by dotted name: what a model file stores. */
  stateDict(): Array<[string, Tensor]> {
    return [...this.namedParameters(), ...this.namedBuffers()];
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  parameterCount(): number {
    return this.parameters().reduce((s, t) => s + t.size, 0);
  }

  /** Every module below this one (itself first), with dotted names. */
  modules(prefix = ''): Array<[string, Module]> {
    const out: Array<[string, Module]> = [[prefix.replace(/\.$/, ''), this]];
    for (const [n, c] of this.children()) out.push(...c.modules(`${prefix}${n}.`));
    return out;
  }

  train(mode = true): this {
    for (const [, m] of this.modules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Runs forward without recording the tape. */
  predict(x: Tensor): Tensor {
    return engine().noGrad(() => this.forward(x));
  }
}

/** Bytes the activations of one image may take, summed over every layer's output (float32). */
export const MAX_ACTIVATION_BYTES = 2 ** 30;

/**
 * A walk of shapes through a model for one image, as a loaded architecture gets: every layer's
 * `outputShape` checks its input; the walk names the layer's path in errors, checks the output's
 * dimensions and sums the activations it implies.
 */
export class ShapeWalk {
  /** Elements of every output so far (the input included). */
  elements = 0;
  private readonly path: string[] = [];
  constructor(readonly maxBytes = MAX_ACTIVATION_BYTES) {}

  private where(): string {
    return this.path.filter((p) => p !== '').join('.');
  }

  /** Counts one tensor of the walk. */
  count(shape: Shape, what: string): void {
    if (shape.length === 0 || shape.some((d) => !Number.isSafeInteger(d) || d < 1)) throw new SpecError(this.where(), `${what} ${shapeString(shape)} should have whole dimensions >= 1`);
    this.elements += shape.reduce((a, b) => a * b, 1);
    if (this.elements * 4 > this.maxBytes) {
      throw new SpecError(this.where(), `the activations of one image reach ${gib(this.elements * 4)} here (${what} ${shapeString(shape)}), more than the ${gib(this.maxBytes)} a model may use`);
    }
  }

  /** `m`'s output for `input`, where its container holds it in field `field`. */
  child(field: string, m: Module, input: Shape): Shape {
    this.path.push(field);
    try {
      let out: Shape;
      try {
        out = m.outputShape(input, this);
      } catch (e) {
        if (e instanceof ShapeError || e instanceof RangeError) throw new SpecError(this.where(), e.message);
        throw e;
      }
      this.count(out, `its output`);
      return out;
    } finally {
      this.path.pop();
    }
  }
}

function gib(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** A child's output shape inside a container's `outputShape`: through the walk when there is one. */
export function childShape(walk: ShapeWalk | undefined, field: string, m: Module, input: Shape): Shape {
  return walk === undefined ? m.outputShape(input) : walk.child(field, m, input);
}

/**
 * Checks that a model takes images of `imageShape` ([C, H, W]): every layer fits the shape it
 * receives, and the activations of one image stay within `maxBytes`. Returns the output shape for
 * one image; a SpecError names the layer's path in the architecture.
 */
export function checkShapes(model: Module, imageShape: Shape, maxBytes = MAX_ACTIVATION_BYTES): Shape {
  const walk = new ShapeWalk(maxBytes);
  const input = [1, ...imageShape];
  walk.count(input, 'the input');
  return walk.child('', model, input);
}

/** A module without parameters whose forward is one op. */
export abstract class Stateless extends Module {
  override outputShape(input: Shape): Shape {
    if (input.length < 2) throw new ShapeError(`${this.type}: input ${shapeString(input)} should be [N, ...]`);
    return input;
  }
}
