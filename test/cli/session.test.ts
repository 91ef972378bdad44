import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, explain, QUICK } from './helpers.js';

interface TrainJson {
  epochs: Array<{ epoch: number; train: { loss: number }; imagesPerSecond: number; seconds: number; test: null; validation: { accuracy: number } | null; layers: unknown[] }>;
  test: { accuracy: number; count: number; macs: { reduction: number } };
  eval: { perImageMacs: number[] };
  run: string;
  saved: string[];
}

function json<T>(text: string, what: string): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new Error(`${what}: stdout is not JSON:\n${text.slice(0, 2000)}`);
  }
}

/** A new user's session on the built-in subset: train, eval (runtime knob), prune, export, import, info, bench, report. */
describe('parsimony: a train → eval → prune → export → import → bench → report session', () => {
  let dir = '';
  let run = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'parsimony-cli-session-'));
    run = join(dir, 'run');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('train --json --out: the per-epoch reports, the run directory and --save', async () => {
    const save = join(dir, 'saved.safetensors');
    const args = ['train', ...QUICK, '--epochs', '2', '--lkam', '--sparsity', '2', '--ramp', '0', '--layers', 'all-but-first', '--out', run, '--save', save, '--json'];
    const r = await cli(args);
    assert.equal(r.code, 0, explain(args, r));
    const out = json<TrainJson>(r.stdout, 'train --json');
    assert.equal(out.epochs.length, 2);
    for (const e of out.epochs) {
      for (const k of ['epoch', 'imagesPerSecond', 'seconds'] as const) assert.equal(typeof e[k], 'number', `epochs[].${k}`);
      assert.equal(typeof e.train.loss, 'number', 'epochs[].train.loss');
      assert.equal(e.layers.length, 4, 'every conv of fmnist-vgg5-narrow but the first is gated');
      assert.equal(typeof e.validation?.accuracy, 'number', 'each epoch is measured on the validation split');
      assert.equal(e.test, null, 'the test split is read once, at the end');
    }
    assert.equal(out.test.count, 256, 'the final measurement reads the whole (limited) test split');
    assert.equal(out.eval.perImageMacs.length, 256);
    assert.equal(out.run, run);
    assert.deepEqual(out.saved.sort(), [join(run, 'model.safetensors'), save].sort());
    for (const f of ['config.json', 'metrics.jsonl', 'checkpoint.ckpt', 'model.safetensors', 'eval.json']) assert.ok(existsSync(join(run, f)), `${f} in the run directory`);
    const metrics = readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { epoch: number; train: { meanSwitch: number }; layers: unknown[]; macs: { reduction: number } });
    assert.deepEqual(metrics.map((m) => m.epoch), [1, 2]);
    assert.ok(metrics.every((m) => m.layers.length === 4 && typeof m.train.meanSwitch === 'number' && m.macs.reduction > 0));
    const config = JSON.parse(readFileSync(join(run, 'config.json'), 'utf8')) as { options: Record<string, unknown> };
    assert.equal(config.options['sparsity'], 2);
    assert.equal(config.options['model'], 'fmnist-vgg5-narrow');
    const ev = JSON.parse(readFileSync(join(run, 'eval.json'), 'utf8')) as { images: number; layers: Array<{ onRateByClass: number[][] }>; plan: { agreesWithGraph: number }; cheapest: unknown[]; costliest: unknown[] };
    assert.equal(ev.images, 256);
    assert.equal(ev.layers[0]?.onRateByClass.length, 10, 'on-rates per class');
    assert.equal(ev.cheapest.length, 8);
    assert.equal(ev.costliest.length, 8);
    assert.ok(ev.plan.agreesWithGraph > 0.97, `the compiled plan predicts what the training graph does (${ev.plan.agreesWithGraph})`);
  });

  test('train without --json prints one plain line per epoch (stderr is not a terminal) and the result', async () => {
    const args = ['train', ...QUICK, '--limit', '64', '--epochs', '2', '--lkam'];
    const r = await cli(args);
    assert.equal(r.code, 0, explain(args, r));
    assert.match(r.stdout, /epoch 1\/2: train loss [\d.]+ acc [\d.]+% \| \d+ images\/s.*mean switch [\d.]+.*MACs [\d.]+ M/);
    assert.match(r.stdout, /epoch 2\/2: /);
    assert.match(r.stdout + r.stderr, /, 5 LKAMs gating convs 0, 1, 2, 3, 4 \('kernels on' below follows this order\)/, 'the gated convs are named as --layers counts them');
    assert.match(r.stdout, /^test accuracy [\d.]+%, [\d.]+x fewer multiply-adds than dense/m);
    const q = await cli([...args, '--quiet']);
    assert.equal(q.code, 0, explain([...args, '--quiet'], q));
    assert.doesNotMatch(q.stdout, /epoch 1\/2/, '--quiet drops the progress lines');
    assert.match(q.stdout, /^test accuracy/m);
  });

  test('eval --thresholds --budgets: the runtime-knob curve in knob.json and --json', async () => {
    const args = ['eval', run, '--thresholds', '0,0.3', '--budgets', '1,0.5,0', '--threads', '1', '--json'];
    const r = await cli(args);
    assert.equal(r.code, 0, explain(args, r));
    const out = json<{ plan: { accuracy: number; meanMacs: number; imageMs: number }; layers: Array<{ name: string; conv: number }>; knob: Array<{ threshold: number | null; budget: number; accuracy: number; meanMacs: number }> }>(r.stdout, 'eval --json');
    assert.ok(out.plan.accuracy > 0 && out.plan.meanMacs > 0 && out.plan.imageMs > 0);
    assert.equal(out.knob.length, 7, 'the default operating point, then every threshold with every budget');
    assert.deepEqual(out.layers.map((l) => [l.conv, l.name]), [[1, '3'], [2, '5'], [3, '6'], [4, '8']], 'each gate by its conv index (as --layers counts) and module path');
    assert.deepEqual(out.knob.map((p) => [p.threshold, p.budget]), [[null, 1], [0, 1], [0, 0.5], [0, 0], [0.3, 1], [0.3, 0.5], [0.3, 0]]);
    const [, full, half, none] = out.knob;
    assert.ok(full!.meanMacs >= half!.meanMacs && half!.meanMacs >= none!.meanMacs, 'a smaller budget never costs more');
    const file = JSON.parse(readFileSync(join(run, 'knob.json'), 'utf8')) as { points: unknown[] };
    assert.equal(file.points.length, 7);
  });

  test('prune: removes never-on kernels and counts the test predictions that change', async () => {
    const args = ['prune', run, '--limit', '256', '--threads', '1', '--json'];
    const r = await cli(args);
    assert.equal(r.code, 0, explain(args, r));
    const out = json<{ file: string; kernelsRemoved: number; test: { images: number; predictionsDiffering: number }; parameters: { gated: number; pruned: number } }>(r.stdout, 'prune --json');
    assert.equal(out.file, join(run, 'pruned.safetensors'));
    assert.ok(existsSync(out.file));
    assert.equal(out.test.images, 256);
    assert.equal(typeof out.test.predictionsDiffering, 'number');
    assert.ok(out.parameters.pruned <= out.parameters.gated);
    const info = await cli(['info', out.file, '--json']);
    assert.equal(info.code, 0, explain(['info', out.file], info));
    const i = json<{ pruned: { kernelsRemoved: number } | null; lkams: unknown[]; parameters: number }>(info.stdout, 'info --json');
    assert.equal(i.pruned?.kernelsRemoved, out.kernelsRemoved, 'info reports the pruned state');
    assert.equal(i.parameters, out.parameters.pruned);
  });

  test('export to ONNX and import back: the same architecture size', async () => {
    const exp = await cli(['export', run, '--json']);
    assert.equal(exp.code, 0, explain(['export', run], exp));
    const e = json<{ file: string; switchOutputs: unknown[] }>(exp.stdout, 'export --json');
    assert.equal(e.file, join(run, 'model.onnx'));
    assert.equal(e.switchOutputs.length, 4);
    const back = join(dir, 'imported.safetensors');
    const imp = await cli(['import', e.file, '--out', back, '--classes', 'fashion-mnist', '--json']);
    assert.equal(imp.code, 0, explain(['import', e.file], imp));
    const i = json<{ parameters: number; lkams: number; inputShape: number[] }>(imp.stdout, 'import --json');
    const info = json<{ parameters: number; classNames: string[] }>((await cli(['info', run, '--json'])).stdout, 'info --json');
    assert.equal(i.parameters, info.parameters);
    assert.equal(i.lkams, 4);
    assert.deepEqual(i.inputShape, [1, 28, 28]);
    const human = await cli(['info', back]);
    assert.equal(human.code, 0);
    assert.match(human.stdout, /LKAMs: 4, gating conv 1 \(module 3, 8 switches, hard\)/);
  });

  test('bench: skipping vs dense twin at batch 1 and a larger batch, bench.json', async () => {
    const args = ['bench', run, '--reps', '3', '--warmup', '1', '--rounds', '1', '--batch', '16', '--json'];
    const r = await cli(args);
    assert.equal(r.code, 0, explain(args, r));
    const out = json<{ rows: Array<{ engine: string; mode: string; batch: number; medianMs: number }>; speedup: Record<string, number | null> }>(r.stdout, 'bench --json');
    const ours = out.rows.filter((x) => x.engine === 'parsimony').map((x) => `${x.mode}@${x.batch}`).sort();
    assert.deepEqual(ours, ['dense twin@1', 'dense twin@16', 'skipping@1', 'skipping@16']);
    assert.ok(out.rows.every((x) => x.medianMs > 0));
    assert.equal(typeof out.speedup['speed-up over the dense twin, batch 1'], 'number');
    assert.ok(existsSync(join(run, 'bench.json')));
  });

  test('report: one HTML file with no external references', async () => {
    const r = await cli(['report', run]);
    assert.equal(r.code, 0, explain(['report', run], r));
    const html = readFileSync(join(run, 'report.html'), 'utf8');
    assert.doesNotMatch(html, /<script|<link|src="http|href="http|url\(http/i, 'self-contained: no scripts, no external resources');
    for (const id of ['curve-loss', 'curve-accuracy', 'curve-compute', 'heatmap-0', 'heatmap-3', 'macs-histogram', 'macs-per-class', 'knob-curve', 'sweep-curve']) {
      assert.ok(html.includes(`id="${id}"`), `the report has the plot ${id}`);
    }
    assert.match(html, /id="bench-table"/);
    assert.equal((html.match(/<img src="data:image\/png;base64,/g) ?? []).length, 16, 'eight cheapest and eight costliest thumbnails');
  });
});
