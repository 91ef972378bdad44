/** The `parsimony` command line: one file per command under commands/; this file wires them and maps errors to exit codes. */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { benchCommand } from './commands/bench.js';
import { demoCommand } from './commands/demo.js';
import { evalCommand } from './commands/eval.js';
import { exportCommand, importCommand } from './commands/onnx.js';
import { infoCommand } from './commands/info.js';
import { pruneCommand } from './commands/prune.js';
import { reportCommand } from './commands/report.js';
import { trainCommand } from './commands/train.js';
import { classify, EXIT } from './errors.js';

const EXIT_HELP = `
Exit codes:
  ${EXIT.ok}    success
  ${EXIT.internal}    internal error (a bug; --debug prints the stack trace)
  ${EXIT.usage}    usage error: unknown command or option, or a value that is not allowed
  ${EXIT.input}    input error: a missing or unreadable file, or a model that does not fit the data
  ${EXIT.interrupted}  interrupted by Ctrl-C after writing a checkpoint (continue with train --resume)

A typical session:
  parsimony train --lkam --sparsity 1 --epochs 5 --out runs/s1
  parsimony eval runs/s1 --thresholds 0,0.1,0.2,0.3 --budgets 1,0.8,0.6
  parsimony prune runs/s1
  parsimony export runs/s1
  parsimony bench runs/s1
  parsimony report runs/s1          # writes runs/s1/report.html`;

/** Our parsers name the flag and the expectation, so commander's preamble would say it twice. */
function tidyCommanderError(s: string): string {
  const m = /^error: option '(-[^ ',]+(?:, )?(--[^ ']+)?)[^']*' argument '([^']*)' is invalid\. ([\s\S]*)$/.exec(s);
  if (m !== null) {
    const flag = m[2] ?? m[1] ?? '';
    const rest = m[4] ?? '';
    return rest.startsWith(flag) ? rest : `${flag}: '${m[3] ?? ''}' is not allowed. ${rest}`;
  }
  return s.replace(/^error: /, '');
}

export function buildProgram(): Command {
  const program = new Command('parsimony')
    .description('Train convolutional networks that learn which kernels each input needs, and skip the rest at inference.')
    .version(PACKAGE_VERSION, '-V, --version', 'print the version')
    .option('--debug', 'print stack traces on errors', false)
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ outputError: (s, write) => write(`parsimony: ${tidyCommanderError(s)}`) })
    .addHelpText('after', EXIT_HELP);
  program.addHelpCommand('help [command]', 'show the help of a command');
  trainCommand(program);
  evalCommand(program);
  pruneCommand(program);
  exportCommand(program);
  importCommand(program);
  benchCommand(program);
  reportCommand(program);
  infoCommand(program);
  demoCommand(program);
  for (const c of program.commands) {
    c.exitOverride();
    if (!c.options.some((o) => o.long === '--debug')) c.option('--debug', 'print stack traces on errors', false);
  }
  return program;
}

/** src/cli and dist/cli sit at the same depth below the package root. */
const PACKAGE_VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** Runs the command line; resolves to the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    if (argv.length === 0) {
      program.outputHelp();
      return EXIT.usage;
    }
    await program.parseAsync(argv, { from: 'user' });
    return EXIT.ok;
  } catch (e) {
    const { code, line } = classify(e);
    if (line !== null) {
      const debug = argv.includes('--debug');
      const stack = debug && e instanceof Error && e.stack !== undefined ? `\n${e.stack}` : '';
      // An ONNX import's one-line summary stands for every node it could not map: --debug lists them.
      const nodes = (e as { unsupported?: unknown }).unsupported;
      const listed = debug && Array.isArray(nodes) && nodes.length > 0 ? `\n${nodes.map((n) => `  ${String(n)}`).join('\n')}` : '';
      process.stderr.write(`parsimony: ${line}${listed}${stack}\n`);
    }
    return code;
  }
}
