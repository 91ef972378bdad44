/** `parsimony prune MODEL`. */
import { Option, type Command } from 'commander';
import { RUN_FILES } from '../../report/run.js';
import { addDataOptions, addOutputOptions, addThreadsOption, lazy } from './shared.js';

export function pruneCommand(program: Command): void {
  const cmd = program.command('prune')
    .argument('<model>', 'a model file with LKAMs, or a run directory')
    .description('static pruning: remove the kernels that no image of a data split switches on, then check that the pruned model predicts what the gated one does on the test set')
    .addOption(new Option('--split <which>', 'the images whose switches decide what is removed').choices(['train', 'test']).default('train'))
    .addOption(new Option('--out <file>', `the pruned model file (default: ${RUN_FILES.pruned} in the run directory, else MODEL with .pruned.safetensors)`))
    .addOption(new Option('--force', 'allow --out to replace the model being pruned').default(false))
    .addHelpText('after', `
Kernels off for every image of the split are removed, with the input channels that read them
downstream; every other kernel keeps its switch. Test predictions that differ between the gated and
the pruned model are counted (0 unless a test image switches on a kernel no split image did).`);
  addDataOptions(cmd, { unset: 'model' });
  addThreadsOption(cmd);
  addOutputOptions(cmd, 'print the result as JSON on stdout');
  cmd.action(lazy(() => import('../actions/prune.js')));
}
