/**
 * `npm run bench -- [name...] [--reps N] [--warmup N] [--quick]`: runs the named benchmarks
 * (all when none is named), prints a table for each and writes bench/results/<name>.json.
 */
import { convBench } from './conv.js';
import { parseArgs, UsageError, type Bench } from './harness.js';
import { trainStepBench } from './train-step.js';

const BENCHES: readonly Bench[] = [convBench, trainStepBench];

function usage(): string {
  const names = BENCHES.map((b) => `  ${b.name.padEnd(12)} ${b.description}`).join('\n');
  return `usage: npm run bench -- [name...] [--reps N] [--warmup N] [--quick]\nbenchmarks:\n${names}`;
}

async function main(argv: readonly string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(usage());
    return;
  }
  const args = parseArgs(argv);
  const known = new Map(BENCHES.map((b) => [b.name, b]));
  const unknown = args.names.filter((n) => !known.has(n));
  if (unknown.length > 0) throw new UsageError(`unknown benchmark ${unknown.map((n) => `'${n}'`).join(', ')}; the known ones are: ${BENCHES.map((b) => b.name).join(', ')}`);
  const selected = args.names.length === 0 ? BENCHES : [...new Set(args.names)].map((n) => known.get(n) as Bench);
  for (const b of selected) {
    const base = args.quick ? b.quick : b.defaults;
    console.log(`\n== ${b.name}: ${b.description}`);
    await b.run({ warmup: args.warmup ?? base.warmup, reps: args.reps ?? base.reps, quick: args.quick });
  }
}

main(process.argv.slice(2)).then(
  // Worker threads of closed engines and native thread pools must not keep the process alive.
  () => process.exit(0),
  (e: unknown) => {
    if (e instanceof UsageError) console.error(`bench: ${e.message}\n\n${usage()}`);
    else console.error(e instanceof Error ? (e.stack ?? e.message) : e);
    process.exit(1);
  },
);
