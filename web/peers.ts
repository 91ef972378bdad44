/**
 * The engines bench/web.ts times beside our plans in the same page: onnxruntime-web (wasm, 1 thread
 * and every core) and tfjs-wasm (1 thread). The page loads this module only when the bench asks, and
 * every binary comes from the page's own build (nothing is fetched from elsewhere).
 */
import * as ort from 'onnxruntime-web/wasm';
import * as tf from '@tensorflow/tfjs-core';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { tfForward, type TfLayer } from './tf-layers.js';

const ORT_WASM = new URL('../node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm', import.meta.url).href;
const TFJS_WASM = {
  'tfjs-backend-wasm.wasm': new URL('../node_modules/@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm', import.meta.url).href,
  'tfjs-backend-wasm-simd.wasm': new URL('../node_modules/@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm', import.meta.url).href,
  'tfjs-backend-wasm-threaded-simd.wasm': new URL('../node_modules/@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm', import.meta.url).href,
};

export interface PeerRequest {
  /** The dense network as ONNX (base64), its input and output names. */
  readonly onnx: string;
  readonly input: string;
  readonly output: string;
  /** The network for tfjs-wasm; empty: tfjs is not timed. */
  readonly tfjs: readonly TfLayer[];
  /** onnxruntime-web thread counts to time. */
  readonly ortThreads: readonly number[];
  readonly warmup: number;
  readonly reps: number;
}

export interface PeerSamples {
  readonly engine: 'onnxruntime-web' | 'tfjs-wasm';
  readonly backend: string;
  readonly threads: number;
  /** Per-image milliseconds, one sample per pass over the images. */
  readonly samples: readonly number[];
  /** The outputs of the first image, to check against ours. */
  readonly first: readonly number[];
}

/** What `window.parsimonyPeers` returns: the peers' samples and our dense plan's outputs on the first image. */
export interface PeerRun {
  readonly samples: readonly PeerSamples[];
  readonly reference: readonly number[];
}

function bytesOf(base64: string): Uint8Array {
  const s = atob(base64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** warmup + reps passes over the images, a pass giving its time over the images. */
async function passes(images: readonly Float32Array[], warmup: number, reps: number, run: (x: Float32Array) => Promise<unknown> | unknown): Promise<number[]> {
  const out: number[] = [];
  for (let r = 0; r < warmup + reps; r++) {
    const t0 = performance.now();
    for (const x of images) await run(x);
    if (r >= warmup) out.push((performance.now() - t0) / images.length);
  }
  return out;
}

async function timeOrt(images: readonly Float32Array[], shape: readonly number[], q: PeerRequest, threads: number): Promise<PeerSamples> {
  ort.env.wasm.wasmPaths = { wasm: ORT_WASM };
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.simd = true;
  const session = await ort.InferenceSession.create(bytesOf(q.onnx), { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  try {
    const tensors = images.map((x) => new ort.Tensor('float32', x, [1, ...shape]));
    let i = 0;
    const samples = await passes(images, q.warmup, q.reps, () => session.run({ [q.input]: tensors[i++ % tensors.length]! }));
    const y = (await session.run({ [q.input]: tensors[0]! }))[q.output];
    return { engine: 'onnxruntime-web', backend: 'wasm', threads, samples, first: Array.from((y?.data ?? []) as Float32Array) };
  } finally {
    await session.release();
  }
}

async function timeTfjs(images: readonly Float32Array[], shape: readonly number[], q: PeerRequest): Promise<PeerSamples> {
  // One thread, as in Node: the threaded build would need its worker script.
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  setWasmPaths(TFJS_WASM);
  if (!(await tf.setBackend('wasm'))) throw new Error('tfjs: the wasm backend did not initialise');
  await tf.ready();
  const [C, H, W] = shape as [number, number, number];
  const nhwc = (x: Float32Array): tf.Tensor4D => {
    const out = new Float32Array(x.length);
    for (let c = 0; c < C; c++) for (let p = 0; p < H * W; p++) out[p * C + c] = x[c * H * W + p] as number;
    return tf.tensor4d(out, [1, H, W, C]);
  };
  const { forward, held } = tfForward(tf, q.tfjs);
  const inputs = images.map(nhwc);
  try {
    const call = (x: tf.Tensor4D): Float32Array => {
      const y = tf.tidy(() => forward(x));
      const data = y.dataSync() as Float32Array;
      y.dispose();
      return data;
    };
    let i = 0;
    const samples = await passes(images, q.warmup, q.reps, () => call(inputs[i++ % inputs.length]!));
    return { engine: 'tfjs-wasm', backend: `wasm${tf.env().getBool('WASM_HAS_SIMD_SUPPORT') ? '-simd' : ''}`, threads: 1, samples, first: Array.from(call(inputs[0]!)) };
  } finally {
    for (const t of [...held, ...inputs]) t.dispose();
  }
}

/** Times each peer over the images (batch 1, the images in turn). */
export async function timePeers(images: readonly Float32Array[], shape: readonly number[], q: PeerRequest): Promise<PeerSamples[]> {
  const out: PeerSamples[] = [];
  for (const threads of q.ortThreads) out.push(await timeOrt(images, shape, q, threads));
  if (q.tfjs.length > 0) out.push(await timeTfjs(images, shape, q));
  return out;
}
