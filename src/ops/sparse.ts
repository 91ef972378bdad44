/**
 * Per-image channel-sparse convolution and masked batch norm: the ops that let a gated network skip,
 * in training, the work of kernels that are switched off for an image.
 *
 * `conv2dSparse` computes, for each image, only its active output channels from only its active
 * input channels (zeros elsewhere), and its gradients likewise. `batchNormMasked` normalises each
 * channel over the images in which it is active. Together they equal the masked dense computation
 * (dense conv, inactive outputs zeroed, same masked statistics), which `conv2dMasked` gives.
 */
import { engine } from '../autograd/engine.js';
import { splitRange } from '../backend/backend.js';
import { CONV_DESC_INTS, writeConvDesc, type ConvGeometry } from '../backend/kernels.js';
import { sparseConvScratchBytes } from '../backend/sparse-scratch.js';
import { ChannelSet, ShapeError, type Tensor } from '../tensor/tensor.js';
import { batchNorm, type BatchNormState } from './batchnorm.js';
import { conv2d, conv2dGeometry, type Conv2dOptions } from './conv.js';
import { channelScale } from './elementwise.js';
import { expectFloat, expectRank, overRanges } from './dispatch.js';
import { macMeter } from './meter.js';

/** Multiply-adds done by sparse convolutions since the counter was last reset, as the kernels report them. */
export const sparseCounters = { forwardMacs: 0, backwardInputMacs: 0, backwardWeightMacs: 0 };
export function resetSparseCounters(): void {
  sparseCounters.forwardMacs = 0;
  sparseCounters.backwardInputMacs = 0;
  sparseCounters.backwardWeightMacs = 0;
}

/** Index lists in linear memory: for image n, idx[n*C .. n*C+count[n]) are its active channels, ascending. */
function indexLists(set: ChannelSet): { idx: Tensor; count: Tensor } {
  const e = engine();
  const idx = e.alloc([set.N * set.C], 'int32');
  const count = e.alloc([set.N], 'int32');
  const iv = idx.i32();
  const cv = count.i32();
  for (let n = 0; n < set.N; n++) {
    let k = 0;
    for (let c = 0; c < set.C; c++) if (set.active[n * set.C + c] === 1) iv[n * set.C + k++] = c;
    cv[n] = k;
  }
  return { idx, count };
}

function checkSet(op: string, what: string, set: ChannelSet, N: number, C: number): void {
  if (set.N !== N || set.C !== C) throw new ShapeError(`${op}: ${what} channel set is ${set.N}x${set.C}, expected ${N}x${C}`);
}

/**
 * conv2d that, for image n, computes only output channels with outSet.active[n, m] = 1 from input
 * channels with inSet.active[n, c] = 1; the other outputs are zero. groups must be 1.
 */
export function conv2dSparse(x: Tensor, w: Tensor, bias: Tensor | null, inSet: ChannelSet | null, outSet: ChannelSet, opts: Conv2dOptions = {}): Tensor {
  const op = 'conv2dSparse';
  expectRank(op, 'input', x, 4);
  expectRank(op, 'weight', w, 4);
  expectFloat(op, 'input', x);
  expectFloat(op, 'weight', w);
  const g = conv2dGeometry(x.shape, w.shape, opts);
  if (g.groups !== 1) throw new ShapeError(`${op}: grouped convolutions (groups=${g.groups}) are not supported`);
  const ins = inSet ?? ChannelSet.all(g.N, g.C);
  checkSet(op, 'input', ins, g.N, g.C);
  checkSet(op, 'output', outSet, g.N, g.M);
  if (bias !== null && bias.size !== g.M) throw new ShapeError(`${op}: bias ${bias.describe()} should have ${g.M} elements`);
  const e = engine();
  const b = e.backend;
  const desc = e.alloc([CONV_DESC_INTS], 'int32');
  writeConvDesc(b.mem.i32, desc.ptr, g);
  const inL = indexLists(ins);
  const outL = indexLists(outSet);
  const y = e.alloc([g.N, g.M, g.OH, g.OW]);
  const scratch = b.scratch(sparseConvScratchBytes(g));
  const ranges = splitRange(g.N, b.threads);
  sparseCounters.forwardMacs += b.parallel('conv2dForwardSparse', ranges.map(([n0, n1], t) =>
    [desc.ptr, x.ptr, w.ptr, bias === null ? 0 : bias.ptr, y.ptr, n0, n1, outL.idx.ptr, outL.count.ptr, inL.idx.ptr, inL.count.ptr, scratch[t] as number]));
  y.channels = outSet;
  if (macMeter.running) {
    const taps = g.KH * g.KW * g.OH * g.OW;
    for (let n = 0; n < g.N; n++) macMeter.add(n, (outSet.counts[n] as number) * (ins.counts[n] as number) * taps);
  }
  if (e.tracks(x, w, bias)) {
    y.requiresGrad = true;
    e.record({
      op,
      inputs: bias === null ? [x, w] : [x, w, bias],
      output: y,
      backward: (dy) => {
        let dx: Tensor | null = null;
        if (x.requiresGrad) {
          dx = e.alloc(x.shape);
          sparseCounters.backwardInputMacs += b.parallel('conv2dBackwardInputSparse', ranges.map(([n0, n1], t) =>
            [desc.ptr, dy.ptr, w.ptr, dx!.ptr, n0, n1, outL.idx.ptr, outL.count.ptr, inL.idx.ptr, inL.count.ptr, scratch[t] as number]));
        }
        let dw: Tensor | null = null;
        if (w.requiresGrad) dw = sparseWeightGrad(desc.ptr, g, x, dy, outL, inL, ranges, scratch);
        let db: Tensor | null = null;
        if (bias?.requiresGrad === true) {
          db = e.alloc([g.M]);
          b.kernels.channelSum(dy.ptr, g.N, g.M, g.OH * g.OW, db.ptr, 0);
        }
        return [dx, dw, db];
      },
    });
  }
  return y;
}

function sparseWeightGrad(desc: number, g: ConvGeometry, x: Tensor, dy: Tensor, outL: { idx: Tensor; count: Tensor }, inL: { idx: Tensor; count: Tensor },
  ranges: Array<[number, number]>, scratch: readonly number[]): Tensor {
  const e = engine();
  const b = e.backend;
  const wShape = [g.M, g.C, g.KH, g.KW];
  const partials = ranges.map(() => e.alloc(wShape));
  sparseCounters.backwardWeightMacs += b.parallel('conv2dBackwardWeightSparse', ranges.map(([n0, n1], t) =>
    [desc, x.ptr, dy.ptr, (partials[t] as Tensor).ptr, n0, n1, outL.idx.ptr, outL.count.ptr, inL.idx.ptr, inL.count.ptr, 0, scratch[t] as number]));
  const dw = partials[0] as Tensor;
  for (let t = 1; t < partials.length; t++) b.kernels.axpy(dw.size, 1, (partials[t] as Tensor).ptr, dw.ptr);
  return dw;
}

/** The masked dense twin of conv2dSparse: a dense conv whose inactive outputs are then zeroed. */
export function conv2dMasked(x: Tensor, w: Tensor, bias: Tensor | null, outSet: ChannelSet, opts: Conv2dOptions = {}): Tensor {
  const z = conv2d(x, w, bias, opts);
  const mask = engine().tensor(outSet.active, [outSet.N, outSet.C]);
  const y = channelScale(z, mask);
  y.channels = outSet;
  return y;
}

/**
 * Batch norm whose statistics for channel c use only the images in which c is active (training);
 * running statistics are updated only for channels active somewhere in the batch. The input must be
 * zero at inactive planes, and so must the incoming gradient (a gate of 0 guarantees both).
 */
export function batchNormMasked(x: Tensor, s: BatchNormState, active: ChannelSet, training: boolean): Tensor {
  const op = 'batchNormMasked';
  expectRank(op, 'input', x, 4);
  const [N, C] = x.shape as [number, number];
  checkSet(op, 'active', active, N, C);
  const e = engine();
  if (!training) return batchNorm(x, s, false);
  const HW = x.size / Math.max(1, N * C);
  const mem = e.backend.mem;
  const y = e.alloc(x.shape);
  const mean = e.alloc([C]);
  const variance = e.alloc([C]);
  const invstd = e.alloc([C]);
  const scale = e.alloc([C]);
  const shift = e.alloc([C]);
  const counts = e.alloc([C]);
  overRanges('batchNormStats', C, (c0, c1) => [x.ptr, N, C, HW, c0, c1, mean.ptr, variance.ptr]);
  {
    const f = mem.f32;
    const gm = s.gamma.ptr >>> 2, bt = s.beta.ptr >>> 2, rm = s.runningMean.ptr >>> 2, rv = s.runningVar.ptr >>> 2;
    const m = mean.ptr >>> 2, v = variance.ptr >>> 2, is = invstd.ptr >>> 2, sc = scale.ptr >>> 2, sh = shift.ptr >>> 2, ct = counts.ptr >>> 2;
    for (let c = 0; c < C; c++) {
      let images = 0;
      for (let n = 0; n < N; n++) images += active.active[n * C + c] as number;
      const count = images * HW;
      f[ct + c] = count;
      let mu = 0;
      let va = 1;
      if (count > 0) {
        // Plain statistics over all N images, inactive planes being zeros, rescaled to the active ones.
        const r = (N * HW) / count;
        const allMean = f[m + c] as number;
        const allSq = (f[v + c] as number) + allMean * allMean;
        mu = allMean * r;
        va = Math.max(0, allSq * r - mu * mu);
        if (count > 1) {
          f[rm + c] = (1 - s.momentum) * (f[rm + c] as number) + s.momentum * mu;
          f[rv + c] = (1 - s.momentum) * (f[rv + c] as number) + s.momentum * va * (count / (count - 1));
        }
      }
      f[m + c] = mu;
      f[v + c] = va;
      const inv = 1 / Math.sqrt(va + s.eps);
      f[is + c] = inv;
      const k = (f[gm + c] as number) * inv;
      f[sc + c] = k;
      f[sh + c] = (f[bt + c] as number) - mu * k;
    }
  }
  overRanges('batchNormApply', C, (c0, c1) => [x.ptr, y.ptr, N, C, HW, c0, c1, scale.ptr, shift.ptr]);
  if (e.tracks(x, s.gamma, s.beta)) {
    y.requiresGrad = true;
    e.record({
      op, inputs: [x, s.gamma, s.beta], output: y,
      backward: (dy) => {
        const dx = e.alloc(x.shape);
        const dgamma = e.alloc([C]);
        const dbeta = e.alloc([C]);
        overRanges('batchNormBackwardMasked', C, (c0, c1) => [x.ptr, dy.ptr, dx.ptr, N, C, HW, c0, c1, mean.ptr, invstd.ptr, s.gamma.ptr, counts.ptr, dgamma.ptr, dbeta.ptr]);
        return [x.requiresGrad ? dx : null, dgamma, dbeta];
      },
    });
  }
  return y;
}
