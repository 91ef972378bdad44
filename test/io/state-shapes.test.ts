import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { expectedState, hasStateRule, SpecError } from '../../src/io/state-shapes.js';
import { AvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten, GlobalMaxPool, Linear, manualSeed, MaxPool2d, ReLU, Sequential } from '../../src/nn/layers.js';
import { addLKAMs } from '../../src/nn/lkam.js';
import type { Module } from '../../src/nn/module.js';
import { buildModule, UnknownModuleError } from '../../src/nn/registry.js';
import { fmnistVgg5, smallResNet } from '../../src/nn/zoo.js';
import { tinyDense, tinyGated, useEngine } from './helpers.js';

function everyLayer(): Module {
  return new Sequential([
    new Conv2d({ inChannels: 2, outChannels: 4, kernel: [3, 1], padding: [1, 0], groups: 2 }),
    new BatchNorm2d(4),
    new ReLU(),
    new MaxPool2d(2),
    new Dropout(0.25),
    new AvgPool2d(2, 1, 1),
    new GlobalMaxPool(),
    new Flatten(),
    new Linear({ inFeatures: 4, outFeatures: 3, bias: false }),
  ]);
}

describe('state shapes from specs', () => {
  before(async () => {
    await useEngine();
    manualSeed(4);
  });

  test('the rules predict exactly the tensors the built modules own, for every zoo model with and without LKAMs', () => {
    const models: Array<[string, () => Module]> = [
      ['tinyDense', tinyDense],
      ['tinyGated', tinyGated],
      ['everyLayer', everyLayer],
      ['fmnistVgg5', () => fmnistVgg5()],
      ['fmnistVgg5 + LKAMs (sigmoid, avg, grid 3, bank 5)', () => addLKAMs(fmnistVgg5(), { switchKind: 'sigmoid', pool: 'avg', grid: 3, bank: 5 })],
      ['smallResNet', () => smallResNet({ width: 4 })],
      ['smallResNet + LKAMs', () => addLKAMs(smallResNet({ width: 4 }))],
    ];
    for (const [name, make] of models) {
      const m = make();
      const { shapes, unruled } = expectedState(m.spec());
      assert.deepEqual(unruled, [], name);
      const actual = new Map(m.stateDict().map(([n, t]) => [n, [...t.shape]]));
      assert.deepEqual(new Map([...shapes].sort()), new Map([...actual].sort()), name);
    }
  });

  test('every layer type the registry knows has a rule', () => {
    let known: string[] = [];
    try {
      buildModule({ type: '\u0000no such layer' });
    } catch (e) {
      assert.ok(e instanceof UnknownModuleError);
      known = /\(known: (.*)\)$/.exec(e.message)![1]!.split(', ');
    }
    assert.ok(known.includes('Conv2d') && known.includes('LKAM'), `registry lists ${known.join(', ')}`);
    const missing = known.filter((t) => !hasStateRule(t));
    assert.deepEqual(missing, [], `layer types without a rule in src/io/state-shapes.ts: ${missing.join(', ')}`);
  });

  test('fields are read as the builders read them and errors name the field path', () => {
    const conv = { type: 'Conv2d', inChannels: 4, outChannels: 6, kernel: 3, stride: 1, padding: 1, dilation: 1, groups: 2, bias: false };
    assert.deepEqual([...expectedState(conv).shapes], [['weight', [6, 2, 3, 3]]]);
    assert.throws(() => expectedState({ ...conv, groups: 4 }), (e: unknown) => e instanceof SpecError && /4 input and 6 output channels should both be divisible by groups=4/.test(e.message));
    assert.throws(() => expectedState({ type: 'Sequential', layers: [{ type: 'Linear', inFeatures: 0, outFeatures: 2 }] }), (e: unknown) => e instanceof SpecError && e.path === 'layers[0].inFeatures');
    assert.throws(() => expectedState({ type: 'Residual', body: 5 }), (e: unknown) => e instanceof SpecError && e.path === 'body' && /should be a layer spec/.test(e.message));
    const lkam = expectedState({ type: 'LKAM', inChannels: 3, switches: 5 });
    assert.deepEqual(lkam.shapes.get('fc.weight'), [5, 4], 'bank defaults to 4 and grid to 1, as in the builder');
    assert.deepEqual(expectedState({ type: 'Sequential', layers: [{ type: 'Swish' }, { type: 'ReLU' }] }).unruled, [{ type: 'Swish', path: 'layers[0]' }]);
  });
});
