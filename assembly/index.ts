// One export per kernel; names match src/backend/kernels.ts.
export * from './gemm';
export * from './conv';
export * from './batchnorm';
export * from './activation';
export * from './pool';
export * from './loss';
export * from './elementwise';
export * from './optim';
export * from './sparse';
export * from './infer';
export * from './grouped';
