/** `parsimony report RUN...`. */
import { Option, type Command } from 'commander';
import { RUN_FILES } from '../../report/run.js';
import { addDataOptions, lazy } from './shared.js';

export function reportCommand(program: Command): void {
  const cmd = program.command('report')
    .argument('<runs...>', 'run directories (from parsimony train --out), or a folder of them (a sparsity sweep)')
    .description('write one self-contained HTML report (works offline): training curves, kernel activity per class, multiply-adds per image and per class, the cheapest and costliest test images, accuracy against compute (runtime knob, sparsity sweep), the benchmark table')
    .addOption(new Option('--out <file>', `the HTML file (default: ${RUN_FILES.report} in the run directory, or in the folder of runs)`))
    .addOption(new Option('--title <text>', 'the page title'))
    .addOption(new Option('--baseline <run>', `the dense network's run directory (the same options without --lkam, with its ${RUN_FILES.eval}): its test accuracy is shown beside the first run's (default: the run's ${RUN_FILES.baseline}, which the demo writes)`))
    .addOption(new Option('--json', 'print the result as JSON on stdout').default(false))
    .addHelpText('after', `
The first run is shown in detail; with several runs, the sparsity-weight curve has one point per run.
Sections whose measurements are missing say which command makes them (eval, eval --thresholds/--budgets, bench).

Examples:
  parsimony report runs/s1
  parsimony report runs/sweep            # every run directory inside runs/sweep
  parsimony report runs/s0.5 runs/s1 runs/s2 --out sweep.html`);
  addDataOptions(cmd, { unset: 'no check' });
  cmd.action(lazy(() => import('../actions/report.js')));
}
