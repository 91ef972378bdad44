/** conv2d: forward and gradient. NCHW input, weight [M, C/groups, KH, KW], optional bias [M]. */
import { engine } from '../autograd/engine.js';
import { splitRange } from '../backend/backend.js';
import { CONV_DESC_INTS, convOutSize, writeConvDesc, type ConvGeometry } from '../backend/kernels.js';
import { convScratchBytes } from '../backend/scratch.js';
import { ShapeError, shapeString, type Tensor } from '../tensor/tensor.js';
import { expectFloat, expectRank, pair } from './dispatch.js';
import { macMeter } from './meter.js';

export interface Conv2dOptions {
  readonly stride?: number | readonly [number, number];
  /** Symmetric zero padding per axis, or 'same' (stride 1 only). */
  readonly padding?: number | readonly [number, number] | 'same';
  readonly dilation?: number | readonly [number, number];
  readonly groups?: number;
}

export function conv2dGeometry(xShape: readonly number[], wShape: readonly number[], opts: Conv2dOptions = {}): ConvGeometry {
  const op = 'conv2d';
  const [N, C, H, W] = xShape as [number, number, number, number];
  const [M, Cg, KH, KW] = wShape as [number, number, number, number];
  const groups = opts.groups ?? 1;
  if (!Number.isInteger(groups) || groups < 1) throw new RangeError(`${op}: groups ${groups} should be a whole number >= 1`);
  const [strideH, strideW] = pair(opts.stride ?? 1, 'stride', op);
  const [dilationH, dilationW] = pair(opts.dilation ?? 1, 'dilation', op);
  if (strideH < 1 || strideW < 1 || dilationH < 1 || dilationW < 1) throw new RangeError(`${op}: stride and dilation should be >= 1`);
  let padH: number;
  let padW: number;
  if (opts.padding === 'same') {
    if (strideH !== 1 || strideW !== 1) throw new RangeError(`${op}: padding 'same' needs stride 1`);
    if ((dilationH * (KH - 1)) % 2 !== 0 || (dilationW * (KW - 1)) % 2 !== 0) throw new RangeError(`${op}: padding 'same' needs odd kernel sizes`);
    padH = (dilationH * (KH - 1)) / 2;
    padW = (dilationW * (KW - 1)) / 2;
  } else {
    [padH, padW] = pair(opts.padding ?? 0, 'padding', op);
  }
  if (C % groups !== 0 || M % groups !== 0) throw new ShapeError(`${op}: ${C} input and ${M} output channels are not both divisible by groups=${groups}`);
  if (Cg * groups !== C) {
    throw new ShapeError(`${op}: input ${shapeString(xShape)} has ${C} channels but weight ${shapeString(wShape)} expects ${Cg * groups} (${Cg} per group x ${groups} groups)`);
  }
  const OH = convOutSize(H, KH, strideH, padH, padH, dilationH);
  const OW = convOutSize(W, KW, strideW, padW, padW, dilationW);
  if (OH < 1 || OW < 1) throw new ShapeError(`${op}: input ${shapeString(xShape)} is smaller than the ${KH}x${KW} kernel (dilation ${dilationH}x${dilationW}, padding ${padH}x${padW})`);
  return { N, C, H, W, M, KH, KW, strideH, strideW, padTop: padH, padLeft: padW, dilationH, dilationW, groups, OH, OW };
}

export function conv2d(x: Tensor, w: Tensor, bias: Tensor | null = null, opts: Conv2dOptions = {}): Tensor {
  const op = 'conv2d';
  expectRank(op, 'input', x, 4);
  expectRank(op, 'weight', w, 4);
  expectFloat(op, 'input', x);
  expectFloat(op, 'weight', w);
  const g = conv2dGeometry(x.shape, w.shape, opts);
  if (bias !== null) {
    expectFloat(op, 'bias', bias);
    if (bias.size !== g.M) throw new ShapeError(`${op}: bias ${bias.describe()} should have ${g.M} elements`);
  }
  const e = engine();
  const b = e.backend;
  const desc = e.alloc([CONV_DESC_INTS], 'int32');
  writeConvDesc(b.mem.i32, desc.ptr, g);
  const y = e.alloc([g.N, g.M, g.OH, g.OW]);
  const scratch = b.scratch(convScratchBytes(g));
  const biasPtr = bias === null ? 0 : bias.ptr;
  if (g.N >= b.threads) {
    b.parallel('conv2dForward', splitRange(g.N, b.threads).map(([n0, n1], t) => [desc.ptr, x.ptr, w.ptr, biasPtr, y.ptr, n0, n1, 0, g.M, scratch[t] as number]));
  } else {
    b.parallel('conv2dForward', splitRange(g.M, b.threads).map(([m0, m1], t) => [desc.ptr, x.ptr, w.ptr, biasPtr, y.ptr, 0, g.N, m0, m1, scratch[t] as number]));
  }
  macMeter.addEach(g.OH * g.OW * g.M * (g.C / g.groups) * g.KH * g.KW);
  if (e.tracks(x, w, bias)) {
    y.requiresGrad = true;
    e.record({
      op,
      inputs: bias === null ? [x, w] : [x, w, bias],
      output: y,
      backward: (dy) => {
        const dx = x.requiresGrad ? conv2dBackwardInput(desc.ptr, g, dy, w) : null;
        const dw = w.requiresGrad ? conv2dBackwardWeight(desc.ptr, g, x, dy) : null;
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

function conv2dBackwardInput(desc: number, g: ConvGeometry, dy: Tensor, w: Tensor): Tensor {
  const e = engine();
  const b = e.backend;
  const dx = e.alloc([g.N, g.C, g.H, g.W]);
  const scratch = b.scratch(convScratchBytes(g));
  if (g.N >= b.threads) {
    b.parallel('conv2dBackwardInput', splitRange(g.N, b.threads).map(([n0, n1], t) => [desc, dy.ptr, w.ptr, dx.ptr, n0, n1, 0, g.C, scratch[t] as number]));
  } else {
    b.parallel('conv2dBackwardInput', splitRange(g.C, b.threads).map(([c0, c1], t) => [desc, dy.ptr, w.ptr, dx.ptr, 0, g.N, c0, c1, scratch[t] as number]));
  }
  return dx;
}

function conv2dBackwardWeight(desc: number, g: ConvGeometry, x: Tensor, dy: Tensor): Tensor {
  const e = engine();
  const b = e.backend;
  const wShape = [g.M, g.C / g.groups, g.KH, g.KW];
  const dw = e.alloc(wShape);
  const scratch = b.scratch(convScratchBytes(g));
  if (g.N >= b.threads && b.threads > 1) {
    // Images split across threads; each thread sums into its own buffer, added up afterwards.
    const ranges = splitRange(g.N, b.threads);
    const partials = ranges.map((_, t) => (t === 0 ? dw : e.alloc(wShape)));
    b.parallel('conv2dBackwardWeight', ranges.map(([n0, n1], t) => [desc, x.ptr, dy.ptr, (partials[t] as Tensor).ptr, n0, n1, 0, g.M, 0, scratch[t] as number]));
    for (let t = 1; t < partials.length; t++) b.kernels.axpy(dw.size, 1, (partials[t] as Tensor).ptr, dw.ptr);
  } else {
    b.parallel('conv2dBackwardWeight', splitRange(g.M, b.threads).map(([m0, m1], t) => [desc, x.ptr, dy.ptr, dw.ptr, 0, g.N, m0, m1, 0, scratch[t] as number]));
  }
  return dw;
}
