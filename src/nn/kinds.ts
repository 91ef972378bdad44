/** The LKAM option lists and constants (no engine imports: the command definitions read them). */

/** Switch functions. */
export const SWITCH_KINDS = ['hard', 'sigmoid', 'binary'] as const;
export type SwitchKind = (typeof SWITCH_KINDS)[number];

/** How the sparsity term weighs each gate's switches (see setGains). */
export const GAIN_KINDS = ['uniform', 'macs', 'marginal'] as const;
export type GainKind = (typeof GAIN_KINDS)[number];

/**
 * Saturated hard switches (pre-activation above 1 for an input): the clamp passes no gradient there,
 * so neither loss can move them. `pull`: the sparsity term's gradient still reaches them (its value is
 * unchanged), drawing them back into the clamp's range where the task loss sees them again; `keep`:
 * the plain clamp, a switch saturated for every input stays open for good.
 */
export const SATURATED_KINDS = ['pull', 'keep'] as const;
export type SaturatedKind = (typeof SATURATED_KINDS)[number];

/** The shift of the concave sparsity term, (s + shift)^p - shift^p: its slope at 0 is p / shift^(1-p). */
export const SPARSITY_SHIFT = 0.01;
