/**
 * Model files: a model's architecture, weights and buffers in one safetensors file, readable by any
 * safetensors reader. The metadata holds `format: "parsimony"`, `format_version`, `architecture`
 * (the JSON of `model.spec()`), `input_shape`, `class_names`, `normalize` and `training` (JSON strings).
 *
 * Bytes in, bytes out: no Node imports (see `node-files.ts` for saving and loading paths).
 */
import { z } from 'zod';
import { FASHION_MNIST_NORMALIZE, normalizeProblem, type NormalizeOptions } from '../data/normalization.js';
import { checkShapes, type Module, type ModuleSpec } from '../nn/module.js';
import { buildModule, SpecError, UnknownModuleError } from '../nn/registry.js';
import '../nn/layers.js';
import '../nn/lkam.js';
import '../nn/activations.js';
import '../nn/concat.js';
import '../nn/squeeze-excite.js';
import '../nn/channels.js';
import '../nn/layernorm.js';
import '../nn/pad.js';
import type { Tensor } from '../tensor/tensor.js';
import { describeError, ModelFileError } from './errors.js';
import { JsonDepthError, parseJson } from './json.js';
import { encodeSafetensors, firstNonFinite, parseSafetensors, readTensor, shapeText, type SafetensorsFile, type TensorRecord } from './safetensors.js';
import { expectedState } from './state-shapes.js';

export const MODEL_FORMAT = 'parsimony';
/** Version 2 files record checksums (safetensors.ts); version 1 files, without them, still load. */
export const MODEL_FORMAT_VERSION = 2;

export type JsonValue = null | boolean | number | string | readonly JsonValue[] | { readonly [key: string]: JsonValue };

export interface ModelMeta {
  /** One input image, [C, H, W]. */
  readonly inputShape: readonly number[];
  readonly classNames?: readonly string[];
  /** The per-channel normalisation the model was trained with; files without it were trained with Fashion-MNIST's (`modelNormalize`). */
  readonly normalize?: NormalizeOptions;
  /** Free-form record of how the model was trained (hyper-parameters, accuracy, dataset). */
  readonly training?: JsonValue;
}

export interface DecodeOptions {
  /** The name used in error messages (default `model.safetensors`). */
  readonly file?: string;
}

const positiveInts = z.array(z.number().refine((v) => Number.isSafeInteger(v) && v >= 1, { error: 'should hold whole numbers >= 1' }), { error: 'should be a list of whole numbers' }).min(1, { error: 'should not be empty' });
const classNames = z.array(z.string({ error: 'should hold strings' }), { error: 'should be a list of strings' });
const finiteList = z.array(z.number().refine(Number.isFinite, { error: 'should hold finite numbers' }), { error: 'should be a list of numbers' }).min(1, { error: 'should not be empty' });
const normalizeSchema = z.strictObject({ mean: finiteList, std: finiteList }, { error: 'should be {"mean": [...], "std": [...]}' });

/** The normalisation a model's inputs get: its file's, or Fashion-MNIST's for files that predate the field. */
export function modelNormalize(meta: Pick<ModelMeta, 'normalize'>): NormalizeOptions {
  return meta.normalize ?? FASHION_MNIST_NORMALIZE;
}

/** One model's tensors, by stateDict name. */
export function stateRecords(model: Module, prefix = ''): TensorRecord[] {
  return model.stateDict().map(([name, t]) => ({ name: prefix + name, dtype: t.dtype === 'int32' ? 'I32' : 'F32', shape: [...t.shape], data: t.toArray() }));
}

export function encodeModel(model: Module, meta: ModelMeta): Uint8Array {
  const r = positiveInts.safeParse(meta.inputShape);
  if (!r.success) throw new RangeError(`encodeModel: inputShape ${JSON.stringify(meta.inputShape)} ${r.error.issues[0]?.message ?? 'is invalid'}`);
  const metadata: Record<string, string> = {
    format: MODEL_FORMAT,
    format_version: String(MODEL_FORMAT_VERSION),
    architecture: JSON.stringify(model.spec()),
    input_shape: JSON.stringify(meta.inputShape),
  };
  if (meta.classNames !== undefined) metadata['class_names'] = JSON.stringify(meta.classNames);
  if (meta.normalize !== undefined) {
    const problem = normalizeProblem(meta.normalize, meta.inputShape[0] as number);
    if (problem !== null) throw new RangeError(`encodeModel: ${problem}`);
    metadata['normalize'] = JSON.stringify({ mean: meta.normalize.mean, std: meta.normalize.std });
  }
  if (meta.training !== undefined) metadata['training'] = JSON.stringify(meta.training);
  return encodeSafetensors(stateRecords(model), metadata);
}

/** Parses one JSON metadata field and checks it with `schema`. */
export function jsonField<T>(f: SafetensorsFile, key: string, schema: z.ZodType<T>, required: true): T;
export function jsonField<T>(f: SafetensorsFile, key: string, schema: z.ZodType<T>, required: false): T | undefined;
export function jsonField<T>(f: SafetensorsFile, key: string, schema: z.ZodType<T>, required: boolean): T | undefined {
  const field = `__metadata__.${key}`;
  const text = f.metadata.get(key);
  if (text === undefined) {
    if (required) throw new ModelFileError(f.file, `the metadata has no ${key}`, { field });
    return undefined;
  }
  let value: unknown;
  try {
    value = parseJson(text);
  } catch (e) {
    const why = e instanceof JsonDepthError ? `: ${e.message}` : ` is not valid JSON (${describeError(e)})`;
    throw new ModelFileError(f.file, `metadata ${key}${why}`, { field, cause: e });
  }
  const r = schema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    const at = issue === undefined || issue.path.length === 0 ? '' : issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
    throw new ModelFileError(f.file, `metadata ${key}${at} ${issue?.message ?? 'is invalid'}`, { field });
  }
  return r.data;
}

/** Checks the format and version fields: `expected` names the kind of file (model file, checkpoint). */
export function checkFormat(f: SafetensorsFile, format: string, version: number, kind: string): void {
  const got = f.metadata.get('format');
  if (got !== format) {
    throw new ModelFileError(f.file, `not a ${kind}: metadata format is ${got === undefined ? 'missing' : JSON.stringify(got)}, expected "${format}"`, { field: '__metadata__.format' });
  }
  const v = f.metadata.get('format_version');
  const n = v !== undefined && /^[1-9]\d*$/.test(v) ? Number(v) : 0;
  if (n < 1 || n > version) {
    throw new ModelFileError(f.file, n > version ? `format_version ${v} is newer than this reader (${version}); update Parsimony` : `format_version ${JSON.stringify(v ?? null)} is not supported (expected "1" to "${version}")`, {
      field: '__metadata__.format_version',
    });
  }
  if (n >= 2 && !f.checksummed) {
    throw new ModelFileError(f.file, `the header has no checksums, which format_version ${v} files record: the file was altered after it was written`, { field: '__metadata__.data_crc32' });
  }
}

const architectureSchema = z.custom<ModuleSpec>((v) => typeof v === 'object' && v !== null && !Array.isArray(v) && typeof (v as { type?: unknown }).type === 'string', {
  error: 'should be a layer spec {type, ...}',
});

/**
 * Builds the file's architecture after checking, from the spec alone, that the file holds exactly the
 * tensors it needs; then copies the weights in. `prefix` selects the model's tensors among others.
 */
export function buildFromFile(f: SafetensorsFile, prefix = ''): { model: Module; spec: ModuleSpec } {
  const spec = jsonField(f, 'architecture', architectureSchema, true);
  const field = '__metadata__.architecture';
  let expected: ReturnType<typeof expectedState>;
  try {
    expected = expectedState(spec);
  } catch (e) {
    if (e instanceof SpecError) throw architectureError(f.file, e);
    throw e;
  }
  const present = new Map([...f.tensors].filter(([n]) => n.startsWith(prefix)).map(([n, t]) => [n.slice(prefix.length), t]));
  for (const [name, shape] of expected.shapes) {
    const t = present.get(name);
    if (t === undefined) throw new ModelFileError(f.file, `tensor ${prefix}${name} is missing: the architecture needs it with shape ${shapeText(shape)}`, { tensor: prefix + name });
    if (t.dtype !== 'F32') throw new ModelFileError(f.file, `tensor ${prefix}${name} is ${t.dtype}, the architecture needs F32`, { tensor: prefix + name, field: 'dtype' });
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new ModelFileError(f.file, `tensor ${prefix}${name} has shape ${shapeText(t.shape)}, the architecture needs ${shapeText(shape)}`, { tensor: prefix + name, field: 'shape' });
    }
  }
  if (expected.unruled.length === 0) {
    for (const name of present.keys()) {
      if (!expected.shapes.has(name)) throw new ModelFileError(f.file, `tensor ${prefix}${name} is not part of the architecture`, { tensor: prefix + name });
    }
  }
  const values = new Map<string, Float32Array>();
  for (const [name, t] of present) {
    const v = readTensor(f, t);
    if (v instanceof Float32Array) {
      const bad = firstNonFinite(v);
      if (bad >= 0) throw new ModelFileError(f.file, `tensor ${prefix}${name} holds ${v[bad]} at element ${bad}; weights must be finite`, { tensor: prefix + name });
      values.set(name, v);
    }
  }

  let model: Module;
  try {
    model = buildModule(spec);
  } catch (e) {
    if (e instanceof UnknownModuleError) {
      const where = expected.unruled.find((u) => e.message.includes(`'${u.type}'`))?.path;
      throw new ModelFileError(f.file, `architecture${where === undefined || where === '' ? '' : ` ${where}`}: ${e.message}`, { field, cause: e });
    }
    if (e instanceof SpecError) throw architectureError(f.file, e);
    throw new ModelFileError(f.file, `architecture cannot be built: ${describeError(e)}`, { field, cause: e });
  }
  const differs = specDifference(spec, model.spec(), '');
  if (differs !== null) {
    throw new ModelFileError(f.file, `architecture ${differs.path === '' ? '' : `${differs.path} `}${differs.message}`, { field });
  }
  const state = model.stateDict();
  for (const [name, t] of state) {
    const v = values.get(name);
    if (v === undefined || v.length !== t.size) {
      throw new ModelFileError(f.file, `tensor ${prefix}${name} ${v === undefined ? 'is missing' : `has ${v.length} values`}: the built model has ${t.describe()}`, { tensor: prefix + name });
    }
  }
  if (state.length !== values.size) {
    const known = new Set(state.map(([n]) => n));
    const extra = [...values.keys()].find((n) => !known.has(n));
    throw new ModelFileError(f.file, `tensor ${prefix}${extra ?? '?'} is not part of the architecture`, { tensor: `${prefix}${extra ?? ''}` });
  }
  for (const [name, t] of state) copyInto(t, values.get(name) as Float32Array);
  return { model, spec };
}

/** A SpecError of a file's architecture, as the file's error. */
export function architectureError(file: string, e: SpecError, context = ''): ModelFileError {
  return new ModelFileError(file, `architecture${e.path === '' ? '' : ` ${e.path}`}: ${e.detail}${context}`, { field: '__metadata__.architecture', cause: e });
}

/**
 * Checks at load that the model takes images of `inputShape` (every layer fits the shape it gets)
 * and that one image's activations stay within bounds.
 */
export function checkInputShape(file: string, model: Module, inputShape: readonly number[]): void {
  try {
    checkShapes(model, inputShape);
  } catch (e) {
    if (e instanceof SpecError) throw architectureError(file, e, ` (input_shape ${JSON.stringify(inputShape)})`);
    throw e;
  }
}

/**
 * Where a spec from a file says something the built model's spec does not: an unknown field, or a
 * value the builder changed. A number stands for the pair of it (`kernel: 3` is `[3, 3]`).
 */
function specDifference(file: unknown, built: unknown, path: string): { path: string; message: string } | null {
  if (typeof file === 'number' && Array.isArray(built) && built.length === 2 && built[0] === file && built[1] === file) return null;
  if (Array.isArray(file)) {
    if (!Array.isArray(built) || built.length !== file.length) return { path, message: `is ${JSON.stringify(file)?.slice(0, 60)}, the layer built from it has ${JSON.stringify(built)?.slice(0, 60)}` };
    for (let i = 0; i < file.length; i++) {
      const d = specDifference(file[i], built[i], `${path}[${i}]`);
      if (d !== null) return d;
    }
    return null;
  }
  if (typeof file === 'object' && file !== null) {
    if (typeof built !== 'object' || built === null || Array.isArray(built)) return { path, message: 'is an object, the layer built from it is not' };
    for (const [k, v] of Object.entries(file)) {
      const at = path === '' ? k : `${path}.${k}`;
      if (!Object.hasOwn(built, k)) return { path: at, message: 'is not a field this layer type knows' };
      const d = specDifference(v, (built as Record<string, unknown>)[k], at);
      if (d !== null) return d;
    }
    return null;
  }
  return Object.is(file, built) || file === built ? null : { path, message: `is ${JSON.stringify(file)}, the layer built from it has ${JSON.stringify(built)}` };
}

/** Overwrites a persistent tensor's values. */
export function copyInto(t: Tensor, values: Float32Array | Int32Array): void {
  if (t.dtype === 'float32') t.f32().set(values);
  else t.i32().set(values);
}

/**
 * A model and its metadata from the bytes of a model file. Every problem with the file is a
 * ModelFileError naming the file and, where it applies, the tensor. The model is in training mode,
 * as built; call `eval()` before inference.
 */
export function decodeModel(bytes: Uint8Array, options: DecodeOptions = {}): { model: Module; meta: ModelMeta } {
  const f = parseSafetensors(bytes, { file: options.file ?? 'model.safetensors' });
  checkFormat(f, MODEL_FORMAT, MODEL_FORMAT_VERSION, 'Parsimony model file');
  const inputShape = jsonField(f, 'input_shape', positiveInts, true);
  const names = jsonField(f, 'class_names', classNames, false);
  const normalize = jsonField(f, 'normalize', normalizeSchema, false);
  if (normalize !== undefined) {
    const problem = normalizeProblem(normalize, inputShape[0] as number);
    if (problem !== null) throw new ModelFileError(f.file, `metadata ${problem} (input_shape ${JSON.stringify(inputShape)})`, { field: '__metadata__.normalize' });
  }
  const training = jsonField(f, 'training', z.json(), false) as JsonValue | undefined;
  const { model } = buildFromFile(f);
  checkInputShape(f.file, model, inputShape);
  const meta: ModelMeta = {
    inputShape, ...(names === undefined ? {} : { classNames: names }), ...(normalize === undefined ? {} : { normalize }), ...(training === undefined ? {} : { training }),
  };
  return { model, meta };
}
