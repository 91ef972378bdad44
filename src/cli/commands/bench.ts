/** `parsimony bench MODEL`. */
import { Option, type Command } from 'commander';
import { RUN_FILES } from '../../report/run.js';
import { positiveInt } from '../options.js';
import { addDataOptions, addOutputOptions, lazy } from './shared.js';

export function benchCommand(program: Command): void {
  const cmd = program.command('bench')
    .argument('<model>', 'a model file, or a run directory')
    .description('time a model through the compiled plan, skipping switched-off kernels, against its dense twin (same weights, every kernel computed) in the same run; and the dense ONNX export through onnxruntime-node when it is installed')
    .addOption(new Option('--batch <n>', 'the larger batch (batch 1 is always timed)').argParser(positiveInt('--batch')).default(64))
    .addOption(new Option('--reps <n>', 'timed calls per round at batch 1 (the larger batch gets a sixth, at least 3)').argParser(positiveInt('--reps')).default(40))
    .addOption(new Option('--warmup <n>', 'untimed calls before each timing').argParser(positiveInt('--warmup')).default(5))
    .addOption(new Option('--rounds <n>', 'rounds; the configurations alternate within each, so a background load hits them alike').argParser(positiveInt('--rounds')).default(3))
    .addOption(new Option('--threads <n>', 'threads').argParser(positiveInt('--threads')).default(1))
    .addOption(new Option('--no-ort', 'do not time onnxruntime-node'))
    .addOption(new Option('--out <file>', `where to write the results (default: ${RUN_FILES.bench} in the run directory)`))
    .addHelpText('after', `
The first test images of --data are timed. Times are medians over all rounds of one call (batch 1: one image per call, the images in turn).
The speed-up is the dense twin's median time over the skipping plan's, measured in the same run.`);
  addDataOptions(cmd, { unset: 'model' });
  addOutputOptions(cmd, 'print the results as JSON on stdout');
  cmd.action(lazy(() => import('../actions/bench.js')));
}
