/** Learning-rate schedules: the factor by which the base rate is multiplied at a given step. */
export type Schedule = (step: number) => number;

export function constant(): Schedule {
  return () => 1;
}

/** Multiplies by gamma every `every` steps. */
export function stepDecay(every: number, gamma = 0.1): Schedule {
  if (!(every >= 1)) throw new RangeError(`stepDecay: every ${every} should be >= 1`);
  return (s) => Math.pow(gamma, Math.floor(s / every));
}

/** Cosine from 1 at step 0 to `floor` at step `total` (and `floor` after). */
export function cosine(total: number, floor = 0): Schedule {
  if (!(total >= 1)) throw new RangeError(`cosine: total ${total} should be >= 1`);
  return (s) => floor + (1 - floor) * 0.5 * (1 + Math.cos(Math.PI * Math.min(s, total) / total));
}

/** Rises linearly from `start` to 1 over `steps` steps, then follows `after` (shifted by `steps`). */
export function linearWarmup(steps: number, after: Schedule = constant(), start = 0): Schedule {
  return (s) => (s < steps ? start + ((1 - start) * (s + 1)) / steps : after(s - steps));
}
