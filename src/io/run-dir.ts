/**
 * Guarding run directories: one process writes a run directory at a time (a lock file holding its
 * pid, removed when it exits; a lock whose process is gone is stale and taken over), and finished
 * work (a run, a model file, a full evaluation) is replaced only when the caller says so (--force).
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { processIsAlive } from './node-files.js';

/** A run directory in use by another process, or work that would be replaced without --force. */
export class RunDirError extends Error {
  override readonly name = 'RunDirError';
}

export const LOCK_FILE = '.parsimony.lock';

interface LockRecord {
  readonly pid: number;
  readonly host: string;
  readonly since: string;
}

function readLock(file: string): LockRecord | null {
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as Partial<LockRecord>;
    return typeof v.pid === 'number' && typeof v.host === 'string' ? { pid: v.pid, host: v.host, since: String(v.since ?? '?') } : null;
  } catch {
    return null;
  }
}

export interface RunLock {
  readonly file: string;
  release(): void;
}

const held = new Map<string, RunLock>();

/** mkdir -p whose error names the real cause (a recursive mkdir reports ENOENT on a read-only file system). */
function makeDir(dir: string): void {
  if (existsSync(dir)) return;
  const parent = dirname(dir);
  if (parent !== dir) makeDir(parent);
  try {
    mkdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
}

/**
 * Takes the lock of run directory `dir` (made if missing) for this process, until `release` or the
 * process's exit. Another live process's lock is a RunDirError; a lock left by a process that is gone
 * (on this host) is taken over.
 */
export function lockRunDir(dir: string): RunLock {
  makeDir(dir);
  const file = join(dir, LOCK_FILE);
  const mine = held.get(file);
  if (mine !== undefined) return mine;
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, 'wx', 0o644);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw e;
      const other = readLock(file);
      const stale = other !== null && other.host === hostname() && !processIsAlive(other.pid);
      if (!stale) {
        const who = other === null ? 'another process (its lock file is unreadable)' : `process ${other.pid} on ${other.host} (since ${other.since})`;
        throw new RunDirError(`${dir}: ${who} is writing this run directory; wait for it to finish or stop it${other === null ? `, or remove ${file} if no process writes it` : ''}`);
      }
      rmSync(file, { force: true });
      continue;
    }
    const record: LockRecord = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
    try {
      writeSync(fd, JSON.stringify(record));
    } finally {
      closeSync(fd);
    }
    const release = (): void => {
      process.removeListener('exit', release);
      held.delete(file);
      if (readLock(file)?.pid === process.pid) rmSync(file, { force: true });
    };
    process.on('exit', release);
    const lock = { file, release };
    held.set(file, lock);
    return lock;
  }
}

/** The files of a run that a new run in the same directory would replace or mix with. */
export const RUN_OUTPUTS = ['config.json', 'metrics.jsonl', 'checkpoint.ckpt', 'checkpoint.ckpt.prev', 'model.safetensors', 'eval.json', 'knob.json', 'model.onnx'] as const;

/**
 * Locks run directory `dir` for a new run. A directory that already holds a run's files is refused
 * unless `force`, which removes them first (so nothing of the old run mixes with the new one).
 */
export function startRunDir(dir: string, force: boolean): RunLock {
  const lock = lockRunDir(dir);
  const present = RUN_OUTPUTS.filter((f) => existsSync(join(dir, f)));
  if (present.length > 0 && !force) {
    lock.release();
    const finished = present.includes('model.safetensors');
    throw new RunDirError(`${dir}: this run directory already holds ${finished ? 'a finished run' : 'a run'} (${present.join(', ')}); continue it with --resume ${dir}, choose another --out, or pass --force to replace it`);
  }
  for (const f of present) rmSync(join(dir, f), { recursive: true, force: true });
  return lock;
}

/** Refuses to replace an existing `file` (`what` it holds) unless `force`. */
export function refuseReplace(file: string, what: string, force: boolean, hint = ''): void {
  if (!force && existsSync(file)) throw new RunDirError(`${file} already exists (${what}); pass --force to replace it${hint}`);
}
