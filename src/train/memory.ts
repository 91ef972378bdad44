/** What a training configuration needs in engine memory, estimated before anything is allocated. */
import { BatchNorm2d, Conv2d, Linear, Residual, Sequential } from '../nn/layers.js';
import { Gated } from '../nn/lkam.js';
import type { Module } from '../nn/module.js';
import type { Shape } from '../tensor/tensor.js';

/** The engine's linear memory (WebAssembly's 32-bit address space). */
export const ENGINE_BYTES = 4 * 2 ** 30;

/** Float32 values of every layer output of one image (what the tape keeps for the backward pass), walking sequences, residual bodies and gates. */
export function activationValues(model: Module, inputShape: Shape): number {
  let total = 0;
  const size = (s: Shape): number => s.slice(1).reduce((a, b) => a * b, 1);
  const walk = (m: Module, shape: Shape): Shape => {
    if (m instanceof Sequential) {
      let s = shape;
      for (const l of m.layers) s = walk(l, s);
      return s;
    }
    if (m instanceof Residual) {
      walk(m.body, shape);
      if (m.shortcut !== null) walk(m.shortcut, shape);
    } else if (m instanceof Gated) {
      walk(m.block, shape);
    }
    const out = m.outputShape(shape);
    // Convs, linears and batch norms keep their output and a gradient of it; other layers one of them.
    total += size(out) * (m instanceof Conv2d || m instanceof Linear || m instanceof BatchNorm2d ? 2 : 1);
    return out;
  };
  walk(model, [1, ...inputShape.slice(inputShape.length - 3)]);
  return total;
}

/**
 * Bytes of one training step: parameters with their gradients and two optimizer moments (4 copies),
 * and the activations of a batch with their gradients (about 3 copies: values, gradients, scratch).
 */
export function estimateTrainingBytes(model: Module, inputShape: Shape, batch: number): number {
  return 4 * (4 * model.parameterCount() + 3 * batch * activationValues(model, inputShape));
}
