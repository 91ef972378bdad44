/** Inference compilers of the activation layers and of Concat (see compilers.ts for the contract). */
import { Clip, GELU, HardSigmoid, HardSwish, Sigmoid, SiLU } from '../nn/activations.js';
import { ChannelSelect } from '../nn/channels.js';
import { Concat } from '../nn/concat.js';
import { ChannelLayerNorm } from '../nn/layernorm.js';
import { Pad2d } from '../nn/pad.js';
import { padSource } from '../ops/pad.js';
import type { Conv2d } from '../nn/layers.js';
import { SqueezeExcite } from '../nn/squeeze-excite.js';
import type { Module } from '../nn/module.js';
import { GELU as GELU_FN, HARD_SWISH, hardSigmoidFn, SILU } from '../ops/pointwise.js';
import { shapeString } from '../tensor/tensor.js';
import { CompileError, registerCompiler, type CompileContext } from './compilers.js';
import type { PointwiseNode, Value } from './ir.js';

function pointwise(ctx: CompileContext, x: Value, fn: PointwiseNode['fn']): Value {
  const y = ctx.value(x.kind === 'switches' ? 'vector' : x.kind, x.shape);
  ctx.emit({ op: 'pointwise', name: ctx.path, x, y, fn });
  return y;
}

function as<T extends Module>(m: Module, cls: abstract new (...args: never[]) => T, path: string): T {
  if (!(m instanceof cls)) throw new CompileError(`compile: the module at '${path}' has type ${m.type} but is not a ${cls.name}`);
  return m;
}

registerCompiler('Clip', (m, ctx, x) => {
  const c = as(m, Clip, ctx.path);
  return pointwise(ctx, x, { kind: 'clamp', lo: c.lo, hi: c.hi });
});
registerCompiler('Sigmoid', (m, ctx, x) => pointwise(ctx, (as(m, Sigmoid, ctx.path), x), { kind: 'sigmoid' }));
registerCompiler('SiLU', (m, ctx, x) => pointwise(ctx, (as(m, SiLU, ctx.path), x), { kind: 'function', f: SILU }));
registerCompiler('HardSwish', (m, ctx, x) => pointwise(ctx, (as(m, HardSwish, ctx.path), x), { kind: 'function', f: HARD_SWISH }));
registerCompiler('GELU', (m, ctx, x) => pointwise(ctx, (as(m, GELU, ctx.path), x), { kind: 'function', f: GELU_FN }));
registerCompiler('HardSigmoid', (m, ctx, x) => {
  const h = as(m, HardSigmoid, ctx.path);
  return pointwise(ctx, x, { kind: 'function', f: hardSigmoidFn(h.alpha, h.beta) });
});

registerCompiler('Concat', (m, ctx, x) => {
  const c = as(m, Concat, ctx.path);
  const xs = c.branches.map((b, i) => ctx.child(String(i), b, x));
  const first = xs[0] as Value;
  for (const v of xs) {
    if (v.kind !== 'map' || v.shape.length !== 3 || v.shape[1] !== first.shape[1] || v.shape[2] !== first.shape[2]) {
      throw new CompileError(`compile: Concat at '${ctx.path}': branches give ${xs.map((b) => `${b.kind} ${shapeString(b.shape)}`).join(', ')}, expected maps of one size`);
    }
  }
  const y = ctx.value('map', [xs.reduce((t, v) => t + (v.shape[0] as number), 0), first.shape[1] as number, first.shape[2] as number]);
  ctx.emit({ op: 'concat', name: ctx.path, xs, y });
  return y;
});

registerCompiler('SqueezeExcite', (m, ctx, x) => {
  const se = as(m, SqueezeExcite, ctx.path);
  const C = x.shape[0] as number;
  if (x.kind !== 'map' || x.shape.length !== 3 || C !== se.channels) throw new CompileError(`compile: SqueezeExcite(${se.channels}) at '${ctx.path}' reads ${x.kind} ${shapeString(x.shape)}`);
  const pooled = ctx.value('vector', [C], 'pooled');
  ctx.emit({ op: 'globalPool', name: ctx.path, kind: 'avg', x, y: pooled });
  const fc = (conv: Conv2d, v: Value, hint: string): Value => {
    const y = ctx.value('vector', [conv.outChannels], hint);
    ctx.emit({ op: 'linear', name: `${ctx.path}.${hint}`, x: v, y, weight: ctx.copy(conv.weight), bias: conv.bias === null ? null : ctx.copy(conv.bias) });
    return y;
  };
  const h = fc(se.fc1, pooled, 'fc1');
  const a = ctx.value('vector', [se.squeeze], 'act');
  if (se.activation === 'relu') ctx.emit({ op: 'relu', name: ctx.path, x: h, y: a });
  else ctx.emit({ op: 'pointwise', name: ctx.path, x: h, y: a, fn: { kind: 'function', f: SILU } });
  const z = fc(se.fc2, a, 'fc2');
  const s = ctx.value('vector', [C], 'scales');
  ctx.emit({ op: 'pointwise', name: ctx.path, x: z, y: s, fn: se.gate === 'sigmoid' ? { kind: 'sigmoid' } : { kind: 'function', f: hardSigmoidFn(1 / 6, 0.5) } });
  const y = ctx.value('map', x.shape);
  ctx.emit({ op: 'scale', name: ctx.path, x, s, y });
  return y;
});

registerCompiler('ChannelSelect', (m, ctx, x) => {
  const c = as(m, ChannelSelect, ctx.path);
  if (x.kind !== 'map' || x.shape[0] !== c.inChannels) throw new CompileError(`compile: ChannelSelect(${c.inChannels}) at '${ctx.path}' reads ${x.kind} ${shapeString(x.shape)}`);
  const y = ctx.value('map', [c.order.length, ...x.shape.slice(1)]);
  ctx.emit({ op: 'select', name: ctx.path, x, y, order: c.order });
  return y;
});

registerCompiler('ChannelLayerNorm', (m, ctx, x) => {
  const ln = as(m, ChannelLayerNorm, ctx.path);
  if (x.kind === 'switches' || x.shape[0] !== ln.channels) throw new CompileError(`compile: ChannelLayerNorm(${ln.channels}) at '${ctx.path}' reads ${x.kind} ${shapeString(x.shape)}`);
  const y = ctx.value(x.kind, x.shape);
  ctx.emit({ op: 'channelNorm', name: ctx.path, x, y, weight: ctx.copy(ln.weight), bias: ctx.copy(ln.bias), eps: ln.eps });
  return y;
});

registerCompiler('Pad2d', (m, ctx, x) => {
  const p = as(m, Pad2d, ctx.path);
  if (x.kind !== 'map' || x.shape.length !== 3) throw new CompileError(`compile: Pad2d at '${ctx.path}' reads ${x.kind} ${shapeString(x.shape)}, expected a [C, H, W] map`);
  const [C, H, W] = x.shape as [number, number, number];
  const [t, l, b, r] = p.pads;
  const rows = Int32Array.from({ length: H + t + b }, (_, i) => padSource(i, t, H, p.mode));
  const cols = Int32Array.from({ length: W + l + r }, (_, i) => padSource(i, l, W, p.mode));
  const y = ctx.value('map', [C, rows.length, cols.length]);
  ctx.emit({ op: 'pad', name: ctx.path, x, y, rows, cols, value: p.value });
  return y;
});
