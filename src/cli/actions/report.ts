/** `parsimony report RUN...`: one self-contained HTML page from one or more run directories. */
import { readdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { renderReport } from '../../report/html.js';
import { isRunDir, readRun, RUN_FILES, type RunData } from '../../report/run.js';
import { InputError } from '../errors.js';
import { Output } from '../output.js';

interface ReportFlags {
  out?: string;
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

export async function writeReport(runDirs: readonly string[], out: string, title?: string): Promise<{ file: string; runs: RunData[] }> {
  const runs = runDirs.map(readRun);
  const html = await renderReport(runs, title ?? (runs.length === 1 ? `Parsimony run ${runs[0]?.name ?? ''}` : `Parsimony sweep: ${runs.length} runs`));
  writeFileSync(out, html);
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

export function reportCommand(program: Command): void {
  program.command('report')
    .argument('<runs...>', 'run directories (from parsimony train --out), or a folder of them (a sparsity sweep)')
    .description('write one self-contained HTML report (works offline): training curves, kernel activity per class, multiply-adds per image and per class, the cheapest and costliest test images, accuracy against compute (runtime knob, sparsity sweep), the benchmark table')
    .addOption(new Option('--out <file>', `the HTML file (default: ${RUN_FILES.report} in the run directory, or in the folder of runs)`))
    .addOption(new Option('--title <text>', 'the page title'))
    .addOption(new Option('--json', 'print the result as JSON on stdout').default(false))
    .addHelpText('after', `
The first run is shown in detail; with several runs, the sparsity-weight curve has one point per run.
Sections whose measurements are missing say which command makes them (eval, eval --thresholds/--budgets, bench).

Examples:
  parsimony report runs/s1
  parsimony report runs/sweep            # every run directory inside runs/sweep
  parsimony report runs/s0.5 runs/s1 runs/s2 --out sweep.html`)
    .action(async (args: string[], f: ReportFlags) => {
      const out = new Output(f);
      const { runs, sweepDir } = findRuns(args);
      const file = f.out ?? join(runs.length === 1 ? (runs[0] as string) : (sweepDir ?? commonParent(runs)), RUN_FILES.report);
      const r = await writeReport(runs, file, f.title);
      out.result(`wrote ${file} (${r.runs.length} run${r.runs.length === 1 ? '' : 's'})`);
      out.data({ file, runs });
    });
}
