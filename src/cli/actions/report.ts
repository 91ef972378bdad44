/** `parsimony report RUN...`: one self-contained HTML page from one or more run directories. */
import { existsSync, readdirSync } from 'node:fs';
import { writeFileAtomic } from '../../io/node-files.js';
import { dirname, join, resolve } from 'node:path';
import { renderReport } from '../../report/html.js';
import { isRunDir, readRun, RUN_FILES, type BaselineRecord, type RunData } from '../../report/run.js';
import type { DataOptions } from '../../data/index.js';
import { InputError } from '../errors.js';
import { dataFlags, dataForModel, openModel } from '../inputs.js';
import { Output } from '../output.js';
import { withEngine } from './common.js';

interface ReportFlags extends Partial<DataOptions> {
  out?: string;
  baseline?: string;
  title?: string;
  json: boolean;
}

/** Run directories named by the arguments: each a run directory, or a folder whose subfolders are runs (a sweep). */
export function findRuns(args: readonly string[]): { runs: string[]; sweepDir: string | null } {
  const runs: string[] = [];
  let sweepDir: string | null = null;
  for (const a of args) {
    if (isRunDir(a)) {
      runs.push(a);
      continue;
    }
    let names: string[];
    try {
      names = readdirSync(a).sort();
    } catch {
      throw new InputError(`${a}: no such run directory (expected a folder from parsimony train --out, or a folder of them)`);
    }
    const inside = names.map((n) => join(a, n)).filter(isRunDir);
    if (inside.length === 0) throw new InputError(`${a}: neither a run directory (no ${RUN_FILES.config}) nor a folder of run directories`);
    runs.push(...inside);
    sweepDir ??= a;
  }
  return { runs, sweepDir };
}

/** The dense run `dir` as the baseline of a gated run: its test accuracy from its eval.json. */
export function baselineOf(dir: string, how: string): BaselineRecord {
  const dense = readRun(dir);
  if (dense.eval === null) throw new InputError(`--baseline ${dir}: no ${RUN_FILES.eval} (run parsimony eval ${dir} first)`);
  if (dense.eval.layers.length > 0) throw new InputError(`--baseline ${dir}: expected the dense network (trained without --lkam), but its model has LKAMs`);
  return { dir, accuracy: dense.eval.accuracy, images: dense.eval.images, how };
}

export async function writeReport(runDirs: readonly string[], out: string, title?: string, baseline?: BaselineRecord): Promise<{ file: string; runs: RunData[] }> {
  const runs = runDirs.map(readRun);
  if (baseline !== undefined && runs[0] !== undefined) runs[0] = { ...runs[0], baseline };
  const html = await renderReport(runs, title ?? (runs.length === 1 ? `Parsimony run ${runs[0]?.name ?? ''}` : `Parsimony sweep: ${runs.length} runs`));
  writeFileAtomic(out, html);
  return { file: out, runs };
}

function commonParent(dirs: readonly string[]): string {
  const parts = dirs.map((d) => resolve(d).split('/'));
  const first = parts[0] ?? [];
  let n = 0;
  while (n < first.length && parts.every((p) => p[n] === first[n])) n++;
  const common = first.slice(0, n).join('/') || '/';
  return dirs.every((d) => resolve(d) === common) ? dirname(common) : common;
}

/**
 * Refuses a run whose measurements (eval.json) were made on other classes or image sizes than its model
 * reads, and with data options, a run whose model does not fit that data.
 */
export async function checkRuns(runs: readonly RunData[], f: Partial<DataOptions>): Promise<void> {
  const withData = Object.keys(dataFlags(f)).length > 0;
  const models = runs.filter((r) => existsSync(join(r.dir, RUN_FILES.model)));
  if (models.length === 0) return;
  await withEngine(1, async () => {
    for (const r of models) {
      const src = openModel(r.dir);
      const ev = r.eval;
      const names = src.meta.classNames;
      if (ev !== null && names !== undefined && (ev.classNames.length !== names.length || ev.classNames.some((n, i) => n !== names[i]))) {
        throw new InputError(`${join(r.dir, RUN_FILES.eval)}: measured on classes ${ev.classNames.slice(0, 4).join(', ')}${ev.classNames.length > 4 ? ', ...' : ''} (${ev.classNames.length}), but ${src.file} has ${names.slice(0, 4).join(', ')}${names.length > 4 ? ', ...' : ''} (${names.length}); measure it again with parsimony eval ${r.dir}`);
      }
      const shape = ev?.cheapest[0]?.shape;
      if (shape !== undefined && shape.join('x') !== src.meta.inputShape.join('x')) {
        throw new InputError(`${join(r.dir, RUN_FILES.eval)}: measured on ${shape.join('x')} images, but ${src.file} reads ${src.meta.inputShape.join('x')} images; measure it again with parsimony eval ${r.dir}`);
      }
      if (withData) await dataForModel(src, f);
    }
  });
}

export async function run(args: string[], f: ReportFlags): Promise<void> {
      const out = new Output(f);
      const { runs, sweepDir } = findRuns(args);
      await checkRuns(runs.map(readRun), f);
      const file = f.out ?? join(runs.length === 1 ? (runs[0] as string) : (sweepDir ?? commonParent(runs)), RUN_FILES.report);
      const r = await writeReport(runs, file, f.title, f.baseline === undefined ? undefined : baselineOf(f.baseline, 'given with --baseline'));
      out.result(`wrote ${file} (${r.runs.length} run${r.runs.length === 1 ? '' : 's'})`);
      out.data({ file, runs });
}
