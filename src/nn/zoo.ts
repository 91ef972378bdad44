/** Reference networks. */
import { BatchNorm2d, Conv2d, GlobalAvgPool, Linear, MaxPool2d, ReLU, Sequential } from './layers.js';
import type { Module } from './module.js';

/** conv3x3 (no bias) → batch norm → ReLU. */
export function convBnRelu(inChannels: number, outChannels: number, stride = 1): Module[] {
  return [new Conv2d({ inChannels, outChannels, kernel: 3, padding: 1, stride, bias: false }), new BatchNorm2d(outChannels), new ReLU()];
}

/**
 * fmnist-vgg5: input 1x28x28; conv3x3-32, conv3x3-32, maxpool2, conv3x3-64, conv3x3-64, maxpool2,
 * conv3x3-128, global average pool, linear-10; batch norm + ReLU after every conv; 21.9 M MACs.
 * `width` multiplies every channel count (2 gives the wide variant).
 */
export function fmnistVgg5(options: { width?: number; classes?: number; inChannels?: number } = {}): Sequential {
  const w = options.width ?? 1;
  const c1 = 32 * w, c2 = 64 * w, c3 = 128 * w;
  return new Sequential([
    ...convBnRelu(options.inChannels ?? 1, c1),
    ...convBnRelu(c1, c1),
    new MaxPool2d(2),
    ...convBnRelu(c1, c2),
    ...convBnRelu(c2, c2),
    new MaxPool2d(2),
    ...convBnRelu(c2, c3),
    new GlobalAvgPool(),
    new Linear({ inFeatures: c3, outFeatures: options.classes ?? 10 }),
  ]);
}
