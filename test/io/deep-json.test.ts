/**
 * JSON nested thousands deep (model-file metadata, architecture, checkpoint record, the safetensors
 * header, --config, a run's config.json) is refused with one line before anything recurses on it.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeCheckpoint, encodeCheckpoint } from '../../src/io/checkpoint.js';
import { ModelFileError } from '../../src/io/errors.js';
import { jsonDepth, MAX_JSON_DEPTH, parseJson } from '../../src/io/json.js';
import { decodeModel, encodeModel, stateRecords } from '../../src/io/model-file.js';
import { encodeSafetensors, parseSafetensors } from '../../src/io/safetensors.js';
import { SGD } from '../../src/optim/sgd.js';
import { cli, explain, tempDir } from '../cli/helpers.js';
import { tinyDense, useEngine } from './helpers.js';

const lists = (n: number): string => `${'['.repeat(n)}${']'.repeat(n)}`;
const objects = (n: number): string => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;
const mixed = (n: number): string => `${'[{"x":'.repeat(n)}0${'}]'.repeat(n)}`;
const DEEP = [lists(10_000), lists(100_000), objects(10_000), objects(100_000), mixed(30_000)];
const TOO_DEEP = /nested more than 256 deep/;

function refused(f: () => unknown, pattern: RegExp, label: string): void {
  assert.throws(f, (e: unknown) => e instanceof ModelFileError && pattern.test(e.message), label);
}

describe('deep JSON nesting', () => {
  before(async () => {
    await useEngine();
  });

  test('depth is measured outside strings, and the bound is exact', () => {
    assert.equal(jsonDepth('{"a":"[[[[{{{{\\"[[","b":[1,[2]]}'), 3);
    assert.equal(jsonDepth(lists(MAX_JSON_DEPTH)), MAX_JSON_DEPTH);
    assert.deepEqual(parseJson('[[1]]'), [[1]]);
    assert.doesNotThrow(() => parseJson(lists(MAX_JSON_DEPTH)));
    assert.throws(() => parseJson(lists(MAX_JSON_DEPTH + 1)), TOO_DEEP);
    assert.throws(() => parseJson('{"a": [}'), SyntaxError);
  });

  test('model-file metadata nested deep is refused, naming the field', () => {
    const model = tinyDense();
    const base = { format: 'parsimony', format_version: '1', architecture: JSON.stringify(model.spec()), input_shape: '[1,6,6]' };
    for (const deep of DEEP) {
      for (const key of ['training', 'class_names', 'input_shape', 'architecture']) {
        const bytes = encodeSafetensors(stateRecords(model), { ...base, [key]: deep });
        refused(() => decodeModel(bytes, { file: 'm.safetensors' }), new RegExp(`^m\\.safetensors: metadata ${key}: lists and objects are nested more than 256 deep$`), `${key} ${deep.length}`);
      }
    }
    const ok = encodeModel(model, { inputShape: [1, 6, 6], training: JSON.parse(objects(200)) });
    assert.equal(typeof decodeModel(ok).meta.training, 'object');
  });

  test('a checkpoint record and a safetensors header nested deep are refused', () => {
    const model = tinyDense();
    const good = encodeCheckpoint({ model, optimizer: new SGD(model.parameters(), { lr: 0.1 }), epoch: 0, step: 0 });
    const f = parseSafetensors(good);
    for (const deep of DEEP.slice(0, 3)) {
      const record = JSON.stringify({ ...JSON.parse(f.metadata.get('checkpoint') as string), extra: 0 }).replace('"extra":0', `"extra":${deep}`);
      const bytes = encodeSafetensors(stateRecords(model, 'model.'), { ...Object.fromEntries(f.metadata), checkpoint: record });
      refused(() => decodeCheckpoint(bytes, 'c.ckpt'), /c\.ckpt: metadata checkpoint: lists and objects are nested more than 256 deep/, `extra ${deep.length}`);
      const header = new TextEncoder().encode(`{"x":${deep}}`);
      const raw = new Uint8Array(8 + header.length);
      new DataView(raw.buffer).setUint32(0, header.length, true);
      raw.set(header, 8);
      refused(() => decodeModel(raw, { file: 'h.safetensors' }), /h\.safetensors: the header is not valid JSON \(lists and objects are nested more than 256 deep\)/, `header ${deep.length}`);
    }
  });

  const dir = tempDir('parsimony-deep-');
  test('--config, a run config.json and a model file nested deep: one line, exit 2 or 3', async () => {
    const config = join(dir(), 'deep.json');
    writeFileSync(config, objects(100_000));
    const run = join(dir(), 'run');
    mkdirSync(run);
    writeFileSync(join(run, 'config.json'), `{"options":${lists(50_000)}}`);
    const model = join(dir(), 'deep.safetensors');
    const m = tinyDense();
    writeFileSync(model, encodeSafetensors(stateRecords(m), { format: 'parsimony', format_version: '1', architecture: JSON.stringify(m.spec()), input_shape: '[1,6,6]', training: mixed(50_000) }));
    const cases: Array<[string[], number, RegExp]> = [
      [['train', '--config', config, '--out', join(dir(), 'out')], 2, /parsimony: --config .*deep\.json: lists and objects are nested more than 256 deep\n$/],
      [['train', '--resume', run], 3, /config\.json: .*nested more than 256 deep/],
      [['info', model], 3, /deep\.safetensors: metadata training: lists and objects are nested more than 256 deep/],
    ];
    for (const [args, code, pattern] of cases) {
      const r = await cli(args);
      assert.equal(r.code, code, explain(args, r));
      assert.match(r.stderr, pattern, explain(args, r));
    }
  });
});
