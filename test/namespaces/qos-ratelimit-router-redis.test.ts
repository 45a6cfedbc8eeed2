// qos/ratelimit/router/redis and the service `redis` namespace: config checks,
// then real HTTP through gateways sharing a real redis-server on loopback:
// the limit is exact across two gateways, per-client buckets, Retry-After,
// and Redis killed, paused (SIGSTOP) and restarted under load with both
// failure modes, never a request hanging past the decision timeout.

import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { errorAt, issueAt, load, service } from '../config/support.ts';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { loadTestConfig, startGateway, type TestGateway } from '../helpers/gateway.ts';
import { get, type TestResponse } from '../helpers/http.ts';
import { freePort } from '../helpers/etcd.ts';
import { redisAvailable, startRedis, type TestRedis } from '../helpers/redis-server.ts';

const NS = 'qos/ratelimit/router/redis';
const AT = `$.endpoints[0].extra_config["${NS}"]`;
const RAT = '$.extra_config.redis';

const redisNs = (pools: unknown[] = [{ name: 'rl', address: '127.0.0.1:6379' }]) => ({ redis: { connection_pools: pools } });
const limited = (rl: unknown, extra: Record<string, unknown> = redisNs(), endpoint = '/e') =>
  service({ extra_config: extra, endpoints: [{ endpoint, backend: [{ url_pattern: '/b' }], extra_config: { [NS]: rl } }] });

describe('qos/ratelimit/router/redis: config', () => {
  it('reads the documented fields into plain, cloneable options', () => {
    const cfg = loadTestConfig({
      host: ['http://127.0.0.1:9'],
      extra_config: {
        redis: {
          connection_pools: [
            { name: 'rl', address: '10.0.0.1:6380', db: 2, user_name: 'u', password: 'p', client_name: 'gw', dial_timeout: '2s', max_retries: -1, min_retry_backoff: '1ms', max_retry_backoff: '50ms' },
          ],
        },
      },
      endpoints: [
        {
          endpoint: '/u/{id}',
          backend: [{ url_pattern: '/b' }],
          extra_config: { [NS]: { connection_name: 'rl', max_rate: 10, capacity: 20, client_max_rate: 0.5, client_capacity: 3, every: '1m', strategy: 'param', key: 'id', on_failure_allow: true, decision_timeout: '40ms' } },
        },
      ],
    });
    assert.deepEqual(structuredClone(cfg.namespaces), cfg.namespaces);
    assert.deepEqual(structuredClone(cfg.endpoints[0]!.namespaces), cfg.endpoints[0]!.namespaces);
    assert.deepEqual(cfg.namespaces.find((u) => u.name === 'redis')!.options, {
      pools: [
        { name: 'rl', host: '10.0.0.1', port: 6380, db: 2, username: 'u', password: 'p', clientName: 'gw', dialTimeoutMs: 2000, maxRetries: -1, minRetryBackoffMs: 1, maxRetryBackoffMs: 50 },
      ],
    });
    assert.deepEqual(cfg.endpoints[0]!.namespaces, [
      {
        name: NS,
        options: { pool: 'rl', poolKey: 'connection_name', maxRate: 10, capacity: 20, clientMaxRate: 0.5, clientCapacity: 3, everyMs: 60_000, strategy: 'param', key: 'id', onFailureAllow: true, decisionTimeoutMs: 40 },
      },
    ]);
  });

  it('defaults: ip strategy, capacity from the rate per second (at least 1), block on failure, 100ms decisions', () => {
    const cfg = loadTestConfig({ ...limited({ connection_pool: 'rl', max_rate: 5, client_max_rate: 30, every: '1m' }), host: ['http://127.0.0.1:9'] });
    assert.deepEqual(cfg.endpoints[0]!.namespaces[0]!.options, {
      pool: 'rl', poolKey: 'connection_pool', maxRate: 5, capacity: 1, clientMaxRate: 30, clientCapacity: 1, everyMs: 60_000, strategy: 'ip', key: '', onFailureAllow: false, decisionTimeoutMs: 100,
    });
    const pool = (cfg.namespaces[0]!.options as { pools: Record<string, unknown>[] }).pools[0]!;
    assert.deepEqual([pool.db, pool.dialTimeoutMs, pool.maxRetries, pool.minRetryBackoffMs, pool.maxRetryBackoffMs], [0, 5000, 3, 8, 512]);
    const perSecond = loadTestConfig({ ...limited({ connection_name: 'rl', max_rate: 7 }), host: ['http://127.0.0.1:9'] });
    assert.equal((perSecond.endpoints[0]!.namespaces[0]!.options as { capacity: number }).capacity, 7);
  });

  it('a pool name that does not exist is an error with its path', () => {
    const issue = errorAt(limited({ connection_name: 'nope', max_rate: 1 }), `${AT}.connection_name`);
    assert.match(issue.expected, /"rl"/);
    assert.match(issue.found, /nope/);
    assert.match(errorAt(limited({ connection_pool: 'nope', max_rate: 1 }), `${AT}.connection_pool`).found, /nope/);
    assert.match(errorAt(limited({ connection_name: 'rl', max_rate: 1 }, {}), `${AT}.connection_name`).expected, /none is configured/);
    assert.match(errorAt(limited({ max_rate: 1 }), `${AT}.connection_name`).found, /missing/);
  });

  it('rate-limit fields are checked', () => {
    assert.match(errorAt(limited({ connection_name: 'rl' }), `${AT}.max_rate`).found, /missing/);
    assert.match(errorAt(limited({ connection_name: 'rl', max_rate: -1 }), `${AT}.max_rate`).expected, />= 0/);
    assert.match(errorAt(limited({ connection_name: 'rl', max_rate: '5' }), `${AT}.max_rate`).expected, /number/);
    assert.match(errorAt(limited({ connection_name: 'rl', max_rate: 1, every: '0s' }), `${AT}.every`).expected, /positive/);
    assert.match(errorAt(limited({ connection_name: 'rl', client_max_rate: 1, strategy: 'cookie' }), `${AT}.strategy`).expected, /"ip", "header" or "param"/);
    assert.match(errorAt(limited({ connection_name: 'rl', client_max_rate: 1, strategy: 'header' }), `${AT}.key`).expected, /header/);
    assert.match(errorAt(limited({ connection_name: 'rl', client_max_rate: 1, strategy: 'param', key: 'id' }), `${AT}.key`).expected, /parameter of the endpoint/);
    assert.match(errorAt(limited({ connection_name: 'rl', max_rate: 1, decision_timeout: '1m' }), `${AT}.decision_timeout`).expected, /10s/);
    assert.match(errorAt(limited({ connection_name: 'rl', max_rate: 1, on_failure_allow: 'yes' }), `${AT}.on_failure_allow`).expected, /true or false/);
    const warned = load(limited({ connection_name: 'rl', max_rate: 1, max_rat: 2 }));
    assert.match(issueAt(warned.warnings, `${AT}.max_rat`).expected, /max_rate/);
  });

  it('redis pools are checked', () => {
    const pools = (p: unknown[]) => limited({ connection_name: 'rl', max_rate: 1 }, redisNs(p));
    assert.match(errorAt(pools([{ name: 'rl' }]), `${RAT}.connection_pools[0].address`).found, /missing/);
    assert.match(errorAt(pools([{ name: 'rl', address: 'redis.example.com' }]), `${RAT}.connection_pools[0].address`).expected, /host:port/);
    assert.match(errorAt(pools([{ name: 'rl', address: 'h:70000' }]), `${RAT}.connection_pools[0].address`).expected, /host:port/);
    assert.match(errorAt(pools([{ name: 'rl', address: 'h:1' }, { name: 'rl', address: 'h:2' }]), `${RAT}.connection_pools[1].name`).found, /already used/);
    assert.match(errorAt(pools([{ name: 'rl', address: 'h:1', tls: {} }]), `${RAT}.connection_pools[0].tls`).expected, /not supported/);
    assert.match(errorAt(pools([{ name: 'rl', address: 'h:1', db: -1 }]), `${RAT}.connection_pools[0].db`).expected, />= 0/);
    assert.match(errorAt(pools([{ name: 'rl', address: 'h:1', min_retry_backoff: '1s', max_retry_backoff: '10ms' }]), `${RAT}.connection_pools[0].min_retry_backoff`).expected, /max_retry_backoff/);
    assert.match(
      errorAt(limited({ connection_name: 'rl', max_rate: 1 }, { redis: { connection_pools: [{ name: 'rl', address: 'h:1' }], clusters: [] } }), `${RAT}.clusters`).expected,
      /not supported/,
    );
    const warned = load(pools([{ name: 'rl', address: '[::1]:6379', pool_size: 20, conn_max_idle_time: '1m' }]));
    assert.deepEqual(warned.errors, []);
    assert.match(issueAt(warned.warnings, `${RAT}.connection_pools[0].pool_size`).expected, /no effect/);
    assert.match(issueAt(warned.warnings, `${RAT}.connection_pools[0].conn_max_idle_time`).expected, /no effect/);
  });
});

const skip = redisAvailable ? false : 'redis-server not installed';

describe('qos/ratelimit/router/redis: against a real redis-server', { skip }, () => {
  let redis: TestRedis;
  let backend: TestBackend;
  let admin: Redis;
  const gateways: TestGateway[] = [];

  before(async () => {
    redis = await startRedis();
    backend = await startBackend((_req, res) => json(res, { ok: true }));
    admin = new Redis({ host: '127.0.0.1', port: redis.port, lazyConnect: true, enableOfflineQueue: true, maxRetriesPerRequest: 50, retryStrategy: () => 10 });
    admin.on('error', () => {}); // down on purpose during the failure tests
    await admin.connect();
  });
  after(async () => {
    await Promise.all(gateways.map((g) => g.close()));
    admin.disconnect();
    await backend.close();
    await redis.close();
  });
  beforeEach(async () => {
    await admin.flushall();
  });

  const config = (rl: Record<string, unknown>, endpoints: string[] = ['/e'], poolExtra: Record<string, unknown> = {}) => ({
    extra_config: { redis: { connection_pools: [{ name: 'rl', address: redis.address, min_retry_backoff: '5ms', max_retry_backoff: '20ms', ...poolExtra }] } },
    endpoints: endpoints.map((endpoint) => ({
      endpoint,
      backend: [{ host: [backend.url], url_pattern: '/b' }],
      extra_config: { [NS]: { connection_name: 'rl', ...rl } },
    })),
  });
  const gateway = async (cfg: Record<string, unknown>) => {
    const g = await startGateway(cfg);
    gateways.push(g);
    return g;
  };
  const statuses = (rs: TestResponse[]) => rs.map((r) => r.status);
  const count = (rs: TestResponse[], status: number) => rs.filter((r) => r.status === status).length;
  /** A request that must be answered within `ms` (never hung), timed. */
  const timed = async (url: string, path: string, ms: number, headers?: Record<string, string>) => {
    const t0 = performance.now();
    const r = await get(url, path, headers);
    const took = performance.now() - t0;
    assert.ok(took < ms, `answered in ${Math.round(took)} ms, more than ${ms}`);
    return r;
  };
  /** Until the gateway's Redis connection works again (a probe endpoint with a huge limit answers 200). */
  const recovered = async (g: TestGateway) => {
    const deadline = Date.now() + 5000;
    while ((await get(g.url, '/probe')).status !== 200) {
      assert.ok(Date.now() < deadline, 'Redis connection did not recover');
      await new Promise((r) => setImmediate(r));
    }
  };

  it('the endpoint limit is exact across two gateways sharing Redis: N allowed, not 2N; 503 with Retry-After', async () => {
    const cfg = config({ max_rate: 6, capacity: 6, every: '1h' });
    const [a, b] = [await gateway(cfg), await gateway(cfg)];
    const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => get(i % 2 ? a.url : b.url, '/e')));
    assert.equal(count(rs, 200), 6, String(statuses(rs)));
    assert.equal(count(rs, 503), 14);
    const refused = rs.find((r) => r.status === 503)!;
    assert.equal(refused.body, '');
    // 1 token per 10 minutes: the next one is 600 s away.
    assert.equal(refused.headers['retry-after'], '600');
    // The local limiter's headers.
    assert.equal(refused.headers['ratelimit-policy'], '"endpoint";q=6;w=3600');
    assert.equal(refused.headers['ratelimit'], '"endpoint";r=0;t=600');
    // State in Redis with a TTL: the time to refill completely, plus 1 s.
    const key = 'portico:rl:GET /e:endpoint';
    const pttl = await admin.pttl(key);
    assert.ok(pttl > 3_600_000 && pttl <= 3_601_000, `pttl ${pttl}`);
    assert.ok(Number(await admin.hget(key, 'n')) < 1);
  });

  it('the bucket refills at max_rate per every, measured by Redis', async () => {
    const g = await gateway(config({ max_rate: 20, capacity: 1, every: '1s' }));
    assert.equal((await get(g.url, '/e')).status, 200);
    const refused = await get(g.url, '/e');
    assert.equal(refused.status, 503);
    assert.equal(refused.headers['retry-after'], '1');
    await new Promise((r) => setTimeout(r, 60)); // 20/s: a token every 50 ms
    assert.equal((await get(g.url, '/e')).status, 200);
  });

  it('client buckets (header strategy) are exact across gateways and independent per client; 429; no key is 429', async () => {
    const cfg = config({ client_max_rate: 3, client_capacity: 3, every: '1h', strategy: 'header', key: 'X-Tenant' });
    const [a, b] = [await gateway(cfg), await gateway(cfg)];
    const t1 = await Promise.all(Array.from({ length: 8 }, (_, i) => get(i % 2 ? a.url : b.url, '/e', { 'x-tenant': 't1' })));
    assert.equal(count(t1, 200), 3);
    assert.equal(count(t1, 429), 5);
    assert.ok(Number(t1.find((r) => r.status === 429)!.headers['retry-after']) > 1000);
    const t2 = await Promise.all(Array.from({ length: 4 }, () => get(a.url, '/e', { 'x-tenant': 't2' })));
    assert.equal(count(t2, 200), 3);
    const noKey = await get(a.url, '/e');
    assert.equal(noKey.status, 429);
    assert.equal(noKey.headers['retry-after'], undefined);
    assert.equal(t1.find((r) => r.status === 429)!.headers['ratelimit-policy'], '"client";q=3;w=3600');
    // A huge client key is stored as a digest: bounded Redis keys.
    assert.equal((await get(a.url, '/e', { 'x-tenant': 'x'.repeat(5000) })).status, 200);
    const keys = await admin.keys('portico:rl:*');
    assert.ok(keys.every((k) => k.length < 200), String(keys.map((k) => k.length)));
  });

  it('param and ip strategies; the endpoint bucket answers 503 before the client one', async () => {
    const g = await gateway(config({ client_max_rate: 2, client_capacity: 2, every: '1h', strategy: 'param', key: 'id' }, ['/u/{id}']));
    assert.deepEqual(statuses(await Promise.all([1, 2, 3].map(() => get(g.url, '/u/a')))).sort(), [200, 200, 429]);
    assert.equal((await get(g.url, '/u/b')).status, 200);
    const ip = await gateway(config({ max_rate: 3, capacity: 3, client_max_rate: 1, client_capacity: 1, every: '1h' }, ['/ip']));
    assert.deepEqual([(await get(ip.url, '/ip')).status, (await get(ip.url, '/ip')).status], [200, 429]);
    const other = await gateway(config({ max_rate: 1, capacity: 1, client_max_rate: 5, client_capacity: 5, every: '1h' }, ['/both']));
    assert.deepEqual([(await get(other.url, '/both')).status, (await get(other.url, '/both')).status], [200, 503]);
  });

  for (const onFailureAllow of [false, true]) {
    const expected = onFailureAllow ? 200 : 503;
    const mode = onFailureAllow ? 'open (on_failure_allow)' : 'closed';
    it(`Redis killed, paused and restarted under load, failing ${mode}: bounded answers, exact again after recovery`, async () => {
      const rl = { max_rate: 4, capacity: 4, every: '1h', on_failure_allow: onFailureAllow, decision_timeout: '50ms' };
      const cfg = config(rl, ['/e', '/probe']);
      // The probe shares the pool with a limit nothing reaches.
      (cfg.endpoints[1]!.extra_config as Record<string, Record<string, unknown>>)[NS] = { connection_name: 'rl', max_rate: 1e6, capacity: 1_000_000, on_failure_allow: false, decision_timeout: '50ms' };
      const g = await gateway(cfg);
      await recovered(g);
      const BOUND = 1000; // decision timeout 50 ms, plus the HTTP round trip on a loaded CI machine

      // Paused: the connection stays open and nothing answers; every decision times out.
      redis.pause();
      try {
        const rs = await Promise.all(Array.from({ length: 10 }, () => timed(g.url, '/e', BOUND)));
        assert.deepEqual(statuses(rs), Array(10).fill(expected));
        if (!onFailureAllow) assert.equal(rs[0]!.headers['retry-after'], '1');
      } finally {
        redis.resume();
      }
      await recovered(g);

      // Killed under load: requests in flight and new ones all answered in bounded time.
      const load = Array.from({ length: 10 }, () => timed(g.url, '/e', BOUND));
      await redis.kill();
      const down = await Promise.all(Array.from({ length: 10 }, () => timed(g.url, '/e', BOUND)));
      assert.deepEqual(statuses(down), Array(10).fill(expected));
      for (const r of await Promise.all(load)) assert.ok([200, 503].includes(r.status));

      // Restarted (empty: no persistence): the script is loaded again (EVALSHA falls back to EVAL) and the limit is exact.
      await redis.restart();
      await recovered(g);
      const after = await Promise.all(Array.from({ length: 10 }, () => timed(g.url, '/e', BOUND)));
      assert.equal(count(after, 200), 4, String(after.map((r) => `${r.status}:${r.headers["retry-after"]}`)));
      assert.equal(count(after, 503), 6);
      assert.ok(after.every((r) => r.status !== 503 || Number(r.headers['retry-after']) > 1), 'refusals come from the bucket, not from a failure');
    });
  }

  it('a Redis that is not there at all: every decision fails fast with the failure mode, nothing hangs', async () => {
    const port = await freePort();
    const dead = (allow: boolean) => ({
      extra_config: { redis: { connection_pools: [{ name: 'rl', address: `127.0.0.1:${port}`, max_retries: 2 }] } },
      endpoints: [{ endpoint: '/d', backend: [{ host: [backend.url], url_pattern: '/b' }], extra_config: { [NS]: { connection_name: 'rl', max_rate: 1, on_failure_allow: allow } } }],
    });
    const closed = await gateway(dead(false));
    const open = await gateway(dead(true));
    const rs = await Promise.all(Array.from({ length: 5 }, () => timed(closed.url, '/d', 1000)));
    assert.deepEqual(statuses(rs), [503, 503, 503, 503, 503]);
    assert.equal(rs[0]!.headers['retry-after'], '1');
    assert.deepEqual(statuses(await Promise.all(Array.from({ length: 5 }, () => timed(open.url, '/d', 1000)))), [200, 200, 200, 200, 200]);
  });

  it('qos/ratelimit/service/redis: one limit for the whole service, exact across gateways and endpoints', async () => {
    const cfg = {
      extra_config: {
        redis: { connection_pools: [{ name: 'rl', address: redis.address }] },
        'qos/ratelimit/service/redis': { connection_name: 'rl', max_rate: 5, capacity: 5, every: '1h' },
      },
      endpoints: ['/s1', '/s2'].map((endpoint) => ({ endpoint, backend: [{ host: [backend.url], url_pattern: '/b' }] })),
    };
    const [a, b] = [await gateway(cfg), await gateway(cfg)];
    const rs = await Promise.all(Array.from({ length: 12 }, (_, i) => get(i % 2 ? a.url : b.url, i % 3 ? '/s1' : '/s2')));
    assert.equal(count(rs, 200), 5, String(statuses(rs)));
    assert.equal(count(rs, 503), 7);
    assert.equal(rs.find((r) => r.status === 503)!.headers['ratelimit-policy'], '"endpoint";q=5;w=3600');
    assert.deepEqual(await admin.keys('portico:rl:*'), ['portico:rl:service:endpoint']);
  });

  it('qos/ratelimit/service/redis naming a pool that does not exist: a config error with the path, whatever the key order', async () => {
    // The limit is written before the redis namespace: parse still sees the pools (stack order).
    await assert.rejects(
      startGateway({
        extra_config: { 'qos/ratelimit/service/redis': { connection_name: 'other', max_rate: 1 }, redis: { connection_pools: [{ name: 'rl', address: redis.address }] } },
        endpoints: [{ endpoint: '/x', backend: [{ host: [backend.url], url_pattern: '/b' }] }],
      }),
      /\$\.extra_config\["qos\/ratelimit\/service\/redis"\]\.connection_name: expected the name of a pool of the service's "redis" namespace \("rl"\), found "other"/,
    );
  });

  it('a reload that keeps the pool keeps its client (and its buckets, in Redis)', async () => {
    const cfg = config({ max_rate: 1, capacity: 1, every: '1h' });
    const g = await gateway(cfg);
    assert.equal((await get(g.url, '/e')).status, 200);
    const keys = g.state.keys().filter((k) => k.startsWith('redis\u0000'));
    assert.equal(keys.length, 1);
    assert.doesNotMatch(keys[0]!, /"password":"[^"]/);
    await g.reload(config({ max_rate: 1, capacity: 1, every: '1h' }));
    assert.equal((await get(g.url, '/e')).status, 503);
    assert.deepEqual(g.state.keys().filter((k) => k.startsWith('redis\u0000')), keys);
  });
});

describe('qos/ratelimit/service (local)', () => {
  let backend: TestBackend;
  let g: TestGateway;
  before(async () => {
    backend = await startBackend((_req, res) => json(res, { ok: true }));
  });
  after(async () => {
    await g?.close();
    await backend.close();
  });

  it('one set of buckets for every endpoint of the service: 503 for the service bucket, 429 per client', async () => {
    g = await startGateway({
      extra_config: { 'qos/ratelimit/service': { max_rate: 3, capacity: 3, client_max_rate: 2, client_capacity: 2, strategy: 'header', key: 'X-Who', every: '1h' } },
      endpoints: ['/a', '/b'].map((endpoint) => ({ endpoint, backend: [{ host: [backend.url], url_pattern: '/b' }] })),
    });
    const who = (w: string) => ({ 'x-who': w });
    assert.deepEqual(
      [(await get(g.url, '/a', who('u1'))).status, (await get(g.url, '/b', who('u1'))).status, (await get(g.url, '/a', who('u1'))).status],
      [200, 200, 429],
    );
    assert.equal((await get(g.url, '/b', who('u2'))).status, 200);
    const refused = await get(g.url, '/a', who('u3'));
    assert.equal(refused.status, 503);
    assert.ok(Number(refused.headers['retry-after']) > 1000);
    assert.equal((await get(g.url, '/a')).status, 429); // no client key
  });

  it('checks the fields of qos/ratelimit/router', () => {
    const at = '$.extra_config["qos/ratelimit/service"]';
    assert.match(errorAt(service({ extra_config: { 'qos/ratelimit/service': { max_rate: -2 } } }), `${at}.max_rate`).expected, />= 0/);
    assert.match(errorAt(service({ extra_config: { 'qos/ratelimit/service': { client_max_rate: 1, strategy: 'header' } } }), `${at}.key`).expected, /header/);
    const cfg = loadTestConfig({ host: ['http://127.0.0.1:9'], extra_config: { 'qos/ratelimit/service': { max_rate: 4 } } });
    assert.deepEqual(structuredClone(cfg.namespaces), cfg.namespaces);
  });
});
