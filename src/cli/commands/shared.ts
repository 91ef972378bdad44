/** Option groups several commands share, and lazy loading of the code that runs a command. */
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { z } from 'zod';
import { COLOR_MODES, dataOptionsSchema, type OptionMeta } from '../../data/options.js';
import { checkKnob, KNOBS, RecipeError } from '../../train/recipe.js';

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
  return cmd.addOption(new Option('--threads <n>', KNOBS.threads.help).argParser((text: string) => {
    try {
      return checkKnob('threads', text, '--threads', true);
    } catch (e) {
      throw e instanceof RecipeError ? new InvalidArgumentError(e.message) : e;
    }
  }));
}

/**
 * The data options (src/data/options.ts) as flags: each flag, default, help line and check comes from
 * the schema. `unset` says what a command does without --data: 'default' (train) takes the schema's
 * default; 'model' (eval, prune, bench) what the model was trained on; 'no check' (info, report) skips
 * the check that the model fits the data.
 */
export function addDataOptions(cmd: Command, o: { unset: 'default' | 'model' | 'no check'; group?: string }): Command {
  const suffix = o.unset === 'model' ? ' (default: what the model was trained on)' : o.unset === 'no check' ? '; given, the model must fit it' : '';
  for (const [key, field] of Object.entries(dataOptionsSchema.shape)) {
    const meta = field.meta() as unknown as OptionMeta;
    const flag = meta.flag.split(' ')[0] as string;
    const opt = new Option(meta.flag, key === 'data' ? `${meta.help}${suffix}` : meta.help).argParser((v: string) => parseDataOption(field, flag, v));
    if (key === 'color') opt.choices([...COLOR_MODES]);
    const fallback = field.safeParse(undefined);
    if (o.unset === 'default' && fallback.success && fallback.data !== undefined) opt.default(fallback.data);
    cmd.addOption(o.group === undefined ? opt : opt.helpGroup(o.group));
  }
  return cmd;
}

function parseDataOption(field: z.ZodType, flag: string, v: string): unknown {
  const text = field.safeParse(v);
  if (text.success) return text.data;
  const n = Number(v);
  const number = v.trim() !== '' && Number.isFinite(n) ? field.safeParse(n) : null;
  if (number?.success === true) return number.data;
  throw new InvalidArgumentError(`${flag} ${(number ?? text).error?.issues[0]?.message ?? 'is invalid'}, got '${v}'`);
}
