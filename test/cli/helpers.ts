/** Runs the real `parsimony` bin (src/cli/bin.ts through tsx) in a child process. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = fileURLToPath(new URL('../../src/cli/bin.ts', import.meta.url));

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliRun {
  readonly child: ChildProcess;
  readonly done: Promise<CliResult>;
  /** Resolves when stdout has printed a line matching `pattern`. */
  waitFor(pattern: RegExp): Promise<void>;
}

export function startCli(args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): CliRun {
  const child = spawn(process.execPath, ['--import', 'tsx', BIN, ...args], {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, ...options.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const waiters: Array<{ pattern: RegExp; resolve: () => void }> = [];
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i] as { pattern: RegExp; resolve: () => void };
      if (w.pattern.test(stdout)) {
        waiters.splice(i, 1);
        w.resolve();
      }
    }
  });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return {
    child, done,
    waitFor: (pattern) => (pattern.test(stdout) ? Promise.resolve() : new Promise<void>((resolve, reject) => {
      waiters.push({ pattern, resolve });
      void done.then(() => reject(new Error(`the command ended before printing ${pattern}; stdout:\n${stdout}\nstderr:\n${stderr}`)));
    })),
  };
}

export function cli(args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return startCli(args, options).done;
}

/** What a failed expectation prints: the command, its exit code and its output. */
export function explain(args: readonly string[], r: CliResult): string {
  return `parsimony ${args.join(' ')} exited ${r.code}${r.signal === null ? '' : ` (${r.signal})`}\nstdout:\n${r.stdout.slice(-3000)}\nstderr:\n${r.stderr.slice(-3000)}`;
}

/** The quick-training flags the tests share: the narrow network, few images, one thread, seeded. */
export const QUICK = ['--model', 'fmnist-vgg5-narrow', '--limit', '256', '--batch', '32', '--threads', '1', '--seed', '3'] as const;

/** A fresh temporary directory for the enclosing describe block (made before its tests, removed after); returns a getter. */
export function tempDir(prefix: string): () => string {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), prefix));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  return () => dir;
}
