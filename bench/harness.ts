/**
 * What every benchmark shares: command-line options, timing (warm-up, repetitions, median and
 * spread), the record of the machine and the engines a run used, table printing and JSON results.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const RESULTS_DIR = join(ROOT, 'bench', 'results');

interface CpuSnapshot {
  readonly wallMs: number;
  /** Jiffies of all CPUs: busy (not idle, not iowait) and stolen by the hypervisor. */
  readonly busy: number;
  readonly steal: number;
  /** Jiffies of this process, its threads, and its waited-for children (the PyTorch yardstick). */
  readonly own: number;
}

function cpuSnapshot(): CpuSnapshot | null {
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith('cpu '));
    const self = readFileSync('/proc/self/stat', 'utf8');
    if (cpu === undefined) return null;
    const v = cpu.trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = v;
    // Fields after the parenthesised command name; utime, stime, cutime, cstime are fields 14-17 of the file.
    const f = self.slice(self.lastIndexOf(')') + 2).split(' ').map(Number);
    const own = (f[11] ?? 0) + (f[12] ?? 0) + (f[13] ?? 0) + (f[14] ?? 0);
    return { wallMs: performance.now(), busy: user + nice + system + irq + softirq, steal, own };
  } catch {
    return null;
  }
}

let windowStart = { load: os.loadavg(), cpu: cpuSnapshot(), builds: kernelBuilds() };

/** Starts the window over which environment() reports load and contention (main calls it before each benchmark). */
export function startMeasurementWindow(): void {
  windowStart = { load: os.loadavg(), cpu: cpuSnapshot(), builds: kernelBuilds() };
}

function clockTicksPerSecond(): number {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    return n > 0 ? n : 100;
  } catch {
    return 100;
  }
}

/**
 * Average cores that other processes kept busy since the window started (Linux), and cores stolen
 * by the hypervisor: on a shared machine, the figure that says whether a run was disturbed.
 */
export function otherCpuLoad(): { other_processes_cores: number; steal_cores: number; seconds: number } | null {
  const start = windowStart.cpu;
  const end = cpuSnapshot();
  if (start === null || end === null) return null;
  const seconds = (end.wallMs - start.wallMs) / 1000;
  if (seconds <= 0) return null;
  const hz = clockTicksPerSecond();
  const other = (end.busy - start.busy - (end.own - start.own)) / hz / seconds;
  return { other_processes_cores: round(Math.max(0, other), 2), steal_cores: round((end.steal - start.steal) / hz / seconds, 2), seconds: round(seconds, 1) };
}

/** Two outputs agree when max |a - b| <= VERIFY_RELATIVE * max |b|. */
export const VERIFY_RELATIVE = 1e-3;

export interface BenchOptions {
  readonly warmup: number;
  readonly reps: number;
  /** Smaller workloads and fewer repetitions, for a smoke run. */
  readonly quick: boolean;
}

export interface Bench {
  readonly name: string;
  readonly description: string;
  /** Warm-up and repetitions when the command line does not say. */
  readonly defaults: { readonly warmup: number; readonly reps: number };
  /** The same under --quick. */
  readonly quick: { readonly warmup: number; readonly reps: number };
  run(options: BenchOptions): Promise<void>;
}

export interface ParsedArgs {
  readonly names: string[];
  readonly warmup: number | null;
  readonly reps: number | null;
  readonly quick: boolean;
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

function wholeNumber(flag: string, value: string | undefined, min: number): number {
  const n = Number(value);
  if (value === undefined || !Number.isInteger(n) || n < min) throw new UsageError(`${flag} needs a whole number >= ${min}, got ${value === undefined ? 'nothing' : JSON.stringify(value)}`);
  return n;
}

/** Parses `[names...] [--reps N] [--warmup N] [--quick]` (also `--reps=N`). */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  const names: string[] = [];
  let warmup: number | null = null;
  let reps: number | null = null;
  let quick = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    const inline = arg.startsWith('--') && eq > 0 ? arg.slice(eq + 1) : undefined;
    const value = (): string | undefined => inline ?? argv[++i];
    if (flag === '--reps') reps = wholeNumber('--reps', value(), 1);
    else if (flag === '--warmup') warmup = wholeNumber('--warmup', value(), 0);
    else if (flag === '--quick') quick = true;
    else if (arg.startsWith('-')) throw new UsageError(`unknown option ${arg}; the options are --reps N, --warmup N, --quick`);
    else names.push(arg);
  }
  return { names, warmup, reps, quick };
}

// ---- statistics ----

function sorted(xs: readonly number[]): number[] {
  if (xs.length === 0) throw new RangeError('statistics of an empty sample');
  return [...xs].sort((a, b) => a - b);
}

/** The p-th percentile (0..100), linear interpolation between closest ranks (NumPy's default). */
export function percentile(xs: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile ${p} should be in [0, 100]`);
  const s = sorted(xs);
  const pos = (p / 100) * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return (s[lo] as number) + ((s[hi] as number) - (s[lo] as number)) * (pos - lo);
}

export function median(xs: readonly number[]): number {
  return percentile(xs, 50);
}

export interface Summary {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly p10: number;
  readonly p90: number;
  readonly mean: number;
  readonly n: number;
}

export function summarize(xs: readonly number[]): Summary {
  const s = sorted(xs);
  return {
    median: percentile(s, 50),
    min: s[0] as number,
    max: s[s.length - 1] as number,
    p10: percentile(s, 10),
    p90: percentile(s, 90),
    mean: s.reduce((a, b) => a + b, 0) / s.length,
    n: s.length,
  };
}

// ---- timing ----

export interface Timing extends Summary {
  readonly warmup: number;
  /** Milliseconds of each timed repetition, in run order. */
  readonly samples: readonly number[];
}

/** Runs fn `warmup` times untimed, then `reps` times timed one by one (awaiting each). */
export async function time(fn: () => unknown, o: { warmup: number; reps: number }): Promise<Timing> {
  for (let i = 0; i < o.warmup; i++) await fn();
  const samples: number[] = [];
  for (let i = 0; i < o.reps; i++) {
    const t0 = performance.now();
    await fn();
    samples.push(performance.now() - t0);
  }
  return { ...summarize(samples), warmup: o.warmup, samples };
}

/** Spread as text: p10–p90 around the median, in percent of it. */
export function spreadText(t: Summary): string {
  const lo = ((t.p10 - t.median) / t.median) * 100;
  const hi = ((t.p90 - t.median) / t.median) * 100;
  return `${lo.toFixed(0)}%/+${hi.toFixed(0)}%`;
}

/**
 * Awaits p while a timer holds the event loop open. Needed around Engine.create with threads > 1:
 * the pool's workers are unref'd before they report ready, so nothing else keeps Node waiting for them.
 */
export async function keepAlive<T>(p: Promise<T>): Promise<T> {
  const timer = setInterval(() => undefined, 1000);
  try {
    return await p;
  } finally {
    clearInterval(timer);
  }
}

// ---- verification ----

export interface Agreement {
  readonly maxAbsDiff: number;
  readonly maxAbsRef: number;
  readonly relative: number;
}

export function compareOutputs(actual: ArrayLike<number>, reference: ArrayLike<number>): Agreement {
  if (actual.length !== reference.length) throw new RangeError(`compareOutputs: ${actual.length} values against ${reference.length}`);
  let maxAbsDiff = 0;
  let maxAbsRef = 0;
  for (let i = 0; i < reference.length; i++) {
    const a = actual[i] as number;
    const r = reference[i] as number;
    const d = Math.abs(a - r);
    // NaN never compares greater: a NaN anywhere makes the difference infinite.
    maxAbsDiff = Number.isNaN(d) ? Infinity : Math.max(maxAbsDiff, d);
    maxAbsRef = Math.max(maxAbsRef, Math.abs(r));
  }
  return { maxAbsDiff, maxAbsRef, relative: maxAbsRef > 0 ? maxAbsDiff / maxAbsRef : maxAbsDiff };
}

export class VerificationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VerificationError';
  }
}

/** Throws unless `actual` agrees with `reference` within VERIFY_RELATIVE. */
export function verifyOutputs(label: string, actual: ArrayLike<number>, reference: ArrayLike<number>, referenceLabel: string): Agreement {
  const a = compareOutputs(actual, reference);
  if (!(a.relative < VERIFY_RELATIVE)) {
    throw new VerificationError(`${label} disagrees with ${referenceLabel}: max |diff| ${a.maxAbsDiff.toExponential(3)} against max |value| ${a.maxAbsRef.toExponential(3)} (relative ${a.relative.toExponential(3)}, limit ${VERIFY_RELATIVE}); not timing a wrong computation`);
  }
  return a;
}

// ---- environment ----

const require = createRequire(import.meta.url);

/** The version in a package's package.json, or null when it is not installed. */
export function packageVersion(name: string): string | null {
  const candidates = [join(ROOT, 'node_modules', name, 'package.json')];
  try {
    candidates.push(require.resolve(`${name}/package.json`));
  } catch {
    // Packages whose `exports` hide package.json are found by path above.
  }
  for (const p of candidates) {
    try {
      const v = (JSON.parse(readFileSync(p, 'utf8')) as { version?: unknown }).version;
      if (typeof v === 'string') return v;
    } catch {
      // Try the next candidate.
    }
  }
  return null;
}

function git(args: string[]): string | null {
  try {
    return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

/** SIMD-related flags from /proc/cpuinfo (Linux), which explain what native engines can use. */
function cpuFlags(): string[] | null {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags'));
    if (line === undefined) return null;
    const flags = new Set(line.slice(line.indexOf(':') + 1).trim().split(/\s+/));
    return ['sse4_2', 'avx', 'avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'amx_tile'].filter((f) => flags.has(f));
  } catch {
    return null;
  }
}

/** The kernel modules in build/ that this run loaded: size, modification time and hash prefix. */
function kernelBuilds(): Record<string, { bytes: number; modified: string; sha256: string } | null> {
  const out: Record<string, { bytes: number; modified: string; sha256: string } | null> = {};
  for (const v of ['simd', 'relaxed']) {
    const path = join(ROOT, 'build', `parsimony-${v}.wasm`);
    try {
      const bytes = readFileSync(path);
      out[v] = { bytes: bytes.length, modified: statSync(path).mtime.toISOString(), sha256: createHash('sha256').update(bytes).digest('hex').slice(0, 16) };
    } catch {
      out[v] = null;
    }
  }
  return out;
}

export interface Environment {
  readonly date: string;
  readonly cpu_model: string;
  readonly cores: number;
  readonly cpu_flags: readonly string[] | null;
  readonly available_parallelism: number;
  /** 1, 5 and 15-minute load averages when the benchmark started and when it ended (its own threads included). */
  readonly load_average_start: readonly number[];
  readonly load_average_end: readonly number[];
  /** Cores used by other processes (and stolen) on average during the run; null where /proc is missing. */
  readonly cpu_contention: ReturnType<typeof otherCpuLoad>;
  readonly total_memory_gib: number;
  readonly platform: string;
  readonly arch: string;
  readonly node: string;
  readonly v8: string;
  readonly git_commit: string | null;
  /** Whether tracked files differ from the commit (the numbers may then not be reproducible from it). */
  readonly git_dirty: boolean | null;
  readonly packages: Readonly<Record<string, string | null>>;
  /** The kernel modules in build/ when the benchmark started (the loader reads them once per process). */
  readonly kernel_builds: Readonly<Record<string, unknown>>;
  /** True when build/ was rewritten while the benchmark ran: rows may then mix two builds. */
  readonly kernel_builds_changed_during_run: boolean;
  readonly warmup: number;
  readonly reps: number;
  readonly quick: boolean;
  readonly [extra: string]: unknown;
}

/** The machine, runtime, engine versions and run settings; `extra` adds bench-specific fields. */
export function environment(options: BenchOptions, packages: readonly string[], extra: Record<string, unknown> = {}): Environment {
  const cpus = os.cpus();
  const status = git(['status', '--porcelain', '--untracked-files=no']);
  return {
    date: new Date().toISOString(),
    cpu_model: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    cpu_flags: cpuFlags(),
    available_parallelism: typeof os.availableParallelism === 'function' ? os.availableParallelism() : cpus.length,
    load_average_start: windowStart.load.map((x) => round(x, 2)),
    load_average_end: os.loadavg().map((x) => round(x, 2)),
    cpu_contention: otherCpuLoad(),
    total_memory_gib: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    platform: `${os.type()} ${os.release()}`,
    arch: process.arch,
    node: process.versions.node,
    v8: process.versions.v8,
    git_commit: git(['rev-parse', 'HEAD']),
    git_dirty: status === null ? null : status.length > 0,
    packages: Object.fromEntries(packages.map((p) => [p, packageVersion(p)])),
    kernel_builds: windowStart.builds,
    kernel_builds_changed_during_run: JSON.stringify(kernelBuilds()) !== JSON.stringify(windowStart.builds),
    warmup: options.warmup,
    reps: options.reps,
    quick: options.quick,
    ...extra,
  };
}

// ---- output ----

export type Cell = string | number | null;

function formatCell(v: Cell): string {
  if (v === null) return '—';
  if (typeof v === 'string') return v;
  if (!Number.isFinite(v) || Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  return v.toFixed(3);
}

/** Prints an aligned text table; numbers are right-aligned. */
export function printTable(title: string, columns: readonly string[], rows: ReadonlyArray<readonly Cell[]>): void {
  const text = rows.map((r) => r.map(formatCell));
  const widths = columns.map((c, i) => Math.max(c.length, ...text.map((r) => (r[i] ?? '').length)));
  const numeric = columns.map((_, i) => rows.every((r) => typeof r[i] === 'number' || r[i] === null));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (numeric[i] ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number))).join('  ').trimEnd();
  console.log(`\n${title}`);
  console.log(line(columns));
  console.log(line(widths.map((w) => '-'.repeat(w))));
  for (const r of text) console.log(line(r));
}

/** Cores taken by others above which a run counts as disturbed. */
export const DISTURBED_CORES = 0.2;

/** One line on how much else ran on the machine during the run, for the reader of the tables. */
export function contentionLine(env: Environment): string {
  const c = env.cpu_contention;
  const load = `load average ${env.load_average_start.join(' / ')} at start`;
  const rebuilt = env.kernel_builds_changed_during_run ? '\nWARNING: build/ was rewritten during the run; kernel_builds records the files at its start, which the loader read unless it reached a variant only after the rewrite' : '';
  if (c === null) return `machine: ${env.cores} cores, ${load}; other processes' CPU use unknown (no /proc)${rebuilt}`;
  const line = `machine: ${env.cores} cores; other processes kept ${c.other_processes_cores} core(s) busy on average over ${c.seconds} s (steal ${c.steal_cores}); ${load}`;
  const lost = c.other_processes_cores + c.steal_cores;
  return (lost >= DISTURBED_CORES ? `${line}\nWARNING: this run shared the machine; multi-threaded figures and ratios are not representative, repeat it when the machine is quiet` : line) + rebuilt;
}

/** Writes bench/results/<name>.json and returns its path. */
export function writeResults(name: string, data: unknown): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const path = join(RESULTS_DIR, `${name}.json`);
  writeFileSync(path, `${JSON.stringify(data, null, 2)}\n`);
  return path;
}

export function round(x: number, digits = 4): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** A seeded generator (mulberry32) for benchmark data. */
export class BenchRng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** n values uniform in [lo, hi). */
  floats(n: number, lo = -1, hi = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * this.next();
    return out;
  }
  /** n integers in [0, k). */
  ints(n: number, k: number): Int32Array {
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) out[i] = Math.floor(this.next() * k);
    return out;
  }
}
