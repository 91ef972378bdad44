/**
 * Pattern rewrites after mapping: aliases and chains of shape ops are resolved first (a view becomes a
 * Flatten or nothing), then joins are recognised: an LKAM gate (`Mul(block, view(switch(fc(view(pool(
 * conv1x1(x)))))))`, also with a threshold mask or binary switches), SiLU and HardSwish written as
 * `Mul(x, act(x))`, a MatMul with the Add of its bias, residual Adds, and channel Concats (a Concat that
 * repeats an earlier Concat's inputs reads that Concat instead, as DenseNet writes its blocks).
 */
import { GELU, HardSwish, SiLU } from '../nn/activations.js';
import { ChannelSelect } from '../nn/channels.js';
import { Concat } from '../nn/concat.js';
import { Conv2d, Flatten, Linear } from '../nn/layers.js';
import { SqueezeExcite, type SeActivation, type SeGate } from '../nn/squeeze-excite.js';
import { Gated, gridWindow, LKAM, residualOf, type LkamPool, type SwitchKind } from '../nn/lkam.js';
import type { Module } from '../nn/module.js';
import { copyInto } from './model-file.js';
import { attribute } from './onnx-graph.js';
import { describeNode, float, ImportProblem, int, ints, product, sameDims, shortestFloat, type Constant, type OnnxGraph, type OnnxNode } from './onnx-import-graph.js';
import { channelLayerNorm, channelMatMul, clipBounds, linear, type Mapped } from './onnx-import-ops.js';
import type { JoinNode, LayerNode, StructNode } from './onnx-import-structure.js';

export interface MappedNode {
  readonly node: OnnxNode;
  readonly mapped: Mapped;
}

export interface Rewritten {
  readonly nodes: StructNode[];
  readonly problems: Array<{ node: OnnxNode; why: string }>;
  /** The switch values of each Gated module the structure pass builds. */
  readonly switches: Map<Module, string>;
  /** A value with the same meaning, past aliases and views that change nothing. */
  readonly resolve: (v: string) => string;
}

/** Trailing 1s beyond [N, C] dropped: our global pools give [N, C] where ONNX keeps [N, C, 1, 1]. */
function squeezed(s: readonly number[]): number[] {
  const out = [...s];
  while (out.length > 2 && out[out.length - 1] === 1) out.pop();
  return out;
}

export function rewrite(g: OnnxGraph, items: readonly MappedNode[]): Rewritten {
  const problems: Array<{ node: OnnxNode; why: string }> = [];
  const byOutput = new Map<string, MappedNode>();
  for (const it of items) byOutput.set(it.node.outputs[0] as string, it);
  const aliasOf = new Map<string, string>();
  for (const it of items) if (it.mapped.kind === 'alias') aliasOf.set(it.node.outputs[0] as string, it.mapped.input);
  const resolveAlias = (v: string): string => {
    let cur = v;
    for (let steps = 0; aliasOf.has(cur); steps++) {
      if (steps > items.length) throw new ImportProblem(`the Identity nodes behind ${v} form a cycle`);
      cur = aliasOf.get(cur) as string;
    }
    return cur;
  };
  const inputOf = (it: MappedNode): string | undefined => (it.mapped.kind === 'layer' || it.mapped.kind === 'view' ? resolveAlias(it.mapped.input) : undefined);
  /** The node behind a value, past aliases and views. */
  const behind = (v: string): MappedNode | undefined => {
    let cur = resolveAlias(v);
    for (let steps = 0; steps <= items.length; steps++) {
      const it = byOutput.get(cur);
      if (it === undefined || it.mapped.kind !== 'view') return it;
      cur = inputOf(it) as string;
    }
    return undefined;
  };
  const valueBehind = (v: string): string => {
    let cur = resolveAlias(v);
    for (let it = byOutput.get(cur); it !== undefined && it.mapped.kind === 'view'; it = byOutput.get(cur)) cur = inputOf(it) as string;
    return cur;
  };
  // A view that keeps the meaning of its input (only trailing 1s change) is an alias; [N, C, H, W] → [N, CHW] is a Flatten.
  const viewAlias = new Map<string, string>();
  const flattens = new Set<MappedNode>();
  for (const it of items) {
    if (it.mapped.kind !== 'view') continue;
    const out = it.node.outputs[0] as string;
    const src = valueBehind(out);
    const a = g.shape(src), b = g.shape(out);
    if (sameDims(squeezed(a), squeezed(b))) viewAlias.set(out, src);
    else if (b.length === 2 && a.length === 4 && b[0] === a[0] && b[1] === product(a.slice(1))) flattens.add(it);
  }
  const resolve = (v: string): string => {
    let cur = resolveAlias(v);
    for (let steps = 0; viewAlias.has(cur) || aliasOf.has(cur); steps++) {
      if (steps > 2 * items.length) break;
      cur = resolveAlias(viewAlias.get(cur) ?? cur);
    }
    return cur;
  };

  const consumed = new Set<OnnxNode>();
  const failed = new Map<OnnxNode, string>();
  const replaced = new Map<OnnxNode, StructNode>();
  const switches = new Map<Module, string>();
  const layerOf = (v: string): MappedNode | undefined => {
    const it = behind(v);
    return it !== undefined && it.mapped.kind === 'layer' ? it : undefined;
  };
  const only = (v: string): boolean => g.readerCount(v) === 1;

  /** x · gate(conv(act(conv(mean over H, W of x)))), the 1x1 convs reading [N, C, 1, 1]: squeeze-and-excitation. */
  const matchSqueezeExcite = (x: string, s: string): { nodes: OnnxNode[]; input: string; make: () => Module } | null => {
    const gateNode = layerOf(s);
    if (gateNode === undefined || !only(gateNode.node.outputs[0] as string)) return null;
    let gate: SeGate;
    if (gateNode.node.op === 'Sigmoid') gate = 'sigmoid';
    else if (gateNode.node.op === 'HardSigmoid' && Math.abs(float(gateNode.node, 'alpha', 0.2) - 1 / 6) < 1e-6 && float(gateNode.node, 'beta', 0.5) === 0.5) gate = 'hardSigmoid';
    else return null;
    const conv2 = layerOf(inputOf(gateNode) as string);
    if (conv2 === undefined || conv2.node.op !== 'Conv' || !only(conv2.node.outputs[0] as string)) return null;
    const actAt = behind(inputOf(conv2) as string);
    if (actAt === undefined || !only(actAt.node.outputs[0] as string)) return null;
    let activation: SeActivation;
    let actInput: string;
    const silu = replaced.get(actAt.node);
    if (actAt.node.op === 'Relu' && actAt.mapped.kind === 'layer') {
      activation = 'relu';
      actInput = inputOf(actAt) as string;
    } else if (silu !== undefined && silu.kind === 'layer' && actAt.node.op === 'Mul') {
      activation = 'silu';
      actInput = silu.input;
    } else return null;
    const conv1 = layerOf(actInput);
    // A SiLU reads its input twice (x · sigmoid(x)).
    if (conv1 === undefined || conv1.node.op !== 'Conv' || g.readerCount(conv1.node.outputs[0] as string) !== (activation === 'silu' ? 2 : 1)) return null;
    const pool = layerOf(inputOf(conv1) as string);
    if (pool === undefined || !(pool.node.op === 'GlobalAveragePool' || pool.node.op === 'ReduceMean') || resolve(inputOf(pool) as string) !== x || !only(pool.node.outputs[0] as string)) return null;
    const w1 = g.constant(conv1.node.inputs[1]) as Constant, w2 = g.constant(conv2.node.inputs[1]) as Constant;
    const C = w1.dims[1] as number, S = w1.dims[0] as number;
    const oneByOne = (c: OnnxNode, w: Constant): boolean => w.dims[2] === 1 && w.dims[3] === 1 && int(c, 'group', 1) === 1 && ints(c, 'strides', [1, 1]).every((v) => v === 1) && ints(c, 'pads', [0, 0, 0, 0]).every((v) => v === 0);
    if (!oneByOne(conv1.node, w1) || !oneByOne(conv2.node, w2) || w2.dims[0] !== C || w2.dims[1] !== S || g.shape(x)[1] !== C) return null;
    const make1 = (conv1.mapped as { make: () => Module }).make, make2 = (conv2.mapped as { make: () => Module }).make;
    return {
      nodes: [gateNode.node, conv2.node, actAt.node, conv1.node, pool.node],
      input: x,
      make: () => {
        const se = new SqueezeExcite({ channels: C, squeeze: S, activation, gate });
        for (const [from, to] of [[make1(), se.fc1], [make2(), se.fc2]] as const) {
          const f = from as Conv2d;
          copyInto(to.weight, f.weight.f32());
          if (f.bias !== null && to.bias !== null) copyInto(to.bias, f.bias.f32());
          else if (to.bias !== null) copyInto(to.bias, new Float32Array(to.outChannels));
        }
        return se;
      },
    };
  };

  for (const it of items) {
    const n = it.node;
    const m = it.mapped;
    const out = n.outputs[0] as string;
    if (m.kind === 'pattern' && n.op === 'Add') {
      // MatMul then the Add of a constant bias: one Linear.
      const mm = m.inputs.length === 1 ? layerOf(m.inputs[0] as string) : undefined;
      const bias = g.constant(n.inputs.find((i) => g.constants.has(i)));
      if (mm !== undefined && mm.node.op === 'MatMul' && bias !== undefined && only(mm.node.outputs[0] as string)) {
        const w = g.constant(mm.node.inputs[1]) as Constant;
        const outF = w.dims[1] as number;
        if (bias.values.length === outF || bias.values.length === 1) {
          consumed.add(mm.node);
          replaced.set(n, {
            kind: 'layer', source: n, output: out, input: resolve((mm.mapped as { input: string }).input),
            make: () => {
              const b = Float64Array.from({ length: outF }, (_, i) => (bias.values.length === 1 ? bias.values[0] : bias.values[i]) as number);
              return g.channelsLast.has(mm.node.outputs[0] as string) ? channelMatMul(w.dims[0] as number, outF, w.values, b) : linear(w.dims[0] as number, outF, w.values, false, 1, b);
            },
          });
          continue;
        }
      }
    }
    if (m.kind === 'pattern' && n.op === 'Add') {
      const ln = matchLayerNorm(g, { behind, inputOf, resolve, only }, n);
      if (ln !== null) {
        for (const c of ln.nodes) consumed.add(c);
        replaced.set(n, { kind: 'layer', source: n, output: out, input: ln.input, make: ln.make });
        continue;
      }
    }
    if (m.kind === 'pattern' && n.op === 'Mul') {
      const gelu = matchGelu(g, { behind, inputOf, resolve, only }, n);
      if (gelu !== null) {
        for (const c of gelu.nodes) consumed.add(c);
        replaced.set(n, { kind: 'layer', source: n, output: out, input: gelu.input, make: () => new GELU() });
        continue;
      }
    }
    if (m.kind === 'pattern' && n.op === 'Mul' && m.inputs.length === 1) {
      // x times a constant per channel (ConvNeXt's layer scale): a depthwise 1x1 convolution.
      const raw = m.inputs[0] as string;
      const x = resolve(raw);
      const c = g.constant(n.inputs.find((i) => g.constants.has(i)));
      const scales = c === undefined ? null : perChannel(g, raw, c);
      if (scales !== null && g.shape(raw).length === 4) {
        const C = scales.length;
        replaced.set(n, {
          kind: 'layer', source: n, output: out, input: x,
          make: () => {
            const conv = new Conv2d({ inChannels: C, outChannels: C, kernel: 1, groups: C, bias: false });
            copyInto(conv.weight, Float32Array.from(scales));
            return conv;
          },
        });
        continue;
      }
    }
    if (m.kind === 'view') {
      // Reshape to [N, g, C / g, H, W], Transpose(0, 2, 1, 3, 4), Reshape back: a channel shuffle.
      const tr = byOutput.get(resolveAlias(m.input));
      const o = g.shape(out);
      if (tr === undefined || tr.node.op !== 'Transpose' || tr.mapped.kind !== 'pattern' || o.length !== 4 || !only(tr.node.outputs[0] as string)) continue;
      const perm = ints(tr.node, 'perm', []);
      const inner = byOutput.get(resolveAlias(tr.mapped.inputs[0] as string));
      if (inner === undefined || inner.mapped.kind !== 'view' || !sameDims(perm, [0, 2, 1, 3, 4]) || !only(inner.node.outputs[0] as string)) continue;
      const x = valueBehind(inner.node.outputs[0] as string);
      const five = g.shape(inner.node.outputs[0] as string);
      if (!sameDims(g.shape(x), o) || five.length !== 5 || five[0] !== o[0] || (five[1] as number) * (five[2] as number) !== o[1] || five[3] !== o[2] || five[4] !== o[3]) continue;
      consumed.add(tr.node);
      consumed.add(inner.node);
      const groups = five[1] as number, C = o[1] as number;
      replaced.set(n, { kind: 'layer', source: n, output: out, input: x, make: () => ChannelSelect.shuffle(C, groups) });
      continue;
    }
    if (m.kind !== 'join') continue;
    const inputs = m.inputs.map(resolve);
    if (m.join === 'add') {
      const [a, b] = inputs as [string, string];
      replaced.set(n, {
        kind: 'join', source: n, output: out, branches: [a, b], alsoReads: [],
        // A branch that is the fork itself is the identity (x + x keeps one as the body); the main branch is found by structure, not by input order.
        build: ([ba, bb], fork) => residualOf(a === fork && b !== fork ? null : (ba as Module), b === fork ? null : (bb as Module)),
      });
      continue;
    }
    if (m.join === 'concat') {
      if (inputs.length === 1) {
        viewAlias.set(out, inputs[0] as string);
        continue;
      }
      replaced.set(n, { kind: 'join', source: n, output: out, branches: inputs, alsoReads: [], build: (branches) => new Concat(branches) });
      continue;
    }
    // A Mul of two values: x · act(x) (SiLU, HardSwish) or an LKAM gate.
    const [p, q] = inputs as [string, string];
    const act = (x: string, y: string): Module | null => {
      const a = layerOf(y);
      if (a === undefined || resolve(inputOf(a) as string) !== x || !only(a.node.outputs[0] as string)) return null;
      if (a.node.op === 'Sigmoid') {
        consumed.add(a.node);
        return new SiLU();
      }
      if (a.node.op === 'HardSigmoid' && Math.abs(float(a.node, 'alpha', 0.2) - 1 / 6) < 1e-6 && float(a.node, 'beta', 0.5) === 0.5) {
        consumed.add(a.node);
        return new HardSwish();
      }
      return null;
    };
    const pq = act(p, q);
    const fused = pq ?? act(q, p);
    if (fused !== null) {
      replaced.set(n, { kind: 'layer', source: n, output: out, input: pq !== null ? p : q, make: () => fused });
      continue;
    }
    const se = matchSqueezeExcite(p, q) ?? matchSqueezeExcite(q, p);
    if (se !== null) {
      for (const c of se.nodes) consumed.add(c);
      replaced.set(n, { kind: 'layer', source: n, output: out, input: se.input, make: se.make });
      continue;
    }
    let gate: GateMatch;
    try {
      gate = matchGate(g, { behind, inputOf, resolve, only }, p, q);
    } catch (e) {
      if (!(e instanceof ImportProblem)) throw e;
      try {
        gate = matchGate(g, { behind, inputOf, resolve, only }, q, p);
      } catch (e2) {
        if (!(e2 instanceof ImportProblem)) throw e2;
        failed.set(n, `multiplies two values that are not x · sigmoid(x), x · hardsigmoid(x) or an LKAM gate (${e.message})`);
        continue;
      }
    }
    for (const c of gate.nodes) consumed.add(c);
    replaced.set(n, {
      kind: 'join', source: n, output: out, branches: [gate.block], alsoReads: [gate.input],
      build: ([block], fork) => {
        if (fork !== gate.input) throw new ImportProblem(`the LKAM of ${describeNode(n)} does not read the gated block's input`);
        const gated = new Gated(block as Module, gate.lkam());
        switches.set(gated, gate.switches);
        return gated;
      },
    });
  }

  const nodes: StructNode[] = [];
  for (const it of items) {
    const n = it.node;
    if (consumed.has(n)) continue;
    const r = replaced.get(n);
    if (r !== undefined) {
      if (r.kind === 'layer') r.input = resolve(r.input);
      nodes.push(r);
      continue;
    }
    const m = it.mapped;
    const out = n.outputs[0] as string;
    const why = failed.get(n);
    if (why !== undefined) problems.push({ node: n, why });
    else if (m.kind === 'layer') nodes.push({ kind: 'layer', source: n, output: out, input: resolve(m.input), make: m.make });
    else if (m.kind === 'view') {
      if (flattens.has(it)) nodes.push({ kind: 'layer', source: n, output: out, input: valueBehind(out), make: () => new Flatten() });
      else if (!viewAlias.has(out)) problems.push({ node: n, why: `it reshapes [${g.shape(valueBehind(out)).join(',')}] to [${g.shape(out).join(',')}] (only to [N, features], as a Flatten)` });
    } else if (m.kind === 'pattern') problems.push({ node: n, why: m.why });
    else if (m.kind === 'join' && !viewAlias.has(out)) problems.push({ node: n, why: 'a join that no rewrite recognised' });
  }
  // A view's output read through a Flatten reads the value behind the view.
  for (const s of nodes) if (s.kind === 'layer') s.input = resolve(s.input);
  rereadConcats(nodes);
  return { nodes, problems, switches, resolve };
}

/** Concat(x0, ..., xk) where Concat(x0, ..., xk-1) was computed before reads that one: Concat(c, xk). */
function rereadConcats(nodes: StructNode[]): void {
  const seen = new Map<string, string>();
  for (const n of nodes) {
    if (n.kind !== 'join' || !(n.build.length === 1) || n.alsoReads.length > 0 || n.source.op !== 'Concat') continue;
    const key = (list: readonly string[]): string => list.join('\u0000');
    for (let k = n.branches.length - 1; k >= 2; k--) {
      const earlier = seen.get(key(n.branches.slice(0, k)));
      if (earlier !== undefined) {
        seen.set(key(n.branches), n.output);
        n.branches = [earlier, ...n.branches.slice(k)];
        break;
      }
    }
    seen.set(key(n.branches), n.output);
  }
}

interface GateMatch {
  readonly nodes: readonly OnnxNode[];
  readonly lkam: () => LKAM;
  readonly switches: string;
  readonly block: string;
  readonly input: string;
}

interface Lookup {
  behind(v: string): MappedNode | undefined;
  inputOf(it: MappedNode): string | undefined;
  resolve(v: string): string;
  only(v: string): boolean;
}

/** `scale` is switches reshaped to [N, M, 1, 1], computed by LKAM ops from the block's input. */
function matchGate(g: OnnxGraph, l: Lookup, block: string, scale: string): GateMatch {
  const fail = (why: string): never => {
    throw new ImportProblem(`not an LKAM gate: ${why}`);
  };
  const op = (it: MappedNode | undefined): string => it?.node.op ?? 'nothing';
  const s = squeezed(g.shape(scale)), bs0 = g.shape(block);
  if (s.length !== 2 || bs0.length !== 4 || s[1] !== bs0[1]) fail('neither input is one switch per channel of the other');
  const used: OnnxNode[] = [];
  let at = l.behind(scale);
  let threshold: number | null = null;
  let binary = false;
  if (at !== undefined && at.node.op === 'Mul' && at.mapped.kind === 'join') {
    // s · Cast(s >= threshold): sigmoid switches that are off under the threshold.
    const [a, b] = at.mapped.inputs.map(l.resolve) as [string, string];
    const castA = l.behind(a), castB = l.behind(b);
    const cast = op(castB) === 'Cast' ? castB : op(castA) === 'Cast' ? castA : undefined;
    const sv = cast === castB ? a : b;
    const ge = cast === undefined ? undefined : l.behind(cast.node.inputs[0] as string);
    if (cast === undefined || ge === undefined || ge.node.op !== 'GreaterOrEqual') return fail('a Mul before the scale that is not s · Cast(s >= threshold)');
    const t = g.constant(ge.node.inputs[1]);
    if (t === undefined || t.values.length !== 1 || l.resolve(ge.node.inputs[0] as string) !== sv) fail('the threshold mask does not compare the switches with a constant');
    threshold = shortestFloat((t as Constant).values[0] as number);
    used.push(at.node, cast.node, ge.node);
    at = l.behind(sv);
  } else if (at !== undefined && at.node.op === 'Cast') {
    // Cast(s > 0): binary switches.
    const gt = l.behind(at.node.inputs[0] as string);
    const t = gt === undefined ? undefined : g.constant(gt.node.inputs[1]);
    if (gt === undefined || gt.node.op !== 'Greater' || t === undefined || t.values.length !== 1 || t.values[0] !== 0) fail('a Cast before the scale that is not Cast(s > 0)');
    used.push(at.node, (gt as MappedNode).node);
    at = l.behind((gt as MappedNode).node.inputs[0] as string);
    binary = true;
  }
  if (at === undefined) return fail('the scale has no producer');
  const switches = at.node.outputs[0] as string;
  let switchKind: SwitchKind;
  if (at.node.op === 'Sigmoid') switchKind = 'sigmoid';
  else if (at.node.op === 'Clip') {
    const [lo, hi] = clipBounds(g, at.node);
    if (lo !== 0 || hi !== 1) fail(`switches clipped to [${lo}, ${hi}], not [0, 1]`);
    switchKind = binary ? 'binary' : 'hard';
  } else return fail(`switches made by ${at.node.op}, not Clip(0, 1) or Sigmoid`);
  if (switchKind !== 'sigmoid' && threshold !== null) fail(`a threshold mask on ${switchKind} switches`);
  if (switchKind === 'sigmoid' && binary) fail('Cast(s > 0) on sigmoid switches');
  used.push(at.node);
  const fc = l.behind(l.inputOf(at) as string);
  if (fc === undefined || fc.mapped.kind !== 'layer' || fc.node.op !== 'Gemm') return fail(`${op(fc)} before the switches, not Gemm`);
  const pool = l.behind(l.inputOf(fc) as string);
  const conv = pool === undefined ? undefined : l.behind(l.inputOf(pool) as string);
  if (conv === undefined || conv.node.op !== 'Conv' || conv.mapped.kind !== 'layer') return fail(`${op(conv)} before the pooling, not a 1x1 Conv`);
  const input = l.resolve(conv.mapped.input);
  const w = g.constant(conv.node.inputs[1]) as Constant;
  if (w.dims[2] !== 1 || w.dims[3] !== 1 || int(conv.node, 'group', 1) !== 1 || ints(conv.node, 'strides', [1, 1]).some((v) => v !== 1) || ints(conv.node, 'pads', [0, 0, 0, 0]).some((v) => v !== 0)) {
    fail('the bank is not a plain 1x1 convolution');
  }
  const bank = w.dims[0] as number;
  const inChannels = w.dims[1] as number;
  const [, , H, W] = g.shape(input) as [number, number, number, number];
  const p = (pool as MappedNode).node;
  let poolKind: LkamPool;
  let grid = 1;
  if (p.op === 'GlobalMaxPool' || p.op === 'ReduceMax') poolKind = 'max';
  else if (p.op === 'GlobalAveragePool' || p.op === 'ReduceMean') poolKind = 'avg';
  else if (p.op === 'MaxPool' || p.op === 'AveragePool') {
    poolKind = p.op === 'MaxPool' ? 'max' : 'avg';
    const k = ints(p, 'kernel_shape', []);
    const st = ints(p, 'strides', [1, 1]);
    if (ints(p, 'pads', [0, 0, 0, 0]).some((v) => v !== 0)) fail('padded grid pooling');
    const fits = (gr: number): boolean => {
      const rows = gridWindow(H, gr), cols = gridWindow(W, gr);
      return rows.kernel === k[0] && cols.kernel === k[1] && rows.stride === st[0] && cols.stride === st[1];
    };
    grid = Array.from({ length: Math.min(H, W) }, (_, i) => i + 1).find(fits) ?? fail(`a ${k.join('x')} pool with stride ${st.join('x')} on ${H}x${W} maps is not a grid`);
  } else return fail(`${p.op} pooling`);
  used.push(fc.node, p, conv.node);
  const bs = g.shape(block);
  const M = g.shape(switches)[1] as number;
  if (bs.length !== 4 || bs[1] !== M) fail(`the block gives [${bs.join(',')}] for ${M} switches`);
  const makeFc = fc.mapped.make;
  const makeBank = conv.mapped.make;
  return {
    nodes: used,
    switches,
    block,
    input,
    lkam: () => {
      const k = new LKAM({ inChannels, switches: M, bank, pool: poolKind, grid, switchKind, ...(switchKind === 'sigmoid' ? { threshold: threshold ?? 0 } : {}) });
      const bankConv = makeBank() as unknown as { weight: { f32(): Float32Array }; bias: { f32(): Float32Array } | null };
      copyInto(k.conv.weight, bankConv.weight.f32());
      copyInto(k.conv.bias as NonNullable<typeof k.conv.bias>, bankConv.bias === null ? new Float32Array(bank) : bankConv.bias.f32());
      const lin = makeFc();
      if (!(lin instanceof Linear) || lin.inFeatures !== bank * grid * grid) throw new ImportProblem('the fully connected layer of an LKAM does not read bank x grid x grid features');
      copyInto(k.fc.weight, lin.weight.f32());
      copyInto(k.fc.bias as NonNullable<typeof k.fc.bias>, lin.bias === null ? new Float32Array(M) : lin.bias.f32());
      return k;
    },
  };
}


/** Mul(Mul(x, Add(Erf(Div(x, √2)), 1)), 0.5): GELU as PyTorch writes it before opset 20. */
function matchGelu(g: OnnxGraph, l: Lookup, outer: OnnxNode): { nodes: OnnxNode[]; input: string } | null {
  const scalar = (n: OnnxNode, v: number): boolean => {
    const c = g.constant(n.inputs.find((i) => g.constants.has(i)));
    return c !== undefined && c.values.length === 1 && Math.abs((c.values[0] as number) - v) < 1e-6 * Math.max(1, Math.abs(v));
  };
  if (!scalar(outer, 0.5)) return null;
  const inner = l.behind(g.dataInputs(outer)[0] as string);
  if (inner === undefined || inner.node.op !== 'Mul' || inner.mapped.kind !== 'join') return null;
  for (const [xi, ai] of [[0, 1], [1, 0]] as const) {
    const x = l.resolve(inner.mapped.inputs[xi] as string);
    const add = l.behind(inner.mapped.inputs[ai] as string);
    if (add === undefined || add.node.op !== 'Add' || add.mapped.kind !== 'pattern' || !scalar(add.node, 1)) continue;
    const erf = l.behind(add.mapped.inputs[0] as string);
    if (erf === undefined || erf.node.op !== 'Erf' || erf.mapped.kind !== 'pattern') continue;
    const div = l.behind(erf.mapped.inputs[0] as string);
    if (div === undefined || div.node.op !== 'Div' || div.mapped.kind !== 'pattern' || !scalar(div.node, Math.SQRT2) || l.resolve(div.mapped.inputs[0] as string) !== x) continue;
    if (![inner, add, erf, div].every((it) => l.only(it.node.outputs[0] as string))) continue;
    return { nodes: [inner.node, add.node, erf.node, div.node], input: x };
  }
  return null;
}

/** One value per channel of x from a constant that broadcasts along its channel axis only (or a scalar); null otherwise. */
function perChannel(g: OnnxGraph, x: string, c: Constant): number[] | null {
  const s = g.shape(x);
  if (s.length < 2) return null;
  const last = g.channelsLast.has(x);
  const axis = last ? s.length - 1 : 1;
  const C = s[axis] as number;
  const size = c.values.length;
  if (size === 1) return Array.from({ length: C }, () => c.values[0] as number);
  if (size !== C) return null;
  // The constant's dims, aligned to x's from the right, are 1 except at the channel axis.
  const off = s.length - c.dims.length;
  if (off < 0 || c.dims.some((d, i) => (i + off === axis ? d !== C : d !== 1))) return null;
  return [...c.values];
}

/**
 * LayerNorm over channels as PyTorch decomposes it before opset 17: d = x - mean(x), then
 * d / sqrt(mean(d^2) + eps) · weight + bias, the means over the channel axis.
 */
function matchLayerNorm(g: OnnxGraph, l: Lookup, add: OnnxNode): { nodes: OnnxNode[]; input: string; make: () => Module } | null {
  const constantOf = (n: OnnxNode): Constant | undefined => g.constant(n.inputs.find((i) => g.constants.has(i)));
  const dataOf = (n: OnnxNode): string | undefined => g.dataInputs(n)[0];
  const node = (v: string | undefined, op: string): MappedNode | undefined => {
    const it = v === undefined ? undefined : l.behind(v);
    return it !== undefined && it.node.op === op && l.only(it.node.outputs[0] as string) ? it : undefined;
  };
  const b = constantOf(add);
  const mul = node(dataOf(add), 'Mul');
  const w = mul === undefined ? undefined : constantOf(mul.node);
  const div = mul === undefined ? undefined : l.behind(dataOf(mul.node) as string);
  if (b === undefined || w === undefined || div === undefined || div.node.op !== 'Div' || g.dataInputs(add).length !== 1) return null;
  const [dv, sv] = g.dataInputs(div.node) as [string, string];
  const sub = l.behind(dv);
  const sqrt = node(sv, 'Sqrt');
  const eps = sqrt === undefined ? undefined : node(dataOf(sqrt.node), 'Add');
  const epsValue = eps === undefined ? undefined : constantOf(eps.node);
  const var_ = eps === undefined ? undefined : node(dataOf(eps.node), 'ReduceMean');
  const pow = var_ === undefined ? undefined : node(dataOf(var_.node), 'Pow');
  if (sub === undefined || sub.node.op !== 'Sub' || pow === undefined || epsValue === undefined || l.resolve(dataOf(pow.node) as string) !== l.resolve(dv)) return null;
  const two = constantOf(pow.node);
  if (two === undefined || two.values[0] !== 2 || g.readerCount(sub.node.outputs[0] as string) !== 2) return null;
  const [x, mv] = g.dataInputs(sub.node) as [string, string];
  const mean = node(mv, 'ReduceMean');
  if (mean === undefined || l.resolve(dataOf(mean.node) as string) !== l.resolve(x)) return null;
  const s = g.shape(x);
  const axis = g.channelsLast.has(x) ? s.length - 1 : 1;
  for (const r of [mean.node, (var_ as MappedNode).node]) {
    const axes = (attribute(r.proto, 'axes') as number[] | undefined) ?? (g.constant(r.inputs[1])?.values ? [...(g.constant(r.inputs[1]) as Constant).values] : []);
    if (axes.length !== 1 || ((axes[0] as number) < 0 ? (axes[0] as number) + s.length : axes[0]) !== axis || int(r, 'keepdims', 1) !== 1) return null;
  }
  const C = s[axis] as number;
  const weights = perChannel(g, x, w), biases = perChannel(g, x, b);
  if (weights === null || biases === null || weights.length !== C) return null;
  const e = shortestFloat(epsValue.values[0] as number);
  return {
    nodes: [(mul as MappedNode).node, div.node, sub.node, (sqrt as MappedNode).node, (eps as MappedNode).node, (var_ as MappedNode).node, pow.node, mean.node],
    input: l.resolve(x),
    make: () => channelLayerNorm(C, e, Float64Array.from(weights), Float64Array.from(biases)),
  };
}
