import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine, engine, setEngine } from '../../src/autograd/engine.js';
import * as ops from '../../src/ops/index.js';
import { Conv2d, ReLU, Residual, Sequential, manualSeed } from '../../src/nn/layers.js';
import { addLKAMs, convsInOrder, Gated, gates, gridWindow, LKAM, recordGates, setGains } from '../../src/nn/lkam.js';
import { sparsityTerm } from '../../src/train/objective.js';
import { buildModule, UnknownModuleError } from '../../src/nn/registry.js';
import { fmnistVgg5, smallResNet } from '../../src/nn/zoo.js';
import type { Module } from '../../src/nn/module.js';
import { DisposedTensorError, ShapeError } from '../../src/tensor/tensor.js';
import { gradCheck } from '../util/gradcheck.js';
import { TestRng } from '../util/rng.js';

function randomInput(shape: number[], seed = 5): Float32Array {
  const r = new TestRng(seed);
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r.uniform(-1, 1));
}

describe('modules', () => {
  before(async () => {
    setEngine(await Engine.create({ backend: 'wasm', threads: 2 }));
    manualSeed(1);
  });

  test('fmnist-vgg5 has 21.9 M multiply-adds per image and maps 1x28x28 to 10 logits', () => {
    const m = fmnistVgg5();
    assert.equal(m.macs([1, 1, 28, 28]), 21_903_104);
    assert.deepEqual(m.outputShape([3, 1, 28, 28]), [3, 10]);
    const e = engine();
    const y = m.predict(e.tensor(randomInput([3, 784]), [3, 1, 28, 28]));
    assert.deepEqual(y.shape, [3, 10]);
    e.endStep();
  });

  test('fmnist-vgg5 width multiplies channel counts, rounded to whole channels; widths <= 0 are refused', () => {
    // width 0.54: 17, 35, 69 channels.
    const m = fmnistVgg5({ width: 0.54 });
    const hw = (s: number): number => s * s * 9;
    assert.equal(m.macs([1, 1, 28, 28]), hw(28) * 17 + hw(28) * 17 * 17 + hw(14) * 17 * 35 + hw(14) * 35 * 35 + hw(7) * 35 * 69 + 69 * 10);
    assert.deepEqual(m.outputShape([2, 1, 28, 28]), [2, 10]);
    assert.equal(fmnistVgg5({ width: 2 }).macs([1, 1, 28, 28]), hw(28) * 64 + hw(28) * 64 * 64 + hw(14) * 64 * 128 + hw(14) * 128 * 128 + hw(7) * 128 * 256 + 256 * 10);
    assert.throws(() => fmnistVgg5({ width: 0 }), /width 0 should be a number > 0/);
  });

  test('a spec rebuilds the same architecture; unknown layer types are rejected by name', () => {
    const m = smallResNet();
    const again = buildModule(m.spec());
    assert.deepEqual(again.spec(), m.spec());
    assert.deepEqual(again.namedParameters().map(([n, t]) => [n, t.shape]), m.namedParameters().map(([n, t]) => [n, t.shape]));
    assert.throws(() => buildModule({ type: 'Conv3d' }), (e: Error) => e instanceof UnknownModuleError && /unknown layer type 'Conv3d'/.test(e.message));
  });

  test('addLKAMs on a ResNet gates body convs and never the skip path', () => {
    const net = smallResNet({ width: 8 });
    const gated = addLKAMs(net);
    const all = gated.modules();
    const residuals = all.map(([, m]) => m).filter((m): m is Residual => m instanceof Residual);
    assert.equal(residuals.length, 3);
    for (const r of residuals) {
      if (r.shortcut !== null) assert.equal(gates(r.shortcut).length, 0, 'a shortcut was gated');
      assert.equal(gates(r.body).length, 2);
    }
    // The stem conv reads the image and stays dense.
    assert.ok((gated as Sequential).layers[0] instanceof Conv2d);
    const e = engine();
    const x = e.tensor(randomInput([2, 784]), [2, 1, 28, 28]);
    const { value: y, readings } = recordGates(() => gated.forward(x));
    assert.deepEqual(y.shape, [2, 10]);
    const s = sparsityTerm(readings);
    assert.ok(s !== null && s.item() > 0);
    e.endStep();
  });

  test('gains: macs weighs a kernel by its own multiply-adds, marginal adds those of the gated conv reading its map', () => {
    const gains = (kind: 'uniform' | 'macs' | 'marginal', layers?: number[]): number[] => {
      const m = addLKAMs(fmnistVgg5(), layers === undefined ? {} : { layers });
      setGains(m, kind, [1, 1, 28, 28]);
      return gates(m).map((g) => g.gain);
    };
    const close = (got: number[], want: number[]): void => {
      const norm = want.reduce((a, b) => a + b, 0) / want.length;
      got.forEach((g, i) => assert.ok(Math.abs(g - (want[i] as number) / norm) < 1e-9, `gains ${got.join(', ')} should be proportional to ${want.join(', ')}`));
    };
    // Per-kernel block MACs of gated convs 1-4: 28²·9·32, 14²·9·32, 14²·9·64, 7²·9·64.
    const own = [225_792, 56_448, 112_896, 28_224];
    // Plus the next conv's MACs per input channel: 14²·9·64 (conv 2 reads conv 1 through a pool), 14²·9·64, 7²·9·128, none (global pool).
    close(gains('macs'), own);
    close(gains('marginal'), [225_792 + 112_896, 56_448 + 112_896, 112_896 + 56_448, 28_224]);
    assert.deepEqual(gains('uniform'), [1, 1, 1, 1]);
    // Gating the first conv too: its kernels cost 28²·9·1 themselves and 28²·9·32 in conv 1.
    close(gains('marginal', [0, 1, 2, 3, 4]), [7_056 + 225_792, 225_792 + 112_896, 56_448 + 112_896, 112_896 + 56_448, 28_224]);
    // In a ResNet the inner conv of a block reads the first one's map; the skip sum breaks the chain.
    const r = addLKAMs(smallResNet({ width: 4 }));
    setGains(r, 'marginal', [1, 1, 28, 28]);
    const m2 = addLKAMs(smallResNet({ width: 4 }));
    setGains(m2, 'macs', [1, 1, 28, 28]);
    const rg = gates(r).map((g) => g.gain), mg = gates(m2).map((g) => g.gain);
    const ratio = rg.map((g, i) => g / (mg[i] as number));
    // Each block's first conv gains the second conv's cost (ratio > the second's), the second gains nothing.
    for (let b = 0; b < ratio.length; b += 2) assert.ok((ratio[b] as number) > (ratio[b + 1] as number) * 1.5, `block ${b / 2}: ratios ${ratio.join(', ')}`);
    for (let b = 1; b + 2 < ratio.length; b += 2) assert.ok(Math.abs((ratio[b] as number) - (ratio[b + 2] as number)) < 1e-9, 'the second convs are weighed by their own cost only');
  });

  test('convsInOrder numbers convs as addLKAMs({ layers }) does, before and after gating, shortcuts not counted', () => {
    const net = smallResNet({ width: 4 });
    const before = convsInOrder(net);
    const all = net.modules();
    const shortcutConvs = all.filter(([p, m]) => m instanceof Conv2d && p.includes('shortcut')).length;
    assert.ok(shortcutConvs > 0, 'the test needs a ResNet with a projection shortcut');
    assert.equal(before.length, all.filter(([, m]) => m instanceof Conv2d).length - shortcutConvs);
    for (const c of before) {
      assert.equal(c.gate, null);
      assert.equal(all.find(([p]) => p === c.path)?.[1], c.conv, `path ${c.path}`);
    }
    // Gate convs 2 and 4: the gated model lists the same convs in the same order, those two behind gates.
    const gated = addLKAMs(net, { layers: [2, 4] });
    const after = convsInOrder(gated);
    assert.deepEqual(after.map((c) => c.conv), before.map((c) => c.conv));
    assert.deepEqual(after.flatMap((c, i) => (c.gate === null ? [] : [i])), [2, 4]);
    const paths = new Map(gated.modules());
    for (const c of after) {
      assert.equal(paths.get(c.path), c.conv, `path ${c.path}`);
      if (c.gate !== null) {
        assert.ok(paths.get(c.gate.path) === c.gate.module && c.gate.module instanceof Gated);
        assert.ok(c.path.startsWith(`${c.gate.path}.block`));
      }
    }
    assert.deepEqual(gates(gated), after.flatMap((c) => (c.gate === null ? [] : [c.gate.module])));
    // fmnist-vgg5 with every conv gated: the first conv's gate reads the image.
    const v = convsInOrder(addLKAMs(fmnistVgg5(), { layers: [0, 1, 2, 3, 4] }));
    assert.deepEqual(v.map((c) => c.gate?.path), ['0', '1', '3', '4', '6']);
    assert.deepEqual(v.map((c) => c.path), ['0.block.0', '1.block.0', '3.block.0', '4.block.0', '6.block.0']);
    assert.throws(() => addLKAMs(gated), /already has LKAMs/);
    // A gate built by hand around something other than a conv is not a conv and shifts no numbering.
    const odd = new Sequential([new Conv2d({ inChannels: 1, outChannels: 3, kernel: 3 }), new Gated(new ReLU(), new LKAM({ inChannels: 3, switches: 3 })), new Conv2d({ inChannels: 3, outChannels: 3, kernel: 3 })]);
    assert.deepEqual(convsInOrder(odd).map((c) => c.path), ['0', '2']);
    assert.throws(() => addLKAMs(odd), /already has LKAMs/);
  });

  test('addLKAMs rejects conv indices the model does not have', () => {
    assert.throws(() => addLKAMs(fmnistVgg5(), { layers: [1, 9] }), /conv indices 9 do not exist \(the model has 5 convs/);
  });

  test('the sparsity term: gain / (2m) times the summed switch values per image, or their concave power', () => {
    const model = addLKAMs(fmnistVgg5({ width: 0.25 }));
    setGains(model, 'macs', [1, 1, 28, 28]);
    const e = engine();
    const { readings } = recordGates(() => model.forward(e.tensor(randomInput([3, 784], 4), [3, 1, 28, 28])));
    const switchesOf = (g: Gated): Float32Array => readings.find((r) => r.gate === g)!.switches.values.f32();
    const want = (weight: number, value: (v: number) => number): number => gates(model).reduce((acc, g) => {
      const s = switchesOf(g);
      return acc + (weight * g.gain) / (2 * g.lkam.switches * 3) * s.reduce((a, v) => a + value(v), 0);
    }, 0);
    const close = (got: number, expected: number, what: string): void => assert.ok(Math.abs(got - expected) <= 1e-5 * Math.abs(expected), `${what}: ${got} vs ${expected}`);
    close(sparsityTerm(readings, 2)!.item(), want(2, (v) => v), 'power 1');
    close(sparsityTerm(readings, 2, 0.5)!.item(), want(2, (v) => Math.sqrt(v + 0.01) - 0.1), 'power 0.5');
    assert.throws(() => sparsityTerm(readings, 1, 0), /power 0 should be in \(0, 1\]/);
    // One weight per gate (per-gate controllers): each gate's term scales by its own weight.
    const perGate = gates(model).map((_, i) => 0.5 + i);
    const wantPerGate = gates(model).reduce((acc, g, i) => acc + ((perGate[i] as number) * g.gain) / (2 * g.lkam.switches * 3) * switchesOf(g).reduce((a, v) => a + v, 0), 0);
    close(sparsityTerm(readings, perGate)!.item(), wantPerGate, 'one weight per gate');
    assert.throws(() => sparsityTerm(readings, [1, 2]), /sparsityTerm: 2 weights for 4 gates \(one per gate, in forward order\)/);
    assert.throws(() => ops.powShifted(e.tensor(Float32Array.of(0.5, -0.2), [2]), 0.5, 0.01), /powShifted: input tensor \[2\] float32 has -0\.2 at index 1; it is defined for values >= 0/);
    e.endStep();
  });

  test('LKAM grid cells are equal windows from the first row to the last, whatever the map size', () => {
    assert.deepEqual(gridWindow(28, 2), { kernel: 14, stride: 14 });
    assert.deepEqual(gridWindow(7, 2), { kernel: 4, stride: 3 });
    assert.deepEqual(gridWindow(14, 3), { kernel: 6, stride: 4 });
    for (let S = 1; S <= 40; S++) {
      for (let g = 1; g <= S; g++) {
        const { kernel, stride } = gridWindow(S, g);
        assert.equal((g - 1) * stride + kernel, S, `the last of ${g} cells ends at ${S}`);
        assert.ok(kernel >= stride && stride >= 1, `S ${S}, g ${g}: windows overlap or touch`);
      }
    }
  });

  test('LKAM switches opened inside the linear range: gradients match finite differences (grid 2, max pooling)', async () => {
    const prev = engine();
    setEngine(await Engine.create({ backend: 'reference' }));
    // The default opening, exactly 1, sits on the clamp's kink, where central differences halve the slope.
    const lkam = new LKAM({ inChannels: 3, switches: 5, bank: 2, grid: 2, pool: 'max', initOpen: 0.9 });
    const block = new Conv2d({ inChannels: 3, outChannels: 5, kernel: 3, padding: 1 });
    const g = new Gated(block, lkam);
    const e = engine();
    const x = e.tensor(randomInput([2, 3, 6, 6], 9), [2, 3, 6, 6]);
    const s = lkam.forward(x).f32();
    for (const v of s) assert.ok(v > 0.5 && v < 1, `switch ${v} does not start open`);
    e.endStep();
    const r = gradCheck(([xx]) => g.forward(xx!), [{ data: randomInput([2, 3, 6, 6], 9), shape: [2, 3, 6, 6] }], { params: g.parameters(), eps: 1e-2, rtol: 5e-2, atol: 3e-3 });
    assert.ok(r.ok, `LKAM gradient mismatch ${JSON.stringify(r.worst)}`);
    const rs = gradCheck(([xx]) => sparsityTerm(recordGates(() => g.forward(xx!)).readings)!, [{ data: randomInput([2, 3, 6, 6], 9), shape: [2, 3, 6, 6], requiresGrad: false }], { params: lkam.parameters(), eps: 1e-2, rtol: 5e-2 });
    assert.ok(rs.ok, `sparsity-term gradient mismatch ${JSON.stringify(rs.worst)}`);
    const rp = gradCheck(([xx]) => sparsityTerm(recordGates(() => g.forward(xx!)).readings, 1, 0.5)!, [{ data: randomInput([2, 3, 6, 6], 9), shape: [2, 3, 6, 6], requiresGrad: false }], { params: lkam.parameters(), eps: 1e-2, rtol: 5e-2 });
    assert.ok(rp.ok, `concave sparsity-term gradient mismatch ${JSON.stringify(rp.worst)}`);
    setEngine(prev);
  });

  test('saturated switches: the sparsity term keeps its value and passes its gradient above 1', async () => {
    const prev = engine();
    setEngine(await Engine.create({ backend: 'reference' }));
    // Zero fc weights and a bias of 1.5 or 0.5: switches 0-2 sit above 1 (saturated), 3-4 inside the range.
    const lkam = new LKAM({ inChannels: 3, switches: 5, bank: 2 });
    lkam.fc.bias!.f32().set([1.5, 1.2, 3, 0.5, 0.25]);
    const g = new Gated(new Conv2d({ inChannels: 3, outChannels: 5, kernel: 3, padding: 1 }), lkam);
    const e = engine();
    const biasGrad = (): { value: number; grad: number[] } => {
      const { readings } = recordGates(() => g.forward(e.tensor(randomInput([2, 3, 6, 6], 3), [2, 3, 6, 6])));
      const loss = sparsityTerm(readings, 4, 1)!;
      const value = loss.item();
      e.backward(loss);
      const grad = [...lkam.fc.bias!.grad!.f32()];
      for (const p of g.parameters()) p.grad?.f32().fill(0);
      e.endStep();
      return { value, grad };
    };
    const pull = biasGrad();
    // Value: weight · gain / (2m) · (1 + 1 + 1 + 0.5 + 0.25) per image, the switches' own values.
    const want = (4 * 1) / (2 * 5) * 3.75;
    assert.ok(Math.abs(pull.value - want) < 1e-6, `value ${pull.value}, want ${want}`);
    const each = (4 * 1) / (2 * 5);
    pull.grad.forEach((v, i) => assert.ok(Math.abs(v - each) < 1e-6, `switch ${i} gets ${v}, want ${each}`));
    setEngine(prev);
  });

  test('an LKAM spec from a file written with retired training options (noise, detach, straight-through) loads and computes the plain switch', async () => {
    const prev = engine();
    setEngine(await Engine.create({ backend: 'reference' }));
    const plain = new LKAM({ inChannels: 3, switches: 5, bank: 2 });
    plain.fc.bias!.f32().set([-0.6, -0.2, 0, 0.3, 1.5]);
    const spec = { ...plain.spec(), straightThrough: true, detach: true, noise: 0.4 };
    const old = buildModule(spec) as LKAM;
    const mine = new Map(old.stateDict());
    for (const [name, t] of plain.stateDict()) mine.get(name)!.f32().set(t.f32());
    const e = engine();
    const x = e.tensor(randomInput([2, 3, 2, 2], 6), [2, 3, 2, 2]);
    old.eval();
    plain.eval();
    assert.deepEqual([...old.forward(x).f32()], [...plain.forward(x).f32()]);
    assert.deepEqual(old.spec(), spec, 'written back unchanged, so the file round-trips');
    assert.equal('noise' in plain.spec() || 'detach' in plain.spec() || 'straightThrough' in plain.spec(), false, 'new files do not carry them');
    e.endStep();
    setEngine(prev);
  });
});

describe('errors a caller can cause', () => {
  before(async () => {
    setEngine(await Engine.create({ backend: 'wasm', threads: 1 }));
  });
  test('conv2d with mismatched channels names the op and both shapes', () => {
    const e = engine();
    const x = e.zeros([1, 3, 8, 8]);
    const w = e.zeros([4, 2, 3, 3]);
    assert.throws(() => ops.conv2d(x, w), (err: Error) => err instanceof ShapeError && /conv2d: input \[1,3,8,8\] has 3 channels but weight \[4,2,3,3\] expects 2/.test(err.message));
    e.endStep();
  });
  test('a disposed tensor is refused by name', () => {
    const e = engine();
    const x = e.zeros([2, 2]);
    x.name = 'activations';
    e.endStep();
    assert.throws(() => ops.relu(x), (err: Error) => err instanceof DisposedTensorError && /relu: activations \[2,2\] float32 was disposed/.test(err.message));
  });
  test('wrong dtype and out-of-range labels are named', () => {
    const e = engine();
    const logits = e.zeros([2, 3]);
    assert.throws(() => ops.softmaxCrossEntropy(logits, e.zeros([2])), /labels tensor \[2\] float32 should be int32/);
    assert.throws(() => ops.softmaxCrossEntropy(logits, e.tensor([0, 3], [2], 'int32')), /label 3 at position 1 is outside \[0, 2\]/);
    assert.throws(() => ops.add(e.zeros([2, 3]), e.zeros([3, 2])), /add: shapes \[2,3\] and \[3,2\] differ/);
    e.endStep();
  });
  test('a model that does not fit the input shape says so', () => {
    const m: Module = fmnistVgg5();
    assert.throws(() => m.outputShape([1, 3, 28, 28]), /Conv2d\(1 → 32\): reads 1 channel, its input \[1,3,28,28\] has 3/);
  });
});
