/** torchvision-shaped networks for plan-size and training-memory tests (vgg11_bn, resnet18), with a width factor. */
import { BatchNorm2d, Conv2d, Dropout, Flatten, GlobalAvgPool, Linear, MaxPool2d, ReLU, Sequential } from '../../src/nn/layers.js';
import type { Module } from '../../src/nn/module.js';
import { basicBlock } from '../../src/nn/zoo.js';

const scaled = (c: number, width: number): number => Math.max(1, Math.round(c * width));

/** vgg11_bn for 3x224x224: 8 conv-bn-relu with 5 max pools, then 512*7*7 → 4096 → 4096 → classes (hidden width scaled too). */
export function vgg11bn(width = 1, classes = 1000): Sequential {
  const layers: Module[] = [];
  let c = 3;
  for (const v of [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'] as const) {
    if (v === 'M') {
      layers.push(new MaxPool2d(2));
      continue;
    }
    const out = scaled(v, width);
    layers.push(new Conv2d({ inChannels: c, outChannels: out, kernel: 3, padding: 1 }), new BatchNorm2d(out), new ReLU());
    c = out;
  }
  const hidden = scaled(4096, width);
  layers.push(new Flatten(), new Linear({ inFeatures: c * 7 * 7, outFeatures: hidden }), new ReLU(), new Dropout(0.5),
    new Linear({ inFeatures: hidden, outFeatures: hidden }), new ReLU(), new Dropout(0.5), new Linear({ inFeatures: hidden, outFeatures: classes }));
  return new Sequential(layers);
}

/** resnet18 for 3x224x224: 7x7/2 stem, max pool, four stages of two basic blocks, global pool, linear. */
export function resnet18(width = 1, classes = 1000): Sequential {
  const w = scaled(64, width);
  const layers: Module[] = [new Conv2d({ inChannels: 3, outChannels: w, kernel: 7, stride: 2, padding: 3, bias: false }), new BatchNorm2d(w), new ReLU(), new MaxPool2d(3, 2, 1)];
  let c = w;
  for (const [stage, out] of [w, 2 * w, 4 * w, 8 * w].entries()) {
    for (let b = 0; b < 2; b++) {
      layers.push(...basicBlock(c, out, b === 0 && stage > 0 ? 2 : 1));
      c = out;
    }
  }
  layers.push(new GlobalAvgPool(), new Linear({ inFeatures: c, outFeatures: classes }));
  return new Sequential(layers);
}

/** Bytes of the model's parameters and buffers (batch-norm statistics), float32. */
export function weightBytes(m: Module): number {
  return m.stateDict().reduce((s, [, t]) => s + t.size * 4, 0);
}
