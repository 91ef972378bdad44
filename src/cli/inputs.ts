/** What commands read: Fashion-MNIST (built-in, Debian's full set, or a folder), model files, run directories. */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InMemoryDataset, loadFashionMnist, type Dataset } from '../data/index.js';
import { loadModel } from '../io/node-files.js';
import type { ModelMeta } from '../io/model-file.js';
import type { Module } from '../nn/module.js';
import { fmnistVgg5, smallResNet } from '../nn/zoo.js';
import { RUN_FILES } from '../report/run.js';
import { InputError } from './errors.js';
import type { ModelName } from './names.js';

/** The networks `train --model` builds; `width` (train --width) multiplies their channel counts. */
export const MODELS: Readonly<Record<ModelName, (width: number) => Module>> = {
  'fmnist-vgg5': (w) => fmnistVgg5({ width: w }),
  'fmnist-vgg5-wide': (w) => fmnistVgg5({ width: 2 * w }),
  'fmnist-vgg5-narrow': (w) => fmnistVgg5({ width: 0.25 * w }),
  'resnet-small': (w) => smallResNet({ width: Math.max(1, Math.round(16 * w)) }),
};

/** The per-channel normalisation training uses (Fashion-MNIST's pixel mean and deviation). */
export const NORMALIZE = { mean: [0.286], std: [0.353] } as const;


export interface Data {
  readonly train: InMemoryDataset;
  readonly test: InMemoryDataset;
  /** As given: builtin, full or the folder. */
  readonly source: string;
}

function firstImages(ds: InMemoryDataset, n: number): InMemoryDataset {
  if (n >= ds.length) return ds;
  const per = ds.shape[0] * ds.shape[1] * ds.shape[2];
  return new InMemoryDataset({ name: ds.name, pixels: ds.pixels.subarray(0, n * per), labels: ds.labels.subarray(0, n), shape: ds.shape, classNames: ds.classNames });
}

/** Loads `--data`; `limit` keeps the first images of each split (quick trials). */
export function loadData(where: string, limit?: number): Data {
  const both = where === 'builtin' ? loadFashionMnist({ subset: 'builtin' }) : where === 'full' ? loadFashionMnist({ subset: 'full' }) : loadFashionMnist({ dir: where });
  return limit === undefined ? { ...both, source: where } : { train: firstImages(both.train, limit), test: firstImages(both.test, limit), source: where };
}

/** `count` images of `ds` from `start`, normalised, NCHW float32. */
export function imagesOf(ds: Dataset, start = 0, count = ds.length - start): { images: Float32Array; labels: Int32Array } {
  const per = ds.shape[0] * ds.shape[1] * ds.shape[2];
  const hw = ds.shape[1] * ds.shape[2];
  const images = new Float32Array(count * per);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const item = ds.item(start + i);
    labels[i] = item.label;
    const scale = item.pixels instanceof Uint8Array ? 1 / 255 : 1;
    for (let j = 0; j < per; j++) {
      const c = Math.floor(j / hw);
      const mean = NORMALIZE.mean[Math.min(c, NORMALIZE.mean.length - 1)] as number;
      const std = NORMALIZE.std[Math.min(c, NORMALIZE.std.length - 1)] as number;
      images[i * per + j] = ((item.pixels[j] as number) * scale - mean) / std;
    }
  }
  return { images, labels };
}

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

/** The data set a model was trained on, as its file records (default builtin). */
export function trainedOn(meta: ModelMeta): string {
  const t = meta.training;
  if (t !== null && typeof t === 'object' && !Array.isArray(t)) {
    const d = (t as Record<string, unknown>)['data'];
    if (typeof d === 'string') return d;
  }
  return 'builtin';
}

/** Refuses a model whose input shape is not the data's image shape. */
export function checkFits(file: string, inputShape: readonly number[], data: Dataset, dataLabel: string): void {
  const s = data.shape;
  if (inputShape.length !== 3 || inputShape[0] !== s[0] || inputShape[1] !== s[1] || inputShape[2] !== s[2]) {
    throw new InputError(`${file}: the model reads ${inputShape.join('x')} images, but --data ${dataLabel} holds ${s.join('x')} images`);
  }
}

/** Refuses a model whose class count is not the data's. */
export function checkClasses(file: string, outputs: number, data: Dataset, dataLabel: string): void {
  if (outputs !== data.numClasses) throw new InputError(`${file}: the model has ${outputs} outputs, but --data ${dataLabel} has ${data.numClasses} classes`);
}
