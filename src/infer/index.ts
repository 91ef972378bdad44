// The inference layer's public API; re-exports only.
export { compile, InferencePlan, type CompileOptions, type PlanMemory, type RunOptions, type Telemetry, type LayerTelemetry } from './plan.js';
export { registerCompiler, compilableTypes, CompileError, type CompileContext, type ModuleCompiler } from './compilers.js';
export { pruneStatic, denseTwin, kernelsNeverOn, registerPruneRule, PruneError, type PruneContext, type PruneOptions, type PruneResult, type PruneRule } from './prune.js';
export type { Node as InferNode, Value as InferValue } from './ir.js';
export { knobCurve, knobGrid, type KnobData, type KnobOptions, type KnobPoint, type KnobSetting } from './knob.js';
export { neverOnRemovals, planMacs, timeCalls, summarizeTimes, type CallTiming, type PlanMacs } from './measure.js';
