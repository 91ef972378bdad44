/**
 * The native kernel table over a linear memory: every kernel the addon implements runs natively (on
 * the addon's threads when called with several argument lists); the others, and calls a native
 * kernel declines (grouped convolutions, say), run on the WebAssembly table beneath.
 */
import type { LinearMemory } from '../../tensor/memory.js';
import { KERNEL_NAMES, type KernelName, type Kernels } from '../kernels.js';
import type { NativeAddon, NativeContext, NativeIsa } from './addon.js';

export class NativeKernels {
  readonly isa: NativeIsa;
  /** The kernels that run natively. */
  readonly names: ReadonlySet<KernelName>;
  private readonly ctx: NativeContext;
  private readonly args: Float64Array;
  private readonly maxArgs: number;
  private readonly maxTasks: number;
  private readonly index = new Map<KernelName, number>();
  private bound: Float32Array;

  constructor(addon: NativeAddon, private readonly mem: LinearMemory, isa: NativeIsa) {
    this.maxArgs = addon.maxArgs;
    this.maxTasks = addon.maxTasks;
    this.args = new Float64Array(this.maxArgs * this.maxTasks);
    this.bound = mem.f32;
    this.ctx = new addon.NativeContext(this.bound, this.args, isa);
    this.isa = this.ctx.isa;
    const known = new Set<string>(KERNEL_NAMES);
    this.ctx.kernels.forEach((n, i) => {
      if (known.has(n)) this.index.set(n as KernelName, i);
    });
    this.names = new Set(this.index.keys());
  }

  /**
   * Runs `name` once per argument list on the addon's threads (list 0 on this one) and returns the sum of
   * the results; null when the kernel is not native or the build declines these arguments.
   */
  run(name: KernelName, argLists: ReadonlyArray<ArrayLike<number>>): number | null {
    const i = this.index.get(name);
    if (i === undefined) return null;
    if (argLists.length > this.maxTasks) throw new Error(`${name}: ${argLists.length} argument lists, at most ${this.maxTasks}`);
    const args = this.args, stride = this.maxArgs;
    for (let t = 0; t < argLists.length; t++) {
      const a = argLists[t] as ArrayLike<number>;
      for (let j = 0; j < a.length; j++) args[t * stride + j] = a[j] as number;
    }
    const f32 = this.mem.f32;
    if (f32 !== this.bound) {
      this.ctx.bind(f32);
      this.bound = f32;
    }
    return this.ctx.run(i, argLists.length);
  }

  /** `fallback` with every native kernel in its place (calls the build declines go to `fallback`). */
  overlay(fallback: Kernels): Kernels {
    const table: Record<string, unknown> = { ...fallback };
    for (const name of this.names) {
      const slow = fallback[name] as (...a: number[]) => unknown;
      table[name] = (...a: number[]): unknown => {
        const r = this.run(name, [a]);
        return r === null ? slow(...a) : r;
      };
    }
    return table as unknown as Kernels;
  }
}
