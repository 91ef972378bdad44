// Kernels of this family; see src/backend/kernels.ts for the contract.
//
// Operation order follows PyTorch's single-tensor optimizers, one float32 rounding per operation
// (the relaxed build fuses the multiply-adds).

import { madd } from './vmath';

// buf may be 0 when momentum = 0. The gradient is read, never written.
export function sgdStep(p: usize, g: usize, buf: usize, n: i32, lr: f32, momentum: f32, dampening: f32,
  weightDecay: f32, nesterov: i32, firstStep: i32): void {
  const decay = weightDecay != 0, useMomentum = momentum != 0, init = firstStep != 0, ahead = nesterov != 0;
  const wdv = f32x4.splat(weightDecay), mv = f32x4.splat(momentum), damp: f32 = 1 - dampening;
  const dampv = f32x4.splat(damp), nlrv = f32x4.splat(-lr);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const pv = v128.load(p + o);
    let d = v128.load(g + o);
    if (decay) d = madd(wdv, pv, d);
    if (useMomentum) {
      const b = init ? d : madd(dampv, d, f32x4.mul(v128.load(buf + o), mv));
      v128.store(buf + o, b);
      d = ahead ? madd(mv, b, d) : b;
    }
    v128.store(p + o, madd(nlrv, d, pv));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const pv = load<f32>(p + o);
    let d = load<f32>(g + o);
    if (decay) d = weightDecay * pv + d;
    if (useMomentum) {
      const b = init ? d : damp * d + load<f32>(buf + o) * momentum;
      store<f32>(buf + o, b);
      d = ahead ? momentum * b + d : b;
    }
    store<f32>(p + o, -lr * d + pv);
  }
}

// m = m + (1 - beta1) (g - m), as torch.lerp; v = v beta2 + (1 - beta2) g g;
// p = p - (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps); AdamW first scales p by 1 - lr weightDecay.
export function adamStep(p: usize, g: usize, m: usize, v: usize, n: i32, lr: f32, beta1: f32, beta2: f32,
  eps: f32, weightDecay: f32, decoupled: i32, bc1: f32, bc2: f32): void {
  const l2 = weightDecay != 0 && decoupled == 0;
  const shrink: f32 = weightDecay != 0 && decoupled != 0 ? <f32>1 - lr * weightDecay : 1;
  const w1: f32 = 1 - beta1, w2: f32 = 1 - beta2;
  const nstep: f32 = -(lr / bc1), bc2sqrt: f32 = Mathf.sqrt(bc2);
  const wdv = f32x4.splat(weightDecay), shrinkv = f32x4.splat(shrink), w1v = f32x4.splat(w1), w2v = f32x4.splat(w2);
  const b2v = f32x4.splat(beta2), nstepv = f32x4.splat(nstep), bc2v = f32x4.splat(bc2sqrt), epsv = f32x4.splat(eps);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    let pv = v128.load(p + o);
    let gv = v128.load(g + o);
    if (l2) gv = madd(wdv, pv, gv);
    else pv = f32x4.mul(pv, shrinkv);
    const mo = v128.load(m + o);
    const mn = madd(w1v, f32x4.sub(gv, mo), mo);
    const vn = madd(f32x4.mul(w2v, gv), gv, f32x4.mul(v128.load(v + o), b2v));
    v128.store(m + o, mn);
    v128.store(v + o, vn);
    const denom = f32x4.add(f32x4.div(f32x4.sqrt(vn), bc2v), epsv);
    v128.store(p + o, madd(nstepv, f32x4.div(mn, denom), pv));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    let pv = load<f32>(p + o);
    let gv = load<f32>(g + o);
    if (l2) gv = weightDecay * pv + gv;
    else pv = pv * shrink;
    const mo = load<f32>(m + o);
    const mn = w1 * (gv - mo) + mo;
    const vn = w2 * gv * gv + load<f32>(v + o) * beta2;
    store<f32>(m + o, mn);
    store<f32>(v + o, vn);
    const denom = Mathf.sqrt(vn) / bc2sqrt + eps;
    store<f32>(p + o, nstep * (mn / denom) + pv);
  }
}
