/** Small data sets in users' formats, written by the tests: image folders (PNG through sharp) and CIFAR binaries. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { TestRng } from './rng.js';

/** One 3-channel image of class `c`: a class colour in stripes of a class-dependent direction, plus seeded noise. */
export function classImage(c: number, height: number, width: number, rng: TestRng): Uint8Array {
  const out = new Uint8Array(3 * height * width);
  const colour = [(c * 97) % 256, (c * 57 + 80) % 256, (c * 151 + 40) % 256];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const stripe = (c % 2 === 0 ? x : y) % 4 < 2 ? 1 : 0.3;
      for (let k = 0; k < 3; k++) out[k * height * width + y * width + x] = Math.max(0, Math.min(255, Math.round((colour[k] as number) * stripe + rng.uniform(-20, 20))));
    }
  }
  return out;
}

/** Writes root/<class>/<i>.png: `perClass` images of `size` for each class name (CHW pixels interleaved for the encoder). */
export async function writeImageFolder(root: string, o: { classes: readonly string[]; perClass: number; size: readonly [number, number]; seed?: number; sizeOf?: (c: number, i: number) => readonly [number, number] }): Promise<void> {
  const rng = new TestRng(o.seed ?? 1);
  for (const [c, name] of o.classes.entries()) {
    mkdirSync(join(root, name), { recursive: true });
    for (let i = 0; i < o.perClass; i++) {
      const [h, w] = o.sizeOf?.(c, i) ?? o.size;
      const chw = classImage(c, h, w, rng);
      const hwc = Buffer.alloc(3 * h * w);
      for (let p = 0; p < h * w; p++) for (let k = 0; k < 3; k++) hwc[p * 3 + k] = chw[k * h * w + p] as number;
      await sharp(hwc, { raw: { width: w, height: h, channels: 3 } }).png().toFile(join(root, name, `${String(i).padStart(3, '0')}.png`));
    }
  }
}

/** CIFAR-10 records (label byte + 3072 pixel bytes) of classes cycling over 0..classes-1. */
export function cifarRecords(count: number, seed: number, classes = 10): Uint8Array {
  const rng = new TestRng(seed);
  const out = new Uint8Array(count * 3073);
  for (let r = 0; r < count; r++) {
    const c = r % classes;
    out[r * 3073] = c;
    out.set(classImage(c, 32, 32, rng), r * 3073 + 1);
  }
  return out;
}

/** A CIFAR-10 binary folder: data_batch_1..5.bin of `perBatch` records, test_batch.bin of `test`, the batch numbers in `skip` left out. */
export function writeCifar10(dir: string, o: { perBatch: number; test: number; classes?: number; skip?: readonly number[]; names?: readonly string[] }): void {
  mkdirSync(dir, { recursive: true });
  for (let b = 1; b <= 5; b++) if (!(o.skip ?? []).includes(b)) writeFileSync(join(dir, `data_batch_${b}.bin`), cifarRecords(o.perBatch, b, o.classes));
  writeFileSync(join(dir, 'test_batch.bin'), cifarRecords(o.test, 99, o.classes));
  if (o.names !== undefined) writeFileSync(join(dir, 'batches.meta.txt'), `${o.names.join('\n')}\n`);
}
