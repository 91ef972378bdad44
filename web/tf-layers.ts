/**
 * A dense network as a list of tfjs layers over NHWC tensors (batch norm folded into the convs), and
 * its forward function: bench/model.ts times it in Node, web/peers.ts in the page.
 */
import type * as TF from '@tensorflow/tfjs-core';

export type TfLayer =
  | { readonly op: 'conv'; readonly filter: readonly number[]; readonly shape: readonly [number, number, number, number]; readonly bias: readonly number[];
    readonly strides: readonly [number, number]; readonly pad: readonly [number, number]; readonly relu: boolean }
  | { readonly op: 'relu' }
  | { readonly op: 'pool'; readonly kind: 'max' | 'avg'; readonly kernel: readonly [number, number]; readonly strides: readonly [number, number]; readonly pad: number }
  | { readonly op: 'global'; readonly kind: 'max' | 'avg' }
  | { readonly op: 'flatten' }
  | { readonly op: 'linear'; readonly weight: readonly number[]; readonly inFeatures: number; readonly outFeatures: number; readonly bias: readonly number[] | null }
  | { readonly op: 'residual'; readonly body: readonly TfLayer[]; readonly shortcut: readonly TfLayer[] | null };

/** The layers as one function of an NHWC batch, and the tensors it holds (dispose them when done). */
export function tfForward(tf: typeof TF, layers: readonly TfLayer[]): { forward: (x: TF.Tensor) => TF.Tensor; held: TF.Tensor[] } {
  const held: TF.Tensor[] = [];
  const keep = <T extends TF.Tensor>(t: T): T => { held.push(t); return t; };
  const flat = (x: TF.Tensor): TF.Tensor => (x.rank === 4 ? tf.reshape(tf.transpose(x, [0, 3, 1, 2]), [x.shape[0] as number, -1]) : x);
  const build = (list: readonly TfLayer[]): ((x: TF.Tensor) => TF.Tensor) => {
    const steps = list.map((l): ((x: TF.Tensor) => TF.Tensor) => {
      switch (l.op) {
        case 'conv': {
          const filter = keep(tf.tensor4d(l.filter as number[], l.shape as [number, number, number, number]));
          const bias = keep(tf.tensor1d(l.bias as number[]));
          const pad: [[number, number], [number, number], [number, number], [number, number]] = [[0, 0], [l.pad[0], l.pad[0]], [l.pad[1], l.pad[1]], [0, 0]];
          return (x) => tf.fused.conv2d({ x: x as TF.Tensor4D, filter, strides: [l.strides[0], l.strides[1]], pad, bias, activation: l.relu ? 'relu' : 'linear' });
        }
        case 'relu': return (x) => tf.relu(x);
        case 'pool': {
          // tfjs pads a max pool with -Infinity, as ours does.
          const pool = l.kind === 'max' ? tf.maxPool : tf.avgPool;
          return (x) => pool(x as TF.Tensor4D, [l.kernel[0], l.kernel[1]], [l.strides[0], l.strides[1]], l.pad === 0 ? 'valid' : l.pad);
        }
        case 'global': return (x) => (l.kind === 'max' ? tf.max(x, [1, 2]) : tf.mean(x, [1, 2]));
        case 'flatten': return flat;
        case 'linear': {
          const w = keep(tf.tensor2d(l.weight as number[], [l.inFeatures, l.outFeatures]));
          const b = l.bias === null ? null : keep(tf.tensor1d(l.bias as number[]));
          return (x) => {
            const y = tf.matMul(flat(x) as TF.Tensor2D, w);
            return b === null ? y : tf.add(y, b);
          };
        }
        case 'residual': {
          const body = build(l.body);
          const shortcut = l.shortcut === null ? null : build(l.shortcut);
          return (x) => tf.add(body(x), shortcut === null ? x : shortcut(x));
        }
      }
    });
    return (x) => steps.reduce((h, f) => f(h), x);
  };
  return { forward: build(layers), held };
}
