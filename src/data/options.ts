/**
 * The data options every command takes (train, eval, prune, bench, report, info): one schema holding
 * each option's flag, default and help line. Imports nothing but zod, so command definitions can read it.
 */
import { z } from 'zod';

export const COLOR_MODES = ['rgb', 'grayscale'] as const;
export type ColorMode = (typeof COLOR_MODES)[number];

/** `32` → [32, 32]; `32x48` → [32, 48] (height x width). */
export function parseImageSize(v: string | number | readonly number[]): [number, number] | null {
  const parts = typeof v === 'number' ? [v, v] : Array.isArray(v) ? [...v] : String(v).trim().split('x').map((s) => (s.trim() === '' ? NaN : Number(s)));
  const pair = parts.length === 1 ? [parts[0], parts[0]] : parts;
  if (pair.length !== 2 || !pair.every((d) => Number.isSafeInteger(d) && (d as number) >= 1)) return null;
  return [pair[0] as number, pair[1] as number];
}

const imageSize = z
  .union([z.number(), z.string(), z.array(z.number())])
  .transform((v, ctx) => {
    const size = parseImageSize(v);
    if (size === null) {
      ctx.issues.push({ code: 'custom', message: `should be a size in pixels, e.g. 32 or 32x48 (height x width), got '${Array.isArray(v) ? v.join('x') : String(v)}'`, input: v });
      return z.NEVER;
    }
    return size;
  });

export const DATA_HELP =
  "builtin (the Fashion-MNIST subset shipped here), full (Debian's Fashion-MNIST), or a folder: a sub-folder of images per class (or train/ and test/ of those), CIFAR-10/100 binaries, or IDX files";

/** Each option's command-line flag and help line live in its schema's meta. */
export interface OptionMeta {
  readonly flag: string;
  readonly help: string;
}

export const dataOptionsSchema = z.strictObject({
  data: z.string().min(1, { error: 'should name a data set or a folder' }).default('builtin').meta({ flag: '--data <where>', help: DATA_HELP } satisfies OptionMeta),
  inputSize: imageSize.optional().meta({
    flag: '--input-size <px>',
    help: 'image folders: resize every image to this size (cover, centre crop), e.g. 32 or 32x48 (height x width)',
  } satisfies OptionMeta),
  color: z.enum(COLOR_MODES, { error: `should be one of ${COLOR_MODES.join(', ')}` }).optional().meta({
    flag: '--color <mode>',
    help: 'image folders: rgb (3 channels, default) or grayscale',
  } satisfies OptionMeta),
  limit: z.number().int({ error: 'should be a whole number >= 1' }).min(1, { error: 'should be a whole number >= 1' }).optional().meta({
    flag: '--limit <n>',
    help: 'use only n images of each split (quick trials)',
  } satisfies OptionMeta),
});

/** The data options as given (input); `DataOptions` is what they parse to. */
export type DataOptionsInput = z.input<typeof dataOptionsSchema>;
export type DataOptions = z.output<typeof dataOptionsSchema>;
export type DataOptionKey = keyof DataOptions;
