// Channel-sparse convolutions; see src/backend/kernels.ts for the contract.
//
// Per image, the active input planes, the active weight block and (backward) the active output
// gradients are gathered into compact buffers; the dense kernel runs on a descriptor of the compact
// sizes (one image, groups 1); its result is scattered back. Gathers cost O(channels x pixels) and
// O(weights) per image against O(weights x pixels) multiply-adds, so skipping a kernel saves its time.
//
// Scratch layout (src/backend/scratch.ts, sparseConvScratchBytes): descriptor | input planes |
// weight block | output block | bias | the dense kernel's own scratch.

import { conv2dBackwardInput, conv2dBackwardWeight, conv2dForward } from './conv';

const F_N: i32 = 0;
const F_C: i32 = 1;
const F_H: i32 = 2;
const F_W: i32 = 3;
const F_M: i32 = 4;
const F_KH: i32 = 5;
const F_KW: i32 = 6;
const F_GROUPS: i32 = 13;
const F_OH: i32 = 14;
const F_OW: i32 = 15;
const DESC_INTS: i32 = 16;

@inline function field(desc: usize, i: i32): i32 {
  return load<i32>(desc + (<usize>i << 2));
}

@inline function region(floats: usize): usize {
  return (floats * 4 + 63) & ~(<usize>63);
}

@inline function copyFloats(d: usize, s: usize, n: i32): void {
  memory.copy(d, s, <usize>n << 2);
}

@inline function zeroFloats(d: usize, n: i32): void {
  memory.fill(d, 0, <usize>n << 2);
}

// Where each part of the scratch block starts: wasm globals, so every worker instance has its own.
let sDesc: usize = 0;
let sPlanes: usize = 0;
let sWeights: usize = 0;
let sOut: usize = 0;
let sBias: usize = 0;
let sInner: usize = 0;

function plan(desc: usize, scratch: usize): void {
  const C = field(desc, F_C), M = field(desc, F_M);
  const HW = field(desc, F_H) * field(desc, F_W);
  const P = field(desc, F_OH) * field(desc, F_OW);
  const taps = field(desc, F_KH) * field(desc, F_KW);
  sDesc = scratch;
  sPlanes = sDesc + region(DESC_INTS);
  sWeights = sPlanes + region(<usize>max<i32>(C * HW, M * P));
  sOut = sWeights + region(<usize>(M * C * taps));
  sBias = sOut + region(<usize>max<i32>(M * P, C * HW));
  sInner = sBias + region(<usize>M);
}

/** The compact descriptor: one image, `cin` input and `cout` output channels, groups 1. */
function compactDesc(desc: usize, cin: i32, cout: i32): void {
  memory.copy(sDesc, desc, <usize>DESC_INTS << 2);
  store<i32>(sDesc + (<usize>F_N << 2), 1);
  store<i32>(sDesc + (<usize>F_C << 2), cin);
  store<i32>(sDesc + (<usize>F_M << 2), cout);
  store<i32>(sDesc + (<usize>F_GROUPS << 2), 1);
}

/** w[outs][:, ins] into a dense [nOut, nIn, taps] block. */
function gatherWeights(w: usize, C: i32, taps: i32, outs: usize, nOut: i32, ins: usize, nIn: i32, dst: usize): void {
  let d = dst;
  for (let i = 0; i < nOut; i++) {
    const row = w + (<usize>(load<i32>(outs + (<usize>i << 2)) * C * taps) << 2);
    for (let j = 0; j < nIn; j++) {
      copyFloats(d, row + (<usize>(load<i32>(ins + (<usize>j << 2)) * taps) << 2), taps);
      d += <usize>taps << 2;
    }
  }
}

/** Planes src[idx[k]] (each `plane` floats) into consecutive planes at dst. */
function gatherPlanes(src: usize, idx: usize, n: i32, plane: i32, dst: usize): void {
  for (let k = 0; k < n; k++) {
    copyFloats(dst + (<usize>(k * plane) << 2), src + (<usize>(load<i32>(idx + (<usize>k << 2)) * plane) << 2), plane);
  }
}

/** Consecutive planes at src back to dst[idx[k]], the other `total` planes zeroed. */
function scatterPlanes(src: usize, idx: usize, n: i32, plane: i32, total: i32, dst: usize): void {
  zeroFloats(dst, total * plane);
  for (let k = 0; k < n; k++) {
    copyFloats(dst + (<usize>(load<i32>(idx + (<usize>k << 2)) * plane) << 2), src + (<usize>(k * plane) << 2), plane);
  }
}

export function conv2dForwardSparse(desc: usize, x: usize, w: usize, bias: usize, y: usize, n0: i32, n1: i32,
  outIdx: usize, outCount: usize, inIdx: usize, inCount: usize, scratch: usize): f64 {
  const C = field(desc, F_C), M = field(desc, F_M);
  const HW = field(desc, F_H) * field(desc, F_W);
  const P = field(desc, F_OH) * field(desc, F_OW);
  const taps = field(desc, F_KH) * field(desc, F_KW);
  plan(desc, scratch);
  let macs: f64 = 0;
  for (let n = n0; n < n1; n++) {
    const nOut = load<i32>(outCount + (<usize>n << 2));
    const nIn = load<i32>(inCount + (<usize>n << 2));
    const outs = outIdx + (<usize>(n * M) << 2);
    const ins = inIdx + (<usize>(n * C) << 2);
    const yImage = y + (<usize>(n * M * P) << 2);
    if (nOut == 0) {
      zeroFloats(yImage, M * P);
      continue;
    }
    if (nIn == 0) {
      // No input: each active output is its bias.
      zeroFloats(yImage, M * P);
      if (bias != 0) {
        for (let i = 0; i < nOut; i++) {
          const m = load<i32>(outs + (<usize>i << 2));
          const b = load<f32>(bias + (<usize>m << 2));
          const row = yImage + (<usize>(m * P) << 2);
          for (let p = 0; p < P; p++) store<f32>(row + (<usize>p << 2), b);
        }
      }
      continue;
    }
    compactDesc(desc, nIn, nOut);
    gatherPlanes(x + (<usize>(n * C * HW) << 2), ins, nIn, HW, sPlanes);
    gatherWeights(w, C, taps, outs, nOut, ins, nIn, sWeights);
    let b: usize = 0;
    if (bias != 0) {
      for (let i = 0; i < nOut; i++) store<f32>(sBias + (<usize>i << 2), load<f32>(bias + (<usize>load<i32>(outs + (<usize>i << 2)) << 2)));
      b = sBias;
    }
    conv2dForward(sDesc, sPlanes, sWeights, b, sOut, 0, 1, 0, nOut, sInner);
    scatterPlanes(sOut, outs, nOut, P, M, yImage);
    macs += <f64>nOut * <f64>nIn * <f64>taps * <f64>P;
  }
  return macs;
}

export function conv2dBackwardInputSparse(desc: usize, dy: usize, w: usize, dx: usize, n0: i32, n1: i32,
  outIdx: usize, outCount: usize, inIdx: usize, inCount: usize, scratch: usize): f64 {
  const C = field(desc, F_C), M = field(desc, F_M);
  const HW = field(desc, F_H) * field(desc, F_W);
  const P = field(desc, F_OH) * field(desc, F_OW);
  const taps = field(desc, F_KH) * field(desc, F_KW);
  plan(desc, scratch);
  let macs: f64 = 0;
  for (let n = n0; n < n1; n++) {
    const nOut = load<i32>(outCount + (<usize>n << 2));
    const nIn = load<i32>(inCount + (<usize>n << 2));
    const outs = outIdx + (<usize>(n * M) << 2);
    const ins = inIdx + (<usize>(n * C) << 2);
    const dxImage = dx + (<usize>(n * C * HW) << 2);
    if (nOut == 0 || nIn == 0) {
      zeroFloats(dxImage, C * HW);
      continue;
    }
    compactDesc(desc, nIn, nOut);
    gatherPlanes(dy + (<usize>(n * M * P) << 2), outs, nOut, P, sPlanes);
    gatherWeights(w, C, taps, outs, nOut, ins, nIn, sWeights);
    conv2dBackwardInput(sDesc, sPlanes, sWeights, sOut, 0, 1, 0, nIn, sInner);
    scatterPlanes(sOut, ins, nIn, HW, C, dxImage);
    macs += <f64>nOut * <f64>nIn * <f64>taps * <f64>P;
  }
  return macs;
}

export function conv2dBackwardWeightSparse(desc: usize, x: usize, dy: usize, dw: usize, n0: i32, n1: i32,
  outIdx: usize, outCount: usize, inIdx: usize, inCount: usize, beta: f32, scratch: usize): f64 {
  const C = field(desc, F_C), M = field(desc, F_M);
  const HW = field(desc, F_H) * field(desc, F_W);
  const P = field(desc, F_OH) * field(desc, F_OW);
  const taps = field(desc, F_KH) * field(desc, F_KW);
  plan(desc, scratch);
  if (beta == 0) zeroFloats(dw, M * C * taps);
  let macs: f64 = 0;
  // The gathered dy planes sit after the gathered x planes, in the `out` region.
  for (let n = n0; n < n1; n++) {
    const nOut = load<i32>(outCount + (<usize>n << 2));
    const nIn = load<i32>(inCount + (<usize>n << 2));
    if (nOut == 0 || nIn == 0) continue;
    const outs = outIdx + (<usize>(n * M) << 2);
    const ins = inIdx + (<usize>(n * C) << 2);
    compactDesc(desc, nIn, nOut);
    gatherPlanes(x + (<usize>(n * C * HW) << 2), ins, nIn, HW, sPlanes);
    gatherPlanes(dy + (<usize>(n * M * P) << 2), outs, nOut, P, sOut);
    conv2dBackwardWeight(sDesc, sPlanes, sOut, sWeights, 0, 1, 0, nOut, 0, sInner);
    // dw[outs][:, ins] += the compact block.
    let s = sWeights;
    for (let i = 0; i < nOut; i++) {
      const row = dw + (<usize>(load<i32>(outs + (<usize>i << 2)) * C * taps) << 2);
      for (let j = 0; j < nIn; j++) {
        const d = row + (<usize>(load<i32>(ins + (<usize>j << 2)) * taps) << 2);
        for (let t = 0; t < taps; t++) {
          const o = <usize>t << 2;
          store<f32>(d + o, load<f32>(d + o) + load<f32>(s + o));
        }
        s += <usize>taps << 2;
      }
    }
    macs += <f64>nOut * <f64>nIn * <f64>taps * <f64>P;
  }
  return macs;
}
