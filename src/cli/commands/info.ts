/** `parsimony info MODEL`. */
import { Option, type Command } from 'commander';
import { lazy } from './shared.js';

export function infoCommand(program: Command): void {
  program.command('info')
    .argument('<model>', 'a model file, or a run directory')
    .description("print a model file's architecture, parameter count, dense multiply-adds, LKAMs, training record and pruned state")
    .addOption(new Option('--json', 'print the information as JSON on stdout').default(false))
    .action(lazy(() => import('../actions/info.js')));
}
