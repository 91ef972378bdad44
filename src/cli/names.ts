/** Names the command definitions need without loading the engine. */

/** The networks `train --model` builds (src/cli/inputs.ts maps each to the zoo; resnet20 and vgg8 are for 3x32x32 images). */
export const MODEL_NAMES = ['fmnist-vgg5', 'fmnist-vgg5-wide', 'fmnist-vgg5-narrow', 'resnet-small', 'resnet20', 'vgg8'] as const;
export type ModelName = (typeof MODEL_NAMES)[number];
