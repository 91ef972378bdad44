// ONNX export and import (`parsimony/onnx`): loads onnx-proto, an optional dependency, when imported.
export { OnnxError } from './io/errors.js';
export { exportOnnx, registerOnnxExporter, onnxExportableTypes, ONNX_OPSET, type OnnxAttribute, type OnnxContext, type OnnxExport, type OnnxExporter, type OnnxExportOptions, type SwitchOutput } from './io/onnx-export.js';
export { importOnnx, IMPORT_OPSETS, type OnnxImport, type OnnxImportOptions } from './io/onnx-import.js';
