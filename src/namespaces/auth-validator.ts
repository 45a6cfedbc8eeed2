// `auth/validator` (endpoint): JWT validation as KrakenD's krakend-jose does
// it, as a guard that runs before the request body is read.
//
// The token comes from the auth_header_name header ("Bearer " stripped when
// present) or else from the cookie_key cookie. Its header must ask for the
// configured `alg` (so `none`, or an HMAC token signed with a published RSA or
// EC public key, never gets near a key); the key is found by
// key_identify_strategy in the JWK set (jwk-source.ts), the signature and
// exp/nbf/iat (with leeway) checked by jose, then issuer and every audience.
// Any failure is 401; a missing role or scope is 403; both with an empty body.
// On success the claims go to req.claims ({JWT.claim} placeholders) and
// propagate_claims copy claims into request headers.

import type { JWTPayload } from 'jose';
import { LRUCache } from 'lru-cache';
import { checkFields, expectObject, type ObjectRules } from '../config/fields.ts';
import type { IssueCollector } from '../config/issues.ts';
import type { JsonPath } from '../config/json-path.ts';
import { ms } from '../config/read.ts';
import { PolicyError } from '../proxy/errors.ts';
import { HTTP_TOKEN } from '../proxy/headers.ts';
import type { ProxyRequest } from '../proxy/types.ts';
import { claimAtPath, claimText } from '../proxy/claims.ts';
import { log } from '../telemetry/log.ts';
import {
  ALGORITHMS,
  DEFAULT_CACHE_SECONDS,
  DEFAULT_COOLDOWN_MS,
  importKey,
  jose,
  JWK_SOURCE_RULES,
  KEY_STRATEGIES,
  keySourceFor,
  KeysUnavailable,
  parseJwkSource,
  tokenKeyId,
  UNCACHED_MAX_AGE_MS,
  type Algorithm,
  type JwkSourceOptions,
  type KeySet,
  type KeySource,
  type KeyStrategy,
} from './jwk-source.ts';
import { cookieValue, headerValue } from './credentials.ts';
import type { Guard, Namespace } from './namespace.ts';
import { stateKey } from './state.ts';

const NAME = 'auth/validator';

export interface ValidatorOptions {
  alg: Algorithm;
  source: JwkSourceOptions;
  issuer?: string;
  audience: string[];
  leewaySeconds: number;
  roles: string[];
  rolesKey: string;
  rolesKeyIsNested: boolean;
  scopes: string[];
  scopesKey?: string;
  scopesMatcher: 'any' | 'all';
  /** Lower-case header name. */
  authHeaderName: string;
  cookieKey: string;
  /** [claim, lower-case header name] pairs. */
  propagateClaims: [string, string][];
  propagatePreserveArray: boolean;
  keyIdentifyStrategy: KeyStrategy;
  operationDebug: boolean;
}

const RULES: ObjectRules = {
  alg: { kind: 'string', oneOf: ALGORITHMS },
  ...JWK_SOURCE_RULES,
  cache: 'boolean',
  cache_duration: { kind: 'integer', min: 0 },
  failed_jwk_key_cooldown: 'duration',
  issuer: 'string',
  audience: 'string[]',
  leeway: 'duration',
  roles: 'string[]',
  roles_key: 'string',
  roles_key_is_nested: 'boolean',
  scopes: 'string[]',
  scopes_key: 'string',
  scopes_matcher: { kind: 'string', oneOf: ['any', 'all'] },
  cookie_key: 'string',
  auth_header_name: 'string',
  propagate_claims: 'custom',
  propagate_claims_preserve_array: 'boolean',
  key_identify_strategy: { kind: 'string', oneOf: KEY_STRATEGIES },
  operation_debug: 'boolean',
};


export const authValidator: Namespace<ValidatorOptions> = {
  name: NAME,
  scopes: ['endpoint'],
  order: 430,
  policy: true,
  parse(raw, path, c) {
    if (!expectObject(c, raw, path, 'an object with the JWT validation settings')) return undefined;
    const valid = checkFields(c, raw, path, RULES, 'the "auth/validator" namespace');
    let ok = true;
    if (!('alg' in raw)) {
      c.missing([...path, 'alg'], `the signing algorithm of the tokens, one of ${ALGORITHMS.join(', ')}`);
      ok = false;
    } else if (!valid.has('alg')) ok = false;

    const cooldown = valid.has('failed_jwk_key_cooldown') ? ms(raw.failed_jwk_key_cooldown) : DEFAULT_COOLDOWN_MS;
    if (valid.has('failed_jwk_key_cooldown') && cooldown < 1000) {
      c.warning([...path, 'failed_jwk_key_cooldown'], 'at least "1s"', `${JSON.stringify(raw.failed_jwk_key_cooldown)}: raised to 1s (a shorter cooldown would let unknown kids hammer the identity provider)`);
    }
    const cacheSeconds = valid.has('cache_duration') && (raw.cache_duration as number) > 0 ? (raw.cache_duration as number) : DEFAULT_CACHE_SECONDS;
    if ('cache_duration' in raw && raw.cache !== true) {
      c.warning([...path, 'cache_duration'], '"cache": true beside it', 'cache_duration has no effect unless "cache" is true');
    }
    if (raw.cache === true && typeof raw.jwk_local_path === 'string') {
      c.warning([...path, 'cache'], 'cache only with a jwk_url', 'ignored with jwk_local_path (KrakenD refuses this combination)');
    }
    const source = parseJwkSource(
      raw,
      path,
      c,
      { maxAgeMs: raw.cache === true ? cacheSeconds * 1000 : UNCACHED_MAX_AGE_MS, cooldownMs: Math.max(1000, cooldown) },
    );
    if (!source) ok = false;

    const scopes = valid.has('scopes') ? (raw.scopes as string[]) : [];
    const scopesKey = valid.has('scopes_key') && raw.scopes_key !== '' ? (raw.scopes_key as string) : undefined;
    if (scopes.length > 0 && scopesKey === undefined) {
      // KrakenD checks no scope at all without scopes_key: an endpoint believed protected would not be.
      c.error([...path, 'scopes_key'], 'the claim holding the scopes, such as "scope", beside "scopes"', 'nothing: KrakenD would silently skip the scope check; Portico refuses the configuration');
      ok = false;
    }

    const propagate = parsePropagate(raw.propagate_claims, [...path, 'propagate_claims'], c);
    if (propagate === undefined) ok = false;

    const authHeader = valid.has('auth_header_name') && raw.auth_header_name !== '' ? (raw.auth_header_name as string) : 'Authorization';
    if (!HTTP_TOKEN.test(authHeader)) {
      c.invalid([...path, 'auth_header_name'], 'a header name', raw.auth_header_name);
      ok = false;
    }
    if (!ok || !source) return undefined;

    const options: ValidatorOptions = {
      alg: raw.alg as Algorithm,
      source,
      audience: valid.has('audience') ? (raw.audience as string[]) : [],
      // KrakenD rounds the leeway to seconds, one at least.
      leewaySeconds: Math.max(1, Math.round((valid.has('leeway') ? ms(raw.leeway) : 1000) / 1000)),
      roles: valid.has('roles') ? (raw.roles as string[]) : [],
      rolesKey: valid.has('roles_key') && raw.roles_key !== '' ? (raw.roles_key as string) : 'roles',
      rolesKeyIsNested: raw.roles_key_is_nested === true,
      scopes,
      scopesMatcher: raw.scopes_matcher === 'all' ? 'all' : 'any',
      authHeaderName: authHeader.toLowerCase(),
      cookieKey: valid.has('cookie_key') && raw.cookie_key !== '' ? (raw.cookie_key as string) : 'access_token',
      propagateClaims: propagate!,
      propagatePreserveArray: raw.propagate_claims_preserve_array === true,
      keyIdentifyStrategy: valid.has('key_identify_strategy') ? (raw.key_identify_strategy as KeyStrategy) : 'kid',
      operationDebug: raw.operation_debug === true,
    };
    if (valid.has('issuer') && raw.issuer !== '') options.issuer = raw.issuer as string;
    if (scopesKey !== undefined) options.scopesKey = scopesKey;
    return options;
  },
  compile(o, ctx) {
    const endpoint = ctx.endpoint?.endpoint ?? '';
    const forwarded = ctx.endpoint?.inputHeaders.map((h) => h.toLowerCase()) ?? [];
    for (const [, header] of o.propagateClaims) {
      if (!forwarded.includes('*') && !forwarded.includes(header)) {
        log('warn', `auth/validator: propagate_claims sets ${JSON.stringify(header)}, which is not in the endpoint's input_headers: backends will not see it (as in KrakenD)`, { endpoint });
      }
    }
    const source = keySourceFor(o.source, ctx.state, NAME, { use: 'verify' }, !ctx.checkOnly);
    const verified = ctx.state.get(stateKey(NAME, 'verified-tokens', o), () => newVerifiedCache());
    return { guard: compileGuard(o, source, verified, endpoint) };
  },
};

function parsePropagate(value: unknown, path: JsonPath, c: IssueCollector): [string, string][] | undefined {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    c.invalid(path, 'an array of [claim, header] pairs such as [["sub", "x-user"]]', value);
    return undefined;
  }
  const out: [string, string][] = [];
  let ok = true;
  value.forEach((pair, i) => {
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string' || pair[0] === '') {
      c.invalid([...path, i], 'a pair of strings [claim, header], such as ["sub", "x-user"]', pair);
      ok = false;
    } else if (!HTTP_TOKEN.test(pair[1])) {
      c.invalid([...path, i, 1], 'a header name', pair[1]);
      ok = false;
    } else out.push([pair[0], pair[1].toLowerCase()]);
  });
  return ok ? out : undefined;
}

// ---- the guard ----

/** RFC 6750: no error code when no credentials were sent; invalid_token or insufficient_scope otherwise. */
const CHALLENGE_MISSING = ['www-authenticate', 'Bearer'];
const CHALLENGE_INVALID = ['www-authenticate', 'Bearer error="invalid_token"'];
const CHALLENGE_SCOPE = ['www-authenticate', 'Bearer error="insufficient_scope"'];

type Detail = Record<string, unknown>;

/**
 * Tokens this validator accepted, by their exact text: a token a client sends
 * again (clients reuse one token for its whole lifetime) is accepted without
 * decoding and verifying its signature again. An entry holds only while the
 * key set it was verified with is still the current one (a refetched or
 * rotated set re-verifies every token) and until the token expires (exp plus
 * leeway, checked on every hit); roles, scopes and audience are part of the
 * validator's options, which key the cache. Only accepted tokens enter, so a
 * client cannot fill it with garbage; its size counts token characters.
 */
interface Verified {
  claims: Record<string, unknown>;
  set: KeySet;
  /** Epoch ms after which the token has expired (Infinity without exp). */
  expiresAt: number;
}

/** Token characters the verified-token cache holds at most (about 4,000 typical tokens). */
export const VERIFIED_CACHE_CHARS = 4 * 1024 * 1024;

function newVerifiedCache(): LRUCache<string, Verified> {
  return new LRUCache<string, Verified>({ maxSize: VERIFIED_CACHE_CHARS, sizeCalculation: (_v, token) => Math.max(1, token.length) });
}

function compileGuard(o: ValidatorOptions, source: KeySource, verified: LRUCache<string, Verified>, endpoint: string): Guard {
  const alg = o.alg;
  const verifyOptions = { algorithms: [alg], clockTolerance: o.leewaySeconds, ...(o.issuer !== undefined ? { issuer: o.issuer } : {}) };
  const rolesNested = o.rolesKeyIsNested && o.rolesKey.includes('.') && !o.rolesKey.startsWith('http');

  const refuse = (status: 401 | 403, code: string, reason: string, detail?: Detail): PolicyError => {
    if (o.operationDebug) log('debug', `auth/validator: ${reason}`, { endpoint, code, ...detail });
    const challenge = status === 403 ? CHALLENGE_SCOPE : code === 'AUTH_TOKEN_MISSING' ? CHALLENGE_MISSING : code === 'AUTH_KEYS_UNAVAILABLE' ? CHALLENGE_MISSING : CHALLENGE_INVALID;
    return new PolicyError(status, code, NAME, reason, challenge);
  };

  /** The token of a request when it is one this validator already accepted and still would: its entry. */
  function alreadyVerified(req: ProxyRequest): Verified | undefined {
    const token = headerToken(req, o.authHeaderName) ?? cookieValue(req.headers.cookie, o.cookieKey);
    if (token === undefined || token === '') return undefined;
    const hit = verified.get(token);
    if (hit === undefined) return undefined;
    if (Date.now() > hit.expiresAt) {
      verified.delete(token);
      return undefined;
    }
    const current = source.current(req.signal);
    if (current instanceof Promise) {
      // No set at hand: the full path waits for it (and reports its failure).
      current.catch(() => {});
      return undefined;
    }
    return current === hit.set ? hit : undefined;
  }

  function accept(req: ProxyRequest, claims: Record<string, unknown>): undefined {
    req.claims = claims;
    if (o.propagateClaims.length > 0) propagate(req, claims, o);
    return undefined;
  }

  return (req) => {
    const hit = alreadyVerified(req);
    if (hit !== undefined) return accept(req, hit.claims);
    return validate(req);
  };

  async function validate(req: ProxyRequest): Promise<undefined> {
    const found = extractToken(req, o.authHeaderName, o.cookieKey);
    if (found === undefined) throw refuse(401, 'AUTH_TOKEN_MISSING', 'no token in the request');
    const { token, header } = found;
    if (header === undefined) throw refuse(401, 'AUTH_TOKEN_MALFORMED', 'malformed token', { length: token.length });
    if (header.alg !== alg) {
      throw refuse(401, 'AUTH_TOKEN_ALG', `token algorithm ${shown(header.alg)} is not the configured ${alg}`);
    }
    const id = tokenKeyId(header, o.keyIdentifyStrategy);

    let set;
    try {
      const s = source.current(req.signal);
      set = s instanceof Promise ? await s : s;
    } catch (err) {
      throw refuse(401, 'AUTH_KEYS_UNAVAILABLE', `no key set to check the token: ${(err as Error).message}`);
    }
    let entry = set.find(o.keyIdentifyStrategy, id);
    let verifiedWith = set;
    if (!entry) {
      let fresh;
      try {
        fresh = await source.refreshAfterMiss(req.signal);
      } catch (err) {
        // The deadline passed while the refetch ran: the key may well be in the set on its way.
        if (err instanceof KeysUnavailable) throw refuse(401, 'AUTH_KEYS_UNAVAILABLE', `no key for the token yet: ${err.message}`, { [o.keyIdentifyStrategy]: shown(id) });
        throw err;
      }
      entry = fresh?.find(o.keyIdentifyStrategy, id);
      if (fresh) verifiedWith = fresh;
      if (!entry) {
        source.missed();
        throw refuse(401, 'AUTH_KEY_UNKNOWN', `no key for the token's ${o.keyIdentifyStrategy} in the JWK set`, { [o.keyIdentifyStrategy]: shown(id) });
      }
    }

    let key: CryptoKey;
    try {
      key = await importKey(entry, alg, 'verify');
    } catch (err) {
      throw refuse(401, 'AUTH_KEY_UNUSABLE', `the key for the token cannot verify ${alg}: ${(err as Error).message}`, { [o.keyIdentifyStrategy]: shown(id) });
    }

    let claims: JWTPayload;
    try {
      claims = (await jose().jwtVerify(token, key, verifyOptions)).payload;
    } catch (err) {
      const [code, reason] = verifyFailure(err);
      throw refuse(401, code, reason, { [o.keyIdentifyStrategy]: shown(id) });
    }
    if (typeof claims.iat === 'number' && claims.iat > Date.now() / 1000 + o.leewaySeconds) {
      throw refuse(401, 'AUTH_TOKEN_NOT_YET_VALID', 'token issued in the future ("iat")');
    }
    if (o.audience.length > 0) {
      const aud = claims.aud;
      const has = (a: string) => aud === a || (Array.isArray(aud) && aud.includes(a));
      const missing = o.audience.filter((a) => !has(a));
      if (missing.length > 0) throw refuse(401, 'AUTH_TOKEN_AUDIENCE', 'token audience does not include every configured audience', { missing });
    }
    if (o.roles.length > 0) {
      const present = listClaim(goLookup(claims, o.rolesKey, rolesNested));
      if (!o.roles.some((r) => present.includes(r))) {
        throw refuse(403, 'AUTH_ROLE_MISSING', `token has none of the roles of the endpoint (claim ${JSON.stringify(o.rolesKey)})`, { required: o.roles });
      }
    }
    if (o.scopes.length > 0 && o.scopesKey !== undefined) {
      const present = listClaim(goLookup(claims, o.scopesKey, !o.scopesKey.startsWith('http')));
      const ok = o.scopesMatcher === 'all' ? o.scopes.every((s) => present.includes(s)) : o.scopes.some((s) => present.includes(s));
      if (!ok) {
        throw refuse(403, 'AUTH_SCOPE_MISSING', `token has ${o.scopesMatcher === 'all' ? 'not all' : 'none'} of the scopes of the endpoint (claim ${JSON.stringify(o.scopesKey)})`, { required: o.scopes, matcher: o.scopesMatcher });
      }
    }

    const expiresAt = typeof claims.exp === 'number' ? (claims.exp + o.leewaySeconds) * 1000 : Infinity;
    verified.set(token, { claims: claims as Record<string, unknown>, set: verifiedWith, expiresAt });
    if (o.operationDebug) log('debug', 'auth/validator: token accepted', { endpoint, [o.keyIdentifyStrategy]: shown(id) });
    return accept(req, claims as Record<string, unknown>);
  }
}

/** A token found in the request, with its decoded protected header (undefined when it is not a JWS). */
interface FoundToken {
  token: string;
  header: Record<string, unknown> | undefined;
}

/**
 * The token: the header (with or without "Bearer "), else the cookie, as
 * krakend-jose does; a header value that is not a token lets a cookie that is
 * one through.
 */
function extractToken(req: ProxyRequest, headerName: string, cookieKey: string): FoundToken | undefined {
  let fromHeader: FoundToken | undefined;
  const raw = headerToken(req, headerName);
  if (raw !== undefined && raw !== '') {
    fromHeader = { token: raw, header: jwsHeader(raw) };
    if (fromHeader.header) return fromHeader;
  }
  const value = cookieValue(req.headers.cookie, cookieKey);
  if (value !== undefined && value !== '') {
    const header = jwsHeader(value);
    if (header || !fromHeader) return { token: value, header };
  }
  return fromHeader;
}

/** The token header's value without a "Bearer " prefix (any case), or undefined when absent. */
function headerToken(req: ProxyRequest, headerName: string): string | undefined {
  const raw = headerValue(req.headers[headerName]);
  if (raw === undefined) return undefined;
  return raw.length > 7 && raw.slice(0, 7).toLowerCase() === 'bearer ' ? raw.slice(7) : raw;
}

/** The protected header of a compact JWS (three parts), or undefined. */
function jwsHeader(token: string): Record<string, unknown> | undefined {
  if (token.split('.', 4).length !== 3) return undefined;
  try {
    return jose().decodeProtectedHeader(token) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

function verifyFailure(err: unknown): [string, string] {
  const joseErrors = jose().errors;
  if (err instanceof joseErrors.JWTExpired) return ['AUTH_TOKEN_EXPIRED', 'token expired'];
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf') return ['AUTH_TOKEN_NOT_YET_VALID', 'token not valid yet ("nbf")'];
    if (err.claim === 'iss') return ['AUTH_TOKEN_ISSUER', err.reason === 'missing' ? 'token has no issuer' : 'token issuer is not the configured one'];
    return ['AUTH_TOKEN_CLAIMS', `token claims invalid: ${err.message}`];
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return ['AUTH_TOKEN_SIGNATURE', 'token signature does not verify'];
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return ['AUTH_TOKEN_ALG', 'token algorithm not allowed'];
  if (err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JWTInvalid) return ['AUTH_TOKEN_MALFORMED', `malformed token: ${err.message}`];
  if (err instanceof TypeError) return ['AUTH_KEY_UNUSABLE', `the key cannot verify this token: ${err.message}`];
  return ['AUTH_TOKEN_INVALID', `token invalid: ${(err as Error)?.message ?? String(err)}`];
}

/**
 * A claim the way krakend-jose finds roles, scopes and propagated claims:
 * with `nested`, a dot path walked through objects; otherwise the top-level
 * claim of that exact name (so "https://example.com/roles" stays one name).
 */
function goLookup(claims: Record<string, unknown>, key: string, nested: boolean): unknown {
  if (!nested || !key.includes('.')) return Object.hasOwn(claims, key) ? claims[key] : undefined;
  return claimAtPath(claims, key);
}

/** Roles and scopes: a list (its strings) or a space-separated string. */
function listClaim(v: unknown): string[] {
  if (typeof v === 'string') return v.split(' ');
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
  return [];
}

/**
 * propagate_claims, as krakend-jose: the claim replaces whatever the client
 * sent in that header (an absent claim gives an empty value, never the
 * client's); backends see it when input_headers lets it through.
 */
function propagate(req: ProxyRequest, claims: Record<string, unknown>, o: ValidatorOptions): void {
  const headers = { ...req.headers };
  for (const [claim, header] of o.propagateClaims) {
    const v = goLookup(claims, claim, claim.includes('.') && !claim.startsWith('http'));
    if (!o.propagatePreserveArray) {
      headers[header] = headerSafe(v === undefined ? '' : claimText(v));
      continue;
    }
    // krakend-jose's Claims.List: one value per element (each as Go's %v prints it).
    const list = v === undefined ? [''] : Array.isArray(v) ? v.map((x) => claimText([x])) : [claimText(v)];
    if (list.length === 0) delete headers[header];
    else headers[header] = list.length === 1 ? headerSafe(list[0]!) : list.map(headerSafe);
  }
  req.headers = headers;
}

/** A header value from claim text: control characters dropped, UTF-8 bytes sent as they are (as Go does). */
function headerSafe(text: string): string {
  const clean = text.replace(/[\u0000-\u0008\u000a-\u001f\u007f]/g, '');
  return /^[\u0000-\u007f]*$/.test(clean) ? clean : Buffer.from(clean, 'utf8').toString('latin1');
}

/** A token-controlled string for logs: bounded, never the token itself. */
function shown(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v) ?? String(v);
  return s.length > 64 ? `${s.slice(0, 64)}... (${s.length} characters)` : s;
}
