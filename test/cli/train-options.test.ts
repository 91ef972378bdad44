import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cli, explain, QUICK } from './helpers.js';

interface TrainJson {
  epochs: Array<{ train: { loss: number } }>;
}

function trainLoss(stdout: string): number {
  const r = JSON.parse(stdout) as TrainJson;
  return r.epochs[0]?.train.loss ?? Number.NaN;
}

describe('parsimony train: augmentation and per-gate width options', () => {
  test('--flip and --crop-padding change what the net is trained on; a seeded run repeats exactly', async () => {
    const base = ['train', ...QUICK, '--limit', '64', '--batch', '16', '--epochs', '1', '--json'];
    const runs = [base, [...base, '--flip'], [...base, '--crop-padding', '2'], [...base, '--flip']];
    const results = await Promise.all(runs.map((a) => cli(a)));
    results.forEach((r, i) => assert.equal(r.code, 0, explain(runs[i] as string[], r)));
    const [plain, flip, crop, flipAgain] = results.map((r) => trainLoss(r.stdout)) as [number, number, number, number];
    assert.notEqual(flip, plain, 'mirrored images give another training loss');
    assert.notEqual(crop, plain, 'shifted crops give another training loss');
    assert.equal(flipAgain, flip, 'augmentation draws are seeded');
  });

  test('--keep trains one sparsity weight per gate, shown per gate in the epoch line', async () => {
    const args = ['train', ...QUICK, '--limit', '64', '--batch', '16', '--epochs', '1', '--lkam', '--keep', '0.5', '--ramp', '0', '--plain'];
    const r = await cli(args);
    assert.equal(r.code, 0, explain(args, r));
    const m = /sparsity weights ((?:[\d.]+ ?)+),/.exec(r.stdout);
    assert.ok(m !== null, `per-gate weights in:\n${r.stdout}`);
    const weights = (m[1] as string).trim().split(' ').map(Number);
    assert.equal(weights.length, 5, 'every conv of fmnist-vgg5 is gated by default');
    // Every gate starts fully on, above its 0.5 target, so each controller raises its weight above --sparsity (0.05).
    for (const w of weights) assert.ok(w > 0.05, `weights ${weights.join(' ')}`);
  });
});
