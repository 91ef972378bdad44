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
      train: ['--lkam', '--target', '--validation', '--epochs', '--data', '--out', '--resume', '--config', '--json', '--quiet', '--plain', '--save', '--help-all'],
      eval: ['--thresholds', '--budgets', '--data', '--json'],
      prune: ['--split', '--out', '--json'],
      export: ['--out', '--dense'],
      import: ['--out', '--input-shape', '--classes'],
      bench: ['--batch', '--reps', '--rounds', '--no-ort', '--json'],
      report: ['--out', '--title'],
      info: ['--json'],
      demo: ['--no-lkam', '--epochs', '--out', '--target'],
    };
    const results = await Promise.all(COMMANDS.map((c) => cli([c, '--help'])));
    COMMANDS.forEach((c, i) => {
      const r = results[i]!;
      assert.equal(r.code, 0, explain([c, '--help'], r));
      assert.match(r.stdout, new RegExp(`^Usage: parsimony ${c}`, 'm'));
      for (const flag of expected[c]) assert.ok(r.stdout.includes(flag), `${c} --help mentions ${flag}:\n${r.stdout}`);
    });
  });

  test('train --help fits on one screen; --help-all adds the advanced recipe', async () => {
    const [short, all] = await Promise.all([cli(['train', '--help']), cli(['train', '--help-all'])]);
    assert.equal(short.code, 0, explain(['train', '--help'], short));
    assert.equal(all.code, 0, explain(['train', '--help-all'], all));
    const lines = short.stdout.trimEnd().split('\n').length;
    assert.ok(lines <= 50, `train --help has ${lines} lines:\n${short.stdout}`);
    for (const flag of ['--batch', '--lr', '--keep', '--ramp', '--pool', '--grid', '--bank', '--layers']) {
      assert.ok(!short.stdout.includes(`${flag} `), `${flag} is advanced, not in the short help`);
      assert.ok(all.stdout.includes(`${flag} `), `--help-all lists ${flag}`);
    }
    for (const retired of ['--distill', '--batch-shaping', '--switch-noise', '--lkam-detach', '--dead-switches', '--saturated-switches', '--budget', '--sparsity-warmup']) {
      assert.ok(!all.stdout.includes(retired), `${retired} is retired`);
    }
  });

  test('usage errors exit 2 with one line: unknown command, unknown option, bad values', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['trian'], /unknown command 'trian'/],
      [['train', '--epoch', '3'], /unknown option '--epoch'/],
      [['train', '--epochs', 'x'], /--epochs should be a whole number in 1\.\.10000, got 'x'/],
      [['train', '--optimizer', 'adagrad'], /--optimizer.*adagrad/],
      [['train', '--lkam', '--target', '1.5'], /--target should be a fraction in \(0, 1\] of the dense multiply-adds \(e\.g\. 0\.33\) or a reduction >= 1 \(e\.g\. 3x\), got '1\.5'/],
      [['train', '--lkam', '--target', '0.5x'], /--target should be .*got '0\.5x'/],
      [['train', '--width', '0'], /--width should be a number in \[0\.03125, 16\], got '0'/],
      [['train', '--lkam', '--sparsity-power', '1.5'], /--sparsity-power should be a number in \(0, 1\], got '1\.5'/],
      [['train', '--crop-padding', '-1'], /--crop-padding should be a whole number in 0\.\.64, got '-1'/],
      [['train', '--keep', '0.5', '--limit', '16'], /--keep needs LKAMs \(--lkam\)/],
      [['train', '--target', '4x', '--limit', '16'], /--target needs LKAMs \(--lkam\)/],
      [['train', '--lkam', '--keep', '0'], /--keep should be a number in \(0, 1\], got '0'/],
      [['train', '--layers', '1,2', '--limit', '16'], /--layers needs LKAMs \(--lkam\)/],
      [['train', '--lkam', '--layers', '1,x'], /--layers should be 'all', 'all-but-first' or a comma-separated list of conv indices \(whole numbers >= 0\), got '1,x'/],
      [['train', '--lkam', '--layers', '0,7', '--limit', '16'], /--layers should be conv indices of --model fmnist-vgg5, which has 5 convs \(0 to 4\), got '0,7'/],
      [['train', '--distill', '0.5'], /unknown option '--distill'/],
      [['train', '--budget', '0.3'], /unknown option '--budget'/],
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

  test('option values beyond what the machine can do are usage errors naming the option and the allowed range', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['train', '--batch', '1e6'], /^parsimony: --batch should be a whole number in 1\.\.4096, got '1e6'\n$/],
      [['train', '--batch', '0'], /--batch should be a whole number in 1\.\.4096, got '0'/],
      [['train', '--width', '1000'], /^parsimony: --width should be a number in \[0\.03125, 16\], got '1000'\n$/],
      [['train', '--width', '40'], /--width should be a number in \[0\.03125, 16\], got '40'/],
      [['train', '--width', '1e-9'], /--width should be a number in \[0\.03125, 16\], got '1e-9'/],
      [['train', '--lkam', '--bank', '1e9'], /^parsimony: --bank should be a whole number in 1\.\.256, got '1e9'\n$/],
      [['train', '--lkam', '--grid', '29', '--limit', '16'], /^parsimony: --grid should be a whole number in 1\.\.7: the smallest maps an LKAM of --model fmnist-vgg5 reads are 7x7, got 29\n$/],
      [['train', '--lkam', '--grid', '8', '--limit', '16'], /--grid should be a whole number in 1\.\.7/],
      [['train', '--threads', '1000'], /^parsimony: --threads should be a whole number in 1\.\.\d+, got '1000'\n$/],
      [['train', '--seed', '-1'], /^parsimony: --seed should be a whole number in 0\.\.4294967295, got '-1'\n$/],
      [['train', '--seed', '1.5'], /--seed should be a whole number in 0\.\.4294967295, got '1\.5'/],
      [['train', '--epochs', '1e9'], /--epochs should be a whole number in 1\.\.10000, got '1e9'/],
      [['train', '--lr', '0'], /--lr should be a number in \(0, 10\], got '0'/],
      [['train', '--validation', '0.9'], /--validation should be a number in \[0, 0\.5\], got '0\.9'/],
      [['train', '--lkam', '--target', '0.001', '--limit', '16'], /--target should be at least 0\.\d+ for --model fmnist-vgg5/],
      [['train', '--model', 'fmnist-vgg5-wide', '--width', '16', '--batch', '4096', '--limit', '16'], /^parsimony: --batch and --width should be a configuration that fits the engine's 4 GiB: this one needs about [\d.]+ GiB .*got '4096 and 16'\n$/],
      [['train', '--width', '16', '--limit', '16'], /needs about [\d.]+ GiB/],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(args)));
    cases.forEach(([args, pattern], i) => {
      const r = results[i]!;
      assert.equal(r.code, 2, explain(args, r));
      assert.match(r.stderr, pattern, explain(args, r));
      assert.doesNotMatch(r.stderr, /internal error|\n\s+at /, 'no internal error, no stack trace');
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
    writeFileSync(good, JSON.stringify({ epochs: 2, ramp: 0, lkam: true, sparsity: 0.5, 'sparsity-power': 0.7, distill: 0, 'switch-noise': 0, optimizer: 'sgd', lr: 0.01, width: 2, target: '4x' }));
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
    assert.equal(config.options['sparsity-power'], 0.7);
    assert.equal(config.options['target'], 0.25, "'4x' is a quarter of the dense multiply-adds");
    assert.equal('distill' in config.options, false, 'a retired option at its inert value is dropped');
    assert.equal(config.options['lkam'], true);
    assert.equal(config.options['epochs'], 1);

    const bad: Array<[unknown, RegExp]> = [
      [{ epoch: 3 }, /'epoch' is not an option of 'train'/],
      [{ epochs: 'many' }, /--epochs should be a whole number|'epochs' should be a whole number/],
      [{ optimizer: 'adagrad' }, /'optimizer' should be one of adam, adamw, sgd/],
      [{ lkam: 'yes' }, /'lkam' should be true or false/],
      [{ lkam: true, distill: 0.5 }, /distill 0\.5 \(in-place distillation\) is retired, this version no longer trains it/],
      [{ 'sparsity-warmup': 2 }, /'sparsity-warmup' \(epochs\) became 'ramp', a fraction of the run/],
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
