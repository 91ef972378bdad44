/**
 * RegNetX (scripts/make-regnet-fixture.py): ResBottleneckBlock adds proj(x) + f(x), the projection first.
 * The residual's main branch is found by structure: the import puts f in the body, addLKAMs gates f's
 * convs and never the projection, and the plan skips in every gated conv, grouped ones included.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { importOnnx } from '../../src/io/onnx-import.js';
import { BatchNorm2d, Conv2d, manualSeed, ReLU, Residual, Sequential } from '../../src/nn/layers.js';
import { addLKAMs, convsInOrder, gates, mainBranch, residualMain } from '../../src/nn/lkam.js';
import type { Module } from '../../src/nn/module.js';
import { spreadSwitches } from '../infer/helpers.js';
import { checkSkippingPlan } from '../infer/skipping.js';
import { assertClose, close, maxAbs } from '../util/tolerance.js';
import { useEngine } from './helpers.js';
import { runOurs } from './onnx-helpers.js';

interface Record {
  readonly input_shape: [number, number, number, number];
  readonly output: number[];
}
const record = JSON.parse(readFileSync(new URL('../fixtures/families/regnet_x_400mf.json', import.meta.url), 'utf8')) as Record;
const onnx = (opset: number): Uint8Array => new Uint8Array(readFileSync(new URL(`../fixtures/families/regnet_x_400mf-opset${opset}.onnx`, import.meta.url)));
const patternInput = (n: number): Float32Array => Float32Array.from({ length: n }, (_, i) => ((i * 7919) % 1000) / 500 - 1);

const convs = (m: Module | null): Conv2d[] => (m === null ? [] : m.modules().map(([, x]) => x).filter((x): x is Conv2d => x instanceof Conv2d));

describe('the residual main branch is found by structure, not by input order', () => {
  before(async () => {
    await useEngine();
  });

  for (const opset of [13, 17]) {
    test(`regnet_x_400mf (reduced), opset ${opset}: every residual's body is f (three convs, one grouped), its shortcut the identity or the 1x1 projection; matches PyTorch`, () => {
      const model = importOnnx(onnx(opset)).model.eval();
      const residuals = model.modules().map(([, m]) => m).filter((m): m is Residual => m instanceof Residual);
      assert.equal(residuals.length, 5, 'five ResBottleneckBlocks');
      let projections = 0;
      for (const r of residuals) {
        const body = convs(r.body);
        assert.deepEqual(body.map((c) => c.kernel[0]), [1, 3, 1], 'the body is f: 1x1, grouped 3x3, 1x1');
        assert.ok(body[1]!.groups > 1, 'f\'s 3x3 conv is grouped');
        if (r.shortcut !== null) {
          assert.deepEqual(convs(r.shortcut).map((c) => c.kernel), [[1, 1]], 'the shortcut is the 1x1 projection');
          projections++;
        }
        assert.equal(residualMain(r), 'body');
      }
      assert.equal(projections, 3, 'each stage\'s first block projects');
      const x = patternInput(record.input_shape.reduce((a, b) => a * b, 1));
      const ours = runOurs(model, x, record.input_shape).logits;
      assertClose(ours, record.output, close, 'ours against PyTorch', maxAbs(record.output));
    });
  }

  test('regnet_x_400mf with LKAMs: every conv of every f is gated, no projection is; the plan skips in every gated conv, grouped ones included, and equals the model', () => {
    manualSeed(31);
    const imported = importOnnx(onnx(13)).model;
    const all = convsInOrder(imported);
    const model = addLKAMs(imported).eval();
    spreadSwitches(model, 32);
    const gated = new Set(gates(model).map((g) => convs(g.block)[0]!));
    const names = new Map(model.modules().map(([p, m]) => [m, p]));
    assert.equal(gated.size, all.length - 1, 'every conv but the stem, counted by convsInOrder, is gated');
    // An LKAM's own 1x1 bank is a conv too: the body's convs are those outside the LKAMs.
    const own = (m: Module | null): Conv2d[] => convs(m).filter((c) => !names.get(c)!.includes('lkam'));
    for (const [, m] of model.modules()) {
      if (!(m instanceof Residual)) continue;
      for (const c of own(m.body)) assert.ok(gated.has(c), `${names.get(c)}: f's convs are gated`);
      for (const c of own(m.shortcut)) assert.ok(!gated.has(c), `${names.get(c)}: a projection is never gated`);
    }
    const shape = record.input_shape;
    const check = checkSkippingPlan(model, shape.slice(1), patternInput(shape.reduce((a, b) => a * b, 1)));
    assert.ok(check.layers.some((l) => l.groups > 1), 'grouped convs are among the gated convs of the plan');
  });

  test('a block built with its branches the other way round (body: the projection) gates its real branch; mainBranch by structure', () => {
    manualSeed(33);
    const real = new Sequential([new Conv2d({ inChannels: 4, outChannels: 8, kernel: 3, padding: 1, stride: 2 }), new BatchNorm2d(8), new ReLU(),
      new Conv2d({ inChannels: 8, outChannels: 8, kernel: 3, padding: 1 }), new BatchNorm2d(8)]);
    const proj = new Sequential([new Conv2d({ inChannels: 4, outChannels: 8, kernel: 1, stride: 2 }), new BatchNorm2d(8)]);
    assert.equal(mainBranch(proj, real), 'b');
    assert.equal(mainBranch(real, proj), 'a');
    assert.equal(mainBranch(null, real), 'b');
    assert.equal(mainBranch(real, null), 'a');
    const net = new Sequential([new Conv2d({ inChannels: 1, outChannels: 4, kernel: 3, padding: 1 }), new Residual(proj, real)]);
    assert.deepEqual(convsInOrder(net).map((c) => c.path), ['0', '1.shortcut.0', '1.shortcut.3']);
    const gatedNet = addLKAMs(net);
    assert.deepEqual(gates(gatedNet).map((g) => convs(g.block)[0]), [real.layers[0], real.layers[3]], 'the real branch is gated, the projection is not');
  });
});
