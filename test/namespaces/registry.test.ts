// The namespace machinery, independent of any one policy: the registry and its
// order, guards before the body is read, early answers, policy errors with
// their code, headers and empty body, headers on every answer, backend and
// endpoint middlewares, and policy state that survives reloads. Test-only
// namespace modules are compiled into real plans served over HTTP.

import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { namespaceKind } from '../../src/namespaces/fail-closed.ts';
import type { Guard, Middleware, Namespace, NamespaceUse } from '../../src/namespaces/namespace.ts';
import { addResponseHeader, addUpstreamHeader } from '../../src/namespaces/namespace.ts';
import { NAMESPACES, namespaceNamed } from '../../src/namespaces/registry.ts';
import { combineGuards } from '../../src/namespaces/stack.ts';
import { PolicyState, stateKey } from '../../src/namespaces/state.ts';
import { compilePlan } from '../../src/plan/compile.ts';
import { PolicyError } from '../../src/proxy/errors.ts';
import type { ProxyRequest } from '../../src/proxy/types.ts';
import { Gateway } from '../../src/server/server.ts';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { loadTestConfig } from '../helpers/gateway.ts';
import { request } from '../helpers/http.ts';
import { captureLog } from '../helpers/lifecycle-support.ts';

const sink = new Writable({ write: (_c, _e, done) => done() });

describe('the namespace registry', () => {
  it('lists each namespace once; policy modules are the policy families', () => {
    const names = NAMESPACES.map((n) => n.name);
    assert.equal(new Set(names).size, names.length);
    for (const ns of NAMESPACES) {
      assert.ok(ns.scopes.length > 0, ns.name);
      assert.equal(ns.policy, namespaceKind(ns.name) === 'policy', `${ns.name}: policy flag matches its family`);
      assert.equal(namespaceNamed(ns.name), ns);
    }
  });

  it('parsed uses are plain data in stack order, whatever the order in the file', () => {
    const cfg = loadTestConfig({
      endpoints: [
        {
          endpoint: '/x',
          extra_config: { proxy: { static: { strategy: 'always', data: { a: 1 } } } },
          backend: [{ host: ['http://127.0.0.1:9'], url_pattern: '/', extra_config: { 'backend/http': { return_error_code: true }, proxy: { shadow: false } } }],
        },
      ],
      extra_config: { 'portico/server': { max_body_bytes: 10 }, router: { return_error_msg: true } },
    });
    assert.deepEqual(cfg.namespaces.map((u) => u.name).sort(), ['portico/server', 'router']);
    const backendUses = cfg.endpoints[0]!.backends[0]!.namespaces.map((u) => u.name);
    assert.deepEqual(backendUses, ['backend/http', 'proxy'], 'backend/http (order 0) before proxy (900)');
    assert.deepEqual(structuredClone(cfg.namespaces), cfg.namespaces);
    assert.deepEqual(structuredClone(cfg.endpoints[0]!.namespaces), cfg.endpoints[0]!.namespaces);
  });
});

describe('combineGuards', () => {
  const req = {} as ProxyRequest;
  it('runs guards in order; the first answer or error ends it; sync guards stay sync', async () => {
    const seen: string[] = [];
    const pass = (name: string): Guard => () => void seen.push(name);
    const g = combineGuards([pass('a'), undefined, pass('b')])!;
    assert.equal(g(req), undefined, 'all passing and sync: no promise');
    assert.deepEqual(seen, ['a', 'b']);

    seen.length = 0;
    const answering = combineGuards([pass('a'), () => ({ status: 204 }), pass('never')])!;
    assert.deepEqual(answering(req), { status: 204 });
    assert.deepEqual(seen, ['a']);

    seen.length = 0;
    const asyncThenSync = combineGuards([async () => { seen.push('async'); return undefined; }, pass('after')])!;
    assert.equal(await asyncThenSync(req), undefined);
    assert.deepEqual(seen, ['async', 'after'], 'the guard after an async one still runs, in order');

    const throwing = combineGuards([() => { throw new PolicyError(401, 'X', 'test/x', 'no'); }, pass('never')])!;
    assert.throws(() => throwing(req), (e: unknown) => e instanceof PolicyError && e.code === 'X');
  });
});

describe('PolicyState', () => {
  it('an entry shared by two plans lives until both released it; a different key starts fresh', async () => {
    const state = new PolicyState();
    const disposed: string[] = [];
    const a = state.scope();
    const b = state.scope();
    const key = stateKey('test/ns', { url: 'x' });
    const first = a.get(key, () => ({ id: 1 }), () => void disposed.push('x'));
    assert.equal(a.get(key, () => ({ id: 99 })), first, 'a second endpoint of the same plan shares it');
    assert.equal(b.get(key, () => ({ id: 2 })), first, 'the next plan (a reload) finds the same entry');
    const other = b.get(stateKey('test/ns', { url: 'y' }), () => ({ id: 3 }), () => void disposed.push('y'));
    assert.notEqual(other, first);
    await a.release();
    assert.deepEqual(disposed, [], 'still held by the newer plan');
    await b.release();
    assert.deepEqual(disposed.sort(), ['x', 'y']);
    assert.deepEqual(state.keys(), []);
  });
});

// ---- test-only namespaces compiled into real plans ----

interface Options {
  tag: string;
}

const calls: string[] = [];

/** Refuses unless `x-key: good`; adds a header to every answer. */
const testAuth: Namespace<Options> = {
  name: 'test/auth',
  scopes: ['endpoint'],
  order: 400,
  policy: true,
  parse: (raw) => raw as Options,
  compile: (o) => ({
    guard: (req) => {
      calls.push(`auth:${o.tag}`);
      addResponseHeader(req, 'x-policy', o.tag);
      if (req.headers['x-slow'] !== undefined) {
        // An async guard that honours the endpoint deadline.
        return new Promise((resolve, reject) => {
          const t = setTimeout(() => resolve(undefined), 5000);
          req.signal.onAbort(() => {
            clearTimeout(t);
            reject(new PolicyError(401, 'TEST_TIMEOUT', 'test/auth', 'keys not available in time'));
          });
        });
      }
      if (req.headers['x-key'] !== 'good') throw new PolicyError(401, 'TEST_DENIED', 'test/auth', 'bad key', ['www-authenticate', 'Test realm="t"']);
      addUpstreamHeader(req, 'x-user', 'alice');
      req.claims = { sub: 'alice', org: { id: 'o 1' } };
      return undefined;
    },
  }),
};

/** A service guard answering OPTIONS itself and tagging every answer. */
const testEdge: Namespace<Options> = {
  name: 'test/edge',
  scopes: ['service'],
  order: 200,
  policy: true,
  parse: (raw) => raw as Options,
  compile: (o) => ({
    guard: (req) => {
      calls.push('edge');
      addResponseHeader(req, 'x-edge', o.tag);
      addResponseHeader(req, 'vary', 'Origin');
      if (req.method === 'OPTIONS') return { status: 204, headers: ['x-early', 'yes'] };
      return undefined;
    },
  }),
};

/** Wraps the endpoint answer (outer) and one backend call (inner), and keeps a counter in PolicyState. */
const testWrap: Namespace<Options> = {
  name: 'test/wrap',
  scopes: ['endpoint', 'backend'],
  order: 500,
  policy: false,
  parse: (raw) => raw as Options,
  compile: (o, ctx) => {
    const counter = ctx.state.get(stateKey('test/wrap', o), () => ({ n: 0 }));
    const middleware: Middleware = (next) => async (req) => {
      counter.n++;
      if (ctx.scope === 'backend') {
        return next({ ...req, upstreamHeaders: { ...req.upstreamHeaders, 'x-backend-only': o.tag } });
      }
      const r = await next(req);
      return { ...r, data: { ...r.data, wrapped: o.tag, count: counter.n } };
    };
    return { middleware };
  },
};

const TEST_MODULES: Record<string, Namespace> = { 'test/auth': testAuth, 'test/edge': testEdge, 'test/wrap': testWrap };
const moduleOf = (name: string): Namespace => TEST_MODULES[name] ?? namespaceNamed(name);

function use(name: string, options: Options): NamespaceUse {
  return { name, options };
}

describe('guards and middlewares on the request path', () => {
  let be: TestBackend;
  let gw: Gateway;
  let url: string;
  const state = new PolicyState();

  function plan(tag: string) {
    const cfg = loadTestConfig({
      timeout: '300ms',
      extra_config: { router: { return_error_msg: true } },
      endpoints: [
        {
          endpoint: '/secure/{id}',
          method: 'POST',
          backend: [
            { host: [be.url], url_pattern: '/a/{JWT.sub}/{JWT.org.id}/{id}', group: 'a' },
            { host: [be.url], url_pattern: '/b', group: 'b' },
          ],
        },
        { endpoint: '/open', backend: [{ host: [be.url], url_pattern: '/open' }] },
      ],
    });
    cfg.namespaces.push(use('test/edge', { tag }));
    const secure = cfg.endpoints[0]!;
    secure.namespaces.push(use('test/auth', { tag }), use('test/wrap', { tag }));
    secure.backends[1]!.namespaces.push(use('test/wrap', { tag: `${tag}-b` }));
    return compilePlan(cfg, { accessLogOut: sink, state, namespaces: moduleOf });
  }

  before(async () => {
    be = await startBackend((req, res) => json(res, { path: req.url, user: req.headers['x-user'] ?? null, only: req.headers['x-backend-only'] ?? null }));
    gw = new Gateway(plan('v1'), { port: 0 });
    url = `http://127.0.0.1:${(await gw.listen()).port}`;
  });
  after(async () => {
    await gw.shutdown(1000);
    await state.close();
    await be.close();
  });

  it('a refused request: 401 with the error headers, empty body despite return_error_msg, no body read, no backend call', async () => {
    const before = be.requests.length;
    calls.length = 0;
    const r = await request(url, '/secure/7', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"big":"' + 'x'.repeat(100_000) + '"}' });
    assert.equal(r.status, 401);
    assert.equal(r.body, '');
    assert.equal(r.headers['www-authenticate'], 'Test realm="t"');
    assert.equal(r.headers['x-policy'], 'v1', 'headers the guard added before refusing are sent');
    assert.equal(r.headers['x-edge'], 'v1', 'service guard headers too');
    assert.equal(be.requests.length, before, 'no backend call');
    assert.equal(r.headers.connection, 'close', 'the unread body is not drained: the connection closes');
    assert.deepEqual(calls, ['edge', 'auth:v1'], 'service guard first, then the endpoint guard');
  });

  it('an accepted request: claims fill {JWT...} placeholders, policy headers reach backends and the client, middlewares wrap in order', async () => {
    const r = await request(url, '/secure/7', { method: 'POST', headers: { 'x-key': 'good' }, body: '{}' });
    assert.equal(r.status, 200, r.body);
    const body = r.json();
    assert.equal(body.a.path, '/a/alice/o%201/7');
    assert.equal(body.a.user, 'alice');
    assert.equal(body.a.only, null, 'a backend middleware changes only its own backend call');
    assert.equal(body.b.only, 'v1-b');
    assert.equal(body.wrapped, 'v1');
    assert.equal(r.headers['x-policy'], 'v1');
    assert.equal(r.headers['x-edge'], 'v1');
    assert.equal(r.headers.vary, 'Origin');
  });

  it('service guards run for every request: an early answer before routing, headers on a 404', async () => {
    const pre = await request(url, '/no/such/route', { method: 'OPTIONS' });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers['x-early'], 'yes');
    assert.equal(pre.headers['x-edge'], 'v1');
    const missing = await request(url, '/no/such/route');
    assert.equal(missing.status, 404);
    assert.equal(missing.headers['x-edge'], 'v1');
    const open = await request(url, '/open');
    assert.equal(open.status, 200);
    assert.equal(open.headers['x-policy'], undefined, 'an endpoint policy stays on its endpoint');
  });

  it('refusals are logged with their code, at most 20 a second per code one by one; the rest are counted', async () => {
    const cap = captureLog();
    try {
      await Promise.all(Array.from({ length: 100 }, () => request(url, '/secure/1', { method: 'POST' })));
    } finally {
      cap.restore();
    }
    const lines = cap.find('request refused');
    assert.ok(lines.length >= 1 && lines.length <= 40, `${lines.length} lines for 100 refusals (20 per second, at most two seconds)`);
    assert.equal(lines[0]!.code, 'TEST_DENIED');
    assert.equal(lines[0]!.namespace, 'test/auth');
  });

  it('an async guard is bounded by the endpoint timeout', async () => {
    const started = performance.now();
    const r = await request(url, '/secure/1', { method: 'POST', headers: { 'x-slow': '1' } });
    assert.equal(r.status, 401);
    assert.ok(performance.now() - started < 2000, 'answered at the 300 ms deadline, not after the 5 s guard');
  });

  it('policy state survives a reload of an unchanged policy and starts fresh for a changed one', async () => {
    const count = async () => (await request(url, '/secure/1', { method: 'POST', headers: { 'x-key': 'good' } })).json().count as number;
    const n = await count();
    const old = gw.swap(plan('v1'));
    await old.close(1000);
    assert.equal(await count(), n + 1, 'same options: the counter carried over');
    const older = gw.swap(plan('v2'));
    await older.close(1000);
    assert.equal(await count(), 1, 'changed options: a fresh counter');
    assert.ok(!state.keys().some((k) => k.includes('"v1"')), 'the retired policy state was disposed');
  });
});
