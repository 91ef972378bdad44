/**
 * The graph a model compiles to before buffers are planned: values (per-image shapes) and nodes
 * (ops with their weights copied out of the model, batch norm still separate). Compilers of module
 * types emit it; fuse.ts rewrites it; plan.ts lowers it to kernel calls over planned buffers.
 */
import type { ConvGeometry } from '../backend/kernels.js';
import type { SwitchKind } from '../nn/lkam.js';
import type { Pointwise } from '../ops/pointwise.js';

export type ValueKind = 'map' | 'vector' | 'switches';

export interface Value {
  readonly id: number;
  readonly kind: ValueKind;
  /** Per image: [C, H, W] for a map, [F] for a vector, [M] for the switch values of an LKAM. */
  readonly shape: readonly number[];
  /** The module path that produced it, for errors and telemetry. */
  readonly name: string;
}

/** A convolution per image (geometry with N = 1), with what fusion folded into it. */
export interface ConvNode {
  readonly op: 'conv';
  readonly name: string;
  readonly x: Value;
  y: Value;
  readonly g: ConvGeometry;
  weight: Float32Array;
  bias: Float32Array | null;
  /** Lower clamp of the output: 0 after a fused ReLU, -Infinity without. */
  lo: number;
  /** Switch values that gate the output channels (the conv computes only the switched-on ones when skipping). */
  gate: Value | null;
}

/** Per-channel y = x * scale[c] + shift[c] (a batch norm in eval mode that could not be folded). */
export interface AffineNode {
  readonly op: 'affine';
  readonly name: string;
  readonly x: Value;
  y: Value;
  readonly scale: Float32Array;
  readonly shift: Float32Array;
}

export interface ReluNode {
  readonly op: 'relu';
  readonly name: string;
  readonly x: Value;
  y: Value;
}

export interface PoolNode {
  readonly op: 'pool';
  readonly name: string;
  readonly kind: 'max' | 'avg';
  readonly x: Value;
  y: Value;
  readonly kernel: readonly [number, number];
  readonly stride: readonly [number, number];
  readonly padding: readonly [number, number];
  /** Average pooling: padded cells count in the divisor. */
  readonly countIncludePad: boolean;
}

export interface GlobalPoolNode {
  readonly op: 'globalPool';
  readonly name: string;
  readonly kind: 'max' | 'avg';
  readonly x: Value;
  y: Value;
}

/** A map as a vector of C * H * W features (channel-major, as ops.flatten). */
export interface FlattenNode {
  readonly op: 'flatten';
  readonly name: string;
  readonly x: Value;
  y: Value;
}

/** y = weight · x + bias over the features of x: a vector, or a map read in flatten order. */
export interface LinearNode {
  readonly op: 'linear';
  readonly name: string;
  x: Value;
  y: Value;
  /** [out, in]. */
  readonly weight: Float32Array;
  readonly bias: Float32Array | null;
}

/** y = max(a + b, lo). */
export interface AddNode {
  readonly op: 'add';
  readonly name: string;
  readonly a: Value;
  readonly b: Value;
  y: Value;
  lo: number;
}

/** An LKAM: 1x1 bank over x → pooling (global or a grid) → fully connected → switch function. */
export interface SwitchNode {
  readonly op: 'switches';
  readonly name: string;
  readonly x: Value;
  readonly y: Value;
  /** [bank, C] and [bank]. */
  readonly bankWeight: Float32Array;
  readonly bankBias: Float32Array | null;
  readonly bank: number;
  readonly pool: 'max' | 'avg';
  readonly grid: number;
  /** [M, bank * grid * grid] and [M]. */
  readonly fcWeight: Float32Array;
  readonly fcBias: Float32Array | null;
  readonly kind: SwitchKind;
  /** The LKAM's own inference threshold (sigmoid switches). */
  readonly threshold: number;
}

/** y[c] = x[c] * switch[c], for a block that fusion could not merge the gate into. */
export interface GateNode {
  readonly op: 'gate';
  readonly name: string;
  readonly x: Value;
  readonly switches: Value;
  y: Value;
}

/** y = f(x) element by element: a clamp or sigmoid kernel, or a point-wise function of the ops layer. */
export interface PointwiseNode {
  readonly op: 'pointwise';
  readonly name: string;
  readonly x: Value;
  y: Value;
  readonly fn: { readonly kind: 'clamp'; readonly lo: number; readonly hi: number } | { readonly kind: 'sigmoid' } | { readonly kind: 'function'; readonly f: Pointwise };
}

/** The maps of xs stacked along the channel axis, in order. */
export interface ConcatNode {
  readonly op: 'concat';
  readonly name: string;
  readonly xs: readonly Value[];
  y: Value;
}

/** y[c] = x[c] * s[c] with per-image scales s computed from x (squeeze-and-excitation). */
export interface ScaleNode {
  readonly op: 'scale';
  readonly name: string;
  readonly x: Value;
  /** A vector of one scale per channel of x. */
  readonly s: Value;
  y: Value;
}

/** y[c] = x[order[c]]: channel slices and shuffles. */
export interface SelectNode {
  readonly op: 'select';
  readonly name: string;
  readonly x: Value;
  y: Value;
  readonly order: readonly number[];
}

/** Layer normalisation over the channels at each position, then weight[c] and bias[c]. */
export interface ChannelNormNode {
  readonly op: 'channelNorm';
  readonly name: string;
  readonly x: Value;
  y: Value;
  readonly weight: Float32Array;
  readonly bias: Float32Array;
  readonly eps: number;
}

/** Spatial padding: y is x with rows and columns added around it (a constant, a reflection or the edge). */
export interface PadNode {
  readonly op: 'pad';
  readonly name: string;
  readonly x: Value;
  y: Value;
  /** Per output row and column, the input row or column it copies, -1 for the constant. */
  readonly rows: Int32Array;
  readonly cols: Int32Array;
  readonly value: number;
}

export type Node = PadNode | ChannelNormNode | SelectNode | PointwiseNode | ConcatNode | ScaleNode | ConvNode | AffineNode | ReluNode | PoolNode | GlobalPoolNode | FlattenNode | LinearNode | AddNode | SwitchNode | GateNode;

/** The values a node reads. */
export function inputsOf(n: Node): Value[] {
  switch (n.op) {
    case 'conv':
      return n.gate === null ? [n.x] : [n.x, n.gate];
    case 'add':
      return [n.a, n.b];
    case 'gate':
      return [n.x, n.switches];
    case 'concat':
      return [...n.xs];
    case 'scale':
      return [n.x, n.s];
    default:
      return [n.x];
  }
}

export function sizeOf(v: Value): number {
  return v.shape.reduce((a, b) => a * b, 1);
}
