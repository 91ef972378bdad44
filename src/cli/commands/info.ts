/** `parsimony info MODEL`. */
import { Option, type Command } from 'commander';
import { addDataOptions, lazy } from './shared.js';

export function infoCommand(program: Command): void {
  const cmd = program.command('info')
    .argument('<model>', 'a model file, or a run directory')
    .description("print a model file's architecture, parameter count, dense multiply-adds, LKAMs, training record and pruned state")
    .addOption(new Option('--json', 'print the information as JSON on stdout').default(false))
    .addHelpText('after', `
With --data (or another data option), info also checks that the model fits that data: its input shape,
class count and class names.`);
  addDataOptions(cmd, { unset: 'no check' });
  cmd.action(lazy(() => import('../actions/info.js')));
}
