/** Names the command definitions need without loading the engine. */

/** The networks `train --model` builds (src/cli/inputs.ts maps each to the zoo). */
export const MODEL_NAMES = ['fmnist-vgg5', 'fmnist-vgg5-wide', 'fmnist-vgg5-narrow', 'resnet-small'] as const;
export type ModelName = (typeof MODEL_NAMES)[number];

export const DATA_HELP = "'builtin' (the 6,000/1,000-image subset shipped with Parsimony), 'full' (Debian's dataset-fashion-mnist: 60,000/10,000), or a folder holding the four Fashion-MNIST IDX files";
