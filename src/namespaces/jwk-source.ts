// JSON Web Key sets for auth/validator and auth/signer: read from a
// jwk_local_path, or fetched from a jwk_url and kept in PolicyState (so a
// reload that leaves the key-set settings unchanged keeps the warm keys, and
// every endpoint with the same settings shares one cache).
//
// Fetched by hand with undici rather than jose's createRemoteJWKSet, which
// drops its key set when a refresh fails and reads bodies without a limit.
// Here: a bounded body (MAX_BODY_BYTES), one timeout for the whole fetch, TLS
// always verified (jwk_local_ca adds a CA, it never turns verification off),
// plain http only with disable_jwk_security, one fetch at a time per source
// (concurrent requests join it), the last good key set kept when a refresh
// fails, and a cooldown after a failed fetch or a lookup that missed, so
// thousands of unknown `kid`s cost at most one fetch per cooldown.
//
// Files (jwk_local_path, jwk_local_ca) are read when a Plan is compiled, never
// at parse time: they live on the data plane (like TLS certificates), so a
// control plane validating the config need not have them; a missing or broken
// file fails the compile (the reload is refused, the last good config keeps
// serving) with the namespace, its config path and the file in the message.

import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import * as tls from 'node:tls';
import type { JWK } from 'jose';
import type { Agent, Dispatcher } from 'undici';
import { checkValue, type ObjectRules } from '../config/fields.ts';
import type { IssueCollector } from '../config/issues.ts';
import { formatPath, type JsonPath } from '../config/json-path.ts';
import type { CancelSignal } from '../proxy/abort.ts';
import { loadUndici } from '../proxy/undici-package.ts';
import { log } from '../telemetry/log.ts';
import { lazyRequire } from '../shared/lazy-require.ts';
import { USER_AGENT } from '../version.ts';
import { sha256Hex } from './credentials.ts';
import { stateKey, type StateScope } from './state.ts';

/** A JWK set over this size is refused (the biggest public ones are a few KiB). */
export const MAX_BODY_BYTES = 512 * 1024;
/** Connect, TLS, headers, redirects and body of one fetch, together. */
export const FETCH_TIMEOUT_MS = 10_000;
export const MAX_REDIRECTS = 3;
/** failed_jwk_key_cooldown when unset (KrakenD has none: every unknown kid fetches). */
export const DEFAULT_COOLDOWN_MS = 10_000;
/** cache_duration when cache is on and the duration unset or 0, as KrakenD. */
export const DEFAULT_CACHE_SECONDS = 900;
/** With cache off, a fetched set still serves the requests of the next second (KrakenD fetches per request). */
export const UNCACHED_MAX_AGE_MS = 1_000;

export const ALGORITHMS = ['EdDSA', 'HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512'] as const;
export type Algorithm = (typeof ALGORITHMS)[number];

export const KEY_STRATEGIES = ['kid', 'x5t', 'x5t#S256', 'kid_x5t'] as const;
export type KeyStrategy = (typeof KEY_STRATEGIES)[number];

/** Where keys come from: plain data (it travels to worker processes). */
export interface JwkSourceOptions {
  /** The namespace's place in the config, for compile errors. */
  at: string;
  /** jwk_url. */
  url?: string;
  /** jwk_local_path: has preference over jwk_url, as in KrakenD. */
  localPath?: string;
  /** jwk_local_ca: a PEM file of CA certificates trusted besides the default ones. */
  localCa?: string;
  /** disable_jwk_security: plain http allowed (TLS is verified whatever it says). */
  allowHttp: boolean;
  /** cipher_suites as OpenSSL names (TLS 1.2 and below). */
  ciphers?: string[];
  /** jwk_fingerprints: SHA-256 of a certificate public key (SPKI) of the chain, hex. */
  fingerprints?: string[];
  /** A fetched set is refreshed once older than this. */
  maxAgeMs: number;
  /** After a failed fetch or a lookup that missed, no fetch for this long. */
  cooldownMs: number;
}

/** The key-set fields auth/validator and auth/signer share (type checks; parseJwkSource does the rest). */
export const JWK_SOURCE_RULES: ObjectRules = {
  jwk_url: 'string',
  jwk_local_path: 'string',
  jwk_local_ca: 'string',
  disable_jwk_security: 'boolean',
  cipher_suites: 'custom',
  jwk_fingerprints: 'string[]',
  secret_url: 'custom',
  cypher_key: 'custom',
};

/** jose, loaded by the first configuration that signs or verifies tokens (shared/lazy-require.ts). */
export const jose = lazyRequire<typeof import('jose')>('jose');

/** Go's TLS cipher suite ids (KrakenD's cipher_suites) and their OpenSSL names. */
const CIPHER_SUITES: Readonly<Record<number, string>> = {
  5: 'RC4-SHA',
  10: 'DES-CBC3-SHA',
  47: 'AES128-SHA',
  53: 'AES256-SHA',
  60: 'AES128-SHA256',
  156: 'AES128-GCM-SHA256',
  157: 'AES256-GCM-SHA384',
  49159: 'ECDHE-ECDSA-RC4-SHA',
  49161: 'ECDHE-ECDSA-AES128-SHA',
  49162: 'ECDHE-ECDSA-AES256-SHA',
  49169: 'ECDHE-RSA-RC4-SHA',
  49170: 'ECDHE-RSA-DES-CBC3-SHA',
  49171: 'ECDHE-RSA-AES128-SHA',
  49172: 'ECDHE-RSA-AES256-SHA',
  49187: 'ECDHE-ECDSA-AES128-SHA256',
  49191: 'ECDHE-RSA-AES128-SHA256',
  49199: 'ECDHE-RSA-AES128-GCM-SHA256',
  49195: 'ECDHE-ECDSA-AES128-GCM-SHA256',
  49200: 'ECDHE-RSA-AES256-GCM-SHA384',
  49196: 'ECDHE-ECDSA-AES256-GCM-SHA384',
  52392: 'ECDHE-RSA-CHACHA20-POLY1305',
  52393: 'ECDHE-ECDSA-CHACHA20-POLY1305',
};

/**
 * Check the key-set fields of `raw` (already type-checked against
 * JWK_SOURCE_RULES) and build the options. Undefined when unusable. No file
 * is read here (see keySourceFor).
 */
export function parseJwkSource(
  raw: Record<string, unknown>,
  path: JsonPath,
  c: IssueCollector,
  timing: { maxAgeMs: number; cooldownMs: number },
): JwkSourceOptions | undefined {
  let ok = true;
  for (const key of ['secret_url', 'cypher_key']) {
    if (key in raw) {
      c.error([...path, key], 'a plain jwk_local_path or a jwk_url', `"${key}" (a JWK file encrypted with a key from a KMS or base64key:// URL): not supported by this version`);
      ok = false;
    }
  }
  const url = typeof raw.jwk_url === 'string' ? raw.jwk_url : undefined;
  const localPath = typeof raw.jwk_local_path === 'string' ? raw.jwk_local_path : undefined;
  const allowHttp = raw.disable_jwk_security === true;
  if (url === undefined && localPath === undefined) {
    if (!('jwk_url' in raw) && !('jwk_local_path' in raw)) c.missing([...path, 'jwk_url'], 'a "jwk_url" (https://...) or a "jwk_local_path" with the JWK set');
    return undefined;
  }

  const options: JwkSourceOptions = { at: formatPath(path), allowHttp, maxAgeMs: timing.maxAgeMs, cooldownMs: timing.cooldownMs };
  if (localPath !== undefined) {
    if (url !== undefined) c.warning([...path, 'jwk_url'], 'jwk_url or jwk_local_path, not both', 'both set: jwk_local_path has preference and jwk_url is ignored (as in KrakenD)');
    for (const key of ['jwk_local_ca', 'cipher_suites', 'jwk_fingerprints']) {
      if (key in raw) c.warning([...path, key], `"${key}" only with a jwk_url`, `ignored: the keys come from jwk_local_path`);
    }
    if (localPath === '') {
      c.invalid([...path, 'jwk_local_path'], 'the path of a JWK set file', localPath);
      return undefined;
    }
    options.localPath = localPath;
    return ok ? options : undefined;
  }

  const at = [...path, 'jwk_url'];
  let parsed: URL | undefined;
  try {
    parsed = new URL(url!);
  } catch {
    c.invalid(at, 'an absolute URL such as "https://idp.example.com/.well-known/jwks.json"', url);
    return undefined;
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    c.invalid(at, 'an https:// URL', url);
    return undefined;
  }
  if (parsed.protocol === 'http:' && !allowHttp) {
    c.error(at, 'an https:// URL (plain http needs "disable_jwk_security": true)', `${JSON.stringify(url)}: the keys would travel unprotected`);
    ok = false;
  }
  if (parsed.username !== '' || parsed.password !== '') {
    c.error(at, 'a URL without user:password@', 'credentials in jwk_url: not supported by this version');
    ok = false;
  }
  if (allowHttp && parsed.protocol === 'https:') {
    c.warning([...path, 'disable_jwk_security'], 'false with an https:// jwk_url', 'TLS certificates are verified anyway (KrakenD would skip the verification): use jwk_local_ca for a private or self-signed CA');
  }
  options.url = url;

  if (typeof raw.jwk_local_ca === 'string' && raw.jwk_local_ca !== '') options.localCa = raw.jwk_local_ca;
  if ('cipher_suites' in raw) {
    const ciphers = parseCipherSuites(raw.cipher_suites, [...path, 'cipher_suites'], c);
    if (ciphers === undefined) ok = false;
    else options.ciphers = ciphers;
  }
  if (Array.isArray(raw.jwk_fingerprints)) {
    const fps: string[] = [];
    raw.jwk_fingerprints.forEach((f, i) => {
      const bytes = typeof f === 'string' ? decodeBase64Any(f) : undefined;
      if (bytes?.length === 32) fps.push(bytes.toString('hex'));
      else {
        c.invalid([...path, 'jwk_fingerprints', i], 'the base64 SHA-256 (32 bytes) of a certificate public key', f);
        ok = false;
      }
    });
    if (fps.length) options.fingerprints = fps;
  }
  return ok ? options : undefined;
}

function parseCipherSuites(value: unknown, path: JsonPath, c: IssueCollector): string[] | undefined {
  if (!checkValue(c, value, path, { kind: 'integer[]' })) return undefined;
  const ids = value as number[];
  if (ids.length === 0) {
    c.invalid(path, 'at least one cipher suite id', value);
    return undefined;
  }
  const available = new Set(tls.getCiphers().map((n) => n.toUpperCase()));
  const names: string[] = [];
  let ok = true;
  ids.forEach((id, i) => {
    const name = CIPHER_SUITES[id];
    if (name === undefined) {
      c.invalid([...path, i], `a cipher suite id KrakenD accepts (${Object.keys(CIPHER_SUITES).join(', ')})`, id);
      ok = false;
    } else if (!available.has(name)) {
      c.warning([...path, i], 'a cipher suite this build of OpenSSL offers', `${id} (${name}): not available (RC4 and 3DES are gone from OpenSSL 3), ignored`);
    } else names.push(name);
  });
  if (ok && names.length === 0) {
    c.error(path, 'at least one cipher suite this build offers', 'none of them is available: no TLS connection could be made');
    return undefined;
  }
  return ok ? names : undefined;
}

function decodeBase64Any(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/\-_]+={0,2}$/.test(text)) return undefined;
  return Buffer.from(text.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

// ---- key sets ----

export interface KeyEntry {
  /** The JWK as published. */
  readonly jwk: Readonly<JWK>;
  readonly kid: string;
  /** x5t, or the SHA-1 thumbprint of x5c[0] when only the chain is given. */
  readonly x5t: string;
  /** x5t#S256, or the SHA-256 thumbprint of x5c[0]. */
  readonly x5tS256: string;
  /** Imported keys by use and algorithm. */
  readonly imported: Map<string, Promise<CryptoKey>>;
}

/** A parsed JWK set, indexed for each key-identify strategy. */
export class KeySet {
  readonly entries: readonly KeyEntry[];
  readonly #index = new Map<KeyStrategy, Map<string, KeyEntry>>();

  constructor(keys: readonly Record<string, unknown>[]) {
    this.entries = keys.map(entryOf);
  }

  /** Parse a JWK set document; throws with the reason when it is not one or holds no key. */
  static parse(text: string): KeySet {
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      throw new Error('not JSON');
    }
    const keys = (doc as { keys?: unknown } | null)?.keys;
    if (doc === null || typeof doc !== 'object' || !Array.isArray(keys)) throw new Error('not a JWK set (an object with a "keys" array)');
    const usable = keys.filter((k): k is Record<string, unknown> => k !== null && typeof k === 'object' && !Array.isArray(k) && typeof k.kty === 'string');
    if (usable.length === 0) throw new Error('no key in the JWK set');
    return new KeySet(usable);
  }

  /** The key a token names under `strategy` ('' matches a key without that identifier, as in KrakenD). */
  find(strategy: KeyStrategy, id: string): KeyEntry | undefined {
    let index = this.#index.get(strategy);
    if (!index) {
      index = new Map();
      for (const e of this.entries) {
        const key = entryId(e, strategy);
        if (!index.has(key)) index.set(key, e);
      }
      this.#index.set(strategy, index);
    }
    return index.get(id);
  }
}

function entryOf(jwk: Record<string, unknown>): KeyEntry {
  const str = (v: unknown) => (typeof v === 'string' ? v : '');
  const cert = Array.isArray(jwk.x5c) && typeof jwk.x5c[0] === 'string' ? Buffer.from(jwk.x5c[0], 'base64') : undefined;
  const thumb = (alg: string) => (cert && cert.length > 0 ? createHash(alg).update(cert).digest('base64url') : '');
  return {
    jwk: Object.freeze({ ...jwk }) as JWK,
    kid: str(jwk.kid),
    x5t: str(jwk.x5t) || thumb('sha1'),
    x5tS256: str(jwk['x5t#S256']) || thumb('sha256'),
    imported: new Map(),
  };
}

function entryId(e: KeyEntry, strategy: KeyStrategy): string {
  switch (strategy) {
    case 'kid': return e.kid;
    case 'x5t': return e.x5t;
    case 'x5t#S256': return e.x5tS256;
    case 'kid_x5t': return e.kid + e.x5t;
  }
}

/** What a token's protected header names under `strategy` (krakend-jose's TokenIDGetter: x5t falls back to kid). */
export function tokenKeyId(header: Record<string, unknown>, strategy: KeyStrategy): string {
  const str = (v: unknown) => (typeof v === 'string' ? v : '');
  const kid = str(header.kid);
  switch (strategy) {
    case 'kid': return kid;
    case 'x5t': return typeof header.x5t === 'string' ? header.x5t : kid;
    case 'x5t#S256': return typeof header['x5t#S256'] === 'string' ? header['x5t#S256'] : kid;
    case 'kid_x5t': return kid + str(header.x5t);
  }
}

const FAMILY: Readonly<Record<string, string>> = { HS: 'oct', RS: 'RSA', PS: 'RSA', ES: 'EC', Ed: 'OKP' };
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth'];

/**
 * The key of `entry` imported for `alg`, to verify or to sign; imported once
 * and kept with the entry. Rejects when the key cannot serve that algorithm:
 * another key type (an RSA or EC public key never becomes an HMAC secret), a
 * declared `alg` or `use` that differ, a public key for signing.
 */
export function importKey(entry: KeyEntry, alg: Algorithm, use: 'verify' | 'sign'): Promise<CryptoKey> {
  const cacheKey = `${use}:${alg}`;
  let p = entry.imported.get(cacheKey);
  if (!p) {
    p = doImport(entry.jwk, alg, use);
    p.catch(() => {});
    entry.imported.set(cacheKey, p);
  }
  return p;
}

async function doImport(jwk: Readonly<JWK>, alg: Algorithm, use: 'verify' | 'sign'): Promise<CryptoKey> {
  if (jwk.use !== undefined && jwk.use !== 'sig') throw new Error(`the key is for "use": ${JSON.stringify(jwk.use)}, not "sig"`);
  if (jwk.alg !== undefined && jwk.alg !== alg) throw new Error(`the key is for "alg": ${JSON.stringify(jwk.alg)}, not ${alg}`);
  const kty = FAMILY[alg.slice(0, 2)];
  if (jwk.kty !== kty) throw new Error(`a ${String(jwk.kty)} key cannot serve ${alg} (needs kty ${kty})`);
  if (kty === 'oct') {
    if (typeof jwk.k !== 'string' || jwk.k === '') throw new Error('the symmetric key has no "k"');
    const secret = Buffer.from(jwk.k, 'base64url');
    return crypto.subtle.importKey('raw', secret, { name: 'HMAC', hash: `SHA-${alg.slice(2)}` }, false, [use]);
  }
  const copy: Record<string, unknown> = { ...jwk };
  for (const k of ['key_ops', 'ext', 'use', 'alg']) delete copy[k];
  if (use === 'verify') for (const k of PRIVATE_MEMBERS) delete copy[k];
  else if (typeof copy.d !== 'string') throw new Error('a public key cannot sign: the JWK needs its private part');
  const key = await jose().importJWK(copy as JWK, alg);
  if (key instanceof Uint8Array) throw new Error('unexpected symmetric key');
  return key;
}

/** Read and parse a JWK set file (jwk_local_path); throws with the reason. */
export function readKeySetFile(file: string): KeySet {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot be read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return KeySet.parse(text);
}

// ---- sources ----

/** Why no key set could be had: logged by the caller, never shown to clients. */
export class KeysUnavailable extends Error {}

export interface KeySource {
  /**
   * The key set to use now. A set older than its max age is still returned
   * while a refresh runs in the background; only when there is none yet does
   * this wait (for the one fetch in flight), bounded by `signal`.
   */
  current(signal?: CancelSignal): KeySet | Promise<KeySet>;
  /**
   * After a lookup missed: a fresher set (joining the fetch in flight, or
   * starting one unless cooling down), or undefined when none may be fetched now.
   */
  refreshAfterMiss(signal?: CancelSignal): Promise<KeySet | undefined>;
  /** A lookup missed in the freshest set: no refetch for a miss during the cooldown. */
  missed(): void;
}

/** Keys from jwk_local_path, read when the plan is compiled. */
export class StaticKeySource implements KeySource {
  readonly #set: KeySet;
  constructor(set: KeySet) {
    this.#set = set;
  }
  current(): KeySet {
    return this.#set;
  }
  refreshAfterMiss(): Promise<undefined> {
    return Promise.resolve(undefined);
  }
  missed(): void {}
}

/** Keys from a jwk_url: one per distinct settings, shared across endpoints and reloads. */
export class RemoteKeySource implements KeySource {
  readonly #url: URL;
  readonly #allowHttp: boolean;
  readonly #maxAgeMs: number;
  readonly #cooldownMs: number;
  readonly #dispatcher: Promise<Agent>;
  readonly #closed = new AbortController();
  #set: KeySet | undefined;
  #fetchedAt = 0;
  #inflight: Promise<KeySet> | undefined;
  #coolUntil = 0;
  #lastError = '';
  /** Fetches started (tests and logs). */
  fetches = 0;

  constructor(o: JwkSourceOptions, caPem: string | undefined, warmUp: boolean) {
    this.#url = new URL(o.url!);
    this.#allowHttp = o.allowHttp;
    this.#maxAgeMs = o.maxAgeMs;
    this.#cooldownMs = o.cooldownMs;
    const connect = connectOptions(o, caPem);
    this.#dispatcher = loadUndici().then(
      (u) => new u.Agent({ connect, connections: 2, keepAliveTimeout: 10_000, headersTimeout: FETCH_TIMEOUT_MS, bodyTimeout: FETCH_TIMEOUT_MS }),
    );
    // Warm up: the first request should not wait for the key set (not when only checking a configuration).
    if (warmUp) this.#start().catch(() => {});
  }

  current(signal?: CancelSignal): KeySet | Promise<KeySet> {
    const set = this.#set;
    const now = performance.now();
    if (set) {
      if (now - this.#fetchedAt >= this.#maxAgeMs && !this.#inflight && now >= this.#coolUntil) this.#start().catch(() => {});
      return set;
    }
    if (this.#inflight) return waitFor(this.#inflight, signal);
    if (now < this.#coolUntil) return Promise.reject(new KeysUnavailable(`no JWK set yet; the last fetch failed (${this.#lastError}); next try after the cooldown`));
    return waitFor(this.#start(), signal);
  }

  refreshAfterMiss(signal?: CancelSignal): Promise<KeySet | undefined> {
    if (this.#inflight) return waitFor(this.#inflight.catch(() => undefined), signal);
    if (performance.now() < this.#coolUntil) return Promise.resolve(undefined);
    return waitFor(this.#start().catch(() => undefined), signal);
  }

  missed(): void {
    const now = performance.now();
    // Only a miss after a fetch starts the cooldown: misses during it do not prolong it.
    if (now >= this.#coolUntil && !this.#inflight) this.#coolUntil = now + this.#cooldownMs;
  }

  async close(): Promise<void> {
    this.#closed.abort();
    await this.#dispatcher.then((d) => d.close()).catch(() => {});
  }

  #start(): Promise<KeySet> {
    this.fetches++;
    const p = fetchKeySet(this.#url, this.#dispatcher, this.#allowHttp, this.#closed.signal).then(
      (set) => {
        this.#set = set;
        this.#fetchedAt = performance.now();
        this.#inflight = undefined;
        if (this.#lastError) log('info', 'JWK set fetched again', { url: shownUrl(this.#url), keys: set.entries.length });
        this.#lastError = '';
        return set;
      },
      (err: unknown) => {
        this.#inflight = undefined;
        this.#coolUntil = performance.now() + this.#cooldownMs;
        this.#lastError = (err as Error)?.message ?? String(err);
        if (!this.#closed.signal.aborted) {
          log('warn', this.#set ? 'JWK set fetch failed; the last good key set stays in use' : 'JWK set fetch failed; no key set until a fetch succeeds', {
            url: shownUrl(this.#url),
            error: this.#lastError,
            retryAfterMs: this.#cooldownMs,
          });
        }
        throw new KeysUnavailable(`JWK set fetch failed: ${this.#lastError}`);
      },
    );
    this.#inflight = p;
    return p;
  }
}

/** Origin and path only: a query string may carry a secret. */
function shownUrl(u: URL): string {
  return u.origin + u.pathname;
}

function connectOptions(o: JwkSourceOptions, caPem: string | undefined): Record<string, unknown> {
  const connect: Record<string, unknown> = { timeout: 5_000, minVersion: 'TLSv1.2', rejectUnauthorized: true };
  if (caPem !== undefined) connect.ca = [...defaultCas(), caPem];
  if (o.ciphers?.length) connect.ciphers = o.ciphers.join(':');
  if (o.fingerprints?.length) {
    const pins = new Set(o.fingerprints);
    connect.checkServerIdentity = (host: string, cert: tls.PeerCertificate): Error | undefined => {
      const err = tls.checkServerIdentity(host, cert);
      if (err) return err;
      const seen = new Set<unknown>();
      for (let c: tls.DetailedPeerCertificate | undefined = cert as tls.DetailedPeerCertificate; c && !seen.has(c); c = c.issuerCertificate) {
        seen.add(c);
        if (c.raw && pins.has(spkiSha256(c.raw))) return undefined;
      }
      return new Error('no certificate of the JWK host matches jwk_fingerprints');
    };
  }
  return connect;
}

/** SHA-256 of a certificate's SubjectPublicKeyInfo (DER), hex: what KrakenD's jwk_fingerprints pin. */
function spkiSha256(der: Buffer): string {
  try {
    const spki = new X509Certificate(der).publicKey.export({ type: 'spki', format: 'der' });
    return sha256Hex(spki);
  } catch {
    return '';
  }
}

function defaultCas(): string[] {
  const get = (tls as unknown as { getCACertificates?: (type: string) => string[] }).getCACertificates;
  return get ? get('default') : [...tls.rootCertificates];
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const JSON_TYPE = /^application\/(?:jwk-set\+json|json)\s*(?:;|$)/i;

async function fetchKeySet(start: URL, agent: Promise<Dispatcher>, allowHttp: boolean, closed: AbortSignal): Promise<KeySet> {
  const signal = AbortSignal.any([closed, AbortSignal.timeout(FETCH_TIMEOUT_MS)]);
  const [dispatcher, { request }] = await Promise.all([agent, loadUndici()]);
  let url = start;
  try {
    for (let hop = 0; ; hop++) {
      const res = await request(url, {
        method: 'GET',
        dispatcher,
        signal,
        headers: { accept: 'application/jwk-set+json, application/json', 'user-agent': USER_AGENT },
      });
      if (REDIRECTS.has(res.statusCode)) {
        discard(res.body);
        const location = res.headers.location;
        if (hop >= MAX_REDIRECTS || typeof location !== 'string') throw new Error(hop >= MAX_REDIRECTS ? 'too many redirects' : `${res.statusCode} without a Location`);
        const next = new URL(location, url);
        if (next.protocol !== 'https:' && !(next.protocol === 'http:' && allowHttp)) throw new Error(`redirected to ${next.protocol}// (refused)`);
        url = next;
        continue;
      }
      if (res.statusCode !== 200) {
        discard(res.body);
        throw new Error(`answered ${res.statusCode}`);
      }
      const type = String(res.headers['content-type'] ?? '');
      if (!JSON_TYPE.test(type)) {
        discard(res.body);
        throw new Error(`content-type ${JSON.stringify(type)}, not application/jwk-set+json or application/json`);
      }
      const declared = Number(res.headers['content-length']);
      if (declared > MAX_BODY_BYTES) {
        discard(res.body);
        throw new Error(`body of ${declared} bytes, over the ${MAX_BODY_BYTES} limit`);
      }
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length;
        if (size > MAX_BODY_BYTES) {
          discard(res.body);
          throw new Error(`body over the ${MAX_BODY_BYTES} bytes limit`);
        }
        chunks.push(chunk as Buffer);
      }
      return KeySet.parse(Buffer.concat(chunks).toString('utf8'));
    }
  } catch (err) {
    if (signal.aborted && !closed.aborted) throw new Error(`no complete answer within ${FETCH_TIMEOUT_MS} ms`);
    throw err;
  }
}

/** Drop a response body we will not read (and the connection with it). */
function discard(body: Dispatcher.ResponseData['body']): void {
  body.on('error', () => {});
  body.destroy();
}

/** `p`, or a rejection with KeysUnavailable as soon as `signal` aborts (the fetch itself goes on for later requests). */
function waitFor<T>(p: Promise<T>, signal: CancelSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(new KeysUnavailable('the request deadline passed before the JWK set arrived'));
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(new KeysUnavailable('the request deadline passed before the JWK set arrived'));
    signal.onAbort(abort);
    p.then(
      (v) => {
        signal.offAbort(abort);
        resolve(v);
      },
      (e: unknown) => {
        signal.offAbort(abort);
        reject(e);
      },
    );
  });
}

/**
 * The key source for `o`, when a plan is compiled. A jwk_local_path is read
 * now (and, to sign, must hold the private key `kid`); a jwk_url source comes
 * from PolicyState, keyed by every setting it depends on (the CA file by its
 * content). Throws with the namespace, its config path and the file when a
 * file cannot serve: the plan does not compile.
 */
export function keySourceFor(
  o: JwkSourceOptions,
  state: StateScope,
  namespace: string,
  purpose: { use: 'verify' } | { use: 'sign'; kid: string },
  warmUp: boolean,
): KeySource {
  const fail = (field: string, file: string, reason: string): Error =>
    new Error(`${namespace} at ${o.at}.${field}: ${JSON.stringify(file)} (${resolve(file)}) ${reason}`);
  if (o.localPath !== undefined) {
    let set: KeySet;
    try {
      set = readKeySetFile(o.localPath);
    } catch (err) {
      throw fail('jwk_local_path', o.localPath, (err as Error).message);
    }
    if (purpose.use === 'sign') {
      const entry = set.find('kid', purpose.kid);
      if (!entry) throw fail('jwk_local_path', o.localPath, `holds no key with kid ${JSON.stringify(purpose.kid)}`);
      if (entry.jwk.kty !== 'oct' && typeof entry.jwk.d !== 'string') throw fail('jwk_local_path', o.localPath, `holds only the public part of key ${JSON.stringify(purpose.kid)}: signing needs the private key`);
    }
    return new StaticKeySource(set);
  }
  let caPem: string | undefined;
  if (o.localCa !== undefined) {
    try {
      caPem = readFileSync(o.localCa, 'utf8');
    } catch (err) {
      throw fail('jwk_local_ca', o.localCa, `cannot be read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    try {
      new X509Certificate(caPem);
    } catch {
      throw fail('jwk_local_ca', o.localCa, 'holds no PEM certificate');
    }
  }
  const key = stateKey('auth/jwk-source', {
    url: o.url,
    allowHttp: o.allowHttp,
    ca: caPem === undefined ? null : sha256Hex(caPem),
    ciphers: o.ciphers ?? null,
    fingerprints: o.fingerprints ?? null,
    maxAgeMs: o.maxAgeMs,
    cooldownMs: o.cooldownMs,
  });
  return state.get(key, () => new RemoteKeySource(o, caPem, warmUp), (s) => s.close());
}
