#!/usr/bin/env node
import { main } from './main.js';

main(process.argv.slice(2)).then(
  // Exits explicitly: worker threads of an engine left open by an error would keep the process alive.
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`parsimony: internal error: ${(e as Error).message}\n`);
    process.exit(1);
  },
);
