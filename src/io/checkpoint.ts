/**
 * Crash-safe training checkpoints in the safetensors container: the model's parameters and buffers
 * (`model.<name>`), the optimizer's state tensors (`optim.<name>`, e.g. `optim.m.3`), and in the
 * metadata the architecture, the optimizer's step count, learning rate and hyper-parameters, named
 * random-generator states, the data loader's position, the epoch and the step.
 *
 * `saveCheckpoint` replaces the file atomically and keeps the one it replaces as `<path>.prev`;
 * `resume` restores everything from the newest readable of the two. A run killed at any moment and
 * resumed continues with bit-identical arithmetic (given the same engine and thread count).
 */
import { existsSync, renameSync, rmSync } from 'node:fs';
import { readRegularFile } from '../data/files.js';
import { z } from 'zod';
import type { LoaderState } from '../data/loader.js';
import type { Module } from '../nn/module.js';
import type { Optimizer } from '../optim/optimizer.js';
import { describeError, ModelFileError } from './errors.js';
import { checkFormat, copyInto, jsonField, stateRecords, type JsonValue } from './model-file.js';
import { writeFileAtomic } from './node-files.js';
import { encodeSafetensors, firstNonFinite, parseSafetensors, readTensor, shapeText, type TensorRecord } from './safetensors.js';

export const CHECKPOINT_FORMAT = 'parsimony-checkpoint';
/** Version 2 checkpoints record checksums (as model files do). */
export const CHECKPOINT_FORMAT_VERSION = 2;
const MODEL_PREFIX = 'model.';
const OPTIM_PREFIX = 'optim.';

/** A random generator whose state can be saved and restored (nn's and data's Rng both are). */
export interface RandomState {
  getState(): readonly number[];
  setState(state: readonly number[]): void;
}

/** A data loader's position (DataLoader is one). */
export interface LoaderPosition {
  getState(): LoaderState;
  setState(state: LoaderState): void;
}

/** What a checkpoint restores into. */
export interface CheckpointTargets {
  readonly model: Module;
  readonly optimizer: Optimizer;
  readonly loader?: LoaderPosition;
  readonly rngs?: Readonly<Record<string, RandomState>>;
}

export interface TrainingState extends CheckpointTargets {
  /** The epoch in progress; with the loader's position it says where training continues. */
  readonly epoch: number;
  /** Optimisation steps done. */
  readonly step: number;
  /** Anything else the training script wants back (JSON). */
  readonly extra?: JsonValue;
}

const uint32 = z.number().refine((v) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff, { error: 'should be an unsigned 32-bit integer' });
const count = z.number().refine((v) => Number.isSafeInteger(v) && v >= 0, { error: 'should be a whole number >= 0' });
const checkpointSchema = z.strictObject({
  epoch: count,
  step: count,
  optimizer: z.strictObject({
    type: z.string(),
    parameters: count,
    lr: z.number(),
    stepCount: count,
    hyper: z.record(z.string(), z.union([z.number(), z.boolean()])),
  }),
  loader: z.strictObject({ seed: uint32, epoch: count, position: count, samples: count }).nullable(),
  rngs: z.record(z.string(), z.array(uint32)),
  extra: z.json().optional(),
});
type CheckpointRecord = z.infer<typeof checkpointSchema>;

/** A decoded checkpoint, checked for internal consistency but not yet applied to anything. */
export interface Checkpoint extends CheckpointRecord {
  readonly file: string;
  /** `JSON.stringify(model.spec())` of the model it was taken from. */
  readonly architecture: string;
  readonly modelTensors: ReadonlyMap<string, { shape: readonly number[]; values: Float32Array }>;
  readonly optimizerTensors: ReadonlyMap<string, { shape: readonly number[]; values: Float32Array }>;
}

function hyperParameters(o: Optimizer): Record<string, number | boolean> {
  const out: Record<string, number | boolean> = {};
  for (const [k, v] of Object.entries(o)) {
    if (k === 'lr' || k === 'stepCount') continue;
    if (typeof v === 'number' || typeof v === 'boolean') out[k] = v;
  }
  return out;
}

export function encodeCheckpoint(s: TrainingState): Uint8Array {
  const record: CheckpointRecord = {
    epoch: s.epoch,
    step: s.step,
    optimizer: { type: s.optimizer.constructor.name, parameters: s.optimizer.params.length, lr: s.optimizer.lr, stepCount: s.optimizer.stepCount, hyper: hyperParameters(s.optimizer) },
    loader: s.loader === undefined ? null : { ...s.loader.getState() },
    rngs: Object.fromEntries(Object.entries(s.rngs ?? {}).map(([k, r]) => [k, [...r.getState()]])),
    ...(s.extra === undefined ? {} : { extra: s.extra as z.infer<ReturnType<typeof z.json>> }),
  };
  const checked = checkpointSchema.safeParse(record);
  if (!checked.success) throw new RangeError(`encodeCheckpoint: ${checked.error.issues[0]?.path.join('.')} ${checked.error.issues[0]?.message}`);
  const tensors: TensorRecord[] = [
    ...stateRecords(s.model, MODEL_PREFIX),
    ...s.optimizer.stateTensors().map(([name, t]): TensorRecord => ({ name: OPTIM_PREFIX + name, dtype: 'F32', shape: [...t.shape], data: t.f32().slice() })),
  ];
  return encodeSafetensors(tensors, {
    format: CHECKPOINT_FORMAT,
    format_version: String(CHECKPOINT_FORMAT_VERSION),
    architecture: JSON.stringify(s.model.spec()),
    checkpoint: JSON.stringify(record),
  });
}

export function decodeCheckpoint(bytes: Uint8Array, file = 'checkpoint.safetensors'): Checkpoint {
  const f = parseSafetensors(bytes, { file });
  checkFormat(f, CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION, 'Parsimony checkpoint');
  const architecture = f.metadata.get('architecture');
  if (architecture === undefined) throw new ModelFileError(file, 'the metadata has no architecture', { field: '__metadata__.architecture' });
  const record = jsonField(f, 'checkpoint', checkpointSchema, true);
  const modelTensors = new Map<string, { shape: readonly number[]; values: Float32Array }>();
  const optimizerTensors = new Map<string, { shape: readonly number[]; values: Float32Array }>();
  for (const t of f.tensors.values()) {
    const into = t.name.startsWith(MODEL_PREFIX) ? modelTensors : t.name.startsWith(OPTIM_PREFIX) ? optimizerTensors : null;
    if (into === null) throw new ModelFileError(file, `tensor ${t.name} is neither model.* nor optim.*`, { tensor: t.name });
    if (t.dtype !== 'F32') throw new ModelFileError(file, `tensor ${t.name} is ${t.dtype}, checkpoints hold F32`, { tensor: t.name, field: 'dtype' });
    const values = readTensor(f, t) as Float32Array;
    const bad = firstNonFinite(values);
    if (bad >= 0) throw new ModelFileError(file, `tensor ${t.name} holds ${values[bad]} at element ${bad}`, { tensor: t.name });
    into.set(t.name.slice(t.name.startsWith(MODEL_PREFIX) ? MODEL_PREFIX.length : OPTIM_PREFIX.length), { shape: t.shape, values });
  }
  return { ...record, file, architecture, modelTensors, optimizerTensors };
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Checks that `tensors` name exactly the `targets` with the same shapes. */
function matchTensors(file: string, what: string, prefix: string, tensors: ReadonlyMap<string, { shape: readonly number[] }>, targets: ReadonlyArray<readonly [string, { shape: readonly number[] }]>): void {
  for (const [name, t] of targets) {
    const c = tensors.get(name);
    if (c === undefined) throw new ModelFileError(file, `tensor ${prefix}${name} is missing: the ${what} has it with shape ${shapeText(t.shape)}`, { tensor: prefix + name });
    if (!sameShape(c.shape, t.shape)) throw new ModelFileError(file, `tensor ${prefix}${name} has shape ${shapeText(c.shape)}, the ${what} has ${shapeText(t.shape)}`, { tensor: prefix + name, field: 'shape' });
  }
  if (tensors.size !== targets.length) {
    const known = new Set(targets.map(([n]) => n));
    const extra = [...tensors.keys()].find((n) => !known.has(n)) ?? '?';
    throw new ModelFileError(file, `tensor ${prefix}${extra} has no counterpart in the ${what}`, { tensor: prefix + extra });
  }
}

/**
 * Makes the optimizer allocate its (lazily created) state tensors so that they can be overwritten:
 * one step with zero gradients and a zero learning rate. The parameters it may touch are restored
 * from the checkpoint afterwards.
 */
function allocateOptimizerState(o: Optimizer): void {
  const { lr, stepCount } = o;
  o.zeroGrad();
  o.lr = 0;
  try {
    o.step();
  } finally {
    o.lr = lr;
    o.stepCount = stepCount;
  }
  o.zeroGrad();
}

/**
 * Restores a decoded checkpoint into the targets. Everything that can be checked without touching
 * them is checked first; a ModelFileError leaves the model, loader and generators unchanged (the
 * optimizer may have allocated its state tensors).
 */
export function applyCheckpoint(ck: Checkpoint, t: CheckpointTargets): { epoch: number; step: number; extra: JsonValue | undefined } {
  const file = ck.file;
  const spec = JSON.stringify(t.model.spec());
  if (spec !== ck.architecture) throw new ModelFileError(file, `the checkpoint was taken from another architecture: ${ck.architecture.slice(0, 200)}`, { field: '__metadata__.architecture' });
  matchTensors(file, 'model', MODEL_PREFIX, ck.modelTensors, t.model.stateDict());
  const o = t.optimizer;
  const want = ck.optimizer;
  if (o.constructor.name !== want.type) throw new ModelFileError(file, `the checkpoint holds ${want.type} state, the optimizer is ${o.constructor.name}`, { field: 'checkpoint.optimizer.type' });
  if (o.params.length !== want.parameters) throw new ModelFileError(file, `the checkpoint's optimizer had ${want.parameters} parameters, this one has ${o.params.length}`, { field: 'checkpoint.optimizer.parameters' });
  const hyper = hyperParameters(o);
  for (const key of new Set([...Object.keys(hyper), ...Object.keys(want.hyper)])) {
    if (hyper[key] !== want.hyper[key]) {
      throw new ModelFileError(file, `the checkpoint was written with ${want.type} ${key} = ${String(want.hyper[key])}, this optimizer has ${String(hyper[key])}`, { field: `checkpoint.optimizer.hyper.${key}` });
    }
  }
  const rngNames = Object.keys(t.rngs ?? {}).sort();
  const savedRngs = Object.keys(ck.rngs).sort();
  if (rngNames.join('\n') !== savedRngs.join('\n')) {
    throw new ModelFileError(file, `the checkpoint holds random generators [${savedRngs.join(', ')}], the targets are [${rngNames.join(', ')}]`, { field: 'checkpoint.rngs' });
  }
  if ((ck.loader === null) !== (t.loader === undefined)) {
    throw new ModelFileError(file, ck.loader === null ? 'the checkpoint has no data-loader state, but a loader was given' : 'the checkpoint has a data-loader state, but no loader was given', { field: 'checkpoint.loader' });
  }
  if (ck.optimizer.stepCount === 0 && ck.optimizerTensors.size > 0) {
    throw new ModelFileError(file, 'the checkpoint holds optimizer state tensors but its step count is 0', { field: 'checkpoint.optimizer.stepCount' });
  }

  if (ck.optimizer.stepCount > 0 && o.stateTensors().length === 0) allocateOptimizerState(o);
  const optimState = o.stateTensors();
  matchTensors(file, 'optimizer', OPTIM_PREFIX, ck.optimizerTensors, optimState);

  const rngBefore = Object.entries(t.rngs ?? {}).map(([k, r]) => [k, r.getState()] as const);
  const loaderBefore = t.loader?.getState();
  try {
    for (const [k, r] of Object.entries(t.rngs ?? {})) r.setState(ck.rngs[k] as number[]);
    if (t.loader !== undefined && ck.loader !== null) t.loader.setState(ck.loader);
  } catch (e) {
    for (const [k, s] of rngBefore) t.rngs?.[k]?.setState(s);
    if (loaderBefore !== undefined) t.loader?.setState(loaderBefore);
    throw new ModelFileError(file, `the checkpoint's loader or generator state does not fit: ${describeError(e)}`, { field: 'checkpoint', cause: e });
  }
  for (const [name, target] of t.model.stateDict()) copyInto(target, (ck.modelTensors.get(name) as { values: Float32Array }).values);
  for (const [name, target] of optimState) copyInto(target, (ck.optimizerTensors.get(name) as { values: Float32Array }).values);
  o.lr = want.lr;
  o.stepCount = want.stepCount;
  return { epoch: ck.epoch, step: ck.step, extra: ck.extra as JsonValue | undefined };
}

/** Writes a checkpoint atomically; the checkpoint it replaces stays as `<path>.prev`. */
export function saveCheckpoint(path: string, state: TrainingState): void {
  writeFileAtomic(path, encodeCheckpoint(state), { keepPrevious: true });
}

export interface Resumed {
  readonly epoch: number;
  readonly step: number;
  readonly extra: JsonValue | undefined;
  /** The file restored from: `path`, or `<path>.prev` when `path` was missing or unreadable. */
  readonly file: string;
  /** Why newer files were passed over. */
  readonly skipped: readonly ModelFileError[];
  /** Where the files passed over were moved (`<file>.corrupt`), so that the next save keeps the usable one as `.prev`. */
  readonly setAside: readonly string[];
}

/**
 * Restores the newest usable checkpoint at `path` (or its `.prev`) into the targets. Returns null when
 * neither file exists; throws a ModelFileError naming both problems when neither can be used.
 */
export function resume(path: string, targets: CheckpointTargets): Resumed | null {
  const skipped: ModelFileError[] = [];
  let found = false;
  for (const file of [path, `${path}.prev`]) {
    if (!existsSync(file)) continue;
    found = true;
    let bytes: Uint8Array;
    try {
      bytes = readRegularFile(file, { what: 'a checkpoint' });
    } catch (e) {
      if (((e as Error).cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') continue;
      // A folder, FIFO or unreadable file in the checkpoint's place: the other file may still do.
      skipped.push(new ModelFileError(file, describeError(e).replace(`${file}: `, ''), { cause: e }));
      continue;
    }
    try {
      const ck = decodeCheckpoint(bytes, file);
      const restored = applyCheckpoint(ck, targets);
      const setAside = skipped.map((s) => {
        const aside = `${s.file}.corrupt`;
        rmSync(aside, { recursive: true, force: true });
        renameSync(s.file, aside);
        return aside;
      });
      return { ...restored, file, skipped, setAside };
    } catch (e) {
      if (!(e instanceof ModelFileError)) throw e;
      skipped.push(e);
    }
  }
  if (!found) return null;
  throw new ModelFileError(path, `no usable checkpoint: ${skipped.map((e) => e.message).join('; ')}`, { cause: skipped[0] });
}
