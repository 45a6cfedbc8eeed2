// `qos/ratelimit/router/redis` (endpoint): KrakenD Enterprise's stateful
// endpoint rate limit. Same fields and answers as `qos/ratelimit/router`
// (an endpoint bucket `max_rate`/`capacity` answered 503, a bucket per client
// `client_max_rate`/`client_capacity` keyed by `strategy` ip/header/param and
// `key`, answered 429; `every` scales the period), but the buckets live in
// Redis (redis-token-bucket.ts), so the limit is exact across every gateway
// instance sharing the pool named by `connection_name` (or the deprecated
// `connection_pool`) in the service's `redis` namespace.
//
// Failure mode: `on_failure_allow` (KrakenD's field, default false). A
// decision Redis does not answer within `decision_timeout` (Portico's field,
// default 100ms), or a Redis that is down, lets the request through when true
// and refuses it with 503 and `Retry-After: 1` when false: never a hung
// request.
//
// The rate-limit fields are parsed by the local `qos/ratelimit/router`
// module itself (same checks, defaults and messages), and the client key
// comes from its key extraction (token-bucket.ts): only the Redis fields are
// checked here.

import { checkFields, type ObjectRules } from '../config/fields.ts';
import { parseDuration } from '../config/duration.ts';
import { isPlainObject } from '../config/json-path.ts';
import { PolicyError } from '../proxy/errors.ts';
import { log } from '../telemetry/log.ts';
import type { Namespace } from './namespace.ts';
import { qosRatelimitRouter, RATELIMIT_ROUTER_CODES, type RouterRateLimitOptions } from './qos-ratelimit-router.ts';
import { findPool, redis, redisClient, type RedisOptions } from './redis.ts';
import { RedisDecisionError, takeTokens, type RedisBucket } from './redis-token-bucket.ts';
import { keyExtractor, limitedHeaders, policyHeader } from './token-bucket.ts';

export interface RouterRedisOptions extends RouterRateLimitOptions {
  /** The pool name in the service's `redis` namespace. */
  pool: string;
  /** The field that named it (connection_name, or the deprecated connection_pool), for error messages. */
  poolKey: string;
  /** on_failure_allow: let requests through when Redis fails (default false: 503). */
  onFailureAllow: boolean;
  /** decision_timeout (Portico): the bound of one decision. */
  decisionTimeoutMs: number;
}

/** Stable codes of the answers: the local limiter's, plus a failing store. */
export const REDIS_RATELIMIT_CODES = {
  ...RATELIMIT_ROUTER_CODES,
  /** Redis failed or did not answer in time, and on_failure_allow is false (503). */
  unavailable: 'RATE_LIMIT_STORE_UNAVAILABLE',
} as const;

export const DEFAULT_DECISION_TIMEOUT_MS = 100;

/** The fields this namespace adds to those of `qos/ratelimit/router`. */
const REDIS_RULES: ObjectRules = {
  connection_name: 'string',
  connection_pool: 'string',
  on_failure_allow: 'boolean',
  decision_timeout: 'duration',
};

/** The Redis rate limit of one scope: `qos/ratelimit/router/redis` (endpoint) or `qos/ratelimit/service/redis` (service). */
function redisRateLimit(name: string, scope: 'endpoint' | 'service', order: number): Namespace<RouterRedisOptions> {
  return {
    name,
    scopes: [scope],
    order,
    policy: true,
    parse(raw, path, c, ctx) {
      if (!isPlainObject(raw)) {
        c.invalid(path, 'an object with "connection_name" and "max_rate" or "client_max_rate"', raw);
        return undefined;
      }
      const before = c.errors.length;
      const own: Record<string, unknown> = {};
      const rest: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(raw)) (k in REDIS_RULES ? own : rest)[k] = v;
      const valid = checkFields(c, own, path, REDIS_RULES, `the "${name}" namespace`);
      const limits = qosRatelimitRouter.parse(rest, path, c, ctx);
      const poolKey = valid.has('connection_name') ? 'connection_name' : valid.has('connection_pool') ? 'connection_pool' : undefined;
      let pool = '';
      if (poolKey === undefined) {
        if (!('connection_name' in raw) && !('connection_pool' in raw)) c.error([...path, 'connection_name'], 'the name of a pool of the service\'s "redis" namespace (required)', 'missing');
      } else {
        pool = raw[poolKey] as string;
        const pools = ctx.service.get(redis.name) as RedisOptions | undefined;
        // Service namespaces are parsed in stack order, so `redis` (501) is known here at every level.
        if (!findPool(pools, pool)) {
          const names = pools?.pools.map((p) => JSON.stringify(p.name)).join(', ');
          c.invalid([...path, poolKey], names ? `the name of a pool of the service's "redis" namespace (${names})` : 'the name of a pool of the service\'s "redis" namespace (none is configured)', pool);
        }
      }
      const decisionTimeoutMs = valid.has('decision_timeout') ? (parseDuration(raw.decision_timeout as string) as number) : DEFAULT_DECISION_TIMEOUT_MS;
      if (valid.has('decision_timeout') && (decisionTimeoutMs < 1 || decisionTimeoutMs > 10_000)) {
        c.invalid([...path, 'decision_timeout'], 'a duration from "1ms" to "10s"', raw.decision_timeout);
      }
      if (c.errors.length > before || limits === undefined) return undefined;
      return { ...limits, pool, poolKey: poolKey as string, onFailureAllow: valid.has('on_failure_allow') && raw.on_failure_allow === true, decisionTimeoutMs };
    },
    compile(o, ctx) {
      if (o.maxRate <= 0 && o.clientMaxRate <= 0) return undefined;
      const pools = ctx.serviceOptions(redis);
      const pool = findPool(pools, o.pool);
      const where = scope === 'service' ? `$.extra_config["${name}"]` : `$.endpoints[?(@.endpoint=="${ctx.endpoint?.endpoint}")].extra_config["${name}"]`;
      if (!pool) throw new Error(`${name}: no pool named ${JSON.stringify(o.pool)} in the service's "redis" namespace (${where}.${o.poolKey})`);
      if (ctx.checkOnly) return {};
      const redisConn = redisClient(ctx.state, pool);
      const ep = ctx.endpoint;
      // The endpoint's identity, the same in every gateway serving this configuration.
      const prefix = `portico:rl:${ep ? `${ep.method} ${ep.endpoint}` : 'service'}`; // service scope: one set of buckets for every endpoint
      const endpointBucket: RedisBucket | undefined =
        o.maxRate > 0 ? { key: `${prefix}:endpoint`, ratePerMs: o.maxRate / o.everyMs, capacity: o.capacity } : undefined;
      const clientRate = o.clientMaxRate / o.everyMs;
      const extract = o.clientMaxRate > 0 ? keyExtractor(o.strategy, o.key, ctx.clientIp) : undefined;
      const endpointPolicy = policyHeader('endpoint', o.maxRate, o.everyMs);
      const clientPolicy = policyHeader('client', o.clientMaxRate, o.everyMs);
      const timeoutMs = o.decisionTimeoutMs;
      const retries = Math.max(0, pool.maxRetries);
      const only = endpointBucket ? [endpointBucket] : [];
      let lastFailureLog = 0;
      const onFailure = (err: unknown): undefined => {
        const now = Date.now();
        if (now - lastFailureLog > 5000) {
          lastFailureLog = now;
          log('warn', 'redis rate limit decision failed', { pool: o.pool, failure_mode: o.onFailureAllow ? 'allow' : 'block', error: err instanceof Error ? err.message : String(err) });
        }
        if (o.onFailureAllow) return undefined;
        throw new PolicyError(503, REDIS_RATELIMIT_CODES.unavailable, name, `rate limit store unavailable: ${String(err)}`, ['retry-after', '1']);
      };
      return {
        guard: (req) => {
          let buckets = only;
          if (extract) {
            const id = extract(req);
            // No key, no bucket: 429 as KrakenD, without Retry-After (waiting would not help).
            if (id === '') throw new PolicyError(429, REDIS_RATELIMIT_CODES.noKey, name, `no client key (${o.strategy} ${JSON.stringify(o.key)})`);
            // The client bucket first, then the endpoint's (as the local limiter nests them).
            const client: RedisBucket = { key: `${prefix}:client:${id}`, ratePerMs: clientRate, capacity: o.clientCapacity };
            buckets = endpointBucket ? [client, endpointBucket] : [client];
          }
          return takeTokens(redisConn, buckets, timeoutMs, retries).then(
            (d) => {
              if (d.refused < 0) return undefined;
              if (buckets[d.refused] === endpointBucket) {
                throw new PolicyError(503, REDIS_RATELIMIT_CODES.endpoint, name, 'endpoint rate limit exceeded', limitedHeaders('endpoint', endpointPolicy, d.waitMs));
              }
              throw new PolicyError(429, REDIS_RATELIMIT_CODES.client, name, 'client rate limit exceeded', limitedHeaders('client', clientPolicy, d.waitMs));
            },
            (err: unknown) => {
              if (err instanceof RedisDecisionError) return onFailure(err);
              throw err;
            },
          );
        },
      };
    },
  };
}

export const qosRatelimitRouterRedis = redisRateLimit('qos/ratelimit/router/redis', 'endpoint', 504);
/** KrakenD's `qos/ratelimit/service/redis`: the same limits over every request the service receives. */
export const qosRatelimitServiceRedis = redisRateLimit('qos/ratelimit/service/redis', 'service', 503);
