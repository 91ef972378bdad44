/**
 * The runtime knob curve: accuracy against mean multiply-adds per image of one compiled model, for
 * settings of the per-call switch threshold and compute budget (see RunOptions).
 */
import type { Module } from '../nn/module.js';
import { compile } from './plan.js';

export interface KnobSetting {
  /** A switch is off when its value is at or below this, in every LKAM; undefined keeps each LKAM's own rule. */
  readonly threshold?: number;
  /** Compute budget in [0, 1]; default 1. */
  readonly budget?: number;
}

export interface KnobData {
  /** NCHW images, normalised as the model was trained. */
  readonly images: Float32Array;
  readonly labels: Int32Array;
  /** One image, [C, H, W]. */
  readonly inputShape: readonly number[];
}

export interface KnobPoint {
  /** null: each LKAM's own rule (the default operating point when the budget is 1). */
  readonly threshold: number | null;
  readonly budget: number;
  readonly accuracy: number;
  /** Mean multiply-adds per image the plan did (LKAMs included). */
  readonly meanMacs: number;
  readonly denseMacs: number;
  /** meanMacs / denseMacs. */
  readonly macFraction: number;
  /** denseMacs / meanMacs. */
  readonly reduction: number;
  /** Wall time per image over the whole set, batches of `maxBatch`. */
  readonly imageMs: number;
  readonly images: number;
}

export interface KnobOptions {
  /** Images per call; default 64. */
  readonly maxBatch?: number;
  readonly threads?: number;
}

/**
 * The default operating point (each LKAM's own threshold, budget 1) first, then every pairing of the
 * listed thresholds and budgets (an empty list means "the default" for that knob).
 */
export function knobGrid(thresholds: readonly number[], budgets: readonly number[]): KnobSetting[] {
  const ts: Array<number | undefined> = thresholds.length > 0 ? [...thresholds] : [undefined];
  const bs = budgets.length > 0 ? budgets : [1];
  const out: KnobSetting[] = [{ budget: 1 }];
  for (const t of ts) for (const b of bs) if (t !== undefined || b !== 1) out.push(t === undefined ? { budget: b } : { threshold: t, budget: b });
  return out;
}

/** Runs `model`'s skipping plan over `data` once per setting; one point per setting, in order. */
export function knobCurve(model: Module, data: KnobData, settings: readonly KnobSetting[], options: KnobOptions = {}): KnobPoint[] {
  const per = data.inputShape.reduce((a, b) => a * b, 1);
  const n = data.labels.length;
  if (data.images.length !== n * per) throw new RangeError(`knobCurve: ${n} labels need ${n * per} floats of images, got ${data.images.length}`);
  if (n === 0) throw new RangeError('knobCurve: no images');
  const maxBatch = Math.min(options.maxBatch ?? 64, n);
  const plan = compile(model, { inputShape: data.inputShape, maxBatch, skip: true, ...(options.threads === undefined ? {} : { threads: options.threads }) });
  try {
    return settings.map((s): KnobPoint => {
      let correct = 0;
      let macs = 0;
      let ms = 0;
      const budget = s.budget ?? 1;
      for (let n0 = 0; n0 < n; n0 += maxBatch) {
        const b = Math.min(maxBatch, n - n0);
        const out = plan.run(data.images.subarray(n0 * per, (n0 + b) * per), { budget, ...(s.threshold === undefined ? {} : { threshold: s.threshold }) });
        const t = plan.telemetry();
        ms += t.timeMs;
        for (let i = 0; i < b; i++) {
          macs += t.macs[i] as number;
          const row = out.subarray(i * plan.outputSize, (i + 1) * plan.outputSize);
          let best = 0;
          for (let k = 1; k < row.length; k++) if ((row[k] as number) > (row[best] as number)) best = k;
          if (best === data.labels[n0 + i]) correct++;
        }
      }
      const meanMacs = macs / n;
      return {
        threshold: s.threshold ?? null, budget, accuracy: correct / n, meanMacs, denseMacs: plan.denseMacs,
        macFraction: plan.denseMacs > 0 ? meanMacs / plan.denseMacs : 1, reduction: meanMacs > 0 ? plan.denseMacs / meanMacs : 0,
        imageMs: ms / n, images: n,
      };
    });
  } finally {
    plan.dispose();
  }
}
