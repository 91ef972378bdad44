/**
 * The ONNX conformance cases of Debian's libonnx-testdata (data/node, data/pytorch-converted,
 * data/pytorch-operator): every case whose ops the importer maps and whose input is an image batch
 * [N, C, H, W] is imported and run on its recorded input, and its output compared with the recorded
 * one. Inputs after the first are weights the case passes as graph inputs: they become initializers
 * from its test_data_set_0. The test prints the cases run and each case skipped with its reason.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { OnnxError } from '../../src/io/errors.js';
import { onnx, tensorValues, type TensorProto } from '../../src/io/onnx-graph.js';
import { IMPORT_OPSETS, importableOps, importOnnx } from '../../src/io/onnx-import.js';
import { findMismatch, maxAbs, close } from '../util/tolerance.js';
import { useEngine } from './helpers.js';
import { runOurs } from './onnx-helpers.js';

const ROOT = '/usr/share/libonnx-testdata/data';
const SUITES = ['node', 'pytorch-converted', 'pytorch-operator'] as const;

/** Cases that passed when the harness was last changed, per suite: a regression fails the test. */
const PASSING_AT_LEAST: Record<(typeof SUITES)[number], number> = { node: 31, 'pytorch-converted': 22, 'pytorch-operator': 3 };

type Outcome = { readonly kind: 'pass' } | { readonly kind: 'fail' | 'skip'; readonly why: string };

function tensor(path: string): TensorProto {
  return onnx.TensorProto.decode(readFileSync(path));
}

function runCase(dir: string, mapped: ReadonlySet<string>): Outcome {
  const model = onnx.ModelProto.decode(readFileSync(join(dir, 'model.onnx')));
  const graph = model.graph;
  if (graph === null || graph === undefined) return { kind: 'skip', why: 'no graph' };
  const opset = Number((model.opsetImport ?? []).find((o) => (o.domain ?? '') === '')?.version ?? 0);
  if (opset < IMPORT_OPSETS.min) return { kind: 'skip', why: `opset ${opset}, before ${IMPORT_OPSETS.min}` };
  const ops = [...new Set((graph.node ?? []).map((n) => (n.domain ? `${n.domain}.` : '') + (n.opType ?? '')))];
  const unmapped = ops.filter((o) => !mapped.has(o));
  if (unmapped.length > 0) return { kind: 'skip', why: `uses ${unmapped.join(', ')}` };
  const data = join(dir, 'test_data_set_0');
  if (!existsSync(data)) return { kind: 'skip', why: 'no test_data_set_0' };
  const initialized = new Set((graph.initializer ?? []).map((t) => t.name ?? ''));
  const inputs = (graph.input ?? []).filter((i) => !initialized.has(i.name ?? ''));
  const first = inputs[0];
  if (first === undefined) return { kind: 'skip', why: 'no graph input' };
  let xt: TensorProto;
  try {
    xt = tensor(join(data, 'input_0.pb'));
  } catch {
    return { kind: 'skip', why: 'its input is not a tensor' };
  }
  if ((first.type?.tensorType ?? null) === null) return { kind: 'skip', why: 'its input is not a tensor' };
  if (xt.dataType !== onnx.TensorProto.DataType.FLOAT) return { kind: 'skip', why: `its input is ${onnx.TensorProto.DataType[xt.dataType ?? 0] ?? '?'}, not float` };
  const x = tensorValues(xt);
  if (x.dims.length !== 4) return { kind: 'skip', why: `its input is [${x.dims.join(', ')}], not an image batch [N, C, H, W]` };
  // The other inputs are weights: they become initializers with the case's values.
  inputs.slice(1).forEach((inp, k) => {
    const t = tensor(join(data, `input_${k + 1}.pb`));
    graph.initializer = [...(graph.initializer ?? []), { ...t, name: inp.name ?? '' }];
  });
  if ((graph.output ?? []).length !== 1) return { kind: 'skip', why: `${(graph.output ?? []).length} graph outputs` };
  const expected = tensorValues(tensor(join(data, 'output_0.pb')));
  const bytes = onnx.ModelProto.encode(model).finish();
  let im: ReturnType<typeof importOnnx>;
  try {
    im = importOnnx(bytes, { file: 'model.onnx', inputShape: x.dims.slice(1) });
  } catch (e) {
    if (e instanceof OnnxError) return { kind: 'fail', why: e.message.replace(/; mapped ops: .*$/, '') };
    throw e;
  }
  const ours = runOurs(im.model, Float32Array.from(x.values), x.dims).logits;
  const want = Float32Array.from(expected.values);
  const bad = findMismatch(ours, want, close, maxAbs(want));
  if (bad === null) return { kind: 'pass' };
  return { kind: 'fail', why: bad.index < 0 ? `${bad.actual} outputs, expected ${bad.expected}` : `output ${bad.index} is ${bad.actual}, expected ${bad.expected}` };
}

describe('ONNX conformance cases of libonnx-testdata', { skip: existsSync(ROOT) ? false : `${ROOT} is not installed (apt-get install libonnx-testdata)` }, () => {
  before(async () => {
    await useEngine();
  });

  for (const suite of SUITES) {
    test(`${suite}: every 2-D image case of a mapped op`, () => {
      const mapped = new Set(importableOps());
      const dirs = readdirSync(join(ROOT, suite)).filter((d) => existsSync(join(ROOT, suite, d, 'model.onnx'))).sort();
      const results = dirs.map((d) => {
        try {
          return [d, runCase(join(ROOT, suite, d), mapped)] as const;
        } catch (e) {
          return [d, { kind: 'fail', why: `error: ${(e as Error).message}` } as Outcome] as const;
        }
      });
      const passed = results.filter(([, r]) => r.kind === 'pass');
      const failed = results.filter(([, r]) => r.kind === 'fail');
      const skipped = results.filter(([, r]) => r.kind === 'skip');
      const lines = [
        `${suite}: ${dirs.length} cases; ${passed.length + failed.length} run (2-D image cases of mapped ops): ${passed.length} pass, ${failed.length} fail; ${skipped.length} skipped`,
        ...passed.map(([d]) => `  pass ${d}`),
        ...failed.map(([d, r]) => `  FAIL ${d}: ${(r as { why: string }).why}`),
        ...skipped.map(([d, r]) => `  skip ${d}: ${(r as { why: string }).why}`),
      ];
      console.log(lines.join('\n'));
      assert.ok(passed.length >= PASSING_AT_LEAST[suite], `${suite}: ${passed.length} cases pass, ${PASSING_AT_LEAST[suite]} did before`);
    });
  }
});
