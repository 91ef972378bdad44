/**
 * torchvision's families (reduced, random weights; scripts/make-family-fixtures.py, make-regnet-fixture.py) and a gated network
 * written as a PyTorch user writes an LKAM: import at opsets 13 and 17, PyTorch's and onnxruntime's
 * outputs, LKAMs that keep the function, training steps with the sparsity term, compiled plans, export.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { compile } from '../../src/infer/index.js';
import { exportOnnx } from '../../src/io/onnx-export.js';
import { importOnnx } from '../../src/io/onnx-import.js';
import { manualSeed } from '../../src/nn/layers.js';
import { addLKAMs, gates } from '../../src/nn/lkam.js';
import { sparsityTerm } from '../../src/train/objective.js';
import type { Module } from '../../src/nn/module.js';
import { SGD } from '../../src/optim/sgd.js';
import { trainStep } from '../../src/train/fit.js';
import { spreadSwitches } from '../infer/helpers.js';
import { checkSkippingPlan } from '../infer/skipping.js';
import { assertClose, close, loose, maxAbs } from '../util/tolerance.js';
import { useEngine } from './helpers.js';
import { runOrt, runOurs } from './onnx-helpers.js';

interface FamilyRecord {
  readonly family: string;
  readonly input_shape: [number, number, number, number];
  readonly opsets: Record<string, { readonly file: string; readonly ops: string[] }>;
  readonly output: number[];
}

/** The families that import; the others are listed in docs/results.md with what they lack. */
const FAMILIES = ['mobilenet_v2', 'squeezenet1_1', 'densenet121', 'efficientnet_b0', 'mobilenet_v3_small', 'shufflenet_v2_x0_5', 'convnext_tiny', 'regnet_x_400mf'] as const;

function fixture(name: string): FamilyRecord {
  return JSON.parse(readFileSync(new URL(`../fixtures/families/${name}.json`, import.meta.url), 'utf8')) as FamilyRecord;
}
function onnxFile(name: string, opset: number): Uint8Array {
  return new Uint8Array(readFileSync(new URL(`../fixtures/families/${name}-opset${opset}.onnx`, import.meta.url)));
}

/** x[i] = ((i * 7919) % 1000) / 500 - 1, as the fixture script computes it. */
function patternInput(shape: readonly number[]): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  return Float32Array.from({ length: n }, (_, i) => ((i * 7919) % 1000) / 500 - 1);
}

function count(model: Module, type: string): number {
  return model.modules().filter(([, m]) => m.type === type).length;
}

describe('torchvision families and a PyTorch-written gated network through ONNX', () => {
  before(async () => {
    await useEngine();
    manualSeed(23);
  });

  for (const name of FAMILIES) {
    for (const opset of [13, 17]) {
      test(`${name}, opset ${opset}: imports and matches PyTorch and onnxruntime within 1e-4 of the output scale`, async () => {
        const record = fixture(name);
        const bytes = onnxFile(name, opset);
        const x = patternInput(record.input_shape);
        const im = importOnnx(bytes, { file: `${name}-opset${opset}.onnx` });
        assert.equal(im.opset, opset);
        const ours = runOurs(im.model, x, record.input_shape).logits;
        assertClose(ours, record.output, close, `${name}: ours against PyTorch`, maxAbs(record.output));
        const ort = await runOrt(bytes, { input: { data: x, shape: record.input_shape } });
        assertClose(ours, ort['logits']!, close, `${name}: ours against onnxruntime`, maxAbs(record.output));
      });
    }

    test(`${name}: LKAMs keep the function, 3 training steps with the sparsity term, the plan skips, export round-trips`, async () => {
      const record = fixture(name);
      const shape = record.input_shape;
      const x = patternInput(shape);
      const model = importOnnx(onnxFile(name, 13)).model.eval();
      const dense = runOurs(model, x, shape).logits;
      const plan = compile(model, { inputShape: shape.slice(1), maxBatch: shape[0] });
      try {
        assertClose(plan.run(x), dense, loose, `${name}: dense plan against the model`, maxAbs(dense));
      } finally {
        plan.dispose();
      }
      const gated = addLKAMs(model, { bank: 2 });
      assert.ok(gates(gated).length > 0, `${name}: addLKAMs gates some convs`);
      assertClose(runOurs(gated, x, shape).logits, dense, close, `${name}: addLKAMs starts exactly open: the function is unchanged`, maxAbs(dense));
      const optimizer = new SGD(gated.parameters(), { lr: 0.01, momentum: 0.9 });
      const labels = Int32Array.from({ length: shape[0] }, (_, i) => (3 * i + 1) % 10);
      for (let step = 0; step < 3; step++) {
        const r = trainStep(gated, optimizer, { x, y: labels, shape }, (readings) => sparsityTerm(readings, 0.1));
        assert.ok(Number.isFinite(r.loss), `${name}: step ${step} loss ${r.loss}`);
      }
      gated.eval();
      spreadSwitches(gated, 5);
      checkSkippingPlan(gated, shape.slice(1), x);
      const ex = exportOnnx(gated, { inputShape: shape.slice(1) });
      const ort = await runOrt(ex.bytes, { [ex.input]: { data: x, shape } });
      const back = runOurs(gated, x, shape).logits;
      assertClose(ort[ex.output]!, back, close, `${name}: our export through onnxruntime`, maxAbs(back));
      const again = importOnnx(ex.bytes).model;
      assert.equal(gates(again).length, gates(gated).length, `${name}: the re-imported model has the gates`);
      assertClose(runOurs(again, x, shape).logits, back, close, `${name}: our export imported again`, maxAbs(back));
    });
  }

  for (const opset of [13, 17]) {
    test(`a gated network written in PyTorch (clamp and amax, computed view and indexing), opset ${opset}: imports with its gates and its plan skips`, () => {
      const record = fixture('gated');
      const x = patternInput(record.input_shape);
      const im = importOnnx(onnxFile('gated', opset));
      assert.equal(count(im.model, 'Gated'), 2);
      assert.equal(count(im.model, 'LKAM'), 2);
      const ours = runOurs(im.model, x, record.input_shape).logits;
      assertClose(ours, record.output, close, 'gated: ours against PyTorch', maxAbs(record.output));
      const check = checkSkippingPlan(im.model, record.input_shape.slice(1), x);
      assert.ok(check.layers.some((l) => l.activeKernels.some((on) => on < l.kernels)), 'some kernels are off and skipped');
    });
  }
});
