// Builds the native kernels (native/, binding.gyp) with node-gyp into build/Release/parsimony.node.
// Never fails the install: without a compiler, node-gyp or Node's headers, Parsimony runs on
// WebAssembly, and this says so in one line (node-gyp's output goes to build/native-build.log).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const addon = join(root, 'build', 'Release', 'parsimony.node');
const log = join(root, 'build', 'native-build.log');

/** node-gyp: the one npm runs scripts with, else npm's bundled copy, else an installed one. */
function nodeGyp() {
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm !== undefined && fromNpm !== '' && existsSync(fromNpm)) return fromNpm;
  const bundled = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  if (existsSync(bundled)) return bundled;
  try {
    return createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    return null;
  }
}

/** Where Node's headers are: npm's nodedir, else next to this node; null lets node-gyp look (it may download). */
function nodedir() {
  const fromNpm = process.env.npm_config_nodedir;
  if (fromNpm !== undefined && fromNpm !== '') return fromNpm;
  const prefix = join(dirname(process.execPath), '..');
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : null;
}

function fallback(reason) {
  rmSync(addon, { force: true });
  console.log(`parsimony: native kernels not built (${reason}); Parsimony runs on WebAssembly`);
  process.exit(0);
}

mkdirSync(join(root, 'build'), { recursive: true });
const gyp = nodeGyp();
if (gyp === null) fallback('node-gyp not found');
const dir = nodedir();
const flags = dir === null ? [] : [`--nodedir=${dir}`];
let output = '';
// configure + build, not rebuild: rebuild would delete build/, where the WebAssembly builds live too.
for (const step of ['configure', 'build']) {
  const cmd = gyp.endsWith('.js') ? process.execPath : gyp;
  const args = gyp.endsWith('.js') ? [gyp, step, ...flags] : [step, ...flags];
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', env: process.env });
  output += `$ node-gyp ${step} ${flags.join(' ')}\n${r.stdout ?? ''}${r.stderr ?? ''}\n`;
  writeFileSync(log, output);
  if (r.error !== undefined) fallback(`node-gyp ${step}: ${r.error.message}`);
  if (r.status !== 0) {
    const lines = `${r.stderr ?? ''}\n${r.stdout ?? ''}`.split('\n').map((l) => l.trim());
    const cause = lines.find((l) => /not found|No such file|error:/i.test(l) && !l.startsWith('gyp info')) ?? `exit code ${r.status}`;
    fallback(`node-gyp ${step} failed: ${cause.replace(/^gyp ERR! /, '')}; see build/native-build.log`);
  }
}
if (!existsSync(addon)) fallback(`node-gyp did not produce ${addon}`);
console.log('parsimony: built the native kernels (build/Release/parsimony.node)');
