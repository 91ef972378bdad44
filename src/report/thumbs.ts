/** Thumbnails of test images as PNG data URIs (sharp), so the report needs no files beside it. */
import { importOptional } from '../optional.js';
import type { Thumbnail } from './run.js';

const SCALE = 3;

export async function thumbnailUri(t: Thumbnail): Promise<string> {
  const [c, h, w] = t.shape as [number, number, number];
  const raw = Buffer.from(t.pixels, 'base64');
  if (raw.length !== c * h * w) throw new RangeError(`thumbnail of image ${t.index}: ${raw.length} bytes for shape ${t.shape.join('x')}`);
  // CHW planes to interleaved HWC, which sharp's raw input expects.
  const hwc = Buffer.alloc(raw.length);
  for (let ch = 0; ch < c; ch++) for (let p = 0; p < h * w; p++) hwc[p * c + ch] = raw[ch * h * w + p] as number;
  const sharp = (await importOptional('sharp', 'the report\'s image thumbnails', () => import('sharp'))).default;
  const png = await sharp(hwc, { raw: { width: w, height: h, channels: c as 1 | 2 | 3 | 4 } })
    .resize(w * SCALE, h * SCALE, { kernel: 'nearest' })
    .png()
    .toBuffer();
  return `data:image/png;base64,${png.toString('base64')}`;
}
