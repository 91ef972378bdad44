/** `parsimony info MODEL`: what a model file holds. */
import { statSync } from 'node:fs';
import { convsInOrder } from '../../nn/lkam.js';
import { ShapeWalk, type Module } from '../../nn/module.js';
import type { Shape } from '../../tensor/tensor.js';
import { Conv2d, Linear } from '../../nn/layers.js';
import type { DataOptions } from '../../data/index.js';
import { dataFlags, dataForModel, normalizeOf, openModel } from '../inputs.js';
import { Output } from '../output.js';
import { mega, table, withEngine } from './common.js';

interface InfoFlags extends Partial<DataOptions> {
  json: boolean;
}

interface LayerRow {
  /** `conv N` for convs (N counts the convs in forward order, as `--layers` does), `LKAM of conv N` for their LKAMs. */
  readonly name: string;
  readonly path: string;
  readonly type: string;
  readonly shape: string;
  /** One image's output, without the batch dimension. */
  readonly output: readonly number[];
  readonly parameters: number;
  /** Multiply-adds of one image, every kernel on (an LKAM's own work for its row). */
  readonly macs: number;
}

/** Records every layer the walk reaches; an LKAM is one row, its inner layers none. */
class LayerWalk extends ShapeWalk {
  readonly rows: LayerRow[] = [];
  private insideLkam = 0;
  constructor(private readonly names: ReadonlyMap<Module, string>, private readonly paths: ReadonlyMap<Module, string>) {
    super();
  }

  override child(field: string, m: Module, input: Shape): Shape {
    const lkam = m.type === 'LKAM';
    if (lkam) this.insideLkam++;
    try {
      const out = super.child(field, m, input);
      if (this.insideLkam === (lkam ? 1 : 0) && (lkam || m.children().length === 0)) {
        const path = this.paths.get(m) ?? field;
        const shape = m instanceof Conv2d ? `${m.inChannels} -> ${m.outChannels}, ${m.kernel.join('x')}${m.stride[0] !== 1 ? ` stride ${m.stride[0]}` : ''}`
          : m instanceof Linear ? `${m.inFeatures} -> ${m.outFeatures}` : '';
        const parameters = lkam ? m.parameterCount() : m.ownParameters().reduce((a, [, p]) => a + p.size, 0);
        this.rows.push({ name: this.names.get(m) ?? '', path, type: m.type, shape, output: out.slice(1), parameters, macs: m.macs(input, true) });
      }
      return out;
    } finally {
      if (lkam) this.insideLkam--;
    }
  }
}

/** One row per layer in forward order; the rows' parameters and multiply-adds add up to the model's. */
export function layerRows(model: Module, inputShape: readonly number[]): LayerRow[] {
  const names = new Map<Module, string>();
  convsInOrder(model).forEach((c, i) => {
    names.set(c.conv, `conv ${i}`);
    if (c.gate !== null) names.set(c.gate.module.lkam, `LKAM of conv ${i}`);
  });
  const walk = new LayerWalk(names, new Map(model.modules().map(([p, m]) => [m, p])));
  walk.child('', model, [1, ...inputShape]);
  return walk.rows;
}

export function run(arg: string, f: InfoFlags): Promise<void> {
  return withEngine(1, async () => {
      const out = new Output(f);
      const src = openModel(arg);
      const fits = Object.keys(dataFlags(f)).length > 0 ? (await dataForModel(src, f)).description : null;
      const m = src.model;
      const input = [1, ...src.meta.inputShape];
      const lkams = convsInOrder(m).flatMap((c, i) => (c.gate === null ? [] : [{ layer: `conv ${i}`, gate: c.gate.path, switches: c.gate.module.lkam.switches, bank: c.gate.module.lkam.bank, pool: c.gate.module.lkam.pool, grid: c.gate.module.lkam.grid, switch: c.gate.module.lkam.switchKind, gain: c.gate.module.gain }]));
      const training = src.meta.training ?? null;
      const pruned = training !== null && typeof training === 'object' && !Array.isArray(training) ? ((training as Record<string, unknown>)['pruned'] ?? null) : null;
      const info = {
        file: src.file, bytes: statSync(src.file).size, inputShape: src.meta.inputShape, classNames: src.meta.classNames ?? null,
        normalize: normalizeOf(src), normalizeRecorded: src.meta.normalize !== undefined, fitsData: fits,
        outputs: m.outputShape(input)[1], parameters: m.parameterCount(),
        denseMacs: m.macs(input, false), macsWithLkams: m.macs(input, true),
        lkams, pruned, training, layers: layerRows(m, src.meta.inputShape),
      };
      out.result(`${src.file} (${info.bytes} bytes)`);
      out.result(`  input ${src.meta.inputShape.join('x')}, ${info.outputs} outputs${src.meta.classNames !== undefined ? ` (${src.meta.classNames.join(', ')})` : ''}`);
      out.result(`  normalisation: mean ${info.normalize.mean.map((v) => v.toFixed(4)).join(', ')}, std ${info.normalize.std.map((v) => v.toFixed(4)).join(', ')}${info.normalizeRecorded ? '' : " (not recorded in the file: Fashion-MNIST's, which models trained before it was recorded used)"}`);
      if (fits !== null) out.result(`  fits ${fits}`);
      out.result(`  ${info.parameters} parameters; ${mega(info.denseMacs)} multiply-adds per image dense, ${mega(info.macsWithLkams)} with every kernel on and the LKAMs`);
      out.result(`  LKAMs: ${lkams.length === 0 ? 'none' : `${lkams.length}, gating ${lkams.map((l) => `${l.layer} (module ${l.gate}, ${l.switches} switches, ${l.switch})`).join(', ')}`}`);
      out.result(`  pruned: ${pruned === null ? 'no' : `yes, ${(pruned as { kernelsRemoved?: number }).kernelsRemoved ?? '?'} kernel(s) removed`}`);
      if (training !== null) out.result(`  training: ${JSON.stringify(training)}`);
      const rows = info.layers.map((l) => [l.name, l.path, l.type, l.shape, l.type === 'LKAM' ? `${l.output.join('x')} switches` : l.output.join('x'), l.parameters, (l.macs / 1e6).toFixed(3)]);
      const total = ['total', '', '', '', '', info.layers.reduce((a, l) => a + l.parameters, 0), `${(info.layers.reduce((a, l) => a + l.macs, 0) / 1e6).toFixed(3)}`];
      out.result(table(['layer', 'module', 'type', 'shape', 'output', 'parameters', 'M MACs'], [...rows, total]).split('\n').map((l) => `  ${l}`).join('\n'));
      out.result(`  (M MACs: one image, every kernel on; the LKAM rows are their own work, ${mega(info.macsWithLkams - info.denseMacs)} in all)`);
      out.data(info);
  });
}
