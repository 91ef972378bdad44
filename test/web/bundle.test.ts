// The browser runtime bundle (web/vite.lib.config.ts): one ESM file that imports nothing but its own
// chunks, no Node built-in, the kernel builds emitted beside it; and it runs a model in Chromium.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, preview } from 'vite';
import { chromiumPath, launchChromium } from '../../web/node-harness.js';
import { CROSS_ORIGIN_ISOLATION } from '../../web/vite.config.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const LIB_CONFIG = join(ROOT, 'web', 'vite.lib.config.ts');
const MODEL = join(ROOT, 'models', 'fmnist-vgg5-lkam.safetensors');

/** Every module specifier in static imports, re-exports and dynamic imports with a literal. */
function specifiers(js: string): string[] {
  const out: string[] = [];
  for (const m of js.matchAll(/\b(?:import|export)\s*(?:[\w*{}\s,$]+?\s*from\s*)?["']([^"']+)["']|\bimport\s*\(\s*["']([^"']+)["']\s*\)/g)) out.push((m[1] ?? m[2]) as string);
  return out;
}

test('specifiers() finds static, re-exported and dynamic imports', () => {
  assert.deepEqual(specifiers('import a from "x";import{b as c}from"./y.js";export*from"node:fs";await import("z");import "./side.js"'), ['x', './y.js', 'node:fs', 'z', './side.js']);
});

test('the runtime bundle imports no Node module and runs a model file in Chromium', async () => {
  const outDir = mkdtempSync(join(tmpdir(), 'parsimony-lib-'));
  try {
    await build({ configFile: LIB_CONFIG, logLevel: 'warn', build: { outDir } });
    const files = readdirSync(outDir).sort();
    assert.deepEqual(files, ['parsimony-browser.js', 'parsimony-relaxed.wasm', 'parsimony-simd.wasm']);
    const js = readFileSync(join(outDir, 'parsimony-browser.js'), 'utf8');
    const foreign = specifiers(js).filter((s) => !s.startsWith('./'));
    assert.deepEqual(foreign, [], 'the bundle imports only its own chunks');
    assert.ok(!js.includes('__vite-browser-external'), 'no Node module was stubbed out by the bundler');

    if (chromiumPath() === null) return;
    copyFileSync(MODEL, join(outDir, 'model.safetensors'));
    writeFileSync(join(outDir, 'index.html'), `<!doctype html><script type="module">
import { init, fetchModel, compile } from './parsimony-browser.js';
try {
  const engine = await init();
  const { model, meta } = await fetchModel('./model.safetensors');
  model.eval();
  const plan = compile(model, { inputShape: meta.inputShape, maxBatch: 2 });
  const out = plan.run(new Float32Array(2 * 784).fill(0.5));
  const t = plan.telemetry();
  window.result = { backend: engine.backend.name, threads: engine.backend.threads, outputs: out.length, macs: Array.from(t.macs), dense: t.denseMacs, gated: t.layers.filter((l) => l.onKernels !== null).length };
} catch (e) { window.result = { error: String(e && e.stack || e) }; }
</script>`);
    const server = await preview({ root: outDir, configFile: false, logLevel: 'warn', build: { outDir }, preview: { host: '127.0.0.1', port: 0, headers: CROSS_ORIGIN_ISOLATION } });
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      await page.goto(server.resolvedUrls?.local[0] ?? '');
      await page.waitForFunction(() => 'result' in window, null, { timeout: 30_000 });
      const r = await page.evaluate(() => (window as unknown as { result: Record<string, unknown> }).result);
      assert.equal(r['error'], undefined, String(r['error']));
      assert.match(String(r['backend']), /^wasm-(relaxed|simd)$/);
      assert.equal(r['outputs'], 20);
      assert.ok((r['threads'] as number) >= 1);
      assert.ok((r['gated'] as number) > 0);
      for (const m of r['macs'] as number[]) assert.ok(m > 0 && m <= (r['dense'] as number) * 1.05);
    } finally {
      await browser.close();
      await server.close();
    }
  } finally {
    rmSync(outDir, { recursive: true, force: true });
  }
});
