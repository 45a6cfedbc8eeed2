import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startJsonBackend, type TestBackend } from '../helpers/backend.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';
import { get, request } from '../helpers/http.ts';

describe('routing', () => {
  let backend: TestBackend;
  let gw: TestGateway;
  before(async () => {
    backend = await startJsonBackend({ '/u/7': { id: 7 }, '/u/me': { me: true }, '/items': { items: 1 }, '/p/7/x': { post: 1 } });
    gw = await startGateway({
      host: [backend.url],
      echo_endpoint: true,
      endpoints: [
        { endpoint: '/users/{id}', backend: [{ url_pattern: '/u/{id}' }] },
        { endpoint: '/users/me', backend: [{ url_pattern: '/u/me' }] },
        { endpoint: '/items', method: 'POST', backend: [{ url_pattern: '/items' }] },
        { endpoint: '/items', method: 'PUT', backend: [{ url_pattern: '/items' }] },
        { endpoint: '/Posts/{id}/x', backend: [{ url_pattern: '/p/{id}/x' }] },
      ],
    });
  });
  after(async () => {
    await gw.close();
    await backend.close();
  });

  it('binds {params} and substitutes them into url_pattern', async () => {
    const r = await get(gw.url, '/users/7');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { id: 7 });
    assert.equal(backend.requests.at(-1)!.url, '/u/7');
  });

  it('prefers a static segment over a parameter', async () => {
    const r = await get(gw.url, '/users/me');
    assert.deepEqual(r.json(), { me: true });
  });

  it('answers 404 "404 page not found" as text/plain for unknown paths', async () => {
    const r = await get(gw.url, '/nope');
    assert.equal(r.status, 404);
    assert.equal(r.body, '404 page not found');
    assert.match(String(r.headers['content-type']), /^text\/plain/);
  });

  it('answers 405 with Allow for a known path and a wrong method', async () => {
    const r = await get(gw.url, '/items');
    assert.equal(r.status, 405);
    assert.equal(r.body, '405 method not allowed');
    assert.equal(r.headers['x-portico-completed'], 'false', "as KrakenD's 405 carries its completed header");
    assert.equal(r.headers.allow, 'POST, PUT');
  });

  it('redirects a trailing-slash mismatch to the canonical path, keeping the query', async () => {
    const r = await get(gw.url, '/users/7/?a=1');
    assert.equal(r.status, 301);
    assert.equal(r.headers.location, '/users/7?a=1');
    const post = await request(gw.url, '/items/', { method: 'POST' });
    assert.equal(post.status, 307);
    assert.equal(post.headers.location, '/items');
  });

  it('redirects a case mismatch to the canonical path (fixed path)', async () => {
    const r = await get(gw.url, '/posts/7/X');
    assert.equal(r.status, 301);
    assert.equal(r.headers.location, '/Posts/7/x');
  });

  it('serves /__health with status ok', async () => {
    const r = await get(gw.url, '/__health');
    assert.equal(r.status, 200);
    const body = r.json();
    assert.equal(body.status, 'ok');
    assert.deepEqual(body.agents, {});
    assert.ok(!Number.isNaN(Date.parse(body.now)));
  });

  it('echoes the request on /__echo/* when echo_endpoint is on', async () => {
    const r = await request(gw.url, '/__echo/a/b?x=1&x=2', { method: 'POST', body: 'hello', headers: { 'x-test': 'yes' } });
    assert.equal(r.status, 200);
    const body = r.json();
    assert.equal(body.req_uri, '/__echo/a/b?x=1&x=2');
    assert.equal(body.req_method, 'POST');
    assert.deepEqual(body.req_querystring, { x: ['1', '2'] });
    assert.equal(body.req_body, 'hello');
    assert.deepEqual(body.req_headers['X-Test'], ['yes']);
  });

  it('does not serve /__debug unless enabled', async () => {
    const r = await get(gw.url, '/__debug/x');
    assert.equal(r.status, 404);
  });
});

describe('router options', () => {
  let backend: TestBackend;
  let gw: TestGateway;
  before(async () => {
    backend = await startJsonBackend({ '/a': { a: 1 } });
    gw = await startGateway({
      host: [backend.url],
      debug_endpoint: true,
      extra_config: {
        router: {
          health_path: '/healthz',
          disable_redirect_trailing_slash: true,
          disable_redirect_fixed_path: true,
          remove_extra_slash: true,
          auto_options: true,
          error_body: { '404': { error: 'nothing here' }, '405': { error: 'wrong method' } },
        },
      },
      endpoints: [{ endpoint: '/a/b', backend: [{ url_pattern: '/a' }] }],
    });
  });
  after(async () => {
    await gw.close();
    await backend.close();
  });

  it('moves the health endpoint with health_path', async () => {
    assert.equal((await get(gw.url, '/healthz')).status, 200);
    assert.equal((await get(gw.url, '/__health')).status, 404);
  });

  it('does not redirect when redirects are disabled', async () => {
    assert.equal((await get(gw.url, '/a/b/')).status, 404);
    assert.equal((await get(gw.url, '/A/b')).status, 404);
  });

  it('collapses repeated slashes with remove_extra_slash', async () => {
    const r = await get(gw.url, '//a///b');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { a: 1 });
  });

  it('renders error_body JSON for 404 and 405', async () => {
    const nf = await get(gw.url, '/zzz');
    assert.equal(nf.status, 404);
    assert.deepEqual(nf.json(), { error: 'nothing here' });
    const na = await request(gw.url, '/a/b', { method: 'DELETE' });
    assert.equal(na.status, 405);
    assert.deepEqual(na.json(), { error: 'wrong method' });
  });

  it('answers OPTIONS with Allow when auto_options is on', async () => {
    const r = await request(gw.url, '/a/b', { method: 'OPTIONS' });
    assert.equal(r.status, 200);
    assert.equal(r.headers.allow, 'GET, OPTIONS');
  });

  it('serves /__debug/* when debug_endpoint is on', async () => {
    const r = await request(gw.url, '/__debug/anything', { method: 'PUT', body: 'x' });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { message: 'pong' });
  });
});
