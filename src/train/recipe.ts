/**
 * The training recipe: every option of a training run written once, with its value check (range
 * included), default, help line and group. The command line's flags, config files, a run directory's
 * config.json and a model file's training record all derive from this table. No engine imports: the
 * command definitions read it.
 */
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { GAIN_KINDS, SWITCH_KINDS } from '../nn/kinds.js';

/** The networks a recipe names (src/train/models.ts builds each; resnet20 and vgg8 are for 3x32x32 images). */
export const MODEL_NAMES = ['fmnist-vgg5', 'fmnist-vgg5-wide', 'fmnist-vgg5-narrow', 'resnet-small', 'resnet20', 'vgg8'] as const;
export type ModelName = (typeof MODEL_NAMES)[number];

/** `common`: the one-screen help; `advanced`: the rest of the recipe; `run`: how to run, not what to train (not recorded). */
export type KnobGroup = 'common' | 'advanced' | 'run';

export interface Knob<T = unknown> {
  /** The value's check; its failure message is the allowed range. */
  readonly schema: z.ZodType<T>;
  /** What the value may be, for error lines: "a whole number in 1..4096". */
  readonly expected: string;
  /** Reads the command-line text (booleans have none). */
  readonly parse: ((text: string) => unknown) | null;
  readonly default: T | undefined;
  readonly help: string;
  readonly group: KnobGroup;
  /** The placeholder after the flag, e.g. `<n>`; null for a switch without a value. */
  readonly arg: string | null;
  /** The allowed words, when the value is one of a list. */
  readonly choices?: readonly string[];
  /** false: the help line names the choices itself. */
  readonly listed?: boolean;
}

interface KnobText {
  readonly help: string;
  readonly group: KnobGroup;
  readonly arg?: string;
}

const asNumber = (text: string): number => (text.trim() === '' ? Number.NaN : Number(text));

function int<D extends number | undefined>(min: number, max: number, def: D, t: KnobText): Knob<number> {
  return { schema: z.number().int().min(min).max(max), expected: `a whole number in ${min}..${max}`, parse: asNumber, default: def, help: t.help, group: t.group, arg: t.arg ?? '<n>' };
}

/** A number in [min, max] (or (min, max] when `above` is set: strictly above min). */
function num<D extends number | undefined>(min: number, max: number, def: D, t: KnobText & { readonly above?: boolean }): Knob<number> {
  const base = z.number().max(max);
  return {
    schema: t.above === true ? base.gt(min) : base.min(min),
    expected: `a number in ${t.above === true ? '(' : '['}${min}, ${max}]`,
    parse: asNumber, default: def, help: t.help, group: t.group, arg: t.arg ?? '<x>',
  };
}

function choice<const C extends readonly [string, ...string[]]>(choices: C, def: C[number], t: KnobText): Knob<C[number]> {
  return { schema: z.enum(choices), expected: `one of ${choices.join(', ')}`, parse: (s) => s, default: def, help: t.help, group: t.group, arg: t.arg ?? '<name>', choices };
}

function flag(def: boolean, t: KnobText): Knob<boolean> {
  return { schema: z.boolean(), expected: 'true or false', parse: null, default: def, help: t.help, group: t.group, arg: null };
}

function text(def: string | undefined, t: KnobText): Knob<string> {
  return { schema: z.string().min(1), expected: 'a non-empty string', parse: (s) => s, default: def, help: t.help, group: t.group, arg: t.arg ?? '<text>' };
}

/** `0.33` or `3x` → a fraction of the dense multiply-adds. */
function readTarget(s: string): number {
  const m = /^\s*([0-9.eE+-]+)\s*x\s*$/.exec(s);
  return m !== null ? 1 / Number(m[1]) : asNumber(s);
}

/** `0,1,2` → [0, 1, 2]; `all` stays a word. */
function readLayers(s: string): unknown {
  const t = s.trim();
  if (t === 'all' || t === 'all-but-first') return t;
  return t.split(',').map((p) => asNumber(p));
}

/** Threads the engine may start: the machine's cores (more only add contention and memory). */
export const MAX_THREADS = Math.max(1, availableParallelism());

/** The recipe. Keys are the config names in camel case; the flag is the kebab-case key. */
export const KNOBS = {
  data: text('builtin', { group: 'common', arg: '<where>', help: "'builtin' (the 7,000 Fashion-MNIST images shipped), 'full' (dataset-fashion-mnist) or a folder of IDX files" }),
  model: { ...choice(MODEL_NAMES, 'fmnist-vgg5', { group: 'common', help: 'network: fmnist-vgg5[-wide|-narrow], resnet-small; resnet20, vgg8 for 3x32x32' }), listed: false },
  from: text(undefined, { group: 'common', arg: '<file>', help: 'fine-tune this trained dense model (model file or .onnx) instead of --model' }),
  epochs: int(1, 10_000, 3, { group: 'common', help: 'epochs' }),
  lkam: flag(false, { group: 'common', help: 'add LKAMs (kernel switches) and train towards --target' }),
  target: { ...num(0, 1, 0.32, { group: 'common', above: true, arg: '<f>', help: 'with --lkam: the fraction of the dense multiply-adds to reach, e.g. 0.33, or a reduction, e.g. 3x' }), parse: readTarget, expected: 'a fraction in (0, 1] of the dense multiply-adds (e.g. 0.33) or a reduction >= 1 (e.g. 3x)' },
  validation: num(0, 0.5, 0.1, { group: 'common', arg: '<fraction>', help: 'training images held out for progress and the target (test: read once, at the end)' }),
  seed: int(0, 2 ** 32 - 1, 0, { group: 'common', help: 'seed of initialisation, validation split and data order' }),

  width: num(1 / 32, 16, 1, { group: 'advanced', help: 'multiply every channel count of --model by x (rounded to whole channels)' }),
  batch: int(1, 4096, 64, { group: 'advanced', help: 'batch size' }),
  lr: num(0, 10, 5e-3, { group: 'advanced', above: true, help: 'base learning rate' }),
  optimizer: choice(['adam', 'adamw', 'sgd'], 'adam', { group: 'advanced', help: 'optimizer' }),
  schedule: choice(['cosine', 'step', 'constant'], 'cosine', { group: 'advanced', help: 'learning-rate schedule over all steps' }),
  warmup: int(0, 1e9, 0, { group: 'advanced', arg: '<steps>', help: 'linear learning-rate warm-up steps' }),
  cropPadding: int(0, 64, 0, { group: 'advanced', arg: '<px>', help: 'augment: pad each training image by this many black pixels, then crop a random window of the original size (0 = off)' }),
  flip: flag(false, { group: 'advanced', help: 'augment: mirror each training image left-right with probability 1/2' }),
  limit: int(1, 1e9, undefined, { group: 'advanced', help: 'use only the first n training and n test images (quick trials)' }),
  ramp: num(0, 1, 0.3, { group: 'advanced', arg: '<fraction>', help: 'fraction of the run over which the sparsity weight rises from 0 and the gates\' targets fall from dense to --target' }),
  keep: num(0, 1, undefined, { group: 'advanced', above: true, arg: '<fraction>', help: 'instead of --target: the mean fraction of its kernels each gate keeps on' }),
  sparsity: num(0, 1000, 0.05, { group: 'advanced', arg: '<w>', help: 'starting weight of the sparsity term (the controllers adapt it per gate)' }),
  sparsityPower: num(0, 1, 0.5, { group: 'advanced', above: true, arg: '<p>', help: 'each switch value s enters the sparsity term as (s + 0.01)^p - 0.01^p: 1 is the plain sum, p < 1 closes weak switches first' }),
  gains: choice(GAIN_KINDS, 'uniform', { group: 'advanced', help: "per-gate gains of the sparsity term: uniform; macs, proportional to a kernel's multiply-adds; marginal, plus those of the next gated conv" }),
  layers: {
    schema: z.union([z.literal('all'), z.literal('all-but-first'), z.array(z.number().int().min(0).max(10_000)).min(1)]),
    expected: "'all', 'all-but-first' or a comma-separated list of conv indices (whole numbers >= 0)",
    parse: readLayers, default: 'all', group: 'advanced', arg: '<list>',
    help: "convs to gate, by index among the network's convs in forward order (0 = the first conv, whose LKAM reads the image)",
  } satisfies Knob<'all' | 'all-but-first' | number[]>,
  bank: int(1, 256, 4, { group: 'advanced', help: '1x1 convolutions in each LKAM' }),
  pool: choice(['avg', 'max'], 'avg', { group: 'advanced', help: 'LKAM pooling' }),
  grid: int(1, 64, 1, { group: 'advanced', help: "LKAM pooling grid (1 = global; at most the side of the maps the LKAM reads)" }),
  switch: choice(SWITCH_KINDS, 'hard', { group: 'advanced', help: 'switch function: hard = clamp(x, 0, 1); sigmoid, off under 0.5 at inference; binary, 0 or 1 with the hard gradient' }),

  threads: int(1, MAX_THREADS, undefined, { group: 'run', help: `threads (default: every core, ${MAX_THREADS} here)` }),
  out: text(undefined, { group: 'run', arg: '<dir>', help: 'run directory (config, metrics, checkpoints, model, evaluation)' }),
  resume: text(undefined, { group: 'run', arg: '<dir>', help: 'continue this run directory from its checkpoint (options given here override its own)' }),
  checkpointEvery: int(0, 1e9, 0, { group: 'run', arg: '<steps>', help: 'also checkpoint every n steps (0: after each epoch and on Ctrl-C)' }),
  save: text(undefined, { group: 'run', arg: '<file>', help: 'also write the trained model to this file' }),
  config: text(undefined, { group: 'run', arg: '<file>', help: 'JSON file of option values, e.g. {"epochs": 5, "target": "3x"}' }),
} as const;

export type KnobName = keyof typeof KNOBS;
type ValueOf<K extends KnobName> = (typeof KNOBS)[K] extends Knob<infer T> ? T : never;

/** What a training run needs to know: every recipe knob, resolved. */
export type Recipe = { [K in KnobName as (typeof KNOBS)[K]['group'] extends 'run' ? never : K]: (typeof KNOBS)[K]['default'] extends undefined ? ValueOf<K> | undefined : ValueOf<K> };
export type RecipeName = keyof Recipe;
export type RunKnobs = { [K in KnobName as (typeof KNOBS)[K]['group'] extends 'run' ? K : never]?: ValueOf<K> };

export const RECIPE_NAMES = (Object.keys(KNOBS) as KnobName[]).filter((k) => KNOBS[k].group !== 'run') as RecipeName[];

/** `cropPadding` → `crop-padding` (the flag and the key in config files). */
export function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
export function camel(name: string): string {
  return name.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** A recipe value out of range or of the wrong kind; `knob` names it. */
export class RecipeError extends RangeError {
  constructor(readonly knob: string, readonly got: unknown, readonly expected: string, message?: string) {
    super(message ?? `${knob} should be ${expected}, got ${typeof got === 'string' ? `'${got}'` : JSON.stringify(got)}`);
    this.name = 'RecipeError';
  }
}

/** Knobs that set the LKAMs or their training: a value other than the default needs `lkam`. */
export const NEEDS_LKAM: readonly RecipeName[] = ['target', 'keep', 'ramp', 'sparsity', 'sparsityPower', 'gains', 'layers', 'bank', 'pool', 'grid', 'switch'];

/** Checks one value against its knob; returns it (read from text first when `fromText`). */
export function checkKnob(name: KnobName, value: unknown, label: string = `--${kebab(name)}`, fromText = false): unknown {
  const k: Knob = KNOBS[name];
  const v = fromText && k.parse !== null && typeof value === 'string' ? k.parse(value) : value;
  const r = k.schema.safeParse(v);
  if (!r.success) throw new RecipeError(label, value, k.expected);
  return r.data;
}

/**
 * Options that lost their experiments and left the code (their figures stay in docs/results.md,
 * with the commit that had them): a recorded value equal to `inert` trained as this version does.
 */
export const RETIRED: Readonly<Record<string, { readonly inert: unknown; readonly what: string }>> = {
  distill: { inert: 0, what: 'in-place distillation' },
  batchShaping: { inert: 0, what: 'the batch-shaping term' },
  batchShapingPrior: { inert: undefined, what: "the batch-shaping term's prior" },
  switchNoise: { inert: 0, what: 'switch noise' },
  lkamDetach: { inert: false, what: 'detached LKAMs' },
  deadSwitches: { inert: 'keep', what: 'straight-through dead switches' },
  saturatedSwitches: { inert: 'pull', what: 'saturated switches kept open (the plain clamp)' },
  budget: { inert: null, what: 'the network-wide MAC budget controller (--budget; --target replaced it)' },
};
/** The last commit whose code trained every retired option. */
export const RETIRED_AT = '2f28295';

/** A recorded option that this version cannot train as it was trained. */
export class RetiredOptionError extends Error {
  constructor(readonly where: string, readonly option: string, readonly value: unknown, what: string) {
    super(`${where}: ${kebab(option)} ${JSON.stringify(value)} (${what}) is retired, this version no longer trains it; a model trained with it still loads (eval, prune, export, bench), and parsimony at commit ${RETIRED_AT} trains it`);
    this.name = 'RetiredOptionError';
  }
}

/**
 * Options as recorded by earlier versions, rewritten to this recipe: retired options at their inert
 * value are dropped (others refused), `sparsity-warmup` in epochs becomes `ramp`, runs from before the
 * validation split had none, and runs from before every conv was gated by default gated all but the first.
 * A run with LKAMs and neither --keep nor --budget trained a fixed sparsity weight, which is retired too.
 */
export function migrateRecorded(options: Readonly<Record<string, unknown>>, where: string): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) o[camel(k)] = v;
  const old = 'sparsityWarmup' in o || 'saturatedSwitches' in o || 'distill' in o || 'deadSwitches' in o || 'budget' in o;
  if (!old) return o;
  const lkam = o['lkam'] === true;
  if (lkam && !('saturatedSwitches' in o)) throw new RetiredOptionError(where, 'saturatedSwitches', 'keep', RETIRED['saturatedSwitches']!.what);
  dropRetired(o, where);
  if (lkam && o['keep'] === undefined) throw new RetiredOptionError(where, 'sparsity', o['sparsity'], 'a fixed sparsity weight without --keep or --budget');
  const epochs = typeof o['epochs'] === 'number' ? o['epochs'] : 3;
  if ('sparsityWarmup' in o) {
    if (typeof o['sparsityWarmup'] === 'number') o['ramp'] = Math.min(1, o['sparsityWarmup'] / epochs);
    delete o['sparsityWarmup'];
  }
  if (!('validation' in o)) o['validation'] = 0;
  if (!('layers' in o)) o['layers'] = 'all-but-first';
  return o;
}

/** Removes retired options whose value trained as this version does (camel-case keys); refuses the others. */
export function dropRetired(o: Record<string, unknown>, where: string): Record<string, unknown> {
  const lkam = o['lkam'] === true;
  for (const [k, r] of Object.entries(RETIRED)) {
    if (!(k in o)) continue;
    const v = o[k];
    const inert = v === r.inert || v === null || v === undefined || k === 'batchShapingPrior' || (!lkam && k !== 'budget');
    if (!inert) throw new RetiredOptionError(where, k, v, r.what);
    delete o[k];
  }
  return o;
}

/** Every recipe knob at its default. */
export function defaultRecipe(): Recipe {
  const r: Record<string, unknown> = {};
  for (const k of RECIPE_NAMES) r[k] = KNOBS[k].default;
  return r as Recipe;
}

/** A full recipe from partial values (checked against their knobs); `where` names the source in errors. */
export function resolveRecipe(values: Readonly<Partial<Record<string, unknown>>> = {}, where = 'recipe'): Recipe {
  const r: Record<string, unknown> = { ...defaultRecipe() };
  for (const [k, v] of Object.entries(values)) {
    if (v === undefined) continue;
    if (!(RECIPE_NAMES as string[]).includes(k)) throw new RecipeError(`${where}: '${k}'`, v, `a recipe option (${RECIPE_NAMES.join(', ')})`);
    r[k] = checkKnob(k as KnobName, v, `${where}: ${k}`);
  }
  if (r['lkam'] !== true) {
    const set = NEEDS_LKAM.find((k) => JSON.stringify(r[k]) !== JSON.stringify(KNOBS[k].default));
    if (set !== undefined) throw new RecipeError(`--${kebab(set)}`, r[set], '', `--${kebab(set)} needs LKAMs (--lkam): it sets the kernel switches or their training`);
  }
  return r as Recipe;
}

/** The recipe as config.json records it: kebab-case keys, undefined values left out. */
export function recordRecipe(r: Recipe): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of RECIPE_NAMES) if (r[k] !== undefined) out[kebab(k)] = r[k];
  return out;
}
