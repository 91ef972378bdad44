// What each entry loads: the inference runtime none of the optional packages, the browser entry no
// Node module, the CLI's start-up only commander (the rest loads with the command that needs it).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const OPTIONAL = ['sharp', 'vega', 'vega-lite', 'commander', 'cli-progress', 'onnx-proto', 'protobufjs', 'onnxruntime-node'];

/** A resolve hook that prints, for every import made by a file under src/, the package or Node module it reaches. */
const HOOK = `
const SRC = ${JSON.stringify(pathToFileURL(join(ROOT, 'src')).href)};
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  if (context.parentURL !== undefined && context.parentURL.startsWith(SRC)) {
    const m = /node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(r.url);
    if (m !== null) process.stderr.write('PACKAGE ' + m[1] + '\\n');
    if (r.url.startsWith('node:')) process.stderr.write('NODE ' + r.url + '\\n');
  }
  return r;
}
`;

/** The packages and Node modules that importing `entry` (a path under src/) reaches from src/. */
function loaded(entry: string): { packages: Set<string>; node: Set<string> } {
  const dir = mkdtempSync(join(tmpdir(), 'parsimony-imports-'));
  try {
    const hook = join(dir, 'hook.mjs');
    writeFileSync(hook, HOOK);
    const register = join(dir, 'register.mjs');
    writeFileSync(register, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hook).href)});\n`);
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--import', register, '-e', `await import(${JSON.stringify(pathToFileURL(join(ROOT, entry)).href)});`], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(r.status, 0, `importing ${entry} failed:\n${r.stderr}`);
    const lines = r.stderr.split('\n');
    return {
      packages: new Set(lines.filter((l) => l.startsWith('PACKAGE ')).map((l) => l.slice(8))),
      node: new Set(lines.filter((l) => l.startsWith('NODE ')).map((l) => l.slice(5))),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('what each entry loads', () => {
  test('parsimony (src/index.ts): none of the optional packages', () => {
    const { packages } = loaded('src/index.ts');
    assert.deepEqual(OPTIONAL.filter((p) => packages.has(p)), [], `the root entry imports ${[...packages].join(', ')}`);
  });

  test('parsimony/browser (src/browser/index.ts): no Node module and no optional package', () => {
    const { packages, node } = loaded('src/browser/index.ts');
    assert.deepEqual([...node], [], 'the browser entry imports Node modules');
    assert.deepEqual(OPTIONAL.filter((p) => packages.has(p)), []);
  });

  test('the CLI at start-up (src/cli/main.ts): commander only; the report, ONNX and image packages load with their commands', () => {
    const { packages } = loaded('src/cli/main.ts');
    assert.deepEqual(OPTIONAL.filter((p) => packages.has(p)), ['commander']);
  });

  test('parsimony/onnx (src/onnx.ts) loads onnx-proto', () => {
    assert.ok(loaded('src/onnx.ts').packages.has('onnx-proto'));
  });
});
