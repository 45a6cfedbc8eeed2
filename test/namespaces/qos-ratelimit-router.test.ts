// qos/ratelimit/router: endpoint-wide (503) and per-client (429) token
// buckets, through a real gateway and a real backend. Time is a test clock
// (setClock), so refills are exact and nothing sleeps. Config checks, every
// field, the headers of limited answers, reloads that keep or reset buckets,
// and the hostile cases: a million distinct client keys (bounded store), a
// 10 KB key header, a missing key header, a spoofed X-Forwarded-For.

import assert from 'node:assert/strict';
import v8 from 'node:v8';
import vm from 'node:vm';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { RATELIMIT_ROUTER_CODES, routerGuard, type RouterRateLimitOptions } from '../../src/namespaces/qos-ratelimit-router.ts';
import {
  allows,
  boundedKey,
  bucketRule,
  KeyedBuckets,
  MAX_CLIENT_BUCKETS,
  MAX_KEY_LENGTH,
  quotaOf,
  remaining,
  setClock,
  take,
  TokenBucket,
  waitMs,
} from '../../src/namespaces/token-bucket.ts';
import type { PolicyError } from '../../src/proxy/errors.ts';
import type { ProxyRequest } from '../../src/proxy/types.ts';
import { errorAt, issueAt, load, withEndpoint } from '../config/support.ts';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { loadTestConfig, startGateway, type TestGateway } from '../helpers/gateway.ts';
import { get } from '../helpers/http.ts';

const NS = 'qos/ratelimit/router';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
const AT = `$.endpoints[0].extra_config["${NS}"]`;

let t = 1_000_000;
const useTestClock = () => {
  t = 1_000_000;
  setClock(() => t);
};

const nsConfig = (options: unknown, endpoint: Record<string, unknown> = {}) => withEndpoint({ extra_config: { [NS]: options }, ...endpoint });
const optionsOf = (options: unknown, endpoint = '/e'): unknown =>
  loadTestConfig({ host: ['http://127.0.0.1:9'], endpoints: [{ endpoint, backend: [{ url_pattern: '/b' }], extra_config: { [NS]: options } }] }).endpoints[0]!.namespaces[0]!.options;

describe('qos/ratelimit/router: config', () => {
  it('reads every field into plain, cloneable options, KrakenD defaults applied', () => {
    const o = optionsOf({ max_rate: 50, capacity: 60, client_max_rate: 5, client_capacity: 7, every: '10m', strategy: 'header', key: 'X-Api-Key' });
    assert.deepEqual(structuredClone(o), o);
    assert.deepEqual(o, { maxRate: 50, capacity: 60, clientMaxRate: 5, clientCapacity: 7, strategy: 'header', key: 'x-api-key', everyMs: 600_000 });
    // capacity defaults to the rate per second (truncated), or 1 below one per second.
    assert.deepEqual(optionsOf({ max_rate: 10 }), { maxRate: 10, capacity: 10, clientMaxRate: 0, clientCapacity: 0, strategy: 'ip', key: '', everyMs: 1000 });
    assert.equal((optionsOf({ max_rate: 2.7 }) as RouterRateLimitOptions).capacity, 2);
    assert.equal((optionsOf({ max_rate: 0.5 }) as RouterRateLimitOptions).capacity, 1);
    assert.equal((optionsOf({ max_rate: 50, every: '10m' }) as RouterRateLimitOptions).capacity, 1);
    assert.equal((optionsOf({ max_rate: 120, every: '1m' }) as RouterRateLimitOptions).capacity, 2);
    assert.equal((optionsOf({ client_max_rate: 4, strategy: 'ip' }) as RouterRateLimitOptions).clientCapacity, 4);
    // strategy is case-insensitive (KrakenD lower-cases it); param keys must be endpoint parameters.
    assert.equal((optionsOf({ client_max_rate: 1, strategy: 'PARAM', key: 'id' }, '/u/{id}') as RouterRateLimitOptions).strategy, 'param');
    // ip with a key: the header holding the client IP, lower-cased.
    assert.equal((optionsOf({ client_max_rate: 1, strategy: 'ip', key: 'X-Real-IP' }) as RouterRateLimitOptions).key, 'x-real-ip');
  });

  it('accepts KrakenD tuning fields (num_shards, cleanup_*) and warns about unknown keys', () => {
    const r = load(nsConfig({ max_rate: 1, num_shards: 64, cleanup_period: '30s', cleanup_threads: 2, max_rte: 3 }));
    assert.deepEqual(r.errors, []);
    assert.match(issueAt(r.warnings, `${AT}.max_rte`).expected, /did you mean "max_rate"/);
  });

  it('reports precise errors', () => {
    assert.match(errorAt(nsConfig('fast'), AT).expected, /object/);
    assert.match(errorAt(nsConfig({}), `${AT}.max_rate`).expected, /client_max_rate/);
    assert.match(errorAt(nsConfig({ max_rate: -1 }), `${AT}.max_rate`).expected, />= 0/);
    assert.match(errorAt(nsConfig({ max_rate: '10' }), `${AT}.max_rate`).found, /string/);
    assert.match(errorAt(nsConfig({ client_max_rate: -2, strategy: 'ip' }), `${AT}.client_max_rate`).expected, />= 0/);
    assert.match(errorAt(nsConfig({ max_rate: 1, capacity: 1.5 }), `${AT}.capacity`).expected, /whole number/);
    assert.match(errorAt(nsConfig({ client_max_rate: 1, client_capacity: -1 }), `${AT}.client_capacity`).expected, /whole number/);
    assert.match(errorAt(nsConfig({ max_rate: 1, every: '1 minute' }), `${AT}.every`).expected, /Go duration/);
    assert.match(errorAt(nsConfig({ max_rate: 1, every: '0s' }), `${AT}.every`).expected, /positive/);
    assert.match(errorAt(nsConfig({ client_max_rate: 1, strategy: 'cookie' }), `${AT}.strategy`).expected, /"ip", "header" or "param"/);
    assert.match(errorAt(nsConfig({ client_max_rate: 1, strategy: 'header' }), `${AT}.key`).expected, /header/);
    assert.match(errorAt(nsConfig({ client_max_rate: 1, strategy: 'header', key: 'bad header' }), `${AT}.key`).expected, /header name/);
    assert.match(errorAt(nsConfig({ client_max_rate: 1, strategy: 'param', key: 'id' }, { endpoint: '/u/{uid}' }), `${AT}.key`).expected, /"uid"/);
    assert.match(errorAt(nsConfig({ client_max_rate: 1, strategy: 'param' }), `${AT}.key`).expected, /parameter/);
    assert.match(errorAt(nsConfig({ max_rate: 1, num_shards: 0 }), `${AT}.num_shards`).expected, /positive/);
  });

  it('warns where KrakenD would quietly change or drop a setting', () => {
    let r = load(nsConfig({ max_rate: 1, every: '100ms' }));
    assert.deepEqual(r.errors, []);
    assert.match(issueAt(r.warnings, `${AT}.every`).expected, /at least 1s/);
    assert.equal(r.config!.endpoints[0]!.namespaces[0]!.options && (r.config!.endpoints[0]!.namespaces[0]!.options as RouterRateLimitOptions).everyMs, 1000);
    r = load(nsConfig({ client_max_rate: 1 }));
    assert.match(issueAt(r.warnings, `${AT}.strategy`).expected, /"ip" when it is absent/);
    r = load(nsConfig({ max_rate: 0 }));
    assert.match(issueAt(r.warnings, AT).found, /limits nothing/);
  });
});

describe('qos/ratelimit/router: bucket maths', () => {
  it('is exact with fractional rates (0.5 every 1s is one token every 2 s)', () => {
    const b = new TokenBucket(bucketRule(0.5, 1000, 1));
    assert.equal(b.tryTake(0), true);
    assert.equal(b.tryTake(1999.999), false);
    assert.equal(b.waitMs(1000), 1000);
    assert.equal(b.tryTake(2000), true);
    assert.equal(b.tryTake(2000), false);
  });

  it('refills exactly at the boundaries of a rate that is no binary fraction (3 every 1s)', () => {
    const rule = bucketRule(3, 1000, 3);
    let fullAt = 0;
    for (let i = 0; i < 3; i++) {
      assert.ok(allows(rule, fullAt, 0));
      fullAt = take(rule, fullAt, 0);
    }
    assert.equal(allows(rule, fullAt, 0), false);
    assert.equal(remaining(rule, fullAt, 1000 / 3 - 0.001), 0);
    assert.equal(remaining(rule, fullAt, 1000 / 3), 1);
    assert.equal(remaining(rule, fullAt, 1000), 3);
    // 1000 s later, over 3000 takes spread evenly: every one allowed, none more.
    let ok = 0;
    for (let i = 1; i <= 3000; i++) {
      const at = 1000 + (i * 1000) / 3;
      if (allows(rule, fullAt, at)) {
        fullAt = take(rule, fullAt, at);
        ok++;
      }
    }
    assert.equal(ok, 3000);
    // Right after the last take the bucket holds what a third of a second refilled less one: 2 of 3.
    assert.equal(remaining(rule, fullAt, 1000 + 1000_000), 2);
    for (let i = 0; i < 2; i++) fullAt = take(rule, fullAt, 1000 + 1000_000);
    assert.equal(allows(rule, fullAt, 1000 + 1000_000), false);
    assert.equal(Math.round(waitMs(rule, fullAt, 1000 + 1000_000) * 1000) / 1000, 333.333);
  });

  it('writes integer quotas for the RateLimit-Policy header', () => {
    assert.deepEqual(quotaOf(10, 1000), { q: 10, w: 1 });
    assert.deepEqual(quotaOf(0.5, 1000), { q: 1, w: 2 });
    assert.deepEqual(quotaOf(50, 600_000), { q: 50, w: 600 });
    assert.deepEqual(quotaOf(2.5, 1000), { q: 5, w: 2 });
  });
});

describe('qos/ratelimit/router: over HTTP', () => {
  let backend: TestBackend;
  let gw: TestGateway | undefined;
  before(async () => {
    backend = await startBackend((_req, res) => json(res, { ok: true }));
  });
  after(async () => {
    await backend.close();
  });
  beforeEach(useTestClock);
  afterEach(async () => {
    setClock();
    await gw?.close();
    gw = undefined;
  });

  const config = (options: unknown, extra: Record<string, unknown> = {}, endpoint = '/e') => ({
    host: [backend.url],
    endpoints: [{ endpoint, backend: [{ url_pattern: '/b' }], extra_config: { [NS]: options } }],
    ...extra,
  });

  it('max_rate + capacity: a burst of capacity, then 503 with Retry-After and RateLimit headers; refills at max_rate', async () => {
    const calls = backend.requests.length;
    gw = await startGateway(config({ max_rate: 2, capacity: 3 }));
    for (let i = 0; i < 3; i++) assert.equal((await get(gw.url, '/e')).status, 200);
    const r = await get(gw.url, '/e');
    assert.equal(r.status, 503);
    assert.equal(r.body, '');
    assert.equal(r.headers['retry-after'], '1');
    assert.equal(r.headers['ratelimit-policy'], '"endpoint";q=2;w=1');
    assert.equal(r.headers['ratelimit'], '"endpoint";r=0;t=1');
    assert.equal(backend.requests.length - calls, 3, 'a limited request never reaches the backend');
    t += 499;
    assert.equal((await get(gw.url, '/e')).status, 503);
    t += 1; // 500 ms: one token at 2 per second
    const ok = await get(gw.url, '/e');
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['ratelimit'], undefined, 'successful answers carry no rate-limit headers');
    assert.equal((await get(gw.url, '/e')).status, 503);
  });

  it('capacity defaults to max_rate per second; every scales the period', async () => {
    gw = await startGateway(config({ max_rate: 2, every: '1m' }));
    // 2 per minute: capacity 1 (below one per second), a token every 30 s.
    assert.equal((await get(gw.url, '/e')).status, 200);
    const r = await get(gw.url, '/e');
    assert.equal(r.status, 503);
    assert.equal(r.headers['retry-after'], '30');
    assert.equal(r.headers['ratelimit-policy'], '"endpoint";q=2;w=60');
    t += 29_000;
    assert.equal((await get(gw.url, '/e')).headers['retry-after'], '1');
    t += 1000;
    assert.equal((await get(gw.url, '/e')).status, 200);
  });

  it('client_max_rate + client_capacity by ip: 429 per client, other clients unaffected', async () => {
    gw = await startGateway(config({ client_max_rate: 1, client_capacity: 2, strategy: 'ip' }, { extra_config: { router: { forwarded_by_client_ip: true, trusted_proxies: ['127.0.0.1'], remote_ip_headers: ['X-Forwarded-For'] } } }));
    const a = { 'X-Forwarded-For': '203.0.113.1' };
    const b = { 'X-Forwarded-For': '203.0.113.2' };
    assert.equal((await get(gw.url, '/e', a)).status, 200);
    assert.equal((await get(gw.url, '/e', a)).status, 200);
    const r = await get(gw.url, '/e', a);
    assert.equal(r.status, 429);
    assert.equal(r.headers['retry-after'], '1');
    assert.equal(r.headers['ratelimit-policy'], '"client";q=1;w=1');
    assert.equal(r.headers['ratelimit'], '"client";r=0;t=1');
    assert.equal((await get(gw.url, '/e', b)).status, 200, 'another client has its own bucket');
    t += 1000;
    assert.equal((await get(gw.url, '/e', a)).status, 200);
    assert.equal((await get(gw.url, '/e', a)).status, 429);
  });

  it('a client spoofing X-Forwarded-For is limited by its own address when forwarded_by_client_ip is off', async () => {
    gw = await startGateway(config({ client_max_rate: 1, client_capacity: 1, strategy: 'ip' }));
    assert.equal((await get(gw.url, '/e', { 'X-Forwarded-For': '198.51.100.1' })).status, 200);
    assert.equal((await get(gw.url, '/e', { 'X-Forwarded-For': '198.51.100.2' })).status, 429);
    assert.equal((await get(gw.url, '/e', { 'X-Real-IP': '198.51.100.3' })).status, 429);
  });

  it('strategy ip with a key reads the client IP from that header (first element, port dropped), else the peer', async () => {
    gw = await startGateway(config({ client_max_rate: 1, client_capacity: 1, strategy: 'ip', key: 'X-Real-IP' }));
    assert.equal((await get(gw.url, '/e', { 'X-Real-IP': '192.0.2.7:5555, 10.0.0.1' })).status, 200);
    assert.equal((await get(gw.url, '/e', { 'X-Real-IP': '192.0.2.7' })).status, 429);
    assert.equal((await get(gw.url, '/e', { 'X-Real-IP': '2001:db8::1' })).status, 200);
    // Not an IP: the peer address is the key.
    assert.equal((await get(gw.url, '/e', { 'X-Real-IP': 'not-an-ip' })).status, 200);
    assert.equal((await get(gw.url, '/e')).status, 429);
  });

  it('strategy header: one bucket per header value; a missing or empty header is refused with 429 (as KrakenD)', async () => {
    const calls = backend.requests.length;
    gw = await startGateway(config({ client_max_rate: 1, client_capacity: 1, strategy: 'header', key: 'X-Api-Key' }));
    assert.equal((await get(gw.url, '/e', { 'X-Api-Key': 'alice' })).status, 200);
    assert.equal((await get(gw.url, '/e', { 'x-api-key': 'alice' })).status, 429);
    assert.equal((await get(gw.url, '/e', { 'X-Api-Key': 'bob' })).status, 200);
    const missing = await get(gw.url, '/e');
    assert.equal(missing.status, 429);
    assert.equal(missing.headers['retry-after'], undefined, 'waiting would not help a request without a key');
    assert.equal((await get(gw.url, '/e', { 'X-Api-Key': '' })).status, 429);
    assert.equal(backend.requests.length - calls, 2);
  });

  it('a 10 KB key header is counted by its digest: limited like any key, distinct from others, bounded in memory', async () => {
    gw = await startGateway(config({ client_max_rate: 1, client_capacity: 1, strategy: 'header', key: 'X-Api-Key' }));
    const big = 'k'.repeat(10 * 1024);
    assert.equal((await get(gw.url, '/e', { 'X-Api-Key': big })).status, 200);
    assert.equal((await get(gw.url, '/e', { 'X-Api-Key': big })).status, 429);
    assert.equal((await get(gw.url, '/e', { 'X-Api-Key': `${big}x` })).status, 200, 'a longer key with the same prefix is another client');
    assert.equal(boundedKey(big).length, 44);
    assert.equal(boundedKey('k'.repeat(MAX_KEY_LENGTH)), 'k'.repeat(MAX_KEY_LENGTH));
  });

  it('strategy param: one bucket per endpoint parameter value', async () => {
    gw = await startGateway(config({ client_max_rate: 1, client_capacity: 1, strategy: 'param', key: 'tenant' }, {}, '/t/{tenant}'));
    assert.equal((await get(gw.url, '/t/acme')).status, 200);
    assert.equal((await get(gw.url, '/t/acme')).status, 429);
    assert.equal((await get(gw.url, '/t/globex')).status, 200);
  });

  it('both limits: the client bucket is checked first (429), then the endpoint bucket (503)', async () => {
    gw = await startGateway(config({ max_rate: 2, capacity: 2, client_max_rate: 1, client_capacity: 1, strategy: 'header', key: 'X-Key' }));
    assert.equal((await get(gw.url, '/e', { 'X-Key': 'a' })).status, 200);
    assert.equal((await get(gw.url, '/e', { 'X-Key': 'a' })).status, 429, 'a client over its limit spends no endpoint token');
    assert.equal((await get(gw.url, '/e', { 'X-Key': 'b' })).status, 200);
    const r = await get(gw.url, '/e', { 'X-Key': 'c' });
    assert.equal(r.status, 503);
    assert.equal(r.headers['ratelimit-policy'], '"endpoint";q=2;w=1');
  });

  it('endpoints have their own buckets, even with the same limits', async () => {
    gw = await startGateway({
      host: [backend.url],
      endpoints: [
        { endpoint: '/a', backend: [{ url_pattern: '/b' }], extra_config: { [NS]: { max_rate: 1 } } },
        { endpoint: '/b', backend: [{ url_pattern: '/b' }], extra_config: { [NS]: { max_rate: 1 } } },
      ],
    });
    assert.equal((await get(gw.url, '/a')).status, 200);
    assert.equal((await get(gw.url, '/a')).status, 503);
    assert.equal((await get(gw.url, '/b')).status, 200);
  });

  it('a reload that leaves the limits unchanged keeps the buckets; a changed limit starts full', async () => {
    const cfg = config({ max_rate: 1, capacity: 1, client_max_rate: 1, client_capacity: 1, strategy: 'header', key: 'X-Key' });
    gw = await startGateway(cfg);
    assert.equal((await get(gw.url, '/e', { 'X-Key': 'a' })).status, 200);
    await gw.reload({ ...cfg, timeout: '5s' });
    assert.equal((await get(gw.url, '/e', { 'X-Key': 'a' })).status, 429, 'the client bucket survived');
    assert.equal((await get(gw.url, '/e', { 'X-Key': 'b' })).status, 503, 'the endpoint bucket survived');
    await gw.reload(config({ max_rate: 2, capacity: 1, client_max_rate: 1, client_capacity: 1, strategy: 'header', key: 'X-Key' }));
    assert.equal((await get(gw.url, '/e', { 'X-Key': 'a' })).status, 200, 'changed options: fresh buckets');
    assert.equal(gw.state.keys().filter((k) => k.startsWith(NS)).length >= 1, true);
  });
});

describe('qos/ratelimit/router: a flood of client keys', () => {
  beforeEach(useTestClock);
  afterEach(() => setClock());

  const req = (key: string): ProxyRequest => ({ headers: { 'x-key': key }, params: {} }) as unknown as ProxyRequest;

  it('1 million distinct keys through the guard keep the store at its cap, and a known client stays limited below it', () => {
    const o: RouterRateLimitOptions = { maxRate: 0, capacity: 0, clientMaxRate: 1, clientCapacity: 1, strategy: 'header', key: 'x-key', everyMs: 60_000 };
    const store = new KeyedBuckets(bucketRule(1, 60_000, 1));
    const guard = routerGuard(o, undefined, store, () => '127.0.0.1');
    assert.equal(guard(req('victim')), undefined);
    assert.throws(() => guard(req('victim')), (e: PolicyError) => e.status === 429 && e.code === RATELIMIT_ROUTER_CODES.client);
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    for (let i = 0; i < 1_000_000; i++) {
      // Flat strings, as node's HTTP parser gives header values.
      guard(req(Buffer.from(`${Math.random().toString(36).slice(2, 12)}-${i}`).toString('latin1')));
      if (i % 1000 === 0) t += 1; // time passes, but no bucket refills (one token a minute)
    }
    assert.equal(store.size, MAX_CLIENT_BUCKETS);
    gc();
    const perBucket = (process.memoryUsage().heapUsed - heapBefore) / store.size;
    // Measured about 80 bytes per bucket (keys of ~17 characters).
    assert.ok(perBucket < 200, `${perBucket.toFixed(0)} bytes per bucket`);
  });

  it('full buckets are dropped first, so active clients survive a turnover of idle ones', () => {
    const store = new KeyedBuckets(bucketRule(1, 1000, 1), 10);
    assert.equal(store.take('active', t), 0);
    for (let i = 0; i < 9; i++) store.take(`idle${i}`, t);
    t += 1000; // every bucket is full again...
    assert.equal(store.take('active', t), 0); // ...but "active" took one now
    for (let i = 0; i < 9; i++) store.take(`new${i}`, t);
    assert.equal(store.size, 10);
    assert.ok(store.peek('active') !== undefined, 'the non-full bucket was kept');
    assert.ok(store.take('active', t) > 0, 'and still limits');
  });
});
