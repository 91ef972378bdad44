export { DataError, type DataErrorDetails } from './errors.js';
export { Rng, hashSeed, mix32, type RngState } from './rng.js';
export {
  InMemoryDataset,
  SubsetDataset,
  classCounts,
  computeChannelStats,
  datasetLabels,
  materialize,
  splitDataset,
  toShared,
  type ChannelStats,
  type Dataset,
  type DatasetItem,
  type DatasetStorage,
  type ImageShape,
  type InMemoryDatasetInit,
  type PixelArray,
  type SplitOptions,
} from './dataset.js';
export {
  decodeIdx,
  encodeIdx,
  idxDataset,
  loadIdxDataset,
  readIdx,
  type IdxArray,
  type IdxData,
  type IdxDatasetOptions,
  type IdxType,
} from './idx.js';
export {
  DEBIAN_FASHION_MNIST_DIR,
  FASHION_MNIST_CLASSES,
  IDX_FILE_STEMS,
  builtinFashionMnistDir,
  idxFilesIn,
  loadFashionMnist,
  type FashionMnistOptions,
  type IdxFileSet,
} from './fashion-mnist.js';
export { CIFAR_IMAGE_BYTES, loadCifar10, loadCifar100, readCifarFiles, type CifarFormat, type CifarReadOptions } from './cifar.js';
export {
  IMAGE_EXTENSIONS,
  discoverClasses,
  loadImageFolder,
  readClassList,
  saveClassList,
  type ImageFolderOptions,
} from './image-folder.js';
export {
  DataLoader,
  type AugmentOptions,
  type Batch,
  type DataLoaderOptions,
  type LoaderState,
  type NormalizeOptions,
} from './loader.js';
export { FASHION_MNIST_NORMALIZE, normalizeImages, normalizeProblem } from './normalization.js';
export { COLOR_MODES, DATA_HELP, dataOptionsSchema, parseImageSize, type ColorMode, type DataOptionKey, type DataOptions, type DataOptionsInput, type OptionMeta } from './options.js';
export {
  CLASS_LIST_FILE,
  DEFAULT_VALIDATION_FRACTION,
  IMAGE_FOLDER_TEST_FRACTION,
  detectKind,
  openData,
  trainingSplits,
  type DataKind,
  type OpenedData,
  type TrainingSplits,
} from './open.js';
