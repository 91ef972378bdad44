/** Shared pieces of the inference tests: engines, seeded models with real batch-norm statistics, switches set partly off, the training graph's outputs. */
import { Engine, engine, setEngine } from '../../src/autograd/engine.js';
import type { BackendKind } from '../../src/backend/backend.js';
import { BatchNorm2d, manualSeed } from '../../src/nn/layers.js';
import { addLKAMs, gates, recordGates, type GateMode, type LkamConfig } from '../../src/nn/lkam.js';
import type { Module } from '../../src/nn/module.js';
import { fmnistVgg5, smallResNet } from '../../src/nn/zoo.js';
import { ChannelSet } from '../../src/tensor/tensor.js';
import { TestRng } from '../util/rng.js';

export async function useEngine(kind: BackendKind = 'wasm', threads = 2): Promise<Engine> {
  const e = await Engine.create({ backend: kind, threads });
  setEngine(e);
  return e;
}

/** Running statistics, gamma and beta away from their initial values, so that folding them into convs is tested. */
export function randomizeBatchNorms(m: Module, seed: number): void {
  const rng = new TestRng(seed);
  for (const [, mod] of m.modules()) {
    if (!(mod instanceof BatchNorm2d)) continue;
    const fill = (v: Float32Array, lo: number, hi: number): void => { for (let i = 0; i < v.length; i++) v[i] = rng.uniform(lo, hi); };
    fill(mod.gamma.f32(), 0.5, 1.5);
    fill(mod.beta.f32(), -0.2, 0.2);
    fill(mod.runningMean.f32(), -0.3, 0.3);
    fill(mod.runningVar.f32(), 0.5, 2);
  }
}

/**
 * Switch biases spread over [lo, hi] and small random weights, so that, per image, some kernels are
 * off, some on, and images differ (as test/nn/gated.test.ts does).
 */
export function spreadSwitches(m: Module, seed: number, lo = -0.6, hi = 1.2): void {
  const rng = new TestRng(seed);
  for (const g of gates(m)) {
    const b = g.lkam.fc.bias!.f32();
    for (let i = 0; i < b.length; i++) b[i] = rng.uniform(lo, hi);
    const w = g.lkam.fc.weight.f32();
    for (let i = 0; i < w.length; i++) w[i] = rng.uniform(-0.3, 0.3);
  }
}

export type NetName = 'fmnistVgg5' | 'smallResNet';

/** A seeded zoo network, optionally with LKAMs whose switches are partly off, in eval mode. */
export function net(name: NetName, options: { lkams?: boolean; seed?: number; lkam?: Omit<LkamConfig, 'inChannels' | 'switches'>; layers?: number[] } = {}): Module {
  const seed = options.seed ?? 1;
  manualSeed(seed);
  let m: Module = name === 'fmnistVgg5' ? fmnistVgg5() : smallResNet();
  if (options.lkams === true) {
    m = addLKAMs(m, { ...options.lkam, ...(options.layers === undefined ? {} : { layers: options.layers }) });
    spreadSwitches(m, seed + 100);
  }
  randomizeBatchNorms(m, seed + 200);
  return m.eval();
}

export function images(n: number, seed: number, shape: readonly number[] = [1, 28, 28]): Float32Array {
  const rng = new TestRng(seed);
  return Float32Array.from({ length: n * shape.reduce((a, b) => a * b, 1) }, () => rng.uniform(0, 1));
}

/** The training graph's eval outputs (`model.eval(); model.predict(x)`), gates in `mode`, and each gate's switch sets and values, by conv path. */
export function trainingGraph(m: Module, x: Float32Array, shape: readonly number[], mode: GateMode = 'skip'): { out: Float32Array; on: Map<string, ChannelSet>; switches: Map<string, Float32Array> } {
  const e = engine();
  const gs = gates(m);
  const before = gs.map((g) => g.mode);
  gs.forEach((g) => { g.mode = mode; });
  m.eval();
  const n = x.length / shape.reduce((a, b) => a * b, 1);
  try {
    const { value, readings } = recordGates(() => m.predict(e.tensor(x, [n, ...shape])));
    const out = value.f32().slice();
    const names = new Map(m.modules().map(([p, mod]) => [mod, p]));
    const on = new Map<string, ChannelSet>();
    const switches = new Map<string, Float32Array>();
    for (const r of readings) {
      const set = r.on;
      on.set(`${names.get(r.gate)}.block.0`, new ChannelSet(set.N, set.C, set.active.slice()));
      switches.set(`${names.get(r.gate)}.block.0`, r.switches.values.f32().slice());
    }
    return { out, on, switches };
  } finally {
    gs.forEach((g, i) => { g.mode = before[i] as GateMode; });
    e.endStep();
  }
}
