/**
 * Compute-budget training: a controller that adapts the sparsity weight so that the network's
 * effective multiply-adds approach a target fraction of its dense cost.
 *
 * A hard switch that closes for every input gets no gradient and stays closed, so overshooting the
 * budget cannot be undone: the controller approaches it from above. Its target falls linearly from 1
 * (dense) to the budget over `rampSteps`, and the weight tracks that moving target; a controller that
 * chased the final budget from the first step would wind its weight up while the network is still
 * dense and close far more kernels than the budget asks for.
 */
export interface BudgetOptions {
  /** Target effective MACs as a fraction of the dense twin's (0 < target <= 1). */
  readonly target: number;
  /** Starting sparsity weight. */
  readonly initialWeight?: number;
  /** Adaptation rate per step: the weight is multiplied by exp(rate * (fraction - target) / target). */
  readonly rate?: number;
  readonly minWeight?: number;
  readonly maxWeight?: number;
  /** Steps over which the target falls from 1 to `target`; default 0 (the budget from the start). */
  readonly rampSteps?: number;
}

export class BudgetController {
  /** The final target; may be moved while training (the compute target's correction). */
  target: number;
  weight: number;
  private readonly rate: number;
  private readonly min: number;
  private readonly max: number;
  private readonly rampSteps: number;
  private steps = 0;
  /** Smoothed fraction of dense MACs used by recent batches. */
  fraction = 1;

  constructor(o: BudgetOptions) {
    if (!(o.target > 0 && o.target <= 1)) throw new RangeError(`compute budget ${o.target} should be a fraction in (0, 1]`);
    this.target = o.target;
    this.weight = o.initialWeight ?? 1;
    this.rate = o.rate ?? 0.02;
    this.min = o.minWeight ?? 1e-3;
    this.max = o.maxWeight ?? 100;
    this.rampSteps = o.rampSteps ?? 0;
    if (!(this.rampSteps >= 0)) throw new RangeError(`budget ramp ${this.rampSteps} should be a number of steps >= 0`);
  }

  /** The fraction of dense MACs aimed at after `step` steps. */
  targetAt(step: number): number {
    if (this.rampSteps <= 0 || step >= this.rampSteps) return this.target;
    return 1 - (1 - this.target) * (step / this.rampSteps);
  }

  /** Steps fed so far (restored when resuming). */
  get stepCount(): number {
    return this.steps;
  }
  set stepCount(n: number) {
    this.steps = n;
  }

  /** Feeds one step's mean effective MACs per image and the dense cost; returns the new weight. */
  update(macs: number, denseMacs: number): number {
    const f = denseMacs > 0 ? macs / denseMacs : 1;
    this.fraction = 0.9 * this.fraction + 0.1 * f;
    const target = this.targetAt(this.steps++);
    this.weight = Math.min(this.max, Math.max(this.min, this.weight * Math.exp((this.rate * (this.fraction - target)) / target)));
    return this.weight;
  }
}
