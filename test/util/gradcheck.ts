/**
 * Numerical gradient check: compares the tape's gradients of L = Σ w·f(inputs) (w fixed random)
 * with central differences of L computed in float64 from the float32 outputs.
 */
import { engine } from '../../src/autograd/engine.js';
import * as ops from '../../src/ops/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { TestRng } from './rng.js';

export interface GradInput {
  readonly data: Float32Array;
  readonly shape: readonly number[];
  /** Default true. */
  readonly requiresGrad?: boolean;
}

export interface GradCheckResult {
  readonly ok: boolean;
  readonly worst: { input: number; index: number; analytic: number; numeric: number } | null;
}

export interface GradCheckOptions {
  readonly eps?: number;
  readonly atol?: number;
  readonly rtol?: number;
  readonly seed?: number;
  /** Check at most this many elements per input (spread evenly). */
  readonly maxPerInput?: number;
  /** Existing parameters (e.g. a module's) to check as well, after the inputs. */
  readonly params?: readonly Tensor[];
}

export function gradCheck(f: (xs: Tensor[]) => Tensor, inputs: readonly GradInput[], o: GradCheckOptions = {}): GradCheckResult {
  const e = engine();
  const eps = o.eps ?? 1e-2;
  const atol = o.atol ?? 2e-3;
  const rtol = o.rtol ?? 2e-2;
  const rng = new TestRng(o.seed ?? 7);
  const params = inputs.map((inp) => {
    const t = e.tensor(inp.data, inp.shape, 'float32', e.persistent);
    t.requiresGrad = inp.requiresGrad ?? true;
    return t;
  });
  params.push(...(o.params ?? []));
  let weights: Float32Array | null = null;
  const objective = (): number => {
    const y = e.noGrad(() => f(params));
    const v = y.f32();
    weights ??= Float32Array.from({ length: v.length }, () => rng.uniform(-1, 1));
    let s = 0;
    for (let i = 0; i < v.length; i++) s += (v[i] as number) * (weights[i] as number);
    e.endStep();
    return s;
  };
  objective();
  for (const p of params) p.grad = null;
  const y = f(params);
  const w = e.tensor(weights as unknown as Float32Array, y.shape);
  e.backward(ops.sum(ops.mul(y, w)));
  const analytic = params.map((p) => (p.grad === null ? new Float32Array(p.size) : p.grad.f32().slice()));
  e.endStep();
  let worst: GradCheckResult['worst'] = null;
  let worstExcess = 0;
  params.forEach((p, pi) => {
    if (!p.requiresGrad) return;
    const step = Math.max(1, Math.floor(p.size / (o.maxPerInput ?? 64)));
    for (let i = 0; i < p.size; i += step) {
      const view = () => e.backend.mem.f32;
      const at = (p.ptr >>> 2) + i;
      const orig = view()[at] as number;
      view()[at] = orig + eps;
      const up = objective();
      view()[at] = orig - eps;
      const down = objective();
      view()[at] = orig;
      const numeric = (up - down) / (2 * eps);
      const a = analytic[pi]![i] as number;
      const excess = Math.abs(a - numeric) - (atol + rtol * Math.abs(numeric));
      if (excess > worstExcess || Number.isNaN(a)) {
        worstExcess = Number.isNaN(a) ? Infinity : excess;
        worst = { input: pi, index: i, analytic: a, numeric };
      }
    }
  });
  return { ok: worst === null, worst };
}
