/** A seeded random generator and the weight initialisations built on it. */

/** xoshiro128**: fast, 128-bit state, reproducible across platforms; its state can be saved and restored. */
export class Rng {
  private s: Uint32Array;
  private spare: number | null = null;

  constructor(seed: number) {
    this.s = new Uint32Array(4);
    let z = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      // splitmix32 expands the seed so that nearby seeds give unrelated streams.
      z = (z + 0x9e3779b9) >>> 0;
      let t = z;
      t = Math.imul(t ^ (t >>> 16), 0x85ebca6b);
      t = Math.imul(t ^ (t >>> 13), 0xc2b2ae35);
      this.s[i] = (t ^ (t >>> 16)) >>> 0;
    }
    if ((this.s[0]! | this.s[1]! | this.s[2]! | this.s[3]!) === 0) this.s[0] = 1;
  }

  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** The four state words, then the cached second normal of a Box-Muller pair (or nothing). */
  getState(): number[] {
    return this.spare === null ? [...this.s] : [...this.s, this.spare];
  }

  setState(state: readonly number[]): void {
    if (state.length !== 4 && state.length !== 5) throw new RangeError(`Rng.setState: expected 4 words and an optional cached normal, got ${state.length} values`);
    this.s = Uint32Array.from(state.slice(0, 4));
    this.spare = state.length === 5 ? (state[4] as number) : null;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

export type InitKind = 'kaimingNormal' | 'kaimingUniform' | 'xavierNormal' | 'xavierUniform' | 'zeros' | 'ones';

/**
 * Values for a weight with the given fans. Kaiming uses gain sqrt(2) (ReLU) over fan-in;
 * Xavier uses sqrt(2 / (fanIn + fanOut)).
 */
export function initValues(kind: InitKind, n: number, fanIn: number, fanOut: number, rng: Rng): Float32Array {
  const out = new Float32Array(n);
  switch (kind) {
    case 'zeros':
      return out;
    case 'ones':
      return out.fill(1);
    case 'kaimingNormal': {
      const std = Math.sqrt(2 / fanIn);
      for (let i = 0; i < n; i++) out[i] = rng.normal() * std;
      return out;
    }
    case 'kaimingUniform': {
      const bound = Math.sqrt(6 / fanIn);
      for (let i = 0; i < n; i++) out[i] = rng.uniform(-bound, bound);
      return out;
    }
    case 'xavierNormal': {
      const std = Math.sqrt(2 / (fanIn + fanOut));
      for (let i = 0; i < n; i++) out[i] = rng.normal() * std;
      return out;
    }
    case 'xavierUniform': {
      const bound = Math.sqrt(6 / (fanIn + fanOut));
      for (let i = 0; i < n; i++) out[i] = rng.uniform(-bound, bound);
      return out;
    }
  }
}
