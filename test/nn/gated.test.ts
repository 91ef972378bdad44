import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine, engine, setEngine } from '../../src/autograd/engine.js';
import * as ops from '../../src/ops/index.js';
import { BatchNorm2d, Conv2d, GlobalAvgPool, Linear, manualSeed, MaxPool2d, ReLU, Sequential } from '../../src/nn/layers.js';
import { addLKAMs, gates, recordGates, type GateMode, type GateReading } from '../../src/nn/lkam.js';
import { buildModule } from '../../src/nn/registry.js';
import type { Module } from '../../src/nn/module.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { TestRng } from '../util/rng.js';
import { assertClose, close, loose, maxAbs } from '../util/tolerance.js';

function net(): Module {
  manualSeed(21);
  return addLKAMs(new Sequential([
    new Conv2d({ inChannels: 1, outChannels: 6, kernel: 3, padding: 1, bias: false }), new BatchNorm2d(6), new ReLU(),
    new Conv2d({ inChannels: 6, outChannels: 8, kernel: 3, padding: 1, bias: false }), new BatchNorm2d(8), new ReLU(),
    new MaxPool2d(2),
    new Conv2d({ inChannels: 8, outChannels: 10, kernel: 3, padding: 1, bias: false }), new BatchNorm2d(10), new ReLU(),
    new GlobalAvgPool(),
    new Linear({ inFeatures: 10, outFeatures: 4 }),
  ]));
}

/** Spreads the switch biases over [-0.6, 1.2] so that, per image, some kernels are off, some saturated on. */
function spreadSwitches(m: Module): void {
  const rng = new TestRng(77);
  for (const g of gates(m)) {
    const b = g.lkam.fc.bias!.f32();
    for (let i = 0; i < b.length; i++) b[i] = rng.uniform(-0.6, 1.2);
    const w = g.lkam.fc.weight.f32();
    for (let i = 0; i < w.length; i++) w[i] = rng.uniform(-0.3, 0.3);
  }
}

interface Pass { out: Float32Array; loss: number; grads: Map<string, Float32Array>; macs: Float64Array; sparseForward: number; readings: GateReading[] }

function pass(m: Module, mode: GateMode, x: Float32Array, y: Int32Array, training: boolean): Pass {
  const e = engine();
  for (const g of gates(m)) g.mode = mode;
  m.train(training);
  for (const p of m.parameters()) p.grad = null;
  ops.resetSparseCounters();
  const N = y.length;
  const xt = e.tensor(x, [N, 1, 8, 8]);
  const yt = e.tensor(y, [N], 'int32');
  ops.macMeter.start(N);
  const { value: logits, readings } = recordGates((): Tensor => m.forward(xt));
  const macs = ops.macMeter.stop();
  const loss = ops.softmaxCrossEntropy(logits, yt);
  const out = logits.f32().slice();
  const l = loss.item();
  if (training) e.backward(loss);
  const grads = new Map<string, Float32Array>();
  for (const [n, p] of m.namedParameters()) if (p.grad !== null) grads.set(n, p.grad.f32().slice());
  const sparseForward = ops.sparseCounters.forwardMacs;
  e.endStep();
  return { out, loss: l, grads, macs, sparseForward, readings };
}

for (const kind of ['reference', 'wasm'] as const) {
  describe(`gated training step, skip vs masked (${kind})`, () => {
    before(async () => {
      setEngine(await Engine.create({ backend: kind, threads: 2 }));
    });

    test('same outputs, loss and parameter gradients; the skipped multiply-adds were not done', () => {
      const m = net();
      spreadSwitches(m);
      const rng = new TestRng(5);
      const N = 6;
      const x = Float32Array.from({ length: N * 64 }, () => rng.uniform(-1, 1));
      const y = Int32Array.from({ length: N }, (_, i) => i % 4);
      const masked = pass(m, 'masked', x, y, true);
      const skip = pass(m, 'skip', x, y, true);
      assertClose(skip.out, masked.out, close, 'logits');
      assert.ok(Math.abs(skip.loss - masked.loss) < 1e-5);
      assert.equal(skip.grads.size, masked.grads.size);
      for (const [name, g] of masked.grads) {
        assertClose(skip.grads.get(name)!, g, loose, `gradient of ${name}`, maxAbs(g));
      }
      // Work: switch sets of this batch say how many (active out, active in) pairs each gated conv had.
      let expected = 0;
      const sets = skip.readings.map((r) => r.on);
      assert.ok(sets.every((s) => s.total < s.N * s.C && s.total > 0), 'the switches should be partly off');
      // Gate 0 reads conv 0 (all 6 channels on); gate 1 reads gate 0's output through the max pool.
      const geo = [{ taps: 9, P: 64, inSet: null as null | typeof sets[0] }, { taps: 9, P: 16, inSet: sets[0]! }];
      for (let n = 0; n < N; n++) {
        expected += sets[0]!.counts[n]! * 6 * geo[0]!.taps * geo[0]!.P;
        expected += sets[1]!.counts[n]! * geo[1]!.inSet!.counts[n]! * geo[1]!.taps * geo[1]!.P;
      }
      assert.equal(skip.sparseForward, expected, 'forward multiply-adds done by the sparse kernels');
      assert.equal(masked.sparseForward, 0);
      const skipMean = skip.macs.reduce((a, b) => a + b, 0) / N;
      const maskedMean = masked.macs.reduce((a, b) => a + b, 0) / N;
      assert.ok(skipMean < maskedMean, `effective MACs ${skipMean} should be below dense ${maskedMean}`);
    });

    test('eval mode: skip and masked agree', () => {
      const m = net();
      spreadSwitches(m);
      const rng = new TestRng(8);
      const x = Float32Array.from({ length: 3 * 64 }, () => rng.uniform(-1, 1));
      const y = Int32Array.from([0, 1, 2]);
      const masked = pass(m, 'masked', x, y, false);
      const skip = pass(m, 'skip', x, y, false);
      assertClose(skip.out, masked.out, close, 'eval logits');
    });
  });
}

describe('dead hard switches: kept closed', () => {
  before(async () => {
    setEngine(await Engine.create({ backend: 'reference' }));
  });

  /** Closes switch 0 of the first gate for every input (bias -5, zero weights) and returns its bias gradient after one step. */
  function closedSwitchGrad(): { grad: number; computed: number } {
    manualSeed(3);
    const m = addLKAMs(new Sequential([
      new Conv2d({ inChannels: 1, outChannels: 4, kernel: 3, padding: 1, bias: false }), new BatchNorm2d(4), new ReLU(),
      new Conv2d({ inChannels: 4, outChannels: 5, kernel: 3, padding: 1, bias: false }), new BatchNorm2d(5), new ReLU(),
      new GlobalAvgPool(),
      new Linear({ inFeatures: 5, outFeatures: 3 }),
    ]));
    const g = gates(m)[0]!;
    g.lkam.fc.bias!.f32()[0] = -5;
    const rng = new TestRng(4);
    const N = 4;
    const x = Float32Array.from({ length: N * 64 }, () => rng.uniform(-1, 1));
    const y = Int32Array.from({ length: N }, (_, i) => i % 3);
    ops.resetSparseCounters();
    const p = pass(m, 'skip', x, y, true);
    return { grad: p.grads.get(`${gateName(m)}.lkam.fc.bias`)![0]!, computed: ops.sparseCounters.forwardMacs };
  }
  function gateName(m: Module): string {
    return m.modules().find(([, x]) => x === gates(m)[0])![0];
  }

  test('keep: a closed switch gets no gradient and its kernel is skipped', () => {
    const r = closedSwitchGrad();
    assert.equal(r.grad, 0);
    assert.ok(r.computed > 0, 'the gate should run through the sparse kernels');
  });
});

describe('binary switches: a kept kernel passes unscaled, the gradient goes straight through the step', () => {
  before(async () => {
    setEngine(await Engine.create({ backend: 'reference' }));
  });

  test('stepStraightThrough: 1 above 0, else 0; the backward pass is the identity', () => {
    const e = engine();
    const x = e.tensor(Float32Array.from([-1, 0, 1e-7, 0.5, 2, -0]), [2, 3]);
    x.requiresGrad = true;
    const y = ops.stepStraightThrough(x);
    assert.deepEqual([...y.f32()], [0, 0, 1, 1, 1, 0]);
    const r = e.tensor(Float32Array.from([3, -2, 5, 7, -1, 4]), [2, 3]);
    e.backward(ops.sum(ops.mul(y, r)));
    assert.deepEqual([...x.grad!.f32()], [3, -2, 5, 7, -1, 4]);
    e.endStep();
  });

  /** conv → BN → ReLU, then a gate with binary switches spread over [-0.6, 1.2]; the gate's input and the gate. */
  function binaryGate(): { m: Module; gate: ReturnType<typeof gates>[number]; prefix: Module[] } {
    manualSeed(9);
    const m = addLKAMs(new Sequential([
      new Conv2d({ inChannels: 1, outChannels: 4, kernel: 3, padding: 1, bias: false }), new BatchNorm2d(4), new ReLU(),
      new Conv2d({ inChannels: 4, outChannels: 6, kernel: 3, padding: 1, bias: false }), new BatchNorm2d(6), new ReLU(),
      new GlobalAvgPool(),
      new Linear({ inFeatures: 6, outFeatures: 3 }),
    ]), { switchKind: 'binary' });
    spreadSwitches(m);
    const layers = (m as Sequential).layers;
    return { m, gate: gates(m)[0]!, prefix: layers.slice(0, 3) };
  }

  for (const mode of ['skip', 'plain'] as const) {
    test(`${mode}: each output plane is the block's plane or zero, and the bias gradient is Σ r · kernel output over switches inside (0, 1)`, () => {
      const e = engine();
      const { m, gate, prefix } = binaryGate();
      m.train(true);
      gate.mode = mode;
      const rng = new TestRng(12);
      const N = 5;
      let x = e.tensor(Float32Array.from({ length: N * 64 }, () => rng.uniform(-1, 1)), [N, 1, 8, 8]);
      for (const l of prefix) x = l.forward(x);
      // The reference: the block over every kernel (plain batch norm over the batch).
      const block = gate.block.forward(x).f32().slice();
      const { value: y, readings } = recordGates(() => gate.forward(x));
      const s = readings[0]!.switches.values.f32().slice();
      const out = y.f32().slice();
      const M = 6, HW = 64;
      const r = e.tensor(Float32Array.from({ length: N * M * HW }, () => rng.uniform(-1, 1)), [N, M, 8, 8]);
      const rv = r.f32().slice();
      e.backward(ops.sum(ops.mul(y, r)));
      const grad = gate.lkam.fc.bias!.grad!.f32().slice();
      e.endStep();
      let on = 0, between = 0, off = 0;
      const expected = new Float64Array(M);
      for (let n = 0; n < N; n++) {
        for (let k = 0; k < M; k++) {
          const v = s[n * M + k]!;
          if (v > 0) on++; else off++;
          if (v > 0 && v < 1) between++;
          let dot = 0;
          for (let p = 0; p < HW; p++) {
            const i = (n * M + k) * HW + p;
            if (v > 0 && mode === 'plain') assert.ok(Math.abs(out[i]! - block[i]!) <= 1e-6 * (1 + Math.abs(block[i]!)), `image ${n} kernel ${k}: on, so unscaled`);
            if (v <= 0) assert.equal(out[i], 0, `image ${n} kernel ${k}: off, so zero`);
            dot += rv[i]! * out[i]!;
          }
          // The gradient reaches the bias where the clamp is linear; an on plane is the block's plane (unscaled).
          if (v > 0 && v < 1) expected[k]! += dot;
        }
      }
      assert.ok(on > 0 && off > 0 && between > 0, `switches should be mixed (on ${on}, off ${off}, inside (0, 1) ${between})`);
      assertClose(grad, Float32Array.from(expected), loose, 'fc bias gradient', maxAbs(Float32Array.from(expected)));
    });
  }
});
