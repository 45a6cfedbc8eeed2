import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { accessLines, startGateway, type TestGateway } from '../helpers/gateway.ts';
import { get, request } from '../helpers/http.ts';
import { VERSION } from '../../src/version.ts';

describe('requests to backends', () => {
  let a: TestBackend;
  let b: TestBackend;
  let gw: TestGateway;
  before(async () => {
    const handler = (req: { url?: string }, res: import('node:http').ServerResponse) => {
      if (req.url === '/redirect') {
        res.writeHead(302, { location: '/final' });
        return void res.end();
      }
      json(res, { ok: true });
    };
    a = await startBackend(handler);
    b = await startBackend(handler);
    gw = await startGateway({
      host: [a.url],
      endpoints: [
        { endpoint: '/default/{id}', backend: [{ url_pattern: '/d/{id}?fixed=1' }] },
        {
          endpoint: '/listed',
          input_headers: ['Authorization', 'Cookie', 'X-Custom', 'User-Agent', 'Connection', 'Keep-Alive', 'TE', 'Upgrade'],
          input_query_strings: ['a', 'b'],
          backend: [{ url_pattern: '/l' }],
        },
        { endpoint: '/all', input_headers: ['*'], input_query_strings: ['*'], backend: [{ url_pattern: '/all' }] },
        {
          endpoint: '/narrowed',
          input_headers: ['*'],
          input_query_strings: ['*'],
          backend: [{ url_pattern: '/n', input_headers: ['X-Keep'], input_query_strings: ['keep'] }],
        },
        { endpoint: '/rr', backend: [{ host: [a.url, b.url], url_pattern: '/rr' }] },
        { endpoint: '/redirect', backend: [{ url_pattern: '/redirect' }] },
        { endpoint: '/post', method: 'POST', backend: [{ url_pattern: '/p' }, { url_pattern: '/q', group: 'q' }] },
        { endpoint: '/method', method: 'POST', backend: [{ url_pattern: '/m', method: 'PUT' }] },
        { endpoint: '/enc/{name}', backend: [{ url_pattern: '/e/{name}' }] },
      ],
    });
  });
  after(async () => {
    await gw.close();
    await a.close();
    await b.close();
  });

  const last = () => a.requests.at(-1)!;

  it('forwards only Content-Type by default, with X-Forwarded-* and the Portico User-Agent', async () => {
    await get(gw.url, '/default/5?x=1', { authorization: 'Bearer t', cookie: 'c=1', 'content-type': 'application/json', 'user-agent': 'curl/8' });
    const r = last();
    assert.equal(r.url, '/d/5?fixed=1', 'query strings are not forwarded by default; the pattern query stays');
    assert.equal(r.headers.authorization, undefined);
    assert.equal(r.headers.cookie, undefined);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.equal(r.headers['user-agent'], `Portico Version ${VERSION}`);
    assert.equal(r.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(r.headers['x-forwarded-host'], `127.0.0.1:${gw.port}`);
  });

  it('X-Request-Id: the client\'s when usable, else a UUID; sent to the backend, answered and in the access log', async () => {
    accessLines.length = 0;
    const generated = await get(gw.url, '/default/1');
    const id = String(generated.headers['x-request-id']);
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(last().headers['x-request-id'], id, 'the backend got the same id');
    const kept = await get(gw.url, '/default/2', { 'x-request-id': 'trace-42.a:b' });
    assert.equal(kept.headers['x-request-id'], 'trace-42.a:b');
    assert.equal(last().headers['x-request-id'], 'trace-42.a:b');
    for (const bad of ['has space', 'x'.repeat(200), '"quoted"', 'a\u00e9']) {
      const r = await get(gw.url, '/default/3', { 'x-request-id': bad });
      assert.notEqual(r.headers['x-request-id'], bad, `${JSON.stringify(bad).slice(0, 20)} is replaced`);
      assert.equal(last().headers['x-request-id'], r.headers['x-request-id']);
    }
    await new Promise((resolve) => setImmediate(resolve));
    const logged = accessLines.map((l) => JSON.parse(l) as { path: string; request_id?: string });
    assert.ok(logged.some((l) => l.path === '/default/1' && l.request_id === id), 'the access log carries the id');
  });

  it('forwards listed headers, never hop-by-hop ones, and keeps a forwarded User-Agent', async () => {
    await get(gw.url, '/listed?a=1&b=2&a=3&c=4', {
      authorization: 'Bearer t',
      cookie: 'c=1',
      'x-custom': 'v',
      'x-other': 'no',
      'user-agent': 'curl/8',
      te: 'trailers',
      'keep-alive': 'timeout=5',
      connection: 'keep-alive, X-Custom',
    });
    const r = last();
    assert.equal(r.url, '/l?a=1&b=2&a=3', 'listed names only, repeated values and order kept');
    assert.equal(r.headers.authorization, 'Bearer t');
    assert.equal(r.headers.cookie, 'c=1');
    assert.equal(r.headers['x-custom'], undefined, 'a header named in Connection is hop-by-hop');
    assert.equal(r.headers['x-other'], undefined);
    assert.equal(r.headers.te, undefined);
    assert.equal(r.headers['keep-alive'], undefined);
    assert.equal(r.headers['user-agent'], 'curl/8');
    assert.equal(r.headers['x-forwarded-via'], `Portico Version ${VERSION}`);
  });

  it('query-string names are case-sensitive', async () => {
    await get(gw.url, '/listed?A=1&a=2');
    assert.equal(last().url, '/l?a=2');
  });

  it('["*"] forwards every header and query parameter', async () => {
    await get(gw.url, '/all?z=1&y=2', { 'x-anything': '1', authorization: 'Basic x' });
    const r = last();
    assert.equal(r.url, '/all?z=1&y=2');
    assert.equal(r.headers['x-anything'], '1');
    assert.equal(r.headers.authorization, 'Basic x');
  });

  it('a backend input_headers / input_query_strings narrows the endpoint lists', async () => {
    await get(gw.url, '/narrowed?keep=1&drop=2', { 'x-keep': '1', 'x-drop': '2' });
    const r = last();
    assert.equal(r.url, '/n?keep=1');
    assert.equal(r.headers['x-keep'], '1');
    assert.equal(r.headers['x-drop'], undefined);
  });

  it('balances round-robin over the host list', async () => {
    const before = [a.requests.length, b.requests.length];
    for (let i = 0; i < 4; i++) assert.equal((await get(gw.url, '/rr')).status, 200);
    assert.equal(a.requests.length - before[0], 2);
    assert.equal(b.requests.length - before[1], 2);
  });

  it('follows backend redirects', async () => {
    const r = await get(gw.url, '/redirect');
    assert.equal(r.status, 200);
    assert.equal(last().url, '/final');
  });

  it('forwards the client body to every backend', async () => {
    const r = await request(gw.url, '/post', { method: 'POST', body: '{"n":1}', headers: { 'content-type': 'application/json' } });
    assert.equal(r.status, 200);
    const bodies = a.requests.slice(-2).map((x) => [x.url, x.method, x.body]).sort();
    assert.deepEqual(bodies, [['/p', 'POST', '{"n":1}'], ['/q', 'POST', '{"n":1}']]);
  });

  it('uses the backend method when it differs from the endpoint method', async () => {
    await request(gw.url, '/method', { method: 'POST', body: 'x' });
    assert.equal(last().method, 'PUT');
    assert.equal(last().body, 'x');
  });

  it('decodes parameters once and re-encodes them for the backend', async () => {
    await get(gw.url, '/enc/a%20b%C3%A9');
    assert.equal(last().url, '/e/a%20b%C3%A9');
  });

  it('appends to a trusted X-Forwarded-For chain only', async () => {
    await get(gw.url, '/default/1', { 'x-forwarded-for': '10.9.9.9' });
    assert.equal(last().headers['x-forwarded-for'], '127.0.0.1', 'untrusted peers cannot inject a chain');
  });
});

describe('trusted proxies', () => {
  it('appends the peer to an incoming chain from a trusted proxy', async () => {
    const a = await startBackend((_req, res) => json(res, {}));
    const gw = await startGateway({
      host: [a.url],
      extra_config: { router: { trusted_proxies: ['127.0.0.0/8'], forwarded_by_client_ip: true } },
      endpoints: [{ endpoint: '/x', backend: [{ url_pattern: '/x' }] }],
    });
    try {
      await get(gw.url, '/x', { 'x-forwarded-for': '203.0.113.5' });
      assert.equal(a.requests.at(-1)!.headers['x-forwarded-for'], '203.0.113.5, 127.0.0.1');
    } finally {
      await gw.close();
      await a.close();
    }
  });
});

describe('upstream connection pools', () => {
  it('bound connections per host by max_idle_connections_per_host and reuse them (keep-alive)', async () => {
    let active = 0;
    let peak = 0;
    const sockets = new Set<unknown>();
    const a = await startBackend(async (req, res) => {
      sockets.add(req.socket);
      active++;
      peak = Math.max(peak, active);
      await new Promise((r) => setTimeout(r, 50));
      active--;
      json(res, { ok: true });
    });
    const gw = await startGateway({
      host: [a.url],
      max_idle_connections_per_host: 2,
      endpoints: [{ endpoint: '/x', backend: [{ url_pattern: '/x' }] }],
    });
    try {
      const results = await Promise.all(Array.from({ length: 10 }, () => get(gw.url, '/x')));
      assert.ok(results.every((r) => r.status === 200));
      assert.equal(peak, 2, 'never more than 2 requests in flight to the host');
      assert.equal(sockets.size, 2, 'the 10 requests shared 2 keep-alive connections');
    } finally {
      await gw.close();
      await a.close();
    }
  });
});
