/**
 * `npm run bench -- [name...] [--reps N] [--warmup N] [--quick]`: runs the named benchmarks
 * (conv and train-step when none is named), prints a table for each and writes
 * bench/results/<name>.json.
 */
import { parseArgs, startMeasurementWindow, UsageError, type Bench } from './harness.js';

interface Entry {
  readonly name: string;
  /** Whether `npm run bench` without names runs it. */
  readonly byDefault: boolean;
  /** Loaded on demand, so that one benchmark that cannot load does not stop the others. */
  readonly load: () => Promise<Bench>;
}

const ENTRIES: readonly Entry[] = [
  { name: 'conv', byDefault: true, load: async () => (await import('./conv.js')).convBench },
  { name: 'train-step', byDefault: true, load: async () => (await import('./train-step.js')).trainStepBench },
  { name: 'data', byDefault: false, load: async () => (await import('./data.js')).dataBench },
  { name: 'model', byDefault: false, load: async () => (await import('./model.js')).modelBench },
  { name: 'web', byDefault: false, load: async () => (await import('./web.js')).webBench },
];

/** Options that one benchmark reads from process.argv itself, with their values: `--model FILE`, `--onnx FILE` (model). */
const BENCH_OPTIONS: readonly string[] = ['--model', '--onnx'];

function withoutBenchOptions(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (BENCH_OPTIONS.includes(a)) i++;
    else if (!BENCH_OPTIONS.some((o) => a.startsWith(`${o}=`))) out.push(a);
  }
  return out;
}

async function usage(): Promise<string> {
  const lines: string[] = [];
  for (const e of ENTRIES) {
    let description: string;
    try {
      description = (await e.load()).description;
    } catch (err) {
      description = `(cannot load: ${(err as Error).message})`;
    }
    lines.push(`  ${e.name.padEnd(12)} ${e.byDefault ? '' : '[only when named] '}${description}`);
  }
  return `usage: npm run bench -- [name...] [--reps N] [--warmup N] [--quick]\nbenchmarks:\n${lines.join('\n')}`;
}

async function main(argv: readonly string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(await usage());
    return;
  }
  const args = parseArgs(withoutBenchOptions(argv));
  const known = new Map(ENTRIES.map((e) => [e.name, e]));
  const unknown = args.names.filter((n) => !known.has(n));
  if (unknown.length > 0) throw new UsageError(`unknown benchmark ${unknown.map((n) => `'${n}'`).join(', ')}; the known ones are: ${ENTRIES.map((e) => e.name).join(', ')}`);
  const selected = args.names.length === 0 ? ENTRIES.filter((e) => e.byDefault) : [...new Set(args.names)].map((n) => known.get(n) as Entry);
  const failed: string[] = [];
  for (const entry of selected) {
    try {
      const b = await entry.load();
      const base = args.quick ? b.quick : b.defaults;
      console.log(`\n== ${b.name}: ${b.description}`);
      startMeasurementWindow();
      await b.run({ warmup: args.warmup ?? base.warmup, reps: args.reps ?? base.reps, quick: args.quick });
    } catch (e) {
      console.error(`\nbench ${entry.name} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      failed.push(entry.name);
    }
  }
  if (failed.length > 0) throw new Error(`failed: ${failed.join(', ')}`);
}

main(process.argv.slice(2)).then(
  // Worker threads of closed engines and native thread pools must not keep the process alive.
  () => process.exit(0),
  async (e: unknown) => {
    if (e instanceof UsageError) console.error(`bench: ${e.message}\n\n${await usage()}`);
    else console.error(e instanceof Error ? (e.stack ?? e.message) : e);
    process.exit(1);
  },
);
