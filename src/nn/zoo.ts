/** Reference networks. */
import { BatchNorm2d, Conv2d, GlobalAvgPool, Linear, MaxPool2d, ReLU, Residual, Sequential } from './layers.js';
import type { Module } from './module.js';

/** conv3x3 (no bias) → batch norm → ReLU. */
export function convBnRelu(inChannels: number, outChannels: number, stride = 1): Module[] {
  return [new Conv2d({ inChannels, outChannels, kernel: 3, padding: 1, stride, bias: false }), new BatchNorm2d(outChannels), new ReLU()];
}

/** `base` channel counts times `width`, rounded to whole channels (at least 1); `net` names the network in the error. */
function scaledChannels(net: string, width: number, base: readonly number[]): number[] {
  if (!(width > 0 && Number.isFinite(width))) throw new RangeError(`${net}: width ${width} should be a number > 0`);
  return base.map((c) => Math.max(1, Math.round(c * width)));
}

/**
 * fmnist-vgg5: input 1x28x28; conv3x3-32, conv3x3-32, maxpool2, conv3x3-64, conv3x3-64, maxpool2,
 * conv3x3-128, global average pool, linear-10; batch norm + ReLU after every conv; 21.9 M MACs.
 * `width` multiplies every channel count, rounded to whole channels (2 gives the wide variant).
 */
export function fmnistVgg5(options: { width?: number; classes?: number; inChannels?: number } = {}): Sequential {
  const [c1, c2, c3] = scaledChannels('fmnistVgg5', options.width ?? 1, [32, 64, 128]) as [number, number, number];
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

/** A ResNet basic block: conv-bn-relu-conv-bn plus the shortcut (1x1 conv + bn when the shape changes), then ReLU. */
export function basicBlock(inChannels: number, outChannels: number, stride = 1): Module[] {
  const body = new Sequential([
    ...convBnRelu(inChannels, outChannels, stride),
    new Conv2d({ inChannels: outChannels, outChannels, kernel: 3, padding: 1, bias: false }),
    new BatchNorm2d(outChannels),
  ]);
  const shortcut = stride !== 1 || inChannels !== outChannels
    ? new Sequential([new Conv2d({ inChannels, outChannels, kernel: 1, stride, bias: false }), new BatchNorm2d(outChannels)])
    : null;
  return [new Residual(body, shortcut), new ReLU()];
}

/** A small ResNet for 28x28 or 32x32 inputs: a 3x3 stem, three stages of `blocks` basic blocks (w, 2w, 4w channels). */
export function smallResNet(options: { width?: number; blocks?: number; classes?: number; inChannels?: number } = {}): Sequential {
  const w = options.width ?? 16;
  const n = options.blocks ?? 1;
  const layers: Module[] = [...convBnRelu(options.inChannels ?? 1, w)];
  let c = w;
  for (const [stage, out] of [w, 2 * w, 4 * w].entries()) {
    for (let b = 0; b < n; b++) {
      layers.push(...basicBlock(c, out, b === 0 && stage > 0 ? 2 : 1));
      c = out;
    }
  }
  layers.push(new GlobalAvgPool(), new Linear({ inFeatures: c, outFeatures: options.classes ?? 10 }));
  return new Sequential(layers);
}

/**
 * resnet20: the CIFAR ResNet-20 layout for 3x32x32 inputs: a 3x3 stem of 16 channels, three stages of
 * three basic blocks (16, 32, 64 channels; stride 2 at the start of stages 2 and 3, with 1x1
 * projection shortcuts), global average pool, linear; 40.8 M MACs at width 1 with 10 classes.
 */
export function resnet20(options: { width?: number; classes?: number; inChannels?: number } = {}): Sequential {
  const [stem] = scaledChannels('resnet20', options.width ?? 1, [16]) as [number];
  return smallResNet({ width: stem, blocks: 3, classes: options.classes ?? 10, inChannels: options.inChannels ?? 3 });
}

/**
 * vgg8: a VGG-style net for 3x32x32 inputs: conv3x3-32 x2, maxpool2, conv3x3-64 x2, maxpool2,
 * conv3x3-128 x2, maxpool2, conv3x3-256, global average pool, linear; batch norm + ReLU after every
 * conv; 43.4 M MACs at width 1 with 10 classes. `width` multiplies every channel count.
 */
export function vgg8(options: { width?: number; classes?: number; inChannels?: number } = {}): Sequential {
  const [c1, c2, c3, c4] = scaledChannels('vgg8', options.width ?? 1, [32, 64, 128, 256]) as [number, number, number, number];
  return new Sequential([
    ...convBnRelu(options.inChannels ?? 3, c1),
    ...convBnRelu(c1, c1),
    new MaxPool2d(2),
    ...convBnRelu(c1, c2),
    ...convBnRelu(c2, c2),
    new MaxPool2d(2),
    ...convBnRelu(c2, c3),
    ...convBnRelu(c3, c3),
    new MaxPool2d(2),
    ...convBnRelu(c3, c4),
    new GlobalAvgPool(),
    new Linear({ inFeatures: c4, outFeatures: options.classes ?? 10 }),
  ]);
}
