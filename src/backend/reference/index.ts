import type { LinearMemory } from '../../tensor/memory.js';
import type { Kernels } from '../kernels.js';
import { gemmReference } from './gemm.js';
import { convReference } from './conv.js';
import { batchNormReference } from './batchnorm.js';
import { activationReference } from './activation.js';
import { poolReference } from './pool.js';
import { lossReference } from './loss.js';
import { elementwiseReference } from './elementwise.js';
import { optimReference } from './optim.js';
import { sparseReference } from './sparse.js';
import { inferReference } from './infer.js';
import { groupedReference } from './grouped.js';

/** The plain-TypeScript twin of every WASM kernel: slow, obvious, and the oracle of the conformance tests. */
export function createReferenceKernels(mem: LinearMemory): Kernels {
  return {
    ...gemmReference(mem),
    ...convReference(mem),
    ...batchNormReference(mem),
    ...activationReference(mem),
    ...poolReference(mem),
    ...lossReference(mem),
    ...elementwiseReference(mem),
    ...optimReference(mem),
    ...sparseReference(mem),
    ...inferReference(mem),
    ...groupedReference(mem),
  };
}
