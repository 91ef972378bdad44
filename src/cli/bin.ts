#!/usr/bin/env node
import { main } from './main.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    console.error(`parsimony: ${(e as Error).message}`);
    process.exitCode = 1;
  },
);
