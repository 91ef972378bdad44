import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { OnnxError } from '../../src/io/errors.js';
import { exportOnnx } from '../../src/io/onnx-export.js';
import { encodeModelProto, floatTensor, floatValueInfo, int64Tensor, intAttr, intsAttr, onnx, scalarTensor, type NodeProto, type TensorProto } from '../../src/io/onnx-graph.js';
import { importOnnx } from '../../src/io/onnx-import.js';
import { AvgPool2d, BatchNorm2d, Conv2d, GlobalAvgPool, Linear, manualSeed, MaxPool2d, ReLU, Sequential } from '../../src/nn/layers.js';
import { addLKAMs, Gated, type AddLkamOptions } from '../../src/nn/lkam.js';
import type { Module } from '../../src/nn/module.js';
import { SGD } from '../../src/optim/sgd.js';
import { trainStep } from '../../src/train/fit.js';
import { smallResNet } from '../../src/nn/zoo.js';
import { assertClose, close } from '../util/tolerance.js';
import { randomizeState, stateValues, useEngine } from './helpers.js';
import { fashionImages, runOrt, runOurs } from './onnx-helpers.js';

interface TorchFixture {
  readonly opset: number;
  readonly ops: string[];
  readonly input_shape: [number, number, number, number];
  readonly pixels: number[];
  readonly output_shape: number[];
  readonly output: number[];
  readonly unsupported?: string[];
}

function fixture(name: string): { bytes: Uint8Array; record: TorchFixture } {
  const url = (ext: string): URL => new URL(`../fixtures/onnx/${name}.${ext}`, import.meta.url);
  return { bytes: new Uint8Array(readFileSync(url('onnx'))), record: JSON.parse(readFileSync(url('json'), 'utf8')) as TorchFixture };
}

function count(model: Module, type: string): number {
  return model.modules().filter(([, m]) => m.type === type).length;
}

/** A one-node-chain graph on a [1, 2, 6, 6] input, for the refusals. */
function graph(nodes: NodeProto[], initializers: TensorProto[], output: string, outputDims: number[], opset = 13): Uint8Array {
  return encodeModelProto({
    irVersion: 7,
    opsetImport: [{ domain: '', version: opset }],
    graph: { name: 'g', node: nodes, initializer: initializers, input: [floatValueInfo('x', [1, 2, 6, 6], false)], output: [floatValueInfo(output, outputDims, false)] },
  });
}

function refuses(bytes: Uint8Array, pattern: RegExp, unsupported?: (list: readonly string[]) => void): void {
  assert.throws(() => importOnnx(bytes, { file: 'g.onnx' }), (e: unknown) => {
    assert.ok(e instanceof OnnxError, `expected OnnxError, got ${String(e)}`);
    assert.match(e.message, /^g\.onnx: /);
    assert.match(e.message, pattern);
    unsupported?.(e.unsupported);
    return true;
  });
}

describe('ONNX import', () => {
  before(async () => {
    await useEngine();
    manualSeed(8);
  });

  for (const [name, structure] of [
    ['torch-vgg-folded', { Conv2d: 3, BatchNorm2d: 0, AvgPool2d: 1, MaxPool2d: 1, Flatten: 1, Linear: 1 }],
    ['torch-resnet', { Residual: 3, BatchNorm2d: 9, Conv2d: 9, GlobalAvgPool: 1, Linear: 1 }],
    ['torch-maxnet', { Conv2d: 2, BatchNorm2d: 0, MaxPool2d: 1, GlobalMaxPool: 1, Linear: 1 }],
  ] as const) {
    test(`${name}: PyTorch's export maps onto our modules and reproduces PyTorch's recorded outputs`, () => {
      const { bytes, record } = fixture(name);
      const im = importOnnx(bytes);
      assert.equal(im.opset, record.opset);
      assert.deepEqual(im.inputShape, record.input_shape.slice(1));
      for (const [type, n] of Object.entries(structure)) assert.equal(count(im.model, type), n, `${name}: ${type} modules`);
      const x = Float32Array.from(record.pixels, (v) => v / 255);
      const ours = runOurs(im.model, x, record.input_shape);
      assertClose(ours.logits, record.output, close, `${name}: logits against PyTorch`);
    });
  }

  test('PyTorch\'s LeakyRelu and Softmax are named as the nodes it cannot map', () => {
    const { bytes, record } = fixture('torch-unsupported');
    assert.throws(() => importOnnx(bytes, { file: 'torch-unsupported.onnx' }), (e: unknown) => {
      assert.ok(e instanceof OnnxError);
      assert.deepEqual(record.unsupported, ['LeakyRelu', 'Softmax']);
      assert.equal(e.unsupported.length, 2);
      for (const op of record.unsupported ?? []) assert.ok(e.unsupported.some((u) => u.startsWith(`${op} (node '`)), `${op} is not listed: ${e.unsupported.join(', ')}`);
      assert.match(e.message, /^torch-unsupported\.onnx: cannot map 2 nodes: LeakyRelu x1 \(first: node '[^']+': no mapping\); Softmax x1 .*; mapped ops: .*Conv/);
      return true;
    });
  });

  test('an imported network takes LKAMs and fine-tunes', () => {
    const im = importOnnx(fixture('torch-resnet').bytes);
    const gated = addLKAMs(im.model, { bank: 2 });
    assert.equal(count(gated, 'Gated'), 6);
    const before = stateValues(gated);
    const { x, labels, shape } = fashionImages(8);
    const optimizer = new SGD(gated.parameters(), { lr: 0.05, momentum: 0.9 });
    const r = trainStep(gated, optimizer, { x, y: labels, shape });
    assert.ok(Number.isFinite(r.loss));
    const after = stateValues(gated);
    assert.ok([...after].some(([k, v]) => v.some((w, i) => w !== before.get(k)![i])), 'no weight changed');
  });

  for (const [label, make] of [
    ['a dense net with pools', () => new Sequential([
      new Conv2d({ inChannels: 1, outChannels: 6, kernel: 3, padding: 1 }), new BatchNorm2d(6), new ReLU(), new MaxPool2d(2),
      new Conv2d({ inChannels: 6, outChannels: 8, kernel: 3, stride: 2, padding: 1, bias: false }), new ReLU(), new AvgPool2d(3, 2, 1),
      new GlobalAvgPool(), new Linear({ inFeatures: 8, outFeatures: 10 }),
    ])],
    ['a residual net', () => smallResNet({ width: 4 })],
    ['a gated net (hard switches)', () => addLKAMs(smallResNet({ width: 4 }), { bank: 3 })],
    ['a gated net (sigmoid switches, average grid)', () => addLKAMs(smallResNet({ width: 4 }), { switchKind: 'sigmoid', pool: 'avg', grid: 2, threshold: 0.4 } satisfies AddLkamOptions)],
    ['a gated net (binary switches)', () => addLKAMs(smallResNet({ width: 4 }), { switchKind: 'binary', bank: 2 } satisfies AddLkamOptions)],
  ] as Array<[string, () => Module]>) {
    test(`our own export of ${label} imports to the same spec and the same outputs, bit for bit`, async () => {
      const m = make();
      randomizeState(m, 9);
      const exported = exportOnnx(m, { inputShape: [1, 28, 28] });
      const im = importOnnx(exported.bytes);
      assert.deepEqual(im.model.spec(), m.spec());
      const { x, shape } = fashionImages(8);
      const a = runOurs(m, x, shape);
      const b = runOurs(im.model, x, shape);
      assert.deepEqual(b.logits, a.logits);
      assert.deepEqual(b.switches, a.switches);
      assert.deepEqual([...im.switchOutputs], exported.switchOutputs.map((s) => [s.gate, s.name]));
      if (a.switches.size > 0) {
        // The imported model's switch outputs name the same values onnxruntime computes.
        const ort = await runOrt(exported.bytes, { [exported.input]: { data: x, shape } });
        for (const [gate, output] of im.switchOutputs) assertClose(ort[output]!, b.switches.get(gate)!, close, `switches of ${gate}`);
        assert.ok(im.model.modules().some(([, g]) => g instanceof Gated));
      }
    });
  }

  test('every node that does not map is counted per op type, also after one that fails, in one short line', () => {
    const w = floatTensor('w', [2, 2, 3, 3], new Float32Array(36).fill(0.1));
    const bytes = graph([
      { opType: 'Conv', name: 'conv', input: ['x', 'w'], output: ['a0'], attribute: [intsAttr('pads', [1, 1, 0, 0])] },
      { opType: 'BatchNormalization', name: 'bn', input: ['a0', 's', 'sb', 'm', 'v'], output: ['a'], attribute: [intAttr('training_mode', 1)] },
      { opType: 'Clip', name: 'relu6', input: ['a', 'lo', 'hi'], output: ['b'] },
      { opType: 'MaxPool', name: 'pool', input: ['b'], output: ['c'], attribute: [intsAttr('kernel_shape', [2, 2]), intsAttr('strides', [2, 2]), intAttr('ceil_mode', 1)] },
      { opType: 'Add', name: 'shift', input: ['c', 'two'], output: ['d'] },
      { opType: 'LeakyRelu', name: 'leaky', input: ['d'], output: ['e'] },
    ], [w, ...['s', 'sb', 'm', 'v'].map((k) => floatTensor(k, [2], Float32Array.of(1, 1))), scalarTensor('lo', 0), scalarTensor('hi', 6), scalarTensor('two', 2)], 'e', [1, 2, 3, 3]);
    refuses(bytes, /^g\.onnx: cannot map 3 nodes: BatchNormalization x1 \(first: node 'bn': training_mode is set\); Add x1 \(first: node 'shift': adds a constant that is not the bias of a MatMul\); LeakyRelu x1 \(first: node 'leaky': no mapping\); mapped ops: /, (list) => assert.equal(list.length, 3));
    // A thousand unsupported nodes: one line of a few hundred characters, every node in `unsupported`.
    const many: NodeProto[] = Array.from({ length: 1000 }, (_, i) => ({ opType: i % 2 === 0 ? 'Softplus' : 'Elu', name: `n${i}`, input: [i === 0 ? 'x' : `v${i - 1}`], output: [`v${i}`] }));
    refuses(graph(many, [], 'v999', [1, 2, 6, 6]), /^g\.onnx: cannot map 1000 nodes: Softplus x500 \(first: node 'n0': no mapping\); Elu x500 \(first: node 'n1': no mapping\).*--debug lists every node$/, (list) => assert.equal(list.length, 1000));
    assert.throws(() => importOnnx(graph(many, [], 'v999', [1, 2, 6, 6])), (e: unknown) => e instanceof OnnxError && e.message.length < 700);
  });

  test('long chains, self-adds and wide fan-out import without recursion, in linear time', () => {
    // 10,000 chained residual blocks y = relu(x) + x, then 10,000 Add(x, x).
    const chain: NodeProto[] = [];
    let v = 'x';
    for (let i = 0; i < 10_000; i++) {
      chain.push({ opType: 'Relu', name: `r${i}`, input: [v], output: [`r${i}`] }, { opType: 'Add', name: `a${i}`, input: [`r${i}`, v], output: [`a${i}`] });
      v = `a${i}`;
    }
    for (let i = 0; i < 10_000; i++) {
      chain.push({ opType: 'Add', name: `d${i}`, input: [v, v], output: [`d${i}`] });
      v = `d${i}`;
    }
    const im = importOnnx(graph(chain, [], v, [1, 2, 6, 6]));
    assert.equal(count(im.model, 'Residual'), 20_000);
    // 100,000 nodes reading one value (all but one unused).
    const fan: NodeProto[] = Array.from({ length: 100_000 }, (_, i) => ({ opType: 'Relu', name: `f${i}`, input: ['x'], output: [`f${i}`] }));
    const t0 = performance.now();
    const wide = importOnnx(graph(fan, [], 'f0', [1, 2, 6, 6]));
    assert.ok(performance.now() - t0 < 10_000, `${Math.round(performance.now() - t0)} ms for 100,000 readers`);
    assert.equal(count(wide.model, 'ReLU'), 1);
    // Two Relu nodes that read each other's output: a cycle, refused at once.
    refuses(graph([
      { opType: 'Relu', name: 'p', input: ['c'], output: ['b'] },
      { opType: 'Relu', name: 'q', input: ['b'], output: ['c'] },
      { opType: 'Relu', name: 's', input: ['x'], output: ['y'] },
    ], [], 'c', [1, 2, 6, 6]), /cycle/);
  });

  test('graphs outside the supported opsets, with computed reshapes, several inputs, or not ONNX at all are refused', () => {
    const relu: NodeProto = { opType: 'Relu', name: 'r', input: ['x'], output: ['y'] };
    refuses(graph([relu], [], 'y', [1, 2, 6, 6], 22), /opset 22 is outside the supported 6–21/);
    refuses(graph([relu], [], 'y', [1, 2, 6, 6], 5), /opset 5 is outside/);
    refuses(graph([{ opType: 'Reshape', name: 'reshape', input: ['x', 'shape'], output: ['y'] }], [int64Tensor('shape', [2, 36])], 'y', [2, 36]), /Reshape x1 \(first: node 'reshape': it reshapes \[1,2,6,6\] to \[2,36\]/);
    const twoInputs = encodeModelProto({
      irVersion: 7, opsetImport: [{ domain: '', version: 13 }],
      graph: { name: 'g', node: [{ opType: 'Add', name: 'add', input: ['x', 'z'], output: ['y'] }], input: [floatValueInfo('x', [1, 2, 6, 6], false), floatValueInfo('z', [1, 2, 6, 6], false)], output: [floatValueInfo('y', [1, 2, 6, 6], false)] },
    });
    refuses(twoInputs, /the graph has 2 inputs without initializers \(x, z\), expected one image batch/);
    refuses(new TextEncoder().encode('this is not protobuf at all, just text'), /not an ONNX model/);
  });

  test('an output other than the model\'s and its switches is refused', () => {
    const m = new Sequential([new Conv2d({ inChannels: 1, outChannels: 2, kernel: 3 }), new ReLU(), new GlobalAvgPool(), new Linear({ inFeatures: 2, outFeatures: 3 })]);
    const exported = exportOnnx(m, { inputShape: [1, 8, 8] });
    const proto = onnx.ModelProto.decode(exported.bytes);
    const outputs = proto.graph?.output;
    assert.ok(outputs !== undefined && outputs !== null);
    outputs.push(onnx.ValueInfoProto.create(floatValueInfo('0.Conv', [1, 2, 6, 6])));
    refuses(onnx.ModelProto.encode(proto).finish(), /graph output 0\.Conv is neither the model's output nor an LKAM's switch values/);
  });
});
