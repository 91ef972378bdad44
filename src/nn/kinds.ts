/** The LKAM option lists (no engine imports: the command definitions read them). */

/** Switch functions. */
export const SWITCH_KINDS = ['hard', 'sigmoid', 'binary'] as const;
export type SwitchKind = (typeof SWITCH_KINDS)[number];

/** How the sparsity term weighs each gate's switches (see setGains). */
export const GAIN_KINDS = ['uniform', 'macs', 'marginal'] as const;
export type GainKind = (typeof GAIN_KINDS)[number];
