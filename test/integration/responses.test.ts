import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';
import { get } from '../helpers/http.ts';

describe('responses to clients', () => {
  let be: TestBackend;
  let gw: TestGateway;
  before(async () => {
    be = await startBackend(async (req, res) => {
      const url = req.url!;
      if (url === '/a') return json(res, { a: 1, shared: 'a' });
      if (url === '/b') return json(res, { b: 2, shared: 'b' });
      if (url === '/created') return json(res, { created: true }, 201);
      if (url === '/404') return json(res, 'no such thing', 404, { 'content-type': 'text/plain' });
      if (url === '/500') return json(res, { boom: true }, 500);
      if (url === '/slow') {
        await sleep(1500);
        return json(res, { slow: true });
      }
      if (url === '/empty') return json(res, {});
      if (url === '/header') return json(res, { h: 1 }, 200, { 'x-backend-secret': 's' });
      json(res, { unknown: url }, 404);
    });
    gw = await startGateway({
      host: [be.url],
      cache_ttl: '30s',
      endpoints: [
        { endpoint: '/merge', backend: [{ url_pattern: '/a' }, { url_pattern: '/b' }] },
        { endpoint: '/grouped', backend: [{ url_pattern: '/a', group: 'first' }, { url_pattern: '/b', group: 'second' }] },
        { endpoint: '/partial', backend: [{ url_pattern: '/a' }, { url_pattern: '/500' }] },
        { endpoint: '/partial-timeout', timeout: '400ms', backend: [{ url_pattern: '/a' }, { url_pattern: '/slow' }] },
        { endpoint: '/all-fail', backend: [{ url_pattern: '/500' }, { url_pattern: '/404' }] },
        { endpoint: '/single-fail', backend: [{ url_pattern: '/404' }] },
        { endpoint: '/timeout', timeout: '300ms', backend: [{ url_pattern: '/slow' }] },
        { endpoint: '/created', backend: [{ url_pattern: '/created' }] },
        { endpoint: '/empty', backend: [{ url_pattern: '/empty' }] },
        { endpoint: '/endpoint-ttl', cache_ttl: '5s', backend: [{ url_pattern: '/a' }] },
        { endpoint: '/header', backend: [{ url_pattern: '/header' }] },
        {
          endpoint: '/details',
          backend: [
            { url_pattern: '/a' },
            { url_pattern: '/404', extra_config: { 'backend/http': { return_error_details: 'missing' } } },
          ],
        },
        { endpoint: '/code', backend: [{ url_pattern: '/404', extra_config: { 'backend/http': { return_error_code: true } } }] },
      ],
    });
  });
  after(async () => {
    await gw.close();
    await be.close();
  });

  it('merges backends key by key, later backends overwriting', async () => {
    const r = await get(gw.url, '/merge');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { a: 1, b: 2, shared: 'b' });
    assert.equal(r.headers['x-portico-completed'], 'true');
    assert.equal(r.headers['cache-control'], 'public, max-age=30');
    assert.equal(r.headers['content-type'], 'application/json; charset=utf-8');
    assert.equal(r.body, '{"a":1,"shared":"b","b":2}', 'compact JSON, no trailing newline');
  });

  it('groups backends under their keys', async () => {
    assert.deepEqual((await get(gw.url, '/grouped')).json(), { first: { a: 1, shared: 'a' }, second: { b: 2, shared: 'b' } });
  });

  it('answers a partial 200 without Cache-Control when a backend fails', async () => {
    const r = await get(gw.url, '/partial');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { a: 1, shared: 'a' });
    assert.equal(r.headers['x-portico-completed'], 'false');
    assert.equal(r.headers['cache-control'], undefined);
  });

  it('answers what arrived within 85% of the timeout', async () => {
    const t0 = Date.now();
    const r = await get(gw.url, '/partial-timeout');
    const took = Date.now() - t0;
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { a: 1, shared: 'a' });
    assert.equal(r.headers['x-portico-completed'], 'false');
    assert.ok(took < 1200, `answered after ${took} ms, before the slow backend`);
  });

  it('answers 500 with an empty body when every backend fails', async () => {
    const r = await get(gw.url, '/all-fail');
    assert.equal(r.status, 500);
    assert.equal(r.body, '');
    assert.equal(r.headers['x-portico-completed'], 'false');
  });

  it('treats any status but 200/201 as a backend error', async () => {
    const r = await get(gw.url, '/single-fail');
    assert.equal(r.status, 500);
    assert.equal(r.body, '');
    const c = await get(gw.url, '/created');
    assert.equal(c.status, 200);
    assert.deepEqual(c.json(), { created: true });
  });

  it('enforces the endpoint timeout by aborting the backend call', async () => {
    const t0 = Date.now();
    const r = await get(gw.url, '/timeout');
    assert.equal(r.status, 500);
    assert.ok(Date.now() - t0 < 1200);
  });

  it('marks empty data as not completed and omits Cache-Control', async () => {
    const r = await get(gw.url, '/empty');
    assert.equal(r.status, 200);
    assert.equal(r.body, '{}');
    assert.equal(r.headers['x-portico-completed'], 'false');
    assert.equal(r.headers['cache-control'], undefined);
  });

  it('an endpoint cache_ttl overrides the service one', async () => {
    const r = await get(gw.url, '/endpoint-ttl');
    assert.equal(r.headers['cache-control'], 'public, max-age=5');
    assert.equal(r.headers['x-portico-completed'], 'true');
  });

  it('does not pass backend response headers to the client', async () => {
    const r = await get(gw.url, '/header');
    assert.equal(r.headers['x-backend-secret'], undefined);
  });

  it('return_error_details adds the error under error_<name> and keeps 200', async () => {
    const r = await get(gw.url, '/details');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), {
      a: 1,
      shared: 'a',
      error_missing: { http_status_code: 404, http_body: 'no such thing', http_body_encoding: 'text/plain' },
    });
    assert.equal(r.headers['x-portico-completed'], 'false');
  });

  it('return_error_code passes the backend status through with an empty body', async () => {
    const r = await get(gw.url, '/code');
    assert.equal(r.status, 404);
    assert.equal(r.body, '');
  });
});

describe('router.return_error_msg', () => {
  it('puts the error text in a text/plain body, and the backend body with return_error_code', async () => {
    const be = await startBackend((req, res) => json(res, req.url === '/teapot' ? 'short and stout' : { x: 1 }, 418, { 'content-type': 'text/plain' }));
    const gw = await startGateway({
      host: [be.url],
      extra_config: { router: { return_error_msg: true } },
      endpoints: [
        { endpoint: '/plain', backend: [{ url_pattern: '/x' }] },
        { endpoint: '/code', backend: [{ url_pattern: '/teapot', extra_config: { 'backend/http': { return_error_code: true } } }] },
      ],
    });
    try {
      const r = await get(gw.url, '/plain');
      assert.equal(r.status, 500);
      assert.equal(r.headers['content-type'], 'text/plain; charset=utf-8');
      // KrakenD's text: the backend's status, method and url_pattern, and the URL that answered.
      assert.equal(r.body, `invalid status code 418 [GET /x]: ${be.url}/x`);
      const c = await get(gw.url, '/code');
      assert.equal(c.status, 418);
      assert.equal(c.body, 'short and stout');
      assert.equal(c.headers['content-type'], 'text/plain');
    } finally {
      await gw.close();
      await be.close();
    }
  });
});

describe('hostile backend data', () => {
  it('a "__proto__" key from a backend is merged as data, never as a prototype', async () => {
    const be = await startBackend((req, res) => json(res, req.url === '/a' ? '{"__proto__":{"polluted":true},"a":1}' : { b: 2 }));
    const gw = await startGateway({ host: [be.url], endpoints: [{ endpoint: '/m', backend: [{ url_pattern: '/b' }, { url_pattern: '/a' }] }] });
    try {
      const r = await get(gw.url, '/m');
      assert.equal(r.status, 200);
      assert.deepEqual(JSON.parse(r.body), JSON.parse('{"b":2,"__proto__":{"polluted":true},"a":1}'));
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
    } finally {
      await gw.close();
      await be.close();
    }
  });
});
