// `qos/ratelimit/proxy` (backend): KrakenD's local limit of the calls the
// gateway makes to one backend: `max_rate` tokens every `every` (default 1s),
// `capacity` at most (default: the rate per second, or 1 below one per
// second). A call without a token is not made: it fails like any backend
// error (code RATE_LIMIT_BACKEND), so an endpoint whose other backends answer
// answers partially (X-Portico-Completed: false), and one whose only backend
// is limited answers 500, as KrakenD does.
//
// The bucket lives in PolicyState, keyed by the endpoint, the backend's place
// in it and the options: a reload that leaves them unchanged keeps it.

import { DURATION_EXPECTED, parseDuration } from '../config/duration.ts';
import { checkFields, expectObject, type ObjectRules } from '../config/fields.ts';
import { GatewayError } from '../proxy/errors.ts';
import type { Proxy } from '../proxy/types.ts';
import type { Namespace } from './namespace.ts';
import { stateKey } from './state.ts';
import { bucketRule, defaultCapacity, now, TokenBucket } from './token-bucket.ts';

const NAME = 'qos/ratelimit/proxy';

/** Stable code of a backend call refused by the limit. */
export const RATELIMIT_PROXY_CODE = 'RATE_LIMIT_BACKEND';

export interface ProxyRateLimitOptions {
  /** Tokens per `everyMs` (> 0). */
  maxRate: number;
  /** Bucket size (default applied). */
  capacity: number;
  /** The period of the rate, in milliseconds. */
  everyMs: number;
}

const RULES: ObjectRules = { max_rate: 'custom', capacity: 'custom', every: 'custom' };

export const qosRatelimitProxy: Namespace<ProxyRateLimitOptions | null> = {
  name: NAME,
  scopes: ['backend'],
  order: 510,
  policy: true,
  parse(raw, path, c) {
    if (!expectObject(c, raw, path, 'an object with "max_rate"')) return undefined;
    const before = c.errors.length;
    checkFields(c, raw, path, RULES, `the "${NAME}" namespace`);
    let maxRate = 0;
    if (!('max_rate' in raw)) c.missing([...path, 'max_rate'], 'the number of calls allowed every "every" (default 1s), such as 10 or 0.5');
    else {
      const v = raw.max_rate;
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) c.invalid([...path, 'max_rate'], 'a number of calls >= 0, such as 10 or 0.5 (0 disables the limit)', v);
      else maxRate = v;
    }
    let capacity = 0;
    if ('capacity' in raw) {
      const v = raw.capacity;
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) c.invalid([...path, 'capacity'], 'a whole number of tokens >= 0 (0 uses the default)', v);
      else capacity = v;
    }
    let everyMs = 1000;
    if ('every' in raw) {
      const v = raw.every;
      const d = typeof v === 'string' ? parseDuration(v) : undefined;
      if (d === undefined || d <= 0) c.invalid([...path, 'every'], `a positive ${DURATION_EXPECTED}`, v);
      else everyMs = d;
    }
    if (c.errors.length > before) return undefined;
    if (maxRate === 0) {
      c.warning([...path, 'max_rate'], 'a positive rate', '0: the namespace limits nothing (as in KrakenD)');
      return null;
    }
    return { maxRate, capacity: capacity || defaultCapacity(maxRate, everyMs), everyMs };
  },
  compile(o, ctx) {
    if (o === null) return undefined;
    const ep = ctx.endpoint;
    const index = ep && ctx.backend ? ep.backends.indexOf(ctx.backend) : -1;
    const identity = ep ? `${ep.method} ${ep.endpoint} #${index}` : '';
    const bucket = ctx.state.get(stateKey(NAME, identity, o), () => new TokenBucket(bucketRule(o.maxRate, o.everyMs, o.capacity)));
    return { middleware: proxyLimiter(bucket) };
  },
};

/** The middleware over a given bucket (exported for tests). */
export function proxyLimiter(bucket: TokenBucket) {
  return (next: Proxy): Proxy =>
    (req) => {
      if (!bucket.tryTake(now())) return Promise.reject(new GatewayError(500, 'rate limit exceeded', { code: RATELIMIT_PROXY_CODE }));
      return next(req);
    };
}
