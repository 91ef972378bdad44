/**
 * Rewrites of the graph that save passes over activations: a batch norm folds into the conv before it
 * (w' = w * k, b' = b * k + shift), a ReLU becomes the conv's (or residual add's) lower clamp, and a
 * gate moves into the conv that produces what it gates, which then computes only the switched-on
 * kernels, and a linear layer reads the map a flatten would have copied. Each rewrite needs the
 * producer's output to have no other reader.
 */
import { inputsOf, type ConvNode, type Node, type Value } from './ir.js';

function readers(nodes: readonly Node[], output: Value): Map<Value, number> {
  const count = new Map<Value, number>();
  for (const n of nodes) for (const v of inputsOf(n)) count.set(v, (count.get(v) ?? 0) + 1);
  count.set(output, (count.get(output) ?? 0) + 1);
  return count;
}

function foldAffine(conv: ConvNode, scale: Float32Array, shift: Float32Array): void {
  const per = conv.weight.length / conv.g.M;
  const w = new Float32Array(conv.weight.length);
  const b = new Float32Array(conv.g.M);
  for (let m = 0; m < conv.g.M; m++) {
    const k = scale[m] as number;
    for (let i = 0; i < per; i++) w[m * per + i] = (conv.weight[m * per + i] as number) * k;
    b[m] = (conv.bias === null ? 0 : (conv.bias[m] as number) * k) + (shift[m] as number);
  }
  conv.weight = w;
  conv.bias = b;
}

/** The graph with every fusion applied (nodes are rewritten in place; the returned list drops the absorbed ones). */
export function fuse(input: readonly Node[], output: Value): Node[] {
  let nodes = [...input];
  for (let changed = true; changed;) {
    changed = false;
    const count = readers(nodes, output);
    const producer = new Map<Value, Node>();
    for (const n of nodes) producer.set(n.y, n);
    for (const n of nodes) {
      if (n.op === 'linear') {
        const p = producer.get(n.x);
        if (p !== undefined && p.op === 'flatten' && count.get(n.x) === 1) {
          n.x = p.x;
          nodes = nodes.filter((q) => q !== p);
          changed = true;
          break;
        }
        continue;
      }
      if (n.op !== 'affine' && n.op !== 'relu' && n.op !== 'gate') continue;
      const p = producer.get(n.x);
      if (p === undefined || count.get(n.x) !== 1) continue;
      let absorbed = false;
      if (p.op === 'conv' && p.gate === null) {
        if (n.op === 'affine' && p.lo === -Infinity) {
          foldAffine(p, n.scale, n.shift);
          absorbed = true;
        } else if (n.op === 'relu') {
          p.lo = Math.max(p.lo, 0);
          absorbed = true;
        } else if (n.op === 'gate') {
          p.gate = n.switches;
          absorbed = true;
        }
        if (absorbed) p.y = n.y;
      } else if (p.op === 'add' && n.op === 'relu') {
        p.lo = Math.max(p.lo, 0);
        p.y = n.y;
        absorbed = true;
      }
      if (absorbed) {
        nodes = nodes.filter((q) => q !== n);
        changed = true;
        break;
      }
    }
  }
  return nodes;
}
