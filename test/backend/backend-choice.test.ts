import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backend } from '../../src/backend/backend.js';
import { nativeStatus } from '../../src/backend/native/addon.js';

const native = nativeStatus();

test(`the default backend is native when the addon loads, else wasm with a note saying why (addon ${native.ok ? 'built' : 'missing'})`, async () => {
  const b = await Backend.create({ threads: 1 });
  try {
    if (native.ok) {
      assert.equal(b.kind, 'native');
      assert.match(b.name, /^native-(avx512|avx2|neon|portable)$/);
      assert.equal(b.fallbackNote, null);
      assert.ok(b.native !== null && b.native.names.has('conv2dInfer') && b.native.names.has('gemm'));
    } else {
      assert.equal(b.kind, 'wasm');
      assert.match(b.fallbackNote ?? '', /^running on WebAssembly: /);
    }
  } finally {
    b.close();
  }
});

test("backend: 'wasm' forces WebAssembly without a note; backend: 'native' runs native or refuses in one line", async () => {
  const w = await Backend.create({ backend: 'wasm', threads: 1 });
  assert.equal(w.kind, 'wasm');
  assert.equal(w.native, null);
  assert.equal(w.fallbackNote, null);
  assert.match(w.name, /^wasm-(simd|relaxed)$/);
  w.close();
  if (native.ok) {
    const n = await Backend.create({ backend: 'native', threads: 2 });
    assert.equal(n.kind, 'native');
    assert.equal(n.threads, 2);
    for (const isa of native.addon.isas()) {
      const forced = await Backend.create({ backend: 'native', isa, threads: 1 });
      assert.equal(forced.name, `native-${isa}`);
      forced.close();
    }
    n.close();
  } else {
    await assert.rejects(Backend.create({ backend: 'native' }), /^Error: backend 'native' is not available: /);
  }
});

test('native kernels follow the memory when it grows (the data pointer is read again)', async (t) => {
  if (!native.ok) return t.skip('the addon is not built');
  const b = await Backend.create({ backend: 'native', threads: 1 });
  try {
    const { Arena } = await import('../../src/tensor/memory.js');
    const arena = new Arena(b.mem, 'grow');
    const a = arena.alloc(4 * 4), x = arena.alloc(4 * 4), c = arena.alloc(4 * 4);
    const scratch = b.scratch(1 << 16)[0] as number;
    b.mem.f32.set([1, 2, 3, 4], a >>> 2);
    b.mem.f32.set([1, 0, 0, 1], x >>> 2);
    b.kernels.gemm(0, 0, 2, 2, 2, 1, a, 2, x, 2, 0, c, 2, scratch);
    assert.deepEqual(Array.from(b.mem.f32.subarray(c >>> 2, (c >>> 2) + 4)), [1, 2, 3, 4]);
    const before = b.mem.memory.buffer.byteLength;
    const far = arena.alloc(64 << 20);
    assert.ok(b.mem.memory.buffer.byteLength > before, 'the memory grew');
    b.mem.f32.set([2, 0, 0, 2], x >>> 2);
    b.kernels.gemm(0, 0, 2, 2, 2, 1, a, 2, x, 2, 0, far, 2, scratch);
    assert.deepEqual(Array.from(b.mem.f32.subarray(far >>> 2, (far >>> 2) + 4)), [2, 4, 6, 8]);
  } finally {
    b.close();
  }
});
