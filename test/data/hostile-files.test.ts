/**
 * Readers open only regular files (a FIFO, a device, a folder is refused at once, never read),
 * inflate gzip no further than the IDX header promises, and check an image's size from its header
 * before decoding it. Each refusal names the file and the cause.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32, gzipSync } from 'node:zlib';
import sharp from 'sharp';
import { readNameList } from '../../src/data/cifar.js';
import { DataError } from '../../src/data/errors.js';
import { loadFashionMnist } from '../../src/data/fashion-mnist.js';
import { readRegularFile } from '../../src/data/files.js';
import { encodeIdx, readIdx } from '../../src/data/idx.js';
import { loadImageFolder, type ImageFolderOptions } from '../../src/data/image-folder.js';
import { cli, explain, tempDir } from '../cli/helpers.js';

const fifo = (path: string): void => {
  execFileSync('mkfifo', [path]);
};

async function refuses(f: () => unknown, pattern: RegExp, label: string): Promise<void> {
  const t0 = performance.now();
  await assert.rejects(async () => f(), (e: unknown) => {
    assert.ok(e instanceof DataError, `${label}: ${String(e)}`);
    assert.match(e.message, pattern, label);
    return true;
  }, label);
  assert.ok(performance.now() - t0 < 5000, `${label} took ${performance.now() - t0} ms`);
}

/** IDX images header for n images of 28x28 u8, then `zeros` zero bytes. */
function idxImages(n: number, zeros: number): Uint8Array {
  const out = new Uint8Array(16 + zeros);
  const v = new DataView(out.buffer);
  v.setUint32(0, 0x0803);
  [n, 28, 28].forEach((d, i) => v.setUint32(4 + 4 * i, d));
  return out;
}

/** `members` gzip members of 1 MiB zeros after a first member holding `head`: a small file inflating to `members` MiB. */
function gzipBomb(head: Uint8Array, members: number): Uint8Array {
  const zeros = gzipSync(new Uint8Array(2 ** 20), { level: 9 });
  const first = gzipSync(head);
  const out = new Uint8Array(first.length + members * zeros.length);
  out.set(first);
  for (let i = 0; i < members; i++) out.set(zeros, first.length + i * zeros.length);
  return out;
}

/** A valid PNG whose header claims width x height (the pixels are a 1x1 image's). */
async function pngClaiming(width: number, height: number): Promise<Uint8Array> {
  const png = new Uint8Array(await sharp({ create: { width: 1, height: 1, channels: 3, background: '#808080' } }).png().toBuffer());
  const v = new DataView(png.buffer);
  v.setUint32(16, width);
  v.setUint32(20, height);
  v.setUint32(29, crc32(png.subarray(12, 29)));
  return png;
}

describe('hostile files', () => {
  const dir = tempDir('parsimony-hostile-');

  test('FIFOs, devices and folders named like data files are refused without blocking', async () => {
    const idx = join(dir(), 'idx');
    mkdirSync(idx);
    for (const stem of ['train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']) writeFileSync(join(idx, stem), encodeIdx({ type: 'u8', dims: [1], data: new Uint8Array(1) }));
    fifo(join(idx, 'train-images-idx3-ubyte'));
    await refuses(() => loadFashionMnist({ dir: idx }), /train-images-idx3-ubyte: is a FIFO \(named pipe\), expected a regular file$/, 'IDX FIFO');
    symlinkSync('/dev/zero', join(dir(), 'zero-images-idx3-ubyte.gz'));
    await refuses(() => readIdx(join(dir(), 'zero-images-idx3-ubyte.gz')), /zero-images-idx3-ubyte\.gz: is a character device, expected a regular file$/, '.gz symlink to /dev/zero');
    await refuses(() => readIdx('/dev/null'), /is a character device/, '/dev/null');
    await refuses(() => readIdx(dir()), /is a folder, expected a regular file$/, 'a folder');
    fifo(join(dir(), 'batches.meta.txt'));
    await refuses(() => readNameList(join(dir(), 'batches.meta.txt'), 10), /batches\.meta\.txt: is a FIFO/, 'CIFAR names FIFO');
    const images = join(dir(), 'images', 'cat');
    mkdirSync(images, { recursive: true });
    fifo(join(images, 'a.png'));
    await refuses(() => loadImageFolder(join(dir(), 'images')), /a\.png: is a FIFO/, 'image FIFO');
    writeFileSync(join(dir(), 'big.json'), new Uint8Array(2048));
    assert.throws(() => readRegularFile(join(dir(), 'big.json'), { maxBytes: 1024, what: 'a config file' }), /big\.json: has 2048 bytes, more than the 1024 bytes a config file may have/);
  });

  test('gzip inflates only as far as the IDX header promises', async () => {
    const file = join(dir(), 'bomb-idx3-ubyte.gz');
    writeFileSync(file, gzipBomb(idxImages(10, 7840), 1024));
    await refuses(() => readIdx(file), /bomb-idx3-ubyte\.gz: gzip data inflates to more than the 7856 bytes its IDX header describes \(10 images of 28x28\)$/, '1 GiB bomb');
    writeFileSync(file, gzipBomb(idxImages(4_000_000, 0), 64));
    await refuses(() => readIdx(file), /header says 4000000 images of 28x28 \(3136000000 bytes\), more than the 2147483648 bytes an IDX file may hold/, 'a promise beyond the bound');
    writeFileSync(file, gzipSync(idxImages(10, 100)));
    await refuses(() => readIdx(file), /header says 10 images of 28x28 \(7840 bytes\), file has 100 bytes of data/, 'less than promised');
    writeFileSync(file, gzipSync(new Uint8Array([0, 0, 8])));
    await refuses(() => readIdx(file), /truncated IDX header: the inflated data has 3 bytes, the header needs at least 4/, 'inflated header too short');
    const good = gzipSync(encodeIdx({ type: 'u8', dims: [2, 28, 28], data: new Uint8Array(1568).fill(7) }));
    writeFileSync(file, good.subarray(0, good.length - 12));
    await refuses(() => readIdx(file), /gzip data is corrupt or truncated/, 'truncated gzip');
    writeFileSync(file, good);
    assert.deepEqual(readIdx(file).dims, [2, 28, 28]);
  });

  test('images are measured from their header before decoding; options are checked', async () => {
    const root = join(dir(), 'bombs');
    mkdirSync(join(root, 'a'), { recursive: true });
    for (const [w, h] of [[16000, 16000], [5000, 5000], [100000, 1000]] as const) {
      writeFileSync(join(root, 'a', '0.png'), await pngClaiming(w, h));
      await refuses(() => loadImageFolder(root), new RegExp(`0\\.png: image is ${w}x${h} \\(${w * h} pixels\\), more than the 16777216 pixels \\(4096x4096\\) an image may have`), `${w}x${h}`);
    }
    writeFileSync(join(root, 'a', '0.png'), await pngClaiming(2, 2));
    for (let i = 1; i < 50; i++) copyFileSync(join(root, 'a', '0.png'), join(root, 'a', `${i}.png`));
    writeFileSync(join(root, 'a', '0.png'), await pngClaiming(16000, 16000));
    await refuses(() => loadImageFolder(root), /0\.png: image is 16000x16000/, 'first of 50');
    for (const [options, pattern] of [
      [{ size: null }, /size should be a whole number in \[1, 4096\] or a pair \[height, width\] of them, got null/],
      [{ size: Number.NaN }, /size should be .*, got null/], [{ size: -1 }, /size should be/], [{ size: [28] }, /size should be/], [{ size: '28' }, /got "28"/],
      [{ size: 1e6 }, /size should be/], [{ fit: 'crop' }, /fit should be 'cover' or 'fill', got "crop"/], [{ color: 'cmyk' }, /color should be/], [{ concurrency: 0 }, /concurrency should be/],
    ] as Array<[Record<string, unknown>, RegExp]>) {
      await refuses(() => loadImageFolder(root, options as ImageFolderOptions), pattern, JSON.stringify(options));
    }
  });

  test('the command line: --config /dev/zero, a FIFO and a gzip bomb in --data end with exit 3 and one line', async () => {
    const data = join(dir(), 'cli-data');
    mkdirSync(data);
    for (const stem of ['train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']) writeFileSync(join(data, stem), encodeIdx({ type: 'u8', dims: [1], data: new Uint8Array(1) }));
    writeFileSync(join(data, 'train-images-idx3-ubyte.gz'), gzipBomb(idxImages(10, 7840), 256));
    const cfifo = join(dir(), 'config.fifo');
    fifo(cfifo);
    const cases: Array<[string[], RegExp]> = [
      [['train', '--config', '/dev/zero', '--out', join(dir(), 'o1')], /parsimony: --config \/dev\/zero: is a character device, expected a regular file\n$/],
      [['train', '--config', cfifo, '--out', join(dir(), 'o2')], /config\.fifo: is a FIFO \(named pipe\), expected a regular file\n$/],
      [['train', '--data', data, '--out', join(dir(), 'o3'), '--epochs', '1'], /train-images-idx3-ubyte\.gz: gzip data inflates to more than the 7856 bytes its IDX header describes/],
    ];
    for (const [args, pattern] of cases) {
      const r = await cli(args);
      assert.equal(r.code, 3, explain(args, r));
      assert.match(r.stderr, pattern, explain(args, r));
    }
  });
});
