// `security/cors`: config checks, then real HTTP through the gateway: preflights
// answered at the edge (also for paths with no route), actual requests, the
// headers on every answer (404, 401 from a policy, 500, no-op streams), the
// rs/cors rules for credentials, origins, methods and headers, and hostile input.

import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { Namespace, NamespaceUse } from '../../src/namespaces/namespace.ts';
import { namespaceNamed } from '../../src/namespaces/registry.ts';
import { securityCors, type CorsOptions } from '../../src/namespaces/security-cors.ts';
import { compilePlan } from '../../src/plan/compile.ts';
import { PolicyError } from '../../src/proxy/errors.ts';
import { Gateway } from '../../src/server/server.ts';
import { errorAt, load, service } from '../config/support.ts';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { loadTestConfig, startGateway, type TestGateway } from '../helpers/gateway.ts';
import { raw, request, type TestResponse } from '../helpers/http.ts';
import { logsDuring } from '../helpers/log-lines.ts';

const NS = '$.extra_config["security/cors"]';
const APP = 'https://app.example.com';
const PREFLIGHT_VARY = 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers';
const CORS_HEADERS = [
  'access-control-allow-origin',
  'access-control-allow-methods',
  'access-control-allow-headers',
  'access-control-allow-credentials',
  'access-control-allow-private-network',
  'access-control-max-age',
  'access-control-expose-headers',
];

function corsOptions(cors: unknown): CorsOptions {
  const cfg = loadTestConfig({ extra_config: { 'security/cors': cors }, endpoints: [{ endpoint: '/x', backend: [{ host: ['http://127.0.0.1:9'], url_pattern: '/' }] }] });
  const use = cfg.namespaces.find((u) => u.name === 'security/cors');
  assert.ok(use, 'the namespace is parsed');
  return use.options as CorsOptions;
}

function warningsOf(cors: unknown) {
  const r = load(service({ extra_config: { 'security/cors': cors } }));
  assert.deepEqual(r.errors, []);
  return r.warnings;
}

/** The CORS headers of an answer, by lower-case name (absent ones left out), plus vary. */
function corsOf(r: TestResponse): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of [...CORS_HEADERS, 'vary']) {
    const v = r.headers[h];
    if (v !== undefined) out[h] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

function preflight(base: string, path: string, headers: Record<string, string>): Promise<TestResponse> {
  return request(base, path, { method: 'OPTIONS', headers });
}

describe('security/cors configuration', () => {
  it('defaults as krakend-cors applies them: every origin and header, GET/POST/HEAD, 204, no max-age; plain data', () => {
    const cfg = loadTestConfig({ extra_config: { 'security/cors': {} }, endpoints: [{ endpoint: '/x', backend: [{ host: ['http://127.0.0.1:9'], url_pattern: '/' }] }] });
    assert.deepEqual(cfg.namespaces.find((u) => u.name === 'security/cors')?.options, {
      anyOrigin: true,
      origins: [],
      originPatterns: [],
      methods: ['GET', 'POST', 'HEAD'],
      anyHeader: true,
      headers: [],
      expose: '',
      credentials: false,
      maxAge: '',
      passthrough: false,
      successStatus: 204,
      privateNetwork: false,
      debug: false,
    });
    assert.deepEqual(structuredClone(cfg.namespaces), cfg.namespaces);
  });

  it('normalizes lists once: origins lower-cased and split at the wildcard, headers lower-cased, exposed headers in Go canonical form', () => {
    const o = corsOptions({
      allow_origins: ['https://App.Example.com', 'https://*.Example.org', 'https://app.example.com'],
      allow_methods: ['GET', 'PUT'],
      allow_headers: ['X-Token', 'content-type'],
      expose_headers: ['x-request-id', 'CONTENT-LENGTH'],
    });
    assert.equal(o.anyOrigin, false);
    assert.deepEqual(o.origins, ['https://app.example.com']);
    assert.deepEqual(o.originPatterns, [['https://', '.example.org']]);
    assert.deepEqual(o.methods, ['GET', 'PUT']);
    assert.equal(o.anyHeader, false);
    assert.deepEqual(o.headers, ['x-token', 'content-type']);
    assert.equal(o.expose, 'X-Request-Id, Content-Length');
    assert.equal(corsOptions({ allow_origins: ['https://a.example', '*'] }).anyOrigin, true, '"*" anywhere turns the list into every origin');
    assert.equal(corsOptions({ allow_headers: ['X-A', '*'] }).anyHeader, true);
  });

  it('max_age is a Go duration truncated to whole seconds; zero sends none, a negative one sends 0', () => {
    assert.equal(corsOptions({ max_age: '12h' }).maxAge, '43200');
    assert.equal(corsOptions({ max_age: '1m30s' }).maxAge, '90');
    assert.equal(corsOptions({ max_age: '1.9s' }).maxAge, '1');
    assert.equal(corsOptions({ max_age: '500ms' }).maxAge, '');
    assert.equal(corsOptions({ max_age: '0' }).maxAge, '');
    assert.equal(corsOptions({ max_age: '-1s' }).maxAge, '0');
  });

  it('reports every bad field with its path', () => {
    errorAt(service({ extra_config: { 'security/cors': ['*'] } }), NS);
    errorAt(service({ extra_config: { 'security/cors': { allow_origins: 'https://a.example' } } }), `${NS}.allow_origins`);
    errorAt(service({ extra_config: { 'security/cors': { allow_origins: ['https://a.example', 7] } } }), `${NS}.allow_origins[1]`);
    errorAt(service({ extra_config: { 'security/cors': { allow_methods: [true] } } }), `${NS}.allow_methods[0]`);
    errorAt(service({ extra_config: { 'security/cors': { allow_headers: 'X-A' } } }), `${NS}.allow_headers`);
    errorAt(service({ extra_config: { 'security/cors': { expose_headers: {} } } }), `${NS}.expose_headers`);
    errorAt(service({ extra_config: { 'security/cors': { allow_credentials: 'true' } } }), `${NS}.allow_credentials`);
    errorAt(service({ extra_config: { 'security/cors': { options_passthrough: 1 } } }), `${NS}.options_passthrough`);
    errorAt(service({ extra_config: { 'security/cors': { allow_private_network: 'yes' } } }), `${NS}.allow_private_network`);
    errorAt(service({ extra_config: { 'security/cors': { debug: 'on' } } }), `${NS}.debug`);
    const age = errorAt(service({ extra_config: { 'security/cors': { max_age: '12 hours' } } }), `${NS}.max_age`);
    assert.match(age.expected, /Go duration/);
    assert.match(age.found, /"12 hours"/);
    errorAt(service({ extra_config: { 'security/cors': { max_age: 3600 } } }), `${NS}.max_age`);
    errorAt(service({ extra_config: { 'security/cors': { max_age: '-+1s' } } }), `${NS}.max_age`);
    errorAt(service({ extra_config: { 'security/cors': { max_age: '3000000h' } } }), `${NS}.max_age`);
    const status = errorAt(service({ extra_config: { 'security/cors': { options_success_status: 99 } } }), `${NS}.options_success_status`);
    assert.match(status.expected, /200 to 599/);
    errorAt(service({ extra_config: { 'security/cors': { options_success_status: 700 } } }), `${NS}.options_success_status`);
    errorAt(service({ extra_config: { 'security/cors': { options_success_status: '200' } } }), `${NS}.options_success_status`);
    assert.equal(corsOptions({ options_success_status: 0 }).successStatus, 204, '0 is the default, as in rs/cors');
    assert.equal(corsOptions({ options_success_status: 200 }).successStatus, 200);
  });

  it('is refused at endpoint level: KrakenD documents it at service level only', () => {
    const e = errorAt(service({ endpoints: [{ endpoint: '/e', backend: [{ url_pattern: '/b' }], extra_config: { 'security/cors': {} } }] }), '$.endpoints[0].extra_config["security/cors"]');
    assert.match(e.found, /service level/);
  });

  it('unknown keys are warnings with a did-you-mean', () => {
    const w = warningsOf({ allow_origin: ['*'] });
    assert.equal(w.length, 1);
    assert.equal(w[0]!.path, `${NS}.allow_origin`);
    assert.match(w[0]!.expected, /did you mean "allow_origins"/);
  });

  it('warns, without refusing, about configurations that are dangerous or never match', () => {
    const star = warningsOf({ allow_origins: ['*'], allow_credentials: true });
    assert.equal(star.length, 1);
    assert.equal(star[0]!.path, `${NS}.allow_credentials`);
    assert.match(star[0]!.found, /Access-Control-Allow-Origin: \*/);
    assert.equal(warningsOf({ allow_credentials: true }).length, 1, 'an empty origin list is every origin too');

    const sibling = warningsOf({ allow_origins: ['https://*example.com'] });
    assert.equal(sibling[0]!.path, `${NS}.allow_origins[0]`);
    assert.match(sibling[0]!.found, /https:\/\/evilexample\.com/);
    const open = warningsOf({ allow_origins: ['https://*'], allow_credentials: true });
    assert.equal(open.length, 1);
    assert.match(open[0]!.found, /credentialed/);
    assert.equal(warningsOf({ allow_origins: ['https://app.*'] }).length, 1, 'a wildcard at the end lets in any domain');
    assert.deepEqual(warningsOf({ allow_origins: ['https://*.example.com', 'http://localhost:*'], allow_credentials: true }), [], 'subdomain and port wildcards are fine');
    assert.equal(warningsOf({ allow_origins: ['https://*.*.example.com'] })[0]!.path, `${NS}.allow_origins[0]`, 'only one * is a wildcard');

    const nul = warningsOf({ allow_origins: ['null'] });
    assert.match(nul[0]!.found, /sandboxed/);
    const slash = warningsOf({ allow_origins: ['https://app.example.com/'] });
    assert.match(slash[0]!.expected, /did you mean "https:\/\/app\.example\.com"/);
    assert.equal(warningsOf({ allow_origins: ['app.example.com'] }).length, 1, 'no scheme: never an Origin');
    const lower = warningsOf({ allow_methods: ['GET', 'put'] });
    assert.equal(lower[0]!.path, `${NS}.allow_methods[1]`);
    assert.match(lower[0]!.expected, /"PUT"/);
    assert.equal(warningsOf({ allow_headers: ['X Token'] }).length, 1);
  });
});

describe('security/cors over HTTP', () => {
  let be: TestBackend;
  const gateways: TestGateway[] = [];

  const cors = async (options: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<TestGateway> => {
    const gw = await startGateway({
      host: [be.url],
      extra_config: { 'security/cors': options, ...extra },
      endpoints: [
        { endpoint: '/ok', method: 'GET', backend: [{ url_pattern: '/ok' }] },
        { endpoint: '/ok', method: 'PUT', backend: [{ url_pattern: '/ok' }] },
        { endpoint: '/del', method: 'DELETE', backend: [{ url_pattern: '/ok' }] },
        { endpoint: '/fail', backend: [{ url_pattern: '/fail' }] },
        { endpoint: '/noop', output_encoding: 'no-op', backend: [{ url_pattern: '/noop', encoding: 'no-op' }] },
      ],
    });
    gateways.push(gw);
    return gw;
  };

  let strict: TestGateway; // an allow-list, credentials, exposed headers, max-age
  let open: TestGateway; // every origin, every header

  before(async () => {
    be = await startBackend((req, res) => {
      if (req.url === '/fail') return json(res, { boom: true }, 500);
      if (req.url === '/noop') {
        res.writeHead(200, { 'content-type': 'text/plain', 'access-control-allow-origin': 'https://backend.example', vary: 'Accept-Encoding', 'x-backend': 'kept' });
        return void res.end('streamed');
      }
      json(res, { ok: true });
    });
    strict = await cors({
      allow_origins: [APP, 'https://*.example.org'],
      allow_methods: ['GET', 'PUT'],
      allow_headers: ['Content-Type', 'X-Token'],
      expose_headers: ['x-request-id', 'Content-Length'],
      allow_credentials: true,
      max_age: '12h',
    });
    open = await cors({});
  });
  after(async () => {
    for (const gw of gateways) await gw.close();
    await be.close();
  });

  describe('preflight', () => {
    it('an allowed preflight is answered at the edge: 204, empty body, the allow headers, no backend call', async () => {
      const calls = be.requests.length;
      const r = await preflight(strict.url, '/ok', { origin: APP, 'access-control-request-method': 'PUT', 'access-control-request-headers': 'content-type,x-token' });
      assert.equal(r.status, 204);
      assert.equal(r.body, '');
      assert.deepEqual(corsOf(r), {
        vary: PREFLIGHT_VARY,
        'access-control-allow-origin': APP,
        'access-control-allow-methods': 'PUT',
        'access-control-allow-headers': 'content-type,x-token',
        'access-control-allow-credentials': 'true',
        'access-control-max-age': '43200',
      });
      assert.equal(be.requests.length, calls, 'the backend never sees a preflight');
    });

    it('a preflight to a path with no route is still answered (KrakenD runs CORS before the router)', async () => {
      const r = await preflight(strict.url, '/no/such/route', { origin: APP, 'access-control-request-method': 'GET' });
      assert.equal(r.status, 204);
      assert.equal(r.headers['access-control-allow-origin'], APP);
      assert.equal(r.headers['access-control-allow-methods'], 'GET');
      assert.equal(r.headers['access-control-allow-headers'], undefined, 'no headers requested, none allowed');
    });

    it('a preflight for a method not allowed: 204 with Vary only', async () => {
      const r = await preflight(strict.url, '/del', { origin: APP, 'access-control-request-method': 'DELETE' });
      assert.equal(r.status, 204);
      assert.deepEqual(corsOf(r), { vary: PREFLIGHT_VARY });
      const lower = await preflight(strict.url, '/ok', { origin: APP, 'access-control-request-method': 'put' });
      assert.deepEqual(corsOf(lower), { vary: PREFLIGHT_VARY }, 'methods are case-sensitive');
      const options = await preflight(strict.url, '/ok', { origin: APP, 'access-control-request-method': 'OPTIONS' });
      assert.equal(options.headers['access-control-allow-methods'], 'OPTIONS', 'OPTIONS is always allowed');
    });

    it('a preflight for a header not allowed: 204 with Vary only; names match case-insensitively, in any order', async () => {
      const bad = await preflight(strict.url, '/ok', { origin: APP, 'access-control-request-method': 'GET', 'access-control-request-headers': 'x-token,x-admin' });
      assert.equal(bad.status, 204);
      assert.deepEqual(corsOf(bad), { vary: PREFLIGHT_VARY });
      const mixed = await preflight(strict.url, '/ok', { origin: APP, 'access-control-request-method': 'GET', 'access-control-request-headers': 'X-Token, Content-Type' });
      assert.equal(mixed.headers['access-control-allow-headers'], 'X-Token, Content-Type', 'the requested list is echoed as sent');
      const origin = await preflight(strict.url, '/ok', { origin: APP, 'access-control-request-method': 'GET', 'access-control-request-headers': 'origin' });
      assert.equal(origin.headers['access-control-allow-origin'], undefined, 'Origin is not appended to allow_headers (rs/cors 1.11)');
      const empty = await preflight(strict.url, '/ok', { origin: APP, 'access-control-request-method': 'GET', 'access-control-request-headers': '' });
      assert.equal(empty.headers['access-control-allow-origin'], APP);
      assert.equal(empty.headers['access-control-allow-headers'], undefined);
    });

    it('without allow_headers every requested header is allowed and echoed; default methods are GET, POST and HEAD', async () => {
      const r = await preflight(open.url, '/ok', { origin: 'https://anyone.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-anything,authorization' });
      assert.equal(r.headers['access-control-allow-origin'], '*');
      assert.equal(r.headers['access-control-allow-headers'], 'x-anything,authorization');
      assert.equal(r.headers['access-control-allow-credentials'], undefined);
      assert.equal(r.headers['access-control-max-age'], undefined, 'no max_age, no header');
      const put = await preflight(open.url, '/ok', { origin: 'https://anyone.example', 'access-control-request-method': 'PUT' });
      assert.deepEqual(corsOf(put), { vary: PREFLIGHT_VARY });
    });

    it('a preflight without Origin, or from an origin not allowed: 204 with Vary only', async () => {
      const none = await preflight(strict.url, '/ok', { 'access-control-request-method': 'GET' });
      assert.equal(none.status, 204);
      assert.deepEqual(corsOf(none), { vary: PREFLIGHT_VARY });
      const other = await preflight(strict.url, '/ok', { origin: 'https://evil.example', 'access-control-request-method': 'GET' });
      assert.equal(other.status, 204);
      assert.deepEqual(corsOf(other), { vary: PREFLIGHT_VARY });
    });

    it('OPTIONS without Access-Control-Request-Method is an actual request: routed, with the actual-request headers', async () => {
      const r = await request(strict.url, '/ok', { method: 'OPTIONS', headers: { origin: APP } });
      assert.equal(r.status, 405, 'routing answered it');
      assert.equal(r.headers['access-control-allow-origin'], APP);
      assert.equal(r.headers.vary, 'Origin');
    });

    it('options_success_status sets the preflight status', async () => {
      const gw = await cors({ options_success_status: 200 });
      const r = await preflight(gw.url, '/ok', { origin: APP, 'access-control-request-method': 'GET' });
      assert.equal(r.status, 200);
      assert.equal(r.headers['access-control-allow-origin'], '*');
    });

    it('options_passthrough: the headers are set and the request is routed (here to auto_options)', async () => {
      const gw = await cors({ allow_origins: [APP], allow_methods: ['GET', 'PUT'], options_passthrough: true }, { router: { auto_options: true } });
      const r = await preflight(gw.url, '/ok', { origin: APP, 'access-control-request-method': 'PUT' });
      assert.equal(r.status, 200, 'auto_options answered');
      assert.match(String(r.headers.allow), /PUT/);
      assert.equal(r.headers['access-control-allow-origin'], APP);
      assert.equal(r.headers['access-control-allow-methods'], 'PUT');
      assert.equal(r.headers.vary, PREFLIGHT_VARY);
      const missing = await preflight(gw.url, '/nothing', { origin: APP, 'access-control-request-method': 'GET' });
      assert.equal(missing.status, 404, 'no route: the router says so');
      assert.equal(missing.headers['access-control-allow-origin'], APP);
    });

    it('allow_private_network answers Access-Control-Request-Private-Network and varies on it', async () => {
      const gw = await cors({ allow_private_network: true });
      const r = await preflight(gw.url, '/ok', { origin: APP, 'access-control-request-method': 'GET', 'access-control-request-private-network': 'true' });
      assert.equal(r.headers['access-control-allow-private-network'], 'true');
      assert.equal(r.headers.vary, `${PREFLIGHT_VARY}, Access-Control-Request-Private-Network`);
      const notAsked = await preflight(gw.url, '/ok', { origin: APP, 'access-control-request-method': 'GET' });
      assert.equal(notAsked.headers['access-control-allow-private-network'], undefined);
      const off = await preflight(open.url, '/ok', { origin: APP, 'access-control-request-method': 'GET', 'access-control-request-private-network': 'true' });
      assert.equal(off.headers['access-control-allow-private-network'], undefined, 'off by default');
      assert.equal(off.headers.vary, PREFLIGHT_VARY);
    });
  });

  describe('actual requests', () => {
    it('an allowed origin gets Allow-Origin (echoed), Vary, Expose-Headers and Allow-Credentials', async () => {
      const r = await request(strict.url, '/ok', { headers: { origin: APP } });
      assert.equal(r.status, 200);
      assert.deepEqual(r.json(), { ok: true });
      assert.deepEqual(corsOf(r), {
        vary: 'Origin',
        'access-control-allow-origin': APP,
        'access-control-expose-headers': 'X-Request-Id, Content-Length',
        'access-control-allow-credentials': 'true',
      });
    });

    it('an origin not allowed goes on without CORS headers, but with Vary: Origin', async () => {
      const r = await request(strict.url, '/ok', { headers: { origin: 'https://evil.example' } });
      assert.equal(r.status, 200, 'CORS is enforced by the browser, not by refusing');
      assert.deepEqual(corsOf(r), { vary: 'Origin' });
      const none = await request(strict.url, '/ok');
      assert.deepEqual(corsOf(none), { vary: 'Origin' }, 'no Origin: Vary only');
    });

    it('a method outside allow_methods gets no CORS headers', async () => {
      const r = await request(strict.url, '/del', { method: 'DELETE', headers: { origin: APP } });
      assert.equal(r.status, 200);
      assert.deepEqual(corsOf(r), { vary: 'Origin' });
    });

    it('every origin: Access-Control-Allow-Origin: *', async () => {
      const r = await request(open.url, '/ok', { headers: { origin: 'https://anyone.example' } });
      assert.deepEqual(corsOf(r), { vary: 'Origin', 'access-control-allow-origin': '*' });
    });

    it('a 404 and a 500 carry the headers', async () => {
      const missing = await request(strict.url, '/no/such/route', { headers: { origin: APP } });
      assert.equal(missing.status, 404);
      assert.equal(missing.headers['access-control-allow-origin'], APP);
      assert.equal(missing.headers['access-control-allow-credentials'], 'true');
      assert.equal(missing.headers.vary, 'Origin');
      const failed = await request(strict.url, '/fail', { headers: { origin: APP } });
      assert.equal(failed.status, 500);
      assert.equal(failed.headers['access-control-allow-origin'], APP);
      assert.equal(failed.headers.vary, 'Origin');
    });

    it("a no-op backend's own Access-Control-Allow-Origin neither duplicates nor overrides the gateway's; Vary keeps both", async () => {
      const text = await raw(strict.port, `GET /noop HTTP/1.1\r\nHost: x\r\nOrigin: ${APP}\r\nConnection: close\r\n\r\n`);
      const lines = text.split('\r\n');
      const acao = lines.filter((l) => l.toLowerCase().startsWith('access-control-allow-origin:'));
      assert.deepEqual(acao, [`Access-Control-Allow-Origin: ${APP}`]);
      const vary = lines.filter((l) => l.toLowerCase().startsWith('vary:')).map((l) => l.slice(5).trim());
      assert.deepEqual(vary.sort(), ['Accept-Encoding', 'Origin']);
      assert.ok(lines.includes('x-backend: kept'), 'the rest of the backend headers pass');
      assert.ok(text.includes('streamed'));
    });

    it("a no-op backend's Access-Control-Allow-Origin passes when the gateway set none (origin not allowed)", async () => {
      const r = await request(strict.url, '/noop', { headers: { origin: 'https://evil.example' } });
      assert.equal(r.headers['access-control-allow-origin'], 'https://backend.example');
    });
  });

  describe('credentials', () => {
    it('with "*" the answer stays "*" (plus Allow-Credentials: true): rs/cors never reflects an arbitrary origin', async () => {
      const gw = await cors({ allow_origins: ['*'], allow_credentials: true });
      const r = await request(gw.url, '/ok', { headers: { origin: 'https://evil.example', cookie: 'session=1' } });
      assert.equal(r.headers['access-control-allow-origin'], '*');
      assert.equal(r.headers['access-control-allow-credentials'], 'true');
      const pre = await preflight(gw.url, '/ok', { origin: 'https://evil.example', 'access-control-request-method': 'GET' });
      assert.equal(pre.headers['access-control-allow-origin'], '*');
      assert.equal(pre.headers['access-control-allow-credentials'], 'true');
    });

    it('with a wildcard pattern the matching origin is echoed, with credentials', async () => {
      const r = await request(strict.url, '/ok', { headers: { origin: 'https://shop.example.org' } });
      assert.equal(r.headers['access-control-allow-origin'], 'https://shop.example.org');
      assert.equal(r.headers['access-control-allow-credentials'], 'true');
    });
  });

  describe('hostile input', () => {
    const acao = async (gw: TestGateway, origin: string) => (await request(gw.url, '/ok', { headers: { origin } })).headers['access-control-allow-origin'];

    it('Origin: null is an origin like any other: not in a list, "*" with every origin', async () => {
      assert.equal(await acao(strict, 'null'), undefined);
      assert.equal(await acao(open, 'null'), '*');
      const pre = await preflight(strict.url, '/ok', { origin: 'null', 'access-control-request-method': 'GET' });
      assert.deepEqual(corsOf(pre), { vary: PREFLIGHT_VARY });
    });

    it('an origin differing only in case matches (rs/cors lower-cases) and is echoed as sent; a trailing slash or a port does not', async () => {
      assert.equal(await acao(strict, 'HTTPS://APP.EXAMPLE.COM'), 'HTTPS://APP.EXAMPLE.COM');
      assert.equal(await acao(strict, `${APP}/`), undefined);
      assert.equal(await acao(strict, `${APP}:443`), undefined);
      assert.equal(await acao(strict, `${APP}:8443`), undefined);
      assert.equal(await acao(strict, 'http://app.example.com'), undefined, 'another scheme is another origin');
    });

    it('a wildcard covers subdomains only: not a sibling domain, not the bare domain with another scheme', async () => {
      assert.equal(await acao(strict, 'https://a.b.example.org'), 'https://a.b.example.org');
      assert.equal(await acao(strict, 'https://evil-example.org'), undefined);
      assert.equal(await acao(strict, 'https://example.org'), undefined);
      assert.equal(await acao(strict, 'https://evil.example.org.attacker.net'), undefined);
      assert.equal(await acao(strict, 'http://shop.example.org'), undefined);
      assert.equal(await acao(strict, 'https://evil.net, https://shop.example.org'), undefined, 'two joined Origin values match nothing');
    });

    it('a 10 KB Access-Control-Request-Headers is refused without trouble; an allow-all config echoes it', async () => {
      const long = 'x'.repeat(10_000);
      const one = await preflight(strict.url, '/ok', { origin: APP, 'access-control-request-method': 'GET', 'access-control-request-headers': long });
      assert.equal(one.status, 204);
      assert.deepEqual(corsOf(one), { vary: PREFLIGHT_VARY });
      const repeated = Array.from({ length: 1200 }, () => 'x-token').join(',');
      assert.ok(repeated.length > 9000);
      const many = await preflight(strict.url, '/ok', { origin: APP, 'access-control-request-method': 'GET', 'access-control-request-headers': repeated });
      assert.deepEqual(corsOf(many), { vary: PREFLIGHT_VARY }, 'more names than the allow-list holds: refused');
      const commas = await preflight(strict.url, '/ok', { origin: APP, 'access-control-request-method': 'GET', 'access-control-request-headers': ','.repeat(10_000) });
      assert.deepEqual(corsOf(commas), { vary: PREFLIGHT_VARY }, 'thousands of empty elements: refused');
      const echoed = await preflight(open.url, '/ok', { origin: APP, 'access-control-request-method': 'GET', 'access-control-request-headers': repeated });
      assert.equal(echoed.headers['access-control-allow-headers'], repeated);
    });
  });

  it('debug logs each decision at debug level', async () => {
    const gw = await cors({ allow_origins: [APP], debug: true });
    const { records } = await logsDuring(async () => {
      await request(gw.url, '/ok', { headers: { origin: 'https://evil.example' } });
      await preflight(gw.url, '/ok', { origin: APP, 'access-control-request-method': 'GET' });
      await request(strict.url, '/ok', { headers: { origin: 'https://evil.example' } });
    }, 'debug');
    const logged = records.filter((r) => typeof r.msg === 'string' && r.msg.startsWith('CORS: '));
    assert.deepEqual(
      logged.map((r) => [r.level, r.msg, r.origin]),
      [
        ['debug', 'CORS: origin not allowed: no CORS headers', 'https://evil.example'],
        ['debug', 'CORS: preflight allowed', APP],
      ],
      'only the gateway with debug logs',
    );
  });
});

// ---- a 401 from an authentication policy carries the CORS headers ----

const testAuth: Namespace<Record<string, never>> = {
  name: 'test/auth',
  scopes: ['endpoint'],
  order: 400,
  policy: true,
  parse: () => ({}),
  compile: () => ({
    guard: (req) => {
      if (req.headers.authorization !== 'Bearer good') throw new PolicyError(401, 'TEST_DENIED', 'test/auth', 'no token', ['WWW-Authenticate', 'Bearer']);
      return undefined;
    },
  }),
};

describe('security/cors with an authentication policy', () => {
  let be: TestBackend;
  let gw: Gateway;
  let url: string;
  before(async () => {
    be = await startBackend((_req, res) => json(res, { ok: true }));
    const cfg = loadTestConfig({
      host: [be.url],
      extra_config: { 'security/cors': { allow_origins: [APP], allow_credentials: true } },
      endpoints: [{ endpoint: '/secure', backend: [{ url_pattern: '/s' }] }],
    });
    const use: NamespaceUse = { name: 'test/auth', options: {} };
    cfg.endpoints[0]!.namespaces.push(use);
    const modules = (name: string): Namespace => (name === 'test/auth' ? testAuth : namespaceNamed(name));
    const sink = new Writable({ write: (_c, _e, done) => done() });
    gw = new Gateway(compilePlan(cfg, { namespaces: modules, accessLogOut: sink }), { port: 0 });
    url = `http://127.0.0.1:${(await gw.listen()).port}`;
  });
  after(async () => {
    await gw.shutdown(1000);
    await be.close();
  });

  it('the 401 carries Allow-Origin and credentials, so the browser can read it', async () => {
    const r = await request(url, '/secure', { headers: { origin: APP } });
    assert.equal(r.status, 401);
    assert.equal(r.headers['www-authenticate'], 'Bearer');
    assert.deepEqual(corsOf(r), { vary: 'Origin', 'access-control-allow-origin': APP, 'access-control-allow-credentials': 'true' });
  });

  it('the preflight is answered before the policy asks for a token', async () => {
    const r = await preflight(url, '/secure', { origin: APP, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' });
    assert.equal(r.status, 204);
    assert.equal(r.headers['access-control-allow-headers'], 'authorization');
    assert.equal(r.headers['www-authenticate'], undefined);
  });

  it('the module is registered under its name', () => {
    assert.equal(namespaceNamed('security/cors'), securityCors);
  });
});
