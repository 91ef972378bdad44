/**
 * Builders of modules from their specs, one entry per module type; each module file registers its own.
 *
 * A spec is untrusted input (model files, checkpoints): a builder reads every field through a
 * SpecReader, which checks type and range and names the field's path in its errors, and a module's
 * constructor checks what relates its fields. The chaining of shapes is checked by a shape walk
 * (`checkShapes` in module.ts), which every module's `outputShape` takes part in.
 */
import { ShapeError } from '../tensor/tensor.js';
import type { Module, ModuleSpec } from './module.js';

export class UnknownModuleError extends Error {
  constructor(type: string, known: readonly string[]) {
    super(`unknown layer type '${type}' (known: ${known.join(', ')})`);
    this.name = 'UnknownModuleError';
  }
}

/** Nesting deeper than this is rejected before anything recurses on it. */
export const MAX_SPEC_DEPTH = 64;
/** Modules (containers included) an architecture may have. */
export const MAX_LAYERS = 10_000;

/** A spec field that is missing, of the wrong type or out of range; `path` is the field inside the architecture, e.g. `layers[3].kernel`. */
export class SpecError extends Error {
  readonly path: string;
  /** The message without the path. */
  readonly detail: string;
  constructor(path: string, detail: string) {
    super(`${path === '' ? 'architecture' : path}: ${detail}`);
    this.name = 'SpecError';
    this.path = path;
    this.detail = detail;
  }
}

/** Counts the layers of one architecture while it is read. */
export class LayerBudget {
  layers = 0;
  count(path: string, depth: number): void {
    if (depth > MAX_SPEC_DEPTH) throw new SpecError(path, `layers are nested more than ${MAX_SPEC_DEPTH} deep`);
    if (++this.layers > MAX_LAYERS) throw new SpecError(path, `the architecture has more than ${MAX_LAYERS} layers`);
  }
}

function show(v: unknown): string {
  return (JSON.stringify(v) ?? String(v)).slice(0, 80);
}

export interface NumberRange {
  readonly min?: number;
  readonly max?: number;
  /** `min` itself is not allowed. */
  readonly above?: boolean;
  /** `max` itself is not allowed. */
  readonly below?: boolean;
}

/** Reads a spec's fields, checking them and naming the field's path in errors. */
export class SpecReader {
  readonly spec: ModuleSpec;
  readonly path: string;
  readonly depth: number;
  readonly budget: LayerBudget;
  constructor(spec: ModuleSpec, path: string, depth = 0, budget = new LayerBudget()) {
    this.spec = spec;
    this.path = path;
    this.depth = depth;
    this.budget = budget;
  }
  at(key: string): string {
    return this.path === '' ? key : `${this.path}.${key}`;
  }
  fail(key: string, message: string): never {
    throw new SpecError(key === '' ? this.path : this.at(key), message);
  }
  /** A whole number >= min (and <= max); `fallback` is used when the field is absent (as the builder's default). */
  int(key: string, min = 1, fallback?: number, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.spec[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
      this.fail(key, `should be a whole number ${max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`}, got ${show(v)}`);
    }
    return v;
  }
  /** A number or a pair of whole numbers >= min; `fallback` is used when the field is absent. */
  pair(key: string, min = 1, fallback?: number | readonly [number, number]): [number, number] {
    const v = this.spec[key] ?? fallback;
    const ok = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= min;
    if (ok(v)) return [v, v];
    if (Array.isArray(v) && v.length === 2 && ok(v[0]) && ok(v[1])) return [v[0], v[1]];
    this.fail(key, `should be a whole number >= ${min} or a pair of them, got ${show(v)}`);
  }
  /** A finite number in the range; `fallback` is used when the field is absent. */
  number(key: string, range: NumberRange = {}, fallback?: number): number {
    const v = this.spec[key] ?? fallback;
    const { min = -Infinity, max = Infinity, above = false, below = false } = range;
    const fits = typeof v === 'number' && Number.isFinite(v) && (above ? v > min : v >= min) && (below ? v < max : v <= max);
    if (!fits) {
      const lo = min === -Infinity ? '' : `${above ? '(' : '['}${min}`;
      const hi = max === Infinity ? '' : `${max}${below ? ')' : ']'}`;
      const where = lo === '' && hi === '' ? 'a finite number' : lo === '' ? `a number ${below ? '<' : '<='} ${max}` : hi === '' ? `a number ${above ? '>' : '>='} ${min}` : `a number in ${lo}, ${hi}`;
      this.fail(key, `should be ${where}, got ${show(v)}`);
    }
    return v;
  }
  bool(key: string, fallback: boolean): boolean {
    const v = this.spec[key];
    if (v === undefined) return fallback;
    if (typeof v !== 'boolean') this.fail(key, `should be true or false, got ${show(v)}`);
    return v;
  }
  oneOf<T extends string>(key: string, allowed: readonly T[], fallback: T): T {
    const v = this.spec[key] ?? fallback;
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) this.fail(key, `should be one of ${allowed.join(', ')}, got ${show(v)}`);
    return v as T;
  }
  child(key: string): unknown {
    return this.spec[key];
  }
  /** The child layer in field `key`, built; `kind` (a module class) requires it to be one. */
  module<M extends Module = Module>(key: string, kind?: abstract new (...args: never[]) => M): M {
    const m = buildAt(this.spec[key], this.at(key), this.depth + 1, this.budget);
    if (kind !== undefined && !(m instanceof kind)) this.fail(key, `should be a ${kind.name} layer, got ${m.type}`);
    return m as M;
  }
  /** The list of child layers in field `key`, built (`layers[0]`, ...). */
  modules(key: string): Module[] {
    const v = this.spec[key];
    if (!Array.isArray(v)) this.fail(key, `should be a list of layer specs, got ${show(v)}`);
    return v.map((s: unknown, i) => buildAt(s, `${this.at(key)}[${i}]`, this.depth + 1, this.budget));
  }
}

/** Builds a module from a reader of its spec; throws SpecError (or a RangeError, wrapped with the path) for bad fields. */
export type ModuleBuilder = (r: SpecReader) => Module;

const builders = new Map<string, ModuleBuilder>();

export function registerModule(type: string, build: ModuleBuilder): void {
  if (builders.has(type)) throw new Error(`module type '${type}' is registered twice`);
  builders.set(type, build);
}

/** Every registered layer type, sorted. */
export function moduleTypes(): string[] {
  return [...builders.keys()].sort();
}

export function isLayerSpec(s: unknown): s is ModuleSpec {
  return typeof s === 'object' && s !== null && !Array.isArray(s) && typeof (s as { type?: unknown }).type === 'string';
}

function buildAt(spec: unknown, path: string, depth: number, budget: LayerBudget): Module {
  budget.count(path, depth);
  if (!isLayerSpec(spec)) throw new SpecError(path, `should be a layer spec {type, ...}, got ${show(spec)}`);
  const build = builders.get(spec.type);
  if (build === undefined) throw new UnknownModuleError(spec.type, moduleTypes());
  try {
    return build(new SpecReader(spec, path, depth, budget));
  } catch (e) {
    if (e instanceof RangeError || e instanceof TypeError || e instanceof ShapeError) throw new SpecError(path, e.message);
    throw e;
  }
}

/** Builds a module from its spec; a bad field is a SpecError naming its path, an unknown type an UnknownModuleError. */
export function buildModule(spec: ModuleSpec): Module {
  return buildAt(spec, '', 0, new LayerBudget());
}
