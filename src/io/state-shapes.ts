/**
 * The parameters and buffers a layer spec will allocate, computed from the spec alone.
 *
 * A model file's architecture is untrusted input: building it allocates whatever its numbers ask for.
 * The loader first derives the state each layer needs from these rules, one per layer type, and
 * checks it against the tensors the file really holds; only then does it build. A rule mirrors its
 * layer's builder in src/nn (same fields, same defaults); `test/io/state-shapes.test.ts` checks every
 * registered layer type against the modules themselves.
 */
import type { ModuleSpec } from '../nn/module.js';
import { isLayerSpec, LayerBudget, SpecError, SpecReader } from '../nn/registry.js';

export { MAX_SPEC_DEPTH, SpecError } from '../nn/registry.js';

export interface StateRule {
  /** Own parameters and buffers: [name, shape]. */
  readonly own?: (r: SpecReader) => Array<readonly [string, number[]]>;
  /** Child specs by module name (the name that prefixes their tensors) and their field path. */
  readonly children?: (r: SpecReader) => Array<readonly [name: string, field: string, spec: unknown]>;
}

const rules = new Map<string, StateRule>();

export function registerStateRule(type: string, rule: StateRule): void {
  if (rules.has(type)) throw new Error(`state rule for '${type}' is registered twice`);
  rules.set(type, rule);
}

export function hasStateRule(type: string): boolean {
  return rules.has(type);
}

export interface ExpectedState {
  /** Tensor name → shape. */
  readonly shapes: Map<string, number[]>;
  /** Layer types that have no rule (unknown ones, or new ones without a rule), with their paths. */
  readonly unruled: Array<{ readonly type: string; readonly path: string }>;
}

/** The state an architecture needs, or a SpecError naming the field at fault. */
export function expectedState(spec: unknown): ExpectedState {
  const shapes = new Map<string, number[]>();
  const unruled: Array<{ type: string; path: string }> = [];
  const budget = new LayerBudget();
  const walk = (s: unknown, path: string, prefix: string, depth: number): void => {
    budget.count(path, depth);
    if (!isLayerSpec(s)) throw new SpecError(path, `should be a layer spec {type, ...}, got ${JSON.stringify(s)?.slice(0, 80)}`);
    const spec: ModuleSpec = s;
    const rule = rules.get(spec.type);
    if (rule === undefined) {
      unruled.push({ type: spec.type, path });
      return;
    }
    const r = new SpecReader(spec, path, depth, budget);
    for (const [name, shape] of rule.own?.(r) ?? []) {
      const full = prefix + name;
      if (shapes.has(full)) throw new SpecError(path, `two layers would both own tensor ${full}`);
      shapes.set(full, shape);
    }
    for (const [name, field, child] of rule.children?.(r) ?? []) {
      walk(child, path === '' ? field : `${path}.${field}`, `${prefix}${name}.`, depth + 1);
    }
  };
  walk(spec, '', '', 0);
  return { shapes, unruled };
}

const stateless: StateRule = {};
for (const type of ['ReLU', 'MaxPool2d', 'AvgPool2d', 'GlobalAvgPool', 'GlobalMaxPool', 'Flatten', 'Dropout']) registerStateRule(type, stateless);

registerStateRule('Conv2d', {
  own: (r) => {
    const inC = r.int('inChannels');
    const outC = r.int('outChannels');
    const [kh, kw] = r.pair('kernel');
    const groups = r.int('groups', 1, 1);
    if (inC % groups !== 0 || outC % groups !== 0) throw new SpecError(r.path, `${inC} input and ${outC} output channels should both be divisible by groups=${groups}`);
    const own: Array<[string, number[]]> = [['weight', [outC, inC / groups, kh, kw]]];
    if (r.bool('bias', true)) own.push(['bias', [outC]]);
    return own;
  },
});

registerStateRule('BatchNorm2d', {
  own: (r) => {
    const c = r.int('channels');
    return [['gamma', [c]], ['beta', [c]], ['runningMean', [c]], ['runningVar', [c]]];
  },
});

registerStateRule('Linear', {
  own: (r) => {
    const inF = r.int('inFeatures');
    const outF = r.int('outFeatures');
    const own: Array<[string, number[]]> = [['weight', [outF, inF]]];
    if (r.bool('bias', true)) own.push(['bias', [outF]]);
    return own;
  },
});

registerStateRule('Sequential', {
  children: (r) => {
    const layers = r.child('layers');
    if (!Array.isArray(layers)) throw new SpecError(r.path === '' ? 'layers' : `${r.path}.layers`, 'should be a list of layer specs');
    return layers.map((l, i) => [String(i), `layers[${i}]`, l] as const);
  },
});

registerStateRule('Residual', {
  children: (r) => {
    const shortcut = r.child('shortcut');
    const out: Array<readonly [string, string, unknown]> = [['body', 'body', r.child('body')]];
    if (shortcut !== null && shortcut !== undefined) out.push(['shortcut', 'shortcut', shortcut]);
    return out;
  },
});

registerStateRule('LKAM', {
  own: (r) => {
    const inC = r.int('inChannels');
    const switches = r.int('switches');
    const bank = r.int('bank', 1, 4);
    const grid = r.int('grid', 1, 1);
    return [['conv.weight', [bank, inC, 1, 1]], ['conv.bias', [bank]], ['fc.weight', [switches, bank * grid * grid]], ['fc.bias', [switches]]];
  },
});

registerStateRule('Gated', {
  children: (r) => [['block', 'block', r.child('block')], ['lkam', 'lkam', r.child('lkam')]],
});

for (const type of ['Clip', 'Sigmoid', 'SiLU', 'HardSigmoid', 'HardSwish', 'GELU', 'ChannelSelect', 'Pad2d']) registerStateRule(type, stateless);

registerStateRule('Concat', {
  children: (r) => {
    const branches = r.child('branches');
    if (!Array.isArray(branches) || branches.length === 0) throw new SpecError(r.path === '' ? 'branches' : `${r.path}.branches`, 'should be a non-empty list of layer specs');
    return branches.map((b, i) => [String(i), `branches[${i}]`, b] as const);
  },
});

registerStateRule('SqueezeExcite', {
  own: (r) => {
    const C = r.int('channels'), S = r.int('squeeze');
    return [['fc1.weight', [S, C, 1, 1]], ['fc1.bias', [S]], ['fc2.weight', [C, S, 1, 1]], ['fc2.bias', [C]]];
  },
});

registerStateRule('ChannelLayerNorm', {
  own: (r) => {
    const C = r.int('channels');
    return [['weight', [C]], ['bias', [C]]];
  },
});
