/**
 * The steps a plan runs: each holds the pointers and sizes of its kernel calls, fixed at compile time,
 * and runs them for a range of images [n0, n1). Work is split across threads by images when the range
 * has at least one image per thread, otherwise, for large convs, by output channels of each image.
 */
import type { Backend } from '../backend/backend.js';
import type { KernelName, Kernels } from '../backend/kernels.js';
import type { SwitchKind } from '../nn/lkam.js';

/** Below this many dense multiply-adds per image a conv of a small batch stays on one thread: waking a worker costs more. */
const PART_SPLIT_MIN_MACS = 1 << 17;
/** Below this many floats of output per call, a cheap kernel (pooling, channel moves) stays on one thread. */
const SPLIT_MIN_FLOATS = 1 << 15;

/** What every step runs with. */
export interface Exec {
  readonly backend: Backend;
  readonly kernels: Kernels;
  readonly threads: number;
  /** Per-thread scratch blocks. */
  readonly scratch: readonly number[];
  readonly maxBatch: number;
}

export interface Step {
  /** What the step computes and for which module path. */
  readonly label: string;
  /** Computes images [n0, n1). */
  run(n0: number, n1: number): void;
}

/** Argument lists of one kernel, one per thread, reused by every call. */
class Dispatch<K extends KernelName> {
  readonly args: number[][];
  constructor(private readonly exec: Exec, private readonly name: K, template: readonly number[]) {
    this.args = Array.from({ length: exec.threads }, () => [...template]);
  }
  /** Sets arguments `at` and `at + 1` of list t to thread t's share of images [n0, n1). */
  byImages(n0: number, n1: number, at: number): void {
    const T = this.args.length, N = n1 - n0;
    for (let t = 0; t < T; t++) {
      const a = this.args[t] as number[];
      a[at] = n0 + Math.floor((N * t) / T);
      a[at + 1] = n0 + Math.floor((N * (t + 1)) / T);
    }
  }
  run(): number {
    return this.exec.backend.parallel(this.name, this.args as unknown as ReadonlyArray<Parameters<Kernels[K]>>);
  }
}

/** The compact convs: their arguments end with n0, n1, part, parts, macs, scratch. */
export type ConvKernel = 'conv2dInfer' | 'conv2dGroupedInfer';

/** conv2dInfer or conv2dGroupedInfer over compact values; macs has a row of maxBatch float64 per thread. */
export class ConvStep implements Step {
  /** Per image, the rows of `macs` its last run wrote (threads that shared its outputs). */
  readonly rowsUsed: Uint8Array;
  private readonly dispatch: Dispatch<ConvKernel>;
  private readonly partSplit: boolean;
  private readonly one: number[];
  private readonly call: (...a: number[]) => unknown;
  /** Index of n0 in the arguments. */
  private readonly at: number;

  /** head: the kernel's arguments before n0; denseMacs: one image's multiply-adds with every kernel and input. */
  constructor(readonly exec: Exec, readonly label: string, kernel: ConvKernel, head: readonly number[], readonly macs: number, readonly denseMacs: number) {
    this.partSplit = denseMacs >= PART_SPLIT_MIN_MACS;
    this.rowsUsed = new Uint8Array(exec.maxBatch).fill(1);
    this.at = head.length;
    const template = [...head, 0, 0, 0, 1, macs, 0];
    this.dispatch = new Dispatch(exec, kernel, template);
    this.dispatch.args.forEach((a, t) => { a[this.at + 5] = exec.scratch[t] as number; });
    this.one = [...template];
    this.one[this.at + 5] = exec.scratch[0] as number;
    this.call = exec.kernels[kernel] as (...a: number[]) => unknown;
  }

  run(n0: number, n1: number): void {
    const T = this.exec.threads, at = this.at;
    if (T === 1 || (n1 - n0 < T && !this.partSplit)) {
      this.one[at] = n0;
      this.one[at + 1] = n1;
      this.call(...this.one);
      this.rowsUsed.fill(1, n0, n1);
      return;
    }
    const args = this.dispatch.args;
    if (n1 - n0 >= T) {
      // Images apart: every thread reports into row 0.
      this.dispatch.byImages(n0, n1, at);
      for (const a of args) {
        a[at + 2] = 0;
        a[at + 3] = 1;
        a[at + 4] = this.macs;
      }
      this.rowsUsed.fill(1, n0, n1);
    } else {
      args.forEach((a, t) => {
        a[at] = n0;
        a[at + 1] = n1;
        a[at + 2] = t;
        a[at + 3] = T;
        a[at + 4] = this.macs + t * this.exec.maxBatch * 8;
      });
      this.rowsUsed.fill(T, n0, n1);
    }
    this.dispatch.run();
  }
}

/** A kernel over image ranges whose arguments `at` and `at + 1` are the range; split across threads for large ranges. */
export class ImageStep<K extends KernelName> implements Step {
  private readonly dispatch: Dispatch<K>;
  private readonly call: (...a: number[]) => unknown;
  constructor(readonly exec: Exec, readonly label: string, name: K, template: readonly number[], private readonly at: number,
    private readonly floatsPerImage: number, scratchIndex = -1) {
    this.dispatch = new Dispatch(exec, name, template);
    if (scratchIndex >= 0) this.dispatch.args.forEach((a, t) => { a[scratchIndex] = exec.scratch[t] as number; });
    this.call = exec.kernels[name] as (...a: number[]) => unknown;
  }
  run(n0: number, n1: number): void {
    const T = this.exec.threads;
    if (T > 1 && n1 - n0 >= T && (n1 - n0) * this.floatsPerImage >= SPLIT_MIN_FLOATS) {
      this.dispatch.byImages(n0, n1, this.at);
      this.dispatch.run();
      return;
    }
    const a = this.dispatch.args[0] as number[];
    a[this.at] = n0;
    a[this.at + 1] = n1;
    this.call(...a);
  }
}

/** lkamBankPool: an LKAM's bank and pooling to features; macs has a row of maxBatch float64 per thread, of which images use row 0. */
export class BankPoolStep implements Step {
  /** Per image, the rows of `macs` its last run wrote (always 1: images are never split). */
  readonly rowsUsed: Uint8Array;
  private readonly dispatch: Dispatch<'lkamBankPool'>;
  private readonly macsPerImage: number;

  /** x and plane as lkamBankPool takes them; HW pixels a map. */
  constructor(readonly exec: Exec, readonly label: string, readonly x: number, readonly xList: number, readonly C: number, readonly plane: number,
    HW: number, readonly w: number, readonly bias: number, readonly k: number, readonly grid: number, readonly kind: number,
    readonly feat: number, readonly macs: number) {
    this.rowsUsed = new Uint8Array(exec.maxBatch).fill(1);
    this.macsPerImage = k * C * HW;
    this.dispatch = new Dispatch(exec, 'lkamBankPool', [x, xList, C, plane, w, bias, k, grid, kind, feat, macs, 0, 0, 0]);
    this.dispatch.args.forEach((a, t) => { a[13] = exec.scratch[t] as number; });
  }

  run(n0: number, n1: number): void {
    const T = this.exec.threads;
    if (T > 1 && n1 - n0 >= T && (n1 - n0) * this.macsPerImage >= PART_SPLIT_MIN_MACS) {
      this.dispatch.byImages(n0, n1, 11);
      this.dispatch.run();
      return;
    }
    this.exec.kernels.lkamBankPool(this.x, this.xList, this.C, this.plane, this.w, this.bias, this.k, this.grid, this.kind, this.feat, this.macs,
      n0, n1, this.exec.scratch[0] as number);
  }
}

/** The LKAM: bank and pooling to features, switches; the threshold and budget are set per call. */
export class SwitchStep implements Step {
  rule: number;
  threshold: number;
  budget = 1;
  readonly defaultRule: number;
  readonly defaultThreshold: number;

  constructor(readonly exec: Exec, readonly label: string, readonly bank: BankPoolStep,
    readonly feat: number, readonly F: number, readonly fcW: number, readonly fcB: number, readonly M: number, kind: SwitchKind, lkamThreshold: number,
    readonly inList: number, readonly C: number, readonly gate: number, readonly list: number, readonly macs: number) {
    // Hard and binary switches are on above 0, sigmoid ones at or above their LKAM's threshold (as Gated in eval mode).
    this.defaultRule = kind === 'sigmoid' ? 1 | 2 : kind === 'binary' ? 4 : 0;
    this.defaultThreshold = kind === 'sigmoid' ? lkamThreshold : 0;
    this.rule = this.defaultRule;
    this.threshold = this.defaultThreshold;
  }

  /** threshold undefined restores the LKAM's own rule; a number t turns a switch off when its value is at or below t. */
  setKnobs(threshold: number | undefined, budget: number): void {
    if (threshold === undefined) {
      this.rule = this.defaultRule;
      this.threshold = this.defaultThreshold;
    } else {
      this.rule = this.defaultRule & 5;
      this.threshold = threshold;
    }
    this.budget = budget;
  }

  run(n0: number, n1: number): void {
    this.bank.run(n0, n1);
    this.exec.kernels.lkamSwitches(this.feat, this.F, this.fcW, this.fcB, this.M, this.rule, this.threshold, this.budget, this.inList, this.C,
      this.gate, this.list, this.macs, n0, n1, this.exec.scratch[0] as number);
  }
}

/** relu over the images' `perImage` floats. */
export class ReluStep implements Step {
  constructor(readonly exec: Exec, readonly label: string, readonly x: number, readonly y: number, readonly perImage: number) {}
  run(n0: number, n1: number): void {
    const o = n0 * this.perImage * 4;
    this.exec.kernels.relu(this.x + o, this.y + o, (n1 - n0) * this.perImage);
  }
}

/** A step of rarely used layers (built once at compile time; `body` closes over its pointers). */
export class FnStep implements Step {
  constructor(readonly label: string, private readonly body: (n0: number, n1: number) => void) {}
  run(n0: number, n1: number): void {
    this.body(n0, n1);
  }
}

/** Steps run one after another (a step made of several kernel calls). */
export class Sequence implements Step {
  constructor(readonly label: string, readonly steps: readonly Step[]) {}
  run(n0: number, n1: number): void {
    for (const s of this.steps) s.run(n0, n1);
  }
}
