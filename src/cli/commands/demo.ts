/** `parsimony demo`. */
import { join } from 'node:path';
import type { Command } from 'commander';
import { lazy } from './shared.js';
import { addTrainOptions } from './train.js';

/** Budgets of the runtime-knob curve the demo measures. */
export const DEMO_BUDGETS = [1, 0.4, 0.25, 0.15, 0.1, 0.05] as const;

export function demoCommand(program: Command): void {
  const cmd = program.command('demo')
    .description('the tour: train fmnist-vgg5 with LKAMs on the built-in Fashion-MNIST subset (a few minutes), measure accuracy and multiply-adds, time it against the same network run dense, and write the HTML report')
    .addHelpText('after', `
Steps: train (into --out), eval with the runtime knob (budgets ${DEMO_BUDGETS.join(', ')}), bench (skipping
vs the dense twin, batch 1 and 64, one thread), report (--out/report.html). Every training option applies.`);
  addTrainOptions(cmd, { epochs: 10, lkam: true, out: join('runs', 'demo') });
  cmd.action(lazy(() => import('../actions/demo.js')));
}
