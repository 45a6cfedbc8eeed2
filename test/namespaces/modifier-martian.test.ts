// modifier/martian: KrakenD's Martian modifiers change the backend call as it
// is sent and its answer before it is decoded, over HTTP with a real backend
// that echoes what it received.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { loadConfigText } from '../../src/config/load.ts';
import { json, startBackend, type Recorded, type TestBackend } from '../helpers/backend.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';
import { get, request } from '../helpers/http.ts';

const NS = 'modifier/martian';
const b64 = (s: string) => Buffer.from(s).toString('base64');
const set = (name: string, value: string, scope = ['request']) => ({ 'header.Modifier': { scope, name, value } });
/** Nothing listens there: a call that reaches a backend went where a modifier sent it. */
const NOWHERE = 'http://127.0.0.1:9';

type Options = { noop?: boolean; host?: string; method?: string; input_headers?: string[]; input_query_strings?: string[] };

function endpoint(path: string, martian: unknown, o: Options = {}): Record<string, unknown> {
  return {
    endpoint: path,
    method: o.method ?? 'GET',
    ...(o.noop ? { output_encoding: 'no-op' } : {}),
    ...(o.input_headers ? { input_headers: o.input_headers } : {}),
    ...(o.input_query_strings ? { input_query_strings: o.input_query_strings } : {}),
    backend: [{ url_pattern: path, ...(o.host ? { host: [o.host] } : {}), ...(o.noop ? { encoding: 'no-op' } : {}), extra_config: { [NS]: martian } }],
  };
}

function check(martian: unknown, where: 'backend' | 'endpoint' = 'backend') {
  const extra = { extra_config: { [NS]: martian } };
  const ep = { endpoint: '/x', ...(where === 'endpoint' ? extra : {}), backend: [{ host: ['http://a'], url_pattern: '/', ...(where === 'backend' ? extra : {}) }] };
  return loadConfigText(JSON.stringify({ version: 3, endpoints: [ep] }), 'c.json', { env: {} });
}
const AT = `$.endpoints[0].backend[0].extra_config["${NS}"]`;

describe('modifier/martian', () => {
  let be: TestBackend;
  let gw: TestGateway;
  const last = (): Recorded => be.requests.at(-1)!;
  /** Calls each path (with its headers) and checks what a filter set in `header` of the backend call. */
  const branches = async (header: string, cases: [path: string, expected: string, headers?: Record<string, string>][]) => {
    for (const [path, expected, headers] of cases) {
      await get(gw.url, path, headers);
      assert.equal(last().headers[header], expected, path);
    }
  };

  before(async () => {
    be = await startBackend((req, res) => {
      const u = new URL(req.url!, 'http://x');
      if (u.pathname === '/gzip') {
        const body = gzipSync('{"compressed":true}');
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': body.length });
        return void res.end(body);
      }
      if (u.pathname.startsWith('/fail')) return json(res, { failed: true }, 500, { 'x-backend': 'yes' });
      const extra: Record<string, string> = { 'x-backend': 'yes', 'x-drop': 'me' };
      if (u.searchParams.has('tag')) extra['x-tag'] = u.searchParams.get('tag')!;
      if (u.pathname.startsWith('/with-cookie')) extra['set-cookie'] = 'session=s1; Path=/';
      json(res, { path: u.pathname, query: u.search, body: req.body }, 200, extra);
    });
    const here = be.url.replace('http://', '');
    gw = await startGateway({
      host: [be.url],
      endpoints: [
        endpoint('/plain', { 'header.Modifier': { scope: ['request', 'response'], name: 'X-A', value: 'b' } }),
        endpoint('/untouched', set('X-Other', 'o')),
        endpoint('/set', { 'header.Modifier': { scope: ['request', 'response'], name: 'X-Some', value: 'gateway' } }, { noop: true, input_headers: ['X-Some'] }),
        endpoint('/append', { 'header.Append': { scope: ['request', 'response'], name: 'X-Some', value: 'appended' } }, { noop: true, input_headers: ['X-Some'] }),
        endpoint('/append-noop', { 'header.Modifier': { scope: ['response'], name: 'X-Backend', value: 'also', behavior: 'append' } }, { noop: true }),
        endpoint('/blacklist', { 'header.Blacklist': { scope: ['request', 'response'], names: ['X-Some', 'User-Agent', 'X-Drop'] } }, { noop: true, input_headers: ['X-Some', 'User-Agent'] }),
        endpoint('/copy', { 'header.Copy': { scope: ['request'], from: 'User-Agent', to: 'X-Browser' } }, { input_headers: ['User-Agent'] }),
        endpoint('/id', { 'header.Id': { scope: ['request'], header: 'X-Trace' } }, { input_headers: ['X-Trace'] }),
        endpoint('/header-filter', { 'header.Filter': { scope: ['request'], name: 'X-Tenant', value: 'v1', modifier: set('X-Legacy', 'true'), else: set('X-Legacy', 'false') } }, { input_headers: ['X-Tenant'] }),
        endpoint('/header-regex', {
          'header.RegexFilter': {
            scope: ['request'], header: 'X-App-Version', regex: '.*-(alpha|beta)$',
            modifier: { 'querystring.Modifier': { scope: ['request'], name: 'testing', value: '1' } },
            else: { 'querystring.Modifier': { scope: ['request'], name: 'testing', value: '0' } },
          },
        }, { input_headers: ['X-App-Version'] }),
        endpoint('/qs', { 'querystring.Modifier': { scope: ['request'], name: 'amount', value: '75' } }, { input_query_strings: ['currency', 'amount'] }),
        endpoint('/qs-filter', { 'querystring.Filter': { scope: ['request'], name: 'param', value: 'true', modifier: set('X-Param', 'yes'), else: set('X-Param', 'no') } }, { input_query_strings: ['param'] }),
        endpoint('/body', { 'body.Modifier': { scope: ['request'], body: b64('{"msg":"you rock!"}'), contentType: 'application/json' } }, { method: 'POST' }),
        endpoint('/body-get', { 'body.Modifier': { scope: ['request'], body: b64('q=1') } }),
        endpoint('/gzip', { 'body.Modifier': { scope: ['response'], body: b64('{"replaced":"by martian"}'), contentType: 'application/json' } }),
        endpoint('/body-noop', { 'body.Modifier': { scope: ['response'], body: b64('hello, client'), contentType: 'text/plain' } }, { noop: true }),
        endpoint('/url', { 'url.Modifier': { scope: ['request'], scheme: 'http', host: here, path: '/elsewhere', query: 'flag=true' } }, { host: NOWHERE }),
        endpoint('/url-filter', { 'url.Filter': { scope: ['request'], query: 'legacy=1&b=2', modifier: set('X-Legacy', 'true'), else: set('X-Legacy', 'false') } }, { input_query_strings: ['legacy', 'b'] }),
        endpoint('/url-regex', { 'url.RegexFilter': { scope: ['request'], regex: '.*/url-regex\\?v=2$', modifier: set('X-V2', 'true'), else: set('X-V2', 'false') } }, { input_query_strings: ['v'] }),
        endpoint('/cookie', {
          'cookie.Modifier': { scope: ['request', 'response'], name: 'AcceptCookies', value: 'yes', path: '/some/path', domain: 'example.com', expires: '2030-04-12T23:20:50.52Z', secure: true, maxAge: 86400 },
        }, { noop: true, input_headers: ['Cookie'] }),
        endpoint('/cookie-filter', {
          'cookie.Filter': { scope: ['request'], name: 'marketing', value: 'yes', modifier: set('X-Marketing', 'true'), else: set('X-Marketing', 'false') },
        }, { input_headers: ['Cookie'] }),
        endpoint('/with-cookie', {
          'cookie.Filter': { scope: ['response'], name: 'session', modifier: set('X-Session', 'seen', ['response']), else: set('X-Session', 'none', ['response']) },
        }, { noop: true }),
        endpoint('/stash', { 'stash.Modifier': { scope: ['request', 'response'], headerName: 'X-Stash' } }, { noop: true, input_query_strings: ['amount'] }),
        endpoint('/port', { 'port.Modifier': { scope: ['request'], port: be.port } }, { host: NOWHERE }),
        endpoint('/port-filter', {
          'port.Filter': { scope: ['request'], port: be.port, modifier: set('X-Port', 'backend'), else: set('X-Port', 'other') },
        }),
        endpoint('/fail-rescued', { 'status.Modifier': { scope: ['response'], statusCode: 200 } }),
        endpoint('/teapot', { 'status.Modifier': { scope: ['response'], statusCode: 418 } }, { noop: true }),
        endpoint('/fifo', {
          'fifo.Group': {
            scope: ['request', 'response'],
            aggregateErrors: true,
            modifiers: [
              { 'body.Modifier': { scope: ['request'], body: b64('{"from":"fifo"}'), contentType: 'application/json' } },
              set('X-Order', 'first', ['request', 'response']),
              set('X-Order', 'second', ['request', 'response']),
              { 'header.Append': { scope: ['request'], name: 'X-Trail', value: '1' } },
              { 'header.Append': { scope: ['request'], name: 'X-Trail', value: '2' } },
            ],
          },
        }, { noop: true, method: 'POST' }),
        endpoint('/fifo-request-only', { 'fifo.Group': { scope: ['request'], modifiers: [set('X-Both', 'yes', ['request', 'response'])] } }, { noop: true }),
        endpoint('/priority', {
          'priority.Group': {
            scope: ['request'],
            modifiers: [
              { priority: 0, modifier: set('X-Winner', 'priority-0') },
              { priority: 100, modifier: set('X-Winner', 'priority-100') },
              { priority: 5, modifier: set('X-Tie', 'declared-first') },
              { priority: 5, modifier: set('X-Tie', 'declared-second') },
            ],
          },
        }),
        endpoint('/verifier', { 'fifo.Group': { scope: ['request', 'response'], modifiers: [{ 'status.Verifier': { scope: ['response'], statusCode: 201 } }, set('X-Verified', 'no-op')] } }),
        { endpoint: '/none', backend: [{ url_pattern: '/none' }] },
      ],
    });
  });

  after(async () => {
    await gw.close();
    await be.close();
  });

  it('header.Modifier sets a request header; the response side changes nothing a JSON client sees', async () => {
    const r = await get(gw.url, '/plain');
    assert.equal(r.status, 200);
    assert.equal(last().headers['x-a'], 'b');
    assert.equal(r.headers['x-a'], undefined, 'backend headers do not reach the client of a decoded endpoint');
    await get(gw.url, '/untouched');
    assert.equal(last().headers['x-a'], undefined, "another backend's modifiers do not leak");
    await get(gw.url, '/none');
    assert.equal(last().headers['x-other'], undefined);
  });

  it('header.Modifier replaces the forwarded value (request) and sets a response header (no-op)', async () => {
    const r = await get(gw.url, '/set', { 'X-Some': 'client' });
    assert.equal(last().headers['x-some'], 'gateway');
    assert.equal(r.headers['x-some'], 'gateway');
    assert.equal(r.headers['x-backend'], 'yes');
  });

  it('header.Append adds a value to the request and to the response; behavior "append" too', async () => {
    const r = await get(gw.url, '/append', { 'X-Some': 'client' });
    assert.deepEqual(last().rawHeaders.filter((_, i, a) => i % 2 === 1 && a[i - 1].toLowerCase() === 'x-some'), ['client', 'appended']);
    assert.equal(r.headers['x-some'], 'appended');
    const a = await get(gw.url, '/append-noop');
    assert.equal(a.headers['x-backend'], 'yes, also');
  });

  it('header.Blacklist removes headers from the request and from the response', async () => {
    const r = await get(gw.url, '/blacklist', { 'X-Some': 'client', 'User-Agent': 'curl/8' });
    assert.equal(last().headers['x-some'], undefined);
    assert.equal(last().headers['user-agent'], undefined);
    assert.ok(last().headers['x-forwarded-for'], 'other headers are kept');
    assert.equal(r.headers['x-drop'], undefined);
    assert.equal(r.headers['x-backend'], 'yes');
  });

  it('header.Copy duplicates a header under another name', async () => {
    await get(gw.url, '/copy', { 'User-Agent': 'curl/8' });
    assert.equal(last().headers['x-browser'], 'curl/8');
    assert.equal(last().headers['user-agent'], 'curl/8');
  });

  it('header.Id sets a UUID unless the request has one', async () => {
    await get(gw.url, '/id');
    assert.match(String(last().headers['x-trace']), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    await get(gw.url, '/id', { 'X-Trace': 'mine' });
    assert.equal(last().headers['x-trace'], 'mine');
  });

  it('header.Filter runs "modifier" when the header has the value, "else" otherwise', async () => {
    await branches('x-legacy', [
      ['/header-filter', 'true', { 'X-Tenant': 'v1' }],
      ['/header-filter', 'false', { 'X-Tenant': 'v2' }],
      ['/header-filter', 'false'],
    ]);
  });

  it('header.RegexFilter matches the header value against an RE2 pattern', async () => {
    await get(gw.url, '/header-regex', { 'X-App-Version': 'v1.2.3-beta' });
    assert.equal(last().url, '/header-regex?testing=1');
    await get(gw.url, '/header-regex', { 'X-App-Version': 'v1.2.3' });
    assert.equal(last().url, '/header-regex?testing=0');
  });

  it('querystring.Modifier sets a parameter whatever the client sent; the query is re-encoded sorted, as Go does', async () => {
    const r = await get(gw.url, '/qs?currency=EUR&amount=55');
    assert.equal(r.status, 200);
    assert.equal(last().url, '/qs?amount=75&currency=EUR');
    await get(gw.url, '/qs');
    assert.equal(last().url, '/qs?amount=75');
  });

  it('querystring.Filter runs "modifier" or "else" on a query parameter', async () => {
    await branches('x-param', [
      ['/qs-filter?param=true', 'yes'],
      ['/qs-filter?param=false', 'no'],
    ]);
  });

  it('body.Modifier (request) replaces what the backend receives, with its content type', async () => {
    const r = await request(gw.url, '/body', { method: 'POST', body: 'original', headers: { 'content-type': 'text/plain' } });
    assert.equal(r.status, 200);
    assert.equal(last().body, '{"msg":"you rock!"}');
    assert.equal(last().headers['content-type'], 'application/json');
    assert.equal(last().headers['content-length'], '19');
    assert.deepEqual(r.json().body, '{"msg":"you rock!"}');
    // A GET gets the body too (as Go's client sends it); without a contentType there is no Content-Type.
    await get(gw.url, '/body-get', { 'content-type': 'text/plain' });
    assert.equal(last().method, 'GET');
    assert.equal(last().body, 'q=1');
    assert.equal(last().headers['content-type'], undefined);
  });

  it('body.Modifier (response) acts before decoding: the gateway decodes the new body, even of a gzip answer', async () => {
    const r = await get(gw.url, '/gzip');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { replaced: 'by martian' });
  });

  it('body.Modifier (response) on no-op: the client gets the new body and its length', async () => {
    const r = await get(gw.url, '/body-noop');
    assert.equal(r.status, 200);
    assert.equal(r.body, 'hello, client');
    assert.equal(r.headers['content-type'], 'text/plain');
    assert.equal(r.headers['content-length'], '13');
  });

  it('url.Modifier sends the call elsewhere (scheme, host, path, query); the Host header stays the backend\'s', async () => {
    const r = await get(gw.url, '/url?dropped=1');
    assert.equal(r.status, 200);
    assert.equal(last().url, '/elsewhere?flag=true');
    assert.equal(last().headers.host, '127.0.0.1:9');
  });

  it('url.Filter compares the query (in any order) and runs "modifier" or "else"', async () => {
    await branches('x-legacy', [
      ['/url-filter?b=2&legacy=1', 'true'],
      ['/url-filter?legacy=1', 'false'],
      ['/url-filter?legacy=0&b=2', 'false'],
    ]);
  });

  it('url.RegexFilter matches the whole URL', async () => {
    await branches('x-v2', [
      ['/url-regex?v=2', 'true'],
      ['/url-regex?v=1', 'false'],
    ]);
  });

  it('cookie.Modifier adds a cookie to the request and a Set-Cookie to the response', async () => {
    const r = await get(gw.url, '/cookie', { Cookie: 'a=1' });
    assert.equal(last().headers.cookie, 'a=1; AcceptCookies=yes');
    assert.equal(r.headers['set-cookie']?.[0], 'AcceptCookies=yes; Path=/some/path; Domain=example.com; Expires=Fri, 12 Apr 2030 23:20:50 GMT; Max-Age=86400; Secure');
  });

  it('cookie.Filter checks request cookies, and Set-Cookie on the response', async () => {
    await branches('x-marketing', [
      ['/cookie-filter', 'true', { Cookie: 'a=1; marketing=yes' }],
      ['/cookie-filter', 'false', { Cookie: 'marketing=no' }],
    ]);
    const r = await get(gw.url, '/with-cookie');
    assert.equal(r.headers['x-session'], 'seen');
  });

  it('stash.Modifier puts the URL sent in a header, of the request and the response', async () => {
    const r = await get(gw.url, '/stash?amount=1');
    assert.equal(last().headers['x-stash'], `${be.url}/stash?amount=1`);
    assert.equal(r.headers['x-stash'], `${be.url}/stash?amount=1`);
  });

  it('port.Modifier changes the port called; port.Filter runs on the port', async () => {
    const r = await get(gw.url, '/port');
    assert.equal(r.status, 200);
    assert.equal(last().url, '/port');
    assert.equal(last().headers.host, '127.0.0.1:9', "Go sends the Request's Host, which the port change leaves");
    await get(gw.url, '/port-filter');
    assert.equal(last().headers['x-port'], 'backend');
  });

  it('status.Modifier acts before the status check (a 500 read as 200) and on no-op answers', async () => {
    const r = await get(gw.url, '/fail-rescued');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { failed: true });
    const t = await get(gw.url, '/teapot');
    assert.equal(t.status, 418);
    assert.equal(t.json().path, '/teapot');
  });

  it('fifo.Group runs its modifiers in order, each in its own scopes', async () => {
    const r = await request(gw.url, '/fifo', { method: 'POST', body: 'x' });
    assert.equal(last().body, '{"from":"fifo"}');
    assert.equal(last().headers['x-order'], 'second');
    assert.equal(last().headers['x-trail'], '1, 2');
    assert.equal(r.headers['x-order'], 'second');
  });

  it("a group's scope bounds its children's", async () => {
    const r = await get(gw.url, '/fifo-request-only');
    assert.equal(last().headers['x-both'], 'yes');
    assert.equal(r.headers['x-both'], undefined);
  });

  it('priority.Group runs the highest priority first (the lowest has the last word); on a tie, the later one first', async () => {
    await get(gw.url, '/priority');
    assert.equal(last().headers['x-winner'], 'priority-0');
    assert.equal(last().headers['x-tie'], 'declared-first');
  });

  it('a verifier is accepted and does nothing', async () => {
    const r = await get(gw.url, '/verifier');
    assert.equal(r.status, 200);
    assert.equal(last().headers['x-verified'], 'no-op');
  });

  it('check: an unknown modifier is an error at its key, with a hint', () => {
    let r = check({ 'header.Modifer': { scope: ['request'], name: 'X', value: 'y' } });
    assert.equal(r.config, undefined);
    const e = r.errors.find((x) => x.path === `${AT}["header.Modifer"]`)!;
    assert.match(e.found, /unknown modifier "header\.Modifer" \(did you mean "header\.Modifier"\?\)/);
    r = check({ 'fifo.Group': { scope: ['request'], modifiers: [set('X-A', 'b'), { 'skip.RoundTrip': { scope: ['request'] } }] } });
    assert.ok(r.errors.some((x) => x.path === `${AT}["fifo.Group"].modifiers[1]["skip.RoundTrip"]`), JSON.stringify(r.errors));
  });

  it('check: CR/LF in a header value, a framing header, a bad scope, base64 or regex are errors with their path', () => {
    const paths = (m: unknown) => check(m).errors.map((e) => e.path);
    assert.deepEqual(paths(set('X-A', 'b\r\nX-Injected: 1')), [`${AT}["header.Modifier"].value`]);
    assert.deepEqual(paths({ 'header.Append': { scope: ['response'], name: 'X-A', value: 'b\nc' } }), [`${AT}["header.Append"].value`]);
    assert.deepEqual(paths(set('Bad Name', 'v')), [`${AT}["header.Modifier"].name`]);
    assert.deepEqual(paths(set('Content-Length', '5')), [`${AT}["header.Modifier"].name`]);
    assert.deepEqual(paths({ 'querystring.Modifier': { scope: ['response'], name: 'a', value: '1' } }), [`${AT}["querystring.Modifier"].scope[0]`]);
    assert.deepEqual(paths({ 'body.Modifier': { scope: ['request'], body: 'not base64!' } }), [`${AT}["body.Modifier"].body`]);
    assert.deepEqual(paths({ 'url.RegexFilter': { scope: ['request'], regex: '(?<=a)b', modifier: set('X', 'y') } }), [`${AT}["url.RegexFilter"].regex`]);
    assert.deepEqual(paths({ 'header.Filter': { scope: ['request'], name: 'X', modifier: set('X-A', 'b\r\n') } }), [`${AT}["header.Filter"].modifier["header.Modifier"].value`]);
    assert.deepEqual(paths({ 'header.Filter': { scope: ['request'], name: 'X' } }), [`${AT}["header.Filter"].modifier`]);
    assert.deepEqual(paths({ 'port.Modifier': { scope: ['request'], port: 80, remove: true } }), [`${AT}["port.Modifier"]`]);
    assert.deepEqual(paths({ 'url.Modifier': { scope: ['request'], host: 'a b' } }), [`${AT}["url.Modifier"].host`]);
    assert.deepEqual(paths({ 'cookie.Modifier': { scope: ['response'], name: 'c', value: 'a;b' } }), [`${AT}["cookie.Modifier"].value`]);
  });

  it('check: one modifier per object; endpoint level is refused; a verifier is a warning', () => {
    let r = check({ ...set('X-A', 'b'), ...{ 'header.Blacklist': { scope: ['request'], names: ['X'] } } });
    assert.deepEqual(r.errors.map((e) => e.path), [AT]);
    assert.match(r.errors[0].expected, /exactly one Martian modifier/);
    r = check(set('X-A', 'b'), 'endpoint');
    assert.equal(r.config, undefined);
    assert.match(r.errors.find((e) => e.path === `$.endpoints[0].extra_config["${NS}"]`)!.found, /belongs at backend level/);
    r = check({ 'status.Verifier': { scope: ['response'], statusCode: 200 } });
    assert.deepEqual(r.errors, []);
    assert.ok(r.warnings.some((w) => w.path === `${AT}["status.Verifier"]` && /verifier/.test(w.found)));
    r = check({ 'header.Modifier': { name: 'X-A', value: 'b', '@comment': 'no scope: every scope the modifier has' } });
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.config!.endpoints[0].backends[0].martian!.scope, { request: true, response: true });
  });
});
