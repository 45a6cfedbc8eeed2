// `auth/api-keys` (KrakenD Enterprise, free in Portico): role-based access
// with API keys. The service level declares the keys, their roles, where
// clients put them (`strategy`, `identifier`) and how they are stored (`hash`,
// `salt`); an endpoint is protected by its own `auth/api-keys` with the
// `roles` it accepts (and optional `strategy` / `identifier` overrides).
//
// Keys never stay in the parsed options: parse() turns each one into the
// fixed-length digest the request path compares (SHA-256 of a `plain` key,
// the configured digest otherwise). A request's key is digested the same way
// and looked up in a Map keyed by the SHA-256 of that digest, so the lookup
// reveals nothing about the stored keys, then compared with
// crypto.timingSafeEqual. Rejections carry no key material, in the response
// (empty body) or in the log.

import { createHash } from 'node:crypto';
import { checkFields, checkValue, expectObject, quoteList, type ObjectRules } from '../config/fields.ts';
import type { IssueCollector } from '../config/issues.ts';
import { formatPath, type JsonPath } from '../config/json-path.ts';
import { strings } from '../config/read.ts';
import { PolicyError } from '../proxy/errors.ts';
import { parseQuery } from '../proxy/query.ts';
import type { ProxyRequest } from '../proxy/types.ts';
import { HTTP_TOKEN } from '../proxy/headers.ts';
import { headerValue, sameDigest, schemeCredentials, sha256, sha256Hex } from './credentials.ts';
import { addUpstreamHeader, type Guard, type Namespace } from './namespace.ts';

const NAME = 'auth/api-keys';

export const API_KEY_STRATEGIES = ['header', 'query_string'] as const;
export const API_KEY_HASHES = ['plain', 'fnv128', 'sha256', 'sha1'] as const;
export type ApiKeyStrategy = (typeof API_KEY_STRATEGIES)[number];
export type ApiKeyHash = (typeof API_KEY_HASHES)[number];

/** The value propagated to backends when the endpoint accepts any valid key (`"roles": []`). */
export const ANY_ROLE = 'ANY';

/**
 * Status for a valid key that holds none of the endpoint's roles. KrakenD
 * documents 401 for it ("API Keys not having the right role, or
 * unauthenticated requests, will receive a 401 Unauthorized"), unlike
 * auth/validator's 403 for a missing JWT role.
 */
export const ROLE_REJECTION_STATUS = 401;

/** One configured key: the digest a presented key must produce (hex), and its roles. */
export interface ApiKeyEntry {
  digest: string;
  roles: string[];
}

export interface ApiKeysServiceOptions {
  level: 'service';
  strategy: ApiKeyStrategy;
  /** Header or query parameter name, its default resolved (`Authorization` or `key`). */
  identifier: string;
  hash: ApiKeyHash;
  salt: string;
  /** Lower-case header name sent to backends with the matched role; '' for none. */
  propagateRole: string;
  keys: ApiKeyEntry[];
}

export interface ApiKeysEndpointOptions {
  level: 'endpoint';
  /** Roles accepted (any one is enough); empty: any valid key. */
  roles: string[];
  strategy?: ApiKeyStrategy;
  identifier?: string;
}

export type ApiKeysOptions = ApiKeysServiceOptions | ApiKeysEndpointOptions;

const SERVICE_RULES: ObjectRules = {
  keys: 'custom',
  strategy: { kind: 'string', oneOf: API_KEY_STRATEGIES },
  identifier: 'custom',
  hash: { kind: 'string', oneOf: API_KEY_HASHES },
  salt: 'string',
  propagate_role: 'custom',
};

const ENDPOINT_RULES: ObjectRules = {
  roles: 'string[]',
  strategy: { kind: 'string', oneOf: API_KEY_STRATEGIES },
  identifier: 'custom',
  client_max_rate: 'custom',
};

const KEY_RULES: ObjectRules = { key: 'custom', roles: 'string[]' };

/** Digest length in bytes of each stored-key hash (`plain` keys are kept as their SHA-256). */
const DIGEST_BYTES: Readonly<Record<ApiKeyHash, number>> = { plain: 32, sha256: 32, sha1: 20, fnv128: 16 };

/** Headers a role must not be propagated in: the gateway owns them. */
const RESERVED_UPSTREAM = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'te', 'trailer', 'upgrade', 'proxy-connection']);

export const authApiKeys: Namespace<ApiKeysOptions> = {
  name: NAME,
  scopes: ['service', 'endpoint'],
  order: 410,
  policy: true,
  parse(raw, path, c, ctx) {
    if (ctx.scope === 'service') return parseService(raw, path, c);
    return parseEndpoint(raw, path, c, ctx.service.get(NAME) as ApiKeysOptions | undefined);
  },
  compile(options, ctx) {
    if (options.level === 'service') {
      keyTable(options); // built once per Plan, shared by the endpoints
      return undefined;
    }
    const service = ctx.serviceOptions(authApiKeys);
    if (service?.level !== 'service') {
      // parse() reports this; a Plan must never serve the endpoint open.
      throw new Error(`${NAME} on endpoint ${ctx.endpoint?.endpoint ?? '?'}: no service-level ${NAME} declares the keys`);
    }
    return { guard: compileGuard(options, service) };
  },
};

// ---------------------------------------------------------------- parse

function parseService(raw: unknown, path: JsonPath, c: IssueCollector): ApiKeysServiceOptions | undefined {
  if (!expectObject(c, raw, path, 'an object with the API keys ({"keys": [{"key": ..., "roles": [...]}]})')) return undefined;
  const valid = checkFields(c, raw, path, SERVICE_RULES, `the service-level "${NAME}" namespace`);
  const strategy = (valid.has('strategy') ? raw.strategy : 'header') as ApiKeyStrategy;
  const hash = (valid.has('hash') ? raw.hash : 'plain') as ApiKeyHash;
  const salt = valid.has('salt') ? (raw.salt as string) : '';
  let ok = !['strategy', 'hash', 'salt'].some((k) => k in raw && !valid.has(k));

  const identifier = 'identifier' in raw ? checkIdentifier(c, raw.identifier, [...path, 'identifier'], strategy) : defaultIdentifier(strategy);
  if (identifier === undefined) ok = false;
  const propagateRole = 'propagate_role' in raw ? checkPropagateRole(c, raw.propagate_role, [...path, 'propagate_role']) : '';
  if (propagateRole === undefined) ok = false;
  if (hash === 'plain' && salt !== '') {
    c.warning([...path, 'salt'], 'a salt only with "hash": "sha256", "sha1" or "fnv128" (plain keys are not hashed)', 'a salt with "hash": "plain": it has no effect');
  }

  let keys: ApiKeyEntry[] | undefined;
  if (!('keys' in raw)) c.missing([...path, 'keys'], 'an array of API keys such as [{"key": "...", "roles": ["admin"]}]');
  else keys = parseKeys(c, raw.keys, [...path, 'keys'], hash, !('hash' in raw) || valid.has('hash'));
  if (keys === undefined || !ok) return undefined;
  return { level: 'service', strategy, identifier: identifier!, hash, salt, propagateRole: propagateRole!, keys };
}

function defaultIdentifier(strategy: ApiKeyStrategy): string {
  return strategy === 'query_string' ? 'key' : 'Authorization';
}

function checkIdentifier(c: IssueCollector, value: unknown, path: JsonPath, strategy: ApiKeyStrategy): string | undefined {
  if (!checkValue(c, value, path, { kind: 'string' })) return undefined;
  const name = value as string;
  if (name === '') {
    c.invalid(path, strategy === 'header' ? 'a header name such as "Authorization" or "X-Key"' : 'a query parameter name such as "key"', value);
    return undefined;
  }
  if (strategy === 'header' && !HTTP_TOKEN.test(name)) {
    c.invalid(path, 'a valid header name such as "X-Key" (letters, digits and !#$%&\'*+-.^_`|~)', value);
    return undefined;
  }
  return name;
}

function checkPropagateRole(c: IssueCollector, value: unknown, path: JsonPath): string | undefined {
  if (!checkValue(c, value, path, { kind: 'string' })) return undefined;
  const name = value as string;
  if (name === '') return '';
  if (!HTTP_TOKEN.test(name)) {
    c.invalid(path, 'a valid header name such as "X-Krakend-Role", or "" to propagate nothing', value);
    return undefined;
  }
  if (RESERVED_UPSTREAM.has(name.toLowerCase())) {
    c.invalid(path, `a header name the gateway does not manage itself (not ${quoteList([...RESERVED_UPSTREAM])})`, value);
    return undefined;
  }
  return name.toLowerCase();
}

/** `"***" (a string of 36 characters)`: what an issue may say about a key. */
function hidden(value: unknown): string {
  if (typeof value === 'string') return `"***" (a string of ${value.length} character${value.length === 1 ? '' : 's'})`;
  if (Array.isArray(value)) return '*** (an array)';
  return `*** (${value === null ? 'null' : typeof value})`;
}

function parseKeys(
  c: IssueCollector,
  value: unknown,
  path: JsonPath,
  hash: ApiKeyHash,
  hashValid: boolean,
): ApiKeyEntry[] | undefined {
  if (!Array.isArray(value)) {
    c.invalid(path, 'an array of API keys such as [{"key": "...", "roles": ["admin"]}]', value);
    return undefined;
  }
  if (value.length === 0) c.warning(path, 'at least one API key', '[] (an empty array): every protected endpoint refuses every request');
  const entries: ApiKeyEntry[] = [];
  const seen = new Map<string, number>();
  let ok = true;
  value.forEach((item, i) => {
    const at = [...path, i];
    if (!expectObject(c, item, at, 'an API key object {"key": "...", "roles": [...]}')) return void (ok = false);
    const valid = checkFields(c, item, at, KEY_RULES, 'an API key');
    if ('roles' in item && !valid.has('roles')) ok = false;
    if (!('key' in item)) {
      c.missing([...at, 'key'], 'the secret key clients send');
      return void (ok = false);
    }
    const key = item.key;
    if (typeof key !== 'string' || key === '') {
      c.error([...at, 'key'], 'a non-empty string', hidden(key));
      return void (ok = false);
    }
    if (!hashValid) return; // the hash field is reported; the digest cannot be checked against it
    const digest = storedDigest(key, hash);
    if (digest === undefined) {
      const bytes = DIGEST_BYTES[hash];
      c.error(
        [...at, 'key'],
        `the ${hash} digest of the salt followed by the key, as ${bytes * 2} hex characters or base64 of ${bytes} bytes ("hash": ${JSON.stringify(hash)})`,
        hidden(key),
      );
      return void (ok = false);
    }
    const hex = digest.toString('hex');
    const first = seen.get(hex);
    if (first !== undefined) {
      c.error([...at, 'key'], 'each API key once (a key has one set of roles)', `"***" (the same key as ${formatPath([...path, first])})`);
      return void (ok = false);
    }
    seen.set(hex, i);
    entries.push({ digest: hex, roles: strings(item.roles) ?? [] });
  });
  return ok ? entries : undefined;
}

/** The digest a presented key must produce: SHA-256 of a plain key, the configured digest otherwise. */
function storedDigest(key: string, hash: ApiKeyHash): Buffer | undefined {
  if (hash === 'plain') return sha256(Buffer.from(key, 'utf8'));
  return decodeDigest(key, DIGEST_BYTES[hash]);
}

/** A digest written as hex (any case) or base64 (standard or URL alphabet, padded or not). */
export function decodeDigest(text: string, bytes: number): Buffer | undefined {
  if (text.length === bytes * 2 && /^[0-9a-fA-F]+$/.test(text)) return Buffer.from(text, 'hex');
  const unpadded = text.replace(/={1,2}$/, '');
  if (unpadded.length !== Math.ceil((bytes * 4) / 3) || !/^[A-Za-z0-9+/_-]+$/.test(unpadded)) return undefined;
  if (unpadded.length !== text.length && text.length % 4 !== 0) return undefined;
  const decoded = Buffer.from(unpadded.replaceAll('-', '+').replaceAll('_', '/'), 'base64');
  return decoded.length === bytes ? decoded : undefined;
}

function parseEndpoint(
  raw: unknown,
  path: JsonPath,
  c: IssueCollector,
  service: ApiKeysOptions | undefined,
): ApiKeysEndpointOptions | undefined {
  if (!expectObject(c, raw, path, 'an object with the roles the endpoint accepts ({"roles": ["admin"]})')) return undefined;
  const valid = checkFields(c, raw, path, ENDPOINT_RULES, `the endpoint-level "${NAME}" namespace`);
  let ok = true;
  if ('client_max_rate' in raw) {
    c.error(
      [...path, 'client_max_rate'],
      'no per-key rate limit here (use "qos/ratelimit/router" with "strategy": "header" and "key": the API key header)',
      `${c.found([...path, 'client_max_rate'], raw.client_max_rate)}: per-key rate limits of ${NAME} are not supported by this version`,
    );
    ok = false;
  }
  if (!('roles' in raw)) {
    c.missing([...path, 'roles'], 'the roles accepted by the endpoint (any one of them is enough), or [] for any valid key');
    ok = false;
  } else if (!valid.has('roles')) ok = false;
  if ('strategy' in raw && !valid.has('strategy')) ok = false;
  const strategy = valid.has('strategy') ? (raw.strategy as ApiKeyStrategy) : undefined;

  const svc = service?.level === 'service' ? service : undefined;
  if (!svc) {
    c.error(
      path,
      `a service-level "${NAME}" ($.extra_config["${NAME}"]) declaring the keys`,
      'an endpoint asking for API keys while the service level declares none (or declares them with errors)',
    );
    ok = false;
  }
  let identifier: string | undefined;
  if ('identifier' in raw) {
    identifier = checkIdentifier(c, raw.identifier, [...path, 'identifier'], strategy ?? svc?.strategy ?? 'header');
    if (identifier === undefined) ok = false;
  } else if (strategy !== undefined && svc && strategy !== svc.strategy) {
    c.warning(
      [...path, 'strategy'],
      'an "identifier" next to a strategy that differs from the service level',
      `"strategy": ${JSON.stringify(strategy)} without "identifier": the key is read from ${strategy === 'header' ? 'header' : 'query parameter'} ${JSON.stringify(svc.identifier)} (the service-level identifier)`,
    );
  }
  if (!ok) return undefined;

  const roles = strings(raw.roles) ?? [];
  const held = new Set(svc!.keys.flatMap((k) => k.roles));
  roles.forEach((role, i) => {
    if (!held.has(role)) c.warning([...path, 'roles', i], 'a role that some API key holds (roles match case-sensitively)', `${JSON.stringify(role)}, a role no key holds`);
  });
  const options: ApiKeysEndpointOptions = { level: 'endpoint', roles };
  if (strategy !== undefined) options.strategy = strategy;
  if (identifier !== undefined) options.identifier = identifier;
  return options;
}

// ---------------------------------------------------------------- compile

interface KeyEntry {
  digest: Buffer;
  roles: readonly string[];
}

interface KeyTable {
  /** Entries by the SHA-256 (hex) of their digest. */
  byIndex: Map<string, KeyEntry>;
  /** The digest of a presented key (its bytes), comparable with KeyEntry.digest. */
  digestOf(key: Buffer): Buffer;
}

/** One table per service-level options object, i.e. per Plan. */
const tables = new WeakMap<ApiKeysServiceOptions, KeyTable>();

function keyTable(o: ApiKeysServiceOptions): KeyTable {
  let t = tables.get(o);
  if (t) return t;
  const byIndex = new Map<string, KeyEntry>();
  for (const k of o.keys) {
    const digest = Buffer.from(k.digest, 'hex');
    byIndex.set(sha256Hex(digest), { digest, roles: Object.freeze([...k.roles]) });
  }
  t = { byIndex, digestOf: digester(o.hash, Buffer.from(o.salt, 'utf8')) };
  tables.set(o, t);
  return t;
}

function digester(hash: ApiKeyHash, salt: Buffer): (key: Buffer) => Buffer {
  switch (hash) {
    case 'plain':
      return (key) => sha256(key);
    case 'sha256':
    case 'sha1':
      return (key) => createHash(hash).update(salt).update(key).digest();
    case 'fnv128':
      return (key) => fnv128(salt.length === 0 ? key : Buffer.concat([salt, key]));
  }
}

const FNV128_OFFSET_LE = [0x8d, 0xc5, 0x95, 0x62, 0x75, 0x21, 0xb8, 0x62, 0x42, 0x01, 0xbb, 0x07, 0x2e, 0x27, 0x62, 0x6c];

/**
 * FNV-1 128-bit, as Go's hash/fnv New128 (big-endian sum). Written here
 * because node:crypto has no FNV. The prime is 2^88 + 0x13b, so a multiply is
 * `h * 0x13b + (h << 88)` on 16 little-endian byte limbs.
 */
export function fnv128(data: Uint8Array): Buffer {
  let h = Uint8Array.from(FNV128_OFFSET_LE);
  let r = new Uint8Array(16);
  for (let n = 0; n < data.length; n++) {
    let carry = 0;
    for (let i = 0; i < 16; i++) {
      const v = h[i]! * 0x13b + (i >= 11 ? h[i - 11]! : 0) + carry;
      r[i] = v & 0xff;
      carry = v >>> 8;
    }
    r[0]! ^= data[n]!;
    const t = h;
    h = r;
    r = t;
  }
  return Buffer.from(h).reverse();
}

function compileGuard(o: ApiKeysEndpointOptions, svc: ApiKeysServiceOptions): Guard {
  const table = keyTable(svc);
  const strategy = o.strategy ?? svc.strategy;
  // KrakenD: an endpoint that only overrides the strategy keeps the service's identifier.
  const identifier = o.identifier ?? svc.identifier;
  const headerName = identifier.toLowerCase();
  const bearer = strategy === 'header' && headerName === 'authorization';
  const where = strategy === 'header' ? `header ${identifier}` : `query parameter ${identifier}`;

  // The role each key gets on this endpoint: the first of its roles the endpoint accepts.
  const required = new Set(o.roles);
  const matched = new Map<KeyEntry, string>();
  for (const entry of table.byIndex.values()) {
    const role = required.size === 0 ? ANY_ROLE : entry.roles.find((r) => required.has(r));
    if (role !== undefined) matched.set(entry, role);
  }
  const propagate = svc.propagateRole;

  const presented = (req: ProxyRequest): Buffer | undefined => {
    if (strategy === 'query_string') {
      const q = (req.query ??= parseQuery(req.rawQuery));
      const v = q.get(identifier)?.[0];
      return v ? Buffer.from(v, 'utf8') : undefined;
    }
    let v = headerValue(req.headers[headerName]);
    if (bearer) v = schemeCredentials(v, 'Bearer');
    // node keeps header bytes as latin1 characters: this restores the bytes the client sent.
    return v ? Buffer.from(v, 'latin1') : undefined;
  };

  return (req) => {
    const key = presented(req);
    if (key === undefined) {
      throw new PolicyError(401, 'AUTH_KEY_MISSING', NAME, bearer ? 'no Bearer API key in the Authorization header' : `no API key in ${where}`);
    }
    const digest = table.digestOf(key);
    const entry = table.byIndex.get(sha256Hex(digest));
    if (entry === undefined || !sameDigest(entry.digest, digest)) throw new PolicyError(401, 'AUTH_KEY_INVALID', NAME, `unknown API key in ${where}`);
    const role = matched.get(entry);
    if (role === undefined) {
      throw new PolicyError(ROLE_REJECTION_STATUS, 'AUTH_KEY_ROLE_MISSING', NAME, `the API key holds none of the roles the endpoint accepts (${[...required].join(', ')})`);
    }
    if (propagate !== '') addUpstreamHeader(req, propagate, role);
    return undefined;
  };
}
