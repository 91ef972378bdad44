/**
 * The kernel table: every kernel that the engine calls, with one signature shared by the WASM
 * exports (assembly/) and their plain-TypeScript reference twins (src/backend/reference/).
 *
 * Conventions, for every kernel:
 * - Pointers are byte offsets into the one shared linear memory; 0 means "absent" where allowed.
 * - Tensors are float32, dense, row-major; images are NCHW; conv weights are [M, C/groups, KH, KW].
 * - Ranges `[n0, n1)`, `[c0, c1)`, `[m0, m1)` select the part a call computes, so that threads can
 *   split one op without overlapping writes. A call writes nothing outside its range.
 * - `scratch` points at a per-thread block of at least the bytes that src/backend/scratch.ts states.
 * - Kernels never allocate, never read outside the buffers their arguments describe, and write
 *   outputs completely (an output is overwritten unless the kernel says it accumulates).
 */

/** Field indices of a conv descriptor: 16 int32 values in linear memory. */
export const ConvDescField = {
  N: 0, C: 1, H: 2, W: 3, M: 4, KH: 5, KW: 6, strideH: 7, strideW: 8,
  padTop: 9, padLeft: 10, dilationH: 11, dilationW: 12, groups: 13, OH: 14, OW: 15,
} as const;
export const CONV_DESC_INTS = 16;

export type ConvGeometry = { readonly [K in keyof typeof ConvDescField]: number };

/** Output size of one spatial axis of a convolution or pooling window. */
export function convOutSize(size: number, kernel: number, stride: number, padBefore: number, padAfter: number, dilation: number): number {
  return Math.floor((size + padBefore + padAfter - dilation * (kernel - 1) - 1) / stride) + 1;
}

/** Writes the 16 descriptor ints of `g` at byte offset ptr. */
export function writeConvDesc(i32: Int32Array, ptr: number, g: ConvGeometry): void {
  for (const [k, i] of Object.entries(ConvDescField)) i32[(ptr >>> 2) + i] = g[k as keyof ConvGeometry];
}

/**
 * A plane stored padded: `rows` x `cols` floats holding the map at row `top`, column `left`, zeros
 * around it.
 */
export interface PaddedPlane {
  readonly top: number;
  readonly left: number;
  readonly rows: number;
  readonly cols: number;
}

/** conv2dInfer's descriptor: the 16 geometry ints, then where its planes lie (0 for compact planes) and when it takes its GEMM path. */
export const ConvInferDescField = { xPadded: 16, yTop: 17, yLeft: 18, yRows: 19, yCols: 20, gemmFrom: 21 } as const;
export const CONV_INFER_DESC_INTS = 24;

/** The padded plane a conv reads its input through (conv2dInfer's own copy, or the producer's store). */
export function convInputPlane(g: ConvGeometry): PaddedPlane {
  return {
    top: g.padTop, left: g.padLeft,
    rows: (g.OH - 1) * g.strideH + g.dilationH * (g.KH - 1) + 1, cols: (g.OW - 1) * g.strideW + g.dilationW * (g.KW - 1) + 1,
  };
}

/**
 * Writes conv2dInfer's descriptor at byte offset ptr: x's planes padded as convInputPlane(g) when
 * xPadded, y's planes padded as `y` (null for compact). With gemmFrom > 0, an image whose call computes
 * rows x listed inputs x taps >= gemmFrom weights (any count when strided) takes the kernel's GEMM path:
 * same results, its scratch conv2dInferScratchBytes(g, gemmFrom); 0 or absent: never.
 */
export function writeConvInferDesc(i32: Int32Array, ptr: number, g: ConvGeometry,
  layout: { readonly xPadded: boolean; readonly y: PaddedPlane | null; readonly gemmFrom?: number }): void {
  i32.fill(0, ptr >>> 2, (ptr >>> 2) + CONV_INFER_DESC_INTS);
  writeConvDesc(i32, ptr, g);
  const at = ptr >>> 2;
  i32[at + ConvInferDescField.xPadded] = layout.xPadded ? 1 : 0;
  i32[at + ConvInferDescField.gemmFrom] = layout.gemmFrom ?? 0;
  if (layout.y !== null) {
    i32[at + ConvInferDescField.yTop] = layout.y.top;
    i32[at + ConvInferDescField.yLeft] = layout.y.left;
    i32[at + ConvInferDescField.yRows] = layout.y.rows;
    i32[at + ConvInferDescField.yCols] = layout.y.cols;
  }
}

/** Where a kernel's input maps lie: 4 int32 values, H x W maps whose rows are `cols` floats apart and planes `size` floats apart. */
export const MapPlaneField = { H: 0, W: 1, cols: 2, size: 3 } as const;
export const MAP_PLANE_INTS = 4;

/** Writes the 4 ints of a map plane at byte offset ptr: compact H x W planes unless cols and size say otherwise. */
export function writeMapPlane(i32: Int32Array, ptr: number, H: number, W: number, cols = W, size = H * W): void {
  i32.set([H, W, cols, size], ptr >>> 2);
}

/** Field indices of a 2-D pooling descriptor: 16 int32 values in linear memory. */
export const PoolDescField = {
  N: 0, C: 1, H: 2, W: 3, KH: 4, KW: 5, strideH: 6, strideW: 7,
  padTop: 8, padLeft: 9, OH: 10, OW: 11, countIncludePad: 12,
} as const;
export const POOL_DESC_INTS = 16;

export type PoolGeometry = { readonly [K in keyof typeof PoolDescField]: number };

export function writePoolDesc(i32: Int32Array, ptr: number, g: PoolGeometry): void {
  for (let i = 0; i < POOL_DESC_INTS; i++) i32[(ptr >>> 2) + i] = 0;
  for (const [k, i] of Object.entries(PoolDescField)) i32[(ptr >>> 2) + i] = g[k as keyof PoolGeometry];
}

export interface Kernels {
  // ---- GEMM (assembly/gemm.ts) ----
  /**
   * C[M,N] = alpha * op(A) * op(B) + beta * C, row-major, op(A) is MxK, op(B) is KxN. beta = 0 ignores
   * C's old contents (NaN included); with alpha = 0 or K = 0, A and B are not read. No alignment needed.
   */
  gemm(transA: number, transB: number, M: number, N: number, K: number, alpha: number,
    a: number, lda: number, b: number, ldb: number, beta: number, c: number, ldc: number, scratch: number): void;

  // ---- Convolution (assembly/conv.ts) ----
  /** y[n, m] = conv(x[n], w[m]) + bias[m] for n in [n0,n1), m in [m0,m1); bias = 0 means none. */
  conv2dForward(desc: number, x: number, w: number, bias: number, y: number,
    n0: number, n1: number, m0: number, m1: number, scratch: number): void;
  /** dx[n, c] = sum over m of conv-transpose(dy[n, m], w[m, c]) for n in [n0,n1), c in [c0,c1); overwrites. */
  conv2dBackwardInput(desc: number, dy: number, w: number, dx: number,
    n0: number, n1: number, c0: number, c1: number, scratch: number): void;
  /** dw[m] = beta * dw[m] + sum over n in [n0,n1) of correlation(x[n], dy[n, m]) for m in [m0,m1) (an empty image range gives beta * dw). */
  conv2dBackwardWeight(desc: number, x: number, dy: number, dw: number,
    n0: number, n1: number, m0: number, m1: number, beta: number, scratch: number): void;

  // ---- Channel-sparse convolution (assembly/conv.ts), groups = 1 ----
  // For image n, outIdx[n*M .. n*M+outCount[n]) lists its active output channels and
  // inIdx[n*C .. n*C+inCount[n]) its active input channels, ascending (int32). Each returns the
  // multiply-adds it did: OH*OW*KH*KW per (active output, active input) pair and image.
  /** y[n, m] = conv(x[n, active c], w[m, active c]) + bias[m] for active m; y[n, m] = 0 for inactive m. */
  conv2dForwardSparse(desc: number, x: number, w: number, bias: number, y: number, n0: number, n1: number,
    outIdx: number, outCount: number, inIdx: number, inCount: number, scratch: number): number;
  /** dx[n, c] from dy[n, active m] and w[active m, c] for active c; dx[n, c] = 0 for inactive c. */
  conv2dBackwardInputSparse(desc: number, dy: number, w: number, dx: number, n0: number, n1: number,
    outIdx: number, outCount: number, inIdx: number, inCount: number, scratch: number): number;
  /** dw = beta * dw + sum over images of the active (m, c) blocks' correlation of x[n, c] with dy[n, m]; beta is 0 or 1. */
  conv2dBackwardWeightSparse(desc: number, x: number, dy: number, dw: number, n0: number, n1: number,
    outIdx: number, outCount: number, inIdx: number, inCount: number, beta: number, scratch: number): number;

  // ---- Batch norm (assembly/batchnorm.ts), x viewed as [N, C, HW] ----
  /** mean[c] and biased variance var[c] over N and HW, for c in [c0,c1). */
  batchNormStats(x: number, N: number, C: number, HW: number, c0: number, c1: number, mean: number, variance: number): void;
  /** y = x * scale[c] + shift[c] for c in [c0,c1) (training and eval both reduce to this). */
  batchNormApply(x: number, y: number, N: number, C: number, HW: number, c0: number, c1: number, scale: number, shift: number): void;
  /** Training-mode backward for c in [c0,c1): dgamma[c], dbeta[c] overwritten; dx overwritten. */
  batchNormBackward(x: number, dy: number, dx: number, N: number, C: number, HW: number, c0: number, c1: number,
    mean: number, invstd: number, gamma: number, dgamma: number, dbeta: number): void;
  /**
   * batchNormBackward for statistics taken over part of each channel: counts[c] (float32) is the
   * number of elements that took part, and dy is zero at every element that did not. dgamma and dbeta
   * are the plain sums; dx = gamma * invstd * (dy - (dbeta + xhat * dgamma) / counts[c]); a channel
   * with counts[c] = 0 gets dx = 0, dgamma = dbeta = 0. dx at elements that did not take part is not
   * their gradient (that is 0): callers must discard those planes.
   */
  batchNormBackwardMasked(x: number, dy: number, dx: number, N: number, C: number, HW: number, c0: number, c1: number,
    mean: number, invstd: number, gamma: number, counts: number, dgamma: number, dbeta: number): void;

  // ---- Activations (assembly/activation.ts), over n elements ----
  relu(x: number, y: number, n: number): void;
  /** dx = y > 0 ? dy : 0, with y the forward output. */
  reluBackward(y: number, dy: number, dx: number, n: number): void;
  leakyRelu(x: number, y: number, n: number, alpha: number): void;
  leakyReluBackward(x: number, dy: number, dx: number, n: number, alpha: number): void;
  sigmoid(x: number, y: number, n: number): void;
  /** dx = dy * y * (1 - y), with y the forward output. */
  sigmoidBackward(y: number, dy: number, dx: number, n: number): void;
  tanh(x: number, y: number, n: number): void;
  tanhBackward(y: number, dy: number, dx: number, n: number): void;
  clamp(x: number, y: number, n: number, lo: number, hi: number): void;
  /** dx = lo <= x <= hi ? dy : 0. */
  clampBackward(x: number, dy: number, dx: number, n: number, lo: number, hi: number): void;

  // ---- Pooling (assembly/pool.ts) ----
  /** argmax (int32) holds the input offset h*W+w within the plane of the maximum, or -1. */
  maxPool2dForward(desc: number, x: number, y: number, argmax: number, n0: number, n1: number): void;
  /** dx overwritten for images [n0,n1). */
  maxPool2dBackward(desc: number, dy: number, argmax: number, dx: number, n0: number, n1: number): void;
  avgPool2dForward(desc: number, x: number, y: number, n0: number, n1: number): void;
  avgPool2dBackward(desc: number, dy: number, dx: number, n0: number, n1: number): void;
  /** y[p] = mean of x[p, 0..HW) for planes p in [0, planes). */
  globalAvgPoolForward(x: number, y: number, planes: number, HW: number): void;
  globalAvgPoolBackward(dy: number, dx: number, planes: number, HW: number): void;
  globalMaxPoolForward(x: number, y: number, argmax: number, planes: number, HW: number): void;
  globalMaxPoolBackward(dy: number, argmax: number, dx: number, planes: number, HW: number): void;

  // ---- Loss (assembly/loss.ts) ----
  /** probs = softmax(logits) row-wise; losses[n] = -log probs[n, labels[n]] (labels int32, already validated). */
  softmaxCrossEntropy(logits: number, labels: number, N: number, C: number, probs: number, losses: number): void;
  /** dlogits = scale * (probs - onehot(labels)). */
  softmaxCrossEntropyBackward(probs: number, labels: number, N: number, C: number, scale: number, dlogits: number): void;
  /** out[n] (int32) = index of the first maximum of row n. */
  argmaxRows(x: number, N: number, C: number, out: number): void;

  // ---- Elementwise and reductions (assembly/elementwise.ts) ----
  fill(y: number, n: number, value: number): void;
  copy(x: number, y: number, n: number): void;
  add(a: number, b: number, y: number, n: number): void;
  sub(a: number, b: number, y: number, n: number): void;
  mul(a: number, b: number, y: number, n: number): void;
  /** y = alpha * x. */
  scale(x: number, y: number, n: number, alpha: number): void;
  /** y += alpha * x. */
  axpy(n: number, alpha: number, x: number, y: number): void;
  /** y[n, c, :] += bias[c]. */
  addBias(y: number, bias: number, N: number, C: number, HW: number): void;
  /** out[c] = beta * out[c] + sum over n and HW of x[n, c, :]. */
  channelSum(x: number, N: number, C: number, HW: number, out: number, beta: number): void;
  /** y[n, c, :] = x[n, c, :] * s[n * C + c]. */
  channelScale(x: number, s: number, y: number, N: number, C: number, HW: number): void;
  /** dx = dy * s (per channel, dx may be 0 to skip); ds[n * C + c] = sum over HW of dy * x. */
  channelScaleBackward(x: number, s: number, dy: number, dx: number, ds: number, N: number, C: number, HW: number): void;
  sum(x: number, n: number): number;
  sumSquares(x: number, n: number): number;
  /** Count of NaN and infinite values. */
  countNonFinite(x: number, n: number): number;
  /** mask[i] = 0 with probability p, else 1/(1-p), from a counter-based hash of (seed, i); y = x * mask. */
  dropoutForward(x: number, y: number, mask: number, n: number, p: number, seed: number): void;

  // ---- Inference over compact values (assembly/infer.ts) ----
  // A channel list of C channels holds, for image n at byte list + 4 n (C + 1), an int32 count and
  // then that many ascending channel ids. A compact value of C channels [N, C, H, W] holds, for image
  // n, the planes of the listed channels first, in list order; planes past the count are never read.
  /**
   * Compact conv (groups 1): for image n, y's planes [0, yCount) are, for each listed output m,
   * max(conv(x's listed planes, w[m, listed inputs]) + bias[m], lo) * gate[n * M + m] (bias and gate
   * 0 for none). `part` of `parts` computes one contiguous share of each image's listed outputs (the
   * shares cover them once; how they are cut depends on the build). wPacked (0 for none) holds
   * conv2dInferPack's arrangement of w, read for images whose output list is complete; w may be 0 when
   * wPacked is given (every weight is then read from wPacked), except for a kernel that covers its
   * compact input map (OH = OW = 1, KH = H, KW = W, no padding: dot products over w's rows). macs (0 for none):
   * float64 macs[n] = multiply-adds done for image n, OH*OW*KH*KW per (output, input) pair; returns their sum.
   * desc: writeConvInferDesc. With xPadded, x's planes are convInputPlane(g) (image n's listed planes
   * at x + n*C*rows*cols floats), zero outside the map; the conv reads them in place. With a padded y,
   * y's planes are rows x cols (image n at y + n*M*rows*cols floats) with the map at (top, left)
   * (rows >= top + OH, cols >= left + OW): the call writes the map cells only, so that the cells around
   * keep the zeros the caller put there once. scratch: conv2dInferScratchBytes (src/infer/scratch.ts).
   */
  conv2dInfer(desc: number, x: number, xList: number, w: number, wPacked: number, bias: number, lo: number, gate: number,
    y: number, yList: number, n0: number, n1: number, part: number, parts: number, macs: number, scratch: number): number;
  /**
   * Compact grouped (or depthwise) conv: desc is writeConvDesc (groups G dividing C and M, N unused);
   * w [M, C/G, KH, KW]. For image n, y's planes [0, yCount) are, for each listed output m of group
   * m / (M/G), max(conv(x's listed planes of that group, w[m]) + bias[m], lo) * gate[n * M + m] (bias
   * and gate 0 for none); x's and y's planes are compact (image n at x + n*C*H*W, y + n*M*OH*OW floats).
   * `part` of `parts` computes listed outputs [count*part/parts, count*(part+1)/parts). macs (0 for
   * none): float64 macs[n] = OH*OW*KH*KW per (listed output, listed input of its group) pair; returns
   * their sum. scratch: conv2dGroupedInferScratchBytes (src/infer/scratch.ts).
   */
  conv2dGroupedInfer(desc: number, x: number, xList: number, w: number, bias: number, lo: number, gate: number,
    y: number, yList: number, n0: number, n1: number, part: number, parts: number, macs: number, scratch: number): number;
  /** w [M, C, KH, KW] arranged for conv2dInfer into wPacked ((M + 5) * C * KH * KW floats). */
  conv2dInferPack(desc: number, w: number, wPacked: number): void;
  /**
   * LKAM switches for images [n0,n1): pre[m] = Σ_f fcW[m, f] feat[n, f] (float32, f ascending) + fcB[m];
   * s = rule & 1 ? sigmoid(pre) : clamp(pre, 0, 1); on when rule & 2 ? s >= threshold : s > threshold.
   * budget < 1 keeps, of the on switches, the floor(budget * M * C / inCount[n]) largest (ties: lower
   * index), inCount from inList (C channels; 0 means all). gate[n, m] = (rule & 4 ? 1 : s) if kept else 0; outList gets
   * the kept switches. macs[n] (float64, 0 for none) = F * M; returns their sum. scratch: 12 M + 192 bytes.
   */
  lkamSwitches(feat: number, F: number, fcW: number, fcB: number, M: number, rule: number, threshold: number, budget: number,
    inList: number, C: number, gate: number, outList: number, macs: number, n0: number, n1: number, scratch: number): number;
  /**
   * An LKAM's bank and pooling for images [n0,n1): the k 1x1 convolutions w [k, C] over x's listed planes plus
   * bias[j] (0 for none), pooled over a grid x grid of windows (per axis stride floor(S/grid), kernel
   * S - (grid-1)*stride, as LKAM.forward), max (kind 0, NaN propagates) or average (kind 1), to feat [N, k, grid, grid];
   * the maps are never stored. plane: writeMapPlane, H x W maps whose planes are `size` floats apart (image n
   * at x + n*C*size floats) and rows `cols` apart; x points at the first map pixel, and when cols > W the
   * cells between a row's end and the next row's start are zero (a padded plane). macs[n] (float64, 0
   * for none) = k * listed inputs * H * W; returns their sum. scratch: lkamBankPoolScratchBytes (src/infer/scratch.ts).
   */
  lkamBankPool(x: number, xList: number, C: number, plane: number, w: number, bias: number, k: number, grid: number, kind: number,
    feat: number, macs: number, n0: number, n1: number, scratch: number): number;
  /** Max (kind 0) or average (kind 1) pooling of each image's listed planes; y is compact with x's list. */
  pool2dInfer(desc: number, x: number, xList: number, y: number, kind: number, n0: number, n1: number): void;
  /** y [N, C] compact with x's list: y[n, j] = max (kind 0) or mean (kind 1) of x's plane j, for j < the count. */
  globalPoolInfer(x: number, xList: number, C: number, HW: number, kind: number, y: number, n0: number, n1: number): void;
  /** y (dense [N, C, HW], not overlapping x) = x's listed planes at their channels, zeros elsewhere. */
  scatterChannels(x: number, xList: number, C: number, HW: number, y: number, n0: number, n1: number): void;
  /** y (dense) = max(a + b, lo), each compact operand read as zeros at its unlisted channels. */
  addChannels(a: number, aList: number, b: number, bList: number, C: number, HW: number, lo: number, y: number, n0: number, n1: number): void;

  // ---- Optimizers (assembly/optim.ts), over n parameters ----
  /** PyTorch semantics; firstStep = 1 initialises the momentum buffer with the gradient. */
  sgdStep(p: number, g: number, buf: number, n: number, lr: number, momentum: number, dampening: number,
    weightDecay: number, nesterov: number, firstStep: number): void;
  /** Adam (decoupled = 0, L2 added to the gradient) or AdamW (decoupled = 1); bc1 = 1 - beta1^t, bc2 = 1 - beta2^t. */
  adamStep(p: number, g: number, m: number, v: number, n: number, lr: number, beta1: number, beta2: number,
    eps: number, weightDecay: number, decoupled: number, bc1: number, bc2: number): void;
}

export type KernelName = keyof Kernels;

/** Every kernel once; the key order is how worker threads are told which kernel to run. */
const KERNEL_SET: Record<KernelName, 0> = {
  gemm: 0,
  conv2dForward: 0, conv2dBackwardInput: 0, conv2dBackwardWeight: 0,
  conv2dForwardSparse: 0, conv2dBackwardInputSparse: 0, conv2dBackwardWeightSparse: 0,
  batchNormStats: 0, batchNormApply: 0, batchNormBackward: 0, batchNormBackwardMasked: 0,
  relu: 0, reluBackward: 0, leakyRelu: 0, leakyReluBackward: 0, sigmoid: 0, sigmoidBackward: 0,
  tanh: 0, tanhBackward: 0, clamp: 0, clampBackward: 0,
  maxPool2dForward: 0, maxPool2dBackward: 0, avgPool2dForward: 0, avgPool2dBackward: 0,
  globalAvgPoolForward: 0, globalAvgPoolBackward: 0, globalMaxPoolForward: 0, globalMaxPoolBackward: 0,
  softmaxCrossEntropy: 0, softmaxCrossEntropyBackward: 0, argmaxRows: 0,
  fill: 0, copy: 0, add: 0, sub: 0, mul: 0, scale: 0, axpy: 0, addBias: 0, channelSum: 0, channelScale: 0,
  channelScaleBackward: 0, sum: 0, sumSquares: 0, countNonFinite: 0, dropoutForward: 0,
  sgdStep: 0, adamStep: 0,
  conv2dInfer: 0, conv2dInferPack: 0, conv2dGroupedInfer: 0, lkamSwitches: 0, lkamBankPool: 0, pool2dInfer: 0, globalPoolInfer: 0, scatterChannels: 0, addChannels: 0,
};
export const KERNEL_NAMES: readonly KernelName[] = Object.keys(KERNEL_SET) as KernelName[];
