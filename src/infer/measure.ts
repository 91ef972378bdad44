/**
 * Measuring compiled models, shared by `parsimony bench` and `npm run bench -- model`: which kernels
 * a set of images never switches on (what static pruning may remove), mean multiply-adds of a plan
 * over a set of images, and timing a call (warm-up, repetitions, median and spread).
 */
import type { Module } from '../nn/module.js';
import { Conv2d } from '../nn/layers.js';
import { kernelsNeverOn } from './prune.js';
import type { InferencePlan } from './plan.js';

/**
 * The kernels of each gated conv that no image switches on, from a plan of the gated model; a conv
 * whose kernels are all off keeps one (a conv cannot have none, and its output is zero anyway).
 */
export function neverOnRemovals(model: Module, plan: InferencePlan, images: Float32Array): Map<string, number[]> {
  const convs = new Map(model.modules().filter(([, m]) => m instanceof Conv2d).map(([p, m]) => [p, (m as Conv2d).outChannels]));
  const out = new Map<string, number[]>();
  for (const [path, k] of kernelsNeverOn(plan, images)) {
    if (k.length === 0) continue;
    const M = convs.get(path);
    out.set(path, M !== undefined && k.length >= M ? k.slice(1) : k);
  }
  return out;
}

export interface PlanMacs {
  /** Mean multiply-adds per image (LKAMs included). */
  readonly mean: number;
  readonly dense: number;
  /** Per conv: kernels, and kernels computed per image on average. */
  readonly layers: Array<{ name: string; kernels: number; meanActive: number }>;
}

/** Runs `plan` over `images` in batches of plan.maxBatch and averages the telemetry. */
export function planMacs(plan: InferencePlan, images: Float32Array): PlanMacs {
  const per = plan.inputShape.reduce((a, b) => a * b, 1);
  const n = Math.floor(images.length / per);
  let total = 0;
  const active = new Map<string, { kernels: number; sum: number }>();
  for (let n0 = 0; n0 < n; n0 += plan.maxBatch) {
    const b = Math.min(plan.maxBatch, n - n0);
    plan.run(images.subarray(n0 * per, (n0 + b) * per));
    const t = plan.telemetry();
    for (const m of t.macs) total += m;
    for (const l of t.layers) {
      const a = active.get(l.name) ?? { kernels: l.kernels, sum: 0 };
      for (const c of l.computedKernels) a.sum += c;
      active.set(l.name, a);
    }
  }
  return { mean: n > 0 ? total / n : 0, dense: plan.denseMacs, layers: [...active].map(([name, a]) => ({ name, kernels: a.kernels, meanActive: n > 0 ? a.sum / n : 0 })) };
}

export interface CallTiming {
  readonly median: number;
  readonly min: number;
  readonly p10: number;
  readonly p90: number;
  readonly reps: number;
  readonly warmup: number;
  /** Milliseconds per call, in order. */
  readonly samples: readonly number[];
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  const at = q * (sorted.length - 1);
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return (sorted[lo] as number) + ((sorted[hi] as number) - (sorted[lo] as number)) * (at - lo);
}

/** Times `fn` (synchronous) `reps` times after `warmup` untimed calls; milliseconds per call. */
export function timeCalls(fn: () => unknown, o: { warmup: number; reps: number }): CallTiming {
  for (let i = 0; i < o.warmup; i++) fn();
  const samples: number[] = [];
  for (let i = 0; i < o.reps; i++) {
    const t0 = performance.now();
    fn();
    samples.push(performance.now() - t0);
  }
  return summarizeTimes(samples, o.warmup);
}

/** Median and spread of timed calls (milliseconds). */
export function summarizeTimes(samples: readonly number[], warmup: number): CallTiming {
  const sorted = [...samples].sort((a, b) => a - b);
  return { median: quantile(sorted, 0.5), min: sorted[0] ?? 0, p10: quantile(sorted, 0.1), p90: quantile(sorted, 0.9), reps: samples.length, warmup, samples: [...samples] };
}
