/** `parsimony train` and the training options `demo` shares: every flag derives from the recipe's knobs (src/train/recipe.ts). */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { checkKnob, KNOBS, kebab, RecipeError, type KnobName } from '../../train/recipe.js';
import { addDataOptions, lazy } from './shared.js';

const GROUP_TITLES = { common: 'Options:', advanced: 'Advanced recipe (defaults: the best measured recipe):', run: 'Run directory, engine and output:' } as const;

/** A commander option for one knob: its flag, help, default and a parser that checks the knob's range. */
function knobOption(name: KnobName, defaultValue?: unknown): Option {
  const k = KNOBS[name];
  const flag = `--${kebab(name)}`;
  const o = new Option(k.arg === null ? flag : `${flag} ${k.arg}`, k.help);
  if (k.parse !== null) {
    o.argParser((text: string) => {
      try {
        return checkKnob(name, text, flag, true);
      } catch (e) {
        if (e instanceof RecipeError) throw new InvalidArgumentError(e.message);
        throw e;
      }
    });
  }
  const d = defaultValue ?? k.default;
  if (d !== undefined && k.arg !== null) o.default(d);
  if ('choices' in k && k.choices !== undefined && !('listed' in k && k.listed === false)) o.choices([...k.choices]);
  o.helpGroup(GROUP_TITLES[k.group]);
  return k.group === 'advanced' ? o.hideHelp() : o;
}

/** Prints the help with the advanced recipe shown too. */
export function outputFullHelp(cmd: Command): void {
  for (const o of cmd.options) o.hidden = false;
  cmd.outputHelp();
}

/** Options that are not recipe knobs: output and the help switch. */
function addOutputFlags(cmd: Command): void {
  const run = GROUP_TITLES.run;
  cmd
    .addOption(new Option('--json', 'print the result as JSON on stdout').helpGroup(run))
    .addOption(new Option('--plain', 'one plain line per epoch, no bars (the default off a terminal)').helpGroup(run))
    .addOption(new Option('-q, --quiet', 'no progress, only the results').helpGroup(run));
}

/** Knobs whose flags come from the data options (src/data/options.ts), one definition for every command. */
const DATA_KNOBS: ReadonlySet<KnobName> = new Set(['data', 'limit']);
/** Options shown only by --help-all (besides the advanced recipe). */
const ADVANCED_DATA = ['--limit', '--input-size', '--color', '--checkpoint-every'];

export function addTrainOptions(cmd: Command, defaults: { epochs: number; lkam: boolean; out?: string }): Command {
  addDataOptions(cmd, { unset: 'default', group: GROUP_TITLES.common });
  for (const name of Object.keys(KNOBS) as KnobName[]) {
    if (DATA_KNOBS.has(name)) continue;
    if (name === 'lkam' && defaults.lkam) {
      cmd.addOption(new Option('--no-lkam', 'train the dense network, without LKAMs').helpGroup(GROUP_TITLES.common));
      continue;
    }
    cmd.addOption(knobOption(name, name === 'epochs' ? defaults.epochs : name === 'out' ? defaults.out : undefined));
  }
  for (const o of cmd.options) {
    if (o.long !== undefined && ADVANCED_DATA.includes(o.long)) o.helpGroup(GROUP_TITLES.advanced).hideHelp();
  }
  cmd.addOption(new Option('--force', 'replace the run already in --out (its files are removed first)').helpGroup(GROUP_TITLES.run).hideHelp());
  addOutputFlags(cmd);
  cmd.addOption(new Option('--help-all', 'list every option, the advanced recipe too').helpGroup(GROUP_TITLES.run));
  return cmd;
}

export function trainCommand(program: Command): void {
  const cmd = program.command('train')
    .description('train a network on Fashion-MNIST, dense or with LKAMs towards a compute target')
    .addHelpText('after', `
Examples:
  parsimony train --data full --lkam --epochs 10 --out runs/g   # 3x fewer multiply-adds by default
  parsimony train --data full --epochs 10 --out runs/d          # its dense twin: the same recipe
  parsimony train --resume runs/g --epochs 12                   # continue, with more epochs

Ctrl-C writes a checkpoint (without --out, into a new folder under runs/) and exits with code 130.`);
  addTrainOptions(cmd, { epochs: 3, lkam: false });
  cmd.action(lazy(() => import('../actions/train.js')));
}
