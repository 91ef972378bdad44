import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { compile } from '../../src/infer/index.js';
import { compilableTypes } from '../../src/infer/compilers.js';
import { pruneStatic } from '../../src/infer/prune.js';
import { exportOnnx, onnxExportableTypes } from '../../src/io/onnx-export.js';
import { importOnnx } from '../../src/io/onnx-import.js';
import { hasStateRule } from '../../src/io/state-shapes.js';
import '../../src/io/model-file.js';
import { Clip, GELU, HardSigmoid, HardSwish, Sigmoid, SiLU } from '../../src/nn/activations.js';
import { ChannelSelect } from '../../src/nn/channels.js';
import { Concat } from '../../src/nn/concat.js';
import { Pad2d } from '../../src/nn/pad.js';
import { ChannelLayerNorm } from '../../src/nn/layernorm.js';
import { SqueezeExcite } from '../../src/nn/squeeze-excite.js';
import { AvgPool2d, BatchNorm2d, Conv2d, GlobalAvgPool, Linear, manualSeed, MaxPool2d, ReLU, Sequential } from '../../src/nn/layers.js';
import { addLKAMs } from '../../src/nn/lkam.js';
import type { Module } from '../../src/nn/module.js';
import { buildModule, UnknownModuleError } from '../../src/nn/registry.js';
import { assertClose, close, loose, maxAbs } from '../util/tolerance.js';
import { randomizeState, useEngine } from '../io/helpers.js';
import { runOrt, runOurs } from '../io/onnx-helpers.js';
import { images } from '../infer/helpers.js';

const SHAPE = [3, 13, 13] as const;

/** Every activation, a channel Concat with an identity branch, and ceil-mode pools, in one network. */
function everyNewLayer(): Module {
  return new Sequential([
    new Conv2d({ inChannels: 3, outChannels: 6, kernel: 3, padding: 1 }), new BatchNorm2d(6), new Clip(0, 6),
    new Concat([
      new Sequential([]),
      new Sequential([new Conv2d({ inChannels: 6, outChannels: 4, kernel: 1 }), new SiLU()]),
      new Sequential([new Conv2d({ inChannels: 6, outChannels: 5, kernel: 3, padding: 1 }), new ReLU()]),
    ]),
    ChannelSelect.shuffle(15, 3), new Pad2d([1, 0, 0, 1], 'reflect'),
    new MaxPool2d(3, 2, 0, { ceilMode: true }),
    new Conv2d({ inChannels: 15, outChannels: 8, kernel: 3, padding: 1 }), new HardSwish(),
    new SqueezeExcite({ channels: 8, squeeze: 3, activation: 'silu', gate: 'hardSigmoid' }),
    new Conv2d({ inChannels: 8, outChannels: 8, kernel: 3, padding: 1 }), new GELU(), new ChannelLayerNorm(8),
    new AvgPool2d(2, 2, 0, { ceilMode: true, countIncludePad: false }),
    new Conv2d({ inChannels: 8, outChannels: 6, kernel: 1 }), new Clip(-0.5, 1.5),
    new Conv2d({ inChannels: 6, outChannels: 6, kernel: 1 }), new Sigmoid(),
    new Conv2d({ inChannels: 6, outChannels: 6, kernel: 1 }), new HardSigmoid(0.25, 0.4),
    new GlobalAvgPool(), new Linear({ inFeatures: 6, outFeatures: 5 }),
  ]);
}

describe('new layers: every part of their kit', () => {
  before(async () => {
    await useEngine();
    manualSeed(31);
  });

  test('every registered layer type has a state rule, an inference compiler, a prune rule and an ONNX exporter', () => {
    let known: string[] = [];
    try {
      buildModule({ type: '\u0000none' });
    } catch (e) {
      assert.ok(e instanceof UnknownModuleError);
      known = /\(known: (.*)\)$/.exec(e.message)![1]!.split(', ');
    }
    for (const t of ['Clip', 'Sigmoid', 'SiLU', 'HardSigmoid', 'HardSwish', 'GELU', 'Concat', 'ChannelSelect', 'SqueezeExcite', 'ChannelLayerNorm', 'Pad2d']) assert.ok(known.includes(t), t);
    const compilable = new Set(compilableTypes()), exportable = new Set(onnxExportableTypes());
    assert.deepEqual(known.filter((t) => !hasStateRule(t)), [], 'state rules');
    assert.deepEqual(known.filter((t) => !compilable.has(t)), [], 'compilers');
    assert.deepEqual(known.filter((t) => !exportable.has(t)), [], 'exporters');
  });

  test('spec round trip, compiled plan, ONNX export through onnxruntime and back, pruning through a Concat', async () => {
    const m = everyNewLayer();
    randomizeState(m, 5);
    m.eval();
    assert.deepEqual(buildModule(m.spec()).spec(), m.spec());
    const x = images(3, 7, SHAPE);
    const shape = [3, ...SHAPE];
    const ours = runOurs(m, x, shape).logits;
    const plan = compile(m, { inputShape: SHAPE, maxBatch: 4 });
    try {
      assertClose(plan.run(x), ours, loose, 'plan against the training graph', maxAbs(ours));
    } finally {
      plan.dispose();
    }
    const ex = exportOnnx(m, { inputShape: SHAPE });
    const ort = await runOrt(ex.bytes, { [ex.input]: { data: x, shape } });
    assertClose(ort[ex.output]!, ours, close, 'onnxruntime against ours');
    const im = importOnnx(ex.bytes);
    assert.deepEqual(im.model.spec(), m.spec());
    assert.deepEqual(runOurs(im.model, x, shape).logits, ours);
    // Kernels 1 and 3 of the first conv removed: the identity branch of the Concat loses them too.
    const pruned = pruneStatic(m, new Map([['0', [1, 3]]]), { inputShape: SHAPE });
    assert.equal((pruned.modules().find(([p]) => p === '7')?.[1] as Conv2d).inChannels, 13);
  });

  test('LKAMs go into a network with the new layers and the plan still equals the model', () => {
    const m = addLKAMs(new Sequential([
      new Conv2d({ inChannels: 3, outChannels: 6, kernel: 3, padding: 1 }), new BatchNorm2d(6), new ReLU(),
      new Conv2d({ inChannels: 6, outChannels: 8, kernel: 3, padding: 1 }), new BatchNorm2d(8), new ReLU(),
      new Concat([new Sequential([]), new Sequential([new Conv2d({ inChannels: 8, outChannels: 4, kernel: 1 }), new Clip(0, 6)])]),
      new GlobalAvgPool(), new Linear({ inFeatures: 12, outFeatures: 3 }),
    ]), { bank: 2 });
    randomizeState(m, 9);
    m.eval();
    const x = images(2, 3, SHAPE);
    const ours = runOurs(m, x, [2, ...SHAPE]).logits;
    const plan = compile(m, { inputShape: SHAPE, maxBatch: 2 });
    try {
      assertClose(plan.run(x), ours, loose, 'gated plan', maxAbs(ours));
    } finally {
      plan.dispose();
    }
  });
});
