/** Shared pieces of the io tests: the engine they run on and tiny models. */
import { Engine, setEngine } from '../../src/autograd/engine.js';
import type { BackendKind } from '../../src/backend/backend.js';
import { BatchNorm2d, Conv2d, GlobalAvgPool, Linear, ReLU, Sequential } from '../../src/nn/layers.js';
import { addLKAMs } from '../../src/nn/lkam.js';
import type { Module } from '../../src/nn/module.js';
import { TestRng } from '../util/rng.js';

/** The io tests run one thread so that every result is reproducible bit for bit. */
export const IO_BACKEND: BackendKind = (process.env['PARSIMONY_IO_BACKEND'] as BackendKind | undefined) ?? 'wasm';

export async function useEngine(kind: BackendKind = IO_BACKEND): Promise<Engine> {
  const e = await Engine.create({ backend: kind, threads: 1 });
  setEngine(e);
  return e;
}

/** conv3x3 (2 channels) → batch norm → ReLU → global average pool → linear (3 classes), on 1x6x6 images. */
export function tinyDense(): Sequential {
  return new Sequential([
    new Conv2d({ inChannels: 1, outChannels: 2, kernel: 3, padding: 1 }),
    new BatchNorm2d(2),
    new ReLU(),
    new GlobalAvgPool(),
    new Linear({ inFeatures: 2, outFeatures: 3 }),
  ]);
}

/** Two conv blocks, the second gated by an LKAM (bank of 2, 2x2 max grid), then pool and linear. */
export function tinyGated(): Module {
  return addLKAMs(new Sequential([
    new Conv2d({ inChannels: 1, outChannels: 2, kernel: 3, padding: 1, bias: false }),
    new BatchNorm2d(2),
    new ReLU(),
    new Conv2d({ inChannels: 2, outChannels: 3, kernel: 3, padding: 1, bias: false }),
    new BatchNorm2d(3),
    new ReLU(),
    new GlobalAvgPool(),
    new Linear({ inFeatures: 3, outFeatures: 3 }),
  ]), { bank: 2, grid: 2 });
}

/** Overwrites every parameter and buffer with seeded values (running variances stay positive). */
export function randomizeState(model: Module, seed: number): void {
  const r = new TestRng(seed);
  for (const [name, t] of model.stateDict()) {
    const v = t.f32();
    for (let i = 0; i < v.length; i++) v[i] = name.endsWith('runningVar') ? r.uniform(0.5, 2) : r.uniform(-1, 1);
  }
}

export function stateValues(model: Module): Map<string, Float32Array> {
  return new Map(model.stateDict().map(([n, t]) => [n, t.f32().slice()]));
}
