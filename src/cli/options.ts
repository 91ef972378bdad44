/** Option parsers shared by the commands, and JSON config files whose keys are option names. */
import { readRegularText } from '../data/files.js';
import { InvalidArgumentError, type Command, type Option } from 'commander';
import { JsonDepthError, parseJson } from '../io/json.js';
import { InputError, UsageError } from './errors.js';

export function positiveInt(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${flag} should be a whole number >= 1, got '${v}'`);
    return n;
  };
}

export function nonNegativeInt(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${flag} should be a whole number >= 0, got '${v}'`);
    return n;
  };
}

export function positiveNumber(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${flag} should be a number > 0, got '${v}'`);
    return n;
  };
}

export function nonNegativeNumber(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`${flag} should be a number >= 0, got '${v}'`);
    return n;
  };
}

export function integer(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isInteger(n)) throw new InvalidArgumentError(`${flag} should be a whole number, got '${v}'`);
    return n;
  };
}

export function fraction(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !(n > 0 && n <= 1)) throw new InvalidArgumentError(`${flag} should be a fraction in (0, 1], got '${v}'`);
    return n;
  };
}

export function unitInterval(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !(n >= 0 && n <= 1)) throw new InvalidArgumentError(`${flag} should be a number in [0, 1], got '${v}'`);
    return n;
  };
}

/** A comma-separated list of numbers, each checked by `check` (which names the expectation). */
export function numberList(flag: string, expectation: string, check: (n: number) => boolean, length?: number) {
  return (v: string): number[] => {
    const parts = v.split(',').map((s) => s.trim());
    if (length !== undefined && parts.length !== length) throw new InvalidArgumentError(`${flag} should be a comma-separated list of ${expectation}, got '${v}'`);
    const out = parts.map(Number);
    const bad = parts.findIndex((s, i) => s === '' || !check(out[i] as number));
    if (bad >= 0) throw new InvalidArgumentError(`${flag} should be a comma-separated list of ${expectation}, got '${parts[bad]}' in '${v}'`);
    return out;
  };
}

/** `1,28,28` → [1, 28, 28]. */
export function shapeArg(flag: string) {
  return (v: string): number[] => {
    const out = v.split(/[,x]/).map((s) => Number(s.trim()));
    if (out.length !== 3 || out.some((d) => !Number.isInteger(d) || d < 1)) throw new InvalidArgumentError(`${flag} should be C,H,W (three whole numbers >= 1), got '${v}'`);
    return out;
  };
}

function camel(key: string): string {
  return key.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function describeValue(v: unknown): string {
  return typeof v === 'string' ? `'${v}'` : JSON.stringify(v) ?? String(v);
}

/**
 * Applies the options of a JSON config file to `cmd` as if given on the command line, except those the
 * command line sets. Values go through the options' own parsers and choices, so a config file can
 * hold nothing the command line would refuse.
 */
export function applyConfig(cmd: Command, file: string, skip: ReadonlySet<string> = new Set(['config']), rewrite: (values: Record<string, unknown>) => Record<string, unknown> = (v) => v): void {
  let text: string;
  try {
    text = readRegularText(file, { maxBytes: 16 * 2 ** 20, what: 'a config file' });
  } catch (e) {
    throw new InputError(`--config ${(e as Error).message}`);
  }
  let data: unknown;
  try {
    data = parseJson(text);
  } catch (e) {
    throw new UsageError(`--config ${file}: ${e instanceof JsonDepthError ? e.message : `not valid JSON (${(e as Error).message})`}`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new UsageError(`--config ${file}: expected a JSON object of option values, got ${Array.isArray(data) ? 'a list' : typeof data}`);
  applyValues(cmd, rewrite(data as Record<string, unknown>), `--config ${file}`, skip);
}

/** Sets option values from an object (config file or a saved run's config); `where` names the source in errors. */
export function applyValues(cmd: Command, values: Readonly<Record<string, unknown>>, where: string, skip: ReadonlySet<string> = new Set()): void {
  const byName = new Map<string, Option>();
  for (const o of cmd.options) byName.set(o.attributeName(), o);
  for (const [rawKey, value] of Object.entries(values)) {
    const key = camel(rawKey);
    if (skip.has(key)) continue;
    const opt = byName.get(key);
    if (opt === undefined) {
      const known = [...byName.keys()].filter((k) => !skip.has(k) && k !== 'help').map((k) => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`));
      throw new UsageError(`${where}: '${rawKey}' is not an option of '${cmd.name()}' (options: ${known.join(', ')})`);
    }
    const source = cmd.getOptionValueSource(key);
    if (source === 'cli' || source === 'env') continue;
    const flag = opt.long ?? `--${rawKey}`;
    if (value === null) continue;
    if (!opt.required && !opt.optional) {
      if (typeof value !== 'boolean') throw new UsageError(`${where}: '${rawKey}' should be true or false, got ${describeValue(value)}`);
      cmd.setOptionValueWithSource(key, value, 'config');
      continue;
    }
    if (typeof value !== 'string' && typeof value !== 'number' && !Array.isArray(value)) {
      throw new UsageError(`${where}: '${rawKey}' should be a string or a number, got ${describeValue(value)}`);
    }
    const text = Array.isArray(value) ? value.join(',') : String(value);
    if (opt.argChoices !== undefined && !opt.argChoices.includes(text)) {
      throw new UsageError(`${where}: '${rawKey}' should be one of ${opt.argChoices.join(', ')}, got ${describeValue(value)}`);
    }
    let parsed: unknown = text;
    if (opt.parseArg !== undefined) {
      try {
        parsed = opt.parseArg(text, undefined);
      } catch (e) {
        throw new UsageError(`${where}: ${(e as Error).message.replace(flag, `'${rawKey}'`)}`);
      }
    }
    cmd.setOptionValueWithSource(key, parsed, 'config');
  }
}
