// auth/client-credentials: the gateway fetches an OAuth2 client-credentials
// token from a real token server on loopback and sends it to the backend.
// Config checks, every field, the credential style of Go's client, caching
// and expiry, single flight, reloads, and hostile token servers (down, hung,
// 500, garbage, 10 MB, untrusted TLS), each answered in bounded time with only
// the protected backend failing.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { MAX_TOKEN_BODY_BYTES, TOKEN_ERROR_CODES } from '../../src/namespaces/auth-client-credentials.ts';
import { errorAt, issueAt, load, withBackend, withEndpoint } from '../config/support.ts';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { loadTestConfig, startGateway, type TestGateway } from '../helpers/gateway.ts';
import { get, type TestResponse } from '../helpers/http.ts';
import { captureLog } from '../helpers/lifecycle-support.ts';
import { startTokenServer, type TokenServer, type TokenServerOptions } from '../helpers/oauth-token-server.ts';
import { makePki, opensslMissing } from '../helpers/tls.ts';

const NS = 'auth/client-credentials';
const AT = `$.endpoints[0].backend[0].extra_config["${NS}"]`;
const SECRET = 'gw-s3cret';

const cc = (ts: { tokenUrl: string }, extra: Record<string, unknown> = {}) => ({ client_id: 'gw-client', client_secret: SECRET, token_url: ts.tokenUrl, ...extra });
const nsConfig = (options: unknown) => withBackend({ extra_config: { [NS]: options } });

describe('auth/client-credentials: config', () => {
  const base = { client_id: 'id', client_secret: 'secret', token_url: 'https://idp.example.com/oauth2/token' };

  it('reads the documented fields into plain, cloneable options', () => {
    const cfg = loadTestConfig({
      endpoints: [
        {
          endpoint: '/e',
          backend: [
            {
              host: ['http://127.0.0.1:9'],
              url_pattern: '/b',
              extra_config: { [NS]: { ...base, token_url: 'https://idp.example.com/t?tenant=a#frag', scopes: ' read, write:all ,,', endpoint_params: { resource: ['r'], audience: ['a', 'b'] } } },
            },
          ],
        },
      ],
    });
    const uses = cfg.endpoints[0]!.backends[0]!.namespaces;
    assert.deepEqual(structuredClone(uses), uses);
    assert.deepEqual(uses, [
      {
        name: NS,
        options: {
          clientId: 'id',
          clientSecret: 'secret',
          tokenUrl: 'https://idp.example.com/t?tenant=a',
          scopes: ['read', 'write:all'],
          endpointParams: [['audience', ['a', 'b']], ['resource', ['r']]],
          headerName: 'authorization',
          disabled: false,
        },
      },
    ]);
  });

  it('client_id, client_secret and token_url are required', () => {
    for (const key of ['client_id', 'client_secret', 'token_url'] as const) {
      const partial: Record<string, unknown> = { ...base };
      delete partial[key];
      assert.match(errorAt(nsConfig(partial), `${AT}.${key}`).found, /missing/);
    }
    assert.match(errorAt(withBackend({ extra_config: { [NS]: 'x' } }), `${AT}`).expected, /client_id/);
  });

  it('a mistyped client_secret is reported without its value', () => {
    const issue = errorAt(nsConfig({ ...base, client_secret: 98765 }), `${AT}.client_secret`);
    assert.equal(issue.expected, 'a string');
    assert.doesNotMatch(issue.found, /98765/);
    assert.match(issue.found, /a number \(value not shown/);
    assert.match(errorAt(nsConfig({ ...base, client_id: 7 }), `${AT}.client_id`).found, /7 \(number\)/);
  });

  it('token_url must be an absolute http(s) URL, without user info', () => {
    for (const bad of ['/oauth2/token', 'idp.example.com/token', 'ftp://idp.example.com/token', '', 42]) {
      assert.match(errorAt(nsConfig({ ...base, token_url: bad }), `${AT}.token_url`).expected, /absolute http:\/\/ or https:\/\/ URL/, String(bad));
    }
    const userinfo = errorAt(nsConfig({ ...base, token_url: 'https://me:hunter2@idp.example.com/token' }), `${AT}.token_url`);
    assert.match(userinfo.expected, /not supported by this version/);
    assert.doesNotMatch(userinfo.found, /hunter2/);
  });

  it('plain http is accepted as KrakenD does, with a warning unless the host is loopback', () => {
    const remote = load(nsConfig({ ...base, token_url: 'http://idp.example.com/token' }));
    assert.deepEqual(remote.errors, []);
    assert.match(issueAt(remote.warnings, `${AT}.token_url`).expected, /https:\/\//);
    const local = load(nsConfig({ ...base, token_url: 'http://127.0.0.1:8080/token' }));
    assert.deepEqual([...local.errors, ...local.warnings], []);
  });

  it('scopes is a comma-separated string; endpoint_params are lists of strings and never "scope"', () => {
    errorAt(nsConfig({ ...base, scopes: ['read'] }), `${AT}.scopes`);
    errorAt(nsConfig({ ...base, endpoint_params: ['audience'] }), `${AT}.endpoint_params`);
    assert.match(errorAt(nsConfig({ ...base, endpoint_params: { audience: 'a' } }), `${AT}.endpoint_params.audience`).expected, /array of strings/);
    errorAt(nsConfig({ ...base, endpoint_params: { audience: ['a', 1] } }), `${AT}.endpoint_params.audience[1]`);
    assert.match(errorAt(nsConfig({ ...base, scopes: 'a', endpoint_params: { scope: ['x'] } }), `${AT}.endpoint_params.scope`).expected, /"scopes"/);
  });

  it('auth_header_name is a header name that reaches the backend; is_disabled is a boolean', () => {
    errorAt(nsConfig({ ...base, auth_header_name: 'X Token' }), `${AT}.auth_header_name`);
    errorAt(nsConfig({ ...base, auth_header_name: 'Connection' }), `${AT}.auth_header_name`);
    errorAt(nsConfig({ ...base, is_disabled: 'yes' }), `${AT}.is_disabled`);
  });

  it('unknown keys are warnings with a did-you-mean that never shows the value', () => {
    const r = load(nsConfig({ ...base, client_secrets: 'leaked-if-shown' }));
    assert.deepEqual(r.errors, []);
    const w = issueAt(r.warnings, `${AT}.client_secrets`);
    assert.match(w.expected, /did you mean "client_secret"/);
    assert.doesNotMatch(JSON.stringify(w), /leaked-if-shown/);
  });

  it('belongs to backends: at endpoint level it is an error (never silently unenforced)', () => {
    const issue = errorAt(withEndpoint({ extra_config: { [NS]: base } }), `$.endpoints[0].extra_config["${NS}"]`);
    assert.match(issue.found, /backend level/);
  });
});

// ------------------------------------------------------------------ serving

/** The backend echoes what it received: the path and the token header. */
let backend: TestBackend;

before(async () => {
  backend = await startBackend((req, res) => json(res, { [req.url!.slice(1).split('?')[0]!]: { auth: req.headers.authorization ?? null, token: req.headers['x-token'] ?? null } }));
});
after(() => backend.close());

interface Setup {
  ts: TokenServer;
  gw: TestGateway;
}

/**
 * A gateway with /p (the protected backend plus an open one), /only (the
 * protected backend alone) and /two (two protected backends, same options).
 */
function gatewayConfig(options: Record<string, unknown>, endpoint: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const protectedBackend = (name: string) => ({ host: [backend.url], url_pattern: `/${name}`, extra_config: { [NS]: options } });
  const open = { host: [backend.url], url_pattern: '/open' };
  return {
    timeout: '500ms',
    ...extra,
    endpoints: [
      { endpoint: '/p', backend: [protectedBackend('protected'), open], ...endpoint },
      { endpoint: '/only', backend: [protectedBackend('protected')], ...endpoint },
      { endpoint: '/two', backend: [protectedBackend('first'), protectedBackend('second')], ...endpoint },
    ],
  };
}

async function setup(serverOpts: TokenServerOptions = {}, options: (ts: TokenServer) => Record<string, unknown> = (ts) => cc(ts), endpoint: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Promise<Setup & { close(): Promise<void> }> {
  const ts = await startTokenServer(serverOpts);
  const gw = await startGateway(gatewayConfig(options(ts), endpoint, extra));
  return { ts, gw, close: async () => { await gw.close(); await ts.close(); } };
}

const authOf = (r: TestResponse, name = 'protected'): string | null => r.json()[name]?.auth ?? null;

describe('auth/client-credentials: tokens', () => {
  it('sends the token as "Bearer <token>"; credentials go in a Basic header, as Go\'s client tries first', async () => {
    const s = await setup();
    try {
      const r = await get(s.gw.url, '/only');
      assert.equal(r.status, 200);
      assert.equal(r.headers['x-portico-completed'], 'true');
      const auth = authOf(r)!;
      assert.match(auth, /^Bearer at-1-/);
      assert.equal(s.ts.clientOf(auth), 'gw-client');
      assert.equal(s.ts.requests.length, 1);
      const tr = s.ts.requests[0]!;
      assert.equal(tr.method, 'POST');
      assert.equal(tr.url, '/oauth2/token');
      assert.match(String(tr.headers['content-type']), /^application\/x-www-form-urlencoded/);
      assert.deepEqual(tr.basic, { id: 'gw-client', secret: SECRET });
      assert.deepEqual(tr.form, { grant_type: ['client_credentials'] }, 'no scope parameter when no scopes, no credentials in the form');
    } finally {
      await s.close();
    }
  });

  it('scopes: comma-separated in the config, sent space-separated in "scope"', async () => {
    const s = await setup({ scopes: ['read', 'write:all'] }, (ts) => cc(ts, { scopes: 'read, write:all' }));
    try {
      const r = await get(s.gw.url, '/only');
      assert.equal(r.status, 200);
      assert.deepEqual(s.ts.requests[0]!.form.scope, ['read write:all']);
      assert.equal(s.ts.requests[0]!.outcome, 'issued');
    } finally {
      await s.close();
    }
  });

  it('endpoint_params go into the form with every value; grant_type may be overridden', async () => {
    const s = await setup({ params: { audience: ['api-a', 'api b'], resource: ['r1'] } }, (ts) => cc(ts, { endpoint_params: { resource: ['r1'], audience: ['api-a', 'api b'] } }));
    try {
      assert.equal((await get(s.gw.url, '/only')).status, 200);
      assert.equal(s.ts.requests[0]!.outcome, 'issued');
    } finally {
      await s.close();
    }
    const o = await setup({}, (ts) => cc(ts, { endpoint_params: { grant_type: ['urn:example:custom'] } }));
    const log = captureLog();
    try {
      // This token server knows only client_credentials: it refuses, which shows what was sent.
      assert.equal((await get(o.gw.url, '/only')).status, 500);
      assert.deepEqual(o.ts.requests[0]!.form.grant_type, ['urn:example:custom']);
      assert.deepEqual(log.entries.map((e) => e.code), [TOKEN_ERROR_CODES.rejected]);
    } finally {
      log.restore();
      await o.close();
    }
  });

  it('client_id and client_secret are form-escaped in the Basic header (RFC 6749 2.3.1)', async () => {
    const clients = { 'my client:1': 's3c&r+t/é %' };
    const s = await setup({ clients, accept: 'header' }, (ts) => ({ client_id: 'my client:1', client_secret: 's3c&r+t/é %', token_url: ts.tokenUrl }));
    try {
      const r = await get(s.gw.url, '/only');
      assert.equal(r.status, 200);
      assert.equal(s.ts.clientOf(authOf(r)!), 'my client:1');
    } finally {
      await s.close();
    }
  });

  it('a server that wants the credentials in the form: Basic is tried first, then the form, which is kept from then on', async () => {
    // expires_in -1: nothing is cached, so every request fetches and shows the style in use.
    const s = await setup({ accept: 'params', answer: { kind: 'token', expiresIn: -1 } });
    try {
      const first = await get(s.gw.url, '/only');
      assert.equal(first.status, 200);
      assert.equal(s.ts.requests.length, 2);
      assert.equal(s.ts.requests[0]!.outcome, 'refused');
      assert.deepEqual(s.ts.requests[1]!.form, { client_id: ['gw-client'], client_secret: [SECRET], grant_type: ['client_credentials'] });
      assert.equal(s.ts.requests[1]!.basic, undefined);
      const second = await get(s.gw.url, '/only');
      assert.equal(second.status, 200);
      assert.equal(s.ts.requests.length, 3, 'the form style is remembered: one request');
      assert.equal(s.ts.requests[2]!.basic, undefined);
      assert.notEqual(authOf(first), authOf(second), 'an already-expired token is not cached');
    } finally {
      await s.close();
    }
  });

  it('the token is cached until shortly before it expires, then fetched again', async () => {
    const s = await setup({ answer: { kind: 'token', expiresIn: 1 } });
    try {
      const a = authOf(await get(s.gw.url, '/only'));
      const b = authOf(await get(s.gw.url, '/only'));
      assert.equal(a, b);
      assert.equal(s.ts.requests.length, 1);
      // A 1 s token is refreshed after half its lifetime: only the passing of time can show that.
      await sleep(600);
      const c = authOf(await get(s.gw.url, '/only'));
      assert.equal(s.ts.requests.length, 2);
      assert.notEqual(c, a);
      assert.equal(s.ts.clientOf(c!), 'gw-client');
    } finally {
      await s.close();
    }
  });

  it('no expires_in, null, or 0: the token is kept for the default lifetime', async () => {
    for (const expiresIn of [undefined, null, 0]) {
      const s = await setup({ answer: { kind: 'token', expiresIn } });
      try {
        const a = authOf(await get(s.gw.url, '/only'));
        const b = authOf(await get(s.gw.url, '/only'));
        assert.match(a!, /^Bearer at-1-/);
        assert.equal(b, a, `expires_in ${String(expiresIn)}`);
        assert.equal(s.ts.requests.length, 1);
      } finally {
        await s.close();
      }
    }
  });

  it('a negative expires_in: the token serves the requests that waited for it and is not cached', async () => {
    const s = await setup({ answer: { kind: 'token', expiresIn: -30 } });
    try {
      const a = await get(s.gw.url, '/only');
      const b = await get(s.gw.url, '/only');
      assert.equal(a.status, 200);
      assert.equal(b.status, 200);
      assert.equal(s.ts.requests.length, 2);
      assert.notEqual(authOf(a), authOf(b));
    } finally {
      await s.close();
    }
  });

  it('a form-encoded answer, expires_in as a string, and token_type normalized as Go does', async () => {
    const s = await setup({ answer: { kind: 'token', format: 'form', expiresIn: '3600', tokenType: 'bearer' } });
    try {
      const a = authOf(await get(s.gw.url, '/only'));
      assert.match(a!, /^Bearer at-1-/);
      assert.equal(authOf(await get(s.gw.url, '/only')), a);
      assert.equal(s.ts.requests.length, 1);
      s.ts.answer = { kind: 'token', tokenType: 'mac', expiresIn: -1 };
      const mac = await startGateway(gatewayConfig(cc(s.ts, { scopes: 'other' })));
      try {
        assert.match(authOf(await get(mac.url, '/only'))!, /^MAC at-2-/);
      } finally {
        await mac.close();
      }
    } finally {
      await s.close();
    }
  });

  it('token_url keeps its query string', async () => {
    const s = await setup({}, (ts) => cc(ts, { token_url: `${ts.tokenUrl}?tenant=t1` }));
    try {
      assert.equal((await get(s.gw.url, '/only')).status, 200);
      assert.equal(s.ts.requests[0]!.url, '/oauth2/token?tenant=t1');
    } finally {
      await s.close();
    }
  });

  it('the client Authorization header is replaced for the protected backend only', async () => {
    const s = await setup({}, (ts) => cc(ts), { input_headers: ['Authorization'] });
    try {
      const r = await get(s.gw.url, '/p', { authorization: 'Bearer client-own-token' });
      assert.equal(r.status, 200);
      assert.equal(r.headers['x-portico-completed'], 'true');
      assert.equal(s.ts.clientOf(authOf(r, 'protected')!), 'gw-client');
      assert.equal(authOf(r, 'open'), 'Bearer client-own-token', 'the other backend keeps what the client sent, never the gateway token');
      const plain = await get(s.gw.url, '/p');
      assert.equal(authOf(plain, 'open'), null);
    } finally {
      await s.close();
    }
  });

  it('auth_header_name sends the token in another header; is_disabled sends none', async () => {
    const s = await setup({}, (ts) => cc(ts, { auth_header_name: 'X-Token' }), { input_headers: ['Authorization'] });
    try {
      const r = await get(s.gw.url, '/only', { authorization: 'Bearer client-own-token' });
      const body = r.json().protected;
      assert.match(body.token, /^Bearer at-1-/);
      assert.equal(body.auth, 'Bearer client-own-token');
    } finally {
      await s.close();
    }
    const d = await setup({}, (ts) => cc(ts, { is_disabled: true }));
    try {
      const r = await get(d.gw.url, '/only');
      assert.equal(r.status, 200);
      assert.equal(authOf(r), null);
      assert.equal(d.ts.requests.length, 0);
    } finally {
      await d.close();
    }
  });

  it('single flight: 50 concurrent requests on a cold cache make one token request', async () => {
    const s = await setup({}, (ts) => cc(ts), {}, { timeout: '5s' });
    try {
      const release = s.ts.hold();
      const pending = Array.from({ length: 50 }, () => get(s.gw.url, '/only'));
      await s.ts.waitForRequests(1);
      // Every request is inside the pipeline (and so waiting for the token) once the plan counts 50.
      while (s.gw.gateway.plan.usage.active < 50) await new Promise((r) => setImmediate(r));
      release();
      const answers = await Promise.all(pending);
      assert.equal(s.ts.requests.length, 1);
      const tokens = new Set(answers.map((a) => authOf(a)));
      assert.equal(tokens.size, 1);
      assert.equal(s.ts.clientOf([...tokens][0]!), 'gw-client');
      // Two backends with the same options share the token too.
      const two = (await get(s.gw.url, '/two')).json();
      assert.equal(two.first.auth, [...tokens][0]);
      assert.equal(two.second.auth, [...tokens][0]);
      assert.equal(s.ts.requests.length, 1);
    } finally {
      await s.close();
    }
  });
});

// ------------------------------------------------------------------ hostile token servers

describe('auth/client-credentials: failures', () => {
  /**
   * /p answers the open backend alone, marked incomplete; /only fails with
   * the stable code in the log; both in bounded time. The secret appears in
   * no log line and no answer, even with return_error_msg.
   */
  async function expectFailure(s: Setup, code: string, secret = SECRET): Promise<void> {
    const log = captureLog();
    try {
      const started = performance.now();
      const partial = await get(s.gw.url, '/p');
      assert.equal(partial.status, 200);
      assert.equal(partial.headers['x-portico-completed'], 'false');
      assert.deepEqual(partial.json(), { open: { auth: null, token: null } });
      const only = await get(s.gw.url, '/only');
      assert.equal(only.status, 500);
      assert.ok(performance.now() - started < 3000, 'answered in bounded time');
      const logged = log.entries.filter((e) => e.endpoint === '/only' && e.level === 'error');
      assert.equal(logged.length, 1, JSON.stringify(log.entries));
      assert.equal(logged[0]!.code, code, JSON.stringify(logged[0]));
      assert.ok(!JSON.stringify(log.entries).includes(secret), 'the secret is never logged');
      assert.ok(!only.body.includes(secret) && !partial.body.includes(secret), 'nor shown');
    } finally {
      log.restore();
    }
    const health = await get(s.gw.url, '/__health');
    assert.equal(health.status, 200, 'the gateway stays up');
  }

  const withMessages = { extra_config: { router: { return_error_msg: true } } };

  it('token server down: CLIENT_CREDENTIALS_UNREACHABLE', async () => {
    const s = await setup({}, (ts) => cc(ts), {}, withMessages);
    await s.ts.close();
    try {
      await expectFailure(s, TOKEN_ERROR_CODES.unreachable);
    } finally {
      await s.gw.close();
    }
  });

  it('token server slower than the endpoint timeout: CLIENT_CREDENTIALS_TIMEOUT, and the fetch is abandoned', async () => {
    const s = await setup({ answer: { kind: 'hang' } }, (ts) => cc(ts), {}, withMessages);
    try {
      await expectFailure(s, TOKEN_ERROR_CODES.timeout);
      // Nobody waits any more: the token requests are cancelled, not left hanging.
      await s.ts.waitForAbandoned(s.ts.requests.length);
      assert.equal(s.ts.requests.length, 2, 'one fetch per client request, no credential-style retry after a timeout');
    } finally {
      await s.close();
    }
  });

  it('token server answering 500, refusing the client, or a 200 with an OAuth error: CLIENT_CREDENTIALS_REJECTED', async () => {
    const s = await setup({ answer: { kind: 'raw', status: 500, body: '{"error":"server_error"}' } }, (ts) => cc(ts), {}, withMessages);
    try {
      await expectFailure(s, TOKEN_ERROR_CODES.rejected);
      // A refusal may mean "credentials in the form, please": Go's client retries once that way.
      assert.equal(s.ts.requests.length, 4);
      s.ts.answer = { kind: 'raw', status: 200, body: '{"error":"invalid_client"}' };
      await expectFailure(s, TOKEN_ERROR_CODES.rejected);
    } finally {
      await s.close();
    }
    const wrong = await setup({}, (ts) => cc(ts, { client_secret: 'not-the-secret' }), {}, withMessages);
    try {
      await expectFailure(wrong, TOKEN_ERROR_CODES.rejected, 'not-the-secret');
      assert.ok(wrong.ts.requests.every((r) => r.outcome === 'refused'));
      assert.ok(!wrong.gw.state.keys().some((k) => k.includes('not-the-secret')), 'state keys hold no secret');
    } finally {
      await wrong.close();
    }
  });

  it('garbage JSON, a token-less answer, or a token a header cannot carry: CLIENT_CREDENTIALS_INVALID', async () => {
    const s = await setup({ answer: { kind: 'raw', status: 200, body: '{"access_token": "abc", ' } }, (ts) => cc(ts), {}, withMessages);
    try {
      await expectFailure(s, TOKEN_ERROR_CODES.invalid);
      for (const body of ['{"token_type":"Bearer","expires_in":60}', '[1,2]', '{"access_token":"a b\\r\\nx: y"}', '{"access_token":"ok","expires_in":"soon"}']) {
        s.ts.answer = { kind: 'raw', status: 200, body };
        await expectFailure(s, TOKEN_ERROR_CODES.invalid);
      }
    } finally {
      await s.close();
    }
  });

  it(`a 10 MB answer is cut at ${MAX_TOKEN_BODY_BYTES} bytes: CLIENT_CREDENTIALS_INVALID`, async () => {
    for (const contentLength of [false, true]) {
      const s = await setup({ answer: { kind: 'huge', bytes: 10 * 1024 * 1024, contentLength } }, (ts) => cc(ts), {}, withMessages);
      try {
        await expectFailure(s, TOKEN_ERROR_CODES.invalid);
        // The gateway drops the connection rather than reading 10 MB.
        await s.ts.waitForAbandoned(s.ts.requests.length);
      } finally {
        await s.close();
      }
    }
  });

  it('failures are not cached: the next request fetches again, and concurrent ones share one fetch', async () => {
    const s = await setup({ answer: { kind: 'raw', status: 503, body: 'busy' } }, (ts) => cc(ts), {}, { timeout: '5s' });
    try {
      const release = s.ts.hold();
      const pending = Array.from({ length: 20 }, () => get(s.gw.url, '/only'));
      await s.ts.waitForRequests(1);
      while (s.gw.gateway.plan.usage.active < 20) await new Promise((r) => setImmediate(r));
      const log = captureLog();
      let failed: TestResponse[];
      try {
        release();
        failed = await Promise.all(pending);
      } finally {
        log.restore();
      }
      assert.ok(failed.every((r) => r.status === 500));
      assert.equal(log.entries.filter((e) => e.code === TOKEN_ERROR_CODES.rejected).length, 20);
      assert.equal(s.ts.requests.length, 2, 'one fetch (Basic, then the form) for all 20 requests');
      s.ts.answer = { kind: 'token', expiresIn: 3600 };
      const ok = await get(s.gw.url, '/only');
      assert.equal(ok.status, 200);
      assert.equal(s.ts.clientOf(authOf(ok)!), 'gw-client');
    } finally {
      await s.close();
    }
  });

  it('TLS is verified: a token server with an untrusted certificate is CLIENT_CREDENTIALS_UNREACHABLE', { skip: opensslMissing() }, async () => {
    const pki = await makePki();
    try {
      const s = await setup({ tls: { cert: pki.serverCert, key: pki.serverKey } }, (ts) => cc(ts), {}, withMessages);
      try {
        assert.match(s.ts.tokenUrl, /^https:/);
        await expectFailure(s, TOKEN_ERROR_CODES.unreachable);
        assert.ok(s.ts.requests.every((r) => r.outcome !== 'issued'));
        assert.equal(s.ts.requests.length, 0, 'no request got past the handshake');
      } finally {
        await s.close();
      }
    } finally {
      pki.cleanup();
    }
  });
});

// ------------------------------------------------------------------ reloads

describe('auth/client-credentials: reloads', () => {
  it('the token survives a reload of an unchanged config', async () => {
    const s = await setup();
    try {
      const config = gatewayConfig(cc(s.ts));
      const a = authOf(await get(s.gw.url, '/only'));
      await s.gw.reload(config);
      const b = authOf(await get(s.gw.url, '/only'));
      await s.gw.reload(structuredClone(config));
      const c = authOf(await get(s.gw.url, '/only'));
      assert.equal(s.ts.requests.length, 1);
      assert.equal(b, a);
      assert.equal(c, a);
    } finally {
      await s.close();
    }
  });

  it('a changed client_id gets a fresh token', async () => {
    const s = await setup({ clients: { 'gw-client': SECRET, 'other-client': SECRET } });
    try {
      const a = authOf(await get(s.gw.url, '/only'));
      assert.equal(s.ts.clientOf(a!), 'gw-client');
      await s.gw.reload(gatewayConfig(cc(s.ts, { client_id: 'other-client' })));
      const b = authOf(await get(s.gw.url, '/only'));
      assert.equal(s.ts.requests.length, 2);
      assert.equal(s.ts.clientOf(b!), 'other-client');
    } finally {
      await s.close();
    }
  });
});
