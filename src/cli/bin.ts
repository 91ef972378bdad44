#!/usr/bin/env node
import { main } from './main.js';

/**
 * Exits once stdout and stderr have drained: a pipe that is full queues the rest of a large --json
 * document, which process.exit alone would drop. Exiting explicitly ends worker threads of an engine
 * that an error left open.
 */
function exitAfterFlush(code: number): void {
  process.exitCode = code;
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

main(process.argv.slice(2)).then(exitAfterFlush, (e: unknown) => {
  process.stderr.write(`parsimony: internal error: ${(e as Error).message}\n`);
  exitAfterFlush(1);
});
