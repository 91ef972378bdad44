import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ModelFileError } from '../../src/io/errors.js';
import { encodeSafetensors, MAX_HEADER_BYTES, parseSafetensors, readTensor, type TensorRecord } from '../../src/io/safetensors.js';

const fixture = (name: string): URL => new URL(`./fixtures/${name}`, import.meta.url);

interface ReferenceFixture {
  readonly metadata: Record<string, string>;
  readonly tensors: Record<string, { dtype: 'F32' | 'I32'; shape: number[]; values: number[] }>;
}

/** A file whose header is exactly `json` (padded to 8 bytes), followed by `dataBytes` bytes of data. */
function withHeader(json: string, dataBytes: number): Uint8Array {
  const text = new TextEncoder().encode(json);
  const n = Math.ceil(text.length / 8) * 8;
  const out = new Uint8Array(8 + n + dataBytes);
  new DataView(out.buffer).setUint32(0, n, true);
  out.fill(0x20, 8, 8 + n);
  out.set(text, 8);
  return out;
}

function rejects(bytes: Uint8Array, pattern: RegExp, field?: string): void {
  assert.throws(() => parseSafetensors(bytes, { file: 'w.safetensors' }), (e: unknown) => {
    assert.ok(e instanceof ModelFileError, `expected ModelFileError, got ${String(e)}`);
    assert.match(e.message, /^w\.safetensors: /);
    assert.match(e.message, pattern);
    if (field !== undefined) assert.equal(e.field, field);
    return true;
  });
}

describe('safetensors container', () => {
  test('the reference library\'s file reads back with its values and metadata, and our writer reproduces it byte for byte', () => {
    const bytes = new Uint8Array(readFileSync(fixture('reference-writer.safetensors')));
    const ref = JSON.parse(readFileSync(fixture('reference-writer.json'), 'utf8')) as ReferenceFixture;
    const f = parseSafetensors(bytes);
    assert.deepEqual(Object.fromEntries(f.metadata), ref.metadata);
    assert.deepEqual([...f.tensors.keys()].sort(), Object.keys(ref.tensors).sort());
    const records: TensorRecord[] = [];
    for (const t of f.tensors.values()) {
      const r = ref.tensors[t.name]!;
      assert.equal(t.dtype, r.dtype, t.name);
      assert.deepEqual(t.shape, r.shape, t.name);
      const values = readTensor(f, t);
      assert.deepEqual([...values], r.values, t.name);
      records.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: values });
    }
    // Same tensors in the same data order, same metadata (in the file's order, which the library does not fix): the same bytes, header padding included.
    assert.deepEqual(encodeSafetensors(records, Object.fromEntries(f.metadata), { checksums: false }), bytes);
  });

  test('round trip: F32 and I32, a scalar, an empty tensor; data starts at a multiple of 8 after space padding', () => {
    const tensors: TensorRecord[] = [
      { name: 'a', dtype: 'F32', shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 1e-30, -0, 65504]) },
      { name: 'ints', dtype: 'I32', shape: [2], data: Int32Array.from([-2147483648, 2147483647]) },
      { name: 'scalar', dtype: 'F32', shape: [], data: Float32Array.from([0.1]) },
      { name: 'none', dtype: 'F32', shape: [3, 0], data: new Float32Array(0) },
    ];
    for (const note of ['', 'x', 'xy', 'xyz', 'ünïcödé ✓']) {
      const bytes = encodeSafetensors(tensors, note === '' ? {} : { note });
      const headerLength = new DataView(bytes.buffer).getUint32(0, true);
      assert.equal((8 + headerLength) % 8, 0);
      const header = new TextDecoder().decode(bytes.subarray(8, 8 + headerLength));
      assert.match(header, /^\{.*\} *$/);
      const f = parseSafetensors(bytes);
      assert.equal(f.metadata.get('note'), note === '' ? undefined : note);
      for (const t of tensors) {
        const e = f.tensors.get(t.name)!;
        assert.deepEqual(e.shape, t.shape);
        assert.equal(e.dtype, t.dtype);
        assert.deepEqual(readTensor(f, e), t.data);
      }
    }
  });

  test('the encoder refuses inconsistent tensors', () => {
    assert.throws(() => encodeSafetensors([{ name: 'a', dtype: 'F32', shape: [3], data: new Float32Array(2) }], {}), /tensor a has 2 values, its shape \[3\] needs 3/);
    assert.throws(() => encodeSafetensors([{ name: 'a', dtype: 'I32', shape: [2], data: new Float32Array(2) }], {}), /tensor a is I32 but holds a Float32Array/);
    const t: TensorRecord = { name: 'a', dtype: 'F32', shape: [1], data: new Float32Array(1) };
    assert.throws(() => encodeSafetensors([t, t], {}), /tensor a is listed twice/);
    assert.throws(() => encodeSafetensors([{ ...t, name: '__metadata__' }], {}), /cannot name a tensor/);
  });

  test('length field: shorter than 8 bytes, over the cap, past the end, high word set', () => {
    rejects(new Uint8Array(5), /the file has 5 bytes; a safetensors file starts with an 8-byte header length/, 'header_length');
    const big = new Uint8Array(64);
    new DataView(big.buffer).setUint32(0, MAX_HEADER_BYTES + 8, true);
    rejects(big, new RegExp(`says ${MAX_HEADER_BYTES + 8} bytes, more than the ${MAX_HEADER_BYTES}-byte limit`), 'header_length');
    const past = withHeader('{}', 0);
    new DataView(past.buffer).setUint32(0, 4096, true);
    rejects(past, /says 4096 bytes, but only 8 bytes follow it/, 'header_length');
    const high = withHeader('{}', 0);
    new DataView(high.buffer).setUint32(4, 1, true);
    rejects(high, /says 4294967304 bytes, more than/, 'header_length');
    assert.throws(() => parseSafetensors(withHeader('{}', 0), { maxHeaderBytes: 4 }), /more than the 4-byte limit/);
  });

  test('header text: invalid UTF-8, not JSON, not an object', () => {
    const bad = withHeader('{"a":1}', 0);
    bad[10] = 0xff;
    rejects(bad, /the header is not valid UTF-8/, 'header');
    rejects(withHeader('{"a":', 0), /the header is not valid JSON/, 'header');
    rejects(withHeader('[1,2]', 0), /should be a JSON object starting with '\{'/, 'header');
  });

  test('entries: unknown fields, bad dtypes, negative or fractional dimensions, malformed offsets', () => {
    rejects(withHeader('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}}', 4), /tensor w: its header entry has unknown fields extra/);
    rejects(withHeader('{"w":[1]}', 4), /tensor w: its header entry should be an object \{dtype, shape, data_offsets\}/);
    rejects(withHeader('{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}', 4), /tensor w: dtype F16 is not supported \(supported: F32, I32\)/, 'dtype');
    rejects(withHeader('{"w":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,4]}}', 4), /tensor w: shape\[1\] should be >= 0/, 'shape[1]');
    rejects(withHeader('{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}', 4), /tensor w: shape\[0\] should be a whole number/);
    rejects(withHeader('{"w":{"dtype":"F32","shape":[1e300],"data_offsets":[0,4]}}', 4), /tensor w: shape\[0\] should be a whole number/);
    rejects(withHeader('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}}', 4), /tensor w: data_offsets should be \[begin, end\]/);
    rejects(withHeader('{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}', 4), /data_offsets \[4, 0\] end before they begin/);
    rejects(withHeader('{"__metadata__":{"k":3}}', 0), /__metadata__\.k should be a string/, '__metadata__.k');
    rejects(withHeader('{"":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 4), /a tensor has an empty name/);
  });

  test('byte ranges: the shape must match the range exactly; ranges must stay in the data, not overlap, and cover it', () => {
    rejects(withHeader('{"0.weight":{"dtype":"F32","shape":[32,32,3,3],"data_offsets":[0,9216]}}', 9216), /^w\.safetensors: tensor 0\.weight has 9216 bytes, its header says 36864 \(shape \[32,32,3,3\] F32\)$/, 'data_offsets');
    rejects(withHeader('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', 4), /tensor w: data_offsets \[0, 8\] reach past the 4 bytes of data/);
    rejects(withHeader('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', 12), /tensor b: data_offsets \[4, 12\] overlap tensor a/);
    rejects(withHeader('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}', 12), /tensor b: data_offsets begin at 8, leaving bytes 4\.\.8 of the data unused/);
    rejects(withHeader('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 8), /the tensors cover 4 bytes of data, the file has 8 after the header/);
    // Key order is free; zero-size tensors may sit anywhere.
    const f = parseSafetensors(withHeader('{"b":{"dtype":"I32","shape":[1],"data_offsets":[4,8]},"z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 8));
    assert.deepEqual([...f.tensors.keys()], ['a', 'z', 'b']);
  });
});
