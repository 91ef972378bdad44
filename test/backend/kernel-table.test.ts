import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileKernels, missingKernels } from '../../src/backend/wasm/loader.js';

for (const variant of ['simd', 'relaxed'] as const) {
  test(`the ${variant} module exports every kernel in the table`, async () => {
    const compiled = await compileKernels(variant);
    assert.deepEqual(missingKernels(compiled), []);
  });
}
