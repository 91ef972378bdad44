/** The LKAM switch functions (no engine imports: the command definitions read this list). */
export const SWITCH_KINDS = ['hard', 'sigmoid', 'binary'] as const;
export type SwitchKind = (typeof SWITCH_KINDS)[number];
