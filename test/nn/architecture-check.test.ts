/**
 * Architectures are checked when they are read: every field of every layer type (type, range,
 * whole numbers), the chaining of shapes from the input through every layer, the number of layers and
 * the activations one image implies. Each refusal names the field or the layer's path.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ModelFileError } from '../../src/io/errors.js';
import { decodeModel } from '../../src/io/model-file.js';
import { encodeSafetensors, type TensorRecord } from '../../src/io/safetensors.js';
import { expectedState } from '../../src/io/state-shapes.js';
import { manualSeed } from '../../src/nn/layers.js';
import '../../src/nn/lkam.js';
import { checkShapes, type ModuleSpec } from '../../src/nn/module.js';
import { buildModule, MAX_LAYERS, moduleTypes, SpecError } from '../../src/nn/registry.js';
import type { Shape } from '../../src/tensor/tensor.js';
import { cli, explain, tempDir } from '../cli/helpers.js';
import { useEngine } from '../io/helpers.js';

interface Members {
  /** A spec that builds, and an image shape ([C, H, W]) it takes. */
  readonly good: ModuleSpec;
  readonly image: Shape;
  /** Field edits that must be refused, each with the path the refusal names. */
  readonly badFields: ReadonlyArray<readonly [Record<string, unknown>, string]>;
  /** Image shapes the layer must refuse in a shape walk. */
  readonly badImages: readonly Shape[];
}

const conv = { type: 'Conv2d', inChannels: 2, outChannels: 4, kernel: 3, stride: 1, padding: 1, dilation: 1, groups: 2, bias: true };
const lkam = { type: 'LKAM', inChannels: 2, switches: 4, bank: 2, grid: 2 };

/** One row per registered layer type: a new layer type needs its row (the test below fails without it). */
const MEMBERS: Readonly<Record<string, Members>> = {
  Conv2d: {
    good: conv, image: [2, 5, 5],
    badFields: [
      [{ stride: 0 }, 'stride'], [{ stride: -1 }, 'stride'], [{ stride: 1.5 }, 'stride'], [{ padding: -1 }, 'padding'], [{ padding: 100 }, ''],
      [{ padding: 1e6 }, ''], [{ dilation: 0 }, 'dilation'], [{ groups: 0 }, 'groups'], [{ groups: 3 }, ''], [{ kernel: [3, 0] }, 'kernel'],
      [{ inChannels: '2' }, 'inChannels'], [{ bias: 'yes' }, 'bias'], [{ outChannels: null }, 'outChannels'],
    ],
    badImages: [[1, 5, 5], [3, 28, 28]],
  },
  BatchNorm2d: {
    good: { type: 'BatchNorm2d', channels: 3, momentum: 0.1, eps: 1e-5 }, image: [3, 2, 2],
    badFields: [[{ channels: 0 }, 'channels'], [{ momentum: 2 }, 'momentum'], [{ eps: 0 }, 'eps'], [{ eps: -1 }, 'eps'], [{ channels: 2.5 }, 'channels']],
    badImages: [[2, 2, 2], [32, 1, 1]],
  },
  ReLU: { good: { type: 'ReLU' }, image: [1, 2, 2], badFields: [], badImages: [] },
  Clip: { good: { type: 'Clip', lo: 0, hi: 6 }, image: [1, 2, 2], badFields: [[{ lo: 'x' }, 'lo'], [{ lo: 7 }, ''], [{ hi: Number.NaN }, 'hi']], badImages: [] },
  Sigmoid: { good: { type: 'Sigmoid' }, image: [1, 2, 2], badFields: [], badImages: [] },
  SiLU: { good: { type: 'SiLU' }, image: [1, 2, 2], badFields: [], badImages: [] },
  HardSigmoid: { good: { type: 'HardSigmoid', alpha: 0.2, beta: 0.5 }, image: [1, 2, 2], badFields: [[{ alpha: 'a' }, 'alpha'], [{ beta: Infinity }, 'beta']], badImages: [] },
  HardSwish: { good: { type: 'HardSwish' }, image: [1, 2, 2], badFields: [], badImages: [] },
  GELU: { good: { type: 'GELU' }, image: [1, 2, 2], badFields: [], badImages: [] },
  ChannelLayerNorm: { good: { type: 'ChannelLayerNorm', channels: 3, eps: 1e-6 }, image: [3, 2, 2], badFields: [[{ channels: 0 }, 'channels'], [{ eps: 0 }, 'eps']], badImages: [[2, 2, 2]] },
  Pad2d: { good: { type: 'Pad2d', pads: [1, 0, 2, 1], mode: 'reflect', value: 0 }, image: [2, 3, 3], badFields: [[{ pads: [1, 2] }, 'pads'], [{ mode: 'wrap' }, 'mode'], [{ pads: [-1, 0, 0, 0] }, 'pads']], badImages: [[2, 1, 3]] },
  ChannelSelect: {
    good: { type: 'ChannelSelect', inChannels: 4, order: [2, 0, 3] }, image: [4, 2, 2],
    badFields: [[{ inChannels: 0 }, 'inChannels'], [{ order: [] }, 'order'], [{ order: [4] }, 'order'], [{ order: 'all' }, 'order']],
    badImages: [[3, 2, 2]],
  },
  SqueezeExcite: {
    good: { type: 'SqueezeExcite', channels: 4, squeeze: 2, activation: 'silu', gate: 'sigmoid' }, image: [4, 3, 3],
    badFields: [[{ channels: 0 }, 'channels'], [{ squeeze: 1.5 }, 'squeeze'], [{ activation: 'tanh' }, 'activation'], [{ gate: 1 }, 'gate']],
    badImages: [[3, 3, 3]],
  },
  Concat: {
    good: { type: 'Concat', branches: [{ type: 'Sequential', layers: [] }, conv] }, image: [2, 5, 5],
    badFields: [[{ branches: [] }, 'branches'], [{ branches: [conv, 3] }, 'branches[1]']],
    badImages: [[3, 5, 5]],
  },
  MaxPool2d: {
    good: { type: 'MaxPool2d', kernel: 2, stride: 2, padding: 0 }, image: [1, 4, 4],
    badFields: [[{ kernel: 0 }, 'kernel'], [{ stride: 0 }, 'stride'], [{ padding: -1 }, 'padding'], [{ padding: 2 }, ''], [{ kernel: 'x' }, 'kernel']],
    badImages: [[1, 1, 1], [1, 1, 4]],
  },
  AvgPool2d: {
    good: { type: 'AvgPool2d', kernel: [3, 3], stride: 1, padding: 1 }, image: [1, 4, 4],
    badFields: [[{ kernel: [3, -3] }, 'kernel'], [{ stride: 0.5 }, 'stride'], [{ padding: 3 }, '']],
    badImages: [[1, 1, 0]],
  },
  GlobalAvgPool: { good: { type: 'GlobalAvgPool' }, image: [3, 2, 2], badFields: [], badImages: [[3, 0, 2]] },
  GlobalMaxPool: { good: { type: 'GlobalMaxPool' }, image: [3, 2, 2], badFields: [], badImages: [[0, 2, 2]] },
  Flatten: { good: { type: 'Flatten' }, image: [3, 2, 2], badFields: [], badImages: [[3, 2, -2]] },
  Dropout: { good: { type: 'Dropout', p: 0.5 }, image: [1, 2, 2], badFields: [[{ p: 1 }, 'p'], [{ p: -0.1 }, 'p'], [{ p: 'NaN' }, 'p']], badImages: [] },
  Linear: {
    good: { type: 'Linear', inFeatures: 12, outFeatures: 3, bias: true }, image: [3, 2, 2],
    badFields: [[{ inFeatures: 0 }, 'inFeatures'], [{ outFeatures: -3 }, 'outFeatures'], [{ outFeatures: 1e300 }, 'outFeatures']],
    badImages: [[128, 1, 1], [3, 2, 3]],
  },
  Sequential: {
    good: { type: 'Sequential', layers: [conv, { type: 'BatchNorm2d', channels: 4 }, { type: 'ReLU' }] }, image: [2, 5, 5],
    badFields: [[{ layers: {} }, 'layers'], [{ layers: [conv, 7] }, 'layers[1]'], [{ layers: [{ ...conv, stride: 0 }] }, 'layers[0].stride']],
    badImages: [[4, 5, 5]],
  },
  Residual: {
    good: { type: 'Residual', body: { ...conv, inChannels: 4 }, shortcut: null }, image: [4, 5, 5],
    badFields: [[{ body: null }, 'body'], [{ shortcut: { type: 'Nope' } }, '']],
    badImages: [[2, 5, 5]],
  },
  LKAM: {
    good: lkam, image: [2, 4, 4],
    badFields: [[{ grid: 0 }, 'grid'], [{ bank: 1.5 }, 'bank'], [{ pool: 'median' }, 'pool'], [{ switchKind: 'soft' }, 'switchKind'], [{ noise: -1 }, 'noise'], [{ threshold: 'x' }, 'threshold']],
    badImages: [[3, 4, 4], [2, 1, 1]],
  },
  Gated: {
    good: { type: 'Gated', gain: 1, block: { ...conv, groups: 1 }, lkam }, image: [2, 4, 4],
    badFields: [[{ lkam: conv }, 'lkam'], [{ gain: -1 }, 'gain'], [{ lkam: { ...lkam, bank: 0 } }, 'lkam.bank'], [{ block: 'conv' }, 'block']],
    badImages: [[3, 4, 4]],
  },
};

/** `f` throws a SpecError naming `path` (or a path inside it, with `within`), or an UnknownModuleError. */
function refusesNaming(f: () => unknown, path: string, label: string, within = false): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof SpecError || (e instanceof Error && e.name === 'UnknownModuleError'), `${label}: threw ${String(e)}`);
    if (e instanceof SpecError && within) assert.ok(e.path.startsWith(path), `${label}: ${e.message}`);
    else if (e instanceof SpecError) assert.equal(e.path, path, `${label}: ${e.message}`);
    return true;
  }, label);
}

/** A model file with `spec` as its architecture and every tensor it needs (zeros, variances 1), or none when the spec's state cannot be derived. */
function modelFile(spec: unknown, inputShape: readonly number[]): Uint8Array {
  let shapes = new Map<string, number[]>();
  try {
    shapes = expectedState(spec).shapes;
  } catch (e) {
    if (!(e instanceof SpecError)) throw e;
  }
  const records: TensorRecord[] = [...shapes].map(([name, shape]) => ({
    name, dtype: 'F32', shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(name.endsWith('runningVar') ? 1 : 0),
  }));
  return encodeSafetensors(records, { format: 'parsimony', format_version: '1', architecture: JSON.stringify(spec), input_shape: JSON.stringify(inputShape) });
}

function refusedFile(spec: unknown, inputShape: readonly number[], pattern: RegExp): void {
  assert.throws(() => decodeModel(modelFile(spec, inputShape), { file: 'm.safetensors' }), (e: unknown) => {
    assert.ok(e instanceof ModelFileError, String(e));
    assert.match(e.message, pattern);
    return true;
  });
}

const net = (layers: unknown[]): ModuleSpec => ({ type: 'Sequential', layers });

describe('architectures are checked at load', () => {
  before(async () => {
    await useEngine();
    manualSeed(1);
  });

  test('every registered layer type has its members here (field checks and shape checks)', () => {
    const missing = moduleTypes().filter((t) => MEMBERS[t] === undefined);
    assert.deepEqual(missing, [], `layer types without a row in MEMBERS (test/nn/architecture-check.test.ts): ${missing.join(', ')}`);
  });

  test('each layer type refuses bad fields, naming the field, and inputs that do not fit it', () => {
    for (const [type, m] of Object.entries(MEMBERS)) {
      const model = buildModule(m.good);
      assert.ok(checkShapes(model, m.image).length >= 2, type);
      for (const [edit, path] of m.badFields) {
        const spec = { ...m.good, ...edit };
        refusesNaming(() => buildModule(net([spec])), path === '' ? 'layers[0]' : `layers[0].${path}`, `${type} ${JSON.stringify(edit)}`);
      }
      for (const image of m.badImages) {
        refusesNaming(() => checkShapes(buildModule(net([m.good])), image), image.some((d) => d < 1) ? '' : 'layers[0]', `${type} on ${JSON.stringify(image)}`, true);
      }
    }
  });

  test('layers that do not chain are refused at load, naming the layer', () => {
    const c = (i: number, o: number, extra = {}) => ({ type: 'Conv2d', inChannels: i, outChannels: o, kernel: 3, padding: 1, ...extra });
    refusedFile(net([c(1, 16), { type: 'BatchNorm2d', channels: 32 }]), [1, 8, 8], /architecture layers\[1\]: BatchNorm2d\(32\): its input \[1,16,8,8\] has 16 channels/);
    refusedFile(net([c(1, 128), { type: 'MaxPool2d', kernel: 2 }, { type: 'GlobalAvgPool' }, { type: 'Linear', inFeatures: 64, outFeatures: 10 }]), [1, 8, 8], /layers\[3\]: Linear\(64 → 10\): its input \[1,128\] has 128 features/);
    refusedFile(net([c(3, 4)]), [1, 28, 28], /layers\[0\]: Conv2d\(3 → 4\): reads 3 channels, its input \[1,1,28,28\] has 1 \(input_shape \[1,28,28\]\)/);
    refusedFile(net([c(1, 4), { type: 'Gated', block: c(4, 8), lkam: { type: 'LKAM', inChannels: 4, switches: 6 } }]), [1, 8, 8], /layers\[1\]: Gated: its block gives \[1,8,8,8\], its LKAM makes 6 switches/);
    refusedFile(net([c(1, 4), { type: 'Gated', block: c(4, 8), lkam: c(4, 8) }]), [1, 8, 8], /layers\[1\]\.lkam: should be a LKAM layer, got Conv2d/);
    refusedFile(net([c(1, 4), { type: 'Residual', body: c(4, 8), shortcut: null }]), [1, 8, 8], /layers\[1\]: Residual: its body gives \[1,8,8,8\] but its identity shortcut gives \[1,4,8,8\]/);
    refusedFile(net([c(1, 4), { type: 'Residual', body: net([c(4, 4), { type: 'BatchNorm2d', channels: 5 }]), shortcut: null }]), [1, 8, 8], /layers\[1\]\.body\.layers\[1\]: BatchNorm2d\(5\)/);
  });

  test('fields out of range are refused at load, naming the field', () => {
    const c = { type: 'Conv2d', inChannels: 1, outChannels: 2, kernel: 3 };
    for (const [edit, pattern] of [
      [{ stride: 0 }, /layers\[0\]\.stride: should be a whole number >= 1/], [{ stride: 1.5 }, /layers\[0\]\.stride/], [{ padding: -1 }, /layers\[0\]\.padding/],
      [{ padding: 1e6 }, /layers\[0\]: Conv2d: padding \[1000000,1000000\] should be at most the kernel's reach 2/], [{ dilation: 0 }, /layers\[0\]\.dilation/],
      [{ groups: 0 }, /layers\[0\]\.groups/],
    ] as const) refusedFile(net([{ ...c, ...edit }]), [1, 8, 8], pattern);
    refusedFile(net([{ ...c, outChannels: 14, groups: 7 }]), [1, 8, 8], /architecture layers\[0\]: 1 input and 14 output channels should both be divisible by groups=7/);
    refusedFile(net([{ type: 'MaxPool2d', kernel: 0 }]), [1, 8, 8], /layers\[0\]\.kernel/);
    refusedFile(net([{ type: 'MaxPool2d', kernel: 2, stride: 0 }]), [1, 8, 8], /layers\[0\]\.stride/);
  });

  test('input shapes that do not fit, layer counts and activations beyond the bounds are refused', () => {
    const small = net([{ type: 'Conv2d', inChannels: 1, outChannels: 2, kernel: 3 }, { type: 'GlobalAvgPool' }]);
    refusedFile(small, [1, 1, 1], /layers\[0\]: conv2d: input \[1,1,1,1\] is smaller than the 3x3 kernel/);
    refusedFile(small, [1, 1e5, 1e5], /architecture: the activations of one image reach 37\.3 GiB here \(the input \[1,1,100000,100000\]\), more than the 1\.0 GiB a model may use/);
    refusedFile(net([{ type: 'Conv2d', inChannels: 1, outChannels: 64, kernel: 3, padding: 1 }, { type: 'ReLU' }]), [1, 2048, 2048], /layers\[0\]: the activations of one image reach 1\.0 GiB here \(its output \[1,64,2048,2048\]\)/);
    refusedFile(net(Array.from({ length: MAX_LAYERS + 5 }, () => ({ type: 'ReLU' }))), [1, 2, 2], /architecture layers\[\d+\]: the architecture has more than 10000 layers/);
    let deep: unknown = { type: 'ReLU' };
    for (let i = 0; i < 100; i++) deep = net([deep]);
    refusedFile(deep, [1, 2, 2], /layers are nested more than 64 deep/);
  });

  const dir = tempDir('parsimony-arch-');
  test('the command line refuses such files with exit 3 and one line naming the file and the field', async () => {
    const cases: Array<[string, unknown, readonly number[], RegExp]> = [
      ['stride0', net([{ type: 'Conv2d', inChannels: 1, outChannels: 2, kernel: 3, stride: 0 }]), [1, 8, 8], /stride0\.safetensors: architecture layers\[0\]\.stride: should be a whole number >= 1 or a pair of them, got 0/],
      ['chain', net([{ type: 'Conv2d', inChannels: 1, outChannels: 16, kernel: 3 }, { type: 'BatchNorm2d', channels: 32 }]), [1, 8, 8], /chain\.safetensors: architecture layers\[1\]: BatchNorm2d\(32\)/],
      ['huge', net([{ type: 'ReLU' }]), [1, 100000, 100000], /huge\.safetensors: architecture: the activations of one image reach/],
    ];
    for (const [name, spec, shape, pattern] of cases) {
      const file = join(dir(), `${name}.safetensors`);
      writeFileSync(file, modelFile(spec, shape));
      const args = ['info', file];
      const r = await cli(args);
      assert.equal(r.code, 3, explain(args, r));
      assert.match(r.stderr, pattern, explain(args, r));
      assert.doesNotMatch(r.stderr, /internal error/, explain(args, r));
    }
  });
});
