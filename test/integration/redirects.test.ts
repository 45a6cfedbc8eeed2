// Backend redirects are followed like Go's http.Client (KrakenD): method and
// body rules per status, credentials dropped across hosts, at most 10 hops;
// for decoded and for streamed (no-op) backends alike.

import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';
import { get, request } from '../helpers/http.ts';

describe('backend redirects', () => {
  let a: TestBackend;
  let other: TestBackend;
  let gw: TestGateway;
  before(async () => {
    other = await startBackend((req, res) => json(res, { host: 'other', url: req.url }));
    a = await startBackend((req: { url?: string }, res: ServerResponse) => {
      const url = req.url ?? '/';
      const to = (status: number, location: string) => {
        res.writeHead(status, { location, 'content-type': 'text/plain' });
        res.end('moved');
      };
      if (url.startsWith('/r/')) {
        const [, , status, ...rest] = url.split('/');
        return to(Number(status), '/' + rest.join('/'));
      }
      if (url === '/relative/deep/start') return to(302, '../end?q=1');
      if (url === '/cross') return to(302, `${other.url}/landed`);
      if (url.startsWith('/loop/')) return to(302, `/loop/${Number(url.split('/')[2]) + 1}`);
      json(res, { host: 'a', url });
    });
    gw = await startGateway({
      host: [a.url],
      endpoints: [
        { endpoint: '/get/{status}', input_headers: ['Authorization'], backend: [{ url_pattern: '/r/{status}/final' }] },
        { endpoint: '/noop/{status}', output_encoding: 'no-op', backend: [{ url_pattern: '/r/{status}/final', encoding: 'no-op' }] },
        { endpoint: '/post/{status}', method: 'POST', backend: [{ url_pattern: '/r/{status}/final' }] },
        { endpoint: '/relative', backend: [{ url_pattern: '/relative/deep/start' }] },
        { endpoint: '/cross', input_headers: ['Authorization', 'X-Keep'], backend: [{ url_pattern: '/cross' }] },
        { endpoint: '/loop/{n}', backend: [{ url_pattern: '/loop/{n}' }] },
        { endpoint: '/noop-loop/{n}', output_encoding: 'no-op', backend: [{ url_pattern: '/loop/{n}', encoding: 'no-op' }] },
        { endpoint: '/own-referer/{n}', input_headers: ['Referer'], backend: [{ url_pattern: '/loop/{n}' }] },
      ],
    });
  });
  after(async () => {
    await gw.close();
    await a.close();
    await other.close();
  });

  const last = (b: TestBackend = a) => b.requests.at(-1)!;

  for (const status of [301, 302, 303, 307, 308]) {
    it(`GET: follows ${status}, same method, credentials kept on the same host`, async () => {
      const r = await get(gw.url, `/get/${status}`, { authorization: 'Bearer t' });
      assert.equal(r.status, 200);
      assert.deepEqual(r.json(), { host: 'a', url: '/final' });
      assert.equal(last().method, 'GET');
      assert.equal(last().headers.authorization, 'Bearer t');
    });
  }

  it('no-op: the final answer is streamed, not the redirect', async () => {
    const r = await get(gw.url, '/noop/301');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { host: 'a', url: '/final' });
  });

  for (const status of [301, 302, 303]) {
    it(`POST + ${status}: the next hop is a GET without the body`, async () => {
      const r = await request(gw.url, `/post/${status}`, { method: 'POST', body: '{"n":1}', headers: { 'content-type': 'application/json' } });
      assert.equal(r.status, 200);
      assert.equal(last().url, '/final');
      assert.equal(last().method, 'GET');
      assert.equal(last().body, '');
      assert.equal(last().headers['content-type'], undefined);
    });
  }

  for (const status of [307, 308]) {
    it(`POST + ${status}: the method and body are repeated`, async () => {
      const r = await request(gw.url, `/post/${status}`, { method: 'POST', body: '{"n":1}', headers: { 'content-type': 'application/json' } });
      assert.equal(r.status, 200);
      assert.equal(last().url, '/final');
      assert.equal(last().method, 'POST');
      assert.equal(last().body, '{"n":1}');
      assert.equal(last().headers['content-type'], 'application/json');
    });
  }

  it('a relative Location is resolved against the request URL', async () => {
    const r = await get(gw.url, '/relative');
    assert.deepEqual(r.json(), { host: 'a', url: '/relative/end?q=1' });
  });

  it('a redirect to another host drops Authorization but keeps other forwarded headers', async () => {
    const r = await get(gw.url, '/cross', { authorization: 'Bearer secret', 'x-keep': 'yes' });
    assert.deepEqual(r.json(), { host: 'other', url: '/landed' });
    assert.equal(last(other).headers.authorization, undefined);
    assert.equal(last(other).headers['x-keep'], 'yes');
  });

  it("each hop carries a Referer naming the URL redirected from, as Go's client adds; a forwarded Referer is kept on every hop", async () => {
    const before = a.requests.length;
    await get(gw.url, '/loop/0');
    const hops = a.requests.slice(before);
    assert.equal(hops[0].headers.referer, undefined, 'the first request has none');
    for (let i = 1; i < hops.length; i++) assert.equal(hops[i].headers.referer, `${a.url}/loop/${i - 1}`);
    const own = a.requests.length;
    await get(gw.url, '/own-referer/0', { referer: 'https://client.example/page' });
    assert.ok(a.requests.slice(own).every((q) => q.headers.referer === 'https://client.example/page'));
  });

  it('a redirect to another host carries the Referer too', async () => {
    await get(gw.url, '/cross');
    assert.equal(last(other).headers.referer, `${a.url}/cross`);
  });

  it('stops after 10 redirects: a decoded backend fails, a no-op one passes the 302 on', async () => {
    const before = a.requests.length;
    const decoded = await get(gw.url, '/loop/0');
    assert.equal(decoded.status, 500);
    assert.equal(a.requests.length - before, 11, 'the first call and 10 redirects');
    const streamed = await get(gw.url, '/noop-loop/0');
    assert.equal(streamed.status, 302);
    assert.equal(streamed.headers.location, '/loop/11');
  });
});
