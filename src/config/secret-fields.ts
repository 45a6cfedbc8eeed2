// Which values of a configuration are secrets, so that what shows a
// configuration's values (`portico diff`, the control plane's diff) never
// prints one. Decided by the place of the value in the document:
//
// - keys named like a credential anywhere: `password` (redis), `client_secret`
//   (auth/client-credentials), `cypher_key` and `secret_url` (auth/validator and
//   auth/signer key material: a `base64key://` URL is the key itself), and any
//   `..._secret`, `..._password`, `..._token`, `api_key`, `secret_access_key`;
// - `auth/api-keys` `keys[].key` and `auth/basic` `users` values (bcrypt hashes);
// - header values that carry credentials: a `headers`-like object's
//   `Authorization`, `Proxy-Authorization`, `Cookie`, `X-Api-Key`, ... member,
//   and a martian modifier's `value` next to such a `name`;
// - the password of a URL (`amqp://user:password@host`), anywhere: masked in place.

import { isPlainObject, type JsonPath } from './json-path.ts';

/** What a masked value reads as. */
export const MASK = '***';

const SECRET_KEY = /^(?:.*_)?(?:password|passwd|secret|token|api_?key|cypher_key|secret_url|secret_access_key|private_key_pem)$/i;
/** Ends in a credential word but names where to find one, not the credential. */
const NOT_SECRET_KEY = /(?:_url|_path|_file|_name|_key_name|_header|_header_name)$/i;
const CREDENTIAL_HEADER = /^(?:authorization|proxy-authorization|cookie|set-cookie|x-api-key|api-key|x-auth-token|x-access-token)$/i;
const URL_PASSWORD = /^([a-z][a-z0-9+.-]*:\/\/[^/?#@:\s]*):([^/?#@\s]*)@/i;

/**
 * Whether the value at `path` (from the document's root) is a secret.
 * `parent` is the object holding it, when known (for martian's name/value pairs).
 */
export function isSecretPath(path: JsonPath, parent?: unknown): boolean {
  const last = path[path.length - 1];
  if (typeof last !== 'string') return false;
  if (last === 'secret_url' || last === 'cypher_key') return true;
  if (SECRET_KEY.test(last) && !NOT_SECRET_KEY.test(last)) return true;
  if (CREDENTIAL_HEADER.test(last)) return true;
  const within = (name: string) => path.includes(name);
  if (last === 'key' && within('auth/api-keys') && path[path.length - 3] === 'keys') return true;
  if (path[path.length - 2] === 'users' && path[path.length - 3] === 'auth/basic') return true;
  if (last === 'value' && isPlainObject(parent) && typeof parent.name === 'string' && CREDENTIAL_HEADER.test(parent.name)) return true;
  return false;
}

/** `amqp://user:secret@host` -> `amqp://user:***@host`; other strings unchanged. */
export function maskUrlPassword(s: string): string {
  return s.replace(URL_PASSWORD, (_m, head: string) => `${head}:${MASK}@`);
}

/** A copy of `value` (found at `path`) with every secret in it replaced by MASK. */
export function maskSecrets(value: unknown, path: JsonPath = [], parent?: unknown): unknown {
  if (isSecretPath(path, parent)) return MASK;
  if (typeof value === 'string') return maskUrlPassword(value);
  if (Array.isArray(value)) return value.map((v, i) => maskSecrets(v, [...path, i], value));
  if (!isPlainObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = maskSecrets(v, [...path, k], value);
  }
  return out;
}
