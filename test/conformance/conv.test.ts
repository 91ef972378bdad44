import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { convOutSize, writeConvDesc, type ConvGeometry, type Kernels } from '../../src/backend/kernels.js';
import { convScratchBytes } from '../../src/backend/scratch.js';
import { assertGuards, buf, h, prefill, read, SENTINEL, uniform, variants } from '../util/conformance.js';
import { TestRng } from '../util/rng.js';
import { assertClose, close, exact, maxAbs } from '../util/tolerance.js';

const SCRATCH_GUARD = 16;

const describe = (g: ConvGeometry): string =>
  `x=[${g.N},${g.C},${g.H},${g.W}] w=[${g.M},${g.C / g.groups},${g.KH},${g.KW}] s=${g.strideH},${g.strideW} p=${g.padTop},${g.padLeft} d=${g.dilationH},${g.dilationW} g=${g.groups} out=${g.OH}x${g.OW}`;

function geometry(o: {
  N: number; C: number; H: number; W: number; M: number; KH: number; KW: number; stride?: readonly [number, number];
  pad?: readonly [number, number, number, number]; dilation?: readonly [number, number]; groups?: number;
}): ConvGeometry {
  const [strideH, strideW] = o.stride ?? [1, 1];
  const [padTop, padBottom, padLeft, padRight] = o.pad ?? [0, 0, 0, 0];
  const [dilationH, dilationW] = o.dilation ?? [1, 1];
  return {
    N: o.N, C: o.C, H: o.H, W: o.W, M: o.M, KH: o.KH, KW: o.KW, strideH, strideW, padTop, padLeft, dilationH, dilationW,
    groups: o.groups ?? 1,
    OH: convOutSize(o.H, o.KH, strideH, padTop, padBottom, dilationH), OW: convOutSize(o.W, o.KW, strideW, padLeft, padRight, dilationW),
  };
}

/** 3x3 pad 1 stride 1, as in fmnist-vgg5 and the benchmark conv. */
const same3x3 = (N: number, C: number, H: number, M: number): ConvGeometry =>
  geometry({ N, C, H, W: H, M, KH: 3, KW: 3, pad: [1, 1, 1, 1] });

type ConvKernel = 'conv2dForward' | 'conv2dBackwardInput' | 'conv2dBackwardWeight';

interface Call {
  readonly g: ConvGeometry;
  readonly kernel: ConvKernel;
  /** Images [n0, n1) and channels [c0, c1) (output channels, or input channels for the backward-input). */
  readonly n0: number; readonly n1: number; readonly c0: number; readonly c1: number;
  readonly bias: boolean;
  /** Backward-weight only: 0 overwrites dw, 1 adds to it. */
  readonly beta: number;
  readonly seed: number;
  /** Floats past a 64-byte boundary at which the buffers start. */
  readonly shift?: number;
}

const sizes = (g: ConvGeometry) => ({
  x: g.N * g.C * g.H * g.W, y: g.N * g.M * g.OH * g.OW, w: g.M * (g.C / g.groups) * g.KH * g.KW,
});

/** Whether element i of the kernel's output lies in the call's range. */
function inRange(c: Call, i: number): boolean {
  const g = c.g;
  if (c.kernel === 'conv2dBackwardWeight') {
    const m = Math.floor(i / ((g.C / g.groups) * g.KH * g.KW));
    return m >= c.c0 && m < c.c1;
  }
  const [channels, plane] = c.kernel === 'conv2dForward' ? [g.M, g.OH * g.OW] : [g.C, g.H * g.W];
  const n = Math.floor(i / (channels * plane)), ch = Math.floor(i / plane) % channels;
  return n >= c.n0 && n < c.n1 && ch >= c.c0 && ch < c.c1;
}

/**
 * Runs one kernel call on the reference and on every WASM build from identical inputs: the output
 * pre-filled with a sentinel (NaN inside the range when it is overwritten, random when dw accumulates),
 * scratch exactly convScratchBytes long and full of NaN. Checks that the range was written, nothing
 * outside it, inputs unchanged, and the WASM outputs close to the reference. Returns the outputs.
 */
function conform(c: Call): { reference: Float32Array; wasm: Float32Array[] } {
  h.arena.reset();
  const g = c.g;
  const rng = new TestRng(c.seed);
  const s = sizes(g);
  const desc = h.arena.alloc(64);
  writeConvDesc(h.mem.i32, desc, g);
  const sh = c.shift ?? 0;
  const x = buf(s.x, sh), y = buf(s.y, (sh + 1) % 4), w = buf(s.w, (sh + 2) % 4), bias = buf(g.M, (sh + 3) % 4);
  const xv = uniform(rng, s.x), yv = uniform(rng, s.y), wv = uniform(rng, s.w), bv = uniform(rng, g.M);
  const [out, ins] = c.kernel === 'conv2dForward' ? [y, [[x, xv], [w, wv], [bias, bv]] as const]
    : c.kernel === 'conv2dBackwardInput' ? [x, [[y, yv], [w, wv]] as const] : [w, [[x, xv], [y, yv]] as const];
  const old = c.kernel === 'conv2dBackwardWeight' && c.beta === 1 ? uniform(rng, out.n) : null;
  const outInit = Float32Array.from({ length: out.n }, (_, i) => (!inRange(c, i) ? SENTINEL : old !== null ? old[i]! : NaN));
  const scratchBytes = convScratchBytes(g);
  const scratch = h.arena.alloc(scratchBytes + SCRATCH_GUARD * 4);
  const label = `${c.kernel} ${describe(g)} n=[${c.n0},${c.n1}) ch=[${c.c0},${c.c1})${c.bias ? ' bias' : ''}${c.kernel === 'conv2dBackwardWeight' ? ` beta=${c.beta}` : ''} shift=${sh}`;

  const run = (k: Kernels, name: string): Float32Array => {
    for (const [b, data] of ins) prefill(b, data);
    prefill(out, outInit);
    h.mem.f32.fill(NaN, scratch >>> 2, (scratch + scratchBytes) >>> 2);
    h.mem.f32.fill(SENTINEL, (scratch + scratchBytes) >>> 2, ((scratch + scratchBytes) >>> 2) + SCRATCH_GUARD);
    if (c.kernel === 'conv2dForward') k.conv2dForward(desc, x.ptr, w.ptr, c.bias ? bias.ptr : 0, y.ptr, c.n0, c.n1, c.c0, c.c1, scratch);
    else if (c.kernel === 'conv2dBackwardInput') k.conv2dBackwardInput(desc, y.ptr, w.ptr, x.ptr, c.n0, c.n1, c.c0, c.c1, scratch);
    else k.conv2dBackwardWeight(desc, x.ptr, y.ptr, w.ptr, c.n0, c.n1, c.c0, c.c1, c.beta, scratch);
    for (const [b, data] of ins) {
      assertGuards(b, `${label} ${name}`);
      assert.deepEqual(read(b), data, `${label} ${name}: an input changed`);
    }
    assertGuards(out, `${label} ${name}`);
    for (let i = 0; i < SCRATCH_GUARD; i++) {
      if (h.mem.f32[((scratch + scratchBytes) >>> 2) + i] !== SENTINEL) assert.fail(`${label} ${name}: wrote past convScratchBytes`);
    }
    const got = read(out);
    for (let i = 0; i < got.length; i++) {
      const inside = inRange(c, i);
      if (!inside && got[i] !== SENTINEL) assert.fail(`${label} ${name}: wrote element ${i}, outside the range`);
      if (inside && !Number.isFinite(got[i])) assert.fail(`${label} ${name}: element ${i} is ${got[i]}`);
    }
    return got;
  };

  const reference = run(h.reference, 'reference');
  // Float32 sums over K terms drift from the float64 oracle by about sqrt(K) ulp of the largest term.
  const terms = c.kernel === 'conv2dForward' ? (g.C / g.groups) * g.KH * g.KW
    : c.kernel === 'conv2dBackwardInput' ? (g.M / g.groups) * g.KH * g.KW : (c.n1 - c.n0) * g.OH * g.OW;
  const scale = Math.sqrt(terms) * maxAbs(xv) * maxAbs(c.kernel === 'conv2dBackwardWeight' ? yv : wv) + 1;
  const wasm = variants.map(({ name, k }) => {
    const got = run(k, name);
    assertClose(got, reference, close, `${label} ${name}`, scale);
    return got;
  });
  return { reference, wasm };
}

const KERNELS: readonly ConvKernel[] = ['conv2dForward', 'conv2dBackwardInput', 'conv2dBackwardWeight'];

/** Random geometry: groups 1, 2 or depthwise; kernels 1x1, 3x3, 5x5, 1x3; stride 1..3, padding 0..2 per side, dilation 1..2. */
const randomGeometry = fc.record({
  N: fc.integer({ min: 1, max: 3 }),
  grouping: fc.constantFrom('1', '2', 'depthwise'),
  Cg: fc.integer({ min: 1, max: 6 }), Mg: fc.integer({ min: 1, max: 14 }),
  H: fc.integer({ min: 1, max: 13 }), W: fc.oneof(fc.integer({ min: 1, max: 13 }), fc.integer({ min: 14, max: 29 })),
  kernel: fc.constantFrom([1, 1], [3, 3], [5, 5], [1, 3]),
  stride: fc.tuple(fc.constantFrom(1, 1, 2, 3), fc.constantFrom(1, 1, 2, 3)),
  pad: fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 2 })),
  dilation: fc.tuple(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 2 })),
}).map((r) => {
  const groups = r.grouping === '1' ? 1 : r.grouping === '2' ? 2 : r.Cg + 1;
  const [Cg, Mg] = r.grouping === 'depthwise' ? [1, 1] : [r.Cg, r.Mg];
  const [KH, KW] = r.kernel as [number, number];
  return geometry({ N: r.N, C: Cg * groups, H: r.H, W: r.W, M: Mg * groups, KH, KW, stride: r.stride, pad: r.pad, dilation: r.dilation, groups });
}).filter((g) => g.OH >= 1 && g.OW >= 1);

/** [lo, hi) within [0, size): whole, any non-empty part, or (rarely) empty. */
const range = (size: number) => fc.oneof(
  { arbitrary: fc.constant([0, size] as const), weight: 4 },
  { arbitrary: fc.tuple(fc.integer({ min: 0, max: size - 1 }), fc.integer({ min: 1, max: size })).map(([a, b]) => [Math.min(a, b - 1), Math.max(a + 1, b)] as const), weight: 7 },
  { arbitrary: fc.integer({ min: 0, max: size }).map((a) => [a, a] as const), weight: 1 },
);

const randomCall = randomGeometry.chain((g) => fc.record({
  kernel: fc.constantFrom(...KERNELS),
  images: range(g.N),
  out: range(g.M),
  inp: range(g.C),
  bias: fc.boolean(),
  beta: fc.constantFrom(0, 1),
  seed: fc.integer({ min: 0, max: 0x7fffffff }),
  shift: fc.integer({ min: 0, max: 3 }),
}).map((r): Call => {
  const [c0, c1] = r.kernel === 'conv2dBackwardInput' ? r.inp : r.out;
  return { g, kernel: r.kernel, n0: r.images[0], n1: r.images[1], c0, c1, bias: r.bias, beta: r.beta, seed: r.seed, shift: r.shift };
}));

test('conv kernels: random geometry (stride, padding, dilation, groups, depthwise), partial image and channel ranges; close', () => {
  fc.assert(fc.property(randomCall, (c) => {
    conform(c);
  }), { seed: 42, numRuns: 1000 });
});

test('conv kernels: 1x1 stride-1 unpadded (x is the col matrix), odd planes and wide channels; close', () => {
  for (const [C, H, W, M] of [[3, 5, 7, 13], [16, 9, 9, 24], [7, 1, 33, 5]] as const) {
    const g = geometry({ N: 2, C, H, W, M, KH: 1, KW: 1 });
    for (const kernel of KERNELS) conform({ g, kernel, n0: 0, n1: 2, c0: 0, c1: kernel === 'conv2dBackwardInput' ? C : M, bias: true, beta: 0, seed: C });
  }
});

test('conv kernels: deep reductions past one K block (C=40 3x3, K = 360; backward-weight over 3 images of 24x24)', () => {
  const g = same3x3(3, 40, 24, 20);
  for (const kernel of KERNELS) conform({ g, kernel, n0: 0, n1: 3, c0: 0, c1: kernel === 'conv2dBackwardInput' ? 40 : 20, bias: false, beta: 1, seed: 5 });
  const strided = geometry({ N: 2, C: 40, H: 17, W: 17, M: 30, KH: 3, KW: 3, stride: [2, 2], pad: [1, 1, 1, 1] });
  conform({ g: strided, kernel: 'conv2dBackwardInput', n0: 0, n1: 2, c0: 3, c1: 37, bias: false, beta: 0, seed: 6 });
});

/** fmnist-vgg5's convolutions (input 1x28x28, pad 1). */
const VGG5: readonly ConvGeometry[] = [same3x3(2, 1, 28, 32), same3x3(2, 32, 28, 32), same3x3(2, 32, 14, 64), same3x3(2, 64, 14, 64), same3x3(2, 64, 7, 128)];

test('conv kernels on the fmnist-vgg5 layers (batch 2), whole and split in halves by images and by channels', () => {
  VGG5.forEach((g, layer) => {
    for (const kernel of KERNELS) {
      const channels = kernel === 'conv2dBackwardInput' ? g.C : g.M;
      const half = Math.max(1, channels >> 1);
      conform({ g, kernel, n0: 0, n1: 2, c0: 0, c1: channels, bias: true, beta: 0, seed: layer });
      conform({ g, kernel, n0: 1, n1: 2, c0: 0, c1: channels, bias: false, beta: 1, seed: layer });
      conform({ g, kernel, n0: 0, n1: 2, c0: half, c1: channels, bias: true, beta: 1, seed: layer });
    }
  });
});

test('conv kernels on the benchmark conv: 1x64x32x32 -> 64, 3x3 pad 1', () => {
  const g = same3x3(1, 64, 32, 64);
  for (const kernel of KERNELS) conform({ g, kernel, n0: 0, n1: 1, c0: 0, c1: 64, bias: false, beta: 0, seed: 64 });
});

test('conv kernels: calls split by images or by channels write exactly what one whole call writes', () => {
  const geometries = [same3x3(3, 12, 10, 14), geometry({ N: 3, C: 6, H: 11, W: 9, M: 10, KH: 3, KW: 3, stride: [2, 2], pad: [1, 0, 1, 2], groups: 2 })];
  for (const g of geometries) {
    for (const kernel of KERNELS) {
      const channels = kernel === 'conv2dBackwardInput' ? g.C : g.M;
      const whole = conform({ g, kernel, n0: 0, n1: g.N, c0: 0, c1: channels, bias: true, beta: 0, seed: 1 });
      const pieces = kernel === 'conv2dBackwardWeight'
        ? [[0, g.N, 0, 5], [0, g.N, 5, channels]]
        : [[0, 1, 0, channels], [1, g.N, 0, 5], [1, g.N, 5, channels]];
      const joined = whole.wasm.map((w) => new Float32Array(w.length));
      for (const [n0, n1, c0, c1] of pieces as [number, number, number, number][]) {
        const part = conform({ g, kernel, n0, n1, c0, c1, bias: true, beta: 0, seed: 1 });
        part.wasm.forEach((p, v) => p.forEach((value, i) => { if (value !== SENTINEL) joined[v]![i] = value; }));
      }
      joined.forEach((j, v) => assertClose(j, whole.wasm[v]!, exact, `${kernel} ${describe(g)} ${variants[v]!.name} split`));
    }
  }
});

test('convScratchBytes never shrinks as channels grow (sparse.ts sizes scratch from the full geometry and calls on fewer channels)', () => {
  fc.assert(fc.property(randomGeometry, fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 64 }), (g, dc, dm) => {
    const wider = { ...g, C: g.C + dc * g.groups, M: g.M + dm * g.groups };
    assert.ok(convScratchBytes(g) <= convScratchBytes(wider), `${describe(g)} needs more than ${describe(wider)}`);
  }), { seed: 23, numRuns: 2000 });
});

/** ⟨a, b⟩ in float64. */
function dot(a: ArrayLike<number>, b: ArrayLike<number>): { value: number; magnitude: number } {
  let value = 0, magnitude = 0;
  for (let i = 0; i < a.length; i++) {
    value += (a[i] as number) * (b[i] as number);
    magnitude += Math.abs((a[i] as number) * (b[i] as number));
  }
  return { value, magnitude };
}

/** ⟨conv(x), dy⟩, ⟨x, backwardInput(dy)⟩ and ⟨w, backwardWeight(x, dy)⟩ on the reference, with w optionally replaced in the backward-input. */
function adjointProducts(g: ConvGeometry, seed: number, backwardWeights?: (w: Float32Array) => Float32Array) {
  h.arena.reset();
  const rng = new TestRng(seed);
  const s = sizes(g);
  const desc = h.arena.alloc(64);
  writeConvDesc(h.mem.i32, desc, g);
  const xv = uniform(rng, s.x), wv = uniform(rng, s.w), dyv = uniform(rng, s.y);
  const x = buf(s.x), w = buf(s.w), y = buf(s.y), dy = buf(s.y), dx = buf(s.x), dw = buf(s.w);
  for (const [b, data] of [[x, xv], [w, wv], [dy, dyv]] as const) prefill(b, data);
  for (const b of [y, dx, dw]) prefill(b);
  const k = h.reference;
  k.conv2dForward(desc, x.ptr, w.ptr, 0, y.ptr, 0, g.N, 0, g.M, 0);
  if (backwardWeights !== undefined) prefill(w, backwardWeights(wv));
  k.conv2dBackwardInput(desc, dy.ptr, w.ptr, dx.ptr, 0, g.N, 0, g.C, 0);
  k.conv2dBackwardWeight(desc, x.ptr, dy.ptr, dw.ptr, 0, g.N, 0, g.M, 0, 0);
  return { forward: dot(read(y), dyv), input: dot(xv, read(dx)), weight: dot(wv, read(dw)) };
}

/** Equal up to float32 rounding of the kernels' outputs, relative to the sum of |terms|. */
const adjointEqual = (a: { value: number; magnitude: number }, b: { value: number; magnitude: number }): boolean =>
  Math.abs(a.value - b.value) <= 1e-6 * Math.max(a.magnitude, b.magnitude) + 1e-9;

test('reference backward kernels are the adjoints of the reference forward: <conv(x), dy> = <x, dx> = <w, dw>', () => {
  fc.assert(fc.property(randomGeometry, fc.integer({ min: 0, max: 0x7fffffff }), (g, seed) => {
    const p = adjointProducts(g, seed);
    assert.ok(adjointEqual(p.forward, p.input), `${describe(g)}: <conv(x), dy> = ${p.forward.value}, <x, dx> = ${p.input.value}`);
    assert.ok(adjointEqual(p.forward, p.weight), `${describe(g)}: <conv(x), dy> = ${p.forward.value}, <w, dw> = ${p.weight.value}`);
  }), { seed: 17, numRuns: 150 });
});

test('the adjoint check rejects a backward-input that does not flip the kernel', () => {
  const g = geometry({ N: 1, C: 2, H: 6, W: 7, M: 3, KH: 3, KW: 3, pad: [1, 1, 1, 1] });
  const flip = (w: Float32Array): Float32Array => w.map((_, i) => w[i - (i % 9) + 8 - (i % 9)]!);
  const p = adjointProducts(g, 3, flip);
  assert.ok(!adjointEqual(p.forward, p.input), `a flipped kernel passed: ${p.forward.value} vs ${p.input.value}`);
  assert.ok(adjointEqual(p.forward, p.weight));
});
