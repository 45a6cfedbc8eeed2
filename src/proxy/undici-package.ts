// undici, the package itself, loaded once, when first needed. On Node this is
// the module `import 'undici'` gives. Bun answers `import 'undici'` with a
// shim of its own over its fetch: no dispatch API, an Agent that drops its
// connect options (the CA, pins and ciphers of jwk_local_ca,
// jwk_fingerprints, cipher_suites) and has no close(). The package itself
// runs on Bun, so it is loaded from its file; there it costs ~25 MB and
// ~0.5 s, so only what needs it loads it.

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

export type Undici = typeof import('undici');

let loading: Promise<Undici> | undefined;

export function loadUndici(): Promise<Undici> {
  if (loading === undefined) {
    const main = join(dirname(createRequire(import.meta.url).resolve('undici/package.json')), 'index.js');
    loading = import(pathToFileURL(main).href).then((m: Undici & { default?: Undici }) => m.default ?? m);
  }
  return loading;
}
