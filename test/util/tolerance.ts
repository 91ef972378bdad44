/** Named tolerances: |actual - expected| <= atol + rtol * max(|expected|, scale). */
export interface Tolerance {
  readonly name: string;
  readonly atol: number;
  readonly rtol: number;
}

export const exact: Tolerance = { name: 'exact', atol: 0, rtol: 0 };
/** Same math, another summation order or SIMD lane split (float32). */
export const close: Tolerance = { name: 'close', atol: 1e-5, rtol: 1e-4 };
/** Long float32 accumulations, fused multiply-add versus separate rounding, folded batch norm. */
export const loose: Tolerance = { name: 'loose', atol: 1e-3, rtol: 1e-2 };

export interface Mismatch {
  readonly index: number;
  readonly actual: number;
  readonly expected: number;
}

/** The worst element outside the tolerance, or null when all are within it. `scale` widens rtol for sums with cancellation. */
export function findMismatch(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance, scale = 0): Mismatch | null {
  if (actual.length !== expected.length) return { index: -1, actual: actual.length, expected: expected.length };
  let worst: Mismatch | null = null;
  let worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i] as number;
    const e = expected[i] as number;
    if (Number.isNaN(a) !== Number.isNaN(e)) return { index: i, actual: a, expected: e };
    if (Number.isNaN(a)) continue;
    if (a === e) continue;
    const bound = tol.atol + tol.rtol * Math.max(Math.abs(e), scale);
    const excess = Math.abs(a - e) - bound;
    if (excess > 0 && (worst === null || excess > worstExcess)) {
      worst = { index: i, actual: a, expected: e };
      worstExcess = excess;
    }
  }
  return worst;
}

export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance, label: string, scale = 0): void {
  const m = findMismatch(actual, expected, tol, scale);
  if (m === null) return;
  if (m.index < 0) throw new Error(`${label}: length ${m.actual}, expected ${m.expected}`);
  throw new Error(`${label}: element ${m.index} is ${m.actual}, expected ${m.expected} (${tol.name}: atol ${tol.atol}, rtol ${tol.rtol}${scale ? `, scale ${scale}` : ''})`);
}

export function maxAbs(x: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] as number));
  return m;
}
