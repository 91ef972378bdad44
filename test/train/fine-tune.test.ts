import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { engine, init } from '../../src/autograd/engine.js';
import { FASHION_MNIST_CLASSES, FASHION_MNIST_NORMALIZE, loadFashionMnist, normalizeImages } from '../../src/data/index.js';
import { denseTwin } from '../../src/infer/prune.js';
import { ModelFileError } from '../../src/io/errors.js';
import { decodeModel, encodeModel, modelNormalize, stateRecords } from '../../src/io/model-file.js';
import { encodeSafetensors, parseSafetensors } from '../../src/io/safetensors.js';
import { loadModel, saveModel } from '../../src/io/node-files.js';
import { exportOnnx } from '../../src/io/onnx-export.js';
import { gates } from '../../src/nn/lkam.js';
import type { Module } from '../../src/nn/module.js';
import { checkModelFits, ModelFitError, openTrainedModel, prepareFineTune } from '../../src/train/fine-tune.js';
import { assertClose, exact } from '../util/tolerance.js';

const SHIPPED = 'models/fmnist-vgg5-lkam.safetensors';
const FMNIST = { inputShape: [1, 28, 28], classNames: FASHION_MNIST_CLASSES };
let dir: string;

function logits(m: Module, x: Float32Array, n: number): Float32Array {
  m.eval();
  return m.forward(engine().tensor(x, [n, 1, 28, 28])).f32().slice();
}

describe('fine-tuning starts from a trained dense model', () => {
  before(async () => {
    // Bit-identity holds within one kernel family: the gated graph's sparse convs run on WebAssembly.
    await init({ threads: 1, backend: 'wasm' });
    dir = mkdtempSync(join(tmpdir(), 'parsimony-finetune-'));
    const { model, meta } = loadModel(SHIPPED);
    saveModel(join(dir, 'dense.safetensors'), denseTwin(model, meta.inputShape), { inputShape: meta.inputShape, classNames: FASHION_MNIST_CLASSES });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('prepareFineTune adds LKAMs exactly open: the same logits on real images, the file\'s normalisation', async () => {
    const trained = await openTrainedModel(join(dir, 'dense.safetensors'));
    const test = loadFashionMnist({ subset: 'builtin' }).test;
    const n = 32;
    const x = normalizeImages(test.pixels.subarray(0, n * 784), test.shape, modelNormalize(trained.meta));
    const before = logits(trained.model, x, n);
    const start = prepareFineTune(trained, FMNIST, '--data builtin');
    assert.deepEqual(start.normalize, FASHION_MNIST_NORMALIZE, 'a file without normalisation was trained with Fashion-MNIST\'s');
    assert.deepEqual(start.gated, [1, 2, 3, 4]);
    assert.equal(gates(start.model).length, 4);
    assertClose(logits(start.model, x, n), before, exact, 'logits at step 0');
    const chosen = prepareFineTune(await openTrainedModel(join(dir, 'dense.safetensors')), FMNIST, '--data builtin', { lkam: { layers: [0, 2], pool: 'avg' }, gains: 'uniform' });
    assert.deepEqual(chosen.gated, [0, 2]);
    assertClose(logits(chosen.model, x, n), before, exact, 'logits at step 0, first conv gated');
  });

  test('a model that already has LKAMs is refused in one line naming the file and its gates', async () => {
    const shipped = await openTrainedModel(SHIPPED);
    assert.throws(() => prepareFineTune(shipped, FMNIST, '--data builtin'), (e: unknown) => {
      assert.ok(e instanceof ModelFitError);
      assert.equal(e.message, `${SHIPPED}: the model already has 4 LKAM(s) (gating conv 1, conv 2, conv 3, conv 4); fine-tuning starts from a trained dense model`);
      return true;
    });
  });

  test('a model that does not fit the data is refused, naming the model and the data', async () => {
    const trained = () => openTrainedModel(join(dir, 'dense.safetensors'));
    const file = join(dir, 'dense.safetensors');
    const cases: Array<[{ inputShape: number[]; classNames: readonly string[] }, string]> = [
      [{ inputShape: [3, 32, 32], classNames: FASHION_MNIST_CLASSES }, `${file}: the model reads 1x28x28 images, but --data c10 holds 3x32x32 images`],
      [{ inputShape: [1, 28, 28], classNames: ['a', 'b', 'c'] }, `${file}: the model has 10 outputs, but --data c10 has 3 classes ('a', 'b', 'c')`],
      [{ inputShape: [1, 28, 28], classNames: [...FASHION_MNIST_CLASSES.slice(0, 9), 'Boot'] },
        `${file}: the model has classes 'T-shirt/top', 'Trouser', 'Pullover', 'Dress', ... (10), but --data c10 has 'T-shirt/top', 'Trouser', 'Pullover', 'Dress', ... (10) (class 9 is 'Ankle boot' in the model, 'Boot' in the data)`],
    ];
    for (const [data, message] of cases) {
      const fresh = await trained();
      assert.throws(() => prepareFineTune(fresh, data, '--data c10'), (e: unknown) => e instanceof ModelFitError && e.message === message, message);
      const t = await trained();
      assert.throws(() => checkModelFits(file, t.model, t.meta, data, '--data c10'), { message });
    }
  });

  test('an ONNX file goes through the importer; it records no normalisation, so the data\'s is used; a gated ONNX is refused', async () => {
    const { model } = await openTrainedModel(join(dir, 'dense.safetensors'));
    model.eval();
    const onnx = join(dir, 'dense.onnx');
    writeFileSync(onnx, exportOnnx(model, { inputShape: [1, 28, 28] }).bytes);
    const trained = await openTrainedModel(onnx);
    assert.equal(trained.format, 'onnx');
    const own = { mean: [0.5], std: [0.25] };
    const start = prepareFineTune(trained, FMNIST, '--data builtin', { dataNormalize: own });
    assert.deepEqual(start.normalize, own);
    const gated = loadModel(SHIPPED).model;
    gated.eval();
    writeFileSync(join(dir, 'gated.onnx'), exportOnnx(gated, { inputShape: [1, 28, 28] }).bytes);
    const gatedOnnx = await openTrainedModel(join(dir, 'gated.onnx'));
    assert.throws(() => prepareFineTune(gatedOnnx, FMNIST, '--data builtin'), /gated\.onnx: the model already has 4 LKAM\(s\)/);
  });
});

describe('the model file records the normalisation', () => {
  before(async () => {
    await init({ threads: 1 });
  });

  test('round trip; files without it read as Fashion-MNIST\'s; bad values are refused naming the field', () => {
    const { model } = loadModel(SHIPPED);
    const normalize = { mean: [0.1], std: [0.2] };
    const bytes = encodeModel(model, { inputShape: [1, 28, 28], normalize });
    const back = decodeModel(bytes, { file: 'm.safetensors' });
    assert.deepEqual(back.meta.normalize, normalize);
    assert.deepEqual(modelNormalize(back.meta), normalize);
    const old = decodeModel(encodeModel(model, { inputShape: [1, 28, 28] }));
    assert.equal(old.meta.normalize, undefined);
    assert.deepEqual(modelNormalize(old.meta), FASHION_MNIST_NORMALIZE);
    assert.throws(() => encodeModel(model, { inputShape: [1, 28, 28], normalize: { mean: [0.1, 0.2], std: [0.2, 0.3] } }), /normalize\.mean has 2 values, expected 1 or 1/);
    assert.throws(() => encodeModel(model, { inputShape: [1, 28, 28], normalize: { mean: [0.1], std: [0] } }), /normalize\.std\[0\] is 0, expected a finite number > 0/);
    const metadata = Object.fromEntries(parseSafetensors(bytes).metadata);
    const edited = encodeSafetensors(stateRecords(model), { ...metadata, normalize: JSON.stringify({ mean: [0.1], std: [-1] }) });
    assert.throws(() => decodeModel(edited, { file: 'm.safetensors' }), (e: unknown) => e instanceof ModelFileError && /^m\.safetensors: metadata normalize\.std\[0\] is -1, expected a finite number > 0/.test(e.message));
  });
});
