/** Errors of the io layer: each names the file and, where it applies, the tensor and the header field at fault. */

export interface ModelFileErrorDetails {
  readonly tensor?: string;
  /** The header or metadata field at fault, e.g. `header_length`, `data_offsets`, `__metadata__.architecture`. */
  readonly field?: string;
  readonly cause?: unknown;
}

/**
 * A model file or checkpoint that cannot be loaded: `model.safetensors: tensor 0.weight has 9216 bytes, its header says 36864`.
 * Every rejection of a file's contents is one of these, whatever part of the file is at fault.
 */
export class ModelFileError extends Error {
  override readonly name = 'ModelFileError';
  readonly file: string;
  readonly tensor: string | undefined;
  readonly field: string | undefined;

  constructor(file: string, message: string, details: ModelFileErrorDetails = {}) {
    super(`${file}: ${message}`, details.cause === undefined ? undefined : { cause: details.cause });
    this.file = file;
    this.tensor = details.tensor;
    this.field = details.field;
  }
}

/** A model that cannot be expressed in ONNX, or an ONNX graph that cannot be mapped onto our modules. */
export class OnnxError extends Error {
  override readonly name = 'OnnxError';
  /** For an import: the ONNX ops (with their node names) that have no mapping. */
  readonly unsupported: readonly string[];

  constructor(message: string, unsupported: readonly string[] = [], cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.unsupported = unsupported;
  }
}

export function describeError(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
