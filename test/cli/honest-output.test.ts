// Outputs that could mislead say so or are laid out so they cannot: export --dense of a gated network
// warns, knob tables show the default operating point as a row of its own (threshold 0 is the default
// of hard switches), info's rows add up to its totals and name gated layers `conv N`, and a missing
// optional package is named.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { init } from '../../src/autograd/engine.js';
import { denseTwin } from '../../src/infer/prune.js';
import { loadModel, saveModel } from '../../src/io/node-files.js';
import { importOptional, isMissingPackage, MissingPackageError } from '../../src/optional.js';
import { speedSentences, type BenchRecord, type BenchRow } from '../../src/report/run.js';
import { cli, explain, ROOT, tempDir } from './helpers.js';

const SHIPPED = join(ROOT, 'models', 'fmnist-vgg5-lkam.safetensors');

describe('honest output: warnings, knob tables, info totals, missing packages', () => {
  const dir = tempDir('parsimony-honest-');

  test('export --dense of a gated network warns that its LKAMs are removed and the outputs differ', async () => {
    const out = join(dir(), 'dense.onnx');
    const args = ['export', SHIPPED, '--dense', '--out', out];
    const r = await cli(args);
    assert.equal(r.code, 0, explain(args, r));
    assert.match(r.stderr, /^parsimony: warning: --dense removes the LKAMs of conv 1, conv 2, conv 3, conv 4: every kernel is computed, so the ONNX model's outputs differ from .*fmnist-vgg5-lkam\.safetensors's \(it is the dense twin, a baseline, not the same function\)$/m);
    assert.ok(existsSync(out), 'the dense ONNX file is written');

    const plain = await cli(['export', SHIPPED, '--out', join(dir(), 'gated.onnx')]);
    assert.equal(plain.code, 0, explain(['export', SHIPPED], plain));
    assert.doesNotMatch(plain.stderr, /warning/, 'exporting the gated network as it is warns of nothing');

    const e = await init({ threads: 1 });
    const denseFile = join(dir(), 'dense.safetensors');
    try {
      const { model, meta } = loadModel(SHIPPED);
      saveModel(denseFile, denseTwin(model, meta.inputShape), meta);
    } finally {
      e.close();
    }
    const already = await cli(['export', denseFile, '--dense', '--out', join(dir(), 'dense2.onnx')]);
    assert.equal(already.code, 0, explain(['export', denseFile, '--dense'], already));
    assert.doesNotMatch(already.stderr, /warning/, 'a network without LKAMs loses nothing');
  });

  test('eval --thresholds 0: the default operating point is a row of its own, and threshold 0 equals it for hard switches', async () => {
    const args = ['eval', SHIPPED, '--data', 'builtin', '--limit', '200', '--thresholds', '0,0.3', '--threads', '1', '--out', join(dir(), 'eval.json'), '--knob-out', join(dir(), 'knob.json')];
    const r = await cli(args);
    assert.equal(r.code, 0, explain(args, r));
    const rows = r.stdout.split('\n').map((l) => l.trim().split(/\s{2,}/));
    const header = rows.findIndex((c) => c[0] === 'setting');
    assert.ok(header >= 0, `a knob table with a 'setting' column:\n${r.stdout}`);
    const [def, zero, high] = rows.slice(header + 2, header + 5);
    assert.deepEqual(def?.slice(0, 3), ['default', 'own', '1'], `the first row is the default operating point:\n${r.stdout}`);
    assert.deepEqual(zero?.slice(0, 2), ['0', '1'], `then threshold 0:\n${r.stdout}`);
    assert.deepEqual(zero?.slice(2, 5), def?.slice(3, 6), 'threshold 0 gives the default accuracy and multiply-adds (hard switches are off at or below 0)');
    assert.ok(Number(high?.[3]) < Number(def?.[4]), `threshold 0.3 turns switches off: fewer multiply-adds than the default:\n${r.stdout}`);
  });

  test('info: one row per layer with its output shape, gated layers named conv N, rows adding up to the totals', async () => {
    const r = await cli(['info', SHIPPED, '--json']);
    assert.equal(r.code, 0, explain(['info', SHIPPED, '--json'], r));
    const info = JSON.parse(r.stdout) as {
      parameters: number; denseMacs: number; macsWithLkams: number;
      lkams: Array<{ layer: string; gate: string }>;
      layers: Array<{ name: string; path: string; type: string; output: number[]; parameters: number; macs: number }>;
    };
    assert.equal(info.layers.reduce((a, l) => a + l.parameters, 0), info.parameters, 'parameters add up');
    const macs = info.layers.reduce((a, l) => a + l.macs, 0);
    assert.ok(Math.abs(macs - info.macsWithLkams) <= 1e-9 * info.macsWithLkams, `multiply-adds add up: ${macs} vs ${info.macsWithLkams}`);
    const lkamMacs = info.layers.filter((l) => l.type === 'LKAM').reduce((a, l) => a + l.macs, 0);
    assert.ok(Math.abs(info.macsWithLkams - lkamMacs - info.denseMacs) <= 1e-9 * info.denseMacs, 'without the LKAM rows, the dense multiply-adds');
    assert.deepEqual(info.lkams.map((l) => l.layer), ['conv 1', 'conv 2', 'conv 3', 'conv 4']);
    assert.deepEqual(info.layers.filter((l) => l.type === 'Conv2d').map((l) => l.name), ['conv 0', 'conv 1', 'conv 2', 'conv 3', 'conv 4']);
    assert.deepEqual(info.layers.filter((l) => l.type === 'LKAM').map((l) => l.name), ['LKAM of conv 1', 'LKAM of conv 2', 'LKAM of conv 3', 'LKAM of conv 4']);
    assert.deepEqual(info.layers[0]?.output, [32, 28, 28]);
    assert.deepEqual(info.layers.at(-1)?.output, [10]);

    const human = await cli(['info', SHIPPED]);
    assert.match(human.stdout, /gating conv 1 \(module 3, 32 switches, hard\)/);
    assert.match(human.stdout, new RegExp(`^\\s+total\\s+${info.parameters}\\s+${(info.macsWithLkams / 1e6).toFixed(3)}$`, 'm'));
  });

  test('bench results say in words which engine is faster, and a missing onnxruntime-node is "not installed"', () => {
    const row = (engine: string, mode: string, batch: number, medianMs: number): BenchRow => ({ engine, mode, batch, threads: 1, medianMs, p10Ms: medianMs, p90Ms: medianMs, imagesPerSecond: batch * 1000 / medianMs, macsPerImage: null, reps: 10 });
    const record = (rows: BenchRow[], notes: string[]): BenchRecord => ({ model: 'm', rows, speedup: {}, macReduction: 3, notes, env: {} });
    assert.deepEqual(speedSentences(record([row('parsimony', 'dense twin', 1, 0.9), row('parsimony', 'skipping', 1, 0.3), row('onnxruntime-node', 'dense twin', 1, 0.45)], [])), [
      'batch 1: the skipping plan is 3.00x faster than the dense twin; the skipping plan is 1.50x faster than onnxruntime-node running the dense twin',
    ]);
    assert.deepEqual(speedSentences(record([row('parsimony', 'dense twin', 64, 50), row('parsimony', 'skipping', 64, 100)], ['onnxruntime-node: not installed (npm install onnxruntime-node to time it beside parsimony)'])), [
      'batch 64: the dense twin is 2.00x faster than the skipping plan',
      'onnxruntime-node: not installed, so not timed',
    ]);
    assert.deepEqual(speedSentences(record([row('parsimony', 'dense twin', 1, 1.01), row('parsimony', 'skipping', 1, 1)], [])), [
      'batch 1: the skipping plan is about as fast as the dense twin (1.000 vs 1.010 ms)',
      'onnxruntime-node: not timed',
    ]);
  });

  test('a missing optional package is named with the command that installs it', async () => {
    const name = 'parsimony-test-no-such-package';
    await assert.rejects(importOptional(name, 'the widget', () => import(name)), (e: unknown) => {
      assert.ok(e instanceof MissingPackageError);
      assert.equal(e.message, `the widget needs the package ${name}, which is not installed (npm install ${name})`);
      return true;
    });
    const other = await import(name).catch((e: unknown) => e);
    assert.equal(isMissingPackage(other, 'sharp'), false, 'another package missing is not this one');
  });
});
