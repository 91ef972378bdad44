// The public API of Parsimony for Node; re-exports only. ONNX is `parsimony/onnx`, the browser runtime `parsimony/browser`.
export { Engine, init, engine, setEngine, type TapeNode } from './autograd/engine.js';
export { Backend, type BackendKind, type BackendOptions } from './backend/backend.js';
export type { SimdVariant, VariantChoice } from './backend/wasm/loader.js';
export { Tensor, ShapeError, DisposedTensorError, type DType, type Shape } from './tensor/tensor.js';
export { Arena, LinearMemory, OutOfMemoryError } from './tensor/memory.js';
export * as ops from './ops/index.js';
export { Module, type ModuleSpec } from './nn/module.js';
export {
  Conv2d, BatchNorm2d, ReLU, MaxPool2d, AvgPool2d, GlobalAvgPool, GlobalMaxPool, Flatten, Dropout, Linear, Sequential, Residual,
  manualSeed, type Conv2dConfig, type LinearConfig,
} from './nn/layers.js';
export { Clip, Sigmoid, SiLU, HardSigmoid, HardSwish, GELU } from './nn/activations.js';
export { Concat } from './nn/concat.js';
export { SqueezeExcite } from './nn/squeeze-excite.js';
export { buildModule, registerModule, UnknownModuleError, SpecError } from './nn/registry.js';
export { checkShapes } from './nn/module.js';
export { initValues, type InitKind } from './nn/init.js';
export { fmnistVgg5, convBnRelu, basicBlock, smallResNet, resnet20, vgg8 } from './nn/zoo.js';
export { Optimizer, SGD, Adam, AdamW, constant, stepDecay, cosine, linearWarmup, type Schedule } from './optim/index.js';
export { fit, trainStep, trainEpochs, evaluate, NonFiniteLossError, type Batch, type FitOptions, type EpochLoop, type EpochReport, type EvalResult, type TrainStepResult } from './train/fit.js';
export { LKAM, Gated, addLKAMs, EXACTLY_OPEN, ConvIndexError, convsInOrder, gates, recordGates, gateCosts, type GateReading, type GateCost, type Switches, type LkamConfig, type AddLkamOptions, type ConvPlace, type SwitchKind, type LkamPool } from './nn/lkam.js';
export { measureParsimony, denseMacs, type ParsimonyReport, type LayerActivity, type MacStats } from './train/parsimony.js';
export { setGains, GAIN_KINDS, SWITCH_KINDS, type GainKind, type GateMode } from './nn/lkam.js';
export { BudgetController } from './train/budget.js';
export { TrainingRun, TrainingInputError, readRunOptions, type TrainingRunOptions, type TrainingData, type TrainingCallbacks, type TrainingResult, type TrainBegin, type StepReport, type TestMeasurement } from './train/run.js';
export { KNOBS, RecipeError, RetiredOptionError, resolveRecipe, defaultRecipe, migrateRecorded, type Recipe, type Knob, type KnobName } from './train/recipe.js';
export { sparsityTerm } from './train/objective.js';
export { keepForTarget, expectedFraction, minimumFraction, rampStepsFor } from './train/target.js';
export { estimateTrainingBytes } from './train/memory.js';
export { evaluateModel, measureOn } from './train/evaluation.js';
export {
  compile, InferencePlan, registerCompiler, compilableTypes, CompileError, pruneStatic, denseTwin, kernelsNeverOn, registerPruneRule, PruneError,
  knobCurve, knobGrid, neverOnRemovals, planMacs, timeCalls,
  type CompileOptions, type RunOptions, type Telemetry, type LayerTelemetry, type CompileContext, type ModuleCompiler,
  type PruneContext, type PruneOptions, type PruneResult, type PruneRule, type InferNode, type InferValue,
  type KnobData, type KnobOptions, type KnobPoint, type KnobSetting, type CallTiming, type PlanMacs,
} from './infer/index.js';
export { ModelFileError, type ModelFileErrorDetails } from './io/errors.js';
export { encodeSafetensors, parseSafetensors, readTensor, SUPPORTED_DTYPES, type SafetensorsFile, type TensorDType, type TensorEntry, type TensorRecord } from './io/safetensors.js';
export { encodeModel, decodeModel, MODEL_FORMAT, MODEL_FORMAT_VERSION, type ModelMeta, type DecodeOptions, type JsonValue } from './io/model-file.js';
export { saveModel, loadModel } from './io/node-files.js';
export {
  saveCheckpoint, resume, encodeCheckpoint, decodeCheckpoint, applyCheckpoint, CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION,
  type Checkpoint, type CheckpointTargets, type LoaderPosition, type RandomState, type Resumed, type TrainingState,
} from './io/checkpoint.js';
export { registerStateRule, type StateRule } from './io/state-shapes.js';
export {
  DataError, type DataErrorDetails, Rng, type RngState,
  InMemoryDataset, SubsetDataset, classCounts, computeChannelStats, datasetLabels, materialize, splitDataset,
  type ChannelStats, type Dataset, type DatasetItem, type DatasetStorage, type ImageShape, type InMemoryDatasetInit, type PixelArray, type SplitOptions,
  decodeIdx, encodeIdx, idxDataset, loadIdxDataset, readIdx, type IdxArray, type IdxData, type IdxDatasetOptions, type IdxType,
  DEBIAN_FASHION_MNIST_DIR, FASHION_MNIST_CLASSES, builtinFashionMnistDir, loadFashionMnist, type FashionMnistOptions,
  loadCifar10, loadCifar100, type CifarFormat,
  IMAGE_EXTENSIONS, loadImageFolder, readClassList, saveClassList, type ImageFolderOptions,
  DataLoader, type AugmentOptions, type Batch as LoaderBatch, type DataLoaderOptions, type LoaderState, type NormalizeOptions,
} from './data/index.js';
export { MissingPackageError } from './optional.js';
export {
  openData, dataOptionsSchema, trainingSplits, normalizeImages, FASHION_MNIST_NORMALIZE, DEFAULT_VALIDATION_FRACTION,
  type OpenedData, type DataKind, type DataOptions, type DataOptionsInput, type TrainingSplits,
} from './data/index.js';
export { modelNormalize } from './io/model-file.js';
export {
  prepareFineTune, openTrainedModel, checkModelFits, modelDataMismatch, ModelFitError,
  type FineTuneOptions, type FineTuneStart, type TrainedModel, type DataShape,
} from './train/fine-tune.js';
