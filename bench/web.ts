/**
 * `npm run bench -- web`: the demo page's two plans in headless Chromium (the parsimonious plan,
 * which skips switched-off kernels, and the dense twin of the same model), at batch 1, on one thread
 * and on every core the page is given, and in the same page the peers on the dense twin:
 * onnxruntime-web (wasm, as many threads as the page's plans) and tfjs-wasm (one thread, in the
 * one-thread page). One sample is a pass over the first test images: its time per image; passes of
 * the two plans alternate, the peers' follow. Every peer's outputs on the first image are checked
 * against the dense plan's. Prints a table and writes bench/results/web.json.
 */
import { join } from 'node:path';
import { buildAndServeDemo, launchChromium } from '../web/node-harness.js';
import type { BenchRequest, BenchSamples } from '../web/demo.js';
import type { PeerRequest, PeerRun, PeerSamples } from '../web/peers.js';
import { contentionLine, environment, printTable, ROOT, round, spreadText, summarize, verifyOutputs, writeResults, type Bench, type BenchOptions, type Cell } from './harness.js';
import { loadParsimony, tfjsLayers } from './model.js';

/** The shipped model, as the page loads it. */
const MODEL = join(ROOT, 'models', 'fmnist-vgg5-lkam.safetensors');

/** The dense twin of the shipped model as ONNX and as tfjs layers, and its outputs on one image (the peers' check). */
async function peerModels(): Promise<{ onnx: string; input: string; output: string; tfjs: PeerRequest['tfjs'] }> {
  const p = await loadParsimony();
  const { exportOnnx } = await import('../src/onnx.js');
  const e = await p.Engine.create({ backend: 'wasm', threads: 1 });
  p.setEngine(e);
  try {
    const loaded = p.loadModel(MODEL);
    const dense = p.denseTwin(loaded.model, loaded.meta.inputShape);
    dense.eval();
    const ex = exportOnnx(dense, { inputShape: loaded.meta.inputShape });
    return { onnx: Buffer.from(ex.bytes).toString('base64'), input: ex.input, output: ex.output, tfjs: tfjsLayers(p, dense) };
  } finally {
    e.close();
  }
}



const IMAGES = 100;
const QUICK_IMAGES = 20;

export const webBench: Bench = {
  name: 'web',
  description: 'the demo page in headless Chromium: parsimonious vs dense plan of the shipped model, batch 1, median ms per image',
  defaults: { warmup: 3, reps: 20 },
  quick: { warmup: 1, reps: 3 },
  async run(options: BenchOptions) {
    const peerModel = await peerModels();
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
      const peerRows: Array<PeerSamples & { pageThreads: number; agreement: number }> = [];
      for (const threads of [...new Set([1, cores])]) {
        const page = await browser.newPage();
        await page.goto(`${served.url}?threads=${threads}`);
        await page.waitForFunction(() => document.body.dataset['state'] !== 'loading', null, { timeout: 60_000 });
        const state = await page.evaluate(() => [document.body.dataset['state'], document.querySelector('#status')?.textContent ?? '']);
        if (state[0] !== 'ready') throw new Error(`the demo page did not start: ${state[1]}`);
        runs.push(await page.evaluate((r) => (globalThis as unknown as { parsimonyBench: (q: BenchRequest) => BenchSamples }).parsimonyBench(r), request));
        const q: PeerRequest = { ...peerModel, tfjs: threads === 1 ? peerModel.tfjs : [], ortThreads: [threads], warmup: options.warmup, reps: options.reps };
        const peerRun = await page.evaluate(([r, pq]) => (globalThis as unknown as { parsimonyPeers: (a: BenchRequest, b: PeerRequest) => Promise<PeerRun> }).parsimonyPeers(r, pq), [request, q] as const);
        for (const ps of peerRun.samples) {
          const agreement = verifyOutputs(`${ps.engine} (${ps.threads} thread(s))`, Float32Array.from(ps.first), Float32Array.from(peerRun.reference), 'our dense plan in the same page').relative;
          peerRows.push({ ...ps, pageThreads: threads, agreement });
        }
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
      const peers = peerRows.map((ps) => {
        const t = summarize([...ps.samples]);
        const ours = runs.find((r) => r.threads === ps.pageThreads);
        const ratio = ours === undefined ? null : t.median / summarize(ours.parsimonious).median;
        rows.push([ps.threads, `dense, ${ps.engine}`, ps.backend, round(t.median, 4), spreadText(t), round((ours?.denseMacs ?? 0) / 1e6, 2), null]);
        return { engine: ps.engine, backend: ps.backend, threads: ps.threads, page_threads: ps.pageThreads, ...t, samples: ps.samples, verified_relative_diff: Number(ps.agreement.toExponential(3)),
          over_ours_parsimonious: ratio === null ? null : round(ratio, 3) };
      });
      printTable(`demo page in ${version}, batch 1, ${request.images.length} test images, ms per image (median of ${options.reps} passes)`,
        ['threads', 'plan', 'kernels', 'median ms', 'spread', 'M MACs', 'dense ÷ parsimonious'], rows);
      const ratios: Array<[string, number | null]> = peers.map((p) => [`${p.engine} (${p.threads} thread${p.threads === 1 ? '' : 's'}) ÷ ours parsimonious, same page`,
        p.over_ours_parsimonious]);
      printTable('speed ratios, same run (median time of the peer ÷ median time of our parsimonious plan; above 1 ours is faster)', ['ratio', 'value'], ratios);
      const env = environment(options, ['vite', 'playwright-core', 'onnxruntime-web', '@tensorflow/tfjs-core', '@tensorflow/tfjs-backend-wasm'], {
        browser: version, budget: request.budget, images: request.images.length,
        peers: 'onnxruntime-web (wasm execution provider, SIMD, threads as the page) and tfjs-wasm (one thread) on the dense twin exported by src/io (ONNX) and folded into tfjs layers, timed after our plans in the same page; binaries from the page build',
      });
      console.log(contentionLine(env));
      console.log(`wrote ${writeResults('web', { environment: env, results, peers, ratios: Object.fromEntries(ratios) })}`);
    } finally {
      await browser.close();
      await served.close();
    }
  },
};
