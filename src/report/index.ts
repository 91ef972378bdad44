// The report layer's public API; re-exports only.
export { renderReport } from './html.js';
export { renderSvg, type Plot } from './plots.js';
export { readRun, readMetrics, isRunDir, RUN_FILES, RunFileError, type RunData, type EpochMetrics, type EvalRecord, type KnobRecord, type BenchRecord, type BenchRow, type Thumbnail } from './run.js';
