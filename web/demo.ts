/**
 * The demo's inference side, no DOM: one model compiled twice on the browser runtime, as the
 * parsimonious plan (LKAMs switch kernels, switched-off ones are skipped) and as its dense twin (the
 * same weights without LKAMs, every kernel computed).
 */
import { browserFeatures, compile, convsInOrder, denseTwin, fetchModel, init, type BrowserFeatures, type InferencePlan, type ModelMeta } from '../src/browser/index.js';

export interface DemoOptions {
  readonly modelUrl: URL | string;
  /** Default: the browser's cores (one when the page is not cross-origin isolated). */
  readonly threads?: number;
  readonly simd?: 'auto' | 'simd' | 'relaxed';
}

export interface SwitchLayer {
  /** Module path of the gated conv. */
  readonly name: string;
  /** Its index among the network's convs in forward order (0 = the first), as every output names it: `conv 2`. */
  readonly conv: number;
  readonly kernels: number;
  /** 1 where the LKAM switched the kernel on. */
  readonly on: Uint8Array;
}

export interface Classification {
  readonly logits: Float32Array;
  readonly probabilities: Float64Array;
  readonly predicted: number;
  readonly layers: readonly SwitchLayer[];
  /** Multiply-adds done for the image (LKAMs included) and, of them, the LKAMs' part. */
  readonly macs: number;
  readonly lkamMacs: number;
  /** Multiply-adds of the dense network for one image. */
  readonly denseMacs: number;
}

export interface Timing {
  /** Median milliseconds per image over `reps` samples of each plan. */
  readonly parsimoniousMs: number;
  readonly denseMs: number;
  readonly reps: number;
}

/** What `window.parsimonyBench` returns (bench/web.ts): per-image milliseconds, one sample per pass over the images. */
export interface BenchSamples {
  readonly backend: string;
  readonly threads: number;
  readonly crossOriginIsolated: boolean;
  readonly images: number;
  readonly parsimonious: readonly number[];
  readonly dense: readonly number[];
  /** Mean multiply-adds per image of the parsimonious plan (LKAMs included), and of the dense network. */
  readonly meanMacs: number;
  readonly denseMacs: number;
}

export interface BenchRequest {
  /** Test-set indices. */
  readonly images: readonly number[];
  readonly budget: number;
  readonly warmup: number;
  readonly reps: number;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

function softmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  const out = Float64Array.from(logits, (v) => Math.exp(v - max));
  const sum = out.reduce((a, b) => a + b, 0);
  return out.map((v) => v / sum);
}

export class Demo {
  readonly meta: ModelMeta;
  readonly features: BrowserFeatures;
  /** `wasm-relaxed` or `wasm-simd`. */
  readonly backendName: string;
  readonly threads: number;
  readonly gates: readonly string[];
  private readonly parsimonious: InferencePlan;
  private readonly dense: InferencePlan;
  /** Module path of each conv to its index among the convs. */
  private readonly convIndex: ReadonlyMap<string, number>;

  private constructor(meta: ModelMeta, backendName: string, threads: number, parsimonious: InferencePlan, dense: InferencePlan, convIndex: ReadonlyMap<string, number>) {
    this.meta = meta;
    this.features = browserFeatures();
    this.backendName = backendName;
    this.threads = threads;
    this.parsimonious = parsimonious;
    this.dense = dense;
    this.gates = parsimonious.gates;
    this.convIndex = convIndex;
  }

  static async load(options: DemoOptions): Promise<Demo> {
    const engine = await init({ ...(options.threads === undefined ? {} : { threads: options.threads }), simd: options.simd ?? 'auto' });
    const { model, meta } = await fetchModel(options.modelUrl);
    model.eval();
    const inputShape = meta.inputShape;
    const parsimonious = compile(model, { inputShape, maxBatch: 1 });
    const twin = denseTwin(model, inputShape);
    twin.eval();
    const dense = compile(twin, { inputShape, maxBatch: 1 });
    const convIndex = new Map(convsInOrder(model).map((c, i) => [c.path, i]));
    return new Demo(meta, engine.backend.name, engine.backend.threads, parsimonious, dense, convIndex);
  }

  get classNames(): readonly string[] {
    return this.meta.classNames ?? [];
  }

  get imageSize(): number {
    return this.meta.inputShape.reduce((a, b) => a * b, 1);
  }

  /** The dense twin's outputs for one image (what bench/web.ts checks the peers against). */
  denseOutputs(x: Float32Array): Float32Array {
    return this.dense.run(x, { batch: 1 });
  }

  /** Runs the parsimonious plan on one image with compute budget `budget` (the runtime knob, 0 to 1). */
  classify(x: Float32Array, budget: number): Classification {
    const logits = this.parsimonious.run(x, { batch: 1, budget });
    const t = this.parsimonious.telemetry();
    const layers: SwitchLayer[] = [];
    for (const l of t.layers) {
      if (l.onKernels !== null) layers.push({ name: l.name, conv: this.convIndex.get(l.name) ?? -1, kernels: l.kernels, on: l.onKernels.slice() });
    }
    let predicted = 0;
    for (let i = 1; i < logits.length; i++) if ((logits[i] as number) > (logits[predicted] as number)) predicted = i;
    return { logits, probabilities: softmax(logits), predicted, layers, macs: t.macs[0] as number, lkamMacs: t.lkamMacs[0] as number, denseMacs: t.denseMacs };
  }

  /**
   * Times both plans on one image: `reps` samples of each, interleaved so that both see the same
   * machine; a sample runs a plan often enough to span a few clock ticks (browsers coarsen the clock).
   */
  time(x: Float32Array, budget: number, reps = 15): Timing {
    const runSparse = (): void => void this.parsimonious.run(x, { batch: 1, budget });
    const runDense = (): void => void this.dense.run(x, { batch: 1 });
    let loops = 1;
    for (;;) {
      const t0 = performance.now();
      for (let i = 0; i < loops; i++) runDense();
      if (performance.now() - t0 >= 2 || loops >= 1024) break;
      loops *= 2;
    }
    const sample = (run: () => void): number => {
      const t0 = performance.now();
      for (let i = 0; i < loops; i++) run();
      return (performance.now() - t0) / loops;
    };
    const sparse: number[] = [];
    const dense: number[] = [];
    for (let r = 0; r < reps; r++) {
      sparse.push(sample(runSparse));
      dense.push(sample(runDense));
    }
    return { parsimoniousMs: median(sparse), denseMs: median(dense), reps };
  }

  /**
   * Both plans over `images` at batch 1: `warmup` + `reps` passes each, a pass running every image
   * once and giving one sample (its time over the images); the two plans' passes alternate.
   */
  benchmark(images: readonly Float32Array[], budget: number, warmup: number, reps: number): BenchSamples {
    const pass = (run: (x: Float32Array) => void): number => {
      const t0 = performance.now();
      for (const x of images) run(x);
      return (performance.now() - t0) / images.length;
    };
    const sparse = (x: Float32Array): void => void this.parsimonious.run(x, { batch: 1, budget });
    const dense = (x: Float32Array): void => void this.dense.run(x, { batch: 1 });
    const samples = { parsimonious: [] as number[], dense: [] as number[] };
    for (let r = 0; r < warmup + reps; r++) {
      const a = pass(sparse);
      const b = pass(dense);
      if (r < warmup) continue;
      samples.parsimonious.push(a);
      samples.dense.push(b);
    }
    let macs = 0;
    for (const x of images) macs += this.classify(x, budget).macs;
    return {
      backend: this.backendName, threads: this.threads, crossOriginIsolated: this.features.crossOriginIsolated, images: images.length,
      ...samples, meanMacs: macs / images.length, denseMacs: this.dense.denseMacs,
    };
  }
}
