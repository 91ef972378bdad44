import { hashSeed, uniformInt, xoshiroNext, xoshiroSeed } from './kernel.js';

export { hashSeed, mix32 } from './kernel.js';

/** The four 32-bit words of an xoshiro128** generator. */
export type RngState = readonly [number, number, number, number];

/** A small seeded generator (xoshiro128**) with a state that can be saved and restored exactly. */
export class Rng {
  private readonly s = new Uint32Array(4);

  constructor(seed: number) {
    xoshiroSeed(this.s, seed);
  }

  /** A generator for one purpose, independent of others derived from the same seed. */
  static derive(seed: number, stream: number, index = 0): Rng {
    return new Rng(hashSeed(seed, stream, index));
  }

  nextUint32(): number {
    return xoshiroNext(this.s);
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  nextFloat(): number {
    return xoshiroNext(this.s) / 4294967296;
  }

  /** Uniform integer in [0, n), unbiased; n in [1, 2^32]. */
  nextInt(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > 4294967296) throw new RangeError(`Rng.nextInt: n must be an integer in [1, 2^32], got ${n}`);
    return uniformInt(this.s, n);
  }

  /** Fisher-Yates shuffle in place. */
  shuffle<T extends { length: number; [i: number]: unknown }>(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = uniformInt(this.s, i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }

  getState(): RngState {
    return [this.s[0]!, this.s[1]!, this.s[2]!, this.s[3]!];
  }

  setState(state: RngState): void {
    if (state.length !== 4 || state.some((w) => !Number.isInteger(w) || w < 0 || w > 0xffffffff)) {
      throw new RangeError('Rng.setState: expected four unsigned 32-bit integers');
    }
    if (state.every((w) => w === 0)) throw new RangeError('Rng.setState: the all-zero state is invalid for xoshiro128**');
    this.s.set(state);
  }
}
