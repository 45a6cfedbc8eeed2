import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';
import { get } from '../helpers/http.ts';

describe('proxy options', () => {
  let be: TestBackend;
  let shadow: TestBackend;
  let gw: TestGateway;
  let flaky = 0;
  before(async () => {
    be = await startBackend(async (req, res) => {
      const url = req.url!;
      if (url === '/user/3') return json(res, { id: 3, profile: { team: 'red' } });
      if (url.startsWith('/team/')) return json(res, { team: url.slice(6), size: 4 });
      if (url === '/fail') return json(res, {}, 500);
      if (url === '/a') return json(res, { a: 1 });
      if (url === '/flaky') {
        // Every other call is slow: concurrent_calls must answer with the fast one.
        if (flaky++ % 2 === 0) await sleep(800);
        return json(res, { fast: true });
      }
      if (url === '/list') return json(res, { users: [{ name: 'a', pw: 1 }, { name: 'b', pw: 2 }] });
      json(res, {}, 404);
    });
    shadow = await startBackend((_req, res) => json(res, { shadow: 'never shown' }));
    gw = await startGateway({
      host: [be.url],
      endpoints: [
        {
          endpoint: '/seq/{id}',
          extra_config: { proxy: { sequential: true } },
          backend: [{ url_pattern: '/user/{id}' }, { url_pattern: '/team/{resp0_profile.team}', group: 'team' }],
        },
        {
          endpoint: '/seq-first-fails',
          extra_config: { proxy: { sequential: true } },
          backend: [{ url_pattern: '/fail' }, { url_pattern: '/a' }],
        },
        {
          endpoint: '/seq-later-fails',
          extra_config: { proxy: { sequential: true } },
          backend: [{ url_pattern: '/a' }, { url_pattern: '/fail' }, { url_pattern: '/a', group: 'never' }],
        },
        { endpoint: '/static-always', extra_config: { proxy: { static: { strategy: 'always', data: { s: 'yes', a: 'static' } } } }, backend: [{ url_pattern: '/a' }] },
        { endpoint: '/static-errored', extra_config: { proxy: { static: { strategy: 'errored', data: { fallback: true } } } }, backend: [{ url_pattern: '/fail' }] },
        { endpoint: '/static-errored-ok', extra_config: { proxy: { static: { strategy: 'errored', data: { fallback: true } } } }, backend: [{ url_pattern: '/a' }] },
        { endpoint: '/static-incomplete', extra_config: { proxy: { static: { strategy: 'incomplete', data: { partial: true } } } }, backend: [{ url_pattern: '/a' }, { url_pattern: '/fail' }] },
        { endpoint: '/static-complete', extra_config: { proxy: { static: { strategy: 'complete', data: { whole: true } } } }, backend: [{ url_pattern: '/a' }, { url_pattern: '/fail' }] },
        { endpoint: '/static-success', extra_config: { proxy: { static: { strategy: 'success', data: { good: true } } } }, backend: [{ url_pattern: '/a' }] },
        {
          endpoint: '/shadowed',
          backend: [{ url_pattern: '/a' }, { host: [shadow.url], url_pattern: '/s', extra_config: { proxy: { shadow: true } } }],
        },
        { endpoint: '/concurrent', concurrent_calls: 2, timeout: '3s', backend: [{ url_pattern: '/flaky' }] },
        {
          endpoint: '/flat',
          extra_config: { proxy: { flatmap_filter: [{ type: 'del', args: ['users.*.pw'] }] } },
          backend: [{ url_pattern: '/list' }, { url_pattern: '/a' }],
        },
      ],
    });
  });
  after(async () => {
    await gw.close();
    await be.close();
    await shadow.close();
  });

  it('sequential: fills {resp0_...} from the first backend', async () => {
    const r = await get(gw.url, '/seq/3');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { id: 3, profile: { team: 'red' }, team: { team: 'red', size: 4 } });
    assert.ok(be.requests.some((x) => x.url === '/team/red'));
  });

  it('sequential: the first backend failing fails the request', async () => {
    const n = be.requests.length;
    const r = await get(gw.url, '/seq-first-fails');
    assert.equal(r.status, 500);
    assert.deepEqual(be.requests.slice(n).map((x) => x.url), ['/fail'], 'the chain stops');
  });

  it('sequential: a later failure stops the chain with a partial 200', async () => {
    const n = be.requests.length;
    const r = await get(gw.url, '/seq-later-fails');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { a: 1 });
    assert.equal(r.headers['x-portico-completed'], 'false');
    assert.deepEqual(be.requests.slice(n).map((x) => x.url), ['/a', '/fail']);
  });

  it('static always: merges the data, overwriting backend keys', async () => {
    assert.deepEqual((await get(gw.url, '/static-always')).json(), { a: 'static', s: 'yes' });
  });

  it('static errored: answers 200 with the static data when the backend fails', async () => {
    const r = await get(gw.url, '/static-errored');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { fallback: true });
    assert.equal(r.headers['x-portico-completed'], 'false');
    assert.deepEqual((await get(gw.url, '/static-errored-ok')).json(), { a: 1 });
  });

  it('static incomplete / complete / success follow the outcome', async () => {
    assert.deepEqual((await get(gw.url, '/static-incomplete')).json(), { a: 1, partial: true });
    assert.deepEqual((await get(gw.url, '/static-complete')).json(), { a: 1 });
    const ok = await get(gw.url, '/static-success');
    assert.deepEqual(ok.json(), { a: 1, good: true });
    assert.equal(ok.headers['cache-control'], undefined, 'no Cache-Control without cache_ttl');
  });

  it('shadow backends are called but never affect the answer', async () => {
    const r = await get(gw.url, '/shadowed');
    assert.deepEqual(r.json(), { a: 1 });
    assert.equal(r.headers['x-portico-completed'], 'true');
    for (let i = 0; i < 50 && shadow.requests.length === 0; i++) await sleep(10);
    assert.equal(shadow.requests.length, 1);
  });

  it('concurrent_calls: the first good answer wins', async () => {
    const t0 = Date.now();
    const r = await get(gw.url, '/concurrent');
    assert.deepEqual(r.json(), { fast: true });
    assert.ok(Date.now() - t0 < 700, 'did not wait for the slow copy');
  });

  it('endpoint flatmap_filter works on the merged data', async () => {
    assert.deepEqual((await get(gw.url, '/flat')).json(), { users: [{ name: 'a' }, { name: 'b' }], a: 1 });
  });
});
