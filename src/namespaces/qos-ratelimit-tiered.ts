// `qos/ratelimit/tiered` (endpoint): KrakenD Enterprise's tiered rate limit.
// A header (`tier_key`) names the client's tier (plan); each tier carries
// its own `qos/ratelimit/router` limits (endpoint-wide and per-client), with
// their own buckets. Tiers are tried in order and the first match applies:
//
// - `tier_value_as: "literal"` (default): the header value equals `tier_value`
//   exactly (case-sensitive);
// - `tier_value_as: "*"`: any value matches (a fallback; tiers after it are
//   never reached);
// - `tier_value_as: "policy"` (a security-policy expression): not supported
//   by this version (a configuration error).
//
// A tier from a JWT claim: auth/validator's `propagate_claims` copies the
// claim into a header (replacing whatever the client sent), and `tier_key`
// names that header, as KrakenD documents it. Authentication runs first
// (order 400s), so the header holds the validated claim.
//
// No tier matches (unknown value, missing header) and no "*" tier: KrakenD
// does not document the outcome; Portico refuses with 429 (fail closed).
//
// Buckets live in PolicyState, keyed by the options and the endpoint (an
// unchanged reload keeps them); per-client stores are bounded (token-bucket.ts,
// one store per tier); the tier value read from the header is length-bounded
// like client keys (boundedKey), so a 10 KB header costs one hash and matches
// nothing.

import { checkFields, expectObject, quoteList, type ObjectRules } from '../config/fields.ts';
import type { IssueCollector } from '../config/issues.ts';
import type { JsonPath } from '../config/json-path.ts';
import { PolicyError } from '../proxy/errors.ts';
import { HTTP_TOKEN } from '../proxy/headers.ts';
import type { Guard, Namespace, ParseContext } from './namespace.ts';
import { qosRatelimitRouter, routerGuard, type RouterRateLimitOptions } from './qos-ratelimit-router.ts';
import { stateKey } from './state.ts';
import { boundedKey, bucketRule, KeyedBuckets, keyExtractor, TokenBucket } from './token-bucket.ts';

const NAME = 'qos/ratelimit/tiered';

/** Stable codes of the rejections this namespace adds (the limits themselves use qos/ratelimit/router's codes). */
export const RATELIMIT_TIERED_CODES = {
  /** The tier header is missing or empty and no tier matches that (429). */
  missing: 'RATE_LIMIT_TIER_MISSING',
  /** The tier header names no configured tier, and there is no "*" tier (429). */
  unknown: 'RATE_LIMIT_TIER_UNKNOWN',
} as const;

export interface TierOptions {
  /** "literal" compares `match`; "*" matches any value. */
  as: 'literal' | '*';
  /** The literal as the header value would be read (UTF-8 bytes as Latin-1), then bounded like a client key; '' for "*". */
  match: string;
  /** The name of the tier in RateLimit headers and logs: the tier value when it is a safe token, else "tier-<n>" ("*" for the fallback). */
  label: string;
  /** The tier's limits, as qos/ratelimit/router parses them. */
  limit: RouterRateLimitOptions;
}

export interface TieredRateLimitOptions {
  /** The tier header, lower-case. */
  tierKey: string;
  /** Reachable tiers in order (tiers after a "*" one and repeated literals are dropped with a warning). */
  tiers: TierOptions[];
}

const RULES: ObjectRules = {
  tier_key: 'string',
  tiers: 'array',
};

const TIER_RULES: ObjectRules = {
  tier_value: 'string',
  tier_value_as: 'custom',
  ratelimit: 'object',
  ratelimit_redis: 'custom',
};

/** A label that is safe inside a structured-field string (RateLimit-Policy) and short. */
const SAFE_LABEL = /^[A-Za-z0-9._~+\-:@/ ]{1,40}$/;

export const qosRatelimitTiered: Namespace<TieredRateLimitOptions> = {
  name: NAME,
  scopes: ['endpoint'],
  // After authentication (400s: propagate_claims has set the tier header) and the plain router limit (500).
  order: 506,
  policy: true,
  parse(raw, path, c, ctx) {
    if (!expectObject(c, raw, path, 'an object with "tier_key" and "tiers"')) return undefined;
    const before = c.errors.length;
    const valid = checkFields(c, raw, path, RULES, `the "${NAME}" namespace`);
    let tierKey = '';
    if (!('tier_key' in raw)) c.missing([...path, 'tier_key'], 'the name of the header that holds the tier, such as "X-Tier"');
    else if (valid.has('tier_key')) {
      tierKey = raw.tier_key as string;
      if (!HTTP_TOKEN.test(tierKey)) c.invalid([...path, 'tier_key'], 'a header name such as "X-Tier"', tierKey);
      tierKey = tierKey.toLowerCase();
    }
    const tiers: TierOptions[] = [];
    if (!('tiers' in raw)) c.missing([...path, 'tiers'], 'a list of tiers, each with a "tier_value" and a "ratelimit"');
    else if (valid.has('tiers')) {
      const list = raw.tiers as unknown[];
      if (list.length === 0) c.invalid([...path, 'tiers'], 'at least one tier', list);
      const seen = new Set<string>();
      let fallbackAt: JsonPath | undefined;
      list.forEach((item, i) => {
        const at: JsonPath = [...path, 'tiers', i];
        const tier = parseTier(item, at, i, c, ctx);
        if (tier === undefined) return;
        if (fallbackAt !== undefined) {
          c.warning(at, 'no tier after a "*" tier (it matches every value)', 'a tier that is never used (as in KrakenD)');
          return;
        }
        if (tier.as === '*') fallbackAt = at;
        else if (seen.has(tier.match)) {
          c.warning([...at, 'tier_value'], 'a tier value not used by an earlier tier', 'a repeated tier value: the first tier with it applies');
          return;
        } else seen.add(tier.match);
        tiers.push(tier);
      });
    }
    if (c.errors.length > before) return undefined;
    return { tierKey, tiers };
  },
  compile(o, ctx) {
    const ep = ctx.endpoint;
    // The endpoint is part of the identity: two endpoints with the same tiers have their own buckets.
    const identity = ep ? `${ep.method} ${ep.endpoint}` : '';
    const buckets = ctx.state.get(stateKey(NAME, identity, o), () =>
      o.tiers.map((t) => ({
        endpoint: t.limit.maxRate > 0 ? new TokenBucket(bucketRule(t.limit.maxRate, t.limit.everyMs, t.limit.capacity)) : undefined,
        clients: t.limit.clientMaxRate > 0 ? new KeyedBuckets(bucketRule(t.limit.clientMaxRate, t.limit.everyMs, t.limit.clientCapacity)) : undefined,
      })),
    );
    const pass: Guard = () => undefined;
    const guards = o.tiers.map((t, i) => {
      const b = buckets[i]!;
      if (b.endpoint === undefined && b.clients === undefined) return pass; // a tier with no positive rate: unlimited
      return routerGuard(t.limit, b.endpoint, b.clients, ctx.clientIp, { namespace: NAME, label: t.label });
    });
    const byValue = new Map<string, Guard>();
    let fallback: Guard | undefined;
    o.tiers.forEach((t, i) => {
      if (t.as === '*') fallback = guards[i];
      else byValue.set(t.match, guards[i]!);
    });
    // The tier value: the header's first value, bounded like a client key.
    const tierOf = keyExtractor('header', o.tierKey, ctx.clientIp);
    const header = JSON.stringify(o.tierKey);
    return {
      guard(req) {
        const value = tierOf(req);
        const g = byValue.get(value) ?? fallback;
        if (g !== undefined) return g(req);
        if (value === '') throw new PolicyError(429, RATELIMIT_TIERED_CODES.missing, NAME, `no tier: header ${header} missing or empty`);
        throw new PolicyError(429, RATELIMIT_TIERED_CODES.unknown, NAME, `unknown tier ${JSON.stringify(value)} in header ${header}`);
      },
    };
  },
};

function parseTier(
  item: unknown,
  at: JsonPath,
  index: number,
  c: IssueCollector,
  ctx: ParseContext,
): TierOptions | undefined {
  if (!expectObject(c, item, at, 'a tier object with "tier_value" and "ratelimit"')) return undefined;
  const before = c.errors.length;
  const valid = checkFields(c, item, at, TIER_RULES, 'a tier');
  let as: 'literal' | '*' = 'literal';
  if ('tier_value_as' in item) {
    const v = item.tier_value_as;
    if (v === 'policy') c.error([...at, 'tier_value_as'], '"literal" or "*" ("policy", a security-policy expression, is not supported by this version)', '"policy"');
    else if (v === 'literal' || v === '*') as = v;
    else c.invalid([...at, 'tier_value_as'], `one of ${quoteList(['literal', 'policy', '*'])}`, v);
  }
  if ('ratelimit_redis' in item) c.error([...at, 'ratelimit_redis'], 'a "ratelimit" (the Redis-backed tier limit is not supported by this version)', 'a "ratelimit_redis"');
  const value = valid.has('tier_value') ? (item.tier_value as string) : '';
  if (as === 'literal' && !('tier_value' in item)) {
    c.warning([...at, 'tier_value'], 'the tier name this tier matches, such as "gold"', 'nothing: the tier matches requests without the tier header (KrakenD\'s default is "")');
  }
  let limit: RouterRateLimitOptions | undefined;
  if (!('ratelimit' in item)) {
    if (!('ratelimit_redis' in item)) c.missing([...at, 'ratelimit'], 'the tier\'s limits: an object with the fields of "qos/ratelimit/router" ("max_rate", "client_max_rate", ...)');
  } else if (valid.has('ratelimit')) {
    limit = qosRatelimitRouter.parse(item.ratelimit, [...at, 'ratelimit'], c, ctx);
  }
  if (c.errors.length > before || limit === undefined) return undefined;
  if (as === '*') return { as, match: '', label: '*', limit };
  return {
    as,
    // Node reads header values as Latin-1: compare with the UTF-8 bytes of the configured value, bounded the same way.
    match: boundedKey(Buffer.from(value, 'utf8').toString('latin1')),
    label: SAFE_LABEL.test(value) ? value : `tier-${index}`,
    limit,
  };
}
