/**
 * The importer's view of an ONNX graph: nodes in order, constants (initializers and folded values),
 * producers and readers of each value, and the shapes shape inference finds (batch included).
 */
import { describeError } from './errors.js';
import { attribute, tensorValues, type NodeProto, type TensorProto } from './onnx-graph.js';

/** Why one node (or pattern) does not map; collected, never shown alone. */
export class ImportProblem extends Error {}

export interface OnnxNode {
  readonly op: string;
  readonly name: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly proto: NodeProto;
}

export interface Constant {
  readonly dims: number[];
  readonly values: Float64Array;
  /** Integer element type (shape arithmetic divides these with truncation). */
  readonly integer?: boolean;
}

export function product(d: readonly number[]): number {
  let p = 1;
  for (const x of d) p *= x;
  return p;
}

export function sameDims(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function describeNode(n: OnnxNode): string {
  return `${n.op} (node '${n.name}')`;
}

export function constantOf(t: TensorProto): Constant {
  try {
    const { dims, values, dataType } = tensorValues(t);
    return { dims, values, integer: dataType === 6 || dataType === 7 };
  } catch (e) {
    throw new ImportProblem(describeError(e));
  }
}

export class OnnxGraph {
  readonly constants = new Map<string, Constant>();
  readonly producer = new Map<string, OnnxNode>();
  readonly readers = new Map<string, OnnxNode[]>();
  readonly shapes = new Map<string, number[]>();
  /** Values whose axes are [N, H, W, C]: ConvNeXt's permuted values, which our modules hold as [N, C, H, W]. */
  readonly channelsLast = new Set<string>();

  constructor(readonly nodes: readonly OnnxNode[], readonly opset: number) {
    for (const n of nodes) {
      for (const o of n.outputs) if (o !== '') this.producer.set(o, n);
      for (const i of n.inputs) {
        if (i === '') continue;
        const list = this.readers.get(i);
        if (list === undefined) this.readers.set(i, [n]);
        else list.push(n);
      }
    }
  }

  constant(name: string | undefined): Constant | undefined {
    return name === undefined || name === '' ? undefined : this.constants.get(name);
  }

  /** Inputs that carry data (not constants, not omitted). */
  dataInputs(n: OnnxNode): string[] {
    return n.inputs.filter((i) => i !== '' && !this.constants.has(i));
  }

  shape(v: string): number[] {
    const s = this.shapes.get(v);
    if (s === undefined) throw new ImportProblem(`the shape of ${v} is unknown`);
    return s;
  }

  /** The shape of an input: its constant's dims or its inferred shape. */
  inputShape(n: OnnxNode, i: number): number[] {
    const name = n.inputs[i] ?? '';
    const c = this.constant(name);
    return c !== undefined ? c.dims : this.shape(name);
  }

  /** Refuses a node that reads a channels-last value, unless it is one that works on the last axis. */
  channelsFirst(n: OnnxNode): void {
    const v = this.dataInputs(n).find((i) => this.channelsLast.has(i));
    if (v !== undefined) throw new ImportProblem(`it reads ${v}, a value permuted to [N, H, W, C] (only LayerNorm, MatMul and element-wise ops map there)`);
  }

  readerCount(v: string): number {
    return this.readers.get(v)?.length ?? 0;
  }
}

export function ints(n: OnnxNode, name: string, fallback: number[]): number[] {
  const v = attribute(n.proto, name);
  return Array.isArray(v) ? v : fallback;
}
export function int(n: OnnxNode, name: string, fallback: number): number {
  const v = attribute(n.proto, name);
  return typeof v === 'number' ? v : fallback;
}
export function float(n: OnnxNode, name: string, fallback: number): number {
  const v = attribute(n.proto, name);
  return typeof v === 'number' ? v : fallback;
}
export function text(n: OnnxNode, name: string, fallback: string): string {
  const v = attribute(n.proto, name);
  return typeof v === 'string' ? v : fallback;
}

/** A constant input, or a problem naming what it is. */
export function constantInput(g: OnnxGraph, n: OnnxNode, index: number, what: string): Constant {
  const c = g.constant(n.inputs[index]);
  if (c === undefined) throw new ImportProblem(`its ${what} is not a constant`);
  return c;
}

/** An optional constant input (absent or '' gives null). */
export function optionalConstant(g: OnnxGraph, n: OnnxNode, index: number, what: string): Constant | null {
  const name = n.inputs[index];
  if (name === undefined || name === '') return null;
  return constantInput(g, n, index, what);
}

/** Axes (from an attribute before `inputOpset`, from input 1 from it on), made non-negative for a rank. */
export function axesOf(g: OnnxGraph, n: OnnxNode, rank: number, inputOpset: number): number[] | null {
  let listed: number[] | null;
  if (g.opset >= inputOpset && n.inputs[1] !== undefined && n.inputs[1] !== '') listed = [...constantInput(g, n, 1, 'axes').values];
  else {
    const a = attribute(n.proto, 'axes');
    listed = Array.isArray(a) ? a : null;
  }
  if (listed === null) return null;
  return listed.map((a) => {
    const v = a < 0 ? a + rank : a;
    if (!(v >= 0 && v < rank)) throw new ImportProblem(`axis ${a} is outside a rank-${rank} value`);
    return v;
  });
}

/** The shortest decimal that rounds to the same float32 (attributes are float32: 1e-5 is stored as 9.99999974e-6). */
export function shortestFloat(v: number): number {
  const f = Math.fround(v);
  for (let digits = 1; digits <= 9; digits++) {
    const d = Number(f.toPrecision(digits));
    if (Math.fround(d) === f) return d;
  }
  return f;
}

export function f32(c: Constant, scale = 1): Float32Array {
  return Float32Array.from(c.values, (v) => v * scale);
}
