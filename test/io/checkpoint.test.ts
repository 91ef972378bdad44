import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DataLoader, InMemoryDataset } from '../../src/data/index.js';
import { applyCheckpoint, decodeCheckpoint, encodeCheckpoint, resume, saveCheckpoint } from '../../src/io/checkpoint.js';
import { ModelFileError } from '../../src/io/errors.js';
import { parseSafetensors } from '../../src/io/safetensors.js';
import { Rng } from '../../src/nn/init.js';
import { manualSeed } from '../../src/nn/layers.js';
import type { Module } from '../../src/nn/module.js';
import { Adam, AdamW } from '../../src/optim/adam.js';
import type { Optimizer } from '../../src/optim/optimizer.js';
import { SGD } from '../../src/optim/sgd.js';
import { trainStep } from '../../src/train/fit.js';
import { TestRng } from '../util/rng.js';
import { stateValues, tinyDense, tinyGated, useEngine } from './helpers.js';
import { EVERY, TOTAL_STEPS } from './train-child-config.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CHILD = fileURLToPath(new URL('./train-child.ts', import.meta.url));

function batch(seed: number, n = 4): { x: Float32Array; y: Int32Array; shape: [number, number, number, number] } {
  const r = new TestRng(seed);
  return { x: Float32Array.from({ length: n * 36 }, () => r.uniform(-1, 1)), y: Int32Array.from({ length: n }, (_, i) => i % 3), shape: [n, 1, 6, 6] };
}

function dataset(samples: number): InMemoryDataset {
  return new InMemoryDataset({ name: 'ds', pixels: new Uint8Array(samples * 36).map((_, i) => (i * 37) % 256), labels: Int32Array.from({ length: samples }, (_, i) => i % 3), shape: [1, 6, 6], classNames: ['a', 'b', 'c'] });
}

function optimizerState(o: Optimizer): Map<string, Float32Array> {
  return new Map(o.stateTensors().map(([n, t]) => [n, t.f32().slice()]));
}

function rejects(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ModelFileError, `expected ModelFileError, got ${String(e)}`);
    assert.match(e.message, pattern);
    return true;
  });
}

describe('checkpoints', () => {
  let dir = '';
  before(async () => {
    await useEngine();
    dir = mkdtempSync(join(tmpdir(), 'parsimony-ckpt-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const [name, makeOptimizer] of [
    ['SGD (momentum, Nesterov, weight decay)', (m: Module) => new SGD(m.parameters(), { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 1e-3 })],
    ['Adam', (m: Module) => new Adam(m.parameters(), { lr: 0.01 })],
    ['AdamW', (m: Module) => new AdamW(m.parameters(), { lr: 0.01 })],
  ] as const) {
    test(`${name}: a resumed copy continues bit for bit (weights, buffers, optimizer state, generators, loader)`, () => {
      manualSeed(1);
      const a = tinyGated();
      const oa = makeOptimizer(a);
      const ra = new Rng(3);
      const la = new DataLoader(dataset(10), { batchSize: 4, workers: 0, seed: 2 });
      const it = la.epoch(0);
      for (let s = 0; s < 3; s++) trainStep(a, oa, batch(s));
      it.next();
      ra.next();
      const bytes = encodeCheckpoint({ model: a, optimizer: oa, loader: la, rngs: { aug: ra }, epoch: 0, step: 3, extra: { note: 'x' } });
      const f = parseSafetensors(bytes);
      assert.ok([...f.tensors.keys()].some((k) => k.startsWith('optim.')), 'optimizer tensors are stored');
      assert.ok([...f.tensors.keys()].includes('model.3.lkam.fc.weight'));

      manualSeed(99);
      const b = tinyGated();
      const ob = makeOptimizer(b);
      const rb = new Rng(5);
      const lb = new DataLoader(dataset(10), { batchSize: 4, workers: 0, seed: 0 });
      const r = applyCheckpoint(decodeCheckpoint(bytes), { model: b, optimizer: ob, loader: lb, rngs: { aug: rb } });
      assert.deepEqual(r, { epoch: 0, step: 3, extra: { note: 'x' } });
      assert.equal(ob.stepCount, oa.stepCount);
      assert.equal(ob.lr, oa.lr);
      assert.deepEqual(lb.getState(), la.getState());
      assert.deepEqual(rb.getState(), ra.getState());
      assert.deepEqual(optimizerState(ob), optimizerState(oa));
      for (let s = 3; s < 5; s++) {
        trainStep(a, oa, batch(s));
        trainStep(b, ob, batch(s));
      }
      assert.deepEqual(stateValues(b), stateValues(a));
      assert.deepEqual(optimizerState(ob), optimizerState(oa));
      assert.deepEqual([...lb.epoch(0)].map((x) => x.position), [...la.epoch(0)].map((x) => x.position));
    });
  }

  test('a checkpoint taken before the first step restores into an optimizer without state', () => {
    manualSeed(1);
    const a = tinyDense();
    const oa = new SGD(a.parameters(), { lr: 0.1, momentum: 0.9 });
    const bytes = encodeCheckpoint({ model: a, optimizer: oa, epoch: 0, step: 0 });
    manualSeed(2);
    const b = tinyDense();
    const ob = new SGD(b.parameters(), { lr: 0.1, momentum: 0.9 });
    applyCheckpoint(decodeCheckpoint(bytes), { model: b, optimizer: ob });
    assert.equal(ob.stateTensors().length, 0);
    trainStep(a, oa, batch(1));
    trainStep(b, ob, batch(1));
    assert.deepEqual(stateValues(b), stateValues(a));
  });

  test('mismatches between checkpoint and targets are refused by name, before the model is touched', () => {
    manualSeed(1);
    const a = tinyDense();
    const oa = new SGD(a.parameters(), { lr: 0.1, momentum: 0.9 });
    const rng = new Rng(1);
    const loader = new DataLoader(dataset(10), { batchSize: 4, workers: 0 });
    trainStep(a, oa, batch(0));
    const ck = decodeCheckpoint(encodeCheckpoint({ model: a, optimizer: oa, loader, rngs: { aug: rng }, epoch: 1, step: 1 }), 'run.ckpt');
    const b = tinyDense();
    const before = stateValues(b);
    const targets = { model: b, optimizer: new SGD(b.parameters(), { lr: 0.1, momentum: 0.9 }), loader, rngs: { aug: new Rng(2) } };
    rejects(() => applyCheckpoint(ck, { ...targets, model: tinyGated() }), /^run\.ckpt: the checkpoint was taken from another architecture/);
    rejects(() => applyCheckpoint(ck, { ...targets, optimizer: new Adam(b.parameters()) }), /the checkpoint holds SGD state, the optimizer is Adam/);
    rejects(() => applyCheckpoint(ck, { ...targets, optimizer: new SGD(b.parameters(), { lr: 0.1, momentum: 0.8 }) }), /written with SGD momentum = 0\.9, this optimizer has 0\.8/);
    rejects(() => applyCheckpoint(ck, { ...targets, rngs: { noise: new Rng(2) } }), /holds random generators \[aug\], the targets are \[noise\]/);
    rejects(() => applyCheckpoint(ck, { ...targets, loader: undefined }), /has a data-loader state, but no loader was given/);
    const small = new DataLoader(dataset(6), { batchSize: 4, workers: 0 });
    const rngB = new Rng(2);
    const rngBefore = rngB.getState();
    rejects(() => applyCheckpoint(ck, { ...targets, loader: small, rngs: { aug: rngB } }), /loader or generator state does not fit: .*saved for a dataset of 10 samples, this one has 6/);
    assert.deepEqual(rngB.getState(), rngBefore, 'the generator was restored after the failed loader');
    assert.deepEqual(stateValues(b), before);
  });

  test('a corrupt or truncated newest file falls back to .prev; neither usable is an error naming both; none is null', () => {
    manualSeed(1);
    const path = join(dir, 'fallback.ckpt');
    const m = tinyDense();
    const o = new SGD(m.parameters(), { lr: 0.1, momentum: 0.9 });
    assert.equal(resume(path, { model: m, optimizer: o }), null);
    trainStep(m, o, batch(0));
    saveCheckpoint(path, { model: m, optimizer: o, epoch: 0, step: 1 });
    assert.equal(existsSync(`${path}.prev`), false);
    const atStep1 = stateValues(m);
    trainStep(m, o, batch(1));
    saveCheckpoint(path, { model: m, optimizer: o, epoch: 0, step: 2 });
    assert.ok(existsSync(`${path}.prev`));
    assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith('fallback')).sort(), ['fallback.ckpt', 'fallback.ckpt.prev']);

    const full = readFileSync(path);
    writeFileSync(path, full.subarray(0, full.length - 10));
    const fresh = tinyDense();
    const r = resume(path, { model: fresh, optimizer: new SGD(fresh.parameters(), { lr: 0.1, momentum: 0.9 }) });
    assert.equal(r?.file, `${path}.prev`);
    assert.equal(r?.step, 1);
    assert.match(r?.skipped[0]?.message ?? '', /fallback\.ckpt: tensor optim\.momentum\.\d+: data_offsets \[\d+, \d+\] reach past the \d+ bytes of data/);
    assert.deepEqual(stateValues(fresh), atStep1);
    assert.deepEqual(r?.setAside, [`${path}.corrupt`], 'the unusable file is moved aside, so that the next save keeps the usable one as .prev');
    assert.ok(!existsSync(path) && existsSync(`${path}.corrupt`));

    writeFileSync(path, full.subarray(0, full.length - 10));
    writeFileSync(`${path}.prev`, 'not a checkpoint');
    rejects(() => resume(path, { model: fresh, optimizer: new SGD(fresh.parameters(), { lr: 0.1, momentum: 0.9 }) }), /no usable checkpoint: .*fallback\.ckpt: .*; .*fallback\.ckpt\.prev: /);
  });

  test('a training process killed with SIGKILL at a random step resumes to bit-identical final weights', async () => {
    const run = (d: string, extra: string[] = []): { stdout: string; status: number | null } => {
      const r = spawnSync(process.execPath, ['--import', 'tsx', CHILD, d, ...extra], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 0, `child failed: ${r.stderr}`);
      return { stdout: r.stdout, status: r.status };
    };
    const straight = mkdtempSync(join(dir, 'straight-'));
    run(straight);
    const reference = readFileSync(join(straight, 'final.safetensors'));

    // The kill point is drawn from a seeded generator: a step, then a delay within the following step
    // (each step is paused to last at least PAUSE_MS, so the parent can react before the run ends).
    const PAUSE_MS = 30;
    const pick = new TestRng(Number(process.env['PARSIMONY_CRASH_SEED'] ?? 20261125));
    const crashed = mkdtempSync(join(dir, 'crashed-'));
    const killAt = pick.int(4, TOTAL_STEPS - 12);
    const delayMs = pick.uniform(0, PAUSE_MS);
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, crashed], {
      cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PARSIMONY_STEP_PAUSE_MS: String(PAUSE_MS) },
    });
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_code, signal) => resolve(signal)));
    let armed = false;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (!armed && out.includes(`step ${killAt}\n`)) {
        armed = true;
        setTimeout(() => child.kill('SIGKILL'), delayMs);
      }
    });
    const signal = await exited;
    assert.equal(signal, 'SIGKILL', `the child was not killed (stdout ${out}, stderr ${err})`);
    assert.equal(existsSync(join(crashed, 'final.safetensors')), false, 'the child finished before the kill');
    const lastStep = Math.max(...[...out.matchAll(/step (\d+)/g)].map((m) => Number(m[1])));

    // The control starts from the same files, but drops the optimizer's state after resuming.
    const control = mkdtempSync(join(dir, 'control-'));
    for (const name of readdirSync(crashed).filter((n) => n.startsWith('run.ckpt'))) writeFileSync(join(control, name), readFileSync(join(crashed, name)));

    const second = run(crashed);
    const resumedAt = /resumed (\d+) /.exec(second.stdout);
    assert.ok(resumedAt !== null, `the second run did not resume: ${second.stdout}`);
    const from = Number(resumedAt[1]);
    // A checkpoint is written before its step is printed, so it may be one step ahead of the output.
    assert.ok(from > 0 && from <= lastStep + 1 && from % EVERY === 0, `resumed at step ${from}, the killed run had printed step ${lastStep}`);
    assert.deepEqual(readFileSync(join(crashed, 'final.safetensors')), reference, `killed at step ${killAt} (+${delayMs.toFixed(2)} ms), resumed at ${from}: the final weights differ`);
    assert.deepEqual(readdirSync(crashed).filter((n) => n.includes('.tmp-')), [], 'a temporary file of the killed run was left behind');

    console.log(`# crash test: killed after step ${killAt} + ${delayMs.toFixed(2)} ms (last printed step ${lastStep}), resumed at step ${from} of ${TOTAL_STEPS}`);
    const controlRun = run(control, ['--forget-optimizer']);
    assert.match(controlRun.stdout, new RegExp(`resumed ${from} `));
    assert.notDeepEqual(readFileSync(join(control, 'final.safetensors')), reference);
  });
});
