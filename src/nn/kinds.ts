/** The LKAM option lists and constants (no engine imports: the command definitions read them). */

/** Switch functions. */
export const SWITCH_KINDS = ['hard', 'sigmoid', 'binary'] as const;
export type SwitchKind = (typeof SWITCH_KINDS)[number];

/** How the sparsity term weighs each gate's switches (see setGains). */
export const GAIN_KINDS = ['uniform', 'macs', 'marginal'] as const;
export type GainKind = (typeof GAIN_KINDS)[number];

/** The shift of the concave sparsity term, (s + shift)^p - shift^p: its slope at 0 is p / shift^(1-p). */
export const SPARSITY_SHIFT = 0.01;
