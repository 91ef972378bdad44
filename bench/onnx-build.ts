/**
 * Single-node ONNX graphs (Conv, MatMul) with float32 initializers, encoded with onnx-proto,
 * so that onnxruntime-node can be timed on exactly the op that the other engines run.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

/** Opset 13 pairs with IR version 7 (ONNX 1.8). */
export const OPSET = 13;
const IR_VERSION = 7;

export interface Initializer {
  readonly name: string;
  readonly dims: readonly number[];
  readonly data: Float32Array;
}

export interface ConvGraphSpec {
  /** Input shape [N, C, H, W]. */
  readonly input: readonly [number, number, number, number];
  /** Weight [M, C, KH, KW]. */
  readonly weight: Float32Array;
  readonly weightShape: readonly [number, number, number, number];
  readonly bias?: Float32Array;
  readonly pads?: readonly [number, number, number, number];
  readonly strides?: readonly [number, number];
  readonly dilations?: readonly [number, number];
  readonly group?: number;
}

export interface MatMulGraphSpec {
  readonly aShape: readonly [number, number];
  readonly bShape: readonly [number, number];
  /** A constant operand is stored as an initializer; the other one is a graph input. */
  readonly a?: Float32Array;
  readonly b?: Float32Array;
}

function elements(dims: readonly number[]): number {
  return dims.reduce((p, d) => p * d, 1);
}

function valueInfo(name: string, dims: readonly number[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: { dim: dims.map((d) => ({ dimValue: d })) },
      },
    },
  };
}

function tensorProto(init: Initializer): onnxProto.onnx.ITensorProto {
  const n = elements(init.dims);
  if (init.data.length !== n) {
    throw new RangeError(`onnx initializer ${init.name}: ${init.data.length} values for dims [${init.dims.join(', ')}] (${n} elements)`);
  }
  return {
    name: init.name,
    dims: [...init.dims],
    dataType: onnx.TensorProto.DataType.FLOAT,
    rawData: new Uint8Array(init.data.buffer.slice(init.data.byteOffset, init.data.byteOffset + init.data.byteLength)),
  };
}

function intsAttribute(name: string, values: readonly number[]): onnxProto.onnx.IAttributeProto {
  return { name, type: onnx.AttributeProto.AttributeType.INTS, ints: [...values] };
}

function intAttribute(name: string, value: number): onnxProto.onnx.IAttributeProto {
  return { name, type: onnx.AttributeProto.AttributeType.INT, i: value };
}

function encodeModel(graph: onnxProto.onnx.IGraphProto): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    producerName: 'parsimony-bench',
    opsetImport: [{ domain: '', version: OPSET }],
    graph,
  });
  return onnx.ModelProto.encode(model).finish();
}

/** Output size of one spatial axis (the formula of the ONNX Conv spec, no auto_pad). */
function outSize(size: number, kernel: number, stride: number, padBegin: number, padEnd: number, dilation: number): number {
  return Math.floor((size + padBegin + padEnd - dilation * (kernel - 1) - 1) / stride) + 1;
}

/** A graph with input `x`, one Conv node, output `y`; weight (and bias) are initializers. */
export function buildConvModel(spec: ConvGraphSpec): Uint8Array {
  const [N, C, H, W] = spec.input;
  const [M, Cg, KH, KW] = spec.weightShape;
  const group = spec.group ?? 1;
  if (Cg * group !== C) throw new RangeError(`onnx conv: input has ${C} channels, weight [${spec.weightShape.join(', ')}] with group ${group} expects ${Cg * group}`);
  const pads = spec.pads ?? [0, 0, 0, 0];
  const strides = spec.strides ?? [1, 1];
  const dilations = spec.dilations ?? [1, 1];
  const OH = outSize(H, KH, strides[0], pads[0], pads[2], dilations[0]);
  const OW = outSize(W, KW, strides[1], pads[1], pads[3], dilations[1]);
  const inits: Initializer[] = [{ name: 'w', dims: spec.weightShape, data: spec.weight }];
  if (spec.bias !== undefined) inits.push({ name: 'b', dims: [M], data: spec.bias });
  return encodeModel({
    name: 'conv',
    node: [{
      opType: 'Conv',
      name: 'conv',
      input: spec.bias === undefined ? ['x', 'w'] : ['x', 'w', 'b'],
      output: ['y'],
      attribute: [
        intsAttribute('kernel_shape', [KH, KW]),
        intsAttribute('pads', pads),
        intsAttribute('strides', strides),
        intsAttribute('dilations', dilations),
        intAttribute('group', group),
      ],
    }],
    initializer: inits.map(tensorProto),
    input: [valueInfo('x', [N, C, H, W])],
    output: [valueInfo('y', [N, M, OH, OW])],
  });
}

/** A graph computing y = a · b with one MatMul node; each operand given as data becomes an initializer, the others are inputs `a` / `b`. */
export function buildMatMulModel(spec: MatMulGraphSpec): Uint8Array {
  const [M, K] = spec.aShape;
  const [K2, N] = spec.bShape;
  if (K !== K2) throw new RangeError(`onnx matmul: [${spec.aShape.join(', ')}] · [${spec.bShape.join(', ')}]: inner sizes ${K} and ${K2} differ`);
  const inits: Initializer[] = [];
  const inputs: onnxProto.onnx.IValueInfoProto[] = [];
  for (const [name, dims, data] of [['a', spec.aShape, spec.a], ['b', spec.bShape, spec.b]] as const) {
    if (data === undefined) inputs.push(valueInfo(name, dims));
    else inits.push({ name, dims, data });
  }
  return encodeModel({
    name: 'matmul',
    node: [{ opType: 'MatMul', name: 'matmul', input: ['a', 'b'], output: ['y'] }],
    initializer: inits.map(tensorProto),
    input: inputs,
    output: [valueInfo('y', [M, N])],
  });
}
