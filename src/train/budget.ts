/**
 * Compute-budget training: a controller that adapts the sparsity weight so that the network's
 * effective multiply-adds approach a target fraction of its dense cost.
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
}

export class BudgetController {
  readonly target: number;
  weight: number;
  private readonly rate: number;
  private readonly min: number;
  private readonly max: number;
  /** Smoothed fraction of dense MACs used by recent batches. */
  fraction = 1;

  constructor(o: BudgetOptions) {
    if (!(o.target > 0 && o.target <= 1)) throw new RangeError(`compute budget ${o.target} should be a fraction in (0, 1]`);
    this.target = o.target;
    this.weight = o.initialWeight ?? 1;
    this.rate = o.rate ?? 0.02;
    this.min = o.minWeight ?? 1e-3;
    this.max = o.maxWeight ?? 100;
  }

  /** Feeds one step's mean effective MACs per image and the dense cost; returns the new weight. */
  update(macs: number, denseMacs: number): number {
    const f = denseMacs > 0 ? macs / denseMacs : 1;
    this.fraction = 0.9 * this.fraction + 0.1 * f;
    this.weight = Math.min(this.max, Math.max(this.min, this.weight * Math.exp((this.rate * (this.fraction - this.target)) / this.target)));
    return this.weight;
  }
}
