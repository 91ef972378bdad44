/** The backends that run fast kernels in these tests: wasm, and native when the addon is built. */
import type { BackendKind } from '../../src/backend/backend.js';
import { nativeStatus } from '../../src/backend/native/addon.js';

export const COMPUTE_BACKENDS: readonly BackendKind[] = nativeStatus().ok ? ['wasm', 'native'] : ['wasm'];
