/** Measuring a trained model on a set of images: per-epoch validation, the final test figure and the run directory's eval.json. */
import { DataLoader, InMemoryDataset, materialize, normalizeImages, type Dataset, type NormalizeOptions } from '../data/index.js';
import { compile } from '../infer/plan.js';
import type { Module } from '../nn/module.js';
import type { EvalRecord, Thumbnail } from '../report/run.js';
import { measureParsimony, type ParsimonyReport } from './parsimony.js';

/** `count` images of `ds` from `start`, normalised as `normalize` says, NCHW float32. */
export function imagesOf(ds: Dataset, normalize: NormalizeOptions, start = 0, count = ds.length - start): { images: Float32Array; labels: Int32Array } {
  const per = ds.shape[0] * ds.shape[1] * ds.shape[2];
  const labels = new Int32Array(count);
  const st = ds instanceof InMemoryDataset ? ds : null;
  if (st !== null) {
    labels.set(st.labels.subarray(start, start + count));
    return { images: normalizeImages(st.pixels.subarray(start * per, (start + count) * per), ds.shape, normalize), labels };
  }
  const images = new Float32Array(count * per);
  for (let i = 0; i < count; i++) {
    const item = ds.item(start + i);
    labels[i] = item.label;
    normalizeImages(item.pixels, ds.shape, normalize, images.subarray(i * per, (i + 1) * per));
  }
  return { images, labels };
}

/** Images shown at each end of the cost range. */
export const THUMBNAILS = 8;
const PLAN_BATCH = 64;

/** measureParsimony over a dataset, in batches of 500. */
export function measureOn(model: Module, test: Dataset, normalize: NormalizeOptions): ParsimonyReport {
  const loader = new DataLoader(test, { batchSize: 500, shuffle: false, normalize, workers: 0 });
  try {
    return measureParsimony(model, loader.epoch(0), test.numClasses);
  } finally {
    loader.close();
  }
}

function thumbnail(test: InMemoryDataset, index: number, p: ParsimonyReport): Thumbnail {
  const per = test.shape[0] * test.shape[1] * test.shape[2];
  const raw = test.pixels.subarray(index * per, (index + 1) * per);
  const bytes = raw instanceof Uint8Array ? raw : Uint8Array.from(raw, (v) => Math.max(0, Math.min(255, Math.round(v * 255))));
  return {
    index, label: p.labels[index] as number, prediction: p.predictions[index] as number, macs: p.perImageMacs[index] as number,
    shape: [...test.shape], pixels: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64'),
  };
}

/**
 * measureParsimony on the training graph, the compiled skipping plan on the same images (accuracy,
 * multiply-adds, time per image, agreement of its predictions with the graph's) and the images at
 * both ends of the cost range.
 */
export function evaluateModel(model: Module, data: Dataset, labels: { model: string; data: string }, normalize: NormalizeOptions, p: ParsimonyReport = measureOn(model, data, normalize)): EvalRecord {
  const test = data instanceof InMemoryDataset ? data : materialize(data);
  const { images, labels: y } = imagesOf(test, normalize);
  const per = test.shape[0] * test.shape[1] * test.shape[2];
  const n = y.length;
  const plan = compile(model, { inputShape: [...test.shape], maxBatch: Math.min(PLAN_BATCH, Math.max(1, n)), skip: true });
  let correct = 0, agree = 0, macs = 0, lkamMacs = 0, ms = 0;
  try {
    for (let n0 = 0; n0 < n; n0 += plan.maxBatch) {
      const b = Math.min(plan.maxBatch, n - n0);
      const out = plan.run(images.subarray(n0 * per, (n0 + b) * per));
      const t = plan.telemetry();
      ms += t.timeMs;
      for (let i = 0; i < b; i++) {
        macs += t.macs[i] as number;
        lkamMacs += t.lkamMacs[i] as number;
        let best = 0;
        for (let k = 1; k < plan.outputSize; k++) if ((out[i * plan.outputSize + k] as number) > (out[i * plan.outputSize + best] as number)) best = k;
        if (best === y[n0 + i]) correct++;
        if (best === p.predictions[n0 + i]) agree++;
      }
    }
  } finally {
    plan.dispose();
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => (p.perImageMacs[a] as number) - (p.perImageMacs[b] as number) || a - b);
  const k = Math.min(THUMBNAILS, Math.floor(n / 2));
  const meanMacs = n > 0 ? macs / n : 0;
  return {
    model: labels.model, data: labels.data, classNames: [...test.classNames], images: n,
    accuracy: p.accuracy, loss: p.loss, macs: { ...p.macs, perClass: [...p.macs.perClass] },
    layers: p.layers.map((l) => ({ ...l, onRate: [...l.onRate], onRateByClass: l.onRateByClass.map((r) => [...r]) })),
    perImageMacs: Array.from(p.perImageMacs), labels: Array.from(p.labels), predictions: Array.from(p.predictions),
    plan: {
      accuracy: n > 0 ? correct / n : 0, meanMacs, lkamMacs: n > 0 ? lkamMacs / n : 0, denseMacs: plan.denseMacs,
      reduction: meanMacs > 0 ? plan.denseMacs / meanMacs : 0, imageMs: n > 0 ? ms / n : 0, batch: plan.maxBatch, threads: plan.threads, agreesWithGraph: n > 0 ? agree / n : 1,
    },
    cheapest: order.slice(0, k).map((i) => thumbnail(test, i, p)),
    costliest: order.slice(n - k).reverse().map((i) => thumbnail(test, i, p)),
  };
}
