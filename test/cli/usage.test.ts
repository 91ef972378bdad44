import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { engine, init } from '../../src/autograd/engine.js';
import { saveModel } from '../../src/io/node-files.js';
import { Conv2d, Flatten, Linear, manualSeed, Sequential } from '../../src/nn/layers.js';
import { fmnistVgg5 } from '../../src/nn/zoo.js';
import { cli, explain, QUICK, tempDir } from './helpers.js';

const COMMANDS = ['train', 'eval', 'prune', 'export', 'import', 'bench', 'report', 'info', 'demo'] as const;

/** One line naming the problem, no stack trace. */
function assertOneLine(stderr: string, pattern: RegExp): void {
  const lines = stderr.trim().split('\n');
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${stderr}`);
  assert.match(lines[0] as string, pattern);
  assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
}

describe('parsimony: help, usage errors and input errors', () => {
  const dir = tempDir('parsimony-cli-usage-');

  test('--help lists every command and the exit codes', async () => {
    const r = await cli(['--help']);
    assert.equal(r.code, 0, explain(['--help'], r));
    for (const c of COMMANDS) assert.match(r.stdout, new RegExp(`^  ${c} `, 'm'), `--help lists ${c}`);
    assert.match(r.stdout, /Exit codes:[\s\S]*130/);
  });

  test('every command has a help page naming its options', async () => {
    const expected: Record<(typeof COMMANDS)[number], readonly string[]> = {
      train: ['--lkam', '--sparsity', '--budget', '--out', '--resume', '--config', '--json', '--quiet', '--plain', '--limit', '--save', '--dead-switches'],
      eval: ['--thresholds', '--budgets', '--data', '--json'],
      prune: ['--split', '--out', '--json'],
      export: ['--out', '--dense'],
      import: ['--out', '--input-shape', '--classes'],
      bench: ['--batch', '--reps', '--rounds', '--no-ort', '--json'],
      report: ['--out', '--title'],
      info: ['--json'],
      demo: ['--no-lkam', '--epochs', '--out', '--sparsity'],
    };
    const results = await Promise.all(COMMANDS.map((c) => cli([c, '--help'])));
    COMMANDS.forEach((c, i) => {
      const r = results[i]!;
      assert.equal(r.code, 0, explain([c, '--help'], r));
      assert.match(r.stdout, new RegExp(`^Usage: parsimony ${c}`, 'm'));
      for (const flag of expected[c]) assert.ok(r.stdout.includes(flag), `${c} --help mentions ${flag}:\n${r.stdout}`);
    });
  });

  test('usage errors exit 2 with one line: unknown command, unknown option, bad values', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['trian'], /unknown command 'trian'/],
      [['train', '--epoch', '3'], /unknown option '--epoch'/],
      [['train', '--epochs', 'x'], /--epochs should be a whole number >= 1, got 'x'/],
      [['train', '--optimizer', 'adagrad'], /--optimizer.*adagrad/],
      [['train', '--budget', '1.5'], /--budget should be a fraction in \(0, 1\], got '1.5'/],
      [['train', '--width', '0'], /--width should be a number > 0, got '0'/],
      [['train', '--lkam', '--sparsity-power', '1.5'], /--sparsity-power should be a fraction in \(0, 1\], got '1.5'/],
      [['train', '--lkam', '--distill', '2'], /--distill should be a number in \[0, 1\], got '2'/],
      [['train', '--distill', '0.5'], /--distill needs LKAMs \(--lkam\)/],
      [['train', '--batch-shaping', '1'], /--batch-shaping needs LKAMs \(--lkam\)/],
      [['train', '--switch-noise', '0.3'], /--switch-noise needs LKAMs \(--lkam\)/],
      [['train', '--lkam', '--switch-noise', '-1'], /--switch-noise should be a number >= 0, got '-1'/],
      [['train', '--lkam', '--switch', 'sigmoid', '--switch-noise', '0.3'], /--switch-noise applies to 'hard' and 'binary' switches, not --switch sigmoid/],
      [['train', '--lkam', '--switch-noise', '0.3', '--sparsity-power', '0.5'], /--switch-noise and --sparsity-power: .* choose one/],
      [['train', '--crop-padding', '-1'], /--crop-padding should be a whole number >= 0, got '-1'/],
      [['train', '--keep', '0.5'], /--keep needs LKAMs \(--lkam\)/],
      [['train', '--lkam', '--keep', '0'], /--keep should be a fraction in \(0, 1\], got '0'/],
      [['train', '--lkam', '--keep', '0.5', '--budget', '0.3'], /--keep and --budget both set the sparsity weight: choose one/],
      [['train', '--lkam', '--batch-shaping-prior', '0.6'], /--batch-shaping-prior should be a comma-separated list of two Beta shape parameters \(numbers > 0\), got '0.6'/],
      [['train', '--lkam', '--batch-shaping-prior', '0.6,0'], /got '0' in '0.6,0'/],
      [['train', '--layers', '1,2'], /--layers chooses the convs that LKAMs gate, so it needs --lkam/],
      [['train', '--lkam', '--layers', '1,x'], /--layers should be a comma-separated list of conv indices \(whole numbers >= 0\), got 'x'/],
      [['train', '--lkam', '--layers', '0,7', '--limit', '16'], /--layers 0,7: --model fmnist-vgg5 has 5 convs \(indices 0 to 4\), so 7 do not exist/],
      [['eval', 'm.safetensors', '--budgets', '1,2'], /--budgets should be a comma-separated list of numbers in \[0, 1\], got '2'/],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(args)));
    cases.forEach(([args, pattern], i) => {
      const r = results[i]!;
      assert.equal(r.code, 2, explain(args, r));
      assert.match(r.stderr, pattern, explain(args, r));
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    });
  });

  test('input errors exit 3 with one line naming the input: missing files and folders', async () => {
    const missing = join(dir(), 'nope');
    const cases: Array<[string[], RegExp]> = [
      [['eval', missing], new RegExp(`^parsimony: ${missing}: no such file or run directory`)],
      [['info', join(dir(), 'nope.safetensors')], /nope\.safetensors: no such file or run directory/],
      [['import', join(dir(), 'nope.onnx')], /nope\.onnx: no such file/],
      [['report', missing], /nope: no such run directory/],
      [['train', '--data', missing, '--epochs', '1'], /nope: no such folder \(--data takes builtin, full or a folder\)/],
      [['train', '--config', join(dir(), 'nope.json')], /--config .*nope\.json: no such file/],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(args)));
    cases.forEach(([args, pattern], i) => {
      const r = results[i]!;
      assert.equal(r.code, 3, explain(args, r));
      assertOneLine(r.stderr, pattern);
    });
  });

  test('a model that does not fit the data: one line naming the file, the shapes; --debug adds the stack', async () => {
    await init({ threads: 1 });
    manualSeed(1);
    const file = join(dir(), 'small-input.safetensors');
    saveModel(file, new Sequential([new Conv2d({ inChannels: 1, outChannels: 2, kernel: 3, padding: 1 }), new Flatten(), new Linear({ inFeatures: 128, outFeatures: 10 })]), { inputShape: [1, 8, 8] });
    engine().close();
    const r = await cli(['eval', file, '--data', 'builtin']);
    assert.equal(r.code, 3, explain(['eval', file], r));
    assertOneLine(r.stderr, /small-input\.safetensors: the model reads 1x8x8 images, but --data builtin holds 1x28x28 images/);
    const d = await cli(['eval', file, '--data', 'builtin', '--debug']);
    assert.equal(d.code, 3);
    assert.match(d.stderr, /\n\s+at /, '--debug prints the stack');
  });

  test('a corrupt model file is an input error naming the file', async () => {
    const file = join(dir(), 'corrupt.safetensors');
    writeFileSync(file, Buffer.from('not a safetensors file at all'));
    const r = await cli(['info', file]);
    assert.equal(r.code, 3, explain(['info', file], r));
    assertOneLine(r.stderr, /corrupt\.safetensors: /);
  });

  test('config files: values apply as options, the command line wins, unknown keys and bad values are usage errors', async () => {
    const good = join(dir(), 'good.json');
    writeFileSync(good, JSON.stringify({ epochs: 2, 'sparsity-warmup': 0, lkam: true, sparsity: 0.5, 'sparsity-power': 0.5, distill: 0.5, 'batch-shaping': 0.5, 'batch-shaping-prior': [0.5, 0.5], optimizer: 'sgd', lr: 0.01, width: 2 }));
    const out = join(dir(), 'cfg-run');
    const args = ['train', ...QUICK, '--limit', '64', '--config', good, '--epochs', '1', '--out', out, '--json'];
    const r = await cli(args);
    assert.equal(r.code, 0, explain(args, r));
    const json = JSON.parse(r.stdout) as { epochs: unknown[]; run: string };
    assert.equal(json.epochs.length, 1, '--epochs on the command line beats the config file');
    const { readFileSync } = await import('node:fs');
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { options: Record<string, unknown>; network: { denseMacs: number } };
    assert.equal(config.options['optimizer'], 'sgd');
    assert.equal(config.options['width'], 2);
    assert.equal(config.network.denseMacs, fmnistVgg5({ width: 0.5 }).macs([1, 1, 28, 28]), '--width 2 doubles the narrow network (0.25) to width 0.5');
    assert.equal(config.options['sparsity'], 0.5);
    assert.equal(config.options['sparsity-power'], 0.5);
    assert.equal(config.options['distill'], 0.5);
    assert.equal(config.options['batch-shaping'], 0.5);
    assert.deepEqual(config.options['batch-shaping-prior'], [0.5, 0.5]);
    assert.equal(config.options['lkam'], true);
    assert.equal(config.options['epochs'], 1);

    const bad: Array<[unknown, RegExp]> = [
      [{ epoch: 3 }, /'epoch' is not an option of 'train'/],
      [{ epochs: 'many' }, /--epochs should be a whole number|'epochs' should be a whole number/],
      [{ optimizer: 'adagrad' }, /'optimizer' should be one of adam, adamw, sgd/],
      [{ lkam: 'yes' }, /'lkam' should be true or false/],
      [[1, 2], /expected a JSON object/],
    ];
    const results = await Promise.all(bad.map(async (value, i) => {
      const file = join(dir(), `bad-${i}.json`);
      writeFileSync(file, JSON.stringify(value[0]));
      return cli(['train', '--config', file]);
    }));
    bad.forEach(([, pattern], i) => {
      const res = results[i]!;
      assert.equal(res.code, 2, explain(['train', '--config', `bad-${i}.json`], res));
      assertOneLine(res.stderr, pattern);
    });
  });
});
