// The install without a C compiler: the install script (scripts/build-native.mjs), run in a scratch copy
// of the sources with CC and CXX pointing at a compiler that does not exist, must exit 0 and say in one
// line that Parsimony runs on WebAssembly; then, with this checkout's addon moved aside, the CLI must say
// so once on stderr (stdout stays clean JSON) and a small test set must pass on WebAssembly.
//
//   node scripts/test-no-compiler.mjs        (CI, after npm ci and npm test)
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ADDON = join(ROOT, 'build', 'Release', 'parsimony.node');
const FALLBACK = /^parsimony: native kernels not built \(.+\); Parsimony runs on WebAssembly$/m;
const TESTS = ['test/backend/', 'test/conformance/gemm', 'test/infer/skip'];

function fail(what) {
  process.stderr.write(`no-compiler test FAILED: ${what}\n`);
  process.exitCode = 1;
}

function run(cmd, argv, cwd, env = {}) {
  return spawnSync(cmd, argv, { cwd, encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
}

// ---- the install script with the compiler hidden from node-gyp
const scratch = mkdtempSync(join(tmpdir(), 'parsimony-no-compiler-'));
try {
  for (const f of ['package.json', 'binding.gyp', 'native', 'scripts/build-native.mjs']) cpSync(join(ROOT, f), join(scratch, f), { recursive: true });
  mkdirSync(join(scratch, 'node_modules'));
  symlinkSync(join(ROOT, 'node_modules', 'node-addon-api'), join(scratch, 'node_modules', 'node-addon-api'));
  const missing = join(scratch, 'no-such-compiler');
  const r = run(process.execPath, ['scripts/build-native.mjs'], scratch, { CC: missing, CXX: missing, LINK: missing });
  if (r.status !== 0) fail(`the install script exited ${r.status ?? r.signal} without a compiler (it must never fail the install)\n${r.stdout}${r.stderr}`);
  else if (!FALLBACK.test(r.stdout) || r.stdout.trim().split('\n').length !== 1) fail(`the install script should print one fallback line, printed:\n${r.stdout}`);
  else if (existsSync(join(scratch, 'build', 'Release', 'parsimony.node'))) fail('the install script left an addon behind after a failed build');
  else process.stdout.write(`no-compiler test: install script without a compiler: ${r.stdout.trim()}\n`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

// ---- this checkout without its addon
const aside = `${ADDON}.aside`;
const hadAddon = existsSync(ADDON);
if (hadAddon) renameSync(ADDON, aside);
try {
  const info = run(process.execPath, ['--import', 'tsx', 'src/cli/bin.ts', 'info', 'models/fmnist-vgg5-lkam.safetensors', '--json'], ROOT);
  const notes = info.stderr.split('\n').filter((l) => l.startsWith('parsimony: running on WebAssembly: '));
  if (info.status !== 0) fail(`parsimony info exited ${info.status ?? info.signal} without the addon\n${info.stderr}`);
  else if (notes.length !== 1) fail(`parsimony info should say once on stderr that it runs on WebAssembly; stderr was:\n${info.stderr}`);
  else {
    try {
      JSON.parse(info.stdout);
      process.stdout.write(`no-compiler test: the CLI says, once, on stderr: ${notes[0]}\n`);
    } catch {
      fail(`parsimony info --json printed something other than JSON on stdout:\n${info.stdout.slice(0, 400)}`);
    }
  }
  const t = spawnSync(process.execPath, ['scripts/run-tests.mjs', ...TESTS], { cwd: ROOT, stdio: 'inherit' });
  if (t.status !== 0) fail(`the tests ${TESTS.join(' ')} failed without the addon`);
  else process.stdout.write(`no-compiler test: ${TESTS.join(' ')} pass on WebAssembly\n`);
} finally {
  if (hadAddon) renameSync(aside, ADDON);
}
