/**
 * Micro-benchmark of the GEMM and convolution kernels, called directly (one thread, no engine):
 * GEMM 64x1024x576, the conv 64 -> 64 3x3 pad 1 on 32x32 at batch 1 and 32 (forward, backward-input,
 * backward-weight), a few other shapes (strided, 1x1, depthwise), and the conv layers of fmnist-vgg5 at
 * batch 128, on each SIMD build.
 *
 *   node --import tsx bench/kernels-gemm-conv.ts [filters...] [--reps N] [--warmup N] [--quick]
 *
 * A filter keeps the cases whose label contains it. GFLOP/s counts 2 * MACs over the median time.
 * Each kernel's output is checked against the reference on one image before timing.
 */
import { convOutSize, writeConvDesc, type ConvGeometry, type Kernels } from '../src/backend/kernels.js';
import { createReferenceKernels } from '../src/backend/reference/index.js';
import { convScratchBytes, gemmScratchBytes } from '../src/backend/scratch.js';
import { compileKernels, instantiateKernels, type SimdVariant } from '../src/backend/wasm/loader.js';
import { Arena, LinearMemory } from '../src/tensor/memory.js';
import { BenchRng, environment, parseArgs, printTable, round, spreadText, time, verifyOutputs, writeResults, type Cell } from './harness.js';

type ConvKernel = 'conv2dForward' | 'conv2dBackwardInput' | 'conv2dBackwardWeight';

interface GemmCase { readonly kind: 'gemm'; readonly label: string; readonly M: number; readonly N: number; readonly K: number; readonly transA: number; readonly transB: number }
interface ConvCase {
  readonly kind: 'conv'; readonly label: string; readonly g: ConvGeometry; readonly kernel: ConvKernel;
  /** The channel range of the call as a fraction [lo, hi) of its channels (as a thread of a channel split gets); whole when absent. */
  readonly part?: readonly [number, number];
}
type Case = GemmCase | ConvCase;

function geometry(N: number, C: number, H: number, M: number, k: number, pad: number, stride = 1, groups = 1): ConvGeometry {
  const OH = convOutSize(H, k, stride, pad, pad, 1);
  return { N, C, H, W: H, M, KH: k, KW: k, strideH: stride, strideW: stride, padTop: pad, padLeft: pad, dilationH: 1, dilationW: 1, groups, OH, OW: OH };
}

const KERNELS: readonly [ConvKernel, string][] = [['conv2dForward', 'fwd'], ['conv2dBackwardInput', 'bwd-in'], ['conv2dBackwardWeight', 'bwd-w']];
const convCases = (name: string, g: ConvGeometry, kernels = KERNELS): ConvCase[] =>
  kernels.map(([kernel, short]) => ({ kind: 'conv', label: `${name} ${short}`, g, kernel }));

/** fmnist-vgg5's convolutions: input 1x28x28; conv3x3-32, conv3x3-32, maxpool2, conv3x3-64, conv3x3-64, maxpool2, conv3x3-128; pad 1. */
const VGG5 = [[1, 28, 32], [32, 28, 32], [32, 14, 64], [64, 14, 64], [64, 7, 128]] as const;
const VGG5_BATCH = 128;

const CASES: readonly Case[] = [
  { kind: 'gemm', label: 'gemm 64x1024x576 NN', M: 64, N: 1024, K: 576, transA: 0, transB: 0 },
  { kind: 'gemm', label: 'gemm 64x1024x576 TT', M: 64, N: 1024, K: 576, transA: 1, transB: 1 },
  ...convCases('conv64 N=1', geometry(1, 64, 32, 64, 3, 1)),
  ...convCases('conv64 N=32', geometry(32, 64, 32, 64, 3, 1)),
  ...convCases('conv64 N=1 second half of the channels', geometry(1, 64, 32, 64, 3, 1)).map((c): ConvCase => ({ ...c, part: [0.5, 1] })),
  // Other shapes of a small ResNet: a strided 3x3 (backward-input through col2im), a 1x1 (x is the col matrix), a depthwise 3x3.
  ...convCases('resnet 3x3 s2 64->128 32x32 N=32', geometry(32, 64, 32, 128, 3, 1, 2)),
  ...convCases('resnet 1x1 64->128 32x32 N=32', geometry(32, 64, 32, 128, 1, 0)),
  ...convCases('depthwise 3x3 64 32x32 N=32', geometry(32, 64, 32, 64, 3, 1, 1, 64)),
  ...VGG5.flatMap(([C, H, M], i) => convCases(`vgg5.conv${i + 1} ${C}->${M} ${H}x${H} N=${VGG5_BATCH}`, geometry(VGG5_BATCH, C, H, M, 3, 1),
    i === 0 ? KERNELS.filter(([k]) => k !== 'conv2dBackwardInput') : KERNELS)),
];

/** The channel range [c0, c1) of a conv case's call, of the output channels (input channels for the backward-input). */
function channels(c: ConvCase): [number, number] {
  const all = c.kernel === 'conv2dBackwardInput' ? c.g.C : c.g.M;
  const [lo, hi] = c.part ?? [0, 1];
  return [Math.round(lo * all), Math.round(hi * all)];
}

function macs(c: Case): number {
  if (c.kind === 'gemm') return c.M * c.N * c.K;
  const g = c.g;
  const [c0, c1] = channels(c);
  const share = (c1 - c0) / (c.kernel === 'conv2dBackwardInput' ? g.C : g.M);
  return g.N * g.M * (g.C / g.groups) * g.KH * g.KW * g.OH * g.OW * share;
}

const args = parseArgs(process.argv.slice(2));
const options = { warmup: args.warmup ?? (args.quick ? 2 : 5), reps: args.reps ?? (args.quick ? 5 : 25), quick: args.quick };
const cases = CASES.filter((c) => args.names.length === 0 || args.names.some((n) => c.label.includes(n)));

const mem = new LinearMemory({ shared: true, initialPages: 4096 });
const arena = new Arena(mem, 'bench');
const rng = new BenchRng(20240611);
const reference = createReferenceKernels(mem);

function floats(n: number, lo = -1, hi = 1): number {
  const ptr = arena.alloc(n * 4);
  mem.f32.set(rng.floats(n, lo, hi), ptr >>> 2);
  return ptr;
}

interface Prepared {
  /** Runs the case once on `k`. */
  run(k: Kernels): void;
  /** The output after running the case on `k` restricted to a cheap check (one image for convs). */
  check(k: Kernels): Float32Array;
}

function prepare(c: Case): Prepared {
  if (c.kind === 'gemm') {
    const a = floats(c.M * c.K);
    const b = floats(c.K * c.N);
    const out = floats(c.M * c.N);
    const scratch = arena.alloc(gemmScratchBytes());
    const lda = c.transA ? c.M : c.K;
    const ldb = c.transB ? c.K : c.N;
    const run = (k: Kernels): void => k.gemm(c.transA, c.transB, c.M, c.N, c.K, 1, a, lda, b, ldb, 0, out, c.N, scratch);
    return { run, check: (k) => { run(k); return mem.f32.slice(out >>> 2, (out >>> 2) + c.M * c.N); } };
  }
  const g = c.g;
  const desc = arena.alloc(64);
  writeConvDesc(mem.i32, desc, g);
  const Cg = g.C / g.groups;
  const xSize = g.N * g.C * g.H * g.W;
  const ySize = g.N * g.M * g.OH * g.OW;
  const wSize = g.M * Cg * g.KH * g.KW;
  const bound = Math.sqrt(3 / (Cg * g.KH * g.KW));
  const x = floats(xSize);
  const w = floats(wSize, -bound, bound);
  const y = floats(ySize);
  const scratch = arena.alloc(convScratchBytes(g));
  const [c0, c1] = channels(c);
  const call = (k: Kernels, n1: number): void => {
    if (c.kernel === 'conv2dForward') k.conv2dForward(desc, x, w, 0, y, 0, n1, c0, c1, scratch);
    else if (c.kernel === 'conv2dBackwardInput') k.conv2dBackwardInput(desc, y, w, x, 0, n1, c0, c1, scratch);
    else k.conv2dBackwardWeight(desc, x, y, w, 0, n1, c0, c1, 0, scratch);
  };
  const out = c.kernel === 'conv2dForward' ? [y, g.M * g.OH * g.OW] : c.kernel === 'conv2dBackwardInput' ? [x, g.C * g.H * g.W] : [w, wSize];
  return {
    run: (k) => call(k, g.N),
    check: (k) => {
      call(k, 1);
      return mem.f32.slice(out[0]! >>> 2, (out[0]! >>> 2) + out[1]!);
    },
  };
}

const variants: { variant: SimdVariant; kernels: Kernels }[] = [];
for (const v of ['simd', 'relaxed'] as const) {
  variants.push({ variant: v, kernels: instantiateKernels(await compileKernels(v), mem.memory) });
}

const env = environment(options, [], { threads: 1, variants: variants.map((v) => v.variant), command: process.argv.slice(1).join(' ') });
const rows: Cell[][] = [];
const results: unknown[] = [];
for (const c of cases) {
  const p = prepare(c);
  const expected = p.check(reference);
  const row: Cell[] = [c.label, macs(c) / 1e6];
  const gflops: number[] = [];
  for (const { variant, kernels } of variants) {
    verifyOutputs(`${c.label} ${variant}`, p.check(kernels), expected, 'reference');
    const t = await time(() => p.run(kernels), options);
    const rate = (2 * macs(c)) / (t.median * 1e6);
    gflops.push(rate);
    row.push(t.median, rate, spreadText(t));
    results.push({ case: c.label, variant, macs: macs(c), median_ms: round(t.median), p10_ms: round(t.p10), p90_ms: round(t.p90), gflops: round(rate, 2) });
  }
  row.push(gflops.length === 2 ? gflops[1]! / gflops[0]! : null);
  rows.push(row);
  console.log(row.join('  '));
  arena.reset();
}
printTable(`GEMM and conv kernels, one thread, median of ${options.reps} after ${options.warmup} warm-up (GFLOP/s = 2 MACs / median)`, [
  'case', 'MMACs', ...variants.flatMap(({ variant }) => [`${variant} ms`, `${variant} GFLOP/s`, `${variant} p10/p90`]), 'relaxed/simd',
], rows);
console.log(`\nwrote ${writeResults('kernels-gemm-conv', { environment: env, results })}`);
