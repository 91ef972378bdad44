/** JSON from files and metadata: nesting is bounded before anything (parser, schema, printer) recurses on it. */

/** Nesting (lists and objects) deeper than this is refused. */
export const MAX_JSON_DEPTH = 256;

/** JSON text nested deeper than allowed. */
export class JsonDepthError extends Error {
  override readonly name = 'JsonDepthError';
}

/** How deep lists and objects nest in JSON text (strings skipped); stops counting past `limit`. */
export function jsonDepth(text: string, limit = Infinity): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) {
        max = depth;
        if (max > limit) return max;
      }
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return max;
}

/** JSON.parse, refusing text nested more than `maxDepth` deep with a JsonDepthError (a SyntaxError for text that is not JSON). */
export function parseJson(text: string, maxDepth = MAX_JSON_DEPTH): unknown {
  if (jsonDepth(text, maxDepth) > maxDepth) throw new JsonDepthError(`lists and objects are nested more than ${maxDepth} deep`);
  return JSON.parse(text) as unknown;
}
