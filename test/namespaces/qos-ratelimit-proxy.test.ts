// qos/ratelimit/proxy: a token bucket in front of one backend, through a real
// gateway and real backends. Time is a test clock (setClock): refills are
// exact and nothing sleeps. Config checks, every field, the partial answer
// when only the limited backend fails, reloads that keep or reset the bucket.

import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { proxyLimiter, RATELIMIT_PROXY_CODE } from '../../src/namespaces/qos-ratelimit-proxy.ts';
import { bucketRule, setClock, TokenBucket } from '../../src/namespaces/token-bucket.ts';
import type { GatewayError } from '../../src/proxy/errors.ts';
import type { ProxyRequest, ProxyResponse } from '../../src/proxy/types.ts';
import { errorAt, issueAt, load, withBackend } from '../config/support.ts';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { loadTestConfig, startGateway, type TestGateway } from '../helpers/gateway.ts';
import { get } from '../helpers/http.ts';

const NS = 'qos/ratelimit/proxy';
const AT = `$.endpoints[0].backend[0].extra_config["${NS}"]`;

let t = 5_000_000;
const nsConfig = (options: unknown) => withBackend({ extra_config: { [NS]: options } });
const optionsOf = (options: unknown): unknown =>
  loadTestConfig({ host: ['http://127.0.0.1:9'], endpoints: [{ endpoint: '/e', backend: [{ url_pattern: '/b', extra_config: { [NS]: options } }] }] }).endpoints[0]!.backends[0]!.namespaces[0]!.options;

describe('qos/ratelimit/proxy: config', () => {
  it('reads every field into plain, cloneable options, KrakenD defaults applied', () => {
    const o = optionsOf({ max_rate: 5, capacity: 8, every: '2m' });
    assert.deepEqual(structuredClone(o), o);
    assert.deepEqual(o, { maxRate: 5, capacity: 8, everyMs: 120_000 });
    assert.deepEqual(optionsOf({ max_rate: 10 }), { maxRate: 10, capacity: 10, everyMs: 1000 });
    assert.deepEqual(optionsOf({ max_rate: 0.5 }), { maxRate: 0.5, capacity: 1, everyMs: 1000 });
    // Unlike the router limit, a sub-second period is honoured (as KrakenD does for backends).
    assert.deepEqual(optionsOf({ max_rate: 1, every: '100ms' }), { maxRate: 1, capacity: 10, everyMs: 100 });
  });

  it('reports precise errors and warnings', () => {
    assert.match(errorAt(nsConfig([]), AT).expected, /object/);
    assert.match(errorAt(nsConfig({}), `${AT}.max_rate`).expected, /calls allowed/);
    assert.match(errorAt(nsConfig({ max_rate: -3 }), `${AT}.max_rate`).expected, />= 0/);
    assert.match(errorAt(nsConfig({ max_rate: 1, capacity: 2.5 }), `${AT}.capacity`).expected, /whole number/);
    assert.match(errorAt(nsConfig({ max_rate: 1, every: 'soon' }), `${AT}.every`).expected, /Go duration/);
    assert.match(errorAt(nsConfig({ max_rate: 1, every: '0' }), `${AT}.every`).expected, /positive/);
    const r = load(nsConfig({ max_rate: 0, maxrate: 1 }));
    assert.deepEqual(r.errors, []);
    assert.match(issueAt(r.warnings, `${AT}.max_rate`).found, /limits nothing/);
    assert.match(issueAt(r.warnings, `${AT}.maxrate`).expected, /did you mean "max_rate"/);
  });
});

describe('qos/ratelimit/proxy: the middleware', () => {
  it('refuses a call without a token with a GatewayError of a stable code, without calling the backend', async () => {
    const bucket = new TokenBucket(bucketRule(0.5, 1000, 1));
    let calls = 0;
    const p = proxyLimiter(bucket)(async () => {
      calls++;
      return { data: {}, complete: true } as ProxyResponse;
    });
    setClock(() => t);
    try {
      await p({} as ProxyRequest);
      await assert.rejects(p({} as ProxyRequest), (e: GatewayError) => e.code === RATELIMIT_PROXY_CODE && e.status === 500);
      t += 1999;
      await assert.rejects(p({} as ProxyRequest));
      t += 1; // 0.5 per second: one token every 2 s exactly
      await p({} as ProxyRequest);
      assert.equal(calls, 2);
    } finally {
      setClock();
    }
  });
});

describe('qos/ratelimit/proxy: over HTTP', () => {
  let users: TestBackend;
  let orders: TestBackend;
  let gw: TestGateway | undefined;
  before(async () => {
    users = await startBackend((_req, res) => json(res, { user: 'u1' }));
    orders = await startBackend((_req, res) => json(res, { orders: [1, 2] }));
  });
  after(async () => {
    await users.close();
    await orders.close();
  });
  beforeEach(() => {
    t = 5_000_000;
    setClock(() => t);
  });
  afterEach(async () => {
    setClock();
    await gw?.close();
    gw = undefined;
  });

  const config = (limit: Partial<Record<'max_rate' | 'capacity' | 'every', unknown>>) => ({
    endpoints: [
      {
        endpoint: '/u',
        backend: [
          { host: [users.url], url_pattern: '/u' },
          { host: [orders.url], url_pattern: '/o', group: 'o', extra_config: { [NS]: limit } },
        ],
      },
      { endpoint: '/o', backend: [{ host: [orders.url], url_pattern: '/o', extra_config: { [NS]: limit } }] },
    ],
  });

  it('max_rate + capacity: a limited backend fails alone, so the endpoint answers partially', async () => {
    const before = orders.requests.length;
    gw = await startGateway(config({ max_rate: 1, capacity: 2 }));
    for (let i = 0; i < 2; i++) {
      const r = await get(gw.url, '/u');
      assert.equal(r.status, 200);
      assert.deepEqual(r.json(), { user: 'u1', o: { orders: [1, 2] } });
    }
    const r = await get(gw.url, '/u');
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-portico-completed'], 'false');
    assert.deepEqual(r.json(), { user: 'u1' });
    assert.equal(orders.requests.length - before, 2, 'the limited call was never made');
    t += 1000;
    assert.deepEqual((await get(gw.url, '/u')).json(), { user: 'u1', o: { orders: [1, 2] } });
  });

  it('an endpoint whose only backend is limited answers 500 (as KrakenD); each backend has its own bucket', async () => {
    gw = await startGateway(config({ max_rate: 1 }));
    assert.equal((await get(gw.url, '/o')).status, 200);
    const r = await get(gw.url, '/o');
    assert.equal(r.status, 500);
    // The same limits on /u's backend are another bucket.
    assert.equal((await get(gw.url, '/u')).headers['x-portico-completed'], 'true');
  });

  it('every scales the period, sub-second included', async () => {
    gw = await startGateway(config({ max_rate: 1, capacity: 1, every: '100ms' }));
    assert.equal((await get(gw.url, '/o')).status, 200);
    assert.equal((await get(gw.url, '/o')).status, 500);
    t += 99;
    assert.equal((await get(gw.url, '/o')).status, 500);
    t += 1;
    assert.equal((await get(gw.url, '/o')).status, 200);
  });

  it('a reload that leaves the limit unchanged keeps the bucket; a changed limit starts full', async () => {
    gw = await startGateway(config({ max_rate: 1 }));
    assert.equal((await get(gw.url, '/o')).status, 200);
    await gw.reload({ ...config({ max_rate: 1 }), timeout: '4s' });
    assert.equal((await get(gw.url, '/o')).status, 500, 'the bucket survived the reload');
    await gw.reload(config({ max_rate: 1, capacity: 2 }));
    assert.equal((await get(gw.url, '/o')).status, 200, 'a changed limit has a fresh bucket');
  });

  it('max_rate 0 limits nothing', async () => {
    gw = await startGateway(config({ max_rate: 0 }));
    for (let i = 0; i < 5; i++) assert.equal((await get(gw.url, '/o')).status, 200);
  });
});
