/** `parsimony train` and the training options `demo` shares. */
import { Option, type Command } from 'commander';
import { GAIN_KINDS, SATURATED_KINDS, SPARSITY_SHIFT, SWITCH_KINDS } from '../../nn/kinds.js';
import { RUN_FILES } from '../../report/run.js';
import { MODEL_NAMES } from '../names.js';
import { fraction, integer, nonNegativeInt, nonNegativeNumber, numberList, positiveInt, positiveNumber, unitInterval } from '../options.js';
import { addDataOptions, lazy } from './shared.js';

export function addTrainOptions(cmd: Command, defaults: { epochs: number; lr: number; lkam: boolean; sparsity: number; sparsityWarmup: number; out?: string }): Command {
  const g = (o: Option, heading: string): Option => o.helpGroup(heading);
  const data = 'Data and network:';
  const opt = 'Optimisation:';
  const lk = 'Kernel switches (LKAMs):';
  const run = 'Run directory, checkpoints and output:';
  cmd
    .addOption(g(new Option('--model <name>', 'network to train').choices([...MODEL_NAMES]).default('fmnist-vgg5'), data))
    .addOption(g(new Option('--width <x>', 'multiply every channel count of --model by x (rounded to whole channels), e.g. 0.55 for a thinner static baseline').argParser(positiveNumber('--width')).default(1), data));
  cmd.addOption(g(new Option('--from <file>', 'fine-tune a trained dense model (model file or .onnx) instead of --model; with --lkam its LKAMs start exactly open'), data));
  addDataOptions(cmd, { unset: 'default', group: data });
  cmd
    .addOption(g(new Option('--crop-padding <px>', 'augment: pad each training image by this many black pixels on every side, then crop a random window of the original size (0 = off)').argParser(nonNegativeInt('--crop-padding')).default(0), data))
    .addOption(g(new Option('--flip', 'augment: mirror each training image left-right with probability 1/2').default(false), data))
    .addOption(g(new Option('--epochs <n>', 'epochs').argParser(positiveInt('--epochs')).default(defaults.epochs), opt))
    .addOption(g(new Option('--batch <n>', 'batch size').argParser(positiveInt('--batch')).default(128), opt))
    .addOption(g(new Option('--lr <x>', 'base learning rate').argParser(positiveNumber('--lr')).default(defaults.lr), opt))
    .addOption(g(new Option('--optimizer <name>', 'optimizer').choices(['adam', 'adamw', 'sgd']).default('adam'), opt))
    .addOption(g(new Option('--schedule <name>', 'learning-rate schedule over all steps').choices(['cosine', 'step', 'constant']).default('cosine'), opt))
    .addOption(g(new Option('--warmup <steps>', 'linear learning-rate warm-up steps').argParser(nonNegativeInt('--warmup')).default(0), opt))
    .addOption(g(new Option('--threads <n>', 'threads (default: available cores)').argParser(positiveInt('--threads')), opt))
    .addOption(g(new Option('--seed <n>', 'seed for initialisation and data order').argParser(integer('--seed')).default(0), opt));
  if (defaults.lkam) cmd.addOption(g(new Option('--no-lkam', 'train the dense network, without LKAMs'), lk));
  else cmd.addOption(g(new Option('--lkam', 'add LKAMs between consecutive convs and train them with the sparsity term').default(false), lk));
  cmd
    .addOption(g(new Option('--sparsity <w>', 'weight of the sparsity term (with LKAMs)').argParser(nonNegativeNumber('--sparsity')).default(defaults.sparsity), lk))
    .addOption(g(new Option('--sparsity-warmup <epochs>', 'epochs over which the sparsity weight rises linearly from 0 (with --budget: over which the target falls linearly from dense to the budget)').argParser(nonNegativeNumber('--sparsity-warmup')).default(defaults.sparsityWarmup), lk))
    .addOption(g(new Option('--budget <fraction>', 'train towards this fraction of the dense multiply-adds, adapting the sparsity weight (starting at --sparsity); the target falls from dense to it over --sparsity-warmup epochs, since closed switches do not reopen').argParser(fraction('--budget')), lk))
    .addOption(g(new Option('--keep <fraction>', 'train each gate towards this mean fraction of its kernels on, one controller per gate adapting that gate\'s sparsity weight (starting at --sparsity); the target falls from 1 over --sparsity-warmup epochs. Sets the width of every gated layer, as a thinner network would, while each image still chooses its kernels; not with --budget').argParser(fraction('--keep')), lk))
    .addOption(g(new Option('--sparsity-power <p>', `each switch value s enters the sparsity term as (s + ${SPARSITY_SHIFT})^p - ${SPARSITY_SHIFT}^p: 1 is the plain sum; p < 1 is concave, closing weak switches (which cost a full kernel) rather than shrinking all alike; it drives hard switches to exactly 0 or 1, so with --saturated-switches keep they freeze (a static pruning)`).argParser(fraction('--sparsity-power')).default(1), lk))
    .addOption(g(new Option('--gains <kind>', "per-gate gains: uniform; macs, proportional to each kernel's multiply-adds; marginal, plus those of the next gated conv that reads its map").choices([...GAIN_KINDS]).default('macs'), lk))
    .addOption(g(new Option('--layers <list>', 'convs to gate, by index among the network\'s convs in forward order (0 = the first conv, whose LKAM reads the input image); default: every conv but the first').argParser(numberList('--layers', 'conv indices (whole numbers >= 0)', (n) => Number.isInteger(n) && n >= 0)), lk))
    .addOption(g(new Option('--bank <k>', '1x1 convolutions in each LKAM').argParser(positiveInt('--bank')).default(4), lk))
    .addOption(g(new Option('--pool <kind>', 'LKAM pooling').choices(['max', 'avg']).default('max'), lk))
    .addOption(g(new Option('--grid <g>', 'LKAM pooling grid (1 = global)').argParser(positiveInt('--grid')).default(1), lk))
    .addOption(g(new Option('--switch <kind>', 'switch function: hard = clamp(x, 0, 1); sigmoid, off under the threshold at inference; binary = 1 where clamp(x, 0, 1) > 0, with the hard gradient passed straight through').choices([...SWITCH_KINDS]).default('hard'), lk))
    .addOption(g(new Option('--lkam-detach', "LKAMs read the maps as constants: their own weights learn, but no gradient reaches the network's features through them, so the sparsity term cannot reshape those features").default(false), lk))
    .addOption(g(new Option('--batch-shaping <w>', 'weight of the batch-shaping term: each switch\'s values over a batch are pulled towards the quantiles of a Beta prior (--batch-shaping-prior), so that a switch is open for some images and shut for others instead of one value for all; 0 = off').argParser(nonNegativeNumber('--batch-shaping')).default(0), lk))
    .addOption(g(new Option('--batch-shaping-prior <a,b>', 'shape parameters of the Beta prior of --batch-shaping; a, b < 1 is U-shaped, open a / (a + b) of the time on average').argParser(numberList('--batch-shaping-prior', 'two Beta shape parameters (numbers > 0)', (n) => n > 0, 2)).default([0.6, 0.4]), lk))
    .addOption(g(new Option('--distill <a>', 'in-place distillation: each step also runs the network with every gate open (every kernel), which learns from the labels, while the gated network learns from (1 - a) x labels + a x the open network\'s predictions; about doubles the cost of a step; 0 = off').argParser(unitInterval('--distill')).default(0), lk))
    .addOption(g(new Option('--dead-switches <how>', "hard switches that close for every input: 'keep' them closed (pruned; training skips their kernels) or 'ste' (straight-through gradient, which can reopen them but computes every kernel while training)").choices(['keep', 'ste']).default('keep'), lk))
    .addOption(g(new Option('--switch-noise <scale>', 'logistic noise of this scale added to each hard or binary switch\'s pre-activation in training, so a switch is on with probability sigmoid(pre / scale); the sparsity term then counts those probabilities (the expected number of open kernels, an L0 penalty) instead of switch values, closing kernels rather than shrinking the kept ones; inference is the plain switch; 0 = off').argParser(nonNegativeNumber('--switch-noise')).default(0), lk))
    .addOption(g(new Option('--saturated-switches <how>', "hard switches whose pre-activation rises above 1, where the clamp passes no gradient: 'pull' passes the sparsity term's gradient through the upper bound (its value unchanged), drawing them back where they can close; 'keep' leaves them open for good").choices([...SATURATED_KINDS]).default('pull'), lk))
    .addOption(g(new Option('--out <dir>', `run directory: ${RUN_FILES.config}, ${RUN_FILES.metrics}, ${RUN_FILES.checkpoint}, ${RUN_FILES.model}, ${RUN_FILES.eval}`).default(defaults.out), run))
    .addOption(g(new Option('--force', 'replace the run already in --out (its files are removed first; without it, a run directory in use or holding a run is refused)').default(false), run))
    .addOption(g(new Option('--resume <dir>', 'continue the run in this directory from its checkpoint, with its recorded options (options given here override them, e.g. more --epochs)'), run))
    .addOption(g(new Option('--checkpoint-every <steps>', 'also checkpoint every n steps (0: only at the end of each epoch and on Ctrl-C)').argParser(nonNegativeInt('--checkpoint-every')).default(0), run))
    .addOption(g(new Option('--save <file>', 'also write the trained model to this file (safetensors)'), run))
    .addOption(g(new Option('--config <file>', 'JSON file of option values, e.g. {"epochs": 5, "sparsity-warmup": 2}; options on the command line win'), run))
    .addOption(g(new Option('--json', 'print the result as JSON on stdout (per-epoch reports, test measurements, files written)').default(false), run))
    .addOption(g(new Option('--plain', 'progress as one plain line per epoch, no bars (the default when stderr is not a terminal)').default(false), run))
    .addOption(g(new Option('-q, --quiet', 'no progress, only the results').default(false), run));
  return cmd;
}

export function trainCommand(program: Command): void {
  const cmd = program.command('train')
    .description('train a network on Fashion-MNIST or your own images (dense, or with LKAMs and the sparsity term)')
    .addHelpText('after', `
Examples:
  parsimony train --lkam --sparsity 1 --epochs 5 --out runs/s1
  parsimony train --data full --lkam --budget 0.4 --epochs 10 --out runs/b04 --json
  parsimony train --resume runs/s1 --epochs 8        # continue, with more epochs

Progress: a bar per epoch on a terminal (batches, loss, accuracy, mean switch value, multiply-adds
per image, images/s, ETA), one line per epoch otherwise. Ctrl-C writes a checkpoint into the run
directory (a new one under runs/ without --out) and exits with code 130; --resume continues exactly
where it stopped.`);
  addTrainOptions(cmd, { epochs: 3, lr: 1e-3, lkam: false, sparsity: 1, sparsityWarmup: 1 });
  cmd.action(lazy(() => import('../actions/train.js')));
}
