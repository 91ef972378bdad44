import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, explain, QUICK, startCli, tempDir } from './helpers.js';

const EPOCHS = '12';
const TRAIN = ['train', ...QUICK, '--batch', '16', '--epochs', EPOCHS, '--lkam', '--sparsity', '1', '--plain'];

describe('parsimony train: Ctrl-C writes a checkpoint, --resume continues bit for bit', () => {
  const dir = tempDir('parsimony-cli-resume-');

  test('an interrupted and resumed run ends with the same model file as an uninterrupted one', async () => {
    const whole = join(dir(), 'whole');
    const cut = join(dir(), 'cut');
    const reference = cli([...TRAIN, '--out', whole]);
    const run = startCli([...TRAIN, '--out', cut]);
    await run.waitFor(/epoch 1\/12: /);
    run.child.kill('SIGINT');
    const r = await run.done;
    assert.equal(r.code, 130, explain([...TRAIN, '--out', cut], r));
    assert.match(r.stderr, new RegExp(`^parsimony: interrupted (at|after) epoch \\d+.*checkpoint written to ${cut}/checkpoint\\.ckpt; continue with: parsimony train --resume ${cut}\\n$`));
    assert.ok(existsSync(join(cut, 'checkpoint.ckpt')));
    assert.ok(!existsSync(join(cut, 'model.safetensors')), 'no final model after an interruption');

    const args = ['train', '--resume', cut, '--json'];
    const resumed = await cli(args);
    assert.equal(resumed.code, 0, explain(args, resumed));
    const out = JSON.parse(resumed.stdout) as { resumedFrom: number | null; run: string };
    assert.ok(out.resumedFrom !== null && out.resumedFrom > 0, 'resumed from a step after the first');
    assert.equal(out.run, cut);
    const ref = await reference;
    assert.equal(ref.code, 0, explain([...TRAIN, '--out', whole], ref));
    const a = readFileSync(join(whole, 'model.safetensors'));
    const b = readFileSync(join(cut, 'model.safetensors'));
    assert.ok(a.equals(b), 'the resumed run wrote the same bytes as the uninterrupted one');
    const epochs = readFileSync(join(cut, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { epoch: number }).epoch);
    assert.deepEqual(epochs, Array.from({ length: Number(EPOCHS) }, (_, i) => i + 1), 'metrics.jsonl has every epoch once');
  });

  test('a run directory recorded in the old form resumes; one trained with a retired option is refused naming it', async () => {
    const run = join(dir(), 'older');
    const first = ['train', ...QUICK, '--limit', '64', '--batch', '16', '--epochs', '1', '--lkam', '--keep', '0.5', '--validation', '0', '--layers', 'all-but-first', '--out', run, '--quiet'];
    const r1 = await cli(first);
    assert.equal(r1.code, 0, explain(first, r1));
    const file = join(run, 'config.json');
    const config = JSON.parse(readFileSync(file, 'utf8')) as { options: Record<string, unknown> };
    // The form earlier versions wrote: epochs of warm-up, the retired options at their defaults, no validation split, ramp, target or layers.
    for (const k of ['validation', 'ramp', 'target', 'layers']) delete config.options[k];
    Object.assign(config.options, { 'sparsity-warmup': 0.3, 'saturated-switches': 'pull', distill: 0, 'batch-shaping': 0, 'batch-shaping-prior': [0.6, 0.4], 'switch-noise': 0, 'lkam-detach': false, 'dead-switches': 'keep' });
    const write = (o: Record<string, unknown>): void => writeFileSync(file, JSON.stringify({ ...config, options: o }));
    write(config.options);
    const again = ['train', '--resume', run, '--epochs', '2', '--quiet'];
    const r2 = await cli(again);
    assert.equal(r2.code, 0, explain(again, r2));
    const epochs = readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { epoch: number }).epoch);
    assert.deepEqual(epochs, [1, 2]);

    const refused: Array<[Record<string, unknown>, RegExp]> = [
      [{ ...config.options, distill: 0.5 }, /^parsimony: --resume .*older: distill 0\.5 \(in-place distillation\) is retired, this version no longer trains it; a model trained with it still loads .* commit 2f28295 trains it\n$/],
      [{ ...config.options, 'saturated-switches': 'keep' }, /saturated-switches "keep" \(saturated switches kept open/],
      [Object.fromEntries(Object.entries(config.options).filter(([k]) => k !== 'saturated-switches')), /saturated-switches "keep" \(saturated switches kept open/],
      [Object.fromEntries(Object.entries({ ...config.options, budget: 0.4 }).filter(([k]) => k !== 'keep')), /budget 0\.4 \(the network-wide MAC budget controller/],
    ];
    for (const [options, pattern] of refused) {
      write(options);
      const r = await cli(['train', '--resume', run, '--epochs', '3', '--quiet']);
      assert.equal(r.code, 3, explain(['train', '--resume', run], r));
      assert.match(r.stderr, pattern);
      assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    }
  });

  test('--resume of a folder that is not a run, or has no checkpoint, is an input error', async () => {
    const empty = join(dir(), 'empty');
    mkdirSync(empty);
    const r1 = await cli(['train', '--resume', empty]);
    assert.equal(r1.code, 3, explain(['train', '--resume', empty], r1));
    assert.match(r1.stderr, /^parsimony: --resume .*empty: not a run directory \(no config\.json\)\n$/);
    writeFileSync(join(empty, 'config.json'), JSON.stringify({ options: { model: 'fmnist-vgg5-narrow', limit: 16, lkam: true } }));
    const r2 = await cli(['train', '--resume', empty]);
    assert.equal(r2.code, 3, explain(['train', '--resume', empty], r2));
    assert.match(r2.stderr, /^parsimony: --resume .*empty: no checkpoint\.ckpt to resume from\n$/);
  });
});
