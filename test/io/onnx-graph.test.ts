/**
 * The ONNX reader checks a graph's structure before anything walks it: values defined once, nodes in
 * topological order (so no cycles), outputs defined, tensor dims valid, external data refused, a Gemm
 * weight 2-D. Each refusal is an OnnxError naming the file, node and value; the CLI exits 3.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OnnxError } from '../../src/io/errors.js';
import { checkGraph, encodeModelProto, floatTensor, floatValueInfo, intsAttr, onnx, readModelProto, type GraphProto, type NodeProto, type TensorProto } from '../../src/io/onnx-graph.js';
import { importOnnx } from '../../src/io/onnx-import.js';
import { useEngine } from './helpers.js';
import { cli, explain, tempDir } from '../cli/helpers.js';

const relu = (name: string, input: string, output: string): NodeProto => ({ opType: 'Relu', name, input: [input], output: [output] });
const weight = (name: string, dims: number[]): TensorProto => ({ name, dims, dataType: onnx.TensorProto.DataType.FLOAT, rawData: new Uint8Array(4 * Math.max(0, dims.reduce((a, b) => a * b, 1))) });
const conv = (w: string): NodeProto => ({ opType: 'Conv', name: 'conv', input: ['x', w], output: ['y'] });

function graph(nodes: NodeProto[], initializer: TensorProto[] = [], output = 'y'): GraphProto {
  return { name: 'g', node: nodes, initializer, input: [floatValueInfo('x', [1, 1, 4, 4])], output: [floatValueInfo(output, [1, 1, 4, 4])] };
}

function modelBytes(g: GraphProto): Uint8Array {
  return encodeModelProto({ irVersion: 8, opsetImport: [{ domain: '', version: 13 }], graph: g });
}

const BAD: Array<[string, GraphProto, RegExp]> = [
  ['three Relus defining one value twice (a cycle)', graph([relu('a', 'x', 'h'), relu('b', 'h', 'h'), relu('c', 'h', 'y')]), /Relu node b defines h, which an earlier node already defines; every value is defined once/],
  ['a cycle through two nodes', graph([relu('a', 'y', 'h'), relu('b', 'h', 'y')]), /1 node input is not defined before the node \(nodes must be in topological order, with no cycles\): Relu node a reads y/],
  ['nodes out of order', graph([relu('b', 'h', 'y'), relu('a', 'x', 'h')]), /Relu node b reads h/],
  ['a node overwriting the graph input', graph([relu('a', 'x', 'x'), relu('b', 'x', 'y')]), /Relu node a defines x, which is a graph input/],
  ['a node overwriting an initializer', graph([relu('a', 'x', 'w'), conv('w')], [weight('w', [1, 1, 3, 3])]), /Relu node a defines w, which is an initializer/],
  ['an initializer defined twice', graph([conv('w')], [weight('w', [1, 1, 3, 3]), weight('w', [1, 1, 3, 3])]), /initializer w is defined twice/],
  ['a value nobody defines', graph([{ opType: 'Add', name: 'add', input: ['x', 'ghost'], output: ['y'] }]), /Add node add reads ghost/],
  ['a missing graph output', graph([relu('a', 'x', 'h')]), /graph output y is not defined by any node/],
  ['weight dims [0,1,3,3]', graph([conv('w')], [weight('w', [0, 1, 3, 3])]), /initializer w: dim 0 of \[0,1,3,3\] is 0, expected a whole number >= 1/],
  ['weight dims [-32,-1,3,3]', graph([conv('w')], [weight('w', [-32, -1, 3, 3])]), /initializer w: dim 0 of \[-32,-1,3,3\] is -32/],
  ['a Constant node with a negative dim', graph([{ opType: 'Constant', name: 'k', output: ['c'], attribute: [{ name: 'value', type: onnx.AttributeProto.AttributeType.TENSOR, t: weight('c', [2, -1]) }] }, relu('a', 'x', 'y')]), /Constant node k: attribute value tensor c: dim 1 of \[2,-1\] is -1/],
  ['a Gemm with a 1-D weight', graph([{ opType: 'Flatten', name: 'f', input: ['x'], output: ['h'] }, { opType: 'Gemm', name: 'fc', input: ['h', 'w'], output: ['y'] }], [weight('w', [16])]), /Gemm node fc: its weight w is \[16\], expected 2-D/],
  ['external data by location', graph([conv('w')], [{ ...weight('w', [1, 1, 3, 3]), rawData: null, dataLocation: onnx.TensorProto.DataLocation.EXTERNAL, externalData: [{ key: 'location', value: '/etc/passwd' }] }]), /initializer w: external data is not supported/],
  ['external data entries only', graph([conv('w')], [{ ...weight('w', [1, 1, 3, 3]), externalData: [{ key: 'location', value: 'w.bin' }] }]), /initializer w: external data is not supported/],
  ['a graph input dim of -5', { ...graph([relu('a', 'x', 'y')]), input: [{ name: 'x', type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 1 }, { dimValue: -5 }] } } } }] }, /graph input x: dim 1 is -5/],
];

describe('ONNX graph reading', () => {
  test('a well-formed graph passes, with initializers also listed as inputs (IR < 4)', () => {
    const g = graph([conv('w')], [floatTensor('w', [1, 1, 3, 3], new Float32Array(9))]);
    assert.doesNotThrow(() => checkGraph(g, 'ok.onnx'));
    assert.doesNotThrow(() => checkGraph({ ...g, input: [...(g.input ?? []), floatValueInfo('w', [1, 1, 3, 3], false)] }, 'ok.onnx'));
    assert.doesNotThrow(() => checkGraph(graph([{ opType: 'Resize', name: 'r', input: ['x', '', 's'], output: ['y'] }], [floatTensor('s', [4], new Float32Array(4)), weight('roi', [0])]), 'ok.onnx'));
  });

  test('malformed graphs are refused, naming the node and the value', () => {
    for (const [label, g, pattern] of BAD) {
      assert.throws(() => readModelProto(modelBytes(g), 'bad.onnx'), (e: unknown) => e instanceof OnnxError && e.message.startsWith('bad.onnx: ') && pattern.test(e.message), label);
    }
  });

  test('an error line stays short however many nodes are at fault', () => {
    const nodes = Array.from({ length: 100_000 }, (_, i) => relu(`r${i}`, `missing${i}`, i === 99_999 ? 'y' : `h${i}`));
    const t0 = performance.now();
    assert.throws(() => checkGraph(graph(nodes), 'many.onnx'), (e: unknown) => {
      assert.ok(e instanceof OnnxError);
      assert.ok(e.message.length < 300, e.message);
      assert.match(e.message, /100000 node inputs are not defined .*Relu node r4 reads missing4 and 99995 more$/);
      return true;
    });
    assert.ok(performance.now() - t0 < 2000, 'linear in the node count');
  });

  test('a layer that refuses its arguments is a node that does not map, not an internal error', async () => {
    await useEngine();
    const g = graph([{ opType: 'Conv', name: 'c', input: ['x', 'w'], output: ['y'], attribute: [intsAttr('pads', [5, 5, 5, 5])] }], [floatTensor('w', [1, 1, 3, 3], new Float32Array(9))]);
    assert.throws(() => importOnnx(modelBytes(g), { file: 'pads.onnx' }), (e: unknown) => e instanceof OnnxError && /^pads\.onnx: .*padding \[5,5\] should be at most the kernel's reach 2/.test(e.message));
  });

  const dir = tempDir('parsimony-onnx-graph-');
  test('parsimony import refuses them with exit 3 and one line', async () => {
    for (const [label, g, pattern] of [0, 8, 11, 12].map((i) => BAD[i] as (typeof BAD)[number])) {
      const file = join(dir(), 'bad.onnx');
      writeFileSync(file, modelBytes(g));
      const args = ['import', file, '--out', join(dir(), 'out.safetensors')];
      const r = await cli(args);
      assert.equal(r.code, 3, `${label}: ${explain(args, r)}`);
      assert.match(r.stderr, pattern, `${label}: ${explain(args, r)}`);
      assert.equal(r.stderr.trim().split('\n').filter((l) => !/native kernels are not built/.test(l)).length, 1, explain(args, r));
    }
    const huge = join(dir(), 'huge.onnx');
    writeFileSync(huge, modelBytes({ ...graph([relu('a', 'x', 'y')]), input: [floatValueInfo('x', [1, 1, 100000, 100000])] }));
    const args = ['import', huge, '--out', join(dir(), 'huge.safetensors')];
    const r = await cli(args);
    assert.equal(r.code, 3, explain(args, r));
    assert.match(r.stderr, /huge\.onnx: architecture: the activations of one image reach 37\.3 GiB here/, explain(args, r));
  });
});
