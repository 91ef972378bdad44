import type { LinearMemory } from '../../tensor/memory.js';
import type { Kernels } from '../kernels.js';

type ActivationKernels = Pick<Kernels, 'relu' | 'reluBackward' | 'leakyRelu' | 'leakyReluBackward' | 'sigmoid' | 'sigmoidBackward'
  | 'tanh' | 'tanhBackward' | 'clamp' | 'clampBackward'>;

const f = Math.fround;

export function activationReference(mem: LinearMemory): ActivationKernels {
  /** y[i] = op(x[i]). */
  const unary = (x: number, y: number, n: number, op: (v: number) => number): void => {
    const v = mem.f32;
    for (let i = 0; i < n; i++) v[(y >>> 2) + i] = op(v[(x >>> 2) + i]!);
  };
  /** dx[i] = op(a[i], dy[i]). */
  const backward = (a: number, dy: number, dx: number, n: number, op: (a: number, g: number) => number): void => {
    const v = mem.f32;
    for (let i = 0; i < n; i++) v[(dx >>> 2) + i] = op(v[(a >>> 2) + i]!, v[(dy >>> 2) + i]!);
  };
  return {
    relu: (x, y, n) => unary(x, y, n, (v) => Math.max(v, 0)),
    reluBackward: (y, dy, dx, n) => backward(y, dy, dx, n, (v, g) => (v > 0 ? g : 0)),
    leakyRelu: (x, y, n, alpha) => unary(x, y, n, (v) => (v > 0 ? v : v * f(alpha))),
    leakyReluBackward: (x, dy, dx, n, alpha) => backward(x, dy, dx, n, (v, g) => (v > 0 ? g : g * f(alpha))),
    sigmoid: (x, y, n) => unary(x, y, n, (v) => (v >= 0 ? 1 / (1 + Math.exp(-v)) : Math.exp(v) / (1 + Math.exp(v)))),
    sigmoidBackward: (y, dy, dx, n) => backward(y, dy, dx, n, (v, g) => f(g * v) * f(1 - v)),
    tanh: (x, y, n) => unary(x, y, n, Math.tanh),
    tanhBackward: (y, dy, dx, n) => backward(y, dy, dx, n, (v, g) => g * f(1 - f(v * v))),
    clamp: (x, y, n, lo, hi) => unary(x, y, n, (v) => Math.min(Math.max(v, f(lo)), f(hi))),
    clampBackward: (x, dy, dx, n, lo, hi) => backward(x, dy, dx, n, (v, g) => (v >= f(lo) && v <= f(hi) ? g : 0)),
  };
}
