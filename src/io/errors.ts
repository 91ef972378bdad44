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

/** Why a write failed, in words: the error code of a failed file operation. */
export function writeFailure(code: string | undefined): string {
  switch (code) {
    case 'ENOSPC': return 'no space left on the device';
    case 'EDQUOT': return 'the disk quota is exhausted';
    case 'EROFS': return 'the file system is read-only';
    case 'EACCES': case 'EPERM': return 'permission denied';
    case 'ENOENT': return 'its folder does not exist';
    case 'ENOTDIR': return 'a part of the path is not a folder';
    case 'EISDIR': return 'it is a folder';
    case 'EFBIG': return 'the file is too large for the file system';
    case 'EIO': return 'an input/output error';
    default: return code ?? 'unknown error';
  }
}

/** A file that could not be written; nothing partial is left at its path. */
export class WriteFileError extends Error {
  override readonly name = 'WriteFileError';
  readonly file: string;
  readonly code: string | undefined;
  constructor(file: string, code: string | undefined, cause?: unknown) {
    super(`${file}: cannot write: ${writeFailure(code)}`, cause === undefined ? undefined : { cause });
    this.file = file;
    this.code = code;
  }
}

export function describeError(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
