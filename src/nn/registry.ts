/** Builders of modules from their specs, one entry per module type; each module file registers its own. */
import type { Module, ModuleSpec } from './module.js';

export class UnknownModuleError extends Error {
  constructor(type: string, known: readonly string[]) {
    super(`unknown layer type '${type}' (known: ${known.join(', ')})`);
    this.name = 'UnknownModuleError';
  }
}

const builders = new Map<string, (spec: ModuleSpec) => Module>();

export function registerModule(type: string, build: (spec: ModuleSpec) => Module): void {
  if (builders.has(type)) throw new Error(`module type '${type}' is registered twice`);
  builders.set(type, build);
}

export function buildModule(spec: ModuleSpec): Module {
  if (typeof spec !== 'object' || spec === null || typeof spec.type !== 'string') throw new TypeError(`a layer spec should be an object with a string 'type', got ${JSON.stringify(spec)}`);
  const build = builders.get(spec.type);
  if (build === undefined) throw new UnknownModuleError(spec.type, [...builders.keys()].sort());
  return build(spec);
}
