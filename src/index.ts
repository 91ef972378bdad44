// The public API of Parsimony; re-exports only.
export { Engine, init, engine, setEngine, type TapeNode } from './autograd/engine.js';
export { Backend, splitRange, type BackendKind, type BackendOptions } from './backend/backend.js';
export type { SimdVariant, VariantChoice } from './backend/wasm/loader.js';
export { Tensor, ShapeError, DisposedTensorError, type DType, type Shape } from './tensor/tensor.js';
export { Arena, LinearMemory, OutOfMemoryError } from './tensor/memory.js';
export * as ops from './ops/index.js';
export { Module, type ModuleSpec } from './nn/module.js';
export {
  Conv2d, BatchNorm2d, ReLU, MaxPool2d, AvgPool2d, GlobalAvgPool, GlobalMaxPool, Flatten, Dropout, Linear, Sequential, Residual,
  manualSeed, type Conv2dConfig, type LinearConfig,
} from './nn/layers.js';
export { buildModule, registerModule, UnknownModuleError } from './nn/registry.js';
export { Rng, initValues, type InitKind } from './nn/init.js';
export { fmnistVgg5, convBnRelu, basicBlock, smallResNet } from './nn/zoo.js';
export { Optimizer, SGD, Adam, AdamW, constant, stepDecay, cosine, linearWarmup, type Schedule } from './optim/index.js';
export { fit, trainStep, evaluate, NonFiniteLossError, type Batch, type FitOptions, type EpochReport, type EvalResult } from './train/fit.js';
export { LKAM, Gated, addLKAMs, ConvIndexError, convsInOrder, gates, sparsityLoss, batchShapingLoss, type LkamConfig, type AddLkamOptions, type ConvPlace, type SwitchKind, type LkamPool } from './nn/lkam.js';
export { measureParsimony, denseMacs, type ParsimonyReport, type LayerActivity, type MacStats } from './train/parsimony.js';
export { setGains, GAIN_KINDS, SATURATED_KINDS, SWITCH_KINDS, type GainKind, type SaturatedKind, type GateMode } from './nn/lkam.js';
export { BudgetController } from './train/budget.js';
export * from './infer/index.js';
export * from './io/index.js';
export * from './data/index.js';
