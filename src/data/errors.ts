export interface DataErrorDetails {
  /** The file or folder at fault, as the caller named it. */
  readonly file?: string;
  /** The header field, option or record part at fault, e.g. `dims[0]`, `label`, `batchSize`. */
  readonly field?: string;
  readonly expected?: string;
  readonly actual?: string;
  readonly cause?: unknown;
}

/**
 * An error a user can cause with their data or options. The message starts with the file when there is
 * one (`train-images-idx3-ubyte.gz: header says ...`); the details are also kept as fields so callers can
 * react without parsing text.
 */
export class DataError extends Error {
  override readonly name = 'DataError';
  readonly file: string | undefined;
  readonly field: string | undefined;
  readonly expected: string | undefined;
  readonly actual: string | undefined;

  constructor(message: string, details: DataErrorDetails = {}) {
    super(details.file === undefined ? message : `${details.file}: ${message}`, details.cause === undefined ? undefined : { cause: details.cause });
    this.file = details.file;
    this.field = details.field;
    this.expected = details.expected;
    this.actual = details.actual;
  }
}

/** A short description of an unknown thrown value, for wrapping third-party errors. */
export function describeError(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
