/** The networks a recipe's `model` names, built for the data's channels and classes at a `width`. */
import type { Module } from '../nn/module.js';
import { fmnistVgg5, resnet20, smallResNet, vgg8 } from '../nn/zoo.js';
import type { ModelName } from './recipe.js';

/** What a zoo network is built for: `width` multiplies its channel counts; classes and channels come from the data. */
export interface ModelShape {
  readonly width: number;
  readonly classes: number;
  readonly inChannels: number;
}

export const MODELS: Readonly<Record<ModelName, (o: ModelShape) => Module>> = {
  'fmnist-vgg5': (o) => fmnistVgg5({ width: o.width, classes: o.classes, inChannels: o.inChannels }),
  'fmnist-vgg5-wide': (o) => fmnistVgg5({ width: 2 * o.width, classes: o.classes, inChannels: o.inChannels }),
  'fmnist-vgg5-narrow': (o) => fmnistVgg5({ width: 0.25 * o.width, classes: o.classes, inChannels: o.inChannels }),
  'resnet-small': (o) => smallResNet({ width: Math.max(1, Math.round(16 * o.width)), classes: o.classes, inChannels: o.inChannels }),
  resnet20: (o) => resnet20({ width: o.width, classes: o.classes, inChannels: o.inChannels }),
  vgg8: (o) => vgg8({ width: o.width, classes: o.classes, inChannels: o.inChannels }),
};
