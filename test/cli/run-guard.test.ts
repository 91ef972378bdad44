/**
 * Run directories, model files and evaluations are not lost: one process writes a run directory at
 * a time (a stale lock of a killed process is taken over), a finished run, a model file or a fuller
 * evaluation is replaced only with --force, and a failed write (full disk, read-only folder) names
 * the file and the cause, exits 3 and leaves no partial file.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeIdx } from '../../src/data/idx.js';
import { LOCK_FILE, lockRunDir, RunDirError } from '../../src/io/run-dir.js';
import { cli, explain, QUICK, startCli, tempDir, type CliResult } from './helpers.js';

const TRAIN = ['train', ...QUICK, '--limit', '64', '--batch', '16', '--quiet'];

function refused(args: readonly string[], r: CliResult, code: number, pattern: RegExp): void {
  assert.equal(r.code, code, explain(args, r));
  assert.match(r.stderr, pattern, explain(args, r));
  assert.doesNotMatch(r.stderr, /internal error/, explain(args, r));
}

async function run(args: string[], code: number, pattern: RegExp): Promise<CliResult> {
  const r = await cli(args);
  refused(args, r, code, pattern);
  return r;
}

/** Mounts a tmpfs (options as mount -o) at `dir`; false where mounting is not permitted. */
function mountTmpfs(dir: string, options: string): boolean {
  mkdirSync(dir, { recursive: true });
  return spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { stdio: 'ignore' }).status === 0;
}

describe('run directories, model files and evaluations are kept', () => {
  const dir = tempDir('parsimony-guard-');

  test('the lock: taken once per process, refused while its process lives, taken over when it is gone', () => {
    const d = join(dir(), 'locked');
    const lock = lockRunDir(d);
    assert.equal(lockRunDir(d), lock);
    const live = spawnSync(process.execPath, ['--import', 'tsx', '-e', `import('${join(process.cwd(), 'src/io/run-dir.ts')}').then((m) => { try { m.lockRunDir(${JSON.stringify(d)}); } catch (e) { process.stdout.write(e.message); } })`], { encoding: 'utf8' });
    assert.match(live.stdout, new RegExp(`locked: process ${process.pid} on .* is writing this run directory; wait for it to finish or stop it`));
    lock.release();
    assert.ok(!existsSync(join(d, LOCK_FILE)));
    const gone = spawnSync('true').pid as number;
    writeFileSync(join(d, LOCK_FILE), JSON.stringify({ pid: gone, host: hostname(), since: 'earlier' }));
    const taken = lockRunDir(d);
    assert.equal((JSON.parse(readFileSync(join(d, LOCK_FILE), 'utf8')) as { pid: number }).pid, process.pid);
    taken.release();
    writeFileSync(join(d, LOCK_FILE), JSON.stringify({ pid: 1, host: 'elsewhere', since: 'earlier' }));
    assert.throws(() => lockRunDir(d), (e: unknown) => e instanceof RunDirError && /process 1 on elsewhere \(since earlier\) is writing/.test(e.message));
    writeFileSync(join(d, LOCK_FILE), 'garbage');
    assert.throws(() => lockRunDir(d), /another process \(its lock file is unreadable\) is writing this run directory; .*or remove .*\.parsimony\.lock if no process writes it/);
  });

  test('a second train or a --resume on a run being written is refused; after SIGKILL the stale lock is taken over', async () => {
    const out = join(dir(), 'busy');
    const first = startCli(['train', ...QUICK, '--epochs', '40', '--plain', '--out', out]);
    await first.waitFor(/epoch 1\/40/);
    await run([...TRAIN, '--epochs', '1', '--out', out], 3, new RegExp(`busy: process ${first.child.pid} on .* is writing this run directory`));
    await run(['train', '--resume', out, '--epochs', '2'], 3, /busy: process \d+ on .* is writing this run directory/);
    first.child.kill('SIGKILL');
    await first.done;
    assert.ok(existsSync(join(out, LOCK_FILE)), 'a killed process leaves its lock');
    const args = ['train', '--resume', out, '--epochs', '2', '--quiet'];
    const r = await cli(args);
    assert.equal(r.code, 0, explain(args, r));
    assert.ok(!existsSync(join(out, LOCK_FILE)), 'the lock is released at exit');
    const epochs = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { epoch: number }).epoch);
    assert.deepEqual(epochs, Array.from({ length: epochs.length }, (_, i) => i + 1), 'each epoch once, in order');
  });

  test('a finished run, a model file and a full evaluation are replaced only with --force', async () => {
    const out = join(dir(), 'done');
    const args = [...TRAIN, '--epochs', '1', '--out', out];
    assert.equal((await cli(args)).code, 0);
    await run([...TRAIN, '--epochs', '1', '--seed', '7', '--out', out], 3, /done: this run directory already holds a finished run \(config\.json, metrics\.jsonl, checkpoint\.ckpt, .*model\.safetensors, eval\.json\); continue it with --resume .*, choose another --out, or pass --force to replace it/);
    assert.equal((JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { options: { seed: number } }).options.seed, 3, 'the finished run is untouched');
    const model = readFileSync(join(out, 'model.safetensors'));
    assert.equal((await cli(['export', out])).code, 0);
    await run(['import', join(out, 'model.onnx')], 3, /done\/model\.safetensors already exists \(a model file\); pass --force to replace it, or choose the file with --out/);
    assert.ok(readFileSync(join(out, 'model.safetensors')).equals(model), 'the model file is untouched');
    const evalBefore = readFileSync(join(out, 'eval.json'));
    await run(['eval', out, '--limit', '50', '--threads', '1'], 3, /done\/eval\.json holds an evaluation of 64 images, this one would use 50; pass --force to replace it, or --out another file/);
    assert.ok(readFileSync(join(out, 'eval.json')).equals(evalBefore));
    for (const a of [['eval', out, '--limit', '50', '--threads', '1', '--force', '--quiet'], ['import', join(out, 'model.onnx'), '--force'], [...TRAIN, '--epochs', '1', '--seed', '7', '--out', out, '--force']]) {
      const r = await cli(a);
      assert.equal(r.code, 0, explain(a, r));
    }
    assert.equal((JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { options: { seed: number } }).options.seed, 7);
    assert.equal(readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').length, 1, 'nothing of the old run mixes in');
  });

  const mounts: string[] = [];
  let mountRoot = '';
  after(() => {
    for (const m of mounts) spawnSync('umount', [m], { stdio: 'ignore' });
    rmSync(mountRoot, { recursive: true, force: true });
  });
  let full = '';
  let readOnly = '';
  before(() => {
    mountRoot = mkdtempSync(join(tmpdir(), 'parsimony-mounts-'));
    full = join(mountRoot, 'full');
    readOnly = join(mountRoot, 'ro');
    if (mountTmpfs(full, 'size=8k')) mounts.push(full);
    else full = '';
    if (mountTmpfs(readOnly, 'ro,size=8k')) mounts.push(readOnly);
    else readOnly = '';
  });

  test('failed writes name the file and the cause, exit 3 and leave no partial file', async () => {
    const out = join(dir(), 'done');
    const file = join(dir(), 'a-file');
    writeFileSync(file, 'x');
    const cases: Array<[string[], RegExp, string]> = [
      [['eval', out, '--threads', '1', '--out', join(file, 'eval.json')], /a-file\/eval\.json: cannot write: a part of the path is not a folder/, dir()],
    ];
    if (full !== '') {
      writeFileSync(join(full, 'filler'), new Uint8Array(4096));
      cases.push([['export', out, '--out', join(full, 'model.onnx')], /full\/model\.onnx: cannot write: no space left on the device/, full]);
    }
    if (readOnly !== '') {
      cases.push([['eval', out, '--threads', '1', '--out', join(readOnly, 'eval.json')], /ro\/eval\.json: cannot write: the file system is read-only/, readOnly]);
      cases.push([[...TRAIN, '--epochs', '1', '--out', join(readOnly, 'run')], /ro\/run: the file system is read-only/, readOnly]);
    }
    for (const [args, pattern, folder] of cases) {
      const before = readdirSync(folder).sort();
      await run(args, 3, pattern);
      assert.deepEqual(readdirSync(folder).sort(), before, `${args.join(' ')} left files behind`);
    }
  });

  test('NaN pixels in a float IDX file and an empty --data are named', async () => {
    const data = join(dir(), 'nan');
    mkdirSync(data);
    const pixels = new Float32Array(4 * 784).fill(0.5);
    pixels[784 + 5] = Number.NaN;
    writeFileSync(join(data, 'train-images-idx3-ubyte'), encodeIdx({ type: 'f32', dims: [4, 28, 28], data: pixels }));
    writeFileSync(join(data, 't10k-images-idx3-ubyte'), encodeIdx({ type: 'f32', dims: [4, 28, 28], data: new Float32Array(4 * 784).fill(Number.POSITIVE_INFINITY) }));
    for (const stem of ['train-labels-idx1-ubyte', 't10k-labels-idx1-ubyte']) writeFileSync(join(data, stem), encodeIdx({ type: 'u8', dims: [4], data: Uint8Array.of(0, 1, 2, 3) }));
    await run([...TRAIN, '--epochs', '1', '--data', data, '--out', join(dir(), 'nan-run')], 3, /train-images-idx3-ubyte: pixel 5 of image 1 is NaN; pixels must be finite numbers/);
    await run([...TRAIN, '--epochs', '1', '--data', '', '--out', join(dir(), 'empty-run')], 2, /^parsimony: --data should name a data set or a folder, got ''\n$/m);
  });
});
