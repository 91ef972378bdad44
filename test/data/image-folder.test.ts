import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { loadImageFolder, readClassList, saveClassList } from '../../src/data/index.js';
import { assertDataError, assertDataErrorAsync, tempDir } from './helpers.js';

/** Writes an image from interleaved RGB bytes of the given size. */
async function writeImage(path: string, width: number, height: number, rgbAt: (x: number, y: number) => readonly [number, number, number]): Promise<void> {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) raw.set(rgbAt(x, y), (y * width + x) * 3);
  const img = sharp(raw, { raw: { width, height, channels: 3 } });
  const ext = path.slice(path.lastIndexOf('.') + 1);
  if (ext === 'png') await img.png().toFile(path);
  else if (ext === 'webp') await img.webp({ lossless: true }).toFile(path);
  else await img.jpeg({ quality: 100 }).toFile(path);
}

const solid = (v: readonly [number, number, number]) => (): readonly [number, number, number] => v;

test('image folder: sorted classes, CHW RGB planes, label per folder, files recorded', async () => {
  const { dir, cleanup } = tempDir();
  try {
    for (const c of ['dog', 'ant', 'cat']) mkdirSync(join(dir, c));
    // left half red, right half blue: the planes must separate them
    await writeImage(join(dir, 'ant', 'b.png'), 4, 2, (x) => (x < 2 ? [255, 0, 0] : [0, 0, 255]));
    await writeImage(join(dir, 'ant', 'a.webp'), 4, 2, solid([10, 20, 30]));
    await writeImage(join(dir, 'cat', 'x.PNG'), 4, 2, solid([0, 255, 0]));
    await writeImage(join(dir, 'dog', 'y.jpg'), 4, 2, solid([128, 128, 128]));
    writeFileSync(join(dir, 'dog', 'notes.txt'), 'ignored');
    writeFileSync(join(dir, '.hidden'), '');
    const ds = await loadImageFolder(dir);
    assert.deepEqual(ds.classNames, ['ant', 'cat', 'dog']);
    assert.deepEqual(ds.shape, [3, 2, 4]);
    assert.equal(ds.length, 4);
    assert.deepEqual(ds.files, [join(dir, 'ant', 'a.webp'), join(dir, 'ant', 'b.png'), join(dir, 'cat', 'x.PNG'), join(dir, 'dog', 'y.jpg')]);
    assert.deepEqual(Array.from(ds.labels), [0, 0, 1, 2]);
    assert.deepEqual(Array.from(ds.item(0).pixels), [10, 10, 10, 10, 10, 10, 10, 10, 20, 20, 20, 20, 20, 20, 20, 20, 30, 30, 30, 30, 30, 30, 30, 30]);
    const split = ds.item(1).pixels;
    assert.deepEqual(Array.from(split.subarray(0, 8)), [255, 255, 0, 0, 255, 255, 0, 0], 'R plane');
    assert.deepEqual(Array.from(split.subarray(8, 16)), [0, 0, 0, 0, 0, 0, 0, 0], 'G plane');
    assert.deepEqual(Array.from(split.subarray(16, 24)), [0, 0, 255, 255, 0, 0, 255, 255], 'B plane');
    for (const v of ds.item(3).pixels) assert.ok(Math.abs(v - 128) <= 2, `jpeg grey ${v}`);
  } finally {
    cleanup();
  }
});

test('image folder: grayscale gives one channel; grey input keeps its value', async () => {
  const { dir, cleanup } = tempDir();
  try {
    mkdirSync(join(dir, 'a'));
    await writeImage(join(dir, 'a', '1.png'), 3, 3, (x, y) => [x * 40 + y, x * 40 + y, x * 40 + y]);
    const ds = await loadImageFolder(dir, { color: 'grayscale' });
    assert.deepEqual(ds.shape, [1, 3, 3]);
    assert.deepEqual(Array.from(ds.item(0).pixels), [0, 40, 80, 1, 41, 81, 2, 42, 82]);
  } finally {
    cleanup();
  }
});

test('image folder resize: cover centre-crops, fill stretches', async () => {
  const { dir, cleanup } = tempDir();
  try {
    mkdirSync(join(dir, 'a'));
    // 8x4 vertical stripes: columns 0-1 = 10, 2-5 = 200, 6-7 = 50
    await writeImage(join(dir, 'a', 's.png'), 8, 4, (x) => {
      const v = x < 2 ? 10 : x < 6 ? 200 : 50;
      return [v, v, v];
    });
    await writeImage(join(dir, 'a', 't.png'), 3, 5, solid([7, 7, 7]));
    const cover = await loadImageFolder(dir, { size: 4, color: 'grayscale' });
    assert.deepEqual(cover.shape, [1, 4, 4]);
    assert.deepEqual(Array.from(cover.item(0).pixels), new Array(16).fill(200), 'centre 4 columns of the 8');
    assert.deepEqual(Array.from(cover.item(1).pixels), new Array(16).fill(7));
    const fill = await loadImageFolder(dir, { size: [4, 4], fit: 'fill', color: 'grayscale' });
    const row = Array.from(fill.item(0).pixels.subarray(0, 4));
    assert.ok(row[0]! < 120 && row[3]! < 120 && row[1]! > 120 && row[2]! > 120, `stretched stripes keep the dark edges: ${row.join(',')}`);
    const rect = await loadImageFolder(dir, { size: [2, 6] });
    assert.deepEqual(rect.shape, [3, 2, 6]);
  } finally {
    cleanup();
  }
});

test('class list: saved and reloaded, indices stay stable when folders are missing', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const listFile = join(dir, 'classes.json');
    saveClassList(listFile, ['ant', 'cat', 'dog']);
    assert.deepEqual(readClassList(listFile), ['ant', 'cat', 'dog']);
    const root = join(dir, 'val');
    mkdirSync(join(root, 'dog'), { recursive: true });
    mkdirSync(join(root, 'cat'));
    await writeImage(join(root, 'dog', '1.png'), 2, 2, solid([1, 2, 3]));
    await writeImage(join(root, 'cat', '1.png'), 2, 2, solid([1, 2, 3]));
    const ds = await loadImageFolder(root, { classNames: readClassList(listFile) });
    assert.deepEqual(ds.classNames, ['ant', 'cat', 'dog']);
    assert.equal(ds.numClasses, 3);
    assert.deepEqual(Array.from(ds.labels), [1, 2]);
    mkdirSync(join(root, 'emu'));
    await writeImage(join(root, 'emu', '1.png'), 2, 2, solid([1, 2, 3]));
    await assertDataErrorAsync(() => loadImageFolder(root, { classNames: ['ant', 'cat', 'dog'] }), [`${join(root, 'emu')}: class folder "emu" is not in the given class list (3 classes)`]);
    writeFileSync(listFile, '{"classes": ["a", "a"]}');
    assertDataError(() => readClassList(listFile), ['class "a" is listed twice']);
    writeFileSync(listFile, '["a"]');
    assertDataError(() => readClassList(listFile), [`${listFile}: expected {"classes": [non-empty strings]}`]);
  } finally {
    cleanup();
  }
});

test('bad image folders: missing root, empty root, class folder without images', async () => {
  const { dir, cleanup } = tempDir();
  try {
    await assertDataErrorAsync(() => loadImageFolder(join(dir, 'none')), ['image folder not found or not a folder']);
    await assertDataErrorAsync(() => loadImageFolder(dir), [`${dir}: no class folders found: expected <root>/<class>/*.png|jpg|jpeg|webp`], { field: 'classes' });
    mkdirSync(join(dir, 'a'));
    mkdirSync(join(dir, 'b'));
    await writeImage(join(dir, 'a', '1.png'), 2, 2, solid([1, 2, 3]));
    writeFileSync(join(dir, 'b', 'readme.txt'), 'not an image');
    await assertDataErrorAsync(() => loadImageFolder(dir), [`${join(dir, 'b')}: class folder has no images (expected .png, .jpg, .jpeg, .webp)`], { field: 'images' });
  } finally {
    cleanup();
  }
});

test('bad image folders: unreadable image, mixed sizes without resize', async () => {
  const { dir, cleanup } = tempDir();
  try {
    mkdirSync(join(dir, 'a'));
    await writeImage(join(dir, 'a', '1.png'), 4, 3, solid([1, 2, 3]));
    writeFileSync(join(dir, 'a', '2.png'), 'this is not a png');
    await assertDataErrorAsync(() => loadImageFolder(dir), [`${join(dir, 'a', '2.png')}: cannot decode image (`], { file: join(dir, 'a', '2.png'), field: 'image' });
    await writeImage(join(dir, 'a', '2.png'), 5, 3, solid([1, 2, 3]));
    const e = await assertDataErrorAsync(() => loadImageFolder(dir), [
      `${join(dir, 'a', '2.png')}: image is 5x3 but ${join(dir, 'a', '1.png')} is 4x3; pass size to resize images to one size`,
    ]);
    assert.equal(e.expected, '4x3');
    assert.equal(e.actual, '5x3');
    assert.equal((await loadImageFolder(dir, { size: 3 })).length, 2);
  } finally {
    cleanup();
  }
});
