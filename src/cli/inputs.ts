/** What commands read: the data `--data` names (through openData), model files, run directories. */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { detectKind, normalizeImages, openData, type Dataset, type DataOptions, type DataOptionsInput, type NormalizeOptions, type OpenedData } from '../data/index.js';
import { InMemoryDataset } from '../data/dataset.js';
import { loadModel } from '../io/node-files.js';
import { modelNormalize, type ModelMeta } from '../io/model-file.js';
import type { Module } from '../nn/module.js';
import { RUN_FILES } from '../report/run.js';
import { checkModelFits } from '../train/fine-tune.js';
import { InputError } from './errors.js';

export { MODELS, type ModelShape } from '../train/models.js';

/** Data opened for a command, with the `--data` label its messages use. */
export interface Data extends OpenedData {
  /** As given: builtin, full or the folder. */
  readonly source: string;
}

/** The data options of a command's flags (undefined ones left out). */
export function dataFlags(f: Partial<DataOptions>): DataOptionsInput {
  return {
    ...(f.data === undefined ? {} : { data: f.data }),
    ...(f.inputSize === undefined ? {} : { inputSize: [...f.inputSize] }),
    ...(f.color === undefined ? {} : { color: f.color }),
    ...(f.limit === undefined ? {} : { limit: f.limit }),
  };
}

/** Opens the data named by the data options (see dataOptionsSchema). */
export async function loadData(options: DataOptionsInput): Promise<Data> {
  const d = await openData(options);
  return { ...d, source: d.options.data };
}

export { imagesOf } from '../train/evaluation.js';

export interface ModelSource {
  readonly model: Module;
  readonly meta: ModelMeta;
  /** The model file read. */
  readonly file: string;
  /** The run directory it belongs to, when a run directory was given. */
  readonly runDir: string | null;
}

/** A model file, or a run directory (its model.safetensors). */
export function openModel(arg: string, what = 'MODEL'): ModelSource {
  if (!existsSync(arg)) throw new InputError(`${arg}: no such file or run directory (${what} is a model file or a run directory from parsimony train --out)`);
  let file = arg;
  let runDir: string | null = null;
  if (statSync(arg).isDirectory()) {
    runDir = arg;
    file = join(arg, RUN_FILES.model);
    if (!existsSync(file)) throw new InputError(`${arg}: no ${RUN_FILES.model} in this run directory (has its training finished? continue it with parsimony train --resume ${arg})`);
  }
  const { model, meta } = loadModel(file);
  model.eval();
  return { model, meta, file, runDir };
}

/**
 * The data options a model was trained with, as its file records them (default builtin); for an image
 * folder the colour follows the model's input channels when the record does not say.
 */
export function trainedOn(meta: ModelMeta): DataOptionsInput {
  const t = meta.training;
  const rec = t !== null && typeof t === 'object' && !Array.isArray(t) ? (t as Readonly<Record<string, unknown>>) : {};
  const d = rec['data'];
  const size = rec['inputSize'];
  const color = rec['color'];
  return {
    data: typeof d === 'string' ? d : 'builtin',
    ...(Array.isArray(size) && size.length === 2 && size.every((v) => typeof v === 'number') ? { inputSize: size as number[] } : {}),
    color: color === 'rgb' || color === 'grayscale' ? color : meta.inputShape[0] === 1 ? 'grayscale' : 'rgb',
  };
}

/**
 * The data a command measures a model on: the flags' data options, each one not given taken from what
 * the model was trained on (`--data` defaults to its data set); the model must fit it.
 */
export async function dataForModel(src: ModelSource, f: Partial<DataOptions>): Promise<Data> {
  const given = dataFlags(f);
  const recorded = trainedOn(src.meta);
  const where = given.data ?? recorded.data ?? 'builtin';
  const folder = where !== 'builtin' && where !== 'full' && detectKind(where) === 'image-folder';
  // The recorded size and colour are an image folder's; other formats have their own.
  const defaults: DataOptionsInput = folder ? { ...(recorded.inputSize === undefined ? {} : { inputSize: recorded.inputSize }), ...(recorded.color === undefined ? {} : { color: recorded.color }) } : {};
  const data = await loadData({ ...defaults, ...given, data: where });
  checkModelFits(src.file, src.model, src.meta, data, `--data ${data.source}`);
  return data;
}

/** The normalisation a model's inputs get (its file's, or Fashion-MNIST's for files that predate the field). */
export function normalizeOf(src: Pick<ModelSource, 'meta'>): NormalizeOptions {
  return modelNormalize(src.meta);
}
