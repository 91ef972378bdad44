/** Option groups several commands share, and lazy loading of the code that runs a command. */
import { Option, type Command } from 'commander';
import { positiveInt } from '../options.js';

/** An action that loads its implementation when the command runs, so `--help` and usage errors stay fast. */
export function lazy<A extends unknown[]>(load: () => Promise<{ run: (...args: A) => Promise<void> | void }>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    await (await load()).run(...args);
  };
}

export function addOutputOptions(cmd: Command, jsonText: string): Command {
  return cmd
    .addOption(new Option('--json', jsonText).default(false))
    .addOption(new Option('--plain', 'plain progress lines, no bars (the default when stderr is not a terminal)').default(false))
    .addOption(new Option('-q, --quiet', 'no progress, only the results').default(false));
}

export function addThreadsOption(cmd: Command): Command {
  return cmd.addOption(new Option('--threads <n>', 'threads (default: available cores)').argParser(positiveInt('--threads')));
}
