// Token buckets for the rate-limit namespaces (qos/ratelimit/router,
// qos/ratelimit/proxy, and later their Redis-backed variants), the keyed
// store of per-client buckets, and the client-key extraction (ip / header /
// param) of KrakenD's `strategy` and `key` fields.
//
// The bucket maths. A bucket of `capacity` tokens refills one token every
// `intervalMs` (= every / max_rate). Rather than a token count and a refill
// time, a bucket is kept as ONE number, `fullAt`: the instant (monotonic
// milliseconds) at which it will be full again (the "theoretical arrival
// time" of GCRA, which is the same token bucket written differently). With
// d = max(0, fullAt - now):
//
//     tokens(now)  = capacity - d / intervalMs         (fractional)
//     allowed      ⇔ d <= (capacity - 1) * intervalMs  (at least one whole token)
//     fullAt'      = max(fullAt, now) + intervalMs     (one token taken)
//     wait         = d - (capacity - 1) * intervalMs   (until one token, when refused)
//
// No refill step, no rounding: a fractional rate (max_rate 0.5 every 1s is
// one token every 2000 ms) is exact, a new bucket is full (fullAt = 0 or any
// past instant), and a bucket whose fullAt has passed carries no information
// (it can be forgotten and re-created full). A Redis variant stores the same
// one number per key and runs the same four lines in a script.
//
// Time is performance.now() (monotonic: a wall-clock step never refills or
// drains a bucket); tests replace it with setClock().
//
// Written by hand: the maths is four lines, and the keyed store must be
// bounded and allocation-free per request, which general caches are not.

import { createHash } from 'node:crypto';
import type { ProxyRequest } from '../proxy/types.ts';

// ---------------------------------------------------------------- the clock

let clock: () => number = () => performance.now();

/** Monotonic milliseconds used by every bucket (performance.now() unless a test replaced it). */
export function now(): number {
  return clock();
}

/** Replace the clock (tests); call without an argument to restore performance.now(). */
export function setClock(fn?: () => number): void {
  clock = fn ?? (() => performance.now());
}

// ---------------------------------------------------------------- the maths

/** A bucket's fixed parameters, derived once from the configuration. */
export interface BucketRule {
  /** Milliseconds per token: every / max_rate. */
  readonly intervalMs: number;
  /** Whole tokens the bucket holds (>= 1). */
  readonly capacity: number;
  /** (capacity - 1) * intervalMs: how far fullAt may be ahead of now for a take to succeed. */
  readonly burstMs: number;
}

/**
 * Tolerance of the comparisons, in milliseconds (a nanosecond): keeps a rate
 * such as 3 every 1s exact at its boundaries despite binary fractions.
 */
const EPSILON_MS = 1e-6;

/** `maxRate` tokens every `everyMs` milliseconds, `capacity` at most. */
export function bucketRule(maxRate: number, everyMs: number, capacity: number): BucketRule {
  if (!(maxRate > 0) || !(everyMs > 0)) throw new RangeError('a bucket needs a positive rate and period');
  const cap = Math.max(1, Math.floor(capacity));
  const intervalMs = everyMs / maxRate;
  return { intervalMs, capacity: cap, burstMs: (cap - 1) * intervalMs };
}

/**
 * KrakenD's default capacity when `capacity` is absent or 0: the rate per
 * second, truncated, or 1 for smaller rates (krakend-ratelimit does this
 * after scaling max_rate to a per-second rate by `every`).
 */
export function defaultCapacity(maxRate: number, everyMs: number): number {
  const perSecond = (maxRate * 1000) / everyMs;
  return perSecond < 1 ? 1 : Math.floor(perSecond);
}

/** Whether a bucket that is full at `fullAt` has a whole token at `t`. */
export function allows(rule: BucketRule, fullAt: number, t: number): boolean {
  return fullAt - t <= rule.burstMs + EPSILON_MS;
}

/** The new fullAt after taking one token at `t` (call only when allows()). */
export function take(rule: BucketRule, fullAt: number, t: number): number {
  return (fullAt > t ? fullAt : t) + rule.intervalMs;
}

/** Milliseconds until the bucket has a whole token (0 when it has one). */
export function waitMs(rule: BucketRule, fullAt: number, t: number): number {
  const w = fullAt - t - rule.burstMs;
  return w > EPSILON_MS ? w : 0;
}

/** Whole tokens left at `t`. */
export function remaining(rule: BucketRule, fullAt: number, t: number): number {
  const d = fullAt > t ? fullAt - t : 0;
  return Math.max(0, Math.floor(rule.capacity - d / rule.intervalMs + 1e-9));
}

/** Whole seconds to wait for a token, as Retry-After says it (at least 1 when refused). */
export function retryAfterSeconds(wait: number): number {
  return Math.max(1, Math.ceil(wait / 1000 - 1e-9));
}

/** One bucket (an endpoint's, a backend's). */
export class TokenBucket {
  readonly rule: BucketRule;
  /** See the maths above; 0 is "full since the process started". */
  fullAt = 0;

  constructor(rule: BucketRule) {
    this.rule = rule;
  }

  /** Take one token at `t` if there is one. */
  tryTake(t: number = clock()): boolean {
    if (!allows(this.rule, this.fullAt, t)) return false;
    this.fullAt = take(this.rule, this.fullAt, t);
    return true;
  }

  /** Milliseconds until a token, at `t`. */
  waitMs(t: number = clock()): number {
    return waitMs(this.rule, this.fullAt, t);
  }
}

// ---------------------------------------------------------------- the keyed store

/**
 * The most client buckets one store keeps (one store per endpoint with a
 * client limit). Measured on Node 24 (heap after GC, 100,000 buckets): about
 * 60 bytes per bucket plus its key, i.e. ~80 bytes with IPv4 keys, ~100 with
 * 36-character keys and ~126 with the longest kept key (MAX_KEY_LENGTH), so a
 * full store holds 8 to 13 MB.
 */
export const MAX_CLIENT_BUCKETS = 100_000;

/** Slots a new key looks at, at most, for a full bucket to replace (CLOCK eviction). */
const EVICTION_PROBES = 8;

/**
 * Per-key buckets of one rule, bounded. The hot path is one Map lookup (key
 * to slot) and arithmetic on a Float64Array: nothing is allocated for a
 * known key.
 *
 * Eviction (CLOCK over the slots): below the cap every new key gets a new
 * slot, so no limit is forgotten. At the cap, a new key takes the slot of
 * the first full bucket (the same as no bucket) among the next
 * EVICTION_PROBES slots after the clock hand; buckets in use are passed
 * over. If all of them are in use, the last one looked at is forgotten (that
 * client starts again with a full bucket). So memory is bounded by `cap`,
 * idle clients go first, and a new key costs O(1).
 */
export class KeyedBuckets {
  readonly rule: BucketRule;
  readonly cap: number;
  readonly #slots = new Map<string, number>();
  /** The key of each slot. */
  readonly #keys: string[] = [];
  #fullAt: Float64Array;
  #hand = 0;

  constructor(rule: BucketRule, cap: number = MAX_CLIENT_BUCKETS) {
    this.rule = rule;
    this.cap = Math.max(1, cap);
    this.#fullAt = new Float64Array(Math.min(this.cap, 1024));
  }

  /** Buckets held now. */
  get size(): number {
    return this.#slots.size;
  }

  /**
   * Take one token from `key`'s bucket at `t`. Returns 0 when taken, else the
   * milliseconds until the bucket has a token.
   */
  take(key: string, t: number = clock()): number {
    const rule = this.rule;
    let slot = this.#slots.get(key);
    if (slot === undefined) slot = this.#insert(key, t);
    const fullAt = this.#fullAt[slot] as number;
    if (fullAt - t <= rule.burstMs + EPSILON_MS) {
      this.#fullAt[slot] = (fullAt > t ? fullAt : t) + rule.intervalMs;
      return 0;
    }
    return fullAt - t - rule.burstMs;
  }

  /** fullAt of `key`'s bucket, or undefined when the store holds none (tests). */
  peek(key: string): number | undefined {
    const slot = this.#slots.get(key);
    return slot === undefined ? undefined : this.#fullAt[slot];
  }

  #insert(key: string, t: number): number {
    const keys = this.#keys;
    let slot: number;
    if (keys.length < this.cap) {
      slot = keys.length;
      keys.push(key);
      if (slot >= this.#fullAt.length) {
        const grown = new Float64Array(Math.min(this.cap, this.#fullAt.length * 2));
        grown.set(this.#fullAt);
        this.#fullAt = grown;
      }
    } else {
      slot = this.#victim(t);
      this.#slots.delete(keys[slot] as string);
      keys[slot] = key;
    }
    this.#fullAt[slot] = 0; // full
    this.#slots.set(key, slot);
    return slot;
  }

  #victim(t: number): number {
    const n = this.cap;
    let s = this.#hand;
    for (let i = 0; i < EVICTION_PROBES; i++) {
      s = this.#hand;
      this.#hand = s + 1 === n ? 0 : s + 1;
      if ((this.#fullAt[s] as number) <= t) return s;
    }
    return s;
  }
}

// ---------------------------------------------------------------- client keys

/** How a client is told apart (KrakenD's `strategy`). */
export type ClientStrategy = 'ip' | 'header' | 'param';

/**
 * Keys longer than this (UTF-16 code units; node reads header values as
 * Latin-1, so bytes) are replaced by "#" and their SHA-256 digest (44
 * characters): distinct long keys (JWTs, 10 KB junk) stay distinct, one
 * client cannot drain another's bucket by sharing a prefix, and no key held
 * in memory (or sent to Redis) is longer than this. Hashing costs ~1 µs per
 * KB, only for such keys.
 */
export const MAX_KEY_LENGTH = 64;

/** A key of bounded length: `raw` itself, or "#" + its SHA-256 (base64url) when longer than MAX_KEY_LENGTH. */
export function boundedKey(raw: string): string {
  if (raw.length <= MAX_KEY_LENGTH) return raw;
  return `#${createHash('sha256').update(raw, 'latin1').digest('base64url')}`;
}

/** The first value of a header, as Go's Header.Get gives it (node joins repeated headers into one string or an array). */
function headerValue(v: string | string[] | undefined): string {
  if (v === undefined) return '';
  return typeof v === 'string' ? v : (v[0] ?? '');
}

const IPV4 = /^\d{1,3}(?:\.\d{1,3}){3}$/;

/**
 * The IP in a header used by strategy "ip" with a `key` (KrakenD reads the
 * first comma-separated element, drops a ":port" and keeps it only if it is
 * an IP address). IPv6 addresses are accepted whole.
 */
function ipFromHeader(value: string): string {
  const comma = value.indexOf(',');
  const first = (comma === -1 ? value : value.slice(0, comma)).trim();
  if (first === '') return '';
  const colon = first.indexOf(':');
  if (colon !== -1 && first.indexOf(':', colon + 1) === -1) {
    // host:port (one colon): IPv4 with a port.
    const host = first.slice(0, colon);
    return IPV4.test(host) && validV4(host) ? host : '';
  }
  if (IPV4.test(first)) return validV4(first) ? first : '';
  // IPv6 (several colons), possibly bracketed with a port.
  const v6 = first.startsWith('[') ? first.slice(1, first.indexOf(']') === -1 ? undefined : first.indexOf(']')) : first;
  return /^[0-9A-Fa-f:.]{2,45}$/.test(v6) && v6.includes(':') ? v6.toLowerCase() : '';
}

function validV4(s: string): boolean {
  for (const part of s.split('.')) if (Number(part) > 255) return false;
  return true;
}

/** Extracts the client key of a request; '' when it has none (KrakenD then answers 429). */
export type KeyExtractor = (req: ProxyRequest) => string;

/**
 * The key extractor of a strategy. `key` is the header name (lower-case) for
 * "header", the endpoint parameter for "param", and for "ip" an optional
 * header holding the client IP (believed as sent, as in KrakenD; without it,
 * `clientIp` decides, with router.forwarded_by_client_ip and trusted_proxies).
 * Every key is bounded by boundedKey().
 */
export function keyExtractor(strategy: ClientStrategy, key: string, clientIp: (req: ProxyRequest) => string): KeyExtractor {
  switch (strategy) {
    case 'ip':
      if (key === '') return clientIp;
      return (req) => {
        const ip = ipFromHeader(headerValue(req.headers[key]));
        return ip !== '' ? ip : clientIp(req);
      };
    case 'header':
      return (req) => boundedKey(headerValue(req.headers[key]));
    case 'param':
      return (req) => boundedKey(req.params[key] ?? '');
  }
}

// ---------------------------------------------------------------- headers

/**
 * The quota of a policy as draft-ietf-httpapi-ratelimit-headers writes it
 * (`q` and `w` are integers): `maxRate` every `everyMs`, scaled by the
 * smallest factor that makes both whole (0.5 every 1s is q=1;w=2).
 */
export function quotaOf(maxRate: number, everyMs: number): { q: number; w: number } {
  const w0 = everyMs / 1000;
  for (let k = 1; k <= 1000; k++) {
    const q = maxRate * k;
    const w = w0 * k;
    if (Math.abs(q - Math.round(q)) < 1e-9 && Math.abs(w - Math.round(w)) < 1e-9 && Math.round(w) >= 1) return { q: Math.round(q), w: Math.round(w) };
  }
  return { q: Math.max(1, Math.round(maxRate)), w: Math.max(1, Math.round(w0)) };
}

/**
 * The headers of a limited answer: Retry-After (whole seconds until a
 * token), RateLimit-Policy (`"<policy>";q=<quota>;w=<window s>`) and
 * RateLimit (`"<policy>";r=0;t=<seconds until a token>`). `policyHeader` is
 * prebuilt at compile time (see policyHeader()).
 */
export function limitedHeaders(policy: string, policyHeaderValue: string, wait: number): string[] {
  const s = String(retryAfterSeconds(wait));
  return ['retry-after', s, 'ratelimit-policy', policyHeaderValue, 'ratelimit', `"${policy}";r=0;t=${s}`];
}

/** The RateLimit-Policy value of a policy (compile time). */
export function policyHeader(policy: string, maxRate: number, everyMs: number): string {
  const { q, w } = quotaOf(maxRate, everyMs);
  return `"${policy}";q=${q};w=${w}`;
}
