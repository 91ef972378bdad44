/** `parsimony info MODEL`: what a model file holds. */
import { statSync } from 'node:fs';
import { gates } from '../../nn/lkam.js';
import type { Module } from '../../nn/module.js';
import { Conv2d, Linear } from '../../nn/layers.js';
import { openModel } from '../inputs.js';
import { Output } from '../output.js';
import { mega, table, withEngine } from './common.js';

interface InfoFlags {
  json: boolean;
}

interface LayerRow {
  readonly path: string;
  readonly type: string;
  readonly shape: string;
  readonly parameters: number;
}

function layerRows(model: Module): LayerRow[] {
  return model.modules().filter(([p, m]) => !p.includes('.lkam.') && (m instanceof Conv2d || m instanceof Linear || m.type === 'LKAM')).map(([path, m]) => {
    const shape = m instanceof Conv2d ? `${m.inChannels} -> ${m.outChannels}, ${m.kernel.join('x')}${m.stride[0] !== 1 ? ` stride ${m.stride[0]}` : ''}`
      : m instanceof Linear ? `${m.inFeatures} -> ${m.outFeatures}` : '';
    const own = m.type === 'LKAM' ? m.parameterCount() : m.parameters().reduce((a, p) => a + p.size, 0);
    return { path, type: m.type, shape, parameters: own };
  });
}

export function run(arg: string, f: InfoFlags): Promise<void> {
  return withEngine(1, () => {
      const out = new Output(f);
      const src = openModel(arg);
      const m = src.model;
      const input = [1, ...src.meta.inputShape];
      const gs = gates(m);
      const paths = new Map(m.modules().map(([p, x]) => [x, p]));
      const lkams = gs.map((g) => ({ gate: paths.get(g) ?? '?', switches: g.lkam.switches, bank: g.lkam.bank, pool: g.lkam.pool, grid: g.lkam.grid, switch: g.lkam.switchKind, gain: g.gain }));
      const training = src.meta.training ?? null;
      const pruned = training !== null && typeof training === 'object' && !Array.isArray(training) ? ((training as Record<string, unknown>)['pruned'] ?? null) : null;
      const info = {
        file: src.file, bytes: statSync(src.file).size, inputShape: src.meta.inputShape, classNames: src.meta.classNames ?? null,
        outputs: m.outputShape(input)[1], parameters: m.parameterCount(),
        denseMacs: m.macs(input, false), macsWithLkams: m.macs(input, true),
        lkams, pruned, training, layers: layerRows(m),
      };
      out.result(`${src.file} (${info.bytes} bytes)`);
      out.result(`  input ${src.meta.inputShape.join('x')}, ${info.outputs} outputs${src.meta.classNames !== undefined ? ` (${src.meta.classNames.join(', ')})` : ''}`);
      out.result(`  ${info.parameters} parameters; ${mega(info.denseMacs)} multiply-adds per image dense, ${mega(info.macsWithLkams)} with every kernel on and the LKAMs`);
      out.result(`  LKAMs: ${lkams.length === 0 ? 'none' : `${lkams.length}, gating ${lkams.map((l) => `${l.gate} (${l.switches} switches, ${l.switch})`).join(', ')}`}`);
      out.result(`  pruned: ${pruned === null ? 'no' : `yes, ${(pruned as { kernelsRemoved?: number }).kernelsRemoved ?? '?'} kernel(s) removed`}`);
      if (training !== null) out.result(`  training: ${JSON.stringify(training)}`);
      out.result(table(['layer', 'type', 'shape', 'parameters'], info.layers.map((l) => [l.path, l.type, l.shape, l.parameters])).split('\n').map((l) => `  ${l}`).join('\n'));
      out.data(info);
  });
}
