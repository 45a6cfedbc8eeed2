// `qos/ratelimit/router` (endpoint): KrakenD's local rate limits of an
// endpoint, as krakend-ratelimit's router middleware applies them.
//
// - `max_rate` tokens every `every` (default 1s) into one bucket shared by
//   every client of the endpoint, `capacity` tokens at most (default: the
//   rate per second, or 1 below one per second). Empty: 503.
// - `client_max_rate` / `client_capacity`: one bucket per client, told apart
//   by `strategy` ("ip", "header" or "param") and `key`. Over its limit, or
//   with no key at all (a missing or empty header or parameter): 429.
//   The client bucket is checked first, then the endpoint's (as KrakenD
//   nests them).
//
// What Portico adds: limited answers carry Retry-After, RateLimit-Policy and
// RateLimit (draft-ietf-httpapi-ratelimit-headers); the buckets live in
// PolicyState (an unchanged policy keeps its buckets across reloads); the
// per-client store is bounded (token-bucket.ts); keys are length-bounded.

import { DURATION_EXPECTED, parseDuration } from '../config/duration.ts';
import { checkFields, expectObject, quoteList, type ObjectRules } from '../config/fields.ts';
import type { IssueCollector } from '../config/issues.ts';
import type { JsonPath } from '../config/json-path.ts';
import { PolicyError } from '../proxy/errors.ts';
import { HTTP_TOKEN } from '../proxy/headers.ts';
import type { ProxyRequest } from '../proxy/types.ts';
import type { Guard, Namespace } from './namespace.ts';
import { stateKey } from './state.ts';
import {
  bucketRule,
  type ClientStrategy,
  defaultCapacity,
  KeyedBuckets,
  keyExtractor,
  limitedHeaders,
  now,
  policyHeader,
  TokenBucket,
} from './token-bucket.ts';

const NAME = 'qos/ratelimit/router';

/** Stable codes of the rejections. */
export const RATELIMIT_ROUTER_CODES = {
  /** The endpoint-wide bucket is empty (503). */
  endpoint: 'RATE_LIMIT_ENDPOINT',
  /** This client's bucket is empty (429). */
  client: 'RATE_LIMIT_CLIENT',
  /** The request has no client key: the header or parameter is missing or empty (429, as KrakenD). */
  noKey: 'RATE_LIMIT_CLIENT_KEY_MISSING',
} as const;

/** KrakenD reads any `every` below one second as one second in the router limits. */
const MIN_EVERY_MS = 1000;

export interface RouterRateLimitOptions {
  /** Endpoint-wide tokens per `everyMs`; 0 = no endpoint limit. */
  maxRate: number;
  /** Endpoint bucket size (default applied). */
  capacity: number;
  /** Per-client tokens per `everyMs`; 0 = no client limit. */
  clientMaxRate: number;
  /** Client bucket size (default applied). */
  clientCapacity: number;
  strategy: ClientStrategy;
  /** Lower-case header name ("header", "ip"), parameter name ("param"), or '' ("ip" without a header). */
  key: string;
  /** The period of the rates, in milliseconds (>= 1000). */
  everyMs: number;
}

const RULES: ObjectRules = {
  max_rate: 'custom',
  capacity: 'custom',
  client_max_rate: 'custom',
  client_capacity: 'custom',
  strategy: 'custom',
  key: 'string',
  every: 'custom',
  // KrakenD's tuning of its sharded store and cleanup goroutines: accepted,
  // no effect (Portico's store is bounded by MAX_CLIENT_BUCKETS instead).
  num_shards: { kind: 'integer', min: 1 },
  cleanup_period: 'duration',
  cleanup_threads: { kind: 'integer', min: 1 },
};

export const qosRatelimitRouter: Namespace<RouterRateLimitOptions> = {
  name: NAME,
  scopes: ['endpoint'],
  order: 500,
  policy: true,
  parse(raw, path, c, ctx) {
    if (!expectObject(c, raw, path, 'an object with "max_rate" and/or "client_max_rate"')) return undefined;
    const before = c.errors.length;
    const valid = checkFields(c, raw, path, RULES, `the "${NAME}" namespace`);
    const maxRate = rate(c, raw, path, 'max_rate');
    const clientMaxRate = rate(c, raw, path, 'client_max_rate');
    const capacity = count(c, raw, path, 'capacity');
    const clientCapacity = count(c, raw, path, 'client_capacity');
    if (!('max_rate' in raw) && !('client_max_rate' in raw)) c.missing([...path, 'max_rate'], 'a "max_rate" (endpoint limit) or a "client_max_rate" (per-client limit), or both');
    let everyMs = MIN_EVERY_MS;
    if ('every' in raw) {
      const v = raw.every;
      const d = typeof v === 'string' ? parseDuration(v) : undefined;
      if (d === undefined || d <= 0) c.invalid([...path, 'every'], `a positive ${DURATION_EXPECTED}`, v);
      else if (d < MIN_EVERY_MS) c.warning([...path, 'every'], 'a period of at least 1s (KrakenD reads a shorter "every" of the router limits as 1s; Portico does the same)', JSON.stringify(v));
      else everyMs = d;
    }
    let strategy: ClientStrategy = 'ip';
    if ('strategy' in raw) {
      // KrakenD lower-cases the strategy.
      const st = typeof raw.strategy === 'string' ? raw.strategy.toLowerCase() : undefined;
      if (st === 'ip' || st === 'header' || st === 'param') strategy = st;
      else c.invalid([...path, 'strategy'], `one of ${quoteList(['ip', 'header', 'param'])}`, raw.strategy);
    }
    let key = valid.has('key') ? (raw.key as string) : '';
    if ((clientMaxRate ?? 0) > 0) {
      if (!('strategy' in raw)) c.warning([...path, 'strategy'], `a client strategy, one of ${quoteList(['ip', 'header', 'param'])} (Portico uses "ip" when it is absent)`, 'nothing (the key is missing)');
      if (strategy === 'header' || (strategy === 'ip' && key !== '')) {
        if (strategy === 'header' && !('key' in raw)) c.missing([...path, 'key'], 'the name of the header that identifies the client, such as "X-Api-Key"');
        else if (valid.has('key') && !HTTP_TOKEN.test(key)) c.invalid([...path, 'key'], 'a header name such as "X-Api-Key"', key);
        key = key.toLowerCase();
      } else if (strategy === 'param') {
        const params = [...(ctx.endpointPath ?? '').matchAll(/\{([^}]+)\}/g)].map((m) => m[1] as string);
        if (!('key' in raw)) c.missing([...path, 'key'], 'the name of the endpoint parameter that identifies the client');
        else if (valid.has('key') && !params.includes(key)) {
          c.error([...path, 'key'], params.length ? `a parameter of the endpoint path: ${quoteList(params)}` : 'a parameter of the endpoint path (this endpoint has none)', JSON.stringify(key));
        }
      }
    } else if (maxRate === 0 && clientMaxRate === 0 && ('max_rate' in raw || 'client_max_rate' in raw)) {
      c.warning(path, 'a positive "max_rate" or "client_max_rate"', 'no positive rate: the namespace limits nothing (as in KrakenD)');
    }
    if (c.errors.length > before || maxRate === undefined || clientMaxRate === undefined || capacity === undefined || clientCapacity === undefined) return undefined;
    return {
      maxRate,
      capacity: maxRate > 0 ? capacity || defaultCapacity(maxRate, everyMs) : 0,
      clientMaxRate,
      clientCapacity: clientMaxRate > 0 ? clientCapacity || defaultCapacity(clientMaxRate, everyMs) : 0,
      strategy,
      key: clientMaxRate > 0 ? key : '',
      everyMs,
    };
  },
  compile(o, ctx) {
    if (o.maxRate <= 0 && o.clientMaxRate <= 0) return undefined;
    const ep = ctx.endpoint;
    // The endpoint is part of the identity: two endpoints with the same limits have their own buckets.
    const identity = ep ? `${ep.method} ${ep.endpoint}` : '';
    const state = ctx.state.get(stateKey(NAME, identity, o), () => ({
      endpoint: o.maxRate > 0 ? new TokenBucket(bucketRule(o.maxRate, o.everyMs, o.capacity)) : undefined,
      clients: o.clientMaxRate > 0 ? new KeyedBuckets(bucketRule(o.clientMaxRate, o.everyMs, o.clientCapacity)) : undefined,
    }));
    return { guard: routerGuard(o, state.endpoint, state.clients, ctx.clientIp) };
  },
};

/**
 * The guard of compiled options over given buckets (exported for tests and
 * benchmarks that drive it without HTTP).
 */
export function routerGuard(
  o: RouterRateLimitOptions,
  endpoint: TokenBucket | undefined,
  clients: KeyedBuckets | undefined,
  clientIp: (req: ProxyRequest) => string,
  /** Whose limit this is, in logs (namespace) and in the RateLimit headers (the shared bucket's label). */
  owner: { namespace: string; label: string } = { namespace: NAME, label: 'endpoint' },
): Guard {
  const ns = owner.namespace;
  const endpointPolicy = policyHeader(owner.label, o.maxRate, o.everyMs);
  const clientPolicy = policyHeader('client', o.clientMaxRate, o.everyMs);
  const limitEndpoint = (t: number): undefined => {
    if (endpoint !== undefined && !endpoint.tryTake(t)) {
      throw new PolicyError(503, RATELIMIT_ROUTER_CODES.endpoint, ns, `${owner.label} rate limit exceeded`, limitedHeaders(owner.label, endpointPolicy, endpoint.waitMs(t)));
    }
    return undefined;
  };
  if (clients === undefined) return () => limitEndpoint(now());
  const extract = keyExtractor(o.strategy, o.key, clientIp);
  return (req) => {
    const key = extract(req);
    // No key, no bucket: KrakenD refuses with 429; waiting would not help, so no Retry-After.
    if (key === '') throw new PolicyError(429, RATELIMIT_ROUTER_CODES.noKey, ns, `no client key (${o.strategy} ${JSON.stringify(o.key)})`);
    const t = now();
    const wait = clients.take(key, t);
    if (wait > 0) throw new PolicyError(429, RATELIMIT_ROUTER_CODES.client, ns, 'client rate limit exceeded', limitedHeaders('client', clientPolicy, wait));
    return limitEndpoint(t);
  };
}

// ---------------------------------------------------------------- config checks

/** A rate: a number >= 0 (0 disables that limit, as in KrakenD). Absent: 0. */
function rate(c: IssueCollector, raw: Record<string, unknown>, path: JsonPath, key: string): number | undefined {
  if (!(key in raw)) return 0;
  const v = raw[key];
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
    c.invalid([...path, key], 'a number of tokens >= 0, such as 10 or 0.5 (0 disables this limit)', v);
    return undefined;
  }
  return v;
}

/** A capacity: an integer >= 0 (0 or absent: the default). */
function count(c: IssueCollector, raw: Record<string, unknown>, path: JsonPath, key: string): number | undefined {
  if (!(key in raw)) return 0;
  const v = raw[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    c.invalid([...path, key], 'a whole number of tokens >= 0 (0 uses the default)', v);
    return undefined;
  }
  return v;
}
