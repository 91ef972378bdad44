/** `parsimony eval MODEL`. */
import { Option, type Command } from 'commander';
import { RUN_FILES } from '../../report/run.js';
import { numberList } from '../options.js';
import { addDataOptions, addOutputOptions, addThreadsOption, lazy } from './shared.js';

export function evalCommand(program: Command): void {
  const cmd = program.command('eval')
    .argument('<model>', 'a model file, or a run directory (its model.safetensors)')
    .description('measure a model on the test set through the compiled plan (skipping switched-off kernels): accuracy, multiply-adds per image, time per image; with --thresholds/--budgets, the runtime-knob curve')
    .addOption(new Option('--thresholds <list>', 'runtime knob: switch thresholds to try, e.g. 0,0.05,0.1,0.2 (a switch is off when its value is at or below t; 0 is the default of hard switches)').argParser(numberList('--thresholds', 'finite numbers', Number.isFinite)))
    .addOption(new Option('--budgets <list>', 'runtime knob: compute budgets in [0, 1] to try, e.g. 1,0.8,0.6,0.4').argParser(numberList('--budgets', 'numbers in [0, 1]', (n) => n >= 0 && n <= 1)))
    .addOption(new Option('--out <file>', `where to write the measurements (default: ${RUN_FILES.eval} in the run directory)`))
    .addOption(new Option('--knob-out <file>', `where to write the knob curve (default: ${RUN_FILES.knob} in the run directory)`))
    .addOption(new Option('--force', 'replace an evaluation of more images (e.g. a full one by an eval --limit)').default(false))
    .addHelpText('after', `
The default operating point (each LKAM's own threshold, budget 1) is the first row; then every
pairing of the listed thresholds and budgets is one point of the knob curve (accuracy against mean
multiply-adds per image, LKAMs included).

Examples:
  parsimony eval runs/s1
  parsimony eval runs/s1 --thresholds 0,0.1,0.2,0.3 --budgets 1,0.8,0.6,0.4 --json`);
  addDataOptions(cmd, { unset: 'model' });
  addThreadsOption(cmd);
  addOutputOptions(cmd, 'print the measurements (and the knob curve) as JSON on stdout');
  cmd.action(lazy(() => import('../actions/eval.js')));
}
