#!/usr/bin/env node
import { isMissingPackage, MissingPackageError } from '../optional.js';

/** Packages of the command line itself (optional dependencies of the library). */
const CLI_PACKAGES = ['commander', 'cli-progress'] as const;
/** Exit code of an input error (EXIT.input in errors.ts, which needs commander). */
const EXIT_INPUT = 3;

/**
 * Exits once stdout and stderr have drained: a pipe that is full queues the rest of a large --json
 * document, which process.exit alone would drop. Exiting explicitly ends worker threads of an engine
 * that an error left open.
 */
function exitAfterFlush(code: number): void {
  process.exitCode = code;
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

import('./main.js').then(({ main }) => main(process.argv.slice(2))).then(exitAfterFlush, (e: unknown) => {
  const missing = CLI_PACKAGES.find((name) => isMissingPackage(e, name));
  if (missing !== undefined) {
    process.stderr.write(`parsimony: ${new MissingPackageError(missing, 'the command line').message}\n`);
    exitAfterFlush(EXIT_INPUT);
    return;
  }
  process.stderr.write(`parsimony: internal error: ${(e as Error).message}\n`);
  exitAfterFlush(1);
});
