// Kernels of this family; see src/backend/kernels.ts for the contract.
//
// Maximum rule everywhere: NaN counts as greater than any number, and the first maximum in
// row-major window order wins ties. A window wholly in padding gives -Infinity and argmax -1 (max)
// or 0 (average). countIncludePad = 1 divides by KH * KW; 0 divides by the in-image element count.

import { rowArgmax } from './vmath';

@inline function descField(desc: usize, i: i32): i32 {
  return load<i32>(desc + (<usize>i << 2));
}

@inline function zeroPlane(p: usize, len: i32): void {
  if (len > 0) memory.fill(p, 0, <usize>len << 2);
}

/** Four floats at p, p + stride, p + 2 stride, p + 3 stride (stride in floats); reads nothing else. */
@inline function loadStrided(p: usize, stride: i32): v128 {
  if (stride == 1) return v128.load(p);
  if (stride == 2) return v128.shuffle<f32>(v128.load(p), v128.load(p, 12), 0, 2, 5, 7);
  const s = <usize>stride << 2;
  let v = f32x4.splat(load<f32>(p));
  v = f32x4.replace_lane(v, 1, load<f32>(p + s));
  v = f32x4.replace_lane(v, 2, load<f32>(p + 2 * s));
  return f32x4.replace_lane(v, 3, load<f32>(p + 3 * s));
}

/** The first index of the interior outputs (windows wholly inside [0, size)) and one past the last. */
@inline function interiorStart(pad: i32, stride: i32): i32 {
  return (pad + stride - 1) / stride;
}
@inline function interiorEnd(size: i32, kernel: i32, pad: i32, stride: i32, out: i32): i32 {
  const last = size - kernel + pad;
  if (last < 0) return 0;
  return min<i32>(last / stride + 1, out);
}

export function maxPool2dForward(desc: usize, x: usize, y: usize, argmax: usize, n0: i32, n1: i32): void {
  const C = descField(desc, 1), H = descField(desc, 2), W = descField(desc, 3);
  const KH = descField(desc, 4), KW = descField(desc, 5), sH = descField(desc, 6), sW = descField(desc, 7);
  const pT = descField(desc, 8), pL = descField(desc, 9), OH = descField(desc, 10), OW = descField(desc, 11);
  const owLo = interiorStart(pL, sW);
  const owHi = interiorEnd(W, KW, pL, sW, OW);
  const negInf = f32x4.splat(-Infinity);
  const lanes = i32x4(0, sW, 2 * sW, 3 * sW);
  for (let plane = <usize>n0 * <usize>C; plane < <usize>n1 * <usize>C; plane++) {
    const xp = x + (plane * <usize>H * <usize>W << 2);
    const yp = y + (plane * <usize>OH * <usize>OW << 2);
    const ap = argmax + (plane * <usize>OH * <usize>OW << 2);
    for (let oh = 0; oh < OH; oh++) {
      const h0 = oh * sH - pT;
      const hs = max<i32>(h0, 0), he = min<i32>(h0 + KH, H);
      const yr = yp + (<usize>oh * <usize>OW << 2);
      const ar = ap + (<usize>oh * <usize>OW << 2);
      let ow = 0;
      while (ow < OW) {
        if (ow >= owLo && ow + 4 <= owHi && hs < he) {
          const w0 = ow * sW - pL;
          let best = negInf;
          let idx = i32x4.add(i32x4.splat(hs * W + w0), lanes);
          for (let h = hs; h < he; h++) {
            for (let kw = 0; kw < KW; kw++) {
              const at = h * W + w0 + kw;
              const v = loadStrided(xp + (<usize>at << 2), sW);
              const m = v128.or(f32x4.gt(v, best), v128.and(f32x4.ne(v, v), f32x4.eq(best, best)));
              best = v128.bitselect(v, best, m);
              idx = v128.bitselect(i32x4.add(i32x4.splat(at), lanes), idx, m);
            }
          }
          v128.store(yr + (<usize>ow << 2), best);
          v128.store(ar + (<usize>ow << 2), idx);
          ow += 4;
          continue;
        }
        const w0 = ow * sW - pL;
        const ws = max<i32>(w0, 0), we = min<i32>(w0 + KW, W);
        let best: f32 = -Infinity;
        let idx = -1;
        if (hs < he && ws < we) {
          idx = hs * W + ws;
          for (let h = hs; h < he; h++) {
            for (let w = ws; w < we; w++) {
              const v = load<f32>(xp + (<usize>(h * W + w) << 2));
              if (v > best || (v != v && best == best)) {
                best = v;
                idx = h * W + w;
              }
            }
          }
        }
        store<f32>(yr + (<usize>ow << 2), best);
        store<i32>(ar + (<usize>ow << 2), idx);
        ow++;
      }
    }
  }
}

export function maxPool2dBackward(desc: usize, dy: usize, argmax: usize, dx: usize, n0: i32, n1: i32): void {
  const C = descField(desc, 1), H = descField(desc, 2), W = descField(desc, 3);
  const OH = descField(desc, 10), OW = descField(desc, 11);
  const outs = OH * OW;
  for (let plane = <usize>n0 * <usize>C; plane < <usize>n1 * <usize>C; plane++) {
    const dxp = dx + (plane * <usize>H * <usize>W << 2);
    const o = plane * <usize>outs << 2;
    zeroPlane(dxp, H * W);
    for (let i = 0; i < outs; i++) {
      const a = load<i32>(argmax + o + (<usize>i << 2));
      if (a >= 0) {
        const d = dxp + (<usize>a << 2);
        store<f32>(d, load<f32>(d) + load<f32>(dy + o + (<usize>i << 2)));
      }
    }
  }
}

export function avgPool2dForward(desc: usize, x: usize, y: usize, n0: i32, n1: i32): void {
  const C = descField(desc, 1), H = descField(desc, 2), W = descField(desc, 3);
  const KH = descField(desc, 4), KW = descField(desc, 5), sH = descField(desc, 6), sW = descField(desc, 7);
  const pT = descField(desc, 8), pL = descField(desc, 9), OH = descField(desc, 10), OW = descField(desc, 11);
  const includePad = descField(desc, 12) != 0;
  const owLo = interiorStart(pL, sW);
  const owHi = interiorEnd(W, KW, pL, sW, OW);
  for (let plane = <usize>n0 * <usize>C; plane < <usize>n1 * <usize>C; plane++) {
    const xp = x + (plane * <usize>H * <usize>W << 2);
    const yp = y + (plane * <usize>OH * <usize>OW << 2);
    for (let oh = 0; oh < OH; oh++) {
      const h0 = oh * sH - pT;
      const hs = max<i32>(h0, 0), he = min<i32>(h0 + KH, H);
      const yr = yp + (<usize>oh * <usize>OW << 2);
      let ow = 0;
      while (ow < OW) {
        if (ow >= owLo && ow + 4 <= owHi && hs < he) {
          const w0 = ow * sW - pL;
          let acc = f32x4.splat(0);
          for (let h = hs; h < he; h++) {
            for (let kw = 0; kw < KW; kw++) acc = f32x4.add(acc, loadStrided(xp + (<usize>(h * W + w0 + kw) << 2), sW));
          }
          const count = includePad ? KH * KW : (he - hs) * KW;
          v128.store(yr + (<usize>ow << 2), f32x4.div(acc, f32x4.splat(<f32>count)));
          ow += 4;
          continue;
        }
        const w0 = ow * sW - pL;
        const ws = max<i32>(w0, 0), we = min<i32>(w0 + KW, W);
        let s: f32 = 0;
        for (let h = hs; h < he; h++) {
          for (let w = ws; w < we; w++) s += load<f32>(xp + (<usize>(h * W + w) << 2));
        }
        const count = includePad ? KH * KW : max<i32>(he - hs, 0) * max<i32>(we - ws, 0);
        store<f32>(yr + (<usize>ow << 2), count > 0 ? s / <f32>count : 0);
        ow++;
      }
    }
  }
}

export function avgPool2dBackward(desc: usize, dy: usize, dx: usize, n0: i32, n1: i32): void {
  const C = descField(desc, 1), H = descField(desc, 2), W = descField(desc, 3);
  const KH = descField(desc, 4), KW = descField(desc, 5), sH = descField(desc, 6), sW = descField(desc, 7);
  const pT = descField(desc, 8), pL = descField(desc, 9), OH = descField(desc, 10), OW = descField(desc, 11);
  const includePad = descField(desc, 12) != 0;
  for (let plane = <usize>n0 * <usize>C; plane < <usize>n1 * <usize>C; plane++) {
    const dxp = dx + (plane * <usize>H * <usize>W << 2);
    const dyp = dy + (plane * <usize>OH * <usize>OW << 2);
    zeroPlane(dxp, H * W);
    for (let oh = 0; oh < OH; oh++) {
      const h0 = oh * sH - pT;
      const hs = max<i32>(h0, 0), he = min<i32>(h0 + KH, H);
      if (hs >= he) continue;
      for (let ow = 0; ow < OW; ow++) {
        const w0 = ow * sW - pL;
        const ws = max<i32>(w0, 0), we = min<i32>(w0 + KW, W);
        if (ws >= we) continue;
        const count = includePad ? KH * KW : (he - hs) * (we - ws);
        const g = load<f32>(dyp + (<usize>(oh * OW + ow) << 2)) / <f32>count;
        for (let h = hs; h < he; h++) {
          const row = dxp + (<usize>(h * W) << 2);
          for (let w = ws; w < we; w++) {
            const d = row + (<usize>w << 2);
            store<f32>(d, load<f32>(d) + g);
          }
        }
      }
    }
  }
}

// HW = 0 gives 0.
export function globalAvgPoolForward(x: usize, y: usize, planes: i32, HW: i32): void {
  for (let p = 0; p < planes; p++) {
    const xp = x + (<usize>p * <usize>HW << 2);
    let acc0 = f32x4.splat(0);
    let acc1 = f32x4.splat(0);
    let i = 0;
    for (; i + 8 <= HW; i += 8) {
      const o = xp + (<usize>i << 2);
      acc0 = f32x4.add(acc0, v128.load(o));
      acc1 = f32x4.add(acc1, v128.load(o, 16));
    }
    if (i + 4 <= HW) {
      acc0 = f32x4.add(acc0, v128.load(xp + (<usize>i << 2)));
      i += 4;
    }
    const acc = f32x4.add(acc0, acc1);
    let s = (f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1)) + (f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3));
    for (; i < HW; i++) s += load<f32>(xp + (<usize>i << 2));
    store<f32>(y + (<usize>p << 2), HW > 0 ? s / <f32>HW : 0);
  }
}

export function globalAvgPoolBackward(dy: usize, dx: usize, planes: i32, HW: i32): void {
  for (let p = 0; p < planes; p++) {
    const g = load<f32>(dy + (<usize>p << 2)) / <f32>HW;
    const gv = f32x4.splat(g);
    const dxp = dx + (<usize>p * <usize>HW << 2);
    let i = 0;
    for (; i + 4 <= HW; i += 4) v128.store(dxp + (<usize>i << 2), gv);
    for (; i < HW; i++) store<f32>(dxp + (<usize>i << 2), g);
  }
}

// HW = 0 gives -Infinity and argmax -1.
export function globalMaxPoolForward(x: usize, y: usize, argmax: usize, planes: i32, HW: i32): void {
  for (let p = 0; p < planes; p++) {
    const xp = x + (<usize>p * <usize>HW << 2);
    const idx = rowArgmax(xp, HW);
    store<f32>(y + (<usize>p << 2), idx >= 0 ? load<f32>(xp + (<usize>idx << 2)) : -Infinity);
    store<i32>(argmax + (<usize>p << 2), idx);
  }
}

export function globalMaxPoolBackward(dy: usize, argmax: usize, dx: usize, planes: i32, HW: i32): void {
  for (let p = 0; p < planes; p++) {
    const dxp = dx + (<usize>p * <usize>HW << 2);
    zeroPlane(dxp, HW);
    const a = load<i32>(argmax + (<usize>p << 2));
    if (a >= 0) store<f32>(dxp + (<usize>a << 2), load<f32>(dy + (<usize>p << 2)));
  }
}
