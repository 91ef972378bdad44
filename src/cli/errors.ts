/** What the command line tells scripts: exit codes, and which errors a user can cause. */
import { CommanderError } from 'commander';

/** Exit codes; `parsimony --help` lists them. */
export const EXIT = {
  ok: 0,
  /** A bug: an error the user did not cause (the message asks for --debug). */
  internal: 1,
  /** Unknown command or option, or an option or config value that is not allowed. */
  usage: 2,
  /** A file, folder, model or data set that is missing or does not fit. */
  input: 3,
  /** Stopped by Ctrl-C (SIGINT) after writing a checkpoint. */
  interrupted: 130,
} as const;

/** A wrong flag or config value: `--epochs: expected a whole number >= 1, got 'x'`. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** A missing or unsuitable input: `runs/a: no model.safetensors in this run directory`. */
export class InputError extends Error {
  override readonly name = 'InputError';
}

/** Training stopped by the user after its state was saved. */
export class Interrupted extends Error {
  override readonly name = 'Interrupted';
}

/**
 * Errors the lower layers throw about what they were given (by name, so that `--help` need not load
 * those layers): files and data (DataError, ModelFileError, RunFileError), run directories and writes (RunDirError,
 * WriteFileError), a model that does not fit
 * the data (ModelFitError), optional packages that are not installed (MissingPackageError), models
 * (OnnxError, CompileError, PruneError), models or batches that do not fit the 4 GiB WebAssembly
 * memory (OutOfMemoryError) and training that diverged (NonFiniteLossError, a learning rate too high).
 */
const INPUT_ERRORS = new Set(['DataError', 'MissingPackageError', 'ModelFileError', 'ModelFitError', 'RunFileError', 'RunDirError', 'WriteFileError', 'OnnxError', 'CompileError', 'PruneError', 'NonFiniteLossError', 'OutOfMemoryError', 'TrainingInputError', 'RetiredOptionError']);
/** A recipe value out of its range (RecipeError names the option and the range). */
const USAGE_ERRORS = new Set(['RecipeError']);

const FILE_ERRORS = new Set(['ENOENT', 'EACCES', 'EISDIR', 'ENOTDIR', 'EEXIST', 'EPERM', 'ENOSPC', 'EROFS']);

function fileErrorText(e: NodeJS.ErrnoException): string {
  const path = e.path ?? '(unknown path)';
  switch (e.code) {
    case 'ENOENT': return `${path}: no such file or folder`;
    case 'EACCES': case 'EPERM': return `${path}: permission denied`;
    case 'EISDIR': return `${path}: is a folder, expected a file`;
    case 'ENOTDIR': return `${path}: a part of the path is not a folder`;
    case 'ENOSPC': return `${path}: no space left on the device`;
    case 'EROFS': return `${path}: the file system is read-only`;
    default: return `${path}: ${e.code ?? 'file error'}`;
  }
}

/** How an error ends the command: its exit code and the one line to print (null: commander printed it). */
export function classify(e: unknown): { code: number; line: string | null } {
  if (e instanceof CommanderError) {
    const done = e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help' || e.code === 'commander.executeSubCommandAsync';
    return { code: done ? EXIT.ok : EXIT.usage, line: null };
  }
  if (e instanceof Interrupted) return { code: EXIT.interrupted, line: e.message };
  if (e instanceof UsageError || (e instanceof Error && USAGE_ERRORS.has(e.name))) return { code: EXIT.usage, line: e.message };
  if (e instanceof InputError || (e instanceof Error && INPUT_ERRORS.has(e.name))) return { code: EXIT.input, line: e.message };
  const errno = e as NodeJS.ErrnoException;
  if (e instanceof Error && typeof errno.code === 'string' && FILE_ERRORS.has(errno.code) && typeof errno.syscall === 'string') {
    return { code: EXIT.input, line: fileErrorText(errno) };
  }
  const message = e instanceof Error ? e.message : String(e);
  return { code: EXIT.internal, line: `internal error: ${message} (run again with --debug for the stack trace, and please report it)` };
}
