// The package as users get it: `npm pack`, the tarball installed into a scratch project from the npm
// cache only (a lock file built from this repo's, so no registry metadata is needed), then the README's
// Node example as .mjs and as .ts (tsx), a strict type check of the README examples without
// skipLibCheck, `npx parsimony info` on the shipped model, an inference-only install without the
// optional packages, and a Vite page importing `parsimony/browser` in headless Chromium.
//
//   node scripts/test-package.mjs            the test (CI); exits 1 on the first failure
//   node scripts/test-package.mjs --sizes    also the tarball size and the install sizes, inference-only and full
//   node scripts/test-package.mjs --keep     leaves the scratch folder (printed) for inspection
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const args = new Set(process.argv.slice(2));
const SIZES = args.has('--sizes');
const KEEP = args.has('--keep');
/** Packages the scratch project takes from this repo's lock besides the tarball: the tools of the test. */
const TOOLS = ['vite', 'tsx', 'typescript', 'playwright-core', '@types/node'];
const CHROMIUM = process.env.PARSIMONY_CHROMIUM ?? '/usr/bin/chromium';
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const t0 = performance.now();

function step(what) {
  process.stdout.write(`package test: ${what} (${((performance.now() - t0) / 1000).toFixed(1)} s)\n`);
}

function fail(what) {
  process.stderr.write(`package test FAILED: ${what}\n(the scratch folder ${scratch} is kept for inspection)\n`);
  process.exit(1);
}

/** Runs a command; its output is shown only when it fails (or returned). */
function run(cmd, argv, cwd, env = {}) {
  const r = spawnSync(cmd, argv, { cwd, encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
  if (r.status !== 0) fail(`${cmd} ${argv.join(' ')} (in ${cwd}) exited ${r.status ?? r.signal}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** The ```lang block that follows `marker` in the README. */
function readmeBlock(marker, lang) {
  const at = README.indexOf(marker);
  if (at < 0) fail(`README.md has no "${marker}"`);
  const open = README.indexOf('```' + lang + '\n', at);
  const close = README.indexOf('\n```', open + 4);
  if (open < 0 || close < 0) fail(`README.md has no \`\`\`${lang} block after "${marker}"`);
  return README.slice(open + lang.length + 4, close + 1);
}

function duBytes(dir) {
  let total = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const s = statSync(p, { throwIfNoEntry: false });
    if (s === undefined) continue;
    total += s.isDirectory() && !s.isSymbolicLink() ? duBytes(p) : s.size;
  }
  return total;
}

const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB (${bytes} bytes)`;

// ---- the tarball
const scratch = mkdtempSync(join(tmpdir(), 'parsimony-package-'));
for (const f of ['dist/index.js', 'dist/browser/index.js', 'build/parsimony-simd.wasm', 'build/parsimony-relaxed.wasm']) {
  if (!existsSync(join(ROOT, f))) fail(`${f} is missing: build first (npm ci, or npm run build)`);
}
const packed = JSON.parse(run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', scratch], ROOT))[0];
const tarball = join(scratch, packed.filename);
const shipped = packed.files.map((f) => f.path);
step(`packed ${packed.filename}: ${shipped.length} files, ${mb(packed.size)} packed, ${mb(packed.unpackedSize)} unpacked`);
for (const need of ['build/parsimony-simd.wasm', 'build/parsimony-relaxed.wasm', 'dist/index.js', 'dist/index.d.ts', 'dist/browser/index.js', 'dist/browser/index.d.ts', 'dist/onnx.js', 'dist/cli/bin.js', 'models/fmnist-vgg5-lkam.safetensors', 'data/fashion-mnist-subset/t10k-images-idx3-ubyte.gz', 'LICENSE', 'README.md']) {
  if (!shipped.includes(need)) fail(`the tarball lacks ${need}`);
}
const stray = shipped.filter((p) => !/^(dist\/|build\/parsimony-(simd|relaxed)\.wasm$|data\/fashion-mnist-subset\/|models\/|native\/|binding\.gyp$|scripts\/build-native\.mjs$|LICENSE$|README\.md$|package\.json$)/.test(p) || p.endsWith('.map') || p.endsWith('.test.js'));
if (stray.length > 0) fail(`the tarball ships files it should not: ${stray.slice(0, 10).join(', ')}`);

// ---- a lock file for a scratch project, from this repo's lock: every tarball is in the npm cache after `npm ci`
const repoLock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')).packages;
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const integrity = `sha512-${createHash('sha512').update(readFileSync(tarball)).digest('base64')}`;

/** The lock path that `name` resolves to from the package at lock path `from` (node's upward search). */
function resolveIn(from, name) {
  for (let base = from; ; base = base.slice(0, Math.max(0, base.lastIndexOf('/node_modules/')))) {
    const p = base === '' ? `node_modules/${name}` : `${base}/node_modules/${name}`;
    if (repoLock[p] !== undefined) return p;
    if (base === '') return null;
  }
}

/** The lock file installing `roots` (name -> version spec): entries reached by required edges only are not optional. */
function scratchLock(roots) {
  const entries = new Map();
  const required = new Set();
  const edges = (entry) => {
    const peersOptional = entry.peerDependenciesMeta ?? {};
    return [
      ...Object.keys(entry.dependencies ?? {}).map((n) => [n, true]),
      ...Object.keys(entry.peerDependencies ?? {}).filter((n) => peersOptional[n]?.optional !== true).map((n) => [n, true]),
      ...Object.keys(entry.optionalDependencies ?? {}).map((n) => [n, false]),
    ];
  };
  const walk = (path, entry, isRequired) => {
    if (isRequired) required.add(path);
    for (const [name, req] of edges(entry)) {
      const p = name === 'parsimony' ? 'node_modules/parsimony' : resolveIn(path === 'node_modules/parsimony' ? '' : path, name);
      if (p === null) {
        if (req) fail(`${name} (needed by ${path || 'the scratch project'}) is not in package-lock.json`);
        continue;
      }
      const seen = entries.has(p);
      if (!seen) entries.set(p, p === 'node_modules/parsimony' ? parsimonyEntry : repoLock[p]);
      if (!seen || (isRequired && req && !required.has(p))) walk(p, entries.get(p), isRequired && req);
    }
  };
  const parsimonyEntry = {
    version: pkg.version, resolved: `file:${packed.filename}`, integrity, license: pkg.license,
    dependencies: pkg.dependencies, optionalDependencies: pkg.optionalDependencies,
    peerDependencies: pkg.peerDependencies, peerDependenciesMeta: pkg.peerDependenciesMeta,
    bin: pkg.bin, engines: pkg.engines, ...(pkg.scripts?.install === undefined ? {} : { hasInstallScript: true }),
  };
  walk('', { dependencies: roots }, true);
  const packages = { '': { name: 'scratch', dependencies: roots } };
  for (const [p, e] of [...entries].sort(([a], [b]) => a.localeCompare(b))) {
    const { dev, devOptional, peer, optional, ...rest } = e;
    packages[p] = required.has(p) ? rest : { ...rest, optional: true };
  }
  return { name: 'scratch', lockfileVersion: 3, requires: true, packages };
}

function scratchProject(dir, roots) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'scratch', private: true, type: 'module', dependencies: roots, allowScripts: { ...pkg.allowScripts, parsimony: true } }, null, 2));
  writeFileSync(join(dir, 'package-lock.json'), JSON.stringify(scratchLock(roots), null, 2));
}

function install(dir, extra = []) {
  run('npm', ['ci', '--offline', '--no-audit', '--no-fund', '--loglevel=error', ...extra], dir, { ONNXRUNTIME_NODE_INSTALL: 'skip' });
}

const parsimonySpec = `file:${packed.filename}`;
const toolSpecs = Object.fromEntries(TOOLS.map((t) => {
  const e = repoLock[`node_modules/${t}`];
  if (e === undefined) fail(`${t} is not in package-lock.json`);
  return [t, e.version];
}));

// ---- inference-only install: no optional packages; the README's Node example must still run
const lean = join(scratch, 'lean');
scratchProject(lean, { parsimony: parsimonySpec });
execFileSync('cp', [tarball, lean]);
install(lean, ['--omit=optional']);
const leanBytes = duBytes(join(lean, 'node_modules'));
step(`inference-only install (--omit=optional): ${mb(leanBytes)} in node_modules`);
const nodeExample = readmeBlock('<!-- package-test: node example -->', 'js');
writeFileSync(join(lean, 'example.mjs'), nodeExample);
const leanOut = run(process.execPath, ['example.mjs'], lean);
if (!/^predicted .+, label .+$/m.test(leanOut)) fail(`the README's Node example printed no prediction without the optional packages:\n${leanOut}`);
const noCli = spawnSync(join(lean, 'node_modules/.bin/parsimony'), ['info', 'x'], { cwd: lean, encoding: 'utf8' });
if (noCli.status !== 3 || !/the command line needs the package commander, which is not installed \(npm install commander\)/.test(noCli.stderr)) {
  fail(`parsimony without commander: expected exit 3 and a line naming commander, got ${noCli.status}: ${noCli.stderr}`);
}
writeFileSync(join(lean, 'onnx.mjs'), "await import('parsimony/onnx');\n");
const noOnnx = spawnSync(process.execPath, ['onnx.mjs'], { cwd: lean, encoding: 'utf8' });
if (noOnnx.status === 0 || !/MissingPackageError: ONNX import and export needs the package onnx-proto, which is not installed \(npm install onnx-proto\)/.test(noOnnx.stderr)) {
  fail(`parsimony/onnx without onnx-proto: expected a MissingPackageError naming onnx-proto, got:\n${noOnnx.stderr}`);
}
step('inference-only: the Node example runs; the CLI and parsimony/onnx name their missing packages');

// ---- full install with the test's tools
const app = join(scratch, 'app');
scratchProject(app, { parsimony: parsimonySpec, ...toolSpecs });
execFileSync('cp', [tarball, app]);
install(app);
step('full install with the tools (vite, tsx, typescript, playwright-core)');
if (SIZES) {
  const full = join(scratch, 'full');
  scratchProject(full, { parsimony: parsimonySpec });
  execFileSync('cp', [tarball, full]);
  install(full);
  step(`full install (optional packages included): ${mb(duBytes(join(full, 'node_modules')))} in node_modules`);
}

writeFileSync(join(app, 'example.mjs'), nodeExample);
const out = run(process.execPath, ['example.mjs'], app);
const prediction = /^predicted (.+), label (.+)$/m.exec(out);
if (prediction === null) fail(`the README's Node example printed no prediction:\n${out}`);
writeFileSync(join(app, 'example.ts'), nodeExample);
writeFileSync(join(app, 'short-example.ts'), `${readmeBlock('## A short example', 'ts')}\n${readmeBlock('Kernel switches are one call away', 'ts')}\nconsole.log(\`loss \${loss.toFixed(4)}, correct \${correct}, gates \${gated.modules().length}\`);\nengine.close();\n`);
const tsOut = run(join(app, 'node_modules/.bin/tsx'), ['example.ts'], app);
if (!tsOut.includes(prediction[0])) fail(`example.ts (tsx) printed ${tsOut}, example.mjs ${prediction[0]}`);
const shortOut = run(join(app, 'node_modules/.bin/tsx'), ['short-example.ts'], app);
if (!/^loss \d/m.test(shortOut)) fail(`the README's short example printed ${shortOut}`);
writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
  compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, skipLibCheck: false, noEmit: true, types: ['node'], lib: ['ES2022'] },
  files: ['example.ts', 'short-example.ts'],
}, null, 2));
run(join(app, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.json'], app);
writeFileSync(join(app, 'browser-types.ts'), "import { init, fetchModel, compile } from 'parsimony/browser';\nexport const api = { init, fetchModel, compile };\n");
writeFileSync(join(app, 'tsconfig.browser.json'), JSON.stringify({
  compilerOptions: { target: 'ES2022', module: 'ESNext', moduleResolution: 'Bundler', strict: true, skipLibCheck: false, noEmit: true, types: [], lib: ['ES2022', 'DOM'] },
  files: ['browser-types.ts'],
}, null, 2));
run(join(app, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.browser.json'], app);
step(`README examples: .mjs and .ts (tsx) print "${prediction[0]}"; strict type check without skipLibCheck (Node, and parsimony/browser without Node types)`);

const info = run('npx', ['--offline', 'parsimony', 'info', 'node_modules/parsimony/models/fmnist-vgg5-lkam.safetensors'], app);
if (!/LKAM/.test(info) || !/multiply-adds|MACs/i.test(info)) fail(`npx parsimony info printed:\n${info}`);
step('npx parsimony info on the shipped model');
const bench = run('npx', ['--offline', 'parsimony', 'bench', 'node_modules/parsimony/models/fmnist-vgg5-lkam.safetensors', '--batch', '4', '--reps', '3', '--warmup', '1', '--rounds', '1', '--threads', '1'], app);
if (!/^batch 1: .* faster than /m.test(bench) || !/onnxruntime-node: not installed, so not timed/.test(bench) || /\bnull\b/.test(bench)) fail(`npx parsimony bench (no onnxruntime-node) printed:\n${bench}`);
step('npx parsimony bench says which plan is faster, and that onnxruntime-node is not installed');

// ---- a page importing parsimony/browser, bundled by Vite, run in headless Chromium
const page = join(app, 'page');
mkdirSync(join(page, 'public'), { recursive: true });
writeFileSync(join(page, 'case.mjs'), `
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { init, loadModel, loadFashionMnist, compile } from 'parsimony';
const engine = await init({ threads: 1 });
const { model, meta } = loadModel(fileURLToPath(import.meta.resolve('parsimony/models/fmnist-vgg5-lkam.safetensors')));
const plan = compile(model, { inputShape: meta.inputShape, maxBatch: 1 });
const test = loadFashionMnist().test;
const cases = [];
for (let i = 0; i < 8; i++) {
  const { pixels, label } = test.item(i);
  const x = Float32Array.from(pixels, (v) => (v / 255 - 0.286) / 0.353);
  cases.push({ x: Array.from(x), label, logits: Array.from(plan.run(x)) });
}
writeFileSync('public/cases.json', JSON.stringify(cases));
engine.close();
`);
run(process.execPath, ['case.mjs'], page);
writeFileSync(join(page, 'index.html'), '<!doctype html><meta charset="utf-8"><title>parsimony package test</title><script type="module" src="./main.js"></script>\n');
writeFileSync(join(page, 'main.js'), `
import { init, fetchModel, compile } from 'parsimony/browser';
import * as root from 'parsimony';
import modelUrl from 'parsimony/models/fmnist-vgg5-lkam.safetensors?url';
try {
  const cases = await (await fetch('./cases.json')).json();
  await init();
  const { model, meta } = await fetchModel(modelUrl);
  const plan = compile(model, { inputShape: meta.inputShape, maxBatch: 1 });
  const logits = cases.map((c) => Array.from(plan.run(Float32Array.from(c.x))));
  window.__result = { logits, rootIsBrowser: root.compile === compile };
} catch (e) {
  window.__result = { error: String(e && e.stack || e) };
}
`);
writeFileSync(join(page, 'vite.config.mjs'), `
import { builtinModules } from 'node:module';
const NODE = new Set([...builtinModules, ...builtinModules.map((m) => 'node:' + m)]);
export default {
  logLevel: 'error',
  build: { target: 'es2022', assetsInlineLimit: 0 },
  plugins: [{
    name: 'no-node-modules', enforce: 'pre',
    resolveId(id, importer) { if (NODE.has(id)) this.error(\`\${importer} imports the Node module \${id}\`); return null; },
  }],
};
`);
run(join(app, 'node_modules/.bin/vite'), ['build', '--config', 'vite.config.mjs'], page);
const assets = readdirSync(join(page, 'dist', 'assets'));
if (assets.filter((a) => a.endsWith('.wasm')).length !== 2) fail(`the Vite build emitted ${assets.join(', ')}: expected both kernel builds`);
step(`Vite bundled parsimony/browser and parsimony (browser condition) with no Node module: ${assets.join(', ')}`);

const browserCheck = join(page, 'browser.mjs');
writeFileSync(browserCheck, `
import { preview } from 'vite';
import { chromium } from 'playwright-core';
const server = await preview({ configFile: 'vite.config.mjs', preview: { port: 0, host: '127.0.0.1' } });
const url = server.resolvedUrls.local[0];
const browser = await chromium.launch({ executablePath: ${JSON.stringify(CHROMIUM)}, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
try {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(url);
  await page.waitForFunction(() => window.__result !== undefined, null, { timeout: 60000 });
  process.stdout.write(JSON.stringify({ ...(await page.evaluate(() => window.__result)), errors }));
} finally {
  await browser.close();
  await server.close();
}
`);
if (!existsSync(CHROMIUM)) fail(`no Chromium at ${CHROMIUM} (install Debian's chromium or set PARSIMONY_CHROMIUM)`);
const shown = JSON.parse(run(process.execPath, ['browser.mjs'], page));
if (shown.error !== undefined || shown.errors.length > 0) fail(`the page failed: ${shown.error ?? shown.errors.join('\n')}`);
if (shown.rootIsBrowser !== true) fail("a bundler given import 'parsimony' did not pick the browser entry");
const cases = JSON.parse(readFileSync(join(page, 'public', 'cases.json'), 'utf8'));
const argmax = (v) => v.reduce((b, x, i) => (x > v[b] ? i : b), 0);
let agree = 0;
let correct = 0;
let maxDiff = 0;
cases.forEach((c, i) => {
  const got = shown.logits[i];
  if (argmax(got) === argmax(c.logits)) agree++;
  if (argmax(got) === c.label) correct++;
  for (let k = 0; k < got.length; k++) maxDiff = Math.max(maxDiff, Math.abs(got[k] - c.logits[k]));
});
if (agree !== cases.length || maxDiff > 1e-3) fail(`Chromium and Node disagree: ${agree}/${cases.length} same predictions, largest logit difference ${maxDiff}`);
if (correct < cases.length - 2) fail(`the shipped model got ${correct} of ${cases.length} test images right in Chromium`);
step(`headless Chromium: ${cases.length} test images, same predictions as Node (largest logit difference ${maxDiff.toExponential(1)}), ${correct} correct`);

if (KEEP) process.stdout.write(`package test: scratch folder ${scratch}\n`);
else spawnSync('rm', ['-rf', scratch]);
step('passed');
