/**
 * ONNX import of CNN graphs (opsets 6–21) into our modules, so that LKAMs can be added and the result
 * fine-tuned. Four stages: reading the graph (onnx-graph.ts), shape inference and mapping with one
 * mapper per op type (onnx-import-ops.ts), pattern rewrites (onnx-import-patterns.ts: aliases and
 * shape-op chains, LKAM gates, SiLU, MatMul + bias, residual Adds, Concats) and the structure pass
 * (onnx-import-structure.ts: joins by their dominating fork). Every node no stage can map is reported,
 * summarised in one line per op type; `OnnxError.unsupported` lists each node.
 */
import type { Module } from '../nn/module.js';
import { describeError, OnnxError } from './errors.js';
import { readModelProto, toNumber, valueDims } from './onnx-graph.js';
import { constantOf, describeNode, ImportProblem, ints, OnnxGraph, sameDims, type OnnxNode } from './onnx-import-graph.js';
import { OP_MAPPERS, type Mapped, type OpMapper } from './onnx-import-ops.js';
import { rewrite, type MappedNode } from './onnx-import-patterns.js';
import { sequence, Structure } from './onnx-import-structure.js';

export const IMPORT_OPSETS = { min: 6, max: 21 } as const;

const MAPPERS: ReadonlyMap<string, OpMapper> = new Map(OP_MAPPERS);

/** Op types the importer maps, sorted. */
export function importableOps(): string[] {
  return [...MAPPERS.keys()].sort();
}

export interface OnnxImportOptions {
  /** One input image [C, H, W], when the graph's input does not fix it. */
  readonly inputShape?: readonly number[];
  /** The name used in messages (default `model.onnx`). */
  readonly file?: string;
}

export interface OnnxImport {
  readonly model: Module;
  /** One input image, [C, H, W]. */
  readonly inputShape: number[];
  readonly opset: number;
  readonly input: string;
  readonly output: string;
  /** Graph outputs that carry LKAM switch values, by the path of their Gated module. */
  readonly switchOutputs: ReadonlyMap<string, string>;
}

interface Problem {
  readonly node: OnnxNode;
  readonly why: string;
}

/** Op types listed in full in the summary line; the rest are counted. */
const SUMMARY_KINDS = 8;
const REASON_CHARS = 160;

function clipped(s: string): string {
  return s.length <= REASON_CHARS ? s : `${s.slice(0, REASON_CHARS - 1)}…`;
}

/** One line: how many nodes, per op type the count and its first node with the reason. */
function summary(file: string, unordered: readonly Problem[], position: ReadonlyMap<OnnxNode, number>): OnnxError {
  const problems = [...unordered].sort((a, b) => (position.get(a.node) ?? 0) - (position.get(b.node) ?? 0));
  const byOp = new Map<string, Problem[]>();
  for (const p of problems) {
    const list = byOp.get(p.node.op);
    if (list === undefined) byOp.set(p.node.op, [p]);
    else list.push(p);
  }
  const kinds = [...byOp].sort((a, b) => b[1].length - a[1].length || (position.get((a[1][0] as Problem).node) ?? 0) - (position.get((b[1][0] as Problem).node) ?? 0));
  const parts = kinds.slice(0, SUMMARY_KINDS).map(([op, list]) => {
    const first = list[0] as Problem;
    return `${op} x${list.length} (first: node '${clipped(first.node.name)}': ${clipped(first.why)})`;
  });
  if (kinds.length > SUMMARY_KINDS) parts.push(`and ${kinds.length - SUMMARY_KINDS} more op types`);
  const n = problems.length;
  const detail = `${problems.some((p) => p.why === 'no mapping') ? `; mapped ops: ${importableOps().join(', ')}` : ''}${n > kinds.length ? '; --debug lists every node' : ''}`;
  return new OnnxError(`${file}: cannot map ${n} node${n === 1 ? '' : 's'}: ${parts.join('; ')}${detail}`, problems.map((p) => `${describeNode(p.node)}: ${p.why}`));
}

/** The nodes in an order where each comes after the producers of its inputs (Kahn's algorithm); the rest form cycles. */
function ordered(nodes: readonly OnnxNode[], known: (v: string) => boolean): { order: OnnxNode[]; stuck: OnnxNode[] } {
  const producer = new Map<string, number>();
  nodes.forEach((n, i) => { for (const o of n.outputs) if (o !== '') producer.set(o, i); });
  const waiting = new Int32Array(nodes.length);
  const dependents: number[][] = nodes.map(() => []);
  nodes.forEach((n, i) => {
    for (const v of new Set(n.inputs)) {
      if (v === '' || known(v)) continue;
      const p = producer.get(v);
      if (p === undefined) continue;
      waiting[i] = (waiting[i] as number) + 1;
      (dependents[p] as number[]).push(i);
    }
  });
  const queue: number[] = [];
  nodes.forEach((_, i) => { if (waiting[i] === 0) queue.push(i); });
  const order: OnnxNode[] = [];
  for (let head = 0; head < queue.length; head++) {
    const i = queue[head] as number;
    order.push(nodes[i] as OnnxNode);
    for (const d of dependents[i] as number[]) {
      waiting[d] = (waiting[d] as number) - 1;
      if (waiting[d] === 0) queue.push(d);
    }
  }
  return { order, stuck: nodes.filter((_, i) => (waiting[i] as number) > 0) };
}

/** Values permuted to [N, H, W, C] (Transpose 0, 2, 3, 1) stay so through the ops that read them, until the permute back. */
function markChannelsLast(g: OnnxGraph, n: OnnxNode): void {
  const data = g.dataInputs(n);
  const last = data.some((v) => g.channelsLast.has(v));
  const perm = n.op === 'Transpose' ? JSON.stringify(ints(n, 'perm', [])) : '';
  const out = n.outputs[0];
  if (out === undefined || out === '' || g.constants.has(out)) return;
  if (n.op === 'Transpose') {
    if (!last && perm === '[0,2,3,1]' && g.shape(out).length === 4) g.channelsLast.add(out);
    else if (last && perm !== '[0,3,1,2]') g.channelsLast.add(out);
  } else if (last) g.channelsLast.add(out);
}

/**
 * A model of our modules computing what the ONNX graph computes (in eval mode). Throws OnnxError
 * naming, per op type, the nodes that have no mapping.
 */
export function importOnnx(bytes: Uint8Array, options: OnnxImportOptions = {}): OnnxImport {
  const file = options.file ?? 'model.onnx';
  const proto = readModelProto(bytes, file);
  const opsets = proto.opsetImport ?? [];
  const main = opsets.find((o) => o.domain === '' || o.domain === 'ai.onnx' || o.domain === null || o.domain === undefined);
  const opset = toNumber(main?.version);
  if (opset < IMPORT_OPSETS.min || opset > IMPORT_OPSETS.max) throw new OnnxError(`${file}: opset ${opset} is outside the supported ${IMPORT_OPSETS.min}–${IMPORT_OPSETS.max}`);
  const graph = proto.graph;
  if (graph === null || graph === undefined) throw new OnnxError(`${file}: the model has no graph`);
  const nodes: OnnxNode[] = (graph.node ?? []).map((n, i) => ({ op: n.opType ?? '', name: n.name || `${n.opType ?? '?'}_${i}`, inputs: n.input ?? [], outputs: n.output ?? [], proto: n }));

  const initializers = graph.initializer ?? [];
  const initializerNames = new Set(initializers.map((t) => t.name ?? ''));
  const inputs = (graph.input ?? []).filter((i) => !initializerNames.has(i.name ?? ''));
  if (inputs.length !== 1) throw new OnnxError(`${file}: the graph has ${inputs.length} inputs without initializers (${inputs.map((i) => i.name ?? '?').slice(0, 5).join(', ')}), expected one image batch`);
  const input = inputs[0]?.name ?? '';
  const declared = valueDims(inputs[0] ?? {}) ?? [];
  const chw = options.inputShape ?? declared.slice(1);
  if (chw.length !== 3 || chw.some((d) => !(d > 0))) {
    throw new OnnxError(`${file}: the graph input ${input} is [${declared.join(', ')}]; pass inputShape [C, H, W] when its image dims are not fixed`);
  }
  const batch = (declared[0] ?? -1) > 0 ? (declared[0] as number) : 1;

  const g = new OnnxGraph(nodes, opset);
  try {
    for (const t of initializers) g.constants.set(t.name ?? '', constantOf(t));
  } catch (e) {
    if (e instanceof ImportProblem) throw new OnnxError(`${file}: ${e.message}`, [], e);
    throw e;
  }
  g.shapes.set(input, [batch, ...chw]);

  const problems: Problem[] = [];
  const { order, stuck } = ordered(nodes, (v) => v === input || g.constants.has(v));
  if (stuck.length > 0) throw new OnnxError(`${file}: ${stuck.length} node${stuck.length === 1 ? '' : 's'} (first ${describeNode(stuck[0] as OnnxNode)}) read values computed after them in a cycle`);
  const mapped: MappedNode[] = [];
  for (const n of order) {
    const domain = n.proto.domain ?? '';
    const mapper = domain === '' || domain === 'ai.onnx' ? MAPPERS.get(n.op) : undefined;
    if (mapper === undefined) {
      problems.push({ node: n, why: domain !== '' && domain !== 'ai.onnx' ? `op of domain ${domain} (only the standard domain maps)` : 'no mapping' });
      continue;
    }
    if (opset < (mapper.since ?? 1)) {
      problems.push({ node: n, why: `maps from opset ${mapper.since}, the model has ${opset}` });
      continue;
    }
    // A node that reads the output of a node that could not be mapped is not reported again.
    if (n.inputs.some((v) => v !== '' && !g.constants.has(v) && !g.shapes.has(v))) {
      if (n.inputs.some((v) => v !== '' && v !== input && !g.constants.has(v) && !g.producer.has(v))) problems.push({ node: n, why: `it reads ${n.inputs.find((v) => v !== '' && v !== input && !g.constants.has(v) && !g.producer.has(v))}, which no node computes` });
      continue;
    }
    let m: Mapped;
    try {
      const shapes = mapper.shape(g, n);
      shapes.forEach((s, i) => {
        if (n.outputs[i] !== undefined && n.outputs[i] !== '') g.shapes.set(n.outputs[i] as string, s);
      });
    } catch (e) {
      if (!(e instanceof ImportProblem)) throw e;
      problems.push({ node: n, why: e.message });
      continue;
    }
    markChannelsLast(g, n);
    // A node whose shapes are known but that does not map still lets the nodes after it be checked.
    try {
      m = mapper.map(g, n);
    } catch (e) {
      // A layer constructor refusing its arguments (RangeError) is a node that does not map.
      if (!(e instanceof ImportProblem || e instanceof RangeError)) throw e;
      problems.push({ node: n, why: e.message });
      continue;
    }
    if (m.kind !== 'constant') mapped.push({ node: n, mapped: m });
  }
  let rewritten: ReturnType<typeof rewrite>;
  try {
    rewritten = rewrite(g, mapped);
  } catch (e) {
    if (e instanceof ImportProblem) throw new OnnxError(`${file}: ${e.message}`, [], e);
    throw e;
  }
  problems.push(...rewritten.problems);
  if (problems.length > 0) throw summary(file, problems, new Map(nodes.map((n, i) => [n, i])));

  const outputs = (graph.output ?? []).map((o) => o.name ?? '');
  const output = outputs[0];
  if (output === undefined) throw new OnnxError(`${file}: the graph has no output`);
  const resolved = rewritten.resolve(output);
  const structure = new Structure(input, rewritten.nodes, 4 * nodes.length + 16);
  let model: Module;
  try {
    model = sequence(structure.segment(input, resolved));
  } catch (e) {
    // A layer constructor refusing its arguments (RangeError) is a graph we cannot map.
    if (e instanceof ImportProblem || e instanceof RangeError) throw new OnnxError(`${file}: ${e.message}`, [], e);
    throw e;
  }
  const switchOutputs = new Map<string, string>();
  const switchValueOf = new Map<string, string>();
  for (const [path, m] of model.modules()) {
    const v = rewritten.switches.get(m);
    if (v !== undefined) switchValueOf.set(path, v);
  }
  for (const extra of outputs.slice(1)) {
    const gate = [...switchValueOf].find(([, v]) => v === rewritten.resolve(extra));
    if (gate === undefined) throw new OnnxError(`${file}: graph output ${extra} is neither the model's output nor an LKAM's switch values`);
    switchOutputs.set(gate[0], extra);
  }
  const expected = g.shape(output);
  let ours: readonly number[];
  try {
    ours = model.outputShape([batch, ...chw]);
  } catch (e) {
    throw new OnnxError(`${file}: the imported modules do not fit together (${describeError(e)})`, [], e);
  }
  const squeeze = (s: readonly number[]): number[] => {
    const out = [...s];
    while (out.length > 2 && out[out.length - 1] === 1) out.pop();
    return out;
  };
  if (!sameDims(squeeze(ours), squeeze(expected))) {
    throw new OnnxError(`${file}: the imported model gives [${ours.join(', ')}], the graph's output ${output} is [${expected.join(', ')}]`);
  }
  return { model, inputShape: [...chw], opset, input, output, switchOutputs };
}
