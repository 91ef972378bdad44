/**
 * Parsimony's inference runtime for browsers: model files in, compiled plans that skip switched-off
 * kernels out. Nothing here or below imports a Node module; kernels come from `browserPlatform`.
 *
 *     const engine = await init();                       // threads when cross-origin isolated
 *     const { model, meta } = await fetchModel('model.safetensors');
 *     const plan = compile(model, { inputShape: meta.inputShape, maxBatch: 1 });
 *     const x = normalizeImages(pixels, meta.inputShape, modelNormalize(meta));  // uint8 CHW in
 *     const logits = plan.run(x);  plan.telemetry();     // switch sets, MACs, time
 */
import { init as initEngine, type Engine } from '../autograd/engine.js';
import type { BackendOptions } from '../backend/backend.js';
import { decodeModel, type ModelMeta } from '../io/model-file.js';
import type { Module } from '../nn/module.js';
import { browserPlatform, type BrowserPlatformOptions } from './platform.js';

export { browserPlatform, browserFeatures, type BrowserFeatures, type BrowserPlatformOptions } from './platform.js';
export { Engine, engine } from '../autograd/engine.js';
export type { Backend } from '../backend/backend.js';
export type { SimdVariant, VariantChoice } from '../backend/wasm/loader.js';
export { compile, InferencePlan, denseTwin, pruneStatic, kernelsNeverOn, CompileError, PruneError, type CompileOptions, type RunOptions, type Telemetry, type LayerTelemetry } from '../infer/index.js';
export { decodeModel, modelNormalize, MODEL_FORMAT, MODEL_FORMAT_VERSION, type ModelMeta, type JsonValue } from '../io/model-file.js';
export { normalizeImages, type NormalizeOptions } from '../data/normalization.js';
export { ModelFileError } from '../io/errors.js';
export { Module } from '../nn/module.js';
export { convsInOrder, type ConvPlace } from '../nn/lkam.js';

export interface BrowserInitOptions extends BrowserPlatformOptions {
  /**
   * Threads, the page's included; default the browser's cores. Pages that are not cross-origin
   * isolated get one thread whatever is asked.
   */
  readonly threads?: number;
  /** Kernel build: `auto` picks relaxed SIMD when the browser has it. */
  readonly simd?: BackendOptions['simd'];
}

/** Creates the default engine on the browser's kernels (closing the previous one) and returns it. */
export async function init(options: BrowserInitOptions = {}): Promise<Engine> {
  const platform = browserPlatform(options.kernelUrls === undefined ? {} : { kernelUrls: options.kernelUrls });
  return initEngine({
    backend: 'wasm', platform,
    ...(options.threads === undefined ? {} : { threads: options.threads }),
    ...(options.simd === undefined ? {} : { simd: options.simd }),
  });
}

/**
 * A model and its metadata from a model file's URL or bytes, built on the default engine (call `init`
 * first). Problems with the file throw ModelFileError naming it.
 */
export async function fetchModel(source: string | URL | Uint8Array | ArrayBuffer): Promise<{ model: Module; meta: ModelMeta }> {
  if (source instanceof Uint8Array) return decodeModel(source);
  if (source instanceof ArrayBuffer) return decodeModel(new Uint8Array(source));
  const res = await fetch(source);
  if (!res.ok) throw new Error(`cannot fetch the model file ${String(source)}: HTTP ${res.status}`);
  const name = String(source).split('/').pop() ?? String(source);
  return decodeModel(new Uint8Array(await res.arrayBuffer()), { file: name });
}
