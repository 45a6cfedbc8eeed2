// `qos/http-cache` (backend): answers of a backend are kept in memory and
// reused while HTTP caching rules (RFC 9111) say they are fresh, as KrakenD
// does with krakend-httpcache around its HTTP client.
//
// What is cached: the decoded, manipulated answer of one backend call (the
// ProxyResponse data), with an http-cache-semantics CachePolicy built from the
// request sent to the backend (method, URL, forwarded headers) and the
// backend's status and headers (ProxyResponse.meta, which backend.ts sets for
// backends that have namespaces). Entries are keyed by method and URL; each
// holds up to MAX_VARIANTS answers told apart by the backend's `Vary`, and the
// policy decides whether one satisfies a request (freshness, Vary, request
// Cache-Control). The cache is always an RFC "shared" cache (a gateway serves
// many users): `private` and `no-store` answers are never stored, nor answers
// to requests carrying Authorization unless the answer allows it.
//
// Bounds: every cache is an LRU bounded in entries (`max_items`) and in
// estimated bytes (`max_size`, from the backend body size); an answer larger
// than the whole cache is not stored. Concurrent misses for one key make one
// backend call (single flight); the others wait, bounded by their own deadline.
// Each request gets its own deep copy of a cached answer, so later merges and
// endpoint manipulations never reach the stored one.

import { createHash } from 'node:crypto';
import CachePolicy from 'http-cache-semantics';
import { LRUCache } from 'lru-cache';
import { checkFields, expectObject, type ObjectRules } from '../config/fields.ts';
import type { CancelSignal } from '../proxy/abort.ts';
import { TimeoutError } from '../proxy/errors.ts';
import { compileHeaderForwarder } from '../proxy/headers.ts';
import { compileQueryFilter } from '../proxy/query.ts';
import type { Data, Proxy, ProxyRequest, ProxyResponse, ResponseHeaders } from '../proxy/types.ts';
import { compileUrlTemplate } from '../proxy/url-template.ts';
import { USER_AGENT } from '../version.ts';
import type { Namespace } from './namespace.ts';
import { stateKey } from './state.ts';

const NAME = 'qos/http-cache';

export interface HttpCacheOptions {
  /** One cache for every backend with `shared: true` (and the same bounds) instead of one per backend. */
  shared: boolean;
  /** Most entries (URLs) the cache holds. */
  maxItems: number;
  /** Most estimated bytes the cache holds. */
  maxSize: number;
}

/** Bounds when the configuration gives none (KrakenD's cache is then unbounded; Portico's never is). */
export const DEFAULT_MAX_ITEMS = 1024;
export const DEFAULT_MAX_SIZE = 32 * 1024 * 1024;
/** Answers kept per URL for different `Vary` request values. */
export const MAX_VARIANTS = 8;
/** Bytes counted per stored answer on top of its body (policy, headers, bookkeeping). */
const ENTRY_OVERHEAD_BYTES = 512;

const RULES: ObjectRules = {
  shared: 'boolean',
  max_items: 'custom',
  max_size: 'custom',
};

const BOUND_MAX = { max_items: 2 ** 31 - 1, max_size: Number.MAX_SAFE_INTEGER } as const;

export const qosHttpCache: Namespace<HttpCacheOptions> = {
  name: NAME,
  scopes: ['backend'],
  order: 505,
  policy: true,
  parse(raw, path, c, ctx) {
    if (!expectObject(c, raw, path, 'an object such as {} or {"shared": true, "max_items": 1000, "max_size": 10485760}')) return undefined;
    if (ctx.streamed) {
      c.error(path, 'a backend whose answer Portico decodes (a no-op answer is streamed and cannot be cached by this version)', 'qos/http-cache on a "no-op" backend');
      return undefined;
    }
    const before = c.errors.length;
    const valid = checkFields(c, raw, path, RULES, 'the "qos/http-cache" namespace');
    for (const key of ['max_items', 'max_size'] as const) {
      if (!(key in raw)) continue;
      const v = raw[key];
      const unit = key === 'max_items' ? 'entries' : 'bytes';
      if (v === 0) {
        // KrakenD reads 0 as "no limit"; Portico's caches are always bounded.
        c.error([...path, key], `a positive integer of ${unit} (an unbounded cache is not supported by this version: omit the key for Portico's default bound)`, '0');
      } else if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > BOUND_MAX[key]) {
        c.invalid([...path, key], `a positive integer of ${unit}, at most ${BOUND_MAX[key]}`, v);
      } else valid.add(key);
    }
    if (valid.has('max_items') !== valid.has('max_size') && c.errors.length === before) {
      const given = valid.has('max_items') ? 'max_items' : 'max_size';
      const other = given === 'max_items' ? 'max_size' : 'max_items';
      c.warning(
        [...path, given],
        `"${given}" together with "${other}" (KrakenD uses an LRU cache only when both are set; Portico applies this one and its default ${other === 'max_size' ? `${DEFAULT_MAX_SIZE} bytes` : `${DEFAULT_MAX_ITEMS} items`} for "${other}")`,
        `"${given}" alone`,
      );
    }
    if (c.errors.length > before) return undefined;
    return {
      shared: valid.has('shared') && raw.shared === true,
      maxItems: valid.has('max_items') ? (raw.max_items as number) : DEFAULT_MAX_ITEMS,
      maxSize: valid.has('max_size') ? (raw.max_size as number) : DEFAULT_MAX_SIZE,
    };
  },
  compile(o, ctx) {
    const b = ctx.backend;
    const ep = ctx.endpoint;
    if (b === undefined || ep === undefined) return undefined;
    if (b.encoding === 'no-op') {
      // parse() refuses this already; a Plan must never silently skip the cache.
      throw new Error(
        `${NAME} on backend ${JSON.stringify(b.urlPattern)} of endpoint ${JSON.stringify(ep.endpoint)}: a no-op (streamed) answer cannot be cached by this version; remove the cache or use another encoding`,
      );
    }
    // Only safe methods are cached (RFC 9111, KrakenD): the cache is not in the way of any other call.
    if (b.method !== 'GET' && b.method !== 'HEAD') return undefined;
    // Everything that shapes the backend request and the stored data: two backends share entries only if equal.
    const { namespaces: _parsed, ...shape } = b;
    const identity = createHash('sha256').update(JSON.stringify(shape)).digest('base64url').slice(0, 22);
    const cache = o.shared
      ? ctx.state.get(stateKey(NAME, 'shared', o.maxItems, o.maxSize), () => new ResponseCache(o.maxItems, o.maxSize))
      : ctx.state.get(stateKey(NAME, 'backend', o.maxItems, o.maxSize, ep.method, ep.endpoint, identity), () => new ResponseCache(o.maxItems, o.maxSize));
    const prefix = `${b.method} ${o.shared ? identity : ''} `;
    const template = compileUrlTemplate(b.urlPattern);
    const filterQuery = compileQueryFilter(ep.inputQueryStrings, b.inputQueryStrings);
    const separator = template.hasQuery ? '&' : '?';
    const forwardHeaders = compileHeaderForwarder(ep.inputHeaders, b.inputHeaders, USER_AGENT);
    const method = b.method;
    return {
      middleware: (next: Proxy): Proxy => (req) => {
        const query = filterQuery(req.rawQuery);
        const url = query === '' ? template.render(req) : template.render(req) + separator + query;
        const headers: Record<string, string | string[] | undefined> = forwardHeaders(req);
        // The backend's host is part of the key, not of the request headers: a fixed value makes the policy's Host check pass.
        headers.host = '';
        return cache.serve(prefix + url, { url, method, headers }, req, next);
      },
    };
  },
};

// ---------------------------------------------------------------- http-cache-semantics

type PolicyRequest = CachePolicy.Request;
type Policy = CachePolicy;

/** Response headers that decide caching, arrays joined (the policy expects strings). */
const CACHING_HEADERS = ['cache-control', 'expires', 'vary', 'date', 'age', 'last-modified', 'pragma', 'etag'] as const;

function cachingHeaders(h: ResponseHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of CACHING_HEADERS) {
    const v = h[name];
    if (v !== undefined) out[name] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

// ---------------------------------------------------------------- the cache

interface Variant {
  policy: Policy;
  /** The request header values the answer varies on (its `Vary`), to replace an older answer for the same ones. */
  varyKey: string;
  /** The stored copy; never handed out (each request gets its own copy). */
  data: Data;
  bytes: number;
}

interface Entry {
  variants: Variant[];
}

interface Flight {
  readonly done: Promise<void>;
  /** The leader's failure, unless the leader itself gave up (its deadline or client). */
  error: unknown;
  failed: boolean;
}

const SUCCESS = new Set([200, 201]);

/** One LRU of backend answers (per backend, or shared) and the calls in flight for it. */
export class ResponseCache {
  readonly #lru: LRUCache<string, Entry>;
  readonly #flights = new Map<string, Flight>();

  constructor(maxItems: number, maxSize: number) {
    this.#lru = new LRUCache<string, Entry>({ max: maxItems, maxSize, maxEntrySize: maxSize });
  }

  async serve(key: string, creq: PolicyRequest, req: ProxyRequest, next: Proxy): Promise<ProxyResponse> {
    const hit = this.#lookup(key, creq);
    if (hit !== undefined) return { data: cloneData(hit), complete: true };
    const flight = this.#flights.get(key);
    if (flight !== undefined) {
      await waitFor(flight.done, req.signal);
      if (flight.failed) throw flight.error;
      // The leader's answer may not fit this request (Vary, not storable): then this one calls for itself.
      const after = this.#lookup(key, creq);
      if (after !== undefined) return { data: cloneData(after), complete: true };
      return this.#callAndStore(key, creq, req, next);
    }
    let settle!: () => void;
    const mine: Flight = { done: new Promise<void>((r) => (settle = r)), error: undefined, failed: false };
    this.#flights.set(key, mine);
    try {
      return await this.#callAndStore(key, creq, req, next);
    } catch (err) {
      // A leader that timed out or lost its client says nothing about the backend: the others try themselves.
      if (!req.signal.aborted) {
        mine.failed = true;
        mine.error = err;
      }
      throw err;
    } finally {
      this.#flights.delete(key);
      settle();
    }
  }

  async #callAndStore(key: string, creq: PolicyRequest, req: ProxyRequest, next: Proxy): Promise<ProxyResponse> {
    const res = await next(req);
    const meta = res.meta;
    if (meta === undefined || !res.complete || res.passthrough !== undefined || !SUCCESS.has(meta.status)) return res;
    const headers = cachingHeaders(meta.headers);
    const policy = new CachePolicy(creq, { status: meta.status, headers }, { shared: true });
    if (!policy.storable()) return res;
    const ttl = policy.timeToLive();
    if (!(ttl > 0)) return res; // stale at once: it would need revalidation, which this version does not do
    const vary = headers.vary?.toLowerCase().split(',').map((s) => s.trim()).filter((s) => s !== '');
    if (vary?.includes('*')) return res; // never matches a later request
    const variant: Variant = { policy, varyKey: varyKeyOf(vary, creq.headers), data: cloneData(res.data), bytes: meta.bodyBytes + ENTRY_OVERHEAD_BYTES };
    this.#store(key, variant, ttl);
    return res;
  }

  #lookup(key: string, creq: PolicyRequest): Data | undefined {
    const e = this.#lru.get(key);
    if (e === undefined) return undefined;
    for (const v of e.variants) if (v.policy.satisfiesWithoutRevalidation(creq)) return v.data;
    return undefined;
  }

  #store(key: string, variant: Variant, ttl: number): void {
    const old = this.#lru.peek(key)?.variants ?? [];
    // Keep the other fresh variants; the new answer replaces the one for the same Vary values.
    const kept = old.filter((v) => v.varyKey !== variant.varyKey && v.policy.timeToLive() > 0);
    const variants = [variant, ...kept].slice(0, MAX_VARIANTS);
    let bytes = 0;
    let maxTtl = 0;
    for (const v of variants) {
      bytes += v.bytes;
      maxTtl = Math.max(maxTtl, v === variant ? ttl : v.policy.timeToLive());
    }
    // Larger than the whole cache: lru-cache refuses it (and drops the key), the rest stays.
    this.#lru.set(key, { variants }, { size: bytes, ttl: Math.ceil(maxTtl) });
  }
}

function varyKeyOf(vary: string[] | undefined, headers: PolicyRequest['headers']): string {
  if (vary === undefined || vary.length === 0) return '';
  return JSON.stringify(vary.map((name) => headers[name] ?? null));
}

/** Wait for `p`, or reject when `signal` aborts first. */
function waitFor(p: Promise<void>, signal: CancelSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason ?? new TimeoutError());
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => reject(signal.reason ?? new TimeoutError());
    signal.onAbort(onAbort);
    void p.then(() => {
      signal.offAbort(onAbort);
      resolve();
    });
  });
}

/** A deep copy of decoded data (plain objects, arrays and primitives, as the decoders produce). */
export function cloneData(d: Data): Data {
  return cloneValue(d) as Data;
}

function cloneValue(v: unknown): unknown {
  if (typeof v !== 'object' || v === null) return v;
  if (Array.isArray(v)) {
    const out = new Array<unknown>(v.length);
    for (let i = 0; i < v.length; i++) out[i] = cloneValue(v[i]);
    return out;
  }
  const proto = Object.getPrototypeOf(v) as unknown;
  if (proto !== Object.prototype && proto !== null) return structuredClone(v);
  const out: Record<string, unknown> = {};
  for (const k in v) {
    const x = cloneValue((v as Record<string, unknown>)[k]);
    // An own "__proto__" key (JSON.parse makes one) must stay a key, not become the copy's prototype.
    if (k === '__proto__') Object.defineProperty(out, k, { value: x, enumerable: true, writable: true, configurable: true });
    else out[k] = x;
  }
  return out;
}
