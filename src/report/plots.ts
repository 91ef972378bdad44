/** The report's plots: vega-lite specs, rendered to SVG strings in Node (no browser, no network). */
import { importOptional } from '../optional.js';
import type { TopLevelSpec } from 'vega-lite';
import { layerLabel, type EpochMetrics, type EvalRecord, type KnobRecord, type RunData } from './run.js';

const WIDTH = 420;
const HEIGHT = 240;
const FONT = 'system-ui, -apple-system, Segoe UI, Roboto, sans-serif';

const CONFIG = {
  font: FONT,
  axis: { labelFontSize: 11, titleFontSize: 12, gridColor: '#e5e7eb' },
  legend: { labelFontSize: 11, titleFontSize: 12 },
  view: { stroke: null },
  range: { category: ['#2563eb', '#dc2626', '#059669', '#d97706', '#7c3aed', '#0891b2', '#be185d', '#4b5563'] },
} as const;

/** Renders a vega-lite spec to an SVG string. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const vl = await importOptional('vega-lite', 'the report\'s plots', () => import('vega-lite'));
  const vega = await importOptional('vega', 'the report\'s plots', () => import('vega'));
  const compiled = vl.compile({ ...spec, config: { ...CONFIG, ...(spec.config ?? {}) } } as TopLevelSpec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export interface Plot {
  /** Stable id, used by the page and its test. */
  readonly id: string;
  readonly title: string;
  readonly caption: string;
  readonly spec: TopLevelSpec;
}

function lineChart(id: string, title: string, caption: string, rows: Array<Record<string, unknown>>, y: { field: string; title: string; format?: string; zero?: boolean }): Plot {
  return {
    id, title, caption,
    spec: {
      width: WIDTH, height: HEIGHT,
      data: { values: rows },
      mark: { type: 'line', point: true, strokeWidth: 2 },
      encoding: {
        x: { field: 'epoch', type: 'quantitative', title: 'epoch', axis: { tickMinStep: 1, format: 'd' } },
        y: { field: y.field, type: 'quantitative', title: y.title, scale: { zero: y.zero ?? false }, ...(y.format === undefined ? {} : { axis: { format: y.format } }) },
        color: { field: 'series', type: 'nominal', title: null, legend: { orient: 'bottom', columns: 3 } },
        tooltip: [{ field: 'series' }, { field: 'epoch' }, { field: y.field, format: y.format ?? '.4f' }],
      },
    } as TopLevelSpec,
  };
}

export function trainingCurves(metrics: readonly EpochMetrics[]): Plot[] {
  if (metrics.length === 0) return [];
  const loss: Array<Record<string, unknown>> = [];
  const acc: Array<Record<string, unknown>> = [];
  const compute: Array<Record<string, unknown>> = [];
  for (const m of metrics) {
    loss.push({ epoch: m.epoch, series: 'train loss (task)', value: m.train.loss });
    if (m.test !== null) loss.push({ epoch: m.epoch, series: 'test loss', value: m.test.loss });
    if (m.validation !== undefined && m.validation !== null) loss.push({ epoch: m.epoch, series: 'validation loss', value: m.validation.loss });
    if (m.train.sparsityTerm > 0) loss.push({ epoch: m.epoch, series: 'sparsity term', value: m.train.sparsityTerm });
    acc.push({ epoch: m.epoch, series: 'train', value: m.train.accuracy });
    if (m.test !== null) acc.push({ epoch: m.epoch, series: 'test', value: m.test.accuracy });
    if (m.validation !== undefined && m.validation !== null) acc.push({ epoch: m.epoch, series: 'validation', value: m.validation.accuracy });
    const dense = m.macs?.dense ?? 0;
    if (m.macs !== null && dense > 0) {
      compute.push({ epoch: m.epoch, series: `${m.validation !== undefined && m.validation !== null ? 'validation' : 'test'} MACs / dense`, value: m.macs.mean / dense });
      compute.push({ epoch: m.epoch, series: 'train MACs / dense', value: m.train.macs / dense });
    }
    if (m.train.meanSwitch !== null) compute.push({ epoch: m.epoch, series: 'mean switch value (train)', value: m.train.meanSwitch });
    for (const l of m.layers) compute.push({ epoch: m.epoch, series: `kernels on: ${layerLabel(l)}`, value: l.meanOn });
  }
  const plots = [
    lineChart('curve-loss', 'Loss', 'Task loss on the training batches (mean over the epoch) and on the test set; the sparsity term as added to the task loss.', loss, { field: 'value', title: 'loss' }),
    lineChart('curve-accuracy', 'Accuracy', 'Training accuracy (over the epoch, training mode) and test accuracy (eval mode, after the epoch).', acc, { field: 'value', title: 'accuracy', format: '.0%' }),
  ];
  if (compute.length > 0) {
    plots.push(lineChart('curve-compute', 'Compute', 'Effective multiply-adds as a fraction of the dense network\'s, the mean switch value, and the fraction of kernels each LKAM leaves on (test set).', compute, { field: 'value', title: 'fraction', format: '.0%', zero: true }));
  }
  return plots;
}

export function kernelHeatmaps(ev: EvalRecord): Plot[] {
  return ev.layers.map((l, li) => {
    const rows: Array<Record<string, unknown>> = [];
    l.onRateByClass.forEach((perKernel, c) => perKernel.forEach((v, k) => rows.push({ kernel: k, class: ev.classNames[c] ?? String(c), on: v })));
    const step = Math.max(2, Math.min(8, Math.floor(420 / Math.max(1, l.kernels))));
    return {
      id: `heatmap-${li}`,
      title: `Kernel activity: ${layerLabel(l)}`,
      caption: `Fraction of the test images of each class in which each of the ${l.kernels} kernels of ${layerLabel(l)} (module ${l.name}) is on (mean ${(100 * l.meanOn).toFixed(1)}%; ${l.alwaysOff} never on, ${l.neverOff} always on).`,
      spec: {
        data: { values: rows },
        width: { step: 26 }, height: { step },
        mark: { type: 'rect' },
        encoding: {
          x: { field: 'class', type: 'nominal', title: null, sort: ev.classNames, axis: { labelAngle: -40 } },
          y: { field: 'kernel', type: 'ordinal', title: 'kernel', axis: l.kernels > 32 ? { values: Array.from({ length: Math.ceil(l.kernels / 16) }, (_, i) => i * 16) } : {} },
          color: { field: 'on', type: 'quantitative', title: 'on', scale: { domain: [0, 1], scheme: 'viridis' }, legend: { format: '.0%' } },
          tooltip: [{ field: 'class' }, { field: 'kernel' }, { field: 'on', format: '.1%' }],
        },
      } as TopLevelSpec,
    };
  });
}

export function macsHistogram(ev: EvalRecord): Plot {
  const dense = ev.macs.dense;
  const rows = ev.perImageMacs.map((m) => ({ mmacs: m / 1e6 }));
  return {
    id: 'macs-histogram',
    title: 'Multiply-adds per image',
    caption: `Effective multiply-adds of each of the ${ev.images} test images (training graph, eval mode). Dense network: ${(dense / 1e6).toFixed(2)} M; mean ${(ev.macs.mean / 1e6).toFixed(2)} M (${ev.macs.reduction.toFixed(2)}x fewer).`,
    spec: {
      width: WIDTH, height: HEIGHT,
      layer: [
        { data: { values: rows }, mark: { type: 'bar', color: '#2563eb' }, encoding: { x: { field: 'mmacs', type: 'quantitative', bin: { maxbins: 40 }, title: 'M multiply-adds per image' }, y: { aggregate: 'count', type: 'quantitative', title: 'images' } } },
        { data: { values: [{ dense: dense / 1e6 }] }, mark: { type: 'rule', color: '#dc2626', strokeDash: [4, 3] }, encoding: { x: { field: 'dense', type: 'quantitative' } } },
      ],
    } as TopLevelSpec,
  };
}

export function macsPerClass(ev: EvalRecord): Plot {
  const rows = ev.macs.perClass.map((m, c) => ({ class: ev.classNames[c] ?? String(c), mmacs: m / 1e6 }));
  return {
    id: 'macs-per-class',
    title: 'Multiply-adds per class',
    caption: 'Mean effective multiply-adds of the test images of each class: which classes the network finds cheap.',
    spec: {
      width: WIDTH, height: HEIGHT,
      data: { values: rows },
      mark: { type: 'bar', color: '#059669' },
      encoding: {
        y: { field: 'class', type: 'nominal', title: null, sort: '-x' },
        x: { field: 'mmacs', type: 'quantitative', title: 'mean M multiply-adds per image' },
        tooltip: [{ field: 'class' }, { field: 'mmacs', format: '.2f' }],
      },
    } as TopLevelSpec,
  };
}

export function knobPlot(k: KnobRecord): Plot {
  const thresholds = new Set(k.points.map((p) => p.threshold));
  const byThreshold = thresholds.size > 1;
  const rows = k.points.map((p) => ({
    mmacs: p.meanMacs / 1e6, accuracy: p.accuracy, fraction: p.macFraction,
    series: byThreshold ? (p.threshold === null ? (p.budget === 1 ? 'default operating point' : 'own thresholds') : `threshold ${p.threshold}`) : 'budget sweep',
    label: byThreshold ? `b ${p.budget}` : `budget ${p.budget}`, threshold: p.threshold ?? 'default', budget: p.budget,
  }));
  return {
    id: 'knob-curve',
    title: 'Accuracy against compute: the runtime knob',
    caption: `One trained model, run with different switch thresholds and compute budgets (${k.images} test images, compiled plan, LKAMs included in the multiply-adds).`,
    spec: {
      width: WIDTH, height: HEIGHT,
      data: { values: rows },
      encoding: {
        ...accuracyAgainstMacs,
        color: { field: 'series', type: 'nominal', title: null, legend: { orient: 'bottom', columns: 3 } },
      },
      layer: [
        { mark: { type: 'line', point: true, strokeWidth: 2 }, encoding: { order: { field: 'mmacs' }, tooltip: [{ field: 'threshold' }, { field: 'budget' }, { field: 'accuracy', format: '.2%' }, { field: 'mmacs', format: '.2f' }, { field: 'fraction', format: '.1%' }] } },
        { mark: { type: 'text', dy: -9, fontSize: 10 }, encoding: { text: { field: 'label' } } },
      ],
    } as TopLevelSpec,
  };
}

/** The axes of both accuracy-against-compute plots. */
const accuracyAgainstMacs = {
  x: { field: 'mmacs', type: 'quantitative', title: 'mean M multiply-adds per image', scale: { zero: false } },
  y: { field: 'accuracy', type: 'quantitative', title: 'test accuracy', scale: { zero: false }, axis: { format: '.0%' } },
} as const;

/** The label of a run in the sweep: its sparsity weight or compute budget. */
export function sweepLabel(r: RunData): string {
  const o = (r.config['options'] ?? {}) as Record<string, unknown>;
  if (o['lkam'] === false) return 'dense';
  if (typeof o['budget'] === 'number') return `budget ${o['budget']}`;
  if (typeof o['sparsity'] === 'number') return `w ${o['sparsity']}`;
  return r.name;
}

export function sweepPlot(runs: readonly RunData[]): Plot | null {
  const rows = runs.filter((r) => r.eval !== null).map((r) => ({
    run: r.name, label: sweepLabel(r), mmacs: (r.eval as EvalRecord).macs.mean / 1e6, accuracy: (r.eval as EvalRecord).accuracy,
    reduction: (r.eval as EvalRecord).macs.reduction,
  }));
  if (rows.length === 0) return null;
  return {
    id: 'sweep-curve',
    title: 'Accuracy against compute: the sparsity weight',
    caption: `One point per training run (${rows.length} run${rows.length === 1 ? '' : 's'}), labelled with its sparsity weight w or compute budget; mean effective multiply-adds per test image.`,
    spec: {
      width: WIDTH, height: HEIGHT,
      data: { values: rows },
      encoding: {
        ...accuracyAgainstMacs,
      },
      layer: [
        { mark: { type: 'line', point: { size: 60 }, color: '#7c3aed', strokeWidth: 2 }, encoding: { order: { field: 'mmacs' }, tooltip: [{ field: 'run' }, { field: 'label' }, { field: 'accuracy', format: '.2%' }, { field: 'mmacs', format: '.2f' }, { field: 'reduction', format: '.2f' }] } },
        { mark: { type: 'text', dy: -10, fontSize: 10 }, encoding: { text: { field: 'label' } } },
      ],
    } as TopLevelSpec,
  };
}
