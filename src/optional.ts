/**
 * Packages that only a part of Parsimony needs (sharp, vega, vega-lite, onnx-proto, commander,
 * cli-progress) are optional dependencies, loaded by that part on first use. Imports nothing.
 */

/** An optional package that a feature needs is not installed: `npm install <name>` fixes it. */
export class MissingPackageError extends Error {
  override readonly name = 'MissingPackageError';
  constructor(readonly packageName: string, readonly feature: string, options?: ErrorOptions) {
    super(`${feature} needs the package ${packageName}, which is not installed (npm install ${packageName})`, options);
  }
}

/** Whether `e` says that `name` itself (not something it imports) cannot be found. */
export function isMissingPackage(e: unknown, name: string): boolean {
  const err = e as { code?: unknown; message?: unknown };
  if (err === null || typeof err !== 'object' || typeof err.message !== 'string') return false;
  if (err.code !== 'ERR_MODULE_NOT_FOUND' && err.code !== 'MODULE_NOT_FOUND') return false;
  return err.message.includes(`'${name}'`) || err.message.includes(`"${name}"`) || err.message.includes(`/node_modules/${name}/`);
}

/**
 * Runs `load` (a literal `() => import('name')`, so that bundlers and the type checker see it); a
 * missing package becomes a MissingPackageError naming it and the feature.
 */
export async function importOptional<T>(name: string, feature: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (e) {
    if (isMissingPackage(e, name)) throw new MissingPackageError(name, feature, { cause: e });
    throw e;
  }
}
