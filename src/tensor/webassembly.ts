/**
 * The WebAssembly types that Parsimony's declarations name, as empty interfaces that merge with the
 * DOM lib's: a Node project whose tsconfig has no DOM lib type-checks them too.
 */
declare global {
  namespace WebAssembly {
    interface Memory {}
    interface Module {}
  }
}
export {};
