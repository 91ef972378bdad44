/**
 * From mapped nodes to modules. Layers read one value; a join (Add, Concat, a gate's Mul) reads
 * several values that all come from its fork, the nearest value every path to it passes through (its
 * immediate dominator). A segment from one value to another is built walking back from its end: a layer
 * steps to its input, a join to its fork, and the join's branches are segments from the fork. Walks are
 * loops; only joins nested inside branches nest, and that nesting is bounded.
 */
import { Sequential } from '../nn/layers.js';
import type { Module } from '../nn/module.js';
import { ImportProblem, type OnnxNode } from './onnx-import-graph.js';

/** Joins nested inside branches deeper than this are refused (no network of the zoo nests past 10). */
export const MAX_NESTING = 64;

export interface LayerNode {
  readonly kind: 'layer';
  readonly source: OnnxNode;
  readonly output: string;
  input: string;
  readonly make: () => Module;
}

export interface JoinNode {
  readonly kind: 'join';
  readonly source: OnnxNode;
  readonly output: string;
  /** The values whose segments from the fork are the branches. */
  branches: string[];
  /** Values the join also reads outside its branches (an LKAM's input): they count for the fork. */
  readonly alsoReads: readonly string[];
  readonly build: (branches: Module[], fork: string) => Module;
}

export type StructNode = LayerNode | JoinNode;

export function readsOf(n: StructNode): readonly string[] {
  return n.kind === 'layer' ? [n.input] : [...n.branches, ...n.alsoReads];
}

export function sequence(modules: Module[]): Module {
  return new Sequential(modules);
}

export class Structure {
  private readonly producer = new Map<string, StructNode>();
  private readonly order = new Map<string, number>();
  private readonly idom = new Map<string, string>();
  private built = 0;

  /** `nodes` in an order where every node comes after the producers of what it reads. */
  constructor(private readonly input: string, nodes: readonly StructNode[], private readonly budget: number) {
    this.order.set(input, 0);
    nodes.forEach((n, i) => {
      this.producer.set(n.output, n);
      this.order.set(n.output, i + 1);
    });
    for (const n of nodes) {
      const reads = readsOf(n).filter((v) => this.order.has(v));
      if (reads.length !== readsOf(n).length) continue;
      let d = reads[0] as string;
      for (const r of reads.slice(1)) d = this.intersect(d, r);
      this.idom.set(n.output, d);
    }
  }

  /** The nearest common dominator of two values (each dominates itself). */
  private intersect(a0: string, b0: string): string {
    let a = a0, b = b0;
    while (a !== b) {
      while ((this.order.get(a) as number) > (this.order.get(b) as number)) a = this.up(a);
      while ((this.order.get(b) as number) > (this.order.get(a) as number)) b = this.up(b);
    }
    return a;
  }

  private up(v: string): string {
    const d = this.idom.get(v);
    if (d === undefined) throw new ImportProblem(`${v} does not come from the graph input`);
    return d;
  }

  fork(n: JoinNode): string {
    return this.up(n.output);
  }

  /** The modules computing `to` from `from`, in order. */
  segment(from: string, to: string, depth = 0): Module[] {
    if (depth > MAX_NESTING) throw new ImportProblem(`branches nest more than ${MAX_NESTING} joins deep`);
    const steps: StructNode[] = [];
    const floor = this.order.get(from) as number;
    for (let v = to; v !== from;) {
      const n = this.producer.get(v);
      if (n === undefined || (this.order.get(v) as number) < floor) throw new ImportProblem(`${to} is not computed from ${from} alone`);
      steps.push(n);
      v = n.kind === 'layer' ? n.input : this.fork(n);
    }
    const modules: Module[] = [];
    for (let i = steps.length - 1; i >= 0; i--) {
      const n = steps[i] as StructNode;
      if (++this.built > this.budget) throw new ImportProblem('values are shared across branches so widely that the modules would repeat them many times over');
      if (n.kind === 'layer') modules.push(n.make());
      else {
        const f = this.fork(n);
        modules.push(n.build(n.branches.map((b) => sequence(this.segment(f, b, depth + 1))), f));
      }
    }
    return modules;
  }
}
