/**
 * The compute target: a fraction of the dense multiply-adds, reached by one keep fraction shared by
 * every gate (the mean fraction of its kernels each gate keeps on), which per-gate controllers track.
 */
import { gateCosts } from '../nn/lkam.js';
import type { Module } from '../nn/module.js';
import type { Shape } from '../tensor/tensor.js';
import { denseMacs } from './parsimony.js';

/**
 * The expected fraction of dense multiply-adds when every gate keeps fraction `keep` of its kernels:
 * a gated block costs keep x its dense cost, times keep again when the maps it reads come from a gate
 * (its input channels are then gated too); LKAMs cost their own multiply-adds.
 */
export function expectedFraction(model: Module, inputShape: Shape, keep: number): number {
  const dense = denseMacs(model, inputShape);
  if (dense <= 0) return 1;
  let macs = dense;
  for (const c of gateCosts(model, inputShape)) macs += c.blockMacs * (keep * (c.fedBy === null ? 1 : keep) - 1) + c.lkamMacs;
  return macs / dense;
}

/** The cheapest the gates can make the network: every gate keeping a single kernel. */
export function minimumFraction(model: Module, inputShape: Shape): number {
  const dense = denseMacs(model, inputShape);
  if (dense <= 0) return 1;
  let macs = dense;
  for (const c of gateCosts(model, inputShape)) macs += c.lkamMacs - c.blockMacs * (1 - 1 / c.gate.lkam.switches);
  return macs / dense;
}

/** The keep fraction whose expected cost is `target` of the dense multiply-adds (1 when the target is at or above dense with every kernel on). */
export function keepForTarget(model: Module, inputShape: Shape, target: number): number {
  if (expectedFraction(model, inputShape, 1) <= target) return 1;
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (expectedFraction(model, inputShape, mid) > target) hi = mid;
    else lo = mid;
  }
  return lo;
}

/**
 * Steps per unit of keep fraction the gates' target takes at least to fall: the measured recipe's pace
 * (1 - 0.556 of the kernels over 2,532 steps). A ramp much faster than the network can follow winds the
 * controllers up, and the kernels they close do not reopen: 850 steps on 5,400 images went to 12.9x
 * with validation accuracy 22-66% (docs/results.md, issue 22).
 */
export const RAMP_STEPS_PER_KEEP = 5690;

/** The ramp of a run: `fraction` of its steps, but no faster than RAMP_STEPS_PER_KEEP; 0 stays 0 (no ramp). */
export function rampStepsFor(fraction: number, totalSteps: number, keep: number): number {
  const steps = Math.round(fraction * totalSteps);
  return fraction > 0 ? Math.max(steps, Math.ceil((1 - keep) * RAMP_STEPS_PER_KEEP)) : steps;
}

/**
 * The keep fraction corrected from a measured fraction of dense multiply-adds: cost grows about as
 * keep squared in a chain of gated convs, so the keep fraction moves by the square root of the ratio.
 */
export function correctedKeep(keep: number, target: number, measured: number): number {
  if (!(measured > 0)) return keep;
  return Math.min(1, Math.max(0.01, keep * Math.sqrt(target / measured)));
}
