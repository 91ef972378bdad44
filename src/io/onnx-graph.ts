/** Building and reading ONNX protobuf messages (onnx-proto) for the exporter and the importer. */
import type onnxProto from 'onnx-proto';
import { importOptional } from '../optional.js';
import { describeError, OnnxError } from './errors.js';

/** onnx-proto (and protobufjs) load with the ONNX part of the io layer, never with the inference runtime. */
export const onnx = (await importOptional('onnx-proto', 'ONNX import and export', () => import('onnx-proto'))).default.onnx;
export type NodeProto = onnxProto.onnx.INodeProto;
export type TensorProto = onnxProto.onnx.ITensorProto;
export type AttributeProto = onnxProto.onnx.IAttributeProto;
export type ValueInfoProto = onnxProto.onnx.IValueInfoProto;
export type GraphProto = onnxProto.onnx.IGraphProto;
export type ModelProto = onnxProto.onnx.IModelProto;

const DataType = onnx.TensorProto.DataType;
const AttributeType = onnx.AttributeProto.AttributeType;

/** protobufjs gives 64-bit integers as Long objects (or numbers). */
interface LongLike {
  toNumber(): number;
}
export function toNumber(v: number | LongLike | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}

export function floatTensor(name: string, dims: readonly number[], data: Float32Array): TensorProto {
  const bytes = new Uint8Array(data.byteLength);
  new Float32Array(bytes.buffer).set(data);
  return { name, dims: [...dims], dataType: DataType.FLOAT, rawData: littleEndian(bytes) };
}

export function int64Tensor(name: string, values: readonly number[]): TensorProto {
  const a = new BigInt64Array(values.map((v) => BigInt(v)));
  return { name, dims: [values.length], dataType: DataType.INT64, rawData: littleEndian(new Uint8Array(a.buffer), 8) };
}

/** A rank-0 float tensor. */
export function scalarTensor(name: string, value: number): TensorProto {
  return { ...floatTensor(name, [], Float32Array.of(value)), dims: [] };
}

const hostIsLittleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
function littleEndian(bytes: Uint8Array, width = 4): Uint8Array {
  if (hostIsLittleEndian) return bytes;
  for (let i = 0; i < bytes.length; i += width) bytes.subarray(i, i + width).reverse();
  return bytes;
}

export function intAttr(name: string, i: number): AttributeProto {
  return { name, type: AttributeType.INT, i };
}
export function intsAttr(name: string, ints: readonly number[]): AttributeProto {
  return { name, type: AttributeType.INTS, ints: [...ints] };
}
export function floatAttr(name: string, f: number): AttributeProto {
  return { name, type: AttributeType.FLOAT, f };
}

/** A float tensor value with a symbolic batch dimension `N` (when batch is true) and fixed other dimensions. */
export function floatValueInfo(name: string, dims: readonly number[], batch = true): ValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: DataType.FLOAT,
        shape: { dim: dims.map((d, i) => (batch && i === 0 ? { dimParam: 'N' } : { dimValue: d })) },
      },
    },
  };
}

export type AttributeValue = number | number[] | string | TensorProto | undefined;

/** An attribute's value: INT/FLOAT as number, INTS/FLOATS as number[], STRING as text, TENSOR as proto. */
export function attribute(node: NodeProto, name: string): AttributeValue {
  const a = node.attribute?.find((x) => x.name === name);
  if (a === undefined) return undefined;
  switch (a.type) {
    case AttributeType.INT:
      return toNumber(a.i);
    case AttributeType.FLOAT:
      return a.f ?? 0;
    case AttributeType.INTS:
      return (a.ints ?? []).map((v) => toNumber(v));
    case AttributeType.FLOATS:
      return [...(a.floats ?? [])];
    case AttributeType.STRING:
      return new TextDecoder().decode(a.s ?? new Uint8Array());
    case AttributeType.TENSOR:
      return a.t ?? undefined;
    default:
      return undefined;
  }
}

/** A tensor's dims and values as float64 numbers (float, double and integer types). */
export function tensorValues(t: TensorProto): { dims: number[]; values: Float64Array; dataType: number } {
  const dims = (t.dims ?? []).map((d) => toNumber(d));
  const n = dims.reduce((a, b) => a * b, 1);
  const type = t.dataType ?? 0;
  const raw = t.rawData !== null && t.rawData !== undefined && t.rawData.length > 0 ? t.rawData : null;
  const values = new Float64Array(n);
  const width = type === DataType.FLOAT || type === DataType.INT32 ? 4 : type === DataType.INT64 || type === DataType.DOUBLE ? 8 : 0;
  if (width === 0) throw new RangeError(`tensor ${t.name ?? '?'}: data type ${DataType[type] ?? type} is not supported`);
  if (raw !== null) {
    if (raw.length !== n * width) throw new RangeError(`tensor ${t.name ?? '?'}: ${raw.length} bytes of raw data for dims [${dims.join(',')}]`);
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    for (let i = 0; i < n; i++) {
      values[i] = type === DataType.FLOAT ? dv.getFloat32(4 * i, true)
        : type === DataType.INT32 ? dv.getInt32(4 * i, true)
        : type === DataType.DOUBLE ? dv.getFloat64(8 * i, true)
        : Number(dv.getBigInt64(8 * i, true));
    }
    return { dims, values, dataType: type };
  }
  const src: ReadonlyArray<number | LongLike> = type === DataType.FLOAT ? t.floatData ?? [] : type === DataType.INT32 ? t.int32Data ?? [] : type === DataType.DOUBLE ? t.doubleData ?? [] : t.int64Data ?? [];
  if (src.length !== n) throw new RangeError(`tensor ${t.name ?? '?'}: ${src.length} values for dims [${dims.join(',')}]`);
  for (let i = 0; i < n; i++) values[i] = toNumber(src[i]);
  return { dims, values, dataType: type };
}

/** The dims of a value's tensor type (dim_param and unknown dims as -1), or null when it has no shape. */
export function valueDims(v: ValueInfoProto): number[] | null {
  const shape = v.type?.tensorType?.shape;
  if (shape === null || shape === undefined) return null;
  return (shape.dim ?? []).map((d) => {
    if (typeof d.dimParam === 'string' && d.dimParam !== '') return -1;
    const v = toNumber(d.dimValue);
    return v > 0 ? v : -1;
  });
}

export function encodeModelProto(model: ModelProto): Uint8Array {
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}

export function decodeModelProto(bytes: Uint8Array): onnxProto.onnx.ModelProto {
  return onnx.ModelProto.decode(bytes);
}

/** Names shown in one error line at most; the rest are counted. */
const SHOWN = 5;

function listed(names: readonly string[]): string {
  const shown = names.slice(0, SHOWN).join(', ');
  return names.length > SHOWN ? `${shown} and ${names.length - SHOWN} more` : shown;
}

/**
 * Refuses a tensor the reader cannot trust: data stored outside the file, or dims that are not whole
 * numbers >= 1 (a rank-1 tensor may be empty), naming the tensor and the dim.
 */
function checkTensor(t: TensorProto, what: string): void {
  const name = t.name ?? '';
  const external = t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL || (t.externalData ?? []).length > 0;
  if (external) throw new RangeError(`${what} ${name}: external data is not supported (its values are stored in a separate file); save the model with the weights inside the .onnx file`);
  const dims = (t.dims ?? []).map((d) => toNumber(d));
  dims.forEach((d, i) => {
    const least = dims.length === 1 ? 0 : 1;
    if (!Number.isSafeInteger(d) || d < least) throw new RangeError(`${what} ${name}: dim ${i} of [${dims.join(',')}] is ${d}, expected a whole number >= ${least}`);
  });
}

/**
 * Checks the structure of a graph before anything walks it: every value is defined once (graph
 * input, initializer or one node output), each node reads only values defined before it (ONNX's
 * topological order; so no cycles), the graph outputs exist, initializers and constant tensors
 * have valid dims and inline data, and a Gemm's constant weight is 2-D. Throws an OnnxError naming
 * the file, the node and the value.
 */
export function checkGraph(graph: GraphProto, file: string): void {
  const fail = (message: string): never => {
    throw new OnnxError(`${file}: ${message}`);
  };
  const defined = new Set<string>();
  const initializers = new Map<string, TensorProto>();
  for (const t of graph.initializer ?? []) {
    const name = t.name ?? '';
    if (initializers.has(name)) fail(`initializer ${name} is defined twice`);
    try {
      checkTensor(t, 'initializer');
    } catch (e) {
      fail(describeError(e));
    }
    initializers.set(name, t);
    defined.add(name);
  }
  const inputs = new Set<string>();
  for (const i of graph.input ?? []) {
    const name = i.name ?? '';
    if (inputs.has(name)) fail(`graph input ${name} is listed twice`);
    inputs.add(name);
    defined.add(name);
    for (const [k, d] of (i.type?.tensorType?.shape?.dim ?? []).entries()) {
      if (d.dimValue !== null && d.dimValue !== undefined && toNumber(d.dimValue) < 0) fail(`graph input ${name}: dim ${k} is ${toNumber(d.dimValue)}, expected a whole number >= 1 or a symbolic dim`);
    }
  }
  const undefinedReads: string[] = [];
  for (const [index, n] of (graph.node ?? []).entries()) {
    const node = `${n.opType ?? '?'} node ${n.name || `#${index}`}`;
    for (const v of n.input ?? []) {
      if (v !== '' && !defined.has(v)) undefinedReads.push(`${node} reads ${v}`);
    }
    for (const a of n.attribute ?? []) {
      if (a.t !== null && a.t !== undefined) {
        try {
          checkTensor(a.t, `${node}: attribute ${a.name ?? ''} tensor`);
        } catch (e) {
          fail(describeError(e));
        }
      }
    }
    if (n.opType === 'Gemm') {
      const w = initializers.get(n.input?.[1] ?? '');
      if (w !== undefined && (w.dims ?? []).length !== 2) fail(`${node}: its weight ${w.name ?? ''} is [${(w.dims ?? []).map((d) => toNumber(d)).join(',')}], expected 2-D [out, in] or [in, out]`);
    }
    for (const v of n.output ?? []) {
      if (v === '') continue;
      if (defined.has(v)) fail(`${node} defines ${v}, which ${inputs.has(v) ? 'is a graph input' : initializers.has(v) ? 'is an initializer' : 'an earlier node already defines'}; every value is defined once`);
      defined.add(v);
    }
  }
  if (undefinedReads.length > 0) {
    fail(`${undefinedReads.length} node input${undefinedReads.length === 1 ? ' is' : 's are'} not defined before the node (nodes must be in topological order, with no cycles): ${listed(undefinedReads)}`);
  }
  const missing = (graph.output ?? []).map((o) => o.name ?? '').filter((o) => !defined.has(o));
  if (missing.length > 0) fail(`graph output${missing.length === 1 ? '' : 's'} ${listed(missing)} ${missing.length === 1 ? 'is' : 'are'} not defined by any node`);
}

/** Decodes an ONNX model and checks its graph (checkGraph); every problem is an OnnxError naming `file`. */
export function readModelProto(bytes: Uint8Array, file: string): onnxProto.onnx.ModelProto {
  let proto: onnxProto.onnx.ModelProto;
  try {
    proto = decodeModelProto(bytes);
  } catch (e) {
    throw new OnnxError(`${file}: not an ONNX model (${describeError(e)})`, [], e);
  }
  if (proto.graph !== null && proto.graph !== undefined) checkGraph(proto.graph, file);
  return proto;
}
