/**
 * Measuring a gated network: per-image effective multiply-adds, kernel activity per layer, and
 * accuracy, over a set of batches in eval mode.
 */
import { engine } from '../autograd/engine.js';
import { convsInOrder, gates, recordGates, type Gated } from '../nn/lkam.js';
import type { Module } from '../nn/module.js';
import * as ops from '../ops/index.js';
import type { Shape } from '../tensor/tensor.js';
import { batchTensors, type Batch } from './fit.js';

export interface LayerActivity {
  /** Dotted module path of the gate. */
  readonly name: string;
  /** Index of the gated conv among the network's convs, as `addLKAMs({ layers })` and `--layers` count them
   * (null for a gate outside the sequences and residual bodies that numbering walks). */
  readonly conv: number | null;
  readonly kernels: number;
  /** Mean fraction of kernels on per image. */
  readonly meanOn: number;
  /** Mean switch value. */
  readonly meanSwitch: number;
  /** Kernels off for every image (prunable), on for some, on for every image. */
  readonly alwaysOff: number;
  readonly sometimesOff: number;
  readonly neverOff: number;
  /** Fraction of images in which each kernel was on. */
  readonly onRate: number[];
  /** onRateByClass[class][kernel]. */
  readonly onRateByClass: number[][];
}

export interface MacStats {
  readonly dense: number;
  readonly mean: number;
  readonly min: number;
  readonly median: number;
  readonly max: number;
  /** dense / mean. */
  readonly reduction: number;
  readonly perClass: number[];
}

export interface ParsimonyReport {
  readonly accuracy: number;
  readonly loss: number;
  readonly count: number;
  readonly macs: MacStats;
  readonly layers: LayerActivity[];
  /** Effective MACs of each image, in order. */
  readonly perImageMacs: Float64Array;
  readonly labels: Int32Array;
  readonly predictions: Int32Array;
}

/** Multiply-adds of one image in the network without its LKAMs, every kernel computed: the dense twin's cost. */
export function denseMacs(model: Module, inputShape: Shape): number {
  return model.macs([1, ...inputShape.slice(inputShape.length - 3)], false);
}

export function measureParsimony(model: Module, batches: Iterable<Batch>, numClasses: number): ParsimonyReport {
  const e = engine();
  const gs = gates(model);
  const places = convsInOrder(model);
  const place = new Map<Gated, { path: string; conv: number }>();
  places.forEach((c, i) => { if (c.gate !== null) place.set(c.gate.module, { path: c.gate.path, conv: i }); });
  const gateIndex = new Map(gs.map((g, i) => [g, i]));
  const onCount = gs.map((g) => new Float64Array(g.lkam.switches));
  const onByClass = gs.map((g) => Array.from({ length: numClasses }, () => new Float64Array(g.lkam.switches)));
  const switchSum = gs.map(() => 0);
  const classCount = new Float64Array(numClasses);
  const macs: number[] = [];
  const labels: number[] = [];
  const preds: number[] = [];
  let loss = 0;
  let shape: Shape | null = null;
  model.eval();
  try {
    for (const b of batches) {
      shape ??= b.shape.slice(1);
      try {
        e.noGrad(() => {
          const n = b.shape[0];
          const { x, y } = batchTensors(b);
          ops.macMeter.start(n);
          const { value: logits, readings } = recordGates(() => model.forward(x));
          const perImage = ops.macMeter.stop();
          loss += ops.softmaxCrossEntropy(logits, y).item() * n;
          const p = ops.argmax(logits);
          for (let i = 0; i < n; i++) {
            macs.push(perImage[i] as number);
            labels.push(b.y[i] as number);
            preds.push(p[i] as number);
            classCount[b.y[i] as number]!++;
          }
          for (const r of readings) {
            const gi = gateIndex.get(r.gate);
            if (gi === undefined) continue;
            const g = r.gate;
            const on = r.switches.values;
            const set = r.on;
            switchSum[gi]! += e.backend.kernels.sum(on.ptr, on.size);
            const M = g.lkam.switches;
            for (let i = 0; i < n; i++) {
              const cls = b.y[i] as number;
              for (let k = 0; k < M; k++) {
                if (set.active[i * M + k] === 1) {
                  onCount[gi]![k]!++;
                  onByClass[gi]![cls]![k]!++;
                }
              }
            }
          }
        });
      } finally {
        ops.macMeter.stop();
        e.endStep();
      }
    }
  } finally {
    model.train(true);
  }
  const count = labels.length;
  const dense = shape === null ? 0 : denseMacs(model, shape);
  const sorted = [...macs].sort((a, b) => a - b);
  const mean = count > 0 ? macs.reduce((a, b) => a + b, 0) / count : 0;
  const perClassSum = new Float64Array(numClasses);
  labels.forEach((l, i) => { perClassSum[l]! += macs[i] as number; });
  let correct = 0;
  for (let i = 0; i < count; i++) if (labels[i] === preds[i]) correct++;
  const layers: LayerActivity[] = gs.map((g, gi) => {
    const M = g.lkam.switches;
    const rate = Array.from(onCount[gi]!, (c) => (count > 0 ? c / count : 0));
    return {
      name: place.get(g)?.path ?? `gate${gi}`,
      conv: place.get(g)?.conv ?? null,
      kernels: M,
      meanOn: rate.reduce((a, b) => a + b, 0) / M,
      meanSwitch: count > 0 ? (switchSum[gi] as number) / (count * M) : 0,
      alwaysOff: rate.filter((r) => r === 0).length,
      sometimesOff: rate.filter((r) => r > 0 && r < 1).length,
      neverOff: rate.filter((r) => r === 1).length,
      onRate: rate,
      onRateByClass: onByClass[gi]!.map((row, c) => Array.from(row, (v) => ((classCount[c] as number) > 0 ? v / (classCount[c] as number) : 0))),
    };
  });
  return {
    accuracy: count > 0 ? correct / count : 0,
    loss: count > 0 ? loss / count : 0,
    count,
    macs: {
      dense,
      mean,
      min: sorted[0] ?? 0,
      median: sorted.length > 0 ? (sorted.length % 2 === 1 ? sorted[(sorted.length - 1) / 2]! : (sorted[sorted.length / 2 - 1]! + sorted[sorted.length / 2]!) / 2) : 0,
      max: sorted[sorted.length - 1] ?? 0,
      reduction: mean > 0 ? dense / mean : 0,
      perClass: Array.from(perClassSum, (s, c) => ((classCount[c] as number) > 0 ? s / (classCount[c] as number) : 0)),
    },
    layers,
    perImageMacs: Float64Array.from(macs),
    labels: Int32Array.from(labels),
    predictions: Int32Array.from(preds),
  };
}
