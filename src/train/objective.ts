/**
 * The training objective: the task loss (cross-entropy) plus the sparsity term over the switches the
 * step's forward recorded.
 */
import { SPARSITY_SHIFT } from '../nn/kinds.js';
import type { GateReading } from '../nn/lkam.js';
import * as ops from '../ops/index.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * The sparsity term: Σ over gates of weight_i · gain_i / (2 m_i) · Σ switch values, averaged over the
 * batch (m_i switches per image). `weight` is one number for every gate, or one per gate in forward
 * order (the per-gate controllers).
 *
 * With `power` p < 1 each switch value s enters as (s + SPARSITY_SHIFT)^p - SPARSITY_SHIFT^p: a concave
 * penalty, steepest near 0, that closes weak switches (which cost a kernel's full multiply-adds while
 * passing little of its output) rather than shrinking every switch alike.
 *
 * Hard and binary switches are read from their pre-activations through a clamp whose gradient also
 * passes above 1: a switch saturated open (where the task loss gets no gradient either) is drawn back
 * into the clamp's range, where it can still close. Its value is unchanged.
 */
export function sparsityTerm(readings: readonly GateReading[], weight: number | readonly number[] = 1, power = 1): Tensor | null {
  if (!(power > 0 && power <= 1)) throw new RangeError(`sparsityTerm: power ${power} should be in (0, 1]`);
  if (typeof weight !== 'number' && weight.length !== readings.length) throw new RangeError(`sparsityTerm: ${weight.length} weights for ${readings.length} gates (one per gate, in forward order)`);
  let total: Tensor | null = null;
  for (const [i, r] of readings.entries()) {
    const s = r.switches.values;
    const n = s.shape[0] as number;
    const m = s.shape[1] as number;
    const read = r.gate.lkam.switchKind === 'sigmoid' ? s : ops.clamp(r.switches.pre, 0, 1, false, true);
    const values = power === 1 ? read : ops.powShifted(read, power, SPARSITY_SHIFT);
    const w = typeof weight === 'number' ? weight : (weight[i] as number);
    const term = ops.scale(ops.sum(values), (w * r.gate.gain) / (2 * m * Math.max(1, n)));
    total = total === null ? term : ops.add(total, term);
  }
  return total;
}
