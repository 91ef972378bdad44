/**
 * The demo page: picks or draws an image, classifies it with the parsimonious plan, shows which
 * kernels each LKAM switched on, the multiply-adds against the dense network, and both plans' time
 * per image. Query parameters: `threads=N` (default the cores, at most 4), `simd=simd|relaxed`.
 *
 * Elements carry what they show as data attributes (data-run, data-macs, data-layer…) for the
 * end-to-end test; `window.parsimonyBench` times both plans over test images for bench/web.ts.
 */
import { browserFeatures } from '../src/browser/index.js';
import type { PeerRequest, PeerRun } from './peers.js';
import { Demo, type BenchRequest, type BenchSamples, type Classification } from './demo.js';
import { loadTestSet, normalise, testImage, type TestSet } from './test-set.js';

const MODEL_URL = new URL('../models/fmnist-vgg5-lkam.safetensors', import.meta.url);
const TEST_IMAGES_URL = new URL('../data/fashion-mnist-subset/t10k-images-idx3-ubyte.gz', import.meta.url);
const TEST_LABELS_URL = new URL('../data/fashion-mnist-subset/t10k-labels-idx1-ubyte.gz', import.meta.url);
const THUMBS_PER_CLASS = 8;
const SIDE = 28;
const BRUSH = 2.2;
const GRID_COLUMNS = 32;
/** One 28x28 image gives each kernel call too little work to split across more threads than this. */
const DEFAULT_MAX_THREADS = 4;

function element<T extends HTMLElement>(id: string, type: new () => T): T {
  const e = document.getElementById(id);
  if (!(e instanceof type)) throw new Error(`the page has no #${id} ${type.name}`);
  return e;
}

const ui = {
  status: element('status', HTMLParagraphElement),
  threads: element('threads', HTMLSelectElement),
  canvas: element('canvas', HTMLCanvasElement),
  clear: element('clear', HTMLButtonElement),
  random: element('random', HTMLButtonElement),
  pick: element('pick', HTMLFormElement),
  index: element('index', HTMLInputElement),
  thumbs: element('thumbs', HTMLDivElement),
  result: element('result', HTMLElement),
  prediction: element('prediction', HTMLSpanElement),
  truth: element('truth', HTMLSpanElement),
  probabilities: element('probabilities', HTMLDivElement),
  budget: element('budget', HTMLInputElement),
  budgetValue: element('budget-value', HTMLOutputElement),
  macs: element('macs', HTMLTableCellElement),
  denseMacs: element('dense-macs', HTMLTableCellElement),
  lkamMacs: element('lkam-macs', HTMLTableCellElement),
  timeParsimonious: element('time-parsimonious', HTMLTableCellElement),
  timeDense: element('time-dense', HTMLTableCellElement),
  timingNote: element('timing-note', HTMLParagraphElement),
  switches: element('switches', HTMLDivElement),
  switchTotal: element('switch-total', HTMLParagraphElement),
};

const millions = (v: number): string => `${(v / 1e6).toFixed(2)} M`;
const ms = (v: number): string => (v < 1 ? `${(v * 1000).toFixed(0)} µs` : `${v.toFixed(2)} ms`);

/** Draws grey levels (0 to 255, one per pixel) on a canvas of the image's own size. */
function paintGrey(canvas: HTMLCanvasElement, grey: Uint8Array): void {
  canvas.width = SIDE;
  canvas.height = SIDE;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  if (ctx === null) return;
  const img = ctx.createImageData(SIDE, SIDE);
  for (let i = 0; i < grey.length; i++) {
    const v = grey[i] as number;
    img.data.set([v, v, v, 255], i * 4);
  }
  ctx.putImageData(img, 0, 0);
}

class Page {
  private image: Uint8Array = new Uint8Array(SIDE * SIDE);
  private label: number | null = null;
  private run = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private readonly ink = document.createElement('canvas');
  private drawing = false;
  private last: { x: number; y: number } | null = null;

  constructor(private readonly demo: Demo, private readonly tests: TestSet) {
    this.ink.width = SIDE;
    this.ink.height = SIDE;
  }

  start(): void {
    this.buildThumbs();
    ui.index.max = String(this.tests.count - 1);
    ui.pick.addEventListener('submit', (e) => {
      e.preventDefault();
      this.showTest(Math.min(this.tests.count - 1, Math.max(0, Math.floor(Number(ui.index.value) || 0))));
    });
    ui.random.addEventListener('click', () => this.showTest(Math.floor(Math.random() * this.tests.count)));
    ui.clear.addEventListener('click', () => this.clear());
    ui.budget.addEventListener('input', () => {
      ui.budgetValue.value = Number(ui.budget.value).toFixed(2);
      this.update(true);
    });
    this.listenForDrawing();
    this.showTest(0);
  }

  private buildThumbs(): void {
    const perClass = new Map<number, number>();
    for (let i = 0; i < this.tests.count; i++) {
      const c = this.tests.labels[i] as number;
      const n = perClass.get(c) ?? 0;
      if (n >= THUMBS_PER_CLASS) continue;
      perClass.set(c, n + 1);
      const thumb = document.createElement('canvas');
      paintGrey(thumb, testImage(this.tests, i));
      thumb.dataset['index'] = String(i);
      thumb.title = `#${i}: ${this.demo.classNames[c] ?? c}`;
      thumb.addEventListener('click', () => this.showTest(i));
      thumb.style.order = String(c * THUMBS_PER_CLASS + n);
      ui.thumbs.append(thumb);
    }
  }

  private showTest(index: number): void {
    this.image = testImage(this.tests, index);
    this.label = this.tests.labels[index] as number;
    ui.index.value = String(index);
    ui.result.dataset['source'] = `test:${index}`;
    for (const t of ui.thumbs.querySelectorAll('canvas')) t.classList.toggle('selected', t.dataset['index'] === String(index));
    this.update(true);
  }

  private clear(): void {
    this.image = new Uint8Array(SIDE * SIDE);
    this.label = null;
    ui.result.dataset['source'] = 'drawn';
    for (const t of ui.thumbs.querySelectorAll('canvas')) t.classList.remove('selected');
    this.update(true);
  }

  private listenForDrawing(): void {
    const at = (e: PointerEvent): { x: number; y: number } => {
      const r = ui.canvas.getBoundingClientRect();
      return { x: ((e.clientX - r.left) / r.width) * SIDE, y: ((e.clientY - r.top) / r.height) * SIDE };
    };
    ui.canvas.addEventListener('pointerdown', (e) => {
      ui.canvas.setPointerCapture(e.pointerId);
      this.drawing = true;
      this.label = null;
      ui.result.dataset['source'] = 'drawn';
      paintGrey(this.ink, this.image);
      this.last = at(e);
      this.stroke(this.last);
    });
    ui.canvas.addEventListener('pointermove', (e) => {
      if (this.drawing) this.stroke(at(e));
    });
    const end = (): void => {
      if (!this.drawing) return;
      this.drawing = false;
      this.last = null;
      this.update(true);
    };
    ui.canvas.addEventListener('pointerup', end);
    ui.canvas.addEventListener('pointercancel', end);
  }

  /** Adds a soft white line from the last point to `p` and classifies what is on the canvas. */
  private stroke(p: { x: number; y: number }): void {
    const ctx = this.ink.getContext('2d', { willReadFrequently: true });
    if (ctx === null) return;
    const from = this.last ?? p;
    ctx.strokeStyle = '#fff';
    ctx.lineWidth = BRUSH;
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    ctx.beginPath();
    ctx.moveTo(from.x, from.y);
    ctx.lineTo(p.x + 0.01, p.y);
    ctx.stroke();
    this.last = p;
    const rgba = ctx.getImageData(0, 0, SIDE, SIDE).data;
    this.image = Uint8Array.from({ length: SIDE * SIDE }, (_, i) => rgba[i * 4] as number);
    this.update(false);
  }

  /** Classifies the current image now; with `timed`, times both plans once the result is on screen. */
  private update(timed: boolean): void {
    paintGrey(ui.canvas, this.image);
    const x = normalise(this.image, this.demo.meta);
    const budget = Number(ui.budget.value);
    const c = this.demo.classify(x, budget);
    this.run++;
    this.render(c);
    ui.result.dataset['run'] = String(this.run);
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (!timed) return;
    const run = this.run;
    ui.timeParsimonious.textContent = 'timing…';
    ui.timeDense.textContent = 'timing…';
    this.timer = setTimeout(() => {
      this.timer = null;
      const t = this.demo.time(x, budget);
      ui.timeParsimonious.textContent = ms(t.parsimoniousMs);
      ui.timeParsimonious.dataset['ms'] = String(t.parsimoniousMs);
      ui.timeDense.textContent = ms(t.denseMs);
      ui.timeDense.dataset['ms'] = String(t.denseMs);
      const ratio = t.denseMs / t.parsimoniousMs;
      ui.timingNote.textContent = `Median of ${t.reps} samples per plan on this image: the parsimonious plan runs ${ratio >= 1 ? `${ratio.toFixed(2)}x faster` : `${(1 / ratio).toFixed(2)}x slower`} than the dense one.`;
      ui.result.dataset['timed'] = String(run);
    }, 30);
  }

  private render(c: Classification): void {
    const names = this.demo.classNames;
    const nameOf = (k: number): string => names[k] ?? `class ${k}`;
    ui.prediction.textContent = nameOf(c.predicted);
    ui.prediction.dataset['class'] = String(c.predicted);
    if (this.label === null) {
      ui.truth.textContent = '(drawn)';
      ui.truth.className = 'truth';
    } else {
      ui.truth.textContent = `(label: ${nameOf(this.label)})`;
      ui.truth.className = this.label === c.predicted ? 'truth' : 'truth wrong';
    }
    const rows: HTMLElement[] = [];
    c.probabilities.forEach((p, k) => {
      const name = document.createElement('span');
      name.textContent = nameOf(k);
      const bar = document.createElement('div');
      bar.className = k === c.predicted ? 'bar top' : 'bar';
      bar.style.width = `${(100 * p).toFixed(1)}%`;
      const value = document.createElement('span');
      value.textContent = `${(100 * p).toFixed(1)}%`;
      rows.push(name, bar, value);
    });
    ui.probabilities.replaceChildren(...rows);

    ui.macs.textContent = `${millions(c.macs)} (${((100 * c.macs) / c.denseMacs).toFixed(1)}% of dense)`;
    ui.macs.dataset['macs'] = String(c.macs);
    ui.denseMacs.textContent = millions(c.denseMacs);
    ui.denseMacs.dataset['macs'] = String(c.denseMacs);
    ui.lkamMacs.textContent = millions(c.lkamMacs);
    ui.lkamMacs.dataset['macs'] = String(c.lkamMacs);

    const layers = c.layers.map((l) => {
      const box = document.createElement('div');
      box.className = 'layer';
      box.dataset['layer'] = l.name;
      const on = l.on.reduce((a, b) => a + b, 0);
      const title = document.createElement('h3');
      const count = document.createElement('span');
      count.className = 'count';
      count.textContent = `${on} of ${l.kernels} on`;
      title.append(l.conv >= 0 ? `conv ${l.conv} ` : `${l.name} `, count);
      const path = document.createElement('span');
      path.className = 'path';
      path.textContent = `module ${l.name}`;
      title.append(path);
      const grid = document.createElement('div');
      grid.className = 'grid';
      grid.style.gridTemplateColumns = `repeat(${GRID_COLUMNS}, 1fr)`;
      for (let k = 0; k < l.kernels; k++) {
        const cell = document.createElement('div');
        cell.className = l.on[k] === 1 ? 'cell on' : 'cell';
        cell.title = `kernel ${k}: ${l.on[k] === 1 ? 'on' : 'off'}`;
        grid.append(cell);
      }
      box.append(title, grid);
      return box;
    });
    const on = c.layers.reduce((a, l) => a + l.on.reduce((x, y) => x + y, 0), 0);
    const all = c.layers.reduce((a, l) => a + l.kernels, 0);
    ui.switchTotal.textContent = `${on} of the ${all} gated kernels are on for this image.`;
    ui.switches.replaceChildren(...layers);
  }
}

function browserCores(): number {
  return browserFeatures().cores;
}

/** A choice of thread counts, which reloads the page with `threads=N`; one thread only where memory cannot be shared. */
function offerThreads(demo: Demo): void {
  const most = demo.features.crossOriginIsolated ? demo.features.cores : 1;
  for (let n = 1; n <= Math.max(most, demo.threads); n++) ui.threads.append(new Option(String(n), String(n), false, n === demo.threads));
  ui.threads.disabled = most === 1;
  ui.threads.title = most === 1 ? 'threads need a cross-origin isolated page' : 'kernels run on this many threads (the page and its workers)';
  ui.threads.addEventListener('change', () => {
    const params = new URLSearchParams(location.search);
    params.set('threads', ui.threads.value);
    location.search = params.toString();
  });
}

/** The test accuracy the model file records from its training, if any. */
function trainedAccuracy(demo: Demo): number | null {
  const t = demo.meta.training;
  if (typeof t !== 'object' || t === null || Array.isArray(t)) return null;
  const v = (t as { readonly [key: string]: unknown })['testAccuracy'];
  return typeof v === 'number' ? v : null;
}

async function main(): Promise<void> {
  const params = new URLSearchParams(location.search);
  const threads = params.has('threads') ? Number(params.get('threads')) : Math.min(browserCores(), DEFAULT_MAX_THREADS);
  const simdParam = params.get('simd');
  const simd = simdParam === 'simd' || simdParam === 'relaxed' ? simdParam : 'auto';
  const [demo, tests] = await Promise.all([
    Demo.load({ modelUrl: MODEL_URL, simd, threads }),
    loadTestSet(TEST_IMAGES_URL, TEST_LABELS_URL),
  ]);
  const f = demo.features;
  const accuracy = trainedAccuracy(demo);
  ui.status.textContent = [
    `Kernels: ${demo.backendName} on ${demo.threads} thread${demo.threads === 1 ? '' : 's'}`,
    f.crossOriginIsolated ? 'cross-origin isolated' : 'not cross-origin isolated (one thread)',
    `model: ${demo.gates.length} LKAMs${accuracy === null ? '' : `, test accuracy ${(100 * accuracy).toFixed(1)}% when trained`}`,
  ].join(' · ');
  offerThreads(demo);
  document.body.dataset['backend'] = demo.backendName;
  document.body.dataset['threads'] = String(demo.threads);
  new Page(demo, tests).start();
  (globalThis as { parsimonyBench?: (r: BenchRequest) => BenchSamples }).parsimonyBench = (r) =>
    demo.benchmark(r.images.map((i) => normalise(testImage(tests, i), demo.meta)), r.budget, r.warmup, r.reps);
  // The peers load only when the bench asks for them.
  (globalThis as { parsimonyPeers?: (r: BenchRequest, q: PeerRequest) => Promise<PeerRun> }).parsimonyPeers = async (r, q) => {
    const images = r.images.map((i) => normalise(testImage(tests, i), demo.meta));
    const samples = await (await import('./peers.js')).timePeers(images, demo.meta.inputShape, q);
    return { samples, reference: Array.from(demo.denseOutputs(images[0] as Float32Array)) };
  };
  document.body.dataset['state'] = 'ready';
}

main().catch((e: unknown) => {
  document.body.dataset['state'] = 'error';
  ui.status.textContent = `The demo could not start: ${e instanceof Error ? e.message : String(e)}`;
  console.error(e);
});
