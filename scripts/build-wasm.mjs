// Builds the kernels twice: plain SIMD128, and relaxed SIMD (fused multiply-add), chosen at run time.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const asc = join(root, 'node_modules', 'assemblyscript', 'bin', 'asc.js');
mkdirSync(join(root, 'build'), { recursive: true });
execFileSync(process.execPath, [join(root, 'scripts', 'gen-infer-tiles.mjs')], { cwd: root, stdio: 'inherit' });

const common = [
  'assembly/index.ts', '-O3', '--runtime', 'stub', '--noAssert', '--use', 'abort=',
  '--importMemory', '--sharedMemory', '--initialMemory', '1', '--maximumMemory', '65536',
];
const variants = [
  { name: 'simd', features: 'simd,threads,bulk-memory' },
  { name: 'relaxed', features: 'simd,threads,bulk-memory,relaxed-simd' },
];
for (const v of variants) {
  const out = join('build', `parsimony-${v.name}.wasm`);
  execFileSync(process.execPath, [asc, ...common, '--enable', v.features, '-o', out], { cwd: root, stdio: 'inherit' });
  console.log(`built ${out}`);
}
