/**
 * Fitting a trained model to data: the check every command makes before it measures or trains a model
 * on a data set, and the start of a fine-tune (a trained dense model with LKAMs added exactly open).
 */
import { readFileSync } from 'node:fs';
import type { ImageShape } from '../data/dataset.js';
import type { NormalizeOptions } from '../data/normalization.js';
import { modelNormalize, type ModelMeta } from '../io/model-file.js';
import { loadModel } from '../io/node-files.js';
import { addLKAMs, convsInOrder, gates, setGains, type AddLkamOptions, type GainKind } from '../nn/lkam.js';
import type { Module } from '../nn/module.js';

/** A model that does not fit the data it was given, or cannot be fine-tuned; the message names both. */
export class ModelFitError extends Error {
  override readonly name = 'ModelFitError';
}

/** What a data set offers a model: its image shape and its classes. */
export interface DataShape {
  readonly inputShape: ImageShape | readonly number[];
  readonly classNames: readonly string[];
}

function names(list: readonly string[]): string {
  const shown = list.slice(0, 4).map((n) => `'${n}'`).join(', ');
  return list.length > 4 ? `${shown}, ... (${list.length})` : shown;
}

/**
 * Why `model` (with its file's meta) cannot read `data`, as "reads 1x28x28 images, but {dataLabel} holds
 * 3x32x32 images", or null when the input shape, the class count and (when the file records them) the
 * class names agree.
 */
export function modelDataMismatch(model: Module, meta: Pick<ModelMeta, 'inputShape' | 'classNames'>, data: DataShape, dataLabel: string): string | null {
  const s = data.inputShape;
  const m = meta.inputShape;
  if (m.length !== s.length || m.some((d, i) => d !== s[i])) return `reads ${m.join('x')} images, but ${dataLabel} holds ${s.join('x')} images`;
  const outputs = model.outputShape([1, ...m])[1] as number;
  if (outputs !== data.classNames.length) return `has ${outputs} outputs, but ${dataLabel} has ${data.classNames.length} classes (${names(data.classNames)})`;
  const own = meta.classNames;
  if (own !== undefined && own.length === data.classNames.length) {
    const at = own.findIndex((n, i) => n !== data.classNames[i]);
    if (at >= 0) return `has classes ${names(own)}, but ${dataLabel} has ${names(data.classNames)} (class ${at} is '${own[at]}' in the model, '${data.classNames[at]}' in the data)`;
  }
  return null;
}

/** Throws a ModelFitError "{file} {mismatch}" when the model does not fit the data. */
export function checkModelFits(file: string, model: Module, meta: Pick<ModelMeta, 'inputShape' | 'classNames'>, data: DataShape, dataLabel: string): void {
  const problem = modelDataMismatch(model, meta, data, dataLabel);
  if (problem !== null) throw new ModelFitError(`${file}: the model ${problem}`);
}

export interface TrainedModel {
  readonly model: Module;
  /** The file's meta; an ONNX file has only its input shape. */
  readonly meta: ModelMeta;
  readonly file: string;
  readonly format: 'parsimony' | 'onnx';
}

/**
 * A trained model from a Parsimony model file (safetensors) or an ONNX file (through the importer,
 * which loads the optional onnx-proto only then), by its extension.
 */
export async function openTrainedModel(file: string): Promise<TrainedModel> {
  if (/\.onnx$/i.test(file)) {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(file);
    } catch (e) {
      throw new ModelFitError(`${file}: cannot read the ONNX file (${(e as Error).message})`);
    }
    const { importOnnx } = await import('../io/onnx-import.js');
    const r = importOnnx(bytes, { file });
    return { model: r.model, meta: { inputShape: r.inputShape }, file, format: 'onnx' };
  }
  const { model, meta } = loadModel(file);
  return { model, meta, file, format: 'parsimony' };
}

export interface FineTuneOptions {
  /** The LKAMs to add (bank, pool, grid, switch kind, which convs); they start exactly open unless `initOpen` says otherwise. */
  readonly lkam?: AddLkamOptions;
  /** Per-gate gains (default 'macs'). */
  readonly gains?: GainKind;
  /**
   * The normalisation to train with when the model file records none: an ONNX file never does, so the
   * data's (from its training split) is used; a Parsimony file without one was trained with Fashion-MNIST's.
   */
  readonly dataNormalize?: NormalizeOptions;
}

export interface FineTuneStart {
  /** The trained network with LKAMs added; at step 0 it computes exactly what the trained network did. */
  readonly model: Module;
  /** The normalisation the trained network expects: fine-tuning must feed it the same inputs. */
  readonly normalize: NormalizeOptions;
  readonly inputShape: readonly number[];
  /** Conv indices (as `--layers` counts them) that the LKAMs gate. */
  readonly gated: number[];
}

/**
 * The start of a fine-tune: refuses a model that already has LKAMs or does not fit the data (one line
 * naming the file and the data), then adds LKAMs that start exactly open, so the network's function is
 * unchanged at step 0. The returned model shares the trained model's layers and weights.
 */
export function prepareFineTune(trained: TrainedModel, data: DataShape, dataLabel: string, options: FineTuneOptions = {}): FineTuneStart {
  const existing = gates(trained.model);
  if (existing.length > 0) {
    const gated = convsInOrder(trained.model).flatMap((c, i) => (c.gate === null ? [] : [`conv ${i}`]));
    throw new ModelFitError(`${trained.file}: the model already has ${existing.length} LKAM(s) (gating ${gated.join(', ') || 'layers other than convs'}); fine-tuning starts from a trained dense model`);
  }
  checkModelFits(trained.file, trained.model, trained.meta, data, dataLabel);
  const model = addLKAMs(trained.model, options.lkam ?? {});
  const inputShape = [...trained.meta.inputShape];
  setGains(model, options.gains ?? 'macs', [1, ...inputShape]);
  const normalize = trained.meta.normalize ?? (trained.format === 'onnx' && options.dataNormalize !== undefined ? options.dataNormalize : modelNormalize(trained.meta));
  return { model, normalize, inputShape, gated: convsInOrder(model).flatMap((c, i) => (c.gate === null ? [] : [i])) };
}
