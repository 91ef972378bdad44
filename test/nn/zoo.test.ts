import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { engine, init } from '../../src/autograd/engine.js';
import { Conv2d } from '../../src/nn/layers.js';
import { resnet20, vgg8 } from '../../src/nn/zoo.js';

/** Multiply-adds of a k x k conv producing an out x out map. */
const conv = (size: number, cin: number, cout: number, k = 3): number => size * size * cin * cout * k * k;

describe('zoo networks for 3x32x32 inputs', () => {
  before(async () => {
    await init({ threads: 1 });
  });

  test('resnet20: 19 3x3 convs in three stages of three blocks, two 1x1 projections, 40.8 M MACs', () => {
    const m = resnet20();
    const stage1 = 6 * conv(32, 16, 16);
    const stage2 = conv(16, 16, 32) + conv(16, 16, 32, 1) + 5 * conv(16, 32, 32);
    const stage3 = conv(8, 32, 64) + conv(8, 32, 64, 1) + 5 * conv(8, 64, 64);
    const expected = conv(32, 3, 16) + stage1 + stage2 + stage3 + 64 * 10;
    assert.equal(m.macs([1, 3, 32, 32], false), expected);
    assert.equal(expected, 40_813_184);
    const convs = m.modules().filter(([, x]) => x instanceof Conv2d).map(([, x]) => x as Conv2d);
    assert.equal(convs.filter((c) => c.kernel[0] === 3).length, 19);
    assert.equal(convs.filter((c) => c.kernel[0] === 1).length, 2);
    assert.deepEqual(m.outputShape([2, 3, 32, 32]), [2, 10]);
  });

  test('vgg8: seven 3x3 convs, 43.4 M MACs; classes, input channels and width follow the options', () => {
    const expected = conv(32, 3, 32) + conv(32, 32, 32) + conv(16, 32, 64) + conv(16, 64, 64) + conv(8, 64, 128) + conv(8, 128, 128) + conv(4, 128, 256) + 256 * 10;
    assert.equal(vgg8().macs([1, 3, 32, 32], false), expected);
    assert.equal(expected, 43_354_624);
    const small = vgg8({ width: 0.25, classes: 100, inChannels: 1 });
    assert.equal(small.macs([1, 1, 32, 32], false), conv(32, 1, 8) + conv(32, 8, 8) + conv(16, 8, 16) + conv(16, 16, 16) + conv(8, 16, 32) + conv(8, 32, 32) + conv(4, 32, 64) + 64 * 100);
    const y = small.forward(engine().tensor(new Float32Array(2 * 32 * 32), [2, 1, 32, 32]));
    assert.deepEqual(y.shape, [2, 100]);
    assert.throws(() => vgg8({ width: 0 }), /width 0 should be a number > 0/);
  });
});
