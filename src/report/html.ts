/**
 * One self-contained HTML page for one or more runs: every plot is inline SVG, every image a data
 * URI, the style inline; no script and no request leaves the page.
 */
import { kernelHeatmaps, knobPlot, macsHistogram, macsPerClass, renderSvg, sweepLabel, sweepPlot, trainingCurves, type Plot } from './plots.js';
import { speedSentences, type BenchRecord, type EvalRecord, type RunData, type Thumbnail } from './run.js';
import { thumbnailUri } from './thumbs.js';

function esc(s: unknown): string {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;
const mega = (x: number): string => `${(x / 1e6).toFixed(2)} M`;

const STYLE = `
:root { --fg: #111827; --muted: #6b7280; --line: #e5e7eb; --accent: #2563eb; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); margin: 0; background: #f9fafb; }
main { max-width: 1100px; margin: 0 auto; padding: 24px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 32px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
.sub { color: var(--muted); margin: 0 0 16px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.card { background: white; border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; min-width: 150px; }
.card b { display: block; font-size: 22px; } .card span { color: var(--muted); font-size: 13px; }
.grid { display: flex; flex-wrap: wrap; gap: 16px; }
figure.plot { background: white; border: 1px solid var(--line); border-radius: 8px; margin: 0; padding: 12px; }
figure.plot h3 { font-size: 15px; margin: 0 0 6px; }
figcaption { color: var(--muted); font-size: 13px; max-width: 460px; margin-top: 6px; }
table { border-collapse: collapse; background: white; font-size: 14px; }
th, td { border: 1px solid var(--line); padding: 4px 10px; text-align: right; } th { background: #f3f4f6; } td:first-child, th:first-child { text-align: left; }
.missing { color: var(--muted); font-style: italic; }
.thumbs { display: flex; flex-wrap: wrap; gap: 10px; } .thumb { background: white; border: 1px solid var(--line); border-radius: 6px; padding: 6px; text-align: center; font-size: 12px; }
.thumb img { display: block; image-rendering: pixelated; margin: 0 auto 4px; } .wrong { color: #dc2626; }
code { background: #f3f4f6; padding: 1px 4px; border-radius: 3px; }
`;

async function figure(p: Plot): Promise<string> {
  const svg = await renderSvg(p.spec);
  return `<figure class="plot" id="${esc(p.id)}" data-plot="${esc(p.id)}"><h3>${esc(p.title)}</h3>${svg}<figcaption>${esc(p.caption)}</figcaption></figure>`;
}

async function plots(ps: readonly Plot[]): Promise<string> {
  return `<div class="grid">${(await Promise.all(ps.map(figure))).join('\n')}</div>`;
}

function missing(text: string): string {
  return `<p class="missing">${text}</p>`;
}

async function thumbs(list: readonly Thumbnail[], ev: EvalRecord): Promise<string> {
  const items = await Promise.all(list.map(async (t) => {
    const wrong = t.prediction !== t.label;
    const name = (c: number): string => ev.classNames[c] ?? String(c);
    return `<div class="thumb"><img src="${await thumbnailUri(t)}" alt="test image ${t.index}" width="${(t.shape[2] ?? 28) * 3}" height="${(t.shape[1] ?? 28) * 3}">#${t.index} ${esc(name(t.label))}<br>${(t.macs / 1e6).toFixed(2)} M MACs${wrong ? `<br><span class="wrong">predicted ${esc(name(t.prediction))}</span>` : ''}</div>`;
  }));
  return `<div class="thumbs">${items.join('')}</div>`;
}

function benchTable(b: BenchRecord): string {
  const rows = b.rows.map((r) => `<tr><td>${esc(r.engine)}</td><td>${esc(r.mode)}</td><td>${r.batch}</td><td>${r.threads}</td><td>${r.medianMs.toFixed(3)}</td><td>${r.p10Ms.toFixed(3)}–${r.p90Ms.toFixed(3)}</td><td>${r.imagesPerSecond.toFixed(0)}</td><td>${r.macsPerImage === null ? '—' : (r.macsPerImage / 1e6).toFixed(2)}</td></tr>`).join('');
  const ratios = Object.entries(b.speedup).map(([k, v]) => `<tr><td>${esc(k)}</td><td>${v === null ? '—' : `${v.toFixed(2)}x`}</td></tr>`).join('');
  const env = Object.entries(b.env).filter(([, v]) => typeof v !== 'object' || v === null).map(([k, v]) => `${esc(k)} ${v === null ? 'not timed' : esc(v)}`).join(' · ');
  const words = speedSentences(b).map((w) => `<li>${esc(w)}</li>`).join('');
  return `<ul id="bench-words">${words}</ul><table id="bench-table"><thead><tr><th>engine</th><th>mode</th><th>batch</th><th>threads</th><th>median ms</th><th>p10–p90 ms</th><th>images/s</th><th>M MACs/image</th></tr></thead><tbody>${rows}</tbody></table>
<p></p><table><thead><tr><th>measured in the same run</th><th>value</th></tr></thead><tbody>${ratios}<tr><td>multiply-add reduction</td><td>${b.macReduction.toFixed(2)}x</td></tr></tbody></table>
<p class="sub">${env}${b.notes.length > 0 ? `<br>${b.notes.map(esc).join('<br>')}` : ''}</p>`;
}

function cards(run: RunData): string {
  const out: string[] = [];
  const ev = run.eval;
  if (ev !== null) {
    out.push(`<div class="card"><b>${pct(ev.accuracy)}</b><span>test accuracy (${ev.images} images)</span></div>`);
    const base = run.baseline;
    if (base !== null) {
      const gap = 100 * (ev.accuracy - base.accuracy);
      out.push(`<div class="card" id="baseline"><b>${pct(base.accuracy)}</b><span>the dense network trained the same way (${esc(base.how)}; ${base.images} images, run <code>${esc(base.dir)}</code>); this run is ${Math.abs(gap).toFixed(2)} points ${gap >= 0 ? 'above' : 'below'} it</span></div>`);
    } else if (ev.layers.length > 0) {
      out.push(`<div class="card" id="baseline"><b>—</b><span>dense baseline not recorded: train the same options without <code>--lkam</code>, then <code>parsimony report ${esc(run.dir)} --baseline DENSE_RUN</code></span></div>`);
    }
    if (ev.layers.length > 0) out.push(`<div class="card"><b>${ev.macs.reduction.toFixed(2)}x</b><span>fewer multiply-adds than dense (${mega(ev.macs.mean)} of ${mega(ev.macs.dense)})</span></div>`);
  }
  const b = run.bench;
  const s1 = b === null ? undefined : Object.entries(b.speedup).find(([k]) => k.includes('dense twin, batch 1'))?.[1];
  if (s1 !== undefined && s1 !== null) out.push(`<div class="card"><b>${s1.toFixed(2)}x</b><span>measured speed-up over the dense twin, batch 1</span></div>`);
  const last = run.metrics[run.metrics.length - 1];
  if (last !== undefined) out.push(`<div class="card"><b>${run.metrics.length}</b><span>epochs, ${last.imagesPerSecond.toFixed(0)} training images/s</span></div>`);
  return `<div class="cards">${out.join('')}</div>`;
}

function optionsLine(run: RunData): string {
  const o = (run.config['options'] ?? {}) as Record<string, unknown>;
  return Object.entries(o).map(([k, v]) => `--${esc(k)} ${esc(Array.isArray(v) ? v.join(',') : v)}`).join(' ');
}

/** The page: the first run in detail; with several runs, the sweep curve and a table of all of them. */
export async function renderReport(runs: readonly RunData[], title: string): Promise<string> {
  const main = runs[0];
  if (main === undefined) throw new RangeError('renderReport: no runs');
  const parts: string[] = [];
  parts.push(`<h1>${esc(title)}</h1><p class="sub">Parsimony report · run <code>${esc(main.name)}</code> · ${esc(main.config['created'] ?? '')}</p>`);
  parts.push(cards(main));
  parts.push(`<p class="sub">${optionsLine(main)}</p>`);

  parts.push('<h2>Training</h2>');
  const curves = trainingCurves(main.metrics);
  parts.push(curves.length > 0 ? await plots(curves) : missing('No epochs recorded (metrics.jsonl is empty).'));

  const ev = main.eval;
  parts.push('<h2>Kernel activity</h2>');
  if (ev === null) parts.push(missing(`Not measured: run <code>parsimony eval ${esc(main.dir)}</code>.`));
  else if (ev.layers.length === 0) parts.push(missing('This network has no LKAMs: every kernel is computed for every image.'));
  else parts.push(await plots(kernelHeatmaps(ev)));

  parts.push('<h2>Compute per image</h2>');
  if (ev === null) parts.push(missing(`Not measured: run <code>parsimony eval ${esc(main.dir)}</code>.`));
  else {
    parts.push(await plots([macsHistogram(ev), macsPerClass(ev)]));
    parts.push(`<h3>Cheapest test images</h3>${await thumbs(ev.cheapest, ev)}<h3>Costliest test images</h3>${await thumbs(ev.costliest, ev)}`);
  }

  parts.push('<h2>Accuracy against compute</h2>');
  const ac: Plot[] = [];
  if (main.knob !== null) ac.push(knobPlot(main.knob));
  const sweep = sweepPlot(runs);
  if (sweep !== null) ac.push(sweep);
  if (ac.length > 0) parts.push(await plots(ac));
  if (main.knob === null) parts.push(missing(`Runtime knob not measured: run <code>parsimony eval ${esc(main.dir)} --thresholds 0,0.1,0.2,0.3 --budgets 1,0.8,0.6,0.4</code>.`));
  if (runs.length === 1) parts.push(missing('The sparsity-weight curve has one point: pass several runs (or a folder of runs) to <code>parsimony report</code> to draw the sweep.'));
  if (runs.length > 1) {
    const rows = runs.map((r) => `<tr><td>${esc(r.name)}</td><td>${esc(sweepLabel(r))}</td><td>${r.eval === null ? '—' : pct(r.eval.accuracy)}</td><td>${r.eval === null ? '—' : mega(r.eval.macs.mean)}</td><td>${r.eval === null ? '—' : `${r.eval.macs.reduction.toFixed(2)}x`}</td><td>${r.metrics.length}</td></tr>`).join('');
    parts.push(`<p></p><table id="runs-table"><thead><tr><th>run</th><th>setting</th><th>test accuracy</th><th>MACs/image</th><th>reduction</th><th>epochs</th></tr></thead><tbody>${rows}</tbody></table>`);
  }

  parts.push('<h2>Speed</h2>');
  parts.push(main.bench === null ? missing(`Not measured: run <code>parsimony bench ${esc(main.dir)}</code>.`) : benchTable(main.bench));

  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title><style>${STYLE}</style></head>
<body><main>
${parts.join('\n')}
<p class="sub">Written by <code>parsimony report</code>; plots by vega-lite, rendered to SVG. This page is self-contained and works offline.</p>
</main></body></html>
`;
}
