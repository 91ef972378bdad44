import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { cli, explain, QUICK, ROOT } from '../cli/helpers.js';

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
/** Screenshots are kept for people to look at (runs/ is ignored by git). */
const ARTIFACTS = join(ROOT, 'runs', 'test-artifacts');

async function ok(args: string[]): Promise<void> {
  const r = await cli(args);
  assert.equal(r.code, 0, explain(args, r));
}

interface PlotCheck {
  readonly id: string;
  readonly svgs: number;
  readonly width: number;
  readonly height: number;
  /** Mark items drawn (paths, lines, texts inside vega's role-mark groups). */
  readonly marks: number;
  /** Of those, items with geometry (a non-empty path or a positive-size box). */
  readonly visible: number;
}

describe('parsimony report: a sparsity sweep rendered in headless Chromium', { skip: existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (install Debian's chromium, or set CHROMIUM_PATH)` }, () => {
  let dir = '';
  let sweep = '';
  let browser: Browser | null = null;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'parsimony-report-'));
    sweep = join(dir, 'sweep');
    const train = (w: string): string[] => ['train', ...QUICK, '--epochs', '2', '--lkam', '--sparsity', w, '--ramp', '0', '--layers', 'all-but-first', '--out', join(sweep, `w${w}`), '--quiet'];
    await Promise.all([ok(train('0.5')), ok(train('3'))]);
    const main = join(sweep, 'w0.5');
    await ok(['eval', main, '--thresholds', '0,0.2', '--budgets', '1,0.5,0.25', '--threads', '1', '--quiet']);
    await ok(['bench', main, '--reps', '3', '--warmup', '1', '--rounds', '1', '--batch', '16', '--no-ort', '--quiet']);
    await ok(['report', sweep]);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  });
  after(async () => {
    await browser?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('every plot renders, the thumbnails load, and the page requests nothing', async () => {
    const file = join(sweep, 'report.html');
    const html = readFileSync(file, 'utf8');
    assert.doesNotMatch(html, /<script/i, 'no scripts');
    const page = await browser!.newPage({ viewport: { width: 1200, height: 900 } });
    const requests: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith('file:') && !r.url().startsWith('data:')) requests.push(r.url());
    });
    await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'report-sweep.png'), fullPage: true });

    const plots: PlotCheck[] = await page.$$eval('figure.plot', (figures) => figures.map((f) => {
      const svg = f.querySelector('svg');
      const box = svg?.getBoundingClientRect();
      const items = Array.from(f.querySelectorAll('svg g[class*="role-mark"] > *'));
      const visible = items.filter((el) => {
        const d = el.getAttribute('d');
        if (d !== null) return d.length > 2;
        const b = el.getBoundingClientRect();
        return b.width > 0 || b.height > 0;
      });
      return { id: f.id, svgs: f.querySelectorAll('svg').length, width: box?.width ?? 0, height: box?.height ?? 0, marks: items.length, visible: visible.length };
    }));
    const ids = plots.map((p) => p.id);
    assert.deepEqual(ids, ['curve-loss', 'curve-accuracy', 'curve-compute', 'heatmap-0', 'heatmap-1', 'heatmap-2', 'heatmap-3', 'macs-histogram', 'macs-per-class', 'knob-curve', 'sweep-curve']);
    for (const p of plots) {
      assert.equal(p.svgs, 1, `${p.id}: one SVG`);
      assert.ok(p.width > 100 && p.height > 50, `${p.id}: drawn at ${p.width}x${p.height}`);
      assert.ok(p.visible > 0, `${p.id}: ${p.visible} visible marks of ${p.marks}`);
    }
    const rectsIn = (id: string): Promise<number> => page.$eval(`#${id}`, (f) => f.querySelectorAll('g.mark-rect.role-mark > path').length);
    assert.equal(await rectsIn('heatmap-0'), 8 * 10, 'one cell per kernel and class (8 kernels x 10 classes)');
    assert.equal(await rectsIn('heatmap-3'), 32 * 10);
    const sweepPoints = await page.$eval('#sweep-curve', (f) => f.querySelectorAll('g.mark-symbol.role-mark > path').length);
    assert.equal(sweepPoints, 2, 'one point per run of the sweep');
    const knobPoints = await page.$eval('#knob-curve', (f) => f.querySelectorAll('g.mark-symbol.role-mark > path').length);
    assert.equal(knobPoints, 7, 'the default operating point, then one point per knob setting (2 thresholds x 3 budgets)');

    const images = await page.$$eval('.thumb img', (imgs) => imgs.map((i) => (i as HTMLImageElement).naturalWidth));
    assert.equal(images.length, 16);
    assert.ok(images.every((w) => w === 84), `thumbnails decoded at 84 px: ${images.join(',')}`);
    assert.equal(await page.$$eval('#bench-table tbody tr', (r) => r.length), 4, 'bench table: skipping and dense twin at two batches');
    assert.equal(await page.$$eval('#runs-table tbody tr', (r) => r.length), 2, 'runs table: both runs of the sweep');
    assert.deepEqual(requests, [], 'the page loads nothing from the network');
    await page.close();
  });
});
