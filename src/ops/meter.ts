/**
 * The multiply-add meter: while running, convolutions and linear layers add the multiply-adds they
 * compute for each image. Dense ops count all their work; channel-sparse ops count only the active
 * pairs. Pooling and element-wise ops are not counted.
 */
let perImage: Float64Array | null = null;

export const macMeter = {
  /** Starts counting for a batch of `images` images (restarting any count in progress). */
  start(images: number): void {
    perImage = new Float64Array(images);
  },
  /** Stops counting and returns the multiply-adds of each image. */
  stop(): Float64Array {
    const r = perImage ?? new Float64Array(0);
    perImage = null;
    return r;
  },
  get running(): boolean {
    return perImage !== null;
  },
  /** Adds `macs` to every image. */
  addEach(macs: number): void {
    if (perImage !== null) for (let i = 0; i < perImage.length; i++) perImage[i]! += macs;
  },
  add(image: number, macs: number): void {
    if (perImage !== null && image < perImage.length) perImage[image]! += macs;
  },
};
