import { after, before, describe, test } from 'node:test';
import { metadataCrc } from '../../src/io/safetensors.js';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { engine } from '../../src/autograd/engine.js';
import { ModelFileError } from '../../src/io/errors.js';
import { decodeModel, encodeModel } from '../../src/io/model-file.js';
import { loadModel, saveModel, writeFileAtomic } from '../../src/io/node-files.js';
import { encodeSafetensors, parseSafetensors, readTensor, type TensorRecord } from '../../src/io/safetensors.js';
import { MAX_SPEC_DEPTH } from '../../src/io/state-shapes.js';
import { manualSeed } from '../../src/nn/layers.js';
import type { Module } from '../../src/nn/module.js';
import { UnknownModuleError } from '../../src/nn/registry.js';
import { randomizeState, stateValues, tinyDense, tinyGated, useEngine } from './helpers.js';

const META = { inputShape: [1, 6, 6], classNames: ['a', 'b', 'c'], training: { epochs: 3, accuracy: 0.5, note: 'tiny' } };

/** Re-encodes a file after editing its header object (the length field and padding follow). */
function editHeader(bytes: Uint8Array, edit: (h: Record<string, any>) => void): Uint8Array {
  const f = parseSafetensors(bytes);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true))));
  const data = bytes.subarray(bytes.length - [...f.tensors.values()].reduce((s, t) => s + t.end - t.begin, 0));
  edit(header);
  // The edit stands for a writer's choice, not corruption: the metadata checksum follows it.
  const meta = header['__metadata__'];
  if (meta !== null && typeof meta === 'object' && typeof meta['metadata_crc32'] === 'string') meta['metadata_crc32'] = metadataCrc(Object.entries(meta) as Array<[string, string]>);
  const json = new TextEncoder().encode(JSON.stringify(header));
  const n = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + n + data.length);
  new DataView(out.buffer).setUint32(0, n, true);
  out.fill(0x20, 8, 8 + n);
  out.set(json, 8);
  out.set(data, 8 + n);
  return out;
}

function editArchitecture(bytes: Uint8Array, edit: (spec: any) => void): Uint8Array {
  return editHeader(bytes, (h) => {
    const spec = JSON.parse(h['__metadata__'].architecture);
    edit(spec);
    h['__metadata__'].architecture = JSON.stringify(spec);
  });
}

function rejects(bytes: Uint8Array, pattern: RegExp, check?: (e: ModelFileError) => void): void {
  assert.throws(() => decodeModel(bytes, { file: 'm.safetensors' }), (e: unknown) => {
    assert.ok(e instanceof ModelFileError, `expected ModelFileError, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    assert.match(e.message, /^m\.safetensors: /);
    assert.match(e.message, pattern);
    check?.(e);
    return true;
  });
}

function assertSameState(a: Module, b: Module): void {
  const va = stateValues(a);
  const vb = stateValues(b);
  assert.deepEqual([...vb.keys()], [...va.keys()]);
  for (const [k, v] of va) assert.deepEqual(vb.get(k), v, k);
}

describe('model files', () => {
  let dir = '';
  before(async () => {
    await useEngine();
    manualSeed(3);
    dir = mkdtempSync(join(tmpdir(), 'parsimony-model-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('dense and LKAM-gated models round-trip bit for bit, buffers, specs and metadata included', () => {
    for (const make of [tinyDense, tinyGated]) {
      const m = make();
      randomizeState(m, 11);
      const bytes = encodeModel(m, META);
      const { model, meta } = decodeModel(bytes);
      assert.deepEqual(model.spec(), m.spec());
      assertSameState(m, model);
      assert.deepEqual(meta, META);
      // The loaded model computes what the original computes.
      const e = engine();
      const x = e.tensor(Float32Array.from({ length: 2 * 36 }, (_, i) => Math.sin(i)), [2, 1, 6, 6]);
      const ya = m.eval().predict(x).toArray();
      const yb = model.eval().predict(x).toArray();
      assert.deepEqual(yb, ya);
      e.endStep();
    }
  });

  test('the metadata is what other safetensors readers see: format, version, architecture and metadata as strings', () => {
    const m = tinyGated();
    const f = parseSafetensors(encodeModel(m, { inputShape: [1, 6, 6] }));
    assert.equal(f.metadata.get('format'), 'parsimony');
    assert.equal(f.metadata.get('format_version'), '2');
    assert.deepEqual(JSON.parse(f.metadata.get('architecture')!), m.spec());
    assert.equal(f.metadata.get('input_shape'), '[1,6,6]');
    assert.equal(f.metadata.has('class_names'), false);
    assert.deepEqual([...f.tensors.keys()].sort(), m.stateDict().map(([n]) => n).sort());
    for (const [name, t] of m.stateDict()) assert.deepEqual(readTensor(f, f.tensors.get(name)!), t.f32(), name);
  });

  test('saveModel replaces the file atomically and leaves no temporary file; loadModel names the path in errors', () => {
    const path = join(dir, 'model.safetensors');
    const a = tinyDense();
    randomizeState(a, 1);
    saveModel(path, a, META);
    const b = tinyDense();
    randomizeState(b, 2);
    saveModel(path, b, META);
    assert.deepEqual(readdirSync(dir), ['model.safetensors']);
    assertSameState(b, loadModel(path).model);
    writeFileSync(join(dir, 'broken.safetensors'), readFileSync(path).subarray(0, 100));
    assert.throws(() => loadModel(join(dir, 'broken.safetensors')), (e: unknown) => e instanceof ModelFileError && e.file === join(dir, 'broken.safetensors') && e.message.startsWith(join(dir, 'broken.safetensors')));
    // A failed write leaves the old file and no temporary behind.
    assert.throws(() => writeFileAtomic(join(dir, 'missing-dir', 'x.safetensors'), new Uint8Array(4)), /missing-dir\/x\.safetensors: cannot write: its folder does not exist/);
    assert.deepEqual(readdirSync(dir).sort(), ['broken.safetensors', 'model.safetensors']);
    // A temporary left by a writer that died mid-write goes at the next save; a live writer's stays.
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    writeFileSync(join(dir, `.model.safetensors.tmp-${dead}-0`), 'partial');
    writeFileSync(join(dir, `.model.safetensors.tmp-${process.pid}-99`), 'in flight');
    saveModel(path, b, META);
    assert.deepEqual(readdirSync(dir).sort(), [`.model.safetensors.tmp-${process.pid}-99`, 'broken.safetensors', 'model.safetensors']);
    rmSync(join(dir, `.model.safetensors.tmp-${process.pid}-99`));
  });

  test('a weight that is NaN or infinite is reported by tensor name and element', () => {
    const m = tinyDense();
    m.stateDict().find(([n]) => n === '4.weight')![1].f32()[3] = Number.NaN;
    rejects(encodeModel(m, META), /tensor 4\.weight holds NaN at element 3; weights must be finite/, (e) => assert.equal(e.tensor, '4.weight'));
    m.stateDict().find(([n]) => n === '4.weight')![1].f32()[3] = 0;
    m.stateDict().find(([n]) => n === '1.runningVar')![1].f32()[1] = Number.POSITIVE_INFINITY;
    rejects(encodeModel(m, META), /tensor 1\.runningVar holds Infinity at element 1/);
  });

  test('an unknown layer type is rejected by name, wrapping the registry\'s UnknownModuleError', () => {
    const bytes = editArchitecture(encodeModel(tinyDense(), META), (s) => { s.layers[2].type = 'Swish'; });
    rejects(bytes, /architecture layers\[2\]: unknown layer type 'Swish' \(known: .*Conv2d.*\)/, (e) => {
      assert.ok(e.cause instanceof UnknownModuleError);
      assert.equal(e.field, '__metadata__.architecture');
    });
  });

  test('the architecture must need exactly the tensors the file holds, with their shapes', () => {
    const good = encodeModel(tinyDense(), META);
    rejects(editArchitecture(good, (s) => { s.layers[0].outChannels = 4; }), /tensor 0\.weight has shape \[2,1,3,3\], the architecture needs \[4,1,3,3\]/, (e) => assert.equal(e.field, 'shape'));
    rejects(editArchitecture(good, (s) => { s.layers.push({ type: 'Linear', inFeatures: 3, outFeatures: 3, bias: true }); }), /tensor 5\.weight is missing: the architecture needs it with shape \[3,3\]/);
    rejects(editArchitecture(good, (s) => { s.layers[4].bias = false; }), /tensor 4\.bias is not part of the architecture/);
    rejects(editArchitecture(good, (s) => { s.layers[0].kernel = [3, -1]; }), /architecture layers\[0\]\.kernel: should be a whole number >= 1 or a pair of them, got \[3,-1\]/);
    rejects(editArchitecture(good, (s) => { delete s.layers[1].channels; }), /architecture layers\[1\]\.channels: should be a whole number >= 1, got undefined/);
    rejects(editArchitecture(good, (s) => { s.layers = 'x'; }), /architecture layers: should be a list of layer specs/);
    const ints = editHeader(good, (h) => { h['4.bias'].dtype = 'I32'; });
    rejects(ints, /tensor 4\.bias is I32, the architecture needs F32/);
  });

  test('huge numbers in the architecture are refused before anything is allocated', () => {
    const good = encodeModel(tinyDense(), META);
    const persistent = engine().persistent;
    for (const edit of [
      (s: any) => { s.layers[0].outChannels = 1e9; },
      (s: any) => { s.layers[0].kernel = [50000, 50000]; },
      (s: any) => { s.layers[4].inFeatures = 2 ** 40; },
      (s: any) => { s.layers[1].channels = 1e15; },
      (s: any) => { s.layers[0].inChannels = 1e300; },
    ]) {
      const before = persistent.bytesUsed;
      const t0 = performance.now();
      rejects(editArchitecture(good, edit), /architecture|tensor/);
      assert.equal(persistent.bytesUsed, before, 'a rejected file allocated model memory');
      assert.ok(performance.now() - t0 < 200);
    }
  });

  test('deeply nested architectures are refused without recursing', () => {
    let spec: any = { type: 'ReLU' };
    for (let i = 0; i < MAX_SPEC_DEPTH + 5; i++) spec = { type: 'Sequential', layers: [spec] };
    const bytes = encodeSafetensors([], { format: 'parsimony', format_version: '1', architecture: JSON.stringify(spec), input_shape: '[1,6,6]' });
    rejects(bytes, new RegExp(`nested more than ${MAX_SPEC_DEPTH} deep`));
  });

  test('metadata: format, newer versions, input shape, class names, JSON', () => {
    const good = encodeModel(tinyDense(), META);
    const meta = (edit: (m: Record<string, string>) => void): Uint8Array => editHeader(good, (h) => edit(h['__metadata__']));
    rejects(meta((m) => { m['format'] = 'pytorch'; }), /not a Parsimony model file: metadata format is "pytorch", expected "parsimony"/);
    rejects(meta((m) => { delete m['format']; }), /metadata format is missing/);
    rejects(meta((m) => { m['format_version'] = '7'; }), /format_version 7 is newer than this reader \(2\); update Parsimony/);
    rejects(meta((m) => { m['format_version'] = 'one'; }), /format_version "one" is not supported/);
    rejects(meta((m) => { m['input_shape'] = '[1,0,6]'; }), /metadata input_shape\[1\] should hold whole numbers >= 1/);
    rejects(meta((m) => { delete m['input_shape']; }), /the metadata has no input_shape/);
    rejects(meta((m) => { m['class_names'] = '["a",2]'; }), /metadata class_names\[1\] should hold strings/);
    rejects(meta((m) => { m['architecture'] = '{"type":'; }), /metadata architecture is not valid JSON/);
    rejects(meta((m) => { m['architecture'] = '[1]'; }), /metadata architecture should be a layer spec/);
    rejects(editHeader(good, (h) => { delete h['__metadata__']; }), /metadata format is missing/);
  });

  test('tensors other files hold (F16, unknown extra names) are rejected by name', () => {
    const m = tinyDense();
    const records: TensorRecord[] = m.stateDict().map(([name, t]) => ({ name, dtype: 'F32', shape: [...t.shape], data: t.f32().slice() }));
    const meta = { format: 'parsimony', format_version: '1', architecture: JSON.stringify(m.spec()), input_shape: '[1,6,6]' };
    rejects(encodeSafetensors([...records, { name: 'head.extra', dtype: 'F32', shape: [1], data: new Float32Array(1) }], meta), /tensor head\.extra is not part of the architecture/, (e) => assert.equal(e.tensor, 'head.extra'));
    rejects(encodeSafetensors(records.filter((r) => r.name !== '1.runningMean'), meta), /tensor 1\.runningMean is missing/);
  });
});
