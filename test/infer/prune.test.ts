import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Engine } from '../../src/autograd/engine.js';
import { compile, denseTwin, kernelsNeverOn, pruneStatic, PruneError } from '../../src/infer/index.js';
import { Conv2d } from '../../src/nn/layers.js';
import { Gated, gates } from '../../src/nn/lkam.js';
import type { Module } from '../../src/nn/module.js';
import { assertClose, close, exact, loose, maxAbs } from '../util/tolerance.js';
import { images, net, trainingGraph, useEngine } from './helpers.js';

const SHAPE = [1, 28, 28] as const;

/** Makes kernels of the gate whose conv is at `convPath` off for every input: zero switch weights, bias -1. */
function forceOff(m: Module, convPath: string, kernels: readonly number[]): void {
  const gatePath = convPath.replace(/\.block\.0$/, '');
  const g = m.modules().find(([p]) => p === gatePath)?.[1];
  assert.ok(g instanceof Gated, `a gate at ${gatePath}`);
  const F = g.lkam.fc.inFeatures;
  const w = g.lkam.fc.weight.f32(), b = g.lkam.fc.bias!.f32();
  for (const k of kernels) {
    w.fill(0, k * F, (k + 1) * F);
    b[k] = -1;
  }
}

function conv(m: Module, path: string): Conv2d {
  const c = m.modules().find(([p]) => p === path)?.[1];
  assert.ok(c instanceof Conv2d, `a conv at ${path}`);
  return c;
}

describe('static pruning (hand-pruned models)', () => {
  let e: Engine;
  before(async () => { e = await useEngine('wasm', 2); });
  after(() => e.close());

  test('fmnistVgg5 with LKAMs: removing kernels that are always off keeps the outputs; the plan of the pruned model equals its training graph', () => {
    const m = net('fmnistVgg5', { lkams: true, seed: 12 });
    const off = new Map<string, number[]>([['3.block.0', [0, 5, 6, 31]], ['5.block.0', [1, 2, 40]], ['6.block.0', [63]], ['8.block.0', [0, 1, 2, 3, 100]]]);
    for (const [path, kernels] of off) forceOff(m, path, kernels);
    const x = images(5, 51).map((v, i) => v * (0.3 + 0.3 * Math.floor(i / 784)));
    const plan = compile(m, { inputShape: SHAPE, maxBatch: 5 });
    const never = kernelsNeverOn(plan, x);
    for (const [path, kernels] of off) for (const k of kernels) assert.ok(never.get(path)!.includes(k), `kernel ${k} of ${path} is never on`);
    const pruned = pruneStatic(m, off, { inputShape: SHAPE });
    for (const [path, kernels] of off) assert.equal(conv(pruned, path).outChannels, conv(m, path).outChannels - kernels.length, `kernels of ${path}`);
    assert.equal(conv(pruned, '5.block.0').inChannels, 28, 'the next conv reads 32 - 4 channels');
    assert.equal(conv(pruned, '3.lkam.conv').inChannels, 32, 'the first LKAM reads conv 0, which lost nothing');
    assert.equal(conv(pruned, '5.lkam.conv').inChannels, 28, 'the next LKAM reads the pruned channels');
    const ref = trainingGraph(m, x, SHAPE).out;
    const prunedRef = trainingGraph(pruned, x, SHAPE).out;
    assertClose(prunedRef, ref, close, 'training graph, pruned vs unpruned', maxAbs(ref));
    for (const skip of [true, false]) {
      const p = compile(pruned, { inputShape: SHAPE, maxBatch: 5, skip });
      try {
        assertClose(p.run(x), prunedRef, loose, `plan of the pruned model, skip=${skip}`, maxAbs(prunedRef));
        assert.ok(p.denseMacs < plan.denseMacs, 'the pruned network is smaller');
      } finally {
        p.dispose();
      }
    }
    plan.dispose();
  });

  test('smallResNet with LKAMs: the first conv of a residual body can lose kernels; the conv before the add cannot', () => {
    const m = net('smallResNet', { lkams: true, seed: 13 });
    const off = new Map([['5.body.0.block.0', [3, 4, 17]]]);
    for (const [path, kernels] of off) forceOff(m, path, kernels);
    const x = images(3, 52);
    const pruned = pruneStatic(m, off, { inputShape: SHAPE });
    assert.equal(conv(pruned, '5.body.1.block.0').inChannels, 32 - 3);
    const ref = trainingGraph(m, x, SHAPE).out;
    assertClose(trainingGraph(pruned, x, SHAPE).out, ref, close, 'pruned resnet vs unpruned', maxAbs(ref));
    const p = compile(pruned, { inputShape: SHAPE, maxBatch: 3 });
    try {
      assertClose(p.run(x), ref, loose, 'plan of the pruned resnet', maxAbs(ref));
    } finally {
      p.dispose();
    }
    assert.throws(() => pruneStatic(m, new Map([['5.body.1.block.0', [0]]]), { inputShape: SHAPE }), (err: unknown) =>
      err instanceof PruneError && /Residual at '5'.*\[0\].*shortcut \[\]/.test(err.message));
  });

  test('bad removals are refused: unknown conv, kernel out of range, every kernel of a conv', () => {
    const m = net('fmnistVgg5', { lkams: true });
    assert.throws(() => pruneStatic(m, new Map([['4', [0]]]), { inputShape: SHAPE }), /no conv at '4'/);
    assert.throws(() => pruneStatic(m, new Map([['0', [32]]]), { inputShape: SHAPE }), /kernels 0 to 31; cannot remove 32/);
    assert.throws(() => pruneStatic(m, new Map([['0', Array.from({ length: 32 }, (_, i) => i)]]), { inputShape: SHAPE }), /keep at least one/);
  });

  test('the dense twin has no LKAMs and the same function as the network they were added to; exact', () => {
    const gated = net('fmnistVgg5', { lkams: true, seed: 14 });
    const plain = net('fmnistVgg5', { seed: 14 });
    const twin = denseTwin(gated, SHAPE);
    assert.equal(gates(twin).length, 0);
    assert.equal(twin.macs([1, ...SHAPE]), plain.macs([1, ...SHAPE]));
    const x = images(2, 53);
    assertClose(trainingGraph(twin, x, SHAPE).out, trainingGraph(plain, x, SHAPE).out, exact, 'dense twin vs the network without LKAMs');
  });
});
