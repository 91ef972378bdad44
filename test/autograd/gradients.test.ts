import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine, engine, setEngine } from '../../src/autograd/engine.js';
import * as ops from '../../src/ops/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { COMPUTE_BACKENDS } from '../util/backends.js';
import { gradCheck, type GradInput } from '../util/gradcheck.js';
import { TestRng } from '../util/rng.js';

const rng = new TestRng(1234);
function rand(shape: number[], lo = -1, hi = 1, requiresGrad = true): GradInput {
  const n = shape.reduce((a, b) => a * b, 1);
  return { data: Float32Array.from({ length: n }, () => rng.uniform(lo, hi)), shape, requiresGrad };
}
/** Values kept away from 0 so that kinks (ReLU, clamp bounds) are not straddled by ±eps. */
function awayFromZero(shape: number[]): GradInput {
  const r = rand(shape);
  for (let i = 0; i < r.data.length; i++) {
    const v = r.data[i] as number;
    r.data[i] = Math.sign(v || 1) * (0.1 + Math.abs(v));
  }
  return r;
}
function labels(n: number, classes: number): Tensor {
  return engine().tensor(Int32Array.from({ length: n }, (_, i) => (i * 7 + 3) % classes), [n], 'int32', engine().persistent);
}

function expectOk(name: string, r: ReturnType<typeof gradCheck>): void {
  assert.ok(r.ok, `${name}: gradient mismatch ${JSON.stringify(r.worst)}`);
}

for (const kind of ['reference', ...COMPUTE_BACKENDS] as const) {
  describe(`gradients (${kind} backend)`, () => {
    before(async () => {
      setEngine(await Engine.create({ backend: kind, threads: 2 }));
    });

    const convCases: Array<[string, number[], number[], ops.Conv2dOptions]> = [
      ['x=[2,3,5,5] w=[4,3,3,3] p=1', [2, 3, 5, 5], [4, 3, 3, 3], { padding: 1 }],
      ['x=[1,2,6,5] w=[3,2,3,3] s=2 p=1', [1, 2, 6, 5], [3, 2, 3, 3], { stride: 2, padding: 1 }],
      ['x=[2,4,5,5] w=[4,2,3,3] g=2 d=2 p=2', [2, 4, 5, 5], [4, 2, 3, 3], { groups: 2, dilation: 2, padding: 2 }],
      ['x=[1,3,4,4] w=[3,1,3,3] depthwise', [1, 3, 4, 4], [3, 1, 3, 3], { groups: 3, padding: 1 }],
      ['x=[3,2,4,4] w=[5,2,1,1]', [3, 2, 4, 4], [5, 2, 1, 1], {}],
    ];
    for (const [name, xs, ws, o] of convCases) {
      test(`conv2d ${name}`, () => {
        expectOk(name, gradCheck(([x, w, b]) => ops.conv2d(x!, w!, b!, o), [rand(xs), rand(ws), rand([ws[0]!])]));
      });
    }
    test('linear x=[3,5] w=[4,5]', () => {
      expectOk('linear', gradCheck(([x, w, b]) => ops.linear(x!, w!, b!), [rand([3, 5]), rand([4, 5]), rand([4])]));
    });
    test('matmul [3,4]·[4,2]', () => {
      expectOk('matmul', gradCheck(([a, b]) => ops.matmul(a!, b!), [rand([3, 4]), rand([4, 2])]));
    });
    test('batchNorm training x=[4,3,2,3]', () => {
      const C = 3;
      expectOk('batchNorm', gradCheck(([x, g, b]) => {
        const e = engine();
        const rm = e.zeros([C]);
        const rv = e.full([C], 1);
        return ops.batchNorm(x!, { gamma: g!, beta: b!, runningMean: rm, runningVar: rv, momentum: 0.1, eps: 1e-5 }, true);
      }, [rand([4, C, 2, 3]), rand([C], 0.5, 1.5), rand([C])], { eps: 1e-2, rtol: 5e-2 }));
    });
    test('batchNorm eval x=[2,3,2,2]', () => {
      const C = 3;
      expectOk('batchNorm eval', gradCheck(([x, g, b]) => {
        const e = engine();
        return ops.batchNorm(x!, { gamma: g!, beta: b!, runningMean: e.full([C], 0.2), runningVar: e.full([C], 2), momentum: 0.1, eps: 1e-5 }, false);
      }, [rand([2, C, 2, 2]), rand([C], 0.5, 1.5, false), rand([C], -1, 1, false)]));
    });
    test('relu, leakyRelu, clamp away from kinks', () => {
      expectOk('relu', gradCheck(([x]) => ops.relu(x!), [awayFromZero([2, 3, 4])]));
      expectOk('leakyRelu', gradCheck(([x]) => ops.leakyRelu(x!, 0.1), [awayFromZero([2, 3, 4])]));
      expectOk('clamp', gradCheck(([x]) => ops.clamp(ops.scale(x!, 0.5), -0.3, 0.3), [awayFromZero([30])], { eps: 1e-3 }));
    });
    test('powShifted, the concave sparsity penalty', () => {
      // Its own generator, so that the inputs of the other checks stay as they were.
      const r = new TestRng(77);
      const values = (n: number, lo: number, hi: number): GradInput => ({ data: Float32Array.from({ length: n }, () => r.uniform(lo, hi)), shape: [n], requiresGrad: true });
      expectOk('powShifted', gradCheck(([x]) => ops.powShifted(x!, 0.5, 0.01), [values(18, 0.05, 1)], { eps: 1e-3 }));
      expectOk('powShifted p=0.3', gradCheck(([x]) => ops.powShifted(x!, 0.3, 0.1), [values(12, 0, 2)], { eps: 1e-3 }));
    });
    test('sigmoid, tanh', () => {
      expectOk('sigmoid', gradCheck(([x]) => ops.sigmoid(x!), [rand([2, 9], -3, 3)]));
      expectOk('tanh', gradCheck(([x]) => ops.tanh(x!), [rand([2, 9], -2, 2)]));
    });
    test('maxPool2d k=2 and k=3 s=2 p=1', () => {
      expectOk('maxPool k2', gradCheck(([x]) => ops.maxPool2d(x!, { kernel: 2 }), [rand([2, 2, 4, 6])], { eps: 1e-3 }));
      expectOk('maxPool k3', gradCheck(([x]) => ops.maxPool2d(x!, { kernel: 3, stride: 2, padding: 1 }), [rand([1, 2, 5, 5])], { eps: 1e-3 }));
    });
    test('avgPool2d k=3 s=2 p=1, both divisor rules', () => {
      expectOk('avgPool', gradCheck(([x]) => ops.avgPool2d(x!, { kernel: 3, stride: 2, padding: 1 }), [rand([1, 2, 5, 5])]));
      expectOk('avgPool excl', gradCheck(([x]) => ops.avgPool2d(x!, { kernel: 3, stride: 2, padding: 1, countIncludePad: false }), [rand([1, 2, 5, 5])]));
    });
    test('maxPool2d and avgPool2d in ceil mode (a last partial window)', () => {
      expectOk('maxPool ceil', gradCheck(([x]) => ops.maxPool2d(x!, { kernel: 3, stride: 2, ceilMode: true }), [rand([1, 2, 6, 6])], { eps: 1e-3 }));
      expectOk('avgPool ceil excl', gradCheck(([x]) => ops.avgPool2d(x!, { kernel: 3, stride: 2, ceilMode: true, countIncludePad: false }), [rand([1, 2, 6, 6])]));
    });
    test('SiLU, GELU, HardSwish, HardSigmoid (away from their kinks)', () => {
      expectOk('silu', gradCheck(([x]) => ops.pointwise(x!, ops.SILU), [rand([2, 9], -4, 4)]));
      expectOk('gelu', gradCheck(([x]) => ops.pointwise(x!, ops.GELU), [rand([2, 9], -3, 3)]));
      const kinks = (lo: number, hi: number): GradInput => {
        const r = rand([3, 8], -5, 5);
        for (let i = 0; i < r.data.length; i++) if (Math.abs((r.data[i] as number) - lo) < 0.05 || Math.abs((r.data[i] as number) - hi) < 0.05) r.data[i] = (r.data[i] as number) + 0.2;
        return r;
      };
      expectOk('hardSwish', gradCheck(([x]) => ops.pointwise(x!, ops.HARD_SWISH), [kinks(-3, 3)]));
      expectOk('hardSigmoid', gradCheck(([x]) => ops.pointwise(x!, ops.hardSigmoidFn(1 / 6, 0.5)), [kinks(-3, 3)]));
    });
    test('channelLayerNorm over [N, C, H, W] and [N, C]', () => {
      expectOk('layer norm 4-D', gradCheck(([x, w, b]) => ops.channelLayerNorm(x!, w!, b!, 1e-5), [rand([2, 4, 2, 3]), rand([4], 0.5, 1.5), rand([4])]));
      expectOk('layer norm 2-D', gradCheck(([x, w, b]) => ops.channelLayerNorm(x!, w!, b!, 1e-5), [rand([3, 5]), rand([5], 0.5, 1.5), rand([5])]));
    });
    test('pad2d: constant, reflect and edge', () => {
      for (const mode of ['constant', 'reflect', 'edge'] as const) expectOk(`pad ${mode}`, gradCheck(([x]) => ops.pad2d(x!, { pads: [1, 2, 2, 0], mode, value: 0.5 }), [rand([2, 2, 3, 4])]));
    });
    test('selectChannels: a slice, a shuffle and a repeated channel', () => {
      expectOk('slice', gradCheck(([x]) => ops.selectChannels(x!, [1, 2]), [rand([2, 4, 2, 3])]));
      expectOk('shuffle + repeat', gradCheck(([x]) => ops.selectChannels(x!, [0, 2, 1, 3, 3]), [rand([2, 4, 3, 2])]));
    });
    test('concatChannels of three inputs, one without a gradient', () => {
      expectOk('concat', gradCheck(([a, b, c]) => ops.concatChannels([a!, b!, c!]), [rand([2, 1, 3, 2]), rand([2, 3, 3, 2]), rand([2, 2, 3, 2], -1, 1, false)]));
    });
    test('global pools', () => {
      expectOk('gap', gradCheck(([x]) => ops.globalAvgPool(x!), [rand([2, 3, 3, 3])]));
      expectOk('gmp', gradCheck(([x]) => ops.globalMaxPool(x!), [rand([2, 3, 3, 3])], { eps: 1e-3 }));
    });
    test('softmaxCrossEntropy', () => {
      const y = labels(4, 5);
      expectOk('sce', gradCheck(([x]) => ops.softmaxCrossEntropy(x!, y), [rand([4, 5], -3, 3)]));
    });
    test('add, mul, scale, sum, mean, reshape', () => {
      expectOk('add', gradCheck(([a, b]) => ops.add(a!, b!), [rand([2, 5]), rand([2, 5])]));
      expectOk('add same input', gradCheck(([a]) => ops.add(a!, a!), [rand([7])]));
      expectOk('mul', gradCheck(([a, b]) => ops.mul(a!, b!), [rand([2, 5]), rand([2, 5])]));
      expectOk('mean', gradCheck(([a]) => ops.mean(ops.scale(a!, 3)), [rand([2, 5])]));
      expectOk('reshape', gradCheck(([a, b]) => ops.mul(ops.reshape(a!, [2, 6]), b!), [rand([3, 4]), rand([2, 6])]));
    });
    test('channelScale (the kernel gate)', () => {
      expectOk('channelScale', gradCheck(([x, s]) => ops.channelScale(x!, s!), [rand([2, 3, 2, 2]), rand([2, 3])]));
    });
    test('dropout with a fixed seed', () => {
      expectOk('dropout', gradCheck(([x]) => ops.dropout(x!, 0.3, 99), [rand([40])]));
    });
    test('a conv → bn → relu → pool → linear chain', () => {
      const y = labels(2, 3);
      expectOk('chain', gradCheck(([x, w, g, b, lw]) => {
        const e = engine();
        let h = ops.conv2d(x!, w!, null, { padding: 1 });
        h = ops.batchNorm(h, { gamma: g!, beta: b!, runningMean: e.zeros([4]), runningVar: e.full([4], 1), momentum: 0.1, eps: 1e-5 }, true);
        h = ops.relu(h);
        h = ops.globalAvgPool(ops.maxPool2d(h, { kernel: 2 }));
        return ops.softmaxCrossEntropy(ops.linear(h, lw!), y);
      }, [rand([2, 2, 4, 4]), rand([4, 2, 3, 3]), rand([4], 0.5, 1.5), rand([4]), rand([3, 4])], { eps: 3e-3, rtol: 5e-2 }));
    });
  });
}

describe('the gradient checker', () => {
  test('rejects a deliberately wrong gradient', async () => {
    setEngine(await Engine.create({ backend: 'reference' }));
    const wrongSquare = (x: Tensor): Tensor => {
      const e = engine();
      const y = ops.mul(x, x);
      const out = e.alloc(y.shape);
      e.backend.kernels.copy(y.ptr, out.ptr, y.size);
      out.requiresGrad = true;
      // d(x²)/dx is 2x; this claims x.
      e.record({ op: 'wrongSquare', inputs: [x], output: out, backward: (dy) => {
        const dx = e.alloc(x.shape);
        e.backend.kernels.mul(dy.ptr, x.ptr, dx.ptr, x.size);
        return [dx];
      } });
      return out;
    };
    const r = gradCheck(([x]) => wrongSquare(x!), [rand([6])]);
    assert.equal(r.ok, false, 'the checker accepted a wrong gradient');
  });
});
