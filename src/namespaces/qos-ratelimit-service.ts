// `qos/ratelimit/service` (service): KrakenD Enterprise's service rate limit,
// "analogous to the endpoint rate limit": the fields, defaults, checks and
// answers of `qos/ratelimit/router` (parsed by that module), with one set of
// buckets for every request the gateway receives, whatever the endpoint.
// Local to each gateway process; see qos/ratelimit/service/redis for the
// cluster-wide variant. The `param` strategy has no endpoint parameter to
// read at this level and is refused by the shared parse.

import type { Namespace } from './namespace.ts';
import { qosRatelimitRouter, routerGuard, type RouterRateLimitOptions } from './qos-ratelimit-router.ts';
import { stateKey } from './state.ts';
import { bucketRule, KeyedBuckets, TokenBucket } from './token-bucket.ts';

const NAME = 'qos/ratelimit/service';

export const qosRatelimitService: Namespace<RouterRateLimitOptions> = {
  name: NAME,
  scopes: ['service'],
  order: 502,
  policy: true,
  parse: (raw, path, c, ctx) => qosRatelimitRouter.parse(raw, path, c, ctx),
  compile(o, ctx) {
    if (o.maxRate <= 0 && o.clientMaxRate <= 0) return undefined;
    const state = ctx.state.get(stateKey(NAME, o), () => ({
      endpoint: o.maxRate > 0 ? new TokenBucket(bucketRule(o.maxRate, o.everyMs, o.capacity)) : undefined,
      clients: o.clientMaxRate > 0 ? new KeyedBuckets(bucketRule(o.clientMaxRate, o.everyMs, o.clientCapacity)) : undefined,
    }));
    return { guard: routerGuard(o, state.endpoint, state.clients, ctx.clientIp, { namespace: NAME, label: 'service' }) };
  },
};
