/**
 * Property-based fuzzing of the model-file reader: 10,000 seeded mutations of two tiny model files.
 * Each mutated file must either load correctly (its weights are the file's bytes) or be rejected with
 * a ModelFileError; nothing else may be thrown, no case may take long, and model memory may only grow
 * by what the file's bytes justify. Checkpoints share the container; 3,000 mutated ones must likewise
 * restore exactly or be refused with a ModelFileError, which is what lets `resume` fall back to `.prev`.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { engine } from '../../src/autograd/engine.js';
import { ModelFileError } from '../../src/io/errors.js';
import { applyCheckpoint, decodeCheckpoint, encodeCheckpoint } from '../../src/io/checkpoint.js';
import { decodeModel, encodeModel } from '../../src/io/model-file.js';
import { parseSafetensors, readTensor } from '../../src/io/safetensors.js';
import { DataLoader, InMemoryDataset } from '../../src/data/index.js';
import { Rng } from '../../src/nn/init.js';
import { manualSeed } from '../../src/nn/layers.js';
import { SGD } from '../../src/optim/sgd.js';
import { trainStep } from '../../src/train/fit.js';
import { randomizeState, tinyDense, tinyGated, useEngine } from './helpers.js';
import { mutate, mutation } from './mutations.js';

const RUNS = 10_000;
const CHECKPOINT_RUNS = 3_000;
/** Model memory a file may cause: its floats, plus one 64-byte-aligned block per tensor it can describe. */
const ALLOCATION_FACTOR = 4;

describe('model-file fuzzing', () => {
  let bases: Uint8Array[] = [];
  before(async () => {
    await useEngine();
    manualSeed(7);
    bases = [tinyDense(), tinyGated()].map((m, i) => {
      randomizeState(m, 20 + i);
      return encodeModel(m, { inputShape: [1, 6, 6], classNames: ['a', 'b', 'c'], training: { epochs: 1, lr: 0.1 } });
    });
  });

  test(`${RUNS} mutated and truncated files: each loads correctly or is rejected with ModelFileError`, () => {
    const persistent = engine().persistent;
    const counts = { loaded: 0, rejected: 0 };
    const byKind = new Map<string, { loaded: number; rejected: number }>();
    let slowest = 0;
    fc.assert(
      fc.property(fc.nat({ max: bases.length - 1 }), mutation, (which, m) => {
        const bytes = mutate(bases[which]!, m);
        const before = persistent.bytesUsed;
        const t0 = performance.now();
        let outcome: 'loaded' | 'rejected';
        let loaded: ReturnType<typeof decodeModel> | null = null;
        try {
          loaded = decodeModel(bytes, { file: 'fuzz.safetensors' });
          outcome = 'loaded';
        } catch (e) {
          if (!(e instanceof ModelFileError)) throw new Error(`mutation ${JSON.stringify(m)} threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
          assert.ok(e.message.startsWith('fuzz.safetensors: '), e.message);
          outcome = 'rejected';
        }
        const ms = performance.now() - t0;
        slowest = Math.max(slowest, ms);
        assert.ok(ms < 250, `mutation ${JSON.stringify(m)} took ${ms.toFixed(0)} ms`);
        const grown = persistent.bytesUsed - before;
        assert.ok(grown <= ALLOCATION_FACTOR * bytes.length, `a ${bytes.length}-byte file made the model allocate ${grown} bytes`);
        if (loaded !== null) {
          // Loaded correctly: the file's architecture, holding the file's bytes, and stable when saved again.
          const { model, meta } = loaded;
          const f = parseSafetensors(bytes);
          assert.deepEqual(meta.inputShape, JSON.parse(f.metadata.get('input_shape')!));
          const state = model.stateDict();
          assert.equal(state.length, f.tensors.size);
          for (const [name, t] of state) assert.deepEqual(t.f32(), readTensor(f, f.tensors.get(name)!), name);
          const again = encodeModel(model, meta);
          assert.deepEqual(encodeModel(decodeModel(again).model, meta), again);
        }
        counts[outcome]++;
        const k = byKind.get(m.kind) ?? { loaded: 0, rejected: 0 };
        k[outcome]++;
        byKind.set(m.kind, k);
      }),
      { seed: 20261125, numRuns: RUNS, endOnFailure: true },
    );
    assert.equal(counts.loaded + counts.rejected, RUNS);
    // The fuzzer reaches both outcomes, and every kind of mutation is rejected at least sometimes.
    assert.ok(counts.loaded > 50, `only ${counts.loaded} mutated files loaded`);
    assert.ok(counts.rejected > RUNS / 2, `only ${counts.rejected} mutated files were rejected`);
    for (const [kind, c] of byKind) assert.ok(c.rejected > 0, `no ${kind} mutation was rejected`);
    console.log(`# fuzz: ${counts.loaded} loaded, ${counts.rejected} rejected, slowest case ${slowest.toFixed(1)} ms; ${JSON.stringify(Object.fromEntries(byKind))}`);
  });

  test(`${CHECKPOINT_RUNS} mutated checkpoints: each restores exactly or is refused with ModelFileError`, () => {
    const dataset = new InMemoryDataset({ name: 'ds', pixels: new Uint8Array(8 * 36).map((_, i) => i % 251), labels: Int32Array.from({ length: 8 }, (_, i) => i % 3), shape: [1, 6, 6], classNames: ['a', 'b', 'c'] });
    const setup = () => {
      const model = tinyDense();
      return { model, optimizer: new SGD(model.parameters(), { lr: 0.1, momentum: 0.9 }), loader: new DataLoader(dataset, { batchSize: 4, workers: 0 }), rngs: { noise: new Rng(1) } };
    };
    const saved = setup();
    randomizeState(saved.model, 30);
    const x = Float32Array.from({ length: 4 * 36 }, (_, i) => Math.cos(i));
    trainStep(saved.model, saved.optimizer, { x, y: Int32Array.of(0, 1, 2, 0), shape: [4, 1, 6, 6] });
    saved.loader.epoch(0).next();
    const base = encodeCheckpoint({ ...saved, epoch: 0, step: 1 });
    const counts = { restored: 0, refused: 0 };
    fc.assert(
      fc.property(mutation, (m) => {
        const bytes = mutate(base, m);
        const targets = setup();
        try {
          const ck = decodeCheckpoint(bytes, 'fuzz.ckpt');
          applyCheckpoint(ck, targets);
          for (const [name, t] of targets.model.stateDict()) assert.deepEqual(t.f32(), ck.modelTensors.get(name)?.values, name);
          for (const [name, t] of targets.optimizer.stateTensors()) assert.deepEqual(t.f32(), ck.optimizerTensors.get(name)?.values, name);
          assert.deepEqual(targets.loader.getState(), ck.loader);
          counts.restored++;
        } catch (e) {
          if (!(e instanceof ModelFileError)) throw new Error(`mutation ${JSON.stringify(m)} threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
          assert.ok(e.message.startsWith('fuzz.ckpt: '), e.message);
          counts.refused++;
        }
      }),
      { seed: 20261126, numRuns: CHECKPOINT_RUNS, endOnFailure: true },
    );
    assert.ok(counts.restored > 20 && counts.refused > CHECKPOINT_RUNS / 2, JSON.stringify(counts));
    console.log(`# checkpoint fuzz: ${counts.restored} restored, ${counts.refused} refused`);
  });
});
