// The io layer's public API without ONNX (src/onnx.ts, which loads onnx-proto); re-exports only.
export { ModelFileError, OnnxError, type ModelFileErrorDetails } from './errors.js';
export { encodeSafetensors, parseSafetensors, readTensor, MAX_HEADER_BYTES, SUPPORTED_DTYPES, type SafetensorsFile, type TensorDType, type TensorEntry, type TensorRecord } from './safetensors.js';
export { encodeModel, decodeModel, modelNormalize, MODEL_FORMAT, MODEL_FORMAT_VERSION, type ModelMeta, type DecodeOptions, type JsonValue } from './model-file.js';
export { saveModel, loadModel, writeFileAtomic, type AtomicWriteOptions } from './node-files.js';
export {
  saveCheckpoint, resume, encodeCheckpoint, decodeCheckpoint, applyCheckpoint, CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION,
  type Checkpoint, type CheckpointTargets, type LoaderPosition, type RandomState, type Resumed, type TrainingState,
} from './checkpoint.js';
export { registerStateRule, type StateRule } from './state-shapes.js';
