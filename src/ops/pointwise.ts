/**
 * Smooth and piecewise-linear activations computed point by point (SiLU, HardSigmoid, HardSwish, GELU)
 * and their gradients; each is a pair of a value and a slope function of x.
 */
import { engine } from '../autograd/engine.js';
import type { Tensor } from '../tensor/tensor.js';
import { expectFloat } from './dispatch.js';

/** A point-wise function: its value and its slope at x (float64, rounded to float32 on store). */
export interface Pointwise {
  readonly name: string;
  value(x: number): number;
  slope(x: number): number;
  /** Whether f(0) = 0, so zero planes stay zero planes. */
  readonly zeroAtZero: boolean;
}

function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

/** erf from the Chebyshev fit of erfc (fractional error below 1.2e-7). */
function erf(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? 1 - r : r - 1;
}

export const SILU: Pointwise = {
  name: 'silu',
  value: (x) => x * sigmoid(x),
  slope: (x) => {
    const s = sigmoid(x);
    return s + x * s * (1 - s);
  },
  zeroAtZero: true,
};

export function hardSigmoidFn(alpha: number, beta: number): Pointwise {
  return {
    name: 'hardSigmoid',
    value: (x) => Math.min(1, Math.max(0, alpha * x + beta)),
    slope: (x) => {
      const v = alpha * x + beta;
      return v > 0 && v < 1 ? alpha : 0;
    },
    zeroAtZero: beta === 0,
  };
}

/** x · relu6(x + 3) / 6, as PyTorch and ONNX define it. */
export const HARD_SWISH: Pointwise = {
  name: 'hardSwish',
  value: (x) => (x * Math.min(6, Math.max(0, x + 3))) / 6,
  slope: (x) => (x <= -3 ? 0 : x >= 3 ? 1 : (2 * x + 3) / 6),
  zeroAtZero: true,
};

/** x · Φ(x), the exact (erf) form. */
export const GELU: Pointwise = {
  name: 'gelu',
  value: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
  slope: (x) => 0.5 * (1 + erf(x / Math.SQRT2)) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI),
  zeroAtZero: true,
};

/** y = f(x) element-wise; the gradient is dy · f'(x). */
export function pointwise(x: Tensor, f: Pointwise): Tensor {
  expectFloat(f.name, 'input', x);
  const e = engine();
  const y = e.alloc(x.shape);
  const xs = x.f32(), ys = y.f32();
  for (let i = 0; i < xs.length; i++) ys[i] = f.value(xs[i] as number);
  if (f.zeroAtZero) y.channels = x.channels;
  if (e.tracks(x)) {
    y.requiresGrad = true;
    e.record({
      op: f.name, inputs: [x], output: y,
      backward: (dy) => {
        const dx = e.alloc(x.shape);
        const a = x.f32(), g = dy.f32(), d = dx.f32();
        for (let i = 0; i < a.length; i++) d[i] = (g[i] as number) * f.slope(a[i] as number);
        return [dx];
      },
    });
  }
  return y;
}
