// The demo page in headless Chromium against the Node engine: the same model file and test images
// must give the same predictions, multiply-adds and switch sets in both. Leaves a screenshot in
// artifacts/web/.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { Engine, setEngine } from '../../src/autograd/engine.js';
import { loadFashionMnist } from '../../src/data/index.js';
import { compile, type InferencePlan } from '../../src/infer/index.js';
import type { ModelMeta } from '../../src/io/model-file.js';
import { loadModel } from '../../src/io/node-files.js';
import { buildAndServeDemo, chromiumPath, launchChromium, type ServedDemo } from '../../web/node-harness.js';
import { normalise } from '../../web/test-set.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MODEL = join(ROOT, 'models', 'fmnist-vgg5-lkam.safetensors');
const ARTIFACTS = join(ROOT, 'artifacts', 'web');
const IMAGES = 5;
const TIMEOUT_MS = 30_000;
const skip = chromiumPath() === null ? 'no Chromium (install Debian\'s chromium or set PARSIMONY_CHROMIUM)' : false;

interface Shown {
  readonly run: number;
  readonly source: string;
  readonly predicted: number;
  readonly macs: number;
  readonly denseMacs: number;
  readonly lkamMacs: number;
  readonly layers: ReadonlyArray<{ readonly name: string; readonly on: readonly number[] }>;
}

interface Expected {
  readonly predicted: number;
  readonly macs: number;
  readonly denseMacs: number;
  readonly lkamMacs: number;
  readonly layers: ReadonlyArray<{ readonly name: string; readonly on: readonly number[] }>;
}

let engine: Engine;
let plan: InferencePlan;
let modelMeta: ModelMeta;
let served: ServedDemo;
let browser: Browser;
const testSet = loadFashionMnist({ subset: 'builtin' }).test;

/** What the Node engine computes for grey levels `grey` at compute budget `budget`. */
function nodeResult(grey: Uint8Array, budget: number): Expected {
  const out = plan.run(normalise(grey, modelMeta), { batch: 1, budget });
  const t = plan.telemetry();
  let predicted = 0;
  for (let k = 1; k < out.length; k++) if ((out[k] as number) > (out[predicted] as number)) predicted = k;
  return {
    predicted, macs: t.macs[0] as number, denseMacs: t.denseMacs, lkamMacs: t.lkamMacs[0] as number,
    layers: t.layers.filter((l) => l.onKernels !== null).map((l) => ({ name: l.name, on: [...(l.onKernels as Uint8Array)] })),
  };
}

function greyOf(index: number): Uint8Array {
  return Uint8Array.from(testSet.item(index).pixels);
}

/** What the page shows, read from the data attributes it renders (no named helpers inside: tsx would wrap them in `__name`). */
async function shown(page: Page): Promise<Shown> {
  return page.evaluate(() => {
    const [result, prediction, macs, dense, lkam] = ['#result', '#prediction', '#macs', '#dense-macs', '#lkam-macs'].map((s) => (document.querySelector(s) as HTMLElement).dataset);
    return {
      run: Number(result?.['run']),
      source: result?.['source'] ?? '',
      predicted: Number(prediction?.['class']),
      macs: Number(macs?.['macs']),
      denseMacs: Number(dense?.['macs']),
      lkamMacs: Number(lkam?.['macs']),
      layers: [...document.querySelectorAll<HTMLElement>('#switches .layer')].map((l) => ({
        name: l.dataset['layer'] ?? '',
        on: [...l.querySelectorAll('.cell')].map((c) => (c.classList.contains('on') ? 1 : 0)),
      })),
    };
  });
}

/** Does `act`, then waits until the page has shown a new result. */
async function afterUpdate(page: Page, act: () => Promise<void>): Promise<Shown> {
  const before = (await shown(page)).run;
  await act();
  await page.waitForFunction((n) => Number((document.querySelector('#result') as HTMLElement).dataset['run']) > n, before, { timeout: TIMEOUT_MS });
  return shown(page);
}

async function openDemo(isolated: boolean): Promise<{ page: Page; errors: string[]; wasm: Array<{ url: string; type: string }> }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const errors: string[] = [];
  const wasm: Array<{ url: string; type: string }> = [];
  page.on('response', (r) => {
    if (r.url().endsWith('.wasm')) wasm.push({ url: r.url(), type: r.headers()['content-type'] ?? '' });
  });
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  if (!isolated) {
    // The same build served without the headers that make a page cross-origin isolated.
    await page.route('**/*', async (route) => {
      const response = await route.fetch();
      const headers = { ...response.headers() };
      delete headers['cross-origin-opener-policy'];
      delete headers['cross-origin-embedder-policy'];
      await route.fulfill({ response, headers });
    });
  }
  await page.goto(served.url);
  await page.waitForFunction(() => document.body.dataset['state'] !== 'loading', null, { timeout: TIMEOUT_MS });
  const state = await page.evaluate(() => [document.body.dataset['state'], document.querySelector('#status')?.textContent ?? '']);
  assert.equal(state[0], 'ready', `the page did not start: ${state[1]} ${errors.join(' | ')}`);
  return { page, errors, wasm };
}

function assertSame(got: Shown, want: Expected, what: string): void {
  assert.equal(got.predicted, want.predicted, `${what}: predicted class`);
  assert.equal(got.macs, want.macs, `${what}: multiply-adds`);
  assert.equal(got.denseMacs, want.denseMacs, `${what}: dense multiply-adds`);
  assert.equal(got.lkamMacs, want.lkamMacs, `${what}: LKAM multiply-adds`);
  assert.deepEqual(got.layers, want.layers, `${what}: switch sets`);
}

/** Test images the Node engine classifies correctly, of different classes where it can; the first is a thumbnail on the page. */
function correctImages(count: number): number[] {
  const picked: number[] = [];
  const classes = new Set<number>();
  for (let i = 0; i < testSet.length && picked.length < count; i++) {
    const label = testSet.item(i).label;
    if (classes.has(label) || nodeResult(greyOf(i), 1).predicted !== label) continue;
    picked.push(i);
    classes.add(label);
  }
  assert.equal(picked.length, count, `the Node engine classifies only ${picked.length} test images of distinct classes correctly`);
  return picked;
}

before(async () => {
  if (skip !== false) return;
  if (!existsSync(MODEL)) throw new Error(`${MODEL} is missing: the repo ships it (\`parsimony train --lkam --save FILE\` makes one)`);
  engine = await Engine.create({ backend: 'wasm', threads: 2 });
  setEngine(engine);
  const { model, meta } = loadModel(MODEL);
  modelMeta = meta;
  model.eval();
  plan = compile(model, { inputShape: meta.inputShape, maxBatch: 1 });
  served = await buildAndServeDemo();
  browser = await launchChromium();
});

after(async () => {
  if (skip !== false) return;
  await browser?.close();
  await served?.close();
  engine?.close();
});

test('the demo page, cross-origin isolated: threads, test images, the knob, drawing, both timings, a screenshot', { skip }, async () => {
  const { page, errors, wasm } = await openDemo(true);
  assert.equal(await page.evaluate(() => crossOriginIsolated), true);
  // Chromium has relaxed SIMD, as the Node engine does: both run the same build.
  assert.equal(await page.evaluate(() => document.body.dataset['backend']), engine.backend.name);
  assert.equal(wasm.length, 1, `one kernel build fetched: ${JSON.stringify(wasm)}`);
  assert.match(wasm[0]?.url ?? '', /parsimony-relaxed[^/]*\.wasm$/);
  assert.equal(wasm[0]?.type, 'application/wasm', 'served as streaming compilation needs it');
  const threads = Number(await page.evaluate(() => document.body.dataset['threads']));
  const cores = await page.evaluate(() => navigator.hardwareConcurrency);
  assert.equal(threads, Math.min(cores, 4), 'an isolated page runs the kernels on its cores, at most 4');

  const images = correctImages(IMAGES);
  const first = images[0] as number;
  const thumb = page.locator(`#thumbs canvas[data-index="${first}"]`);
  const fromThumb = (await thumb.count()) === 1;
  for (const i of images) {
    const got = i === first && fromThumb
      ? await afterUpdate(page, () => thumb.click())
      : await afterUpdate(page, async () => {
        await page.fill('#index', String(i));
        await page.press('#index', 'Enter');
      });
    assert.equal(got.source, `test:${i}`);
    const want = nodeResult(greyOf(i), 1);
    assert.equal(want.predicted, testSet.item(i).label);
    assertSame(got, want, `test image ${i}`);
  }

  const last = images[images.length - 1] as number;
  const knob = await afterUpdate(page, () => page.fill('#budget', '0.5'));
  assertSame(knob, nodeResult(greyOf(last), 0.5), `test image ${last} at budget 0.5`);
  await afterUpdate(page, () => page.fill('#budget', '1'));

  await page.waitForFunction(() => {
    const r = document.querySelector('#result') as HTMLElement;
    return r.dataset['timed'] === r.dataset['run'];
  }, null, { timeout: TIMEOUT_MS });
  const times = await page.evaluate(() => ['#time-parsimonious', '#time-dense'].map((s) => {
    const e = document.querySelector(s) as HTMLElement;
    return { ms: Number(e.dataset['ms']), text: e.textContent ?? '' };
  }));
  for (const t of times) {
    assert.ok(Number.isFinite(t.ms) && t.ms > 0, `a time per image: ${JSON.stringify(t)}`);
    assert.match(t.text, /\d+(\.\d+)? (ms|µs)/);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, 'demo.png'), fullPage: true });

  await afterUpdate(page, () => page.click('#clear'));
  const box = await page.locator('#canvas').boundingBox();
  assert.ok(box !== null);
  const drawn = await afterUpdate(page, async () => {
    await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.8, { steps: 8 });
    await page.mouse.move(box.x + box.width * 0.7, box.y + box.height * 0.2, { steps: 8 });
    await page.mouse.up();
  });
  assert.equal(drawn.source, 'drawn');
  const grey = Uint8Array.from(await page.evaluate(() => {
    const c = document.querySelector('#canvas') as HTMLCanvasElement;
    const rgba = (c.getContext('2d') as CanvasRenderingContext2D).getImageData(0, 0, c.width, c.height).data;
    return Array.from({ length: c.width * c.height }, (_, i) => rgba[i * 4] as number);
  }));
  assert.ok(grey.some((v) => v > 0), 'the stroke left ink');
  assertSame(drawn, nodeResult(grey, 1), 'a drawn image');
  assert.deepEqual(errors, []);
  await page.close();
});

test('the demo page without cross-origin isolation runs on one thread and shows the same results', { skip }, async () => {
  const { page, errors } = await openDemo(false);
  assert.equal(await page.evaluate(() => crossOriginIsolated), false);
  assert.equal(await page.evaluate(() => document.body.dataset['threads']), '1');
  const [i] = correctImages(1) as [number];
  const got = await afterUpdate(page, async () => {
    await page.fill('#index', String(i));
    await page.press('#index', 'Enter');
  });
  assertSame(got, nodeResult(greyOf(i), 1), `test image ${i}, one thread`);
  assert.deepEqual(errors, []);
  await page.close();
});
