// Pages that are not cross-origin isolated cannot share memory: the loader rewrites the builds'
// shared memory import so that they run, on one thread, over an ordinary memory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backend } from '../../src/backend/backend.js';
import { compileKernels, instantiateKernels, withUnsharedMemory } from '../../src/backend/wasm/loader.js';
import { nodePlatform } from '../../src/backend/wasm/node-platform.js';
import type { WasmPlatform } from '../../src/backend/wasm/platform.js';
import { LinearMemory } from '../../src/tensor/memory.js';

const unsharedMemory = (): WebAssembly.Memory => new LinearMemory({ shared: false }).memory;

for (const variant of ['simd', 'relaxed'] as const) {
  test(`the ${variant} build links to an unshared memory only once rewritten, and its kernels run there`, async () => {
    const shared = await compileKernels(variant);
    assert.throws(() => instantiateKernels(shared, unsharedMemory()), WebAssembly.LinkError);
    const compiled = await compileKernels(variant, { sharedMemory: false });
    const mem = new LinearMemory({ shared: false });
    const k = instantiateKernels(compiled, mem.memory);
    const ptr = 1 << 16;
    k.fill(ptr, 37, 2.5);
    assert.deepEqual([...mem.f32.subarray(ptr >>> 2, (ptr >>> 2) + 38)], [...new Array<number>(37).fill(2.5), 0]);
  });
}

test('withUnsharedMemory changes only the memory limits flag, and leaves its input alone', () => {
  // (module (import "env" "memory" (memory 1 65536 shared)) (import "env" "f" (func)))
  const bytes = new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    0x01, 0x04, 0x01, 0x60, 0x00, 0x00,
    0x02, 0x1a, 0x02,
    0x03, 0x65, 0x6e, 0x76, 0x06, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 0x02, 0x03, 0x01, 0x80, 0x80, 0x04,
    0x03, 0x65, 0x6e, 0x76, 0x01, 0x66, 0x00, 0x00,
  ]);
  const out = withUnsharedMemory(bytes);
  const changed = [...out.keys()].filter((i) => out[i] !== bytes[i]);
  assert.deepEqual(changed, [29]);
  assert.equal(out[29], 0x01);
  assert.equal(bytes[29], 0x03);
  assert.throws(() => withUnsharedMemory(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])), /not a WebAssembly binary/);
});

test('a backend over an unshared memory runs on one thread whatever is asked', async () => {
  const saved = Object.getOwnPropertyDescriptor(globalThis, 'SharedArrayBuffer');
  let asked: boolean | undefined;
  const platform: WasmPlatform = {
    ...nodePlatform,
    name: 'unshared',
    compileKernels: (v, patch) => {
      asked = patch !== undefined;
      return nodePlatform.compileKernels(v, patch);
    },
  };
  // What a page that is not cross-origin isolated sees.
  Object.defineProperty(globalThis, 'SharedArrayBuffer', { value: undefined, configurable: true, writable: true });
  let b: Backend;
  try {
    b = await Backend.create({ backend: 'wasm', threads: 2, platform });
  } finally {
    Object.defineProperty(globalThis, 'SharedArrayBuffer', saved as PropertyDescriptor);
  }
  assert.equal(asked, true);
  assert.equal(b.threads, 1);
  assert.equal(b.mem.shared, false);
  b.close();
});
