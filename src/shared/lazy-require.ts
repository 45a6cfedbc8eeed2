// Libraries that only some configurations need are loaded by their first use,
// not when the gateway starts: every library loaded costs each serving process
// memory and start time whether a configuration uses it or not (measured on
// Node 24, private memory: ioredis ~17 MB, ajv ~15 MB, jose and
// fast-xml-parser ~5 MB each). Synchronous (require of CommonJS or of ESM
// without top-level await, on Node and Bun), so parse and compile stay
// synchronous.

import { createRequire } from 'node:module';

const load = createRequire(import.meta.url);

/** `specifier` loaded now (for a caller that keeps what it loads itself). */
export function loadModule<T>(specifier: string): T {
  return load(specifier) as T;
}

/** A getter that loads `specifier` on its first call and returns the same module after. */
export function lazyRequire<T>(specifier: string): () => T {
  let loaded: T | undefined;
  return () => (loaded ??= load(specifier) as T);
}
