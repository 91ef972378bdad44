/**
 * Model files and checkpoints record CRC-32s of their data section and metadata; flipped bits are
 * refused when read (older files without checksums still load), a resume that falls back to
 * `.prev` says so, and a checkpoint that is a folder falls back too.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeCheckpoint, encodeCheckpoint, resume, saveCheckpoint } from '../../src/io/checkpoint.js';
import { ModelFileError } from '../../src/io/errors.js';
import { decodeModel, encodeModel, stateRecords } from '../../src/io/model-file.js';
import { encodeSafetensors, parseSafetensors } from '../../src/io/safetensors.js';
import { SGD } from '../../src/optim/sgd.js';
import { TestRng } from '../util/rng.js';
import { cli, explain, QUICK, tempDir } from '../cli/helpers.js';
import { randomizeState, tinyDense, tinyGated, useEngine } from './helpers.js';

function dataStart(bytes: Uint8Array): number {
  return 8 + new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true);
}

/** `bytes` with `flips` distinct bits flipped at seeded places in [from, to). */
function flipBits(bytes: Uint8Array, flips: number, rng: TestRng, from: number, to = bytes.length): Uint8Array {
  const out = bytes.slice();
  const bits = new Set<number>();
  while (bits.size < flips) bits.add(from * 8 + Math.floor(rng.uniform(0, (to - from) * 8)));
  for (const b of bits) out[b >> 3] = (out[b >> 3] as number) ^ (1 << (b & 7));
  return out;
}

const refusal = (pattern: RegExp) => (e: unknown): boolean => e instanceof ModelFileError && pattern.test(e.message);

describe('checksums of model files and checkpoints', () => {
  before(async () => {
    await useEngine();
  });

  test('every file with 1 to 8 flipped data bits is refused, naming the data section', () => {
    const rng = new TestRng(11);
    for (const make of [tinyDense, tinyGated]) {
      const m = make();
      randomizeState(m, 3);
      const bytes = encodeModel(m, { inputShape: [1, 6, 6] });
      assert.ok(parseSafetensors(bytes).checksummed);
      for (let i = 0; i < 150; i++) {
        const bad = flipBits(bytes, 1 + (i % 8), rng, dataStart(bytes));
        assert.throws(() => decodeModel(bad, { file: 'm.safetensors' }), refusal(/^m\.safetensors: the data section is corrupt: its CRC-32 is [0-9a-f]{8}, the header recorded [0-9a-f]{8} when the file was written$/), `case ${i}`);
      }
    }
  });

  test('flipped bits in the metadata values are refused too', () => {
    const m = tinyDense();
    const bytes = encodeModel(m, { inputShape: [1, 6, 6], training: { eps: 1e-5, lr: 0.1 } });
    const text = new TextDecoder().decode(bytes.subarray(8, dataStart(bytes)));
    for (const needle of ['"eps\\":1e-5', 'BatchNorm2d', '[1,6,6]', '"kernel\\":[3,3]']) {
      const at = 8 + new TextEncoder().encode(text.slice(0, text.indexOf(needle))).length + needle.length - 2;
      assert.ok(at > 8, needle);
      const bad = bytes.slice();
      bad[at] = (bad[at] as number) ^ 0x01;
      assert.throws(() => decodeModel(bad, { file: 'm.safetensors' }), (e: unknown) => e instanceof ModelFileError, needle);
    }
  });

  test('older files without checksums still load; a version-2 file stripped of them does not', () => {
    const m = tinyDense();
    randomizeState(m, 5);
    const meta = { format: 'parsimony', format_version: '1', architecture: JSON.stringify(m.spec()), input_shape: '[1,6,6]' };
    const v1 = encodeSafetensors(stateRecords(m), meta, { checksums: false });
    assert.equal(parseSafetensors(v1).checksummed, false);
    assert.deepEqual(decodeModel(v1).meta.inputShape, [1, 6, 6]);
    const stripped = encodeSafetensors(stateRecords(m), { ...meta, format_version: '2' }, { checksums: false });
    assert.throws(() => decodeModel(stripped, { file: 's.safetensors' }), refusal(/s\.safetensors: the header has no checksums, which format_version 2 files record/));
  });

  test('a corrupt checkpoint is refused; resume falls back to .prev and says why; a folder in its place falls back too', () => {
    const dir = join(tempDirPath(), 'ck');
    mkdirSync(dir, { recursive: true });
    const m = tinyDense();
    const state = (step: number) => ({ model: m, optimizer: new SGD(m.parameters(), { lr: 0.1 }), epoch: 0, step });
    const path = join(dir, 'checkpoint.ckpt');
    saveCheckpoint(path, state(1));
    saveCheckpoint(path, state(2));
    const good = readFileSync(path);
    const bad = flipBits(new Uint8Array(good), 1, new TestRng(2), dataStart(good));
    assert.throws(() => decodeCheckpoint(bad, 'c.ckpt'), refusal(/c\.ckpt: the data section is corrupt/));
    writeFileSync(path, bad);
    const r = resume(path, { model: m, optimizer: new SGD(m.parameters(), { lr: 0.1 }) });
    assert.equal(r?.file, `${path}.prev`);
    assert.equal(r?.step, 1);
    assert.match(r?.skipped[0]?.message ?? '', /checkpoint\.ckpt: the data section is corrupt/);
    assert.deepEqual(r?.setAside, [`${path}.corrupt`]);
    mkdirSync(path);
    const r2 = resume(path, { model: m, optimizer: new SGD(m.parameters(), { lr: 0.1 }) });
    assert.equal(r2?.file, `${path}.prev`);
    assert.match(r2?.skipped[0]?.message ?? '', /checkpoint\.ckpt: is a folder, expected a regular file/);
    assert.ok(existsSync(`${path}.corrupt`) && !existsSync(path));
    mkdirSync(path);
    writeFileSync(`${path}.prev`, encodeCheckpoint(state(3)).slice(0, 100));
    assert.throws(() => resume(path, { model: m, optimizer: new SGD(m.parameters(), { lr: 0.1 }) }), refusal(/no usable checkpoint: .*is a folder.*checkpoint\.ckpt\.prev: /));
  });

  const tmp = tempDir('parsimony-checksum-');
  const tempDirPath = (): string => tmp();
  test('train --resume over a corrupt checkpoint warns that it resumes from .prev, and trains on', async () => {
    const run = join(tmp(), 'run');
    const first = ['train', ...QUICK, '--limit', '64', '--batch', '16', '--epochs', '1', '--out', run, '--quiet'];
    const r1 = await cli(first);
    assert.equal(r1.code, 0, explain(first, r1));
    const ck = join(run, 'checkpoint.ckpt');
    if (!existsSync(`${ck}.prev`)) copyFileSync(ck, `${ck}.prev`);
    const bytes = readFileSync(ck);
    writeFileSync(ck, flipBits(new Uint8Array(bytes), 3, new TestRng(9), dataStart(bytes)));
    const again = ['train', '--resume', run, '--epochs', '2', '--plain'];
    const r2 = await cli(again);
    assert.equal(r2.code, 0, explain(again, r2));
    assert.match(r2.stderr, /parsimony: warning: .*checkpoint\.ckpt: the data section is corrupt: .*; resuming from .*checkpoint\.ckpt\.prev instead \(the unusable file is kept as .*checkpoint\.ckpt\.corrupt\)/, explain(again, r2));
    renameSync(ck, `${ck}.moved`);
    mkdirSync(ck);
    const third = ['train', '--resume', run, '--epochs', '3', '--plain'];
    const r3 = await cli(third);
    assert.equal(r3.code, 0, explain(third, r3));
    assert.match(r3.stderr, /checkpoint\.ckpt: is a folder, expected a regular file; resuming from .*checkpoint\.ckpt\.prev instead/, explain(third, r3));
  });
});
