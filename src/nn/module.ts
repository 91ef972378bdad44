/**
 * Modules: the building blocks of a network. A module owns parameters (persistent tensors with
 * gradients) and buffers (persistent state such as running statistics), and may hold children.
 * Export, pruning and compilation ask each module (methods below); nothing switches on types.
 */
import { engine } from '../autograd/engine.js';
import type { Shape, Tensor } from '../tensor/tensor.js';

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

  /** Output shape for an input shape (batch dimension included), without computing. */
  abstract outputShape(input: Shape): Shape;

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

/** A module without parameters whose forward is one op. */
export abstract class Stateless extends Module {
  override outputShape(input: Shape): Shape {
    return input;
  }
}
