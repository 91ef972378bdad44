/** Running ONNX models in onnxruntime-node and our models on the same real images. */
import * as ort from 'onnxruntime-node';
import { engine } from '../../src/autograd/engine.js';
import { loadFashionMnist } from '../../src/data/index.js';
import { recordGates } from '../../src/nn/lkam.js';
import type { Module } from '../../src/nn/module.js';

/** The first `n` test images of the built-in Fashion-MNIST subset, scaled to [0, 1], NCHW. */
export function fashionImages(n: number): { x: Float32Array; labels: Int32Array; shape: [number, number, number, number] } {
  const { test } = loadFashionMnist({ subset: 'builtin' });
  const pixels = test.pixels.subarray(0, n * 784);
  return { x: Float32Array.from(pixels, (v) => v / 255), labels: test.labels.slice(0, n), shape: [n, 1, 28, 28] };
}

export async function runOrt(bytes: Uint8Array, inputs: Record<string, { data: Float32Array; shape: readonly number[] }>): Promise<Record<string, Float32Array>> {
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1 });
  try {
    const feeds: Record<string, ort.Tensor> = {};
    for (const [name, v] of Object.entries(inputs)) feeds[name] = new ort.Tensor('float32', v.data.slice(), [...v.shape]);
    const out = await session.run(feeds);
    return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, Float32Array.from(t.data as Float32Array)]));
  } finally {
    await session.release();
  }
}

/** Our eval-mode logits and, per gate (by module path), its switch values. */
export function runOurs(model: Module, x: Float32Array, shape: readonly number[]): { logits: Float32Array; switches: Map<string, Float32Array> } {
  const e = engine();
  try {
    model.eval();
    const { value: y, readings } = recordGates(() => model.predict(e.tensor(x, shape)));
    const paths = new Map(model.modules().map(([path, m]) => [m, path]));
    const switches = new Map<string, Float32Array>();
    for (const r of readings) switches.set(paths.get(r.gate) ?? '', r.switches.values.f32().slice());
    return { logits: y.f32().slice(), switches };
  } finally {
    e.endStep();
  }
}
