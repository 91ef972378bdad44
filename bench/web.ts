/**
 * `npm run bench -- web`: the demo page's two plans in headless Chromium (the parsimonious plan,
 * which skips switched-off kernels, and the dense twin of the same model), at batch 1, on one thread
 * and on every core the page is given. One sample is a pass over the first test images: its time per
 * image; passes of the two plans alternate. Prints a table and writes bench/results/web.json.
 */
import { buildAndServeDemo, launchChromium } from '../web/node-harness.js';
import type { BenchRequest, BenchSamples } from '../web/demo.js';
import { contentionLine, environment, printTable, round, spreadText, summarize, writeResults, type Bench, type BenchOptions, type Cell } from './harness.js';

const IMAGES = 100;
const QUICK_IMAGES = 20;

export const webBench: Bench = {
  name: 'web',
  description: 'the demo page in headless Chromium: parsimonious vs dense plan of the shipped model, batch 1, median ms per image',
  defaults: { warmup: 3, reps: 20 },
  quick: { warmup: 1, reps: 3 },
  async run(options: BenchOptions) {
    const served = await buildAndServeDemo();
    const browser = await launchChromium();
    try {
      const request: BenchRequest = { images: Array.from({ length: options.quick ? QUICK_IMAGES : IMAGES }, (_, i) => i), budget: 1, warmup: options.warmup, reps: options.reps };
      const cores = await (async () => {
        const page = await browser.newPage();
        await page.goto('about:blank');
        const n = await page.evaluate(() => navigator.hardwareConcurrency);
        await page.close();
        return n;
      })();
      const runs: BenchSamples[] = [];
      for (const threads of [...new Set([1, cores])]) {
        const page = await browser.newPage();
        await page.goto(`${served.url}?threads=${threads}`);
        await page.waitForFunction(() => document.body.dataset['state'] !== 'loading', null, { timeout: 60_000 });
        const state = await page.evaluate(() => [document.body.dataset['state'], document.querySelector('#status')?.textContent ?? '']);
        if (state[0] !== 'ready') throw new Error(`the demo page did not start: ${state[1]}`);
        runs.push(await page.evaluate((r) => (globalThis as unknown as { parsimonyBench: (q: BenchRequest) => BenchSamples }).parsimonyBench(r), request));
        await page.close();
      }
      const version = browser.version();
      const rows: Cell[][] = [];
      const results = runs.map((r) => {
        const sparse = summarize(r.parsimonious);
        const dense = summarize(r.dense);
        const speedup = dense.median / sparse.median;
        const macReduction = r.denseMacs / r.meanMacs;
        rows.push([r.threads, 'dense', r.backend, round(dense.median, 4), spreadText(dense), round(r.denseMacs / 1e6, 2), null]);
        rows.push([r.threads, 'parsimonious', r.backend, round(sparse.median, 4), spreadText(sparse), round(r.meanMacs / 1e6, 2), round(speedup, 2)]);
        return {
          threads: r.threads, backend: r.backend, cross_origin_isolated: r.crossOriginIsolated, images: r.images,
          dense: { ...dense, samples: r.dense }, parsimonious: { ...sparse, samples: r.parsimonious },
          dense_macs: r.denseMacs, mean_macs: r.meanMacs, mac_reduction: round(macReduction, 3),
          speedup: round(speedup, 3), realisation: round(speedup / macReduction, 3),
        };
      });
      printTable(`demo page in ${version}, batch 1, ${request.images.length} test images, ms per image (median of ${options.reps} passes)`,
        ['threads', 'plan', 'kernels', 'median ms', 'spread', 'M MACs', 'dense ÷ parsimonious'], rows);
      const env = environment(options, ['vite', 'playwright-core'], { browser: version, budget: request.budget, images: request.images.length });
      console.log(contentionLine(env));
      console.log(`wrote ${writeResults('web', { environment: env, results })}`);
    } finally {
      await browser.close();
      await served.close();
    }
  },
};
