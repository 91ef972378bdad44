import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { compareOutputs, median, parseArgs, percentile, summarize, UsageError, verifyOutputs, VerificationError } from '../../bench/harness.js';
import { buildConvModel, buildMatMulModel } from '../../bench/onnx-build.js';
import { TestRng } from '../util/rng.js';
import { assertClose, close } from '../util/tolerance.js';

test('median of an odd count is the middle value, whatever the order', () => {
  assert.equal(median([5, 1, 3]), 3);
  assert.equal(median([7]), 7);
});

test('median of an even count is the mean of the two middle values', () => {
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([10, 20]), 15);
});

test('percentiles interpolate linearly between closest ranks', () => {
  const xs = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
  assert.equal(percentile(xs, 0), 1);
  assert.equal(percentile(xs, 10), 2);
  assert.equal(percentile(xs, 90), 10);
  assert.equal(percentile(xs, 100), 11);
  assert.equal(percentile([0, 10], 25), 2.5);
});

test('summarize reports min, max, p10, p90 and mean without reordering its input', () => {
  const xs = [9, 1, 5, 3, 7];
  const s = summarize(xs);
  assert.deepEqual(xs, [9, 1, 5, 3, 7]);
  assert.equal(s.min, 1);
  assert.equal(s.max, 9);
  assert.equal(s.median, 5);
  assert.equal(s.mean, 5);
  assert.equal(s.n, 5);
  assert.ok(Math.abs(s.p10 - 1.8) < 1e-12);
  assert.ok(Math.abs(s.p90 - 8.2) < 1e-12);
});

test('statistics of an empty sample and percentiles outside [0, 100] throw', () => {
  assert.throws(() => median([]), RangeError);
  assert.throws(() => percentile([1, 2], 101), RangeError);
});

test('verifyOutputs accepts relative error below 1e-3 and rejects it above, and NaN', () => {
  const ref = [10, -20, 5];
  assert.ok(Math.abs(compareOutputs([10.01, -20, 5], ref).relative - 0.01 / 20) < 1e-9);
  assert.doesNotThrow(() => verifyOutputs('a', [10.01, -20, 5], ref, 'ref'));
  assert.throws(() => verifyOutputs('a', [10.1, -20, 5], ref, 'ref'), VerificationError);
  assert.throws(() => verifyOutputs('a', [NaN, -20, 5], ref, 'ref'), VerificationError);
});

test('parseArgs reads names, --reps, --warmup (both spellings) and --quick; rejects bad values', () => {
  assert.deepEqual(parseArgs(['conv', '--reps', '7', '--warmup=0', '--quick']), { names: ['conv'], reps: 7, warmup: 0, quick: true });
  assert.deepEqual(parseArgs([]), { names: [], reps: null, warmup: null, quick: false });
  assert.throws(() => parseArgs(['--reps', '0']), UsageError);
  assert.throws(() => parseArgs(['--reps']), UsageError);
  assert.throws(() => parseArgs(['--fast']), UsageError);
});

/** Direct loop: y[n, m, oh, ow] = sum over c, kh, kw of x[n, c, ih, iw] · w[m, c, kh, kw] + b[m], zero padding. */
function convLoop(x: Float32Array, xs: readonly number[], w: Float32Array, ws: readonly number[], bias: Float32Array | null, pad: number, stride: number): Float32Array {
  const [N, C, H, W] = xs as [number, number, number, number];
  const [M, , KH, KW] = ws as [number, number, number, number];
  const OH = Math.floor((H + 2 * pad - KH) / stride) + 1;
  const OW = Math.floor((W + 2 * pad - KW) / stride) + 1;
  const y = new Float32Array(N * M * OH * OW);
  for (let n = 0; n < N; n++) for (let m = 0; m < M; m++) for (let oh = 0; oh < OH; oh++) for (let ow = 0; ow < OW; ow++) {
    let s = bias === null ? 0 : (bias[m] as number);
    for (let c = 0; c < C; c++) for (let kh = 0; kh < KH; kh++) for (let kw = 0; kw < KW; kw++) {
      const ih = oh * stride - pad + kh;
      const iw = ow * stride - pad + kw;
      if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
      s += (x[((n * C + c) * H + ih) * W + iw] as number) * (w[((m * C + c) * KH + kh) * KW + kw] as number);
    }
    y[((n * M + m) * OH + oh) * OW + ow] = s;
  }
  return y;
}

function randoms(rng: TestRng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => rng.uniform(-1, 1));
}

test('onnx conv graph x=[1,2,4,4] w=[3,2,3,3] p=1 s=1 runs in onnxruntime-node and matches a direct loop', async () => {
  const rng = new TestRng(11);
  const x = randoms(rng, 1 * 2 * 4 * 4);
  const w = randoms(rng, 3 * 2 * 3 * 3);
  const session = await ort.InferenceSession.create(buildConvModel({ input: [1, 2, 4, 4], weight: w, weightShape: [3, 2, 3, 3], pads: [1, 1, 1, 1] }));
  try {
    const y = (await session.run({ x: new ort.Tensor('float32', x, [1, 2, 4, 4]) }))['y'];
    assert.ok(y !== undefined);
    assert.deepEqual(y.dims, [1, 3, 4, 4]);
    assertClose(y.data as Float32Array, convLoop(x, [1, 2, 4, 4], w, [3, 2, 3, 3], null, 1, 1), close, 'onnx conv');
  } finally {
    await session.release();
  }
});

test('onnx conv graph x=[1,2,4,4] w=[2,2,3,3] p=0 s=2 with bias matches a direct loop', async () => {
  const rng = new TestRng(12);
  const x = randoms(rng, 1 * 2 * 4 * 4);
  const w = randoms(rng, 2 * 2 * 3 * 3);
  const b = randoms(rng, 2);
  const session = await ort.InferenceSession.create(buildConvModel({ input: [1, 2, 4, 4], weight: w, weightShape: [2, 2, 3, 3], bias: b, strides: [2, 2] }));
  try {
    const y = (await session.run({ x: new ort.Tensor('float32', x, [1, 2, 4, 4]) }))['y'];
    assert.ok(y !== undefined);
    assert.deepEqual(y.dims, [1, 2, 1, 1]);
    assertClose(y.data as Float32Array, convLoop(x, [1, 2, 4, 4], w, [2, 2, 3, 3], b, 0, 2), close, 'onnx conv with bias');
  } finally {
    await session.release();
  }
});

test('onnx matmul graph a=[3,5] (initializer) · b=[5,4] (input) matches a direct loop', async () => {
  const rng = new TestRng(13);
  const a = randoms(rng, 15);
  const b = randoms(rng, 20);
  const expected = new Float32Array(12);
  for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) {
    let s = 0;
    for (let k = 0; k < 5; k++) s += (a[i * 5 + k] as number) * (b[k * 4 + j] as number);
    expected[i * 4 + j] = s;
  }
  const session = await ort.InferenceSession.create(buildMatMulModel({ aShape: [3, 5], bShape: [5, 4], a }));
  try {
    assert.deepEqual(session.inputNames, ['b']);
    const y = (await session.run({ b: new ort.Tensor('float32', b, [5, 4]) }))['y'];
    assert.ok(y !== undefined);
    assertClose(y.data as Float32Array, expected, close, 'onnx matmul');
  } finally {
    await session.release();
  }
});

test('the onnx builders name the input and the expectation when shapes disagree', () => {
  assert.throws(() => buildConvModel({ input: [1, 3, 4, 4], weight: new Float32Array(18), weightShape: [1, 2, 3, 3] }), /3 channels/);
  assert.throws(() => buildConvModel({ input: [1, 2, 4, 4], weight: new Float32Array(17), weightShape: [1, 2, 3, 3] }), /17 values/);
  assert.throws(() => buildMatMulModel({ aShape: [2, 3], bShape: [4, 2] }), /inner sizes 3 and 4/);
});
