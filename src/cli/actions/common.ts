/** Pieces several actions share: engine start-up, writing JSON results, number formats, tables. */
import { writeFileAtomic } from '../../io/node-files.js';
import { init, type Engine } from '../../autograd/engine.js';
import type { BackendOptions } from '../../backend/backend.js';
import { jsonReplacer } from '../output.js';

let fallbackSaid = false;

/** Creates the default engine; the first time the native kernels cannot run, says so in one line on stderr. */
export async function startEngine(options: BackendOptions = {}): Promise<Engine> {
  const e = await init(options);
  if (e.backend.fallbackNote !== null && !fallbackSaid) {
    fallbackSaid = true;
    process.stderr.write(`parsimony: ${e.backend.fallbackNote}\n`);
  }
  return e;
}

/** Runs `fn` with an engine, closing it afterwards (its worker threads would keep the process alive). */
export async function withEngine<T>(threads: number | undefined, fn: (e: Engine) => Promise<T> | T): Promise<T> {
  const e = await startEngine(threads === undefined ? {} : { threads });
  try {
    return await fn(e);
  } finally {
    e.close();
  }
}

/** Writes JSON atomically: a failed write leaves no partial file and is an error naming the file. */
export function writeJson(file: string, value: unknown): void {
  writeFileAtomic(file, `${JSON.stringify(value, jsonReplacer)}\n`);
}

export function pct(x: number): string {
  return `${(100 * x).toFixed(2)}%`;
}

export function mega(x: number): string {
  return `${(x / 1e6).toFixed(2)} M`;
}

/** A plain-text table: columns padded to their widest cell. */
export function table(header: readonly string[], rows: ReadonlyArray<readonly (string | number)[]>): string {
  const cells = [header, ...rows].map((r) => r.map(String));
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ');
  return [line(cells[0] as string[]), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}
