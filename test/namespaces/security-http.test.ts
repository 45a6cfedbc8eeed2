// security/http: allowed hosts, SSL redirect, HSTS and the security headers,
// checked over real HTTP (and HTTPS for HSTS) against a gateway in front of a
// real backend, plus the configuration checks.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { startJsonBackend, type TestBackend } from '../helpers/backend.ts';
import { loadTestConfig, startGateway, type TestGateway } from '../helpers/gateway.ts';
import { MAX_HOST_INSPECTED } from '../../src/namespaces/security-http.ts';
import { raw, request } from '../helpers/http.ts';
import { makePki, opensslMissing, startHttpsGateway, type Pki } from '../helpers/tls.ts';
import { errorAt, issueAt, load, service, withEndpoint } from '../config/support.ts';

const NS = 'security/http';
const AT = `$.extra_config["${NS}"]`;

/** A config whose service carries `security/http` with `options`. */
const withSecurity = (options: unknown) => service({ extra_config: { [NS]: options } });

describe('security/http: configuration', () => {
  it('checks every field with a precise error', () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ allowed_hosts: 'api.example.com' }, 'allowed_hosts', /an array of strings/],
      [{ allowed_hosts: ['ok.example.com', 7] }, 'allowed_hosts[1]', /a string/],
      [{ allowed_hosts_are_regex: 'yes' }, 'allowed_hosts_are_regex', /true or false/],
      [{ host_proxy_headers: ['X Forwarded Host'] }, 'host_proxy_headers[0]', /a header name/],
      [{ ssl_redirect: 1 }, 'ssl_redirect', /true or false/],
      [{ ssl_host: 'https://ssl.example.com/' }, 'ssl_host', /a host name with an optional port and nothing else/],
      [{ ssl_host: 5 }, 'ssl_host', /a string/],
      [{ ssl_proxy_headers: 'https' }, 'ssl_proxy_headers', /an object/],
      [{ ssl_proxy_headers: { 'X-Forwarded-Proto': true } }, 'ssl_proxy_headers["X-Forwarded-Proto"]', /the header value that marks a TLS request/],
      [{ ssl_proxy_headers: { 'X-Forwarded-Proto': '' } }, 'ssl_proxy_headers["X-Forwarded-Proto"]', /a non-empty header value/],
      [{ ssl_proxy_headers: { 'Bad Name': 'https' } }, 'ssl_proxy_headers["Bad Name"]', /a header name/],
      [{ sts_seconds: -1 }, 'sts_seconds', /an integer >= 0/],
      [{ sts_seconds: 1.5 }, 'sts_seconds', /an integer >= 0/],
      [{ sts_seconds: '300' }, 'sts_seconds', /an integer >= 0/],
      [{ sts_include_subdomains: 'true' }, 'sts_include_subdomains', /true or false/],
      [{ force_sts_header: 0 }, 'force_sts_header', /true or false/],
      [{ frame_deny: 'yes' }, 'frame_deny', /true or false/],
      [{ custom_frame_options_value: 'DENY\r\nX-Evil: 1' }, 'custom_frame_options_value', /a header value of printable ASCII/],
      [{ content_type_nosniff: null }, 'content_type_nosniff', /true or false/],
      [{ browser_xss_filter: 'on' }, 'browser_xss_filter', /true or false/],
      [{ content_security_policy: ["default-src 'self'"] }, 'content_security_policy', /a string/],
      [{ referrer_policy: 'no-referrer\n' }, 'referrer_policy', /a header value of printable ASCII/],
      [{ hpkp_public_key: 1 }, 'hpkp_public_key', /a string/],
      [{ is_development: 'false' }, 'is_development', /true or false/],
      [{ allowed_hosts_are_regex: true, allowed_hosts: ['api[.example.com'] }, 'allowed_hosts[0]', /RE2 syntax.*missing closing \]/],
      [{ allowed_hosts_are_regex: true, allowed_hosts: ['(?!evil).*'] }, 'allowed_hosts[0]', /lookahead .* not supported \(RE2 has none\)/],
    ];
    for (const [options, key, expected] of cases) {
      const issue = errorAt(withSecurity(options), `${AT}${key.startsWith('[') ? '' : '.'}${key}`);
      assert.match(`${issue.expected} / ${issue.found}`, expected, JSON.stringify(options));
    }
    assert.match(errorAt(withSecurity(['frame_deny']), AT).expected, /an object with HTTP security options/);
  });

  it('is a service-level namespace: at endpoint level it is refused, not ignored', () => {
    const issue = errorAt(withEndpoint({ extra_config: { [NS]: { frame_deny: true } } }), `$.endpoints[0].extra_config["${NS}"]`);
    assert.match(issue.found, /not supported by this version \(it belongs at service level\)/);
  });

  it('warns about unknown keys, ignored hpkp_public_key and settings that cannot apply', () => {
    const result = load(
      withSecurity({
        sts_second: 300,
        hpkp_public_key: 'pin-sha256="base64=="; max-age=60',
        sts_include_subdomains: true,
        ssl_host: 'ssl.example.com',
        allowed_hosts: ['https://api.example.com/'],
      }),
    );
    assert.deepEqual(result.errors, []);
    assert.match(issueAt(result.warnings, `${AT}.sts_second`).expected, /did you mean "sts_seconds"/);
    assert.match(issueAt(result.warnings, `${AT}.hpkp_public_key`).found, /ignored as KrakenD ignores it: no Public-Key-Pins header/);
    assert.match(issueAt(result.warnings, `${AT}.sts_include_subdomains`).found, /without sts_seconds/);
    assert.match(issueAt(result.warnings, `${AT}.ssl_host`).found, /without ssl_redirect: it is never used/);
    assert.match(issueAt(result.warnings, `${AT}.allowed_hosts[0]`).found, /which no Host header can match/);

    const dev = load(withSecurity({ is_development: true, allowed_hosts: ['a.example.com'], ssl_redirect: true, sts_seconds: 60 }));
    for (const key of ['allowed_hosts', 'ssl_redirect', 'sts_seconds']) {
      assert.match(issueAt(dev.warnings, `${AT}.${key}`).found, /not enforced because is_development is true/);
    }
  });

  it('parses into plain data that survives structuredClone', () => {
    const cfg = loadTestConfig({
      endpoints: [{ endpoint: '/x', backend: [{ host: ['http://127.0.0.1:9'], url_pattern: '/' }] }],
      extra_config: {
        [NS]: {
          allowed_hosts: ['API.example.com'],
          host_proxy_headers: ['X-Forwarded-Host'],
          ssl_redirect: true,
          ssl_host: 'ssl.example.com',
          ssl_proxy_headers: { 'X-Forwarded-Proto': 'https' },
          sts_seconds: 300,
          content_security_policy: "script-src $NONCE",
        },
      },
    });
    const use = cfg.namespaces.find((u) => u.name === NS)!;
    assert.deepEqual(structuredClone(cfg.namespaces), cfg.namespaces);
    const o = use.options as { allowedHosts: string[]; hostProxyHeaders: string[]; sslProxyHeaders: [string, string][] };
    assert.deepEqual(o.allowedHosts, ['api.example.com']);
    assert.deepEqual(o.hostProxyHeaders, ['x-forwarded-host']);
    assert.deepEqual(o.sslProxyHeaders, [['x-forwarded-proto', 'https']]);
  });
});

describe('security/http over HTTP', () => {
  let backend: TestBackend;
  const open: TestGateway[] = [];
  before(async () => {
    backend = await startJsonBackend({ '/ok': { ok: true } });
  });
  after(async () => {
    await Promise.all(open.map((g) => g.close()));
    await backend.close();
  });

  async function gateway(options: Record<string, unknown>): Promise<TestGateway> {
    const gw = await startGateway({
      endpoints: [
        { endpoint: '/ok', backend: [{ host: [backend.url], url_pattern: '/ok' }] },
        { endpoint: '/down', backend: [{ host: ['http://127.0.0.1:9'], url_pattern: '/' }] },
      ],
      extra_config: { [NS]: options },
    });
    open.push(gw);
    return gw;
  }
  const get = (gw: TestGateway, path: string, headers: Record<string, string> = {}, method = 'GET') => request(gw.url, path, { method, headers });

  it('allowed_hosts: only listed hosts (port included, case ignored) are served; others get 500 with no body and no backend call', async () => {
    const gw = await gateway({ allowed_hosts: ['api.example.com', 'api.example.com:8443'], frame_deny: true });
    const ok = await get(gw, '/ok', { host: 'api.example.com' });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['x-frame-options'], 'DENY');
    assert.equal((await get(gw, '/ok', { host: 'API.Example.COM' })).status, 200, 'host names compare case-insensitively');
    assert.equal((await get(gw, '/ok', { host: 'api.example.com:8443' })).status, 200);

    const calls = backend.requests.length;
    for (const host of ['api.example.com:8080', 'evil.example.com', 'api.example.com.evil.com', '127.0.0.1']) {
      const res = await get(gw, '/ok', { host });
      assert.equal(res.status, 500, `${host}: unrolled/secure answers a bad host with 500`);
      assert.equal(res.body, '', host);
      assert.equal(res.headers['x-content-type-options'], 'nosniff', host);
      assert.equal(res.headers['x-frame-options'], undefined, `${host}: a refused request gets no security headers`);
    }
    assert.equal(backend.requests.length, calls, 'no backend call for a refused host');
    assert.equal((await get(gw, '/__health', { host: 'evil.example.com' })).status, 500, 'the check runs before routing, for every path');
  });

  it('host_proxy_headers: the first non-empty one replaces Host for the host check', async () => {
    const gw = await gateway({ allowed_hosts: ['public.example.com'], host_proxy_headers: ['X-Forwarded-Host', 'X-Original-Host'] });
    assert.equal((await get(gw, '/ok', { host: 'internal:8080', 'x-forwarded-host': 'public.example.com' })).status, 200);
    assert.equal((await get(gw, '/ok', { host: 'internal:8080', 'x-original-host': 'public.example.com' })).status, 200);
    assert.equal((await get(gw, '/ok', { host: 'public.example.com', 'x-forwarded-host': 'evil.example.com' })).status, 500, 'the proxy header wins over Host');
    assert.equal((await get(gw, '/ok', { host: 'public.example.com', 'x-forwarded-host': '' })).status, 200, 'an empty one is skipped');
    assert.equal((await get(gw, '/ok', { host: 'internal:8080' })).status, 500);
  });

  it('allowed_hosts_are_regex: each entry must match the whole host (RE2 syntax, case-sensitive)', async () => {
    const gw = await gateway({ allowed_hosts_are_regex: true, allowed_hosts: ['api[0-9]\\.example\\.com', '(?i)www\\.example\\.com|example\\.com'] });
    assert.equal((await get(gw, '/ok', { host: 'api1.example.com' })).status, 200);
    assert.equal((await get(gw, '/ok', { host: 'WWW.example.COM' })).status, 200, '(?i) applies');
    assert.equal((await get(gw, '/ok', { host: 'example.com' })).status, 200);
    assert.equal((await get(gw, '/ok', { host: 'API1.example.com' })).status, 500, 'regex hosts are case-sensitive');
    assert.equal((await get(gw, '/ok', { host: 'api1.example.com.evil.com' })).status, 500, 'anchored: no prefix match');
    assert.equal((await get(gw, '/ok', { host: 'www.example.com.evil.com' })).status, 500, 'anchored around the whole alternation');
    assert.equal((await get(gw, '/ok', { host: `${'a'.repeat(MAX_HOST_INSPECTED)}.example.com` })).status, 500, 'an over-long host is refused without running the patterns');
    const slow = await gateway({ allowed_hosts_are_regex: true, allowed_hosts: Array.from({ length: 20 }, (_, i) => `.*a*${String.fromCharCode(98 + i)}`) });
    const started = performance.now();
    assert.equal((await get(slow, '/ok', { host: 'a'.repeat(12_000) })).status, 500);
    assert.ok(performance.now() - started < 500, 'a 12 KB Host costs no regex work');
  });

  it('ssl_redirect: a plain-HTTP request gets 301 to https with host, path and query, before any backend call', async () => {
    const gw = await gateway({ ssl_redirect: true, frame_deny: true });
    const calls = backend.requests.length;
    const res = await get(gw, '/ok?a=1&b=%20x', { host: 'api.example.com:8080' });
    assert.equal(res.status, 301);
    assert.equal(res.headers.location, 'https://api.example.com:8080/ok?a=1&b=%20x');
    assert.equal(res.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(res.body, '<a href="https://api.example.com:8080/ok?a=1&amp;b=%20x">Moved Permanently</a>.\n\n');
    assert.equal(res.headers['x-frame-options'], undefined, 'a redirect carries no security headers');

    const post = await get(gw, '/ok', { host: 'api.example.com' }, 'POST');
    assert.equal(post.status, 301, 'unrolled/secure redirects every method with 301');
    assert.equal(post.headers.location, 'https://api.example.com/ok');
    assert.equal(post.body, '');
    const head = await get(gw, '/ok', { host: 'api.example.com' }, 'HEAD');
    assert.equal(head.status, 301);
    assert.equal(head.body, '');
    assert.equal((await get(gw, '/nowhere', { host: 'api.example.com' })).status, 301, 'before routing: unknown paths are redirected too');
    assert.equal(backend.requests.length, calls);
  });

  it('ssl_redirect with ssl_host: a crafted Host or path cannot move the Location to another host', async () => {
    const gw = await gateway({ ssl_redirect: true, ssl_host: 'secure.example.com' });
    for (const [host, path] of [
      ['evil.com', '/ok?next=1'],
      ['evil.com/@attacker.net', '/ok'],
      ['evil.com', '//attacker.net/x'],
      ['evil.com', '/\\attacker.net'],
      ['evil.com', '/ok?u=https://attacker.net'],
    ] as const) {
      const res = await get(gw, path, { host });
      assert.equal(res.status, 301, `${host} ${path}`);
      const location = new URL(res.headers.location!);
      assert.equal(location.host, 'secure.example.com', `${host} ${path} -> ${res.headers.location}`);
      assert.equal(location.protocol, 'https:');
    }
    const res = await get(gw, '/ok?x=1', { host: 'evil.com' });
    assert.equal(res.headers.location, 'https://secure.example.com/ok?x=1');
    const backslash = await get(gw, '/\\attacker.net', { host: 'evil.com' });
    assert.equal(backslash.headers.location, 'https://secure.example.com/%5Cattacker.net', 'unsafe path characters are escaped as Go escapes them');
  });

  it('ssl_redirect without ssl_host: a Host that is not a host name gets 400, not a Location pointing elsewhere', async () => {
    const gw = await gateway({ ssl_redirect: true });
    for (const host of ['attacker.net/x', 'good.example.com@attacker.net', 'a b']) {
      const res = await get(gw, '/ok', { host });
      assert.equal(res.status, 400, host);
      assert.equal(res.headers.location, undefined, host);
    }
    // node:http refuses non-ASCII request targets itself; characters it lets through that Go escapes are escaped.
    assert.equal((await raw(gw.port, 'GET /ok?q=\xe9 HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n')).split('\r\n')[0], 'HTTP/1.1 400 Bad Request');
    const res = await get(gw, '/ok?q=<b>"x"</b>', { host: 'api.example.com' });
    assert.equal(res.headers.location, 'https://api.example.com/ok?q=%3Cb%3E%22x%22%3C/b%3E');
  });

  it('ssl_proxy_headers: an exact header value marks a request as TLS (no redirect, HSTS sent)', async () => {
    const gw = await gateway({ ssl_redirect: true, ssl_proxy_headers: { 'X-Forwarded-Proto': 'https' }, sts_seconds: 300 });
    const tls = await get(gw, '/ok', { host: 'api.example.com', 'x-forwarded-proto': 'https' });
    assert.equal(tls.status, 200);
    assert.equal(tls.headers['strict-transport-security'], 'max-age=300');
    const plain = await get(gw, '/ok', { host: 'api.example.com', 'x-forwarded-proto': 'http' });
    assert.equal(plain.status, 301);
    assert.equal(plain.headers['strict-transport-security'], undefined);
    assert.equal((await get(gw, '/ok', { host: 'api.example.com', 'x-forwarded-proto': 'HTTPS' })).status, 301, 'the value must match exactly');
  });

  it('X-Forwarded-Proto is not trusted unless ssl_proxy_headers says so: still redirected, no HSTS', async () => {
    const redirecting = await gateway({ ssl_redirect: true });
    const res = await get(redirecting, '/ok', { host: 'api.example.com', 'x-forwarded-proto': 'https', 'x-forwarded-ssl': 'on', forwarded: 'proto=https' });
    assert.equal(res.status, 301);
    const sts = await gateway({ sts_seconds: 300 });
    const plain = await get(sts, '/ok', { 'x-forwarded-proto': 'https' });
    assert.equal(plain.status, 200);
    assert.equal(plain.headers['strict-transport-security'], undefined, 'HSTS only on TLS requests');
  });

  it('force_sts_header: HSTS on plain HTTP too', async () => {
    const gw = await gateway({ sts_seconds: 60, sts_include_subdomains: true, force_sts_header: true });
    assert.equal((await get(gw, '/ok')).headers['strict-transport-security'], 'max-age=60; includeSubDomains');
  });

  it('frame_deny, custom_frame_options_value, content_type_nosniff, browser_xss_filter, content_security_policy, referrer_policy: on every answer', async () => {
    const gw = await gateway({
      frame_deny: true,
      content_type_nosniff: true,
      browser_xss_filter: true,
      content_security_policy: "default-src 'self';",
      referrer_policy: 'same-origin',
      hpkp_public_key: 'pin-sha256="base64=="; max-age=60',
    });
    const expected = {
      'x-frame-options': 'DENY',
      'x-content-type-options': 'nosniff',
      'x-xss-protection': '1; mode=block',
      'content-security-policy': "default-src 'self';",
      'referrer-policy': 'same-origin',
    };
    for (const [path, status] of [['/ok', 200], ['/missing', 404], ['/down', 500], ['/__health', 200]] as const) {
      const res = await get(gw, path);
      assert.equal(res.status, status, path);
      for (const [name, value] of Object.entries(expected)) assert.equal(res.headers[name], value, `${path}: ${name}`);
      assert.equal(res.headers['public-key-pins'], undefined, 'HPKP is not sent (KrakenD ignores hpkp_public_key)');
      assert.equal(res.headers['strict-transport-security'], undefined, 'no HSTS unless sts_seconds is set');
    }

    const custom = await gateway({ frame_deny: true, custom_frame_options_value: 'SAMEORIGIN' });
    const res = await get(custom, '/ok');
    assert.equal(res.headers['x-frame-options'], 'SAMEORIGIN', 'the custom value wins over frame_deny');
    assert.equal(res.headers['x-content-type-options'], undefined, 'headers that are not configured are not sent');
  });

  it('content_security_policy: $NONCE becomes a fresh nonce on every answer', async () => {
    const gw = await gateway({ content_security_policy: "script-src $NONCE 'strict-dynamic'" });
    const [a, b] = [await get(gw, '/ok'), await get(gw, '/ok')];
    const pattern = /^script-src 'nonce-([A-Za-z0-9+/]{22}==)' 'strict-dynamic'$/;
    const na = pattern.exec(String(a.headers['content-security-policy']))?.[1];
    const nb = pattern.exec(String(b.headers['content-security-policy']))?.[1];
    assert.ok(na && nb, `${a.headers['content-security-policy']}`);
    assert.notEqual(na, nb);
    assert.equal(Buffer.from(na, 'base64').length, 16);
  });

  it('is_development: no host check, no redirect and no HSTS; the other headers stay', async () => {
    const gw = await gateway({ is_development: true, allowed_hosts: ['api.example.com'], ssl_redirect: true, sts_seconds: 60, force_sts_header: true, frame_deny: true });
    const res = await get(gw, '/ok', { host: 'anything.test' });
    assert.equal(res.status, 200);
    assert.equal(res.headers['strict-transport-security'], undefined);
    assert.equal(res.headers['x-frame-options'], 'DENY');
  });
});

describe('security/http over HTTPS: HSTS', { skip: opensslMissing() }, () => {
  let pki: Pki;
  let backend: TestBackend;
  let gw: TestGateway;
  before(async () => {
    [pki, backend] = await Promise.all([makePki(), startJsonBackend({ '/ok': { ok: true } })]);
    gw = await startHttpsGateway({
      tls: { public_key: pki.serverCert, private_key: pki.serverKey },
      endpoints: [{ endpoint: '/ok', backend: [{ host: [backend.url], url_pattern: '/ok' }] }],
      extra_config: { [NS]: { sts_seconds: 31536000, sts_include_subdomains: true, ssl_redirect: true } },
    });
  });
  after(async () => {
    await gw?.close();
    await backend?.close();
    pki?.cleanup();
  });

  it('sts_seconds and sts_include_subdomains: sent on TLS requests, which are never redirected', async () => {
    const res = await httpsGet(gw.url, '/ok', pki.ca);
    assert.equal(res.status, 200);
    assert.equal(res.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains');
    assert.equal(res.headers.location, undefined);
  });
});

function httpsGet(url: string, path: string, ca: string): Promise<{ status: number; headers: IncomingHttpHeaders }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: u.hostname, port: u.port, path, agent: false, ca: readFileSync(ca) }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}
