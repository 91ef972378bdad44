/** Node file access for the io layer: atomic replacement of files, model files by path. */
import { closeSync, copyFileSync, fsyncSync, linkSync, openSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Module } from '../nn/module.js';
import { readRegularFile } from '../data/files.js';
import { WriteFileError } from './errors.js';
import { decodeModel, encodeModel, type ModelMeta } from './model-file.js';

let tempCounter = 0;

function tempPrefix(path: string): string {
  return `.${basename(path)}.tmp-`;
}

/** Whether process `pid` exists on this host (one we may not signal counts). */
export function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes temporary files that writers of `path` killed mid-write left behind (their process is gone). */
function removeStaleTemporaries(path: string): void {
  const dir = dirname(path);
  const prefix = tempPrefix(path);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(/^(\d+)-/.exec(name.slice(prefix.length))?.[1]);
    if (Number.isInteger(pid) && pid !== process.pid && !processIsAlive(pid)) rmSync(`${dir}/${name}`, { force: true });
  }
}

function fsyncDirectory(dir: string): void {
  let fd: number | null = null;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch (e) {
    // Some platforms (Windows) cannot open or sync a directory; the rename is still atomic there.
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EACCES') throw e;
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

function writeAndSync(path: string, bytes: Uint8Array): void {
  const fd = openSync(path, 'wx', 0o644);
  try {
    let at = 0;
    while (at < bytes.length) at += writeSync(fd, bytes, at, bytes.length - at);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export interface AtomicWriteOptions {
  /** Keep the file being replaced as `<path>.prev` (itself replaced atomically). */
  readonly keepPrevious?: boolean;
}

/**
 * Replaces `path` with `bytes` so that a crash at any moment leaves either the old or the new file
 * complete: write a temporary file beside it, fsync it, rename it over `path`, fsync the directory.
 * With keepPrevious, the old file is first hard-linked to `<path>.prev`, so `path` never goes missing.
 * Temporary files of earlier writers that died mid-write are removed. A failure (full disk,
 * read-only or missing folder) is a WriteFileError naming `path` and the cause; `path` is untouched.
 */
export function writeFileAtomic(path: string, bytes: Uint8Array | string, options: AtomicWriteOptions = {}): void {
  try {
    replaceFile(path, typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes, options);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) throw new WriteFileError(path, code, e);
    throw e;
  }
}

function replaceFile(path: string, bytes: Uint8Array, options: AtomicWriteOptions): void {
  const dir = dirname(path);
  const tmp = `${dir}/${tempPrefix(path)}${process.pid}-${tempCounter++}`;
  removeStaleTemporaries(path);
  try {
    writeAndSync(tmp, bytes);
    if (options.keepPrevious === true) {
      const prevTmp = `${tmp}.prev`;
      let linked = false;
      try {
        linkSync(path, prevTmp);
        linked = true;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EXDEV') {
          // A file system without hard links: a copy keeps `path` in place as well.
          copyFileSync(path, prevTmp);
          linked = true;
        } else if (code !== 'ENOENT') {
          throw e;
        }
      }
      if (linked) renameSync(prevTmp, `${path}.prev`);
    }
    renameSync(tmp, path);
    fsyncDirectory(dir);
  } catch (e) {
    rmSync(tmp, { force: true });
    rmSync(`${tmp}.prev`, { force: true });
    throw e;
  }
}

/** Writes a model file atomically (temporary file, fsync, rename). */
export function saveModel(path: string, model: Module, meta: ModelMeta): void {
  writeFileAtomic(path, encodeModel(model, meta));
}

/** Reads a model file; problems with its contents are ModelFileErrors naming `path`. */
export function loadModel(path: string): ReturnType<typeof decodeModel> {
  return decodeModel(readRegularFile(path, { what: 'a model file' }), { file: path });
}
