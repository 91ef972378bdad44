/**
 * The demo's inference side, no DOM: one model compiled twice on the browser runtime, as the
 * parsimonious plan (LKAMs switch kernels, switched-off ones are skipped) and as its dense twin (the
 * same weights without LKAMs, every kernel computed).
 */
import { browserFeatures, compile, denseTwin, fetchModel, init, type BrowserFeatures, type InferencePlan, type ModelMeta } from '../src/browser/index.js';

export interface DemoOptions {
  readonly modelUrl: URL | string;
  /** Default: the browser's cores (one when the page is not cross-origin isolated). */
  readonly threads?: number;
  readonly simd?: 'auto' | 'simd' | 'relaxed';
}

export interface SwitchLayer {
  /** Module path of the gated conv. */
  readonly name: string;
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

  private constructor(meta: ModelMeta, backendName: string, threads: number, parsimonious: InferencePlan, dense: InferencePlan) {
    this.meta = meta;
    this.features = browserFeatures();
    this.backendName = backendName;
    this.threads = threads;
    this.parsimonious = parsimonious;
    this.dense = dense;
    this.gates = parsimonious.gates;
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
    return new Demo(meta, engine.backend.name, engine.backend.threads, parsimonious, dense);
  }

  get classNames(): readonly string[] {
    return this.meta.classNames ?? [];
  }

  get imageSize(): number {
    return this.meta.inputShape.reduce((a, b) => a * b, 1);
  }

  /** Runs the parsimonious plan on one image with compute budget `budget` (the runtime knob, 0 to 1). */
  classify(x: Float32Array, budget: number): Classification {
    const logits = this.parsimonious.run(x, { batch: 1, budget });
    const t = this.parsimonious.telemetry();
    const layers = t.layers.filter((l) => l.onKernels !== null).map((l) => ({ name: l.name, kernels: l.kernels, on: (l.onKernels as Uint8Array).slice() }));
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
}
