import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Engine } from '../../src/autograd/engine.js';
import { compile, CompileError } from '../../src/infer/index.js';
import { AvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten, GlobalMaxPool, Linear, manualSeed, ReLU, Sequential } from '../../src/nn/layers.js';
import { addLKAMs, Gated, LKAM } from '../../src/nn/lkam.js';
import { Module, type ModuleSpec } from '../../src/nn/module.js';
import type { Shape, Tensor } from '../../src/tensor/tensor.js';
import { assertClose, close, exact, loose, maxAbs } from '../util/tolerance.js';
import { images, net, randomizeBatchNorms, spreadSwitches, trainingGraph, useEngine, type NetName } from './helpers.js';
import { COMPUTE_BACKENDS } from '../util/backends.js';

const SHAPE = [1, 28, 28] as const;

for (const backend of COMPUTE_BACKENDS) for (const threads of [1, 2]) {
  describe(`compiled plans equal the training graph in eval mode (${backend}, ${threads} thread(s))`, () => {
    let e: Engine;
    before(async () => { e = await useEngine(backend, threads); });
    after(() => e.close());

    for (const name of ['fmnistVgg5', 'smallResNet'] as const satisfies readonly NetName[]) {
      test(`${name} dense: batch norm folded, batch 1 and 5; loose`, () => {
        const m = net(name, { seed: 3 });
        const x = images(5, 11);
        const ref = trainingGraph(m, x, SHAPE).out;
        const plan = compile(m, { inputShape: SHAPE, maxBatch: 8 });
        try {
          assertClose(plan.run(x), ref, loose, `${name} batch 5`, maxAbs(ref));
          assertClose(plan.run(x.subarray(0, 784)), ref.subarray(0, 10), loose, `${name} batch 1`, maxAbs(ref));
          const t = plan.telemetry();
          assert.equal(t.denseMacs, m.macs([1, ...SHAPE], false), 'dense multiply-adds of the plan and of the model');
          assert.equal(t.macs[0], t.denseMacs, 'a dense plan does every multiply-add');
        } finally {
          plan.dispose();
        }
      });

      test(`${name} with LKAMs: skipping and masked plans equal the skip and masked training graphs; loose`, () => {
        const m = net(name, { lkams: true, seed: 4 });
        const x = images(6, 12);
        const skipRef = trainingGraph(m, x, SHAPE, 'skip');
        const maskedRef = trainingGraph(m, x, SHAPE, 'masked');
        assertClose(maskedRef.out, skipRef.out, close, `${name} training graph, masked vs skip`, maxAbs(skipRef.out));
        for (const s of skipRef.on.values()) assert.ok(s.total > 0 && s.total < s.N * s.C, 'the switches should be partly off');
        const skip = compile(m, { inputShape: SHAPE, maxBatch: 8 });
        const masked = compile(m, { inputShape: SHAPE, maxBatch: 8, skip: false });
        try {
          const ys = skip.run(x);
          const ym = masked.run(x);
          assertClose(ys, skipRef.out, loose, `${name} skipping plan vs training graph`, maxAbs(skipRef.out));
          assertClose(ym, skipRef.out, loose, `${name} masked plan vs training graph`, maxAbs(skipRef.out));
          assertClose(ys, ym, close, `${name} skipping plan vs masked plan`, maxAbs(ym));
          // The plan switches the kernels the training graph switches, image by image.
          for (const layer of skip.telemetry().layers.filter((l) => l.gated)) {
            const set = skipRef.on.get(layer.name);
            assert.ok(set !== undefined, `the training graph has a gate for ${layer.name}`);
            assert.deepEqual(Array.from(layer.onKernels!), Array.from(set.active), `switch sets of ${layer.name}`);
          }
        } finally {
          skip.dispose();
          masked.dispose();
        }
      });
    }

    test('fmnistVgg5 with the first conv gated too (its LKAM reads the image): the plan equals the training graph; loose', () => {
      const m = net('fmnistVgg5', { lkams: true, seed: 6, layers: [0, 1, 2, 3, 4] });
      const x = images(4, 13);
      const ref = trainingGraph(m, x, SHAPE, 'skip');
      assert.equal(ref.on.size, 5, 'five gates');
      for (const set of ref.on.values()) assert.ok(set.total > 0 && set.total < set.N * set.C, 'every gate, the first too, should be partly off');
      const plan = compile(m, { inputShape: SHAPE, maxBatch: 4 });
      try {
        assertClose(plan.run(x), ref.out, loose, 'every conv gated', maxAbs(ref.out));
        const gated = plan.telemetry().layers.filter((l) => l.gated);
        assert.equal(gated.length, 5);
        for (const layer of gated) assert.deepEqual(Array.from(layer.onKernels!), Array.from(ref.on.get(layer.name)!.active), `switch sets of ${layer.name}`);
      } finally {
        plan.dispose();
      }
    });

    test('every image has its own switch set; a batch gives each image what a batch of one gives it; exact', () => {
      const m = net('fmnistVgg5', { lkams: true, seed: 5 });
      // Images of different brightness give the LKAMs different features.
      const x = images(6, 13).map((v, i) => v * (0.2 + 0.5 * Math.floor(i / 784)));
      const plan = compile(m, { inputShape: SHAPE, maxBatch: 6 });
      try {
        const batch = plan.run(x);
        const sets = plan.telemetry().layers.filter((l) => l.gated).map((l) => l.onKernels!);
        const distinct = new Set(Array.from({ length: 6 }, (_, n) => sets.map((s) => s.subarray(n * (s.length / 6), (n + 1) * (s.length / 6)).join('')).join('|')));
        assert.equal(distinct.size, 6, `the six images should switch six different kernel sets, got ${distinct.size}`);
        for (let n = 0; n < 6; n++) assertClose(plan.run(x.subarray(n * 784, (n + 1) * 784)), batch.subarray(n * 10, (n + 1) * 10), exact, `image ${n} alone vs in the batch`);
      } finally {
        plan.dispose();
      }
    });

    test('a batch of 64 split across the threads gives each image what it gets alone; exact', () => {
      const m = net('fmnistVgg5', { lkams: true, seed: 15 });
      const x = images(64, 16).map((v, i) => v * (0.2 + 0.02 * Math.floor(i / 784)));
      for (const skip of [true, false]) {
        const plan = compile(m, { inputShape: SHAPE, maxBatch: 64, skip });
        try {
          const batch = plan.run(x);
          for (const n of [0, 31, 32, 63]) assertClose(plan.run(x.subarray(n * 784, (n + 1) * 784)), batch.subarray(n * 10, (n + 1) * 10), exact, `skip=${skip}, image ${n}`);
        } finally {
          plan.dispose();
        }
      }
    });
  });
}

describe('less common layers', () => {
  let e: Engine;
  before(async () => { e = await useEngine('wasm', 2); });
  after(() => e.close());

  test('a standalone batch norm, a gate over a grouped conv whose batch norm follows its ReLU (not fusable), average pooling, dropout, a 1x1 conv, flatten into linear; loose', () => {
    manualSeed(17);
    const m = new Sequential([
      new Conv2d({ inChannels: 1, outChannels: 4, kernel: 3, padding: 1 }), new ReLU(), new BatchNorm2d(4),
      new Gated(new Sequential([new Conv2d({ inChannels: 4, outChannels: 6, kernel: 3, padding: 1, groups: 2, bias: false }), new ReLU(), new BatchNorm2d(6)]),
        new LKAM({ inChannels: 4, switches: 6 })),
      new AvgPool2d(2), new Dropout(0.5),
      new Conv2d({ inChannels: 6, outChannels: 8, kernel: 1 }), new ReLU(),
      new Flatten(), new Linear({ inFeatures: 8 * 7 * 7, outFeatures: 5 }),
    ]);
    spreadSwitches(m, 18);
    randomizeBatchNorms(m, 19);
    m.eval();
    const shape = [1, 14, 14];
    const x = images(3, 20, shape);
    const ref = trainingGraph(m, x, shape);
    assert.ok([...ref.on.values()].every((s) => s.total > 0 && s.total < s.N * s.C), 'the switches should be partly off');
    const plan = compile(m, { inputShape: shape, maxBatch: 3 });
    try {
      assert.ok(plan.describe().some((l) => l.startsWith('gate ')), `the grouped conv's gate stays a separate step: ${plan.describe().join(', ')}`);
      assert.ok(plan.describe().some((l) => l.startsWith('batch norm ')), 'the batch norm after a ReLU stays a separate step');
      assertClose(plan.run(x), ref.out, loose, 'plan vs training graph', maxAbs(ref.out));
    } finally {
      plan.dispose();
    }
  });

  for (const switchKind of ['sigmoid', 'binary'] as const) {
    test(`LKAMs with a 2x2 average grid and ${switchKind} switches, a global max pool head; loose`, () => {
      manualSeed(21);
      const base = new Sequential([
        new Conv2d({ inChannels: 1, outChannels: 8, kernel: 3, padding: 1, bias: false }), new BatchNorm2d(8), new ReLU(),
        new Conv2d({ inChannels: 8, outChannels: 12, kernel: 3, padding: 1, bias: false }), new BatchNorm2d(12), new ReLU(),
        new GlobalMaxPool(), new Linear({ inFeatures: 12, outFeatures: 3 }),
      ]);
      const m = addLKAMs(base, { grid: 2, pool: 'avg', switchKind });
      spreadSwitches(m, 22, -1.5, 1.5);
      randomizeBatchNorms(m, 23);
      m.eval();
      const shape = [1, 9, 9];
      const x = images(4, 24, shape);
      const ref = trainingGraph(m, x, shape);
      assert.ok([...ref.on.values()].every((s) => s.total > 0 && s.total < s.N * s.C), 'the switches should be partly off');
      for (const skip of [true, false]) {
        const plan = compile(m, { inputShape: shape, maxBatch: 4, skip });
        try {
          assertClose(plan.run(x), ref.out, loose, `skip=${skip}`, maxAbs(ref.out));
        } finally {
          plan.dispose();
        }
      }
    });
  }
});

describe('compiled plans on the reference kernels', () => {
  let e: Engine;
  before(async () => { e = await useEngine('reference', 1); });
  after(() => e.close());

  test('fmnistVgg5 with LKAMs, skipping and masked, batch 2; loose', () => {
    const m = net('fmnistVgg5', { lkams: true, seed: 6 });
    const x = images(2, 14);
    const ref = trainingGraph(m, x, SHAPE).out;
    for (const skip of [true, false]) {
      const plan = compile(m, { inputShape: SHAPE, maxBatch: 2, skip });
      try {
        assertClose(plan.run(x), ref, loose, `reference kernels, skip=${skip}`, maxAbs(ref));
      } finally {
        plan.dispose();
      }
    }
  });
});

class Mystery extends Module {
  readonly type = 'Mystery';
  override forward(x: Tensor): Tensor {
    return x;
  }
  override outputShape(input: Shape): Shape {
    return input;
  }
  override spec(): ModuleSpec {
    return { type: this.type };
  }
}

describe('what cannot compile', () => {
  let e: Engine;
  before(async () => { e = await useEngine('wasm', 1); });
  after(() => e.close());

  test('a module type without a compiler is named with its path, every one of them', () => {
    const m = new Sequential([new Conv2d({ inChannels: 1, outChannels: 2, kernel: 3 }), new Mystery(), new Sequential([new Mystery()])]);
    assert.throws(() => compile(m, { inputShape: SHAPE }), (err: unknown) => {
      assert.ok(err instanceof CompileError);
      assert.deepEqual(err.unsupported, ['Mystery']);
      assert.match(err.message, /Mystery \(at 1, 2\.0\)/);
      return true;
    });
  });

  test('batches outside [1, maxBatch] and budgets outside [0, 1] are refused with the limits', () => {
    const plan = compile(net('fmnistVgg5', { lkams: true }), { inputShape: SHAPE, maxBatch: 2 });
    try {
      assert.throws(() => plan.run(images(3, 1)), /batch 3 should be a whole number in \[1, 2\]/);
      assert.throws(() => plan.run(images(1, 1), { budget: 1.5 }), /budget 1.5 should be in \[0, 1\]/);
      assert.throws(() => plan.run(images(1, 1), { threshold: [0.1] }), /1 thresholds for 4 LKAMs/);
    } finally {
      plan.dispose();
    }
  });
});
