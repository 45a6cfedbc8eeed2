// qos/circuit-breaker and qos/circuit-breaker/http: config checks, the
// closed -> open -> half-open -> closed machine against real backends on
// loopback, what counts as a failure (errors, hangs past the endpoint timeout,
// statuses, no-op answers, clients that leave), reload survival, /__health,
// and a flood of requests while half-open. KrakenD's timeout is an integer
// number of seconds: the open -> half-open steps wait one second.

import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { LocalServing } from '../../src/lifecycle/local-serving.ts';
import { Breaker, BREAKER_ERROR_CODES, STATE_CHANGE_MSG } from '../../src/namespaces/qos-circuit-breaker.ts';
import { errorAt, issueAt, load, withBackend } from '../config/support.ts';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { loadTestConfig, startGateway, type TestGateway } from '../helpers/gateway.ts';
import { get } from '../helpers/http.ts';
import { captureLog, discard } from '../helpers/lifecycle-support.ts';

const CB = 'qos/circuit-breaker';
const CBH = 'qos/circuit-breaker/http';
const at = (ns: string) => `$.endpoints[0].backend[0].extra_config["${ns}"]`;
const nsConfig = (ns: string, options: unknown) => withBackend({ extra_config: { [ns]: options } });

/** Wait past a 1 s breaker timeout (KrakenD accepts whole seconds only). */
const OPEN_TIMEOUT_WAIT_MS = 1_100;

describe('qos/circuit-breaker: config', () => {
  it('reads the documented fields into plain, cloneable options', () => {
    const cfg = loadTestConfig(
      nsConfig(CB, { interval: 60, timeout: 10, max_errors: 3, name: 'users', log_status_change: true }),
    );
    const uses = cfg.endpoints[0]!.backends[0]!.namespaces;
    assert.deepEqual(structuredClone(uses), uses);
    assert.deepEqual(uses, [{ name: CB, options: { intervalS: 60, timeoutS: 10, maxErrors: 3, name: 'users', logStatusChange: true } }]);
  });

  it('defaults name and log_status_change', () => {
    const cfg = loadTestConfig(nsConfig(CB, { interval: 0, timeout: 0, max_errors: 0 }));
    assert.deepEqual(cfg.endpoints[0]!.backends[0]!.namespaces[0]!.options, { intervalS: 0, timeoutS: 0, maxErrors: 0, name: undefined, logStatusChange: false });
  });

  it('requires interval, timeout and max_errors', () => {
    for (const key of ['interval', 'timeout', 'max_errors']) {
      const o: Record<string, unknown> = { interval: 1, timeout: 1, max_errors: 1 };
      delete o[key];
      const issue = errorAt(nsConfig(CB, o), `${at(CB)}.${key}`);
      assert.match(issue.found, /missing/);
    }
  });

  it('refuses wrong types with precise errors', () => {
    assert.match(errorAt(nsConfig(CB, { interval: '60s', timeout: 1, max_errors: 1 }), `${at(CB)}.interval`).expected, /integer >= 0/);
    assert.match(errorAt(nsConfig(CB, { interval: 1, timeout: 1.5, max_errors: 1 }), `${at(CB)}.timeout`).expected, /integer >= 0/);
    assert.match(errorAt(nsConfig(CB, { interval: 1, timeout: 1, max_errors: -1 }), `${at(CB)}.max_errors`).expected, /integer >= 0/);
    errorAt(nsConfig(CB, { interval: 1, timeout: 1, max_errors: 1, name: 5 }), `${at(CB)}.name`);
    errorAt(nsConfig(CB, { interval: 1, timeout: 1, max_errors: 1, log_status_change: 'yes' }), `${at(CB)}.log_status_change`);
    errorAt(nsConfig(CB, [1]), at(CB));
  });

  it('warns about unknown keys with a suggestion', () => {
    const r = load(nsConfig(CB, { interval: 1, timeout: 1, max_errors: 1, max_error: 2 }));
    assert.deepEqual(r.errors, []);
    const w = issueAt(r.warnings, `${at(CB)}.max_error`);
    assert.match(w.expected, /max_errors/);
  });

  it('is refused outside a backend', () => {
    const r = load(withBackend({}, { extra_config: { [CB]: { interval: 1, timeout: 1, max_errors: 1 } } }));
    assert.ok(r.errors.some((e) => e.path === `$.endpoints[0].extra_config["${CB}"]`), JSON.stringify(r.errors));
  });
});

describe('qos/circuit-breaker/http: config', () => {
  it('reads valid_status_codes (sorted, deduplicated) with the common fields', () => {
    const cfg = loadTestConfig(nsConfig(CBH, { interval: 5, timeout: 2, max_errors: 1, valid_status_codes: [404, 200, 200, 201], name: 'h' }));
    const uses = cfg.endpoints[0]!.backends[0]!.namespaces;
    assert.deepEqual(structuredClone(uses), uses);
    assert.deepEqual(uses[0]!.options, { intervalS: 5, timeoutS: 2, maxErrors: 1, name: 'h', logStatusChange: false, validStatusCodes: [200, 201, 404] });
  });

  it('requires valid_status_codes and checks each code', () => {
    const base = { interval: 1, timeout: 1, max_errors: 1 };
    assert.match(errorAt(nsConfig(CBH, base), `${at(CBH)}.valid_status_codes`).found, /missing/);
    errorAt(nsConfig(CBH, { ...base, valid_status_codes: 200 }), `${at(CBH)}.valid_status_codes`);
    errorAt(nsConfig(CBH, { ...base, valid_status_codes: [200, 700] }), `${at(CBH)}.valid_status_codes[1]`);
    errorAt(nsConfig(CBH, { ...base, valid_status_codes: ['200'] }), `${at(CBH)}.valid_status_codes[0]`);
    errorAt(nsConfig(CBH, { interval: 1, timeout: 1, valid_status_codes: [200] }), `${at(CBH)}.max_errors`);
    const r = load(nsConfig(CBH, { ...base, valid_status_codes: [] }));
    assert.deepEqual(r.errors, []);
    issueAt(r.warnings, `${at(CBH)}.valid_status_codes`);
  });
});

// ---------------------------------------------------------------- behaviour

/** A backend whose answer the test switches: 'ok', 'fail' (500), 'hang', or a status. */
interface Controlled {
  backend: TestBackend;
  mode: 'ok' | 'fail' | 'hang' | number;
  /** Resolves the hanging requests. */
  release(): void;
  /** Resolves when the backend has received its nth request in total. */
  received(n: number): Promise<void>;
}

async function controlledBackend(): Promise<Controlled> {
  let hung: (() => void)[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  let count = 0;
  const c: Controlled = {
    backend: undefined as unknown as TestBackend,
    mode: 'ok',
    release() {
      const h = hung;
      hung = [];
      for (const f of h) f();
    },
    received(n) {
      if (count >= n) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ n, resolve }));
    },
  };
  c.backend = await startBackend(async (req, res) => {
    count++;
    for (const w of waiters.filter((w) => w.n <= count)) w.resolve();
    const mode = c.mode;
    if (mode === 'hang') await new Promise<void>((r) => hung.push(r));
    if (mode === 'fail') return json(res, { error: 'boom' }, 500);
    if (typeof mode === 'number') return json(res, { status: mode }, mode);
    json(res, { ok: true, path: req.url });
  });
  return c;
}

function breakerConfig(c: Controlled, options: Record<string, unknown>, extra: { ns?: string; encoding?: string; other?: TestBackend; timeout?: string } = {}) {
  const backend: Record<string, unknown>[] = [
    { host: [c.backend.url], url_pattern: '/b', encoding: extra.encoding ?? 'json', extra_config: { [extra.ns ?? CB]: options } },
  ];
  if (extra.other) backend.push({ host: [extra.other.url], url_pattern: '/other', group: 'other' });
  return {
    endpoints: [
      {
        endpoint: '/e',
        timeout: extra.timeout ?? '300ms',
        output_encoding: extra.encoding === 'no-op' ? 'no-op' : 'json',
        backend,
      },
    ],
  };
}

describe('qos/circuit-breaker: behaviour', () => {
  let c: Controlled;
  let gw: TestGateway | undefined;
  let log: ReturnType<typeof captureLog>;
  before(async () => {
    c = await controlledBackend();
  });
  after(async () => {
    c.release();
    await c.backend.close();
  });
  beforeEach(() => {
    log = captureLog();
  });
  afterEach(async () => {
    log.restore();
    c.release();
    c.mode = 'ok';
    await gw?.close();
    gw = undefined;
  });
  const calls = () => c.backend.requests.length;

  it('opens after more than max_errors consecutive failures and then fails without calling the backend', async () => {
    gw = await startGateway(breakerConfig(c, { interval: 60, timeout: 60, max_errors: 2 }));
    c.mode = 'fail';
    const start = calls();
    for (let i = 0; i < 3; i++) assert.equal((await get(gw.url, '/e')).status, 500);
    assert.equal(calls() - start, 3, 'max_errors failures and one more reach the backend');
    c.mode = 'ok';
    const r = await get(gw.url, '/e');
    assert.equal(r.status, 500, 'the open breaker fails the backend');
    assert.equal(r.body, '', 'no message unless return_error_msg');
    assert.equal(calls() - start, 3, 'the open breaker does not call the backend');
    assert.equal(log.entries.at(-1)!.code, BREAKER_ERROR_CODES.open);
  });

  it('a success resets the consecutive count', async () => {
    gw = await startGateway(breakerConfig(c, { interval: 60, timeout: 60, max_errors: 1 }));
    const start = calls();
    for (const mode of ['fail', 'ok', 'fail', 'ok', 'fail'] as const) {
      c.mode = mode;
      await get(gw.url, '/e');
    }
    c.mode = 'ok';
    assert.equal((await get(gw.url, '/e')).status, 200, 'never two failures in a row: still closed');
    assert.equal(calls() - start, 6);
  });

  it('an open breaker fails only its backend: the endpoint answers partially', async () => {
    const other = await startBackend((_req, res) => json(res, { other: true }));
    try {
      gw = await startGateway(breakerConfig(c, { interval: 60, timeout: 60, max_errors: 0 }, { other }));
      c.mode = 'fail';
      await get(gw.url, '/e');
      const start = calls();
      c.mode = 'ok';
      const r = await get(gw.url, '/e');
      assert.equal(r.status, 200);
      assert.deepEqual(r.json(), { other: { other: true } });
      assert.equal(r.headers['x-portico-completed'], 'false');
      assert.equal(calls(), start, 'the open breaker did not call its backend');
    } finally {
      await other.close();
    }
  });

  it('hostile: fails, hangs past the endpoint timeout, recovers; each state change logged once', async () => {
    gw = await startGateway(breakerConfig(c, { interval: 60, timeout: 1, max_errors: 1, name: 'flaky', log_status_change: true }, { timeout: '150ms' }));
    c.mode = 'fail';
    assert.equal((await get(gw.url, '/e')).status, 500);
    c.mode = 'hang';
    const t0 = performance.now();
    assert.equal((await get(gw.url, '/e')).status, 500, 'the hang ends with the endpoint timeout');
    assert.ok(performance.now() - t0 < 1_000);
    c.release();
    assert.deepEqual(
      log.find(STATE_CHANGE_MSG).map((e) => [e.name, e.from, e.to, e.level]),
      [['flaky', 'closed', 'open', 'warn']],
    );
    c.mode = 'ok';
    const start = calls();
    assert.equal((await get(gw.url, '/e')).status, 500);
    assert.equal(calls(), start, 'open: no call');
    await sleep(OPEN_TIMEOUT_WAIT_MS);
    assert.equal((await get(gw.url, '/e')).status, 200, 'the trial call succeeds');
    assert.equal(calls(), start + 1);
    assert.equal((await get(gw.url, '/e')).status, 200, 'closed again');
    assert.deepEqual(
      log.find(STATE_CHANGE_MSG).map((e) => [e.from, e.to]),
      [['closed', 'open'], ['open', 'half-open'], ['half-open', 'closed']],
    );
    assert.equal(log.find(STATE_CHANGE_MSG)[0]!.namespace, CB);
  });

  it('a failed trial opens the breaker again; without log_status_change nothing is logged', async () => {
    gw = await startGateway(breakerConfig(c, { interval: 0, timeout: 1, max_errors: 0 }));
    c.mode = 'fail';
    await get(gw.url, '/e');
    await sleep(OPEN_TIMEOUT_WAIT_MS);
    const start = calls();
    await get(gw.url, '/e');
    assert.equal(calls(), start + 1, 'one trial');
    c.mode = 'ok';
    assert.equal((await get(gw.url, '/e')).status, 500, 'open again after the failed trial');
    assert.equal(calls(), start + 1);
    assert.deepEqual(log.find(STATE_CHANGE_MSG), []);
  });

  it('hostile: a flood of concurrent requests while half-open lets one trial through', async () => {
    gw = await startGateway(breakerConfig(c, { interval: 60, timeout: 1, max_errors: 0 }, { timeout: '5s' }));
    c.mode = 'fail';
    await get(gw.url, '/e');
    await sleep(OPEN_TIMEOUT_WAIT_MS);
    c.mode = 'hang';
    const start = calls();
    const trial = get(gw.url, '/e');
    await c.received(start + 1);
    const flood = await Promise.all(Array.from({ length: 30 }, () => get(gw!.url, '/e')));
    assert.ok(flood.every((r) => r.status === 500), 'the others fail at once');
    assert.equal(calls(), start + 1, 'only the trial reached the backend');
    assert.equal(log.entries.filter((e) => e.code === BREAKER_ERROR_CODES.tooManyRequests).length, 30);
    c.mode = 'ok';
    c.release();
    assert.equal((await trial).status, 200);
    const again = await Promise.all(Array.from({ length: 5 }, () => get(gw!.url, '/e')));
    assert.ok(again.every((r) => r.status === 200), 'closed after the successful trial');
  });

  it('a client that goes away is not counted as a failure', async () => {
    gw = await startGateway(breakerConfig(c, { interval: 60, timeout: 60, max_errors: 0 }, { timeout: '5s' }));
    c.mode = 'hang';
    const start = calls();
    const req = httpRequest({ host: '127.0.0.1', port: gw.port, path: '/e', agent: false });
    req.on('error', () => {});
    req.end();
    await c.received(start + 1);
    req.destroy();
    await sleep(50);
    c.release();
    c.mode = 'ok';
    assert.equal((await get(gw.url, '/e')).status, 200, 'still closed: the backend was called');
    assert.equal(calls(), start + 2);
  });

  it('interval: the consecutive count restarts with each window', async () => {
    gw = await startGateway(breakerConfig(c, { interval: 1, timeout: 60, max_errors: 1 }));
    c.mode = 'fail';
    await get(gw.url, '/e');
    await sleep(OPEN_TIMEOUT_WAIT_MS);
    await get(gw.url, '/e');
    c.mode = 'ok';
    const start = calls();
    assert.equal((await get(gw.url, '/e')).status, 200, 'the two failures fell in different windows');
    c.mode = 'fail';
    await get(gw.url, '/e');
    await get(gw.url, '/e');
    c.mode = 'ok';
    assert.equal((await get(gw.url, '/e')).status, 500, 'two in one window open it');
    assert.equal(calls(), start + 3);
  });

  it('no-op answers are successes whatever their status; decode errors are failures', async () => {
    gw = await startGateway(breakerConfig(c, { interval: 60, timeout: 60, max_errors: 0 }, { encoding: 'no-op' }));
    c.mode = 503;
    for (let i = 0; i < 3; i++) assert.equal((await get(gw.url, '/e')).status, 503, 'no-op passes the status through, the backend is called');
    const bad = await startBackend((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{not json');
    });
    try {
      await gw.reload({
        endpoints: [{ endpoint: '/d', backend: [{ host: [bad.url], url_pattern: '/x', extra_config: { [CB]: { interval: 60, timeout: 60, max_errors: 0 } } }] }],
      });
      await get(gw.url, '/d');
      await get(gw.url, '/d');
      assert.equal(bad.requests.length, 1, 'the decode error opened the breaker');
    } finally {
      await bad.close();
    }
  });

  it('a reload that leaves the breaker unchanged keeps its state; a changed one starts closed', async () => {
    const cfg = breakerConfig(c, { interval: 60, timeout: 60, max_errors: 0 });
    gw = await startGateway(cfg);
    c.mode = 'fail';
    await get(gw.url, '/e');
    c.mode = 'ok';
    const start = calls();
    await gw.reload({ ...cfg, endpoints: [...cfg.endpoints, { endpoint: '/new', backend: [{ host: [c.backend.url], url_pattern: '/n' }] }] });
    assert.equal((await get(gw.url, '/e')).status, 500, 'still open after the reload');
    assert.equal(calls(), start);
    await gw.reload(breakerConfig(c, { interval: 60, timeout: 60, max_errors: 1 }));
    assert.equal((await get(gw.url, '/e')).status, 200, 'a changed breaker is a new one');
    assert.equal(calls(), start + 1);
  });

  it('open and half-open refusals carry stable codes', () => {
    const b = new Breaker(CB, 'unit', { intervalS: 0, timeoutS: 60, maxErrors: 0, name: 'unit', logStatusChange: false }, '/e');
    const gen = b.before();
    b.after(gen, false);
    assert.equal(b.state(), 'open');
    assert.throws(() => b.before(), (e: { code?: string; status?: number }) => e.code === BREAKER_ERROR_CODES.open && e.status === 500);
    assert.deepEqual(b.reportHealth(), { section: 'breakers', name: 'unit', value: 'open' });
  });

  it('timeout 0 means gobreaker\'s 60 s', () => {
    const b = new Breaker(CB, 'unit', { intervalS: 0, timeoutS: 0, maxErrors: 0, name: undefined, logStatusChange: false }, '/e');
    b.after(b.before(), false);
    assert.equal(b.state(performance.now() + 59_000), 'open');
    assert.equal(b.state(performance.now() + 60_001), 'half-open');
  });
});

describe('qos/circuit-breaker/http: behaviour', () => {
  let c: Controlled;
  let gw: TestGateway | undefined;
  let log: ReturnType<typeof captureLog>;
  before(async () => {
    c = await controlledBackend();
  });
  after(async () => {
    await c.backend.close();
  });
  beforeEach(() => {
    log = captureLog();
  });
  afterEach(async () => {
    log.restore();
    c.mode = 'ok';
    await gw?.close();
    gw = undefined;
  });
  const calls = () => c.backend.requests.length;
  const opts = { interval: 60, timeout: 60, max_errors: 0, valid_status_codes: [200, 404] };

  it('listed statuses are not failures, other statuses are', async () => {
    gw = await startGateway(breakerConfig(c, opts, { ns: CBH }));
    c.mode = 404;
    const first = calls();
    for (let i = 0; i < 3; i++) await get(gw.url, '/e');
    assert.equal(calls(), first + 3, 'every 404 reached the backend');
    const start = calls();
    c.mode = 'ok';
    assert.equal((await get(gw.url, '/e')).status, 200, 'three 404s did not open it');
    c.mode = 500;
    await get(gw.url, '/e');
    c.mode = 'ok';
    assert.equal((await get(gw.url, '/e')).status, 500, 'a 500 opened it');
    assert.equal(calls(), start + 2);
  });

  it('reads the status of no-op answers', async () => {
    gw = await startGateway(breakerConfig(c, opts, { ns: CBH, encoding: 'no-op' }));
    c.mode = 404;
    await get(gw.url, '/e');
    c.mode = 503;
    const start = calls();
    assert.equal((await get(gw.url, '/e')).status, 503);
    c.mode = 'ok';
    assert.equal((await get(gw.url, '/e')).status, 500, 'the 503 opened it');
    assert.equal(calls(), start + 1);
  });

  it('return_error_details answers are judged by their status', async () => {
    const cfg = breakerConfig(c, opts, { ns: CBH });
    (cfg.endpoints[0]!.backend[0] as Record<string, unknown>).extra_config = { [CBH]: opts, 'backend/http': { return_error_details: 'b' } };
    gw = await startGateway(cfg);
    c.mode = 404;
    const r = await get(gw.url, '/e');
    assert.equal(r.json().error_b.http_status_code, 404);
    c.mode = 502;
    await get(gw.url, '/e');
    const start = calls();
    c.mode = 'ok';
    assert.equal((await get(gw.url, '/e')).status, 500, 'the 502 opened it, the 404 did not');
    assert.equal(calls(), start);
  });

  it('warns when both breakers guard one backend, and runs both', async () => {
    const cfg = breakerConfig(c, opts, { ns: CBH });
    (cfg.endpoints[0]!.backend[0] as Record<string, unknown>).extra_config = { [CBH]: opts, [CB]: { interval: 60, timeout: 60, max_errors: 0 } };
    gw = await startGateway(cfg);
    assert.equal(log.find('qos/circuit-breaker and qos/circuit-breaker/http').length, 1);
    c.mode = 404;
    await get(gw.url, '/e');
    const start = calls();
    c.mode = 'ok';
    assert.equal((await get(gw.url, '/e')).status, 500, 'the CE breaker counted the 404 and opened');
    assert.equal(calls(), start);
    assert.deepEqual(gw.state.report(), { breakers: { 'GET /e backend 0 (GET /b)': 'open', 'GET /e backend 0 (GET /b) #2': 'closed' } });
  });

  it('connection errors and timeouts count', async () => {
    gw = await startGateway(breakerConfig(c, opts, { ns: CBH, timeout: '100ms' }));
    c.mode = 'hang';
    await get(gw.url, '/e');
    c.release();
    c.mode = 'ok';
    const start = calls();
    assert.equal((await get(gw.url, '/e')).status, 500);
    assert.equal(calls(), start);
  });
});

describe('circuit breakers in /__health', () => {
  it('shows each breaker by name: open, then closed after a successful trial', async () => {
    const c = await controlledBackend();
    const cfg = loadTestConfig(breakerConfig(c, { interval: 60, timeout: 1, max_errors: 0, name: 'users' }));
    const serving = new LocalServing({ health: () => ({ extra: 1 }), ready: () => true }, { accessLogOut: discard() });
    const log = captureLog();
    try {
      await serving.apply({ version: 1, hash: 'h', source: 'file', appliedAt: new Date(), document: {}, config: { ...cfg, port: 0 } }, undefined);
      const port = await serving.listen();
      const base = `http://127.0.0.1:${port}`;
      assert.deepEqual((await get(base, '/__health')).json().breakers, { users: 'closed' });
      c.mode = 'fail';
      await get(base, '/e');
      const h = (await get(base, '/__health')).json();
      assert.equal(h.status, 'ok');
      assert.equal(h.extra, 1, 'the hooks\' fields stay');
      assert.deepEqual(h.breakers, { users: 'open' });
      await sleep(OPEN_TIMEOUT_WAIT_MS);
      assert.deepEqual((await get(base, '/__health')).json().breakers, { users: 'half-open' });
      c.mode = 'ok';
      assert.equal((await get(base, '/e')).status, 200);
      assert.deepEqual((await get(base, '/__health')).json().breakers, { users: 'closed' });
    } finally {
      log.restore();
      await serving.shutdown(1000);
      await c.backend.close();
    }
  });
});
