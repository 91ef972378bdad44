import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { convOutSize, writePoolDesc, type Kernels, type PoolGeometry } from '../../src/backend/kernels.js';
import { h, everyKernelSet, SENTINEL, buf, prefill, read, readInt, uniform, conform, always, seed, shift, numericGradient, type Buf } from '../util/conformance.js';
import { TestRng } from '../util/rng.js';
import { assertClose, close, exact, loose } from '../util/tolerance.js';

/** Random pooling geometry: odd sizes, strides 1..3, padding up to the window size (so some windows lie wholly in padding). */
const geometry = fc.record({
  N: fc.integer({ min: 1, max: 3 }), C: fc.integer({ min: 1, max: 3 }),
  H: fc.integer({ min: 1, max: 9 }), W: fc.oneof(fc.integer({ min: 1, max: 11 }), fc.integer({ min: 12, max: 37 })),
  KH: fc.integer({ min: 1, max: 4 }), KW: fc.integer({ min: 1, max: 4 }),
  strideH: fc.integer({ min: 1, max: 3 }), strideW: fc.integer({ min: 1, max: 3 }),
  padTop: fc.integer({ min: 0, max: 4 }), padLeft: fc.integer({ min: 0, max: 4 }),
  padBottom: fc.integer({ min: 0, max: 4 }), padRight: fc.integer({ min: 0, max: 4 }),
  countIncludePad: fc.integer({ min: 0, max: 1 }),
}).map((r): PoolGeometry => ({
  N: r.N, C: r.C, H: r.H, W: r.W, KH: r.KH, KW: r.KW, strideH: r.strideH, strideW: r.strideW,
  padTop: Math.min(r.padTop, r.KH), padLeft: Math.min(r.padLeft, r.KW), countIncludePad: r.countIncludePad,
  OH: Math.max(1, convOutSize(r.H, r.KH, r.strideH, Math.min(r.padTop, r.KH), Math.min(r.padBottom, r.KH), 1)),
  OW: Math.max(1, convOutSize(r.W, r.KW, r.strideW, Math.min(r.padLeft, r.KW), Math.min(r.padRight, r.KW), 1)),
}));
const range = (N: number) => fc.tuple(fc.integer({ min: 0, max: N }), fc.integer({ min: 0, max: N })).map(([a, b]) => [Math.min(a, b), Math.max(a, b)] as const);
const geometryAndRange = geometry.chain((g) => fc.tuple(fc.constant(g), range(g.N)));
const describe = (g: PoolGeometry): string =>
  `x=[${g.N},${g.C},${g.H},${g.W}] k=${g.KH}x${g.KW} s=${g.strideH},${g.strideW} p=${g.padTop},${g.padLeft} out=${g.OH}x${g.OW} includePad=${g.countIncludePad}`;

function desc(g: PoolGeometry): number {
  const ptr = h.arena.alloc(64);
  writePoolDesc(h.mem.i32, ptr, g);
  return ptr;
}

/** Values on a coarse grid, so that windows often hold several equal maxima. */
function tiedInput(rng: TestRng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => rng.int(-2, 2) * 0.5);
}

/** Asserts that planes of images outside [n0, n1) still hold the sentinel and those inside do not. */
function assertRangeOnly(b: Buf, perImage: number, n0: number, n1: number, label: string): void {
  const v = read(b);
  for (let i = 0; i < v.length; i++) {
    const inside = Math.floor(i / perImage) >= n0 && Math.floor(i / perImage) < n1;
    if (inside === (v[i] === SENTINEL)) assert.fail(`${label}: element ${i} ${inside ? 'not written' : 'written outside the range'}`);
  }
}

test('maxPool2dForward and avgPool2dForward: random geometry and ranges, ties, windows in padding; exact', () => {
  fc.assert(fc.property(geometryAndRange, shift, shift, seed, fc.boolean(), ([g, [n0, n1]], sx, sy, s, ties) => {
    h.arena.reset();
    const rng = new TestRng(s);
    const inN = g.N * g.C * g.H * g.W, outN = g.N * g.C * g.OH * g.OW;
    const d = desc(g);
    const x = buf(inN, sx), y = buf(outN, sy), arg = buf(outN, sx, true);
    const xv = ties ? tiedInput(rng, inN) : uniform(rng, inN, -3, 3);
    const label = `${describe(g)} n=[${n0},${n1})`;
    conform(`maxPool2dForward ${label}`, [[x, xv]], [y, arg], (k) => k.maxPool2dForward(d, x.ptr, y.ptr, arg.ptr, n0, n1), always(exact));
    assertRangeOnly(y, g.C * g.OH * g.OW, n0, n1, `maxPool2dForward reference ${label}`);
    conform(`avgPool2dForward ${label}`, [[x, xv]], [y], (k) => k.avgPool2dForward(d, x.ptr, y.ptr, n0, n1), always(exact));
    assertRangeOnly(y, g.C * g.OH * g.OW, n0, n1, `avgPool2dForward reference ${label}`);
  }), { seed: 42, numRuns: 400 });
});

test('maxPool2dBackward and avgPool2dBackward: random geometry and ranges; exact', () => {
  fc.assert(fc.property(geometryAndRange, shift, seed, fc.boolean(), ([g, [n0, n1]], sx, s, ties) => {
    h.arena.reset();
    const rng = new TestRng(s);
    const inN = g.N * g.C * g.H * g.W, outN = g.N * g.C * g.OH * g.OW;
    const d = desc(g);
    const x = buf(inN, sx), y = buf(outN), arg = buf(outN, 0, true), dy = buf(outN, sx), dx = buf(inN, 3 - sx);
    prefill(x, ties ? tiedInput(rng, inN) : uniform(rng, inN));
    prefill(arg);
    h.reference.maxPool2dForward(d, x.ptr, y.ptr, arg.ptr, 0, g.N);
    const label = `${describe(g)} n=[${n0},${n1})`;
    const dyv = uniform(rng, outN);
    conform(`maxPool2dBackward ${label}`, [[dy, dyv], [arg, readInt(arg)]], [dx], (k) => k.maxPool2dBackward(d, dy.ptr, arg.ptr, dx.ptr, n0, n1), always(exact));
    assertRangeOnly(dx, g.C * g.H * g.W, n0, n1, `maxPool2dBackward reference ${label}`);
    conform(`avgPool2dBackward ${label}`, [[dy, dyv]], [dx], (k) => k.avgPool2dBackward(d, dy.ptr, dx.ptr, n0, n1), always(exact));
    assertRangeOnly(dx, g.C * g.H * g.W, n0, n1, `avgPool2dBackward reference ${label}`);
  }), { seed: 42, numRuns: 250 });
});

const onePlane = (H: number, W: number, K: number, stride: number, pad: number, countIncludePad = 0): PoolGeometry => ({
  N: 1, C: 1, H, W, KH: K, KW: K, strideH: stride, strideW: stride, padTop: pad, padLeft: pad, countIncludePad,
  OH: convOutSize(H, K, stride, pad, pad, 1), OW: convOutSize(W, K, stride, pad, pad, 1),
});

test('max pooling ties: the first maximum in row-major window order wins; NaN beats numbers, the first NaN wins', () => {
  h.arena.reset();
  const g = onePlane(4, 12, 2, 2, 0);
  const d = desc(g);
  const xv = new Float32Array(48).fill(1);
  xv[13] = NaN; // row 1, column 1: window (0, 0)
  xv[15] = NaN; // row 1, column 3: window (0, 1), after...
  xv[2] = NaN; // ...row 0, column 2, which comes first in that window
  const x = buf(48, 1), y = buf(g.OH * g.OW, 2), arg = buf(g.OH * g.OW, 3, true);
  for (const { name, k } of everyKernelSet) {
    prefill(x, xv);
    prefill(y);
    prefill(arg);
    k.maxPool2dForward(d, x.ptr, y.ptr, arg.ptr, 0, 1);
    const a = readInt(arg);
    assert.deepEqual([a[0], a[1], a[2], a[6]], [13, 2, 4, 24 + 0], `argmax ${name}`);
    assert.ok(Number.isNaN(read(y)[0]!) && Number.isNaN(read(y)[1]!) && read(y)[2] === 1, `max ${name}`);
  }
});

test('windows wholly in padding: max gives -Infinity and argmax -1, average gives 0, backwards ignore them', () => {
  h.arena.reset();
  const g = onePlane(2, 2, 2, 2, 2, 1);
  assert.equal(g.OH, 3);
  const d = desc(g);
  const x = buf(4, 1), y = buf(9, 2), arg = buf(9, 0, true), dx = buf(4, 3), dy = buf(9, 1);
  for (const { name, k } of everyKernelSet) {
    prefill(x, [1, 2, 3, 4]);
    prefill(arg);
    k.maxPool2dForward(d, x.ptr, y.ptr, arg.ptr, 0, 1);
    assert.deepEqual(Array.from(read(y)), [-Infinity, -Infinity, -Infinity, -Infinity, 4, -Infinity, -Infinity, -Infinity, -Infinity], `max ${name}`);
    assert.deepEqual(Array.from(readInt(arg)), [-1, -1, -1, -1, 3, -1, -1, -1, -1], `argmax ${name}`);
    prefill(dy, [1, 1, 1, 1, 5, 1, 1, 1, 1]);
    k.maxPool2dBackward(d, dy.ptr, arg.ptr, dx.ptr, 0, 1);
    assert.deepEqual(Array.from(read(dx)), [0, 0, 0, 5], `maxPool2dBackward ${name}`);
    k.avgPool2dForward(d, x.ptr, y.ptr, 0, 1);
    assert.deepEqual(Array.from(read(y)), [0, 0, 0, 0, 2.5, 0, 0, 0, 0], `avg ${name}`);
    k.avgPool2dBackward(d, dy.ptr, dx.ptr, 0, 1);
    assert.deepEqual(Array.from(read(dx)), [1.25, 1.25, 1.25, 1.25], `avgPool2dBackward ${name}`);
  }
});

test('countIncludePad: 3x3 pad 1 over ones gives 4/9 in a corner with padding counted, 1 without', () => {
  h.arena.reset();
  for (const include of [0, 1]) {
    const g = onePlane(5, 6, 3, 1, 1, include);
    const d = desc(g);
    const x = buf(30, 2), y = buf(30, 1);
    for (const { name, k } of everyKernelSet) {
      prefill(x, new Float32Array(30).fill(1));
      k.avgPool2dForward(d, x.ptr, y.ptr, 0, 1);
      const v = read(y);
      assert.equal(v[0], include ? Math.fround(4 / 9) : 1, `corner ${name} include=${include}`);
      assert.equal(v[1], include ? Math.fround(6 / 9) : 1, `edge ${name} include=${include}`);
      assert.equal(v[7], 1, `interior ${name} include=${include}`);
    }
  }
});

test('global pools: planes 0..7, HW 0..37 and longer; avg close, max and backwards exact', () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 7 }), fc.oneof(fc.integer({ min: 0, max: 37 }), fc.integer({ min: 38, max: 300 })), shift, shift, seed, fc.boolean(),
    (planes, HW, sx, sy, s, ties) => {
      h.arena.reset();
      const rng = new TestRng(s);
      const x = buf(planes * HW, sx), y = buf(planes, sy), arg = buf(planes, sx, true), dy = buf(planes, sy), dx = buf(planes * HW, sy);
      const xv = ties ? tiedInput(rng, planes * HW) : uniform(rng, planes * HW);
      if (ties && planes * HW > 0 && rng.next() < 0.5) xv[rng.int(0, planes * HW - 1)] = NaN;
      const label = `planes=${planes} HW=${HW}`;
      conform(`globalAvgPoolForward ${label}`, [[x, xv]], [y], (k) => k.globalAvgPoolForward(x.ptr, y.ptr, planes, HW), always(close), 1);
      conform(`globalMaxPoolForward ${label}`, [[x, xv]], [y, arg], (k) => k.globalMaxPoolForward(x.ptr, y.ptr, arg.ptr, planes, HW), always(exact));
      const dyv = uniform(rng, planes);
      conform(`globalAvgPoolBackward ${label}`, [[dy, dyv]], [dx], (k) => k.globalAvgPoolBackward(dy.ptr, dx.ptr, planes, HW), always(exact));
      prefill(x, xv);
      h.reference.globalMaxPoolForward(x.ptr, y.ptr, arg.ptr, planes, HW);
      conform(`globalMaxPoolBackward ${label}`, [[dy, dyv], [arg, readInt(arg)]], [dx], (k) => k.globalMaxPoolBackward(dy.ptr, arg.ptr, dx.ptr, planes, HW), always(exact));
    }), { seed: 42, numRuns: 150 });
});

test('global max pool: the first maximum wins across SIMD lanes, NaN beats numbers, HW = 0 gives -Infinity and -1', () => {
  h.arena.reset();
  const cases: Array<[number[], number, number]> = [
    [[1, 3, 2, 3, 0, 3, 3, 1, 3], 3, 1],
    [[0, 0, 0, 0, 0, 0, 5, 0, 5, 0, 0], 5, 6],
    [[-Infinity, -Infinity, -Infinity, -Infinity, -Infinity], -Infinity, 0],
    [[1, 2, 9, NaN, 4, NaN, 9, 9], NaN, 3],
    [[1, 2, 3, 4, 5, 6, 7, 8, NaN], NaN, 8],
    [[], -Infinity, -1],
  ];
  for (const [data, best, at] of cases) {
    const x = buf(data.length, 1), y = buf(1), arg = buf(1, 0, true);
    for (const { name, k } of everyKernelSet) {
      prefill(x, data);
      k.globalMaxPoolForward(x.ptr, y.ptr, arg.ptr, 1, data.length);
      assert.ok(Object.is(read(y)[0], Math.fround(best)), `max of [${data}] ${name}: ${read(y)[0]}`);
      assert.equal(readInt(arg)[0], at, `argmax of [${data}] ${name}`);
    }
  }
});

/** Distinct values at least 0.05 apart, so that a perturbation of 1e-2 never changes which element is the maximum. */
function distinctInput(rng: TestRng, n: number): Float32Array {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return Float32Array.from(order, (v) => (v - n / 2) * 0.05);
}

function poolGradientCheck(g: PoolGeometry, s: number, kind: 'max' | 'avg'): void {
  h.arena.reset();
  const rng = new TestRng(s);
  const inN = g.N * g.C * g.H * g.W, outN = g.N * g.C * g.OH * g.OW;
  const d = desc(g);
  const x = buf(inN), y = buf(outN), arg = buf(outN, 0, true), dy = buf(outN), dx = buf(inN);
  const forward = (v: Float32Array): Float32Array => {
    prefill(x, v);
    if (kind === 'max') h.reference.maxPool2dForward(d, x.ptr, y.ptr, arg.ptr, 0, g.N);
    else h.reference.avgPool2dForward(d, x.ptr, y.ptr, 0, g.N);
    return read(y);
  };
  const xv = distinctInput(rng, inN);
  const w = uniform(rng, outN);
  forward(xv);
  prefill(dy, w);
  if (kind === 'max') h.reference.maxPool2dBackward(d, dy.ptr, arg.ptr, dx.ptr, 0, g.N);
  else h.reference.avgPool2dBackward(d, dy.ptr, dx.ptr, 0, g.N);
  const analytic = read(dx);
  assertClose(analytic, numericGradient(forward, xv, w, 1e-2), loose, `${kind}Pool2dBackward ${describe(g)} against central differences`);
}

test('reference pooling backwards match central differences of the reference forwards', () => {
  fc.assert(fc.property(geometry.filter((g) => g.N * g.C * g.H * g.W <= 200), seed, (g, s) => {
    poolGradientCheck(g, s, 'max');
    poolGradientCheck(g, s, 'avg');
  }), { seed: 42, numRuns: 25 });
  fc.assert(fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 12 }), seed, (planes, HW, s) => {
    h.arena.reset();
    const rng = new TestRng(s);
    const x = buf(planes * HW), y = buf(planes), arg = buf(planes, 0, true), dy = buf(planes), dx = buf(planes * HW);
    const xv = distinctInput(rng, planes * HW), w = uniform(rng, planes);
    prefill(dy, w);
    for (const kind of ['avg', 'max'] as const) {
      const forward = (v: Float32Array): Float32Array => {
        prefill(x, v);
        if (kind === 'max') h.reference.globalMaxPoolForward(x.ptr, y.ptr, arg.ptr, planes, HW);
        else h.reference.globalAvgPoolForward(x.ptr, y.ptr, planes, HW);
        return read(y);
      };
      forward(xv);
      if (kind === 'max') h.reference.globalMaxPoolBackward(dy.ptr, arg.ptr, dx.ptr, planes, HW);
      else h.reference.globalAvgPoolBackward(dy.ptr, dx.ptr, planes, HW);
      const analytic = read(dx);
      assertClose(analytic, numericGradient(forward, xv, w, 1e-2), loose, `global${kind === 'max' ? 'Max' : 'Avg'}PoolBackward against central differences`);
    }
  }), { seed: 42, numRuns: 20 });
});

test('the gradient check rejects a max-pool backward that routes the gradient to the window minimum', () => {
  const g = onePlane(6, 6, 2, 2, 0);
  const honest = h.reference.maxPool2dForward;
  const wrong = (dsc: number, x: number, y: number, arg: number, n0: number, n1: number): void => {
    honest(dsc, x, y, arg, n0, n1);
    const v = h.mem.f32, a = h.mem.i32;
    for (let o = 0; o < g.OH * g.OW; o++) {
      const oh = Math.floor(o / g.OW), ow = o % g.OW;
      let lo = Infinity;
      for (let i = 0; i < 4; i++) {
        const at = (oh * 2 + (i >> 1)) * g.W + ow * 2 + (i & 1);
        if (v[(x >>> 2) + at]! < lo) {
          lo = v[(x >>> 2) + at]!;
          a[(arg >>> 2) + o] = at;
        }
      }
    }
  };
  (h.reference as { maxPool2dForward: Kernels['maxPool2dForward'] }).maxPool2dForward = wrong;
  try {
    assert.throws(() => poolGradientCheck(g, 5, 'max'), /maxPool2dBackward .* against central differences/);
  } finally {
    (h.reference as { maxPool2dForward: Kernels['maxPool2dForward'] }).maxPool2dForward = honest;
  }
  poolGradientCheck(g, 5, 'max');
});
