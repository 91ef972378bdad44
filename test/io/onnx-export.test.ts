import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { OnnxError } from '../../src/io/errors.js';
import { decodeModelProto, toNumber, valueDims, type ValueInfoProto } from '../../src/io/onnx-graph.js';
import { exportOnnx, ONNX_OPSET, onnxExportableTypes } from '../../src/io/onnx-export.js';
import { AvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten, GlobalAvgPool, GlobalMaxPool, Linear, manualSeed, MaxPool2d, ReLU, Sequential } from '../../src/nn/layers.js';
import { addLKAMs, type AddLkamOptions } from '../../src/nn/lkam.js';
import { Stateless, type Module, type ModuleSpec } from '../../src/nn/module.js';
import { smallResNet } from '../../src/nn/zoo.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertClose, close } from '../util/tolerance.js';
import { randomizeState, useEngine } from './helpers.js';
import { fashionImages, runOrt, runOurs } from './onnx-helpers.js';

const IMAGES = 16;
/** The ops a gated export may use: all standard ONNX, nothing custom. */
const GATE_OPS = ['Conv', 'GlobalMaxPool', 'GlobalAveragePool', 'MaxPool', 'AveragePool', 'Flatten', 'Gemm', 'Clip', 'Sigmoid', 'Unsqueeze', 'Mul'];

/** A VGG-style net for 1x28x28 with the given conv widths; `widths` smaller than the original stands for a statically pruned copy. */
function vgg(widths: readonly [number, number, number, number], extra: Module[] = []): Sequential {
  const [a, b, c, d] = widths;
  return new Sequential([
    new Conv2d({ inChannels: 1, outChannels: a, kernel: 3, padding: 1, bias: false }), new BatchNorm2d(a), new ReLU(),
    new Conv2d({ inChannels: a, outChannels: b, kernel: 3, padding: 1, bias: false }), new BatchNorm2d(b), new ReLU(),
    new MaxPool2d(2),
    new Conv2d({ inChannels: b, outChannels: c, kernel: 3, padding: 1 }), new BatchNorm2d(c), new ReLU(),
    new AvgPool2d(3, 2, 1),
    new Conv2d({ inChannels: c, outChannels: d, kernel: 3, padding: 1, bias: false }), new BatchNorm2d(d), new ReLU(),
    ...extra,
    new GlobalAvgPool(),
    new Linear({ inFeatures: d, outFeatures: 10 }),
  ]);
}

async function compare(model: Module, label: string): Promise<{ ops: Set<string>; switches: Map<string, Float32Array> }> {
  const { x, shape } = fashionImages(IMAGES);
  const exported = exportOnnx(model, { inputShape: [1, 28, 28] });
  const proto = decodeModelProto(exported.bytes);
  const graph = proto.graph;
  assert.ok(graph !== null && graph !== undefined);
  assert.equal(toNumber(proto.opsetImport[0]?.version), ONNX_OPSET);
  const outputs = await runOrt(exported.bytes, { [exported.input]: { data: x, shape } });
  const ours = runOurs(model, x, shape);
  assertClose(outputs[exported.output]!, ours.logits, close, `${label}: logits`);
  assert.equal(exported.switchOutputs.length, ours.switches.size, `${label}: one switch output per gate`);
  for (const s of exported.switchOutputs) {
    const info: ValueInfoProto | undefined = (graph.output ?? []).find((o) => o.name === s.name);
    assert.ok(info !== undefined, `${label}: ${s.name} is a graph output`);
    assert.deepEqual(valueDims(info), [-1, s.switches]);
    assertClose(outputs[s.name]!, ours.switches.get(s.gate)!, close, `${label}: switches of gate ${s.gate}`);
  }
  return { ops: new Set((graph.node ?? []).map((n) => n.opType ?? '')), switches: ours.switches };
}

describe('ONNX export, checked against onnxruntime-node on Fashion-MNIST images', () => {
  before(async () => {
    await useEngine();
    manualSeed(5);
  });

  test('a dense model (conv, batch norm, max and average pools, global pool, linear) gives the same logits', async () => {
    const m = vgg([16, 16, 32, 32], [new Dropout(0.5)]);
    randomizeState(m, 1);
    const { ops } = await compare(m, 'dense');
    assert.deepEqual([...ops].sort(), ['AveragePool', 'BatchNormalization', 'Conv', 'Flatten', 'Gemm', 'GlobalAveragePool', 'Identity', 'MaxPool', 'Relu']);
  });

  test('a statically pruned model (uneven, smaller channel counts) exports from its modules alone', async () => {
    const m = vgg([11, 7, 19, 5]);
    randomizeState(m, 2);
    await compare(m, 'pruned');
  });

  test('a residual network (Add) and the remaining layer types', async () => {
    const net = smallResNet({ width: 4 });
    randomizeState(net, 3);
    await compare(net, 'resnet');
    const other = new Sequential([
      new Conv2d({ inChannels: 1, outChannels: 4, kernel: [3, 5], stride: [2, 1], padding: [1, 2], dilation: [1, 2], groups: 1 }),
      new Conv2d({ inChannels: 4, outChannels: 4, kernel: 3, groups: 2 }),
      new ReLU(),
      new GlobalMaxPool(),
      new Linear({ inFeatures: 4, outFeatures: 10, bias: false }),
    ]);
    randomizeState(other, 4);
    await compare(other, 'strided, dilated, grouped');
    const flat = new Sequential([new MaxPool2d(4), new Flatten(), new Linear({ inFeatures: 49, outFeatures: 10 })]);
    randomizeState(flat, 5);
    await compare(flat, 'flatten + linear');
  });

  for (const [label, options] of [
    ['hard switches, global max pooling', { bank: 4 }],
    ['sigmoid switches, 3x3 average grid', { switchKind: 'sigmoid', pool: 'avg', grid: 3, bank: 3 }],
    ['hard switches, 2x2 max grid', { grid: 2, bank: 5 }],
    ['binary switches, 2x2 average grid', { switchKind: 'binary', grid: 2, pool: 'avg', bank: 3 }],
  ] as Array<[string, AddLkamOptions]>) {
    test(`a gated model (${label}): logits and switch values as extra outputs, in standard ops`, async () => {
      const m = addLKAMs(vgg([8, 12, 16, 16]), options);
      randomizeState(m, 6);
      const { ops, switches } = await compare(m, label);
      for (const op of GATE_OPS.filter((o) => (options.switchKind === 'sigmoid' ? o !== 'Clip' : o !== 'Sigmoid'))) {
        if (['GlobalMaxPool', 'GlobalAveragePool', 'MaxPool', 'AveragePool'].includes(op)) continue;
        assert.ok(ops.has(op), `${label}: the export has no ${op}`);
      }
      assert.equal(switches.size, 3);
      const all = [...switches.values()].flatMap((s) => [...s]);
      if (options.switchKind !== 'sigmoid') {
        // The comparison covered switches that are off, fully on and in between.
        assert.ok(all.some((v) => v === 0) && all.some((v) => v === 1) && all.some((v) => v > 0 && v < 1), 'switch values do not cover 0, 1 and between');
        // Binary switches gate by Cast(s > 0): a kept kernel passes unscaled.
        if (options.switchKind === 'binary') assert.ok(ops.has('Greater') && ops.has('Cast'));
      } else {
        // Switches on both sides of the threshold: the export's GreaterOrEqual mask was exercised.
        assert.ok(ops.has('GreaterOrEqual') && ops.has('Cast'));
        assert.ok(all.some((v) => v < 0.5) && all.some((v) => v >= 0.5), 'sigmoid switches do not straddle the threshold');
      }
    });
  }

  test('an unsupported layer type is named with its path, with the list of exportable types', () => {
    class Swish extends Stateless {
      readonly type = 'Swish';
      override forward(x: Tensor): Tensor {
        return x;
      }
      override spec(): ModuleSpec {
        return { type: this.type };
      }
    }
    const m = new Sequential([new Conv2d({ inChannels: 1, outChannels: 2, kernel: 3 }), new Swish(), new Sequential([new Swish()])]);
    assert.throws(() => exportOnnx(m, { inputShape: [1, 8, 8] }), (e: unknown) => {
      assert.ok(e instanceof OnnxError);
      assert.deepEqual(e.unsupported, ['Swish']);
      assert.match(e.message, /no exporter for Swish \(at 1, 2\.0\); exportable layer types: .*Conv2d.*Gated.*LKAM/);
      return true;
    });
    assert.ok(onnxExportableTypes().includes('Residual'));
  });
});
