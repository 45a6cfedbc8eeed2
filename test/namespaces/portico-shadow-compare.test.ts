// portico/shadow-compare: a real `portico run` with its management listener,
// a live backend and a shadow backend that differs from it on purpose, one
// endpoint per kind of difference. Each test checks that the client gets the
// live backend's answer, unchanged and undelayed, and that the comparison is
// counted in /__stats and /metrics, with its example. Hostile shadows (one
// that hangs, resets, answers 100 MB) leave the client and the process fine.
// Then --workers 2 (counts and examples summed) and the configuration checks.

import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorAt, load, withEndpoint } from '../config/support.ts';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { loadTestConfig } from '../helpers/gateway.ts';
import { get } from '../helpers/http.ts';
import { LogLines } from '../helpers/log-lines.ts';
import { managementPort, sample } from '../helpers/metrics.ts';
import { startCli, writeConfigFile, type Running } from '../helpers/process.ts';

type Json = Record<string, any>;
const NS = 'portico/shadow-compare';

const USER = {
  id: 7,
  name: 'ann',
  email: 'ann@example.com',
  total: 10.5,
  updated_at: '2024-01-01T00:00:00Z',
  items: [{ id: 'a1', price: 2 }, { id: 'a2', price: 3 }],
  meta: { etag: 'e1' },
};
const LIVE_HEADERS = { 'cache-control': 'max-age=60', 'set-cookie': 'session=live-secret-cookie' };
const BIG = { blob: 'x'.repeat(2 * 1024 * 1024) };

/** What the shadow answers for each case (the live backend answers USER unless said otherwise). */
const SHADOW: Record<string, (res: ServerResponse) => void | Promise<void>> = {
  equal: (res) => json(res, USER, 200, LIVE_HEADERS),
  status: (res) => json(res, { error: 'not here' }, 404),
  missing: (res) => json(res, { ...USER, email: undefined }),
  changed: (res) => json(res, { ...USER, name: 'bob', total: '10.5' }),
  extra: (res) => json(res, { ...USER, nickname: 'annie' }),
  'tolerance-in': (res) => json(res, { ...USER, total: 10.54 }),
  'tolerance-out': (res) => json(res, { ...USER, total: 10.7 }),
  ignored: (res) => json(res, { ...USER, updated_at: '2025-06-06T06:06:06Z', items: [{ id: 'b1', price: 2 }, { id: 'b2', price: 3 }], meta: { etag: 'e2' } }),
  header: (res) => json(res, USER, 200, { 'cache-control': 'no-store', 'set-cookie': 'session=shadow-secret-cookie' }),
  slow: async (res) => {
    await sleep(400);
    json(res, USER);
  },
  reset: (res) => void res.socket!.destroy(),
  // Never answers: the endpoint timeout (1s) ends the call.
  hang: () => {},
  huge: (res) => hugeAnswer(res),
  static: (res) => json(res, USER),
  merged: (res) => json(res, { a: 1, b: 2 }),
  'big-live': (res) => json(res, BIG),
  busy: async (res) => {
    await sleep(300);
    json(res, USER);
  },
  'live-down': (res) => json(res, USER),
  'log-limit': (res) => json(res, { ...USER, email: undefined }),
};

const HUGE = 100 * 1024 * 1024;
let hugeSent = 0;

/** 100 MB, chunked (no Content-Length), written as fast as the reader takes it until it hangs up. */
async function hugeAnswer(res: ServerResponse): Promise<void> {
  const chunk = Buffer.alloc(64 * 1024, 0x20);
  res.writeHead(200, { 'content-type': 'application/json' });
  let sent = 0;
  let wake: (() => void) | undefined;
  res.once('close', () => wake?.());
  while (sent < HUGE && !res.destroyed) {
    sent += chunk.length;
    if (!res.write(chunk)) await new Promise<void>((r) => { wake = r; res.once('drain', r); });
  }
  hugeSent = Math.max(hugeSent, sent);
  res.end();
}

/** Compare options per case (default {}). */
const OPTIONS: Record<string, Record<string, unknown>> = {
  'tolerance-in': { numeric_tolerance: 0.05 },
  'tolerance-out': { numeric_tolerance: 0.05 },
  ignored: { ignore: ['$.updated_at', '$.items[*].id', '**.etag'] },
  header: { headers: ['Cache-Control', 'SET-COOKIE', 'Content-Type'], show_values: true },
  slow: { latency_margin: '100ms' },
  busy: { max_pending: 1, latency_margin: '10s' },
  'log-limit': { log_per_minute: 2 },
};

function endpointFor(name: string, live: string, shadow: string): Record<string, unknown> {
  const liveBackends =
    name === 'merged'
      ? [{ host: [live], url_pattern: '/live/a' }, { host: [live], url_pattern: '/live/b' }]
      : [{ host: [name === 'live-down' ? 'http://127.0.0.1:1' : live], url_pattern: `/live/${name}` }];
  return {
    endpoint: `/c/${name}`,
    ...(name === 'static' ? { extra_config: { proxy: { static: { strategy: 'always', data: { added: true } } } } } : {}),
    backend: [...liveBackends, { host: [shadow], url_pattern: `/shadow/${name}`, extra_config: { proxy: { shadow: true }, [NS]: OPTIONS[name] ?? {} } }],
  };
}

/** What the live backend answers at /live/NAME. */
function liveAnswer(name: string): unknown {
  if (name === 'merged') return { a: 1, b: 2 };
  if (name === 'big-live') return BIG;
  return USER;
}

let live: TestBackend;
let shadow: TestBackend;

before(async () => {
  live = await startBackend((req, res) => {
    const name = req.url!.slice('/live/'.length);
    if (name === 'a') return json(res, { a: 1 });
    if (name === 'b') return json(res, { b: 2 });
    json(res, liveAnswer(name), 200, LIVE_HEADERS);
  });
  shadow = await startBackend((req, res) => SHADOW[req.url!.slice('/shadow/'.length)](res));
});
after(async () => {
  await live.close();
  await shadow.close();
});

async function startGatewayWith(names: string[], workers = 1): Promise<{ run: Running; base: string; mgmt: string }> {
  const { file, cache } = writeConfigFile({
    version: 3,
    timeout: '1s',
    extra_config: { router: { disable_access_log: true } },
    endpoints: names.map((n) => endpointFor(n, live.url, shadow.url)),
  });
  const run = await startCli(['run', '-c', file, '-p', '0', '--management-port', '0', '--workers', String(workers), '--cache-dir', cache()], { PORTICO_WORKERS: String(workers) });
  return { run, base: `http://127.0.0.1:${run.port}`, mgmt: `http://127.0.0.1:${managementPort(run)}` };
}

interface Entry {
  comparisons: Record<string, number>;
  diffs: Record<string, number>;
  examples: Json[];
}

/** The /__stats shadow entry of a case once `n` comparisons (any result) are counted; bounded wait. */
async function settled(mgmt: string, name: string, n: number): Promise<Entry> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const s = (await get(mgmt, '/__stats')).json() as Json;
    const e = s.shadow?.[`/c/${name}`]?.[`/shadow/${name}`] as Entry | undefined;
    const total = Object.values(e?.comparisons ?? {}).reduce((a, b) => a + b, 0);
    if (e && total >= n) return e;
    if (Date.now() > deadline) throw new Error(`${name}: ${total} of ${n} comparisons counted: ${JSON.stringify(s.shadow)}`);
    await sleep(20);
  }
}

/** The client's answer: the live backend's, whatever the shadow did. */
async function assertLive(base: string, name: string, expected: unknown = liveAnswer(name)): Promise<number> {
  const started = performance.now();
  const r = await get(base, `/c/${name}`);
  const ms = performance.now() - started;
  assert.equal(r.status, 200, `${name}: ${r.body.slice(0, 200)}`);
  assert.deepEqual(r.json(), expected);
  return ms;
}

const labels = (name: string, extra: Record<string, string>) => ({ endpoint: `/c/${name}`, backend: `/shadow/${name}`, ...extra });

describe('portico/shadow-compare on real backends', () => {
  let gw: { run: Running; base: string; mgmt: string };
  let logs: LogLines;

  before(async () => {
    gw = await startGatewayWith(Object.keys(SHADOW));
    logs = new LogLines(gw.run);
  });
  after(async () => {
    gw.run.child.kill('SIGTERM');
    await gw.run.exited;
  });

  /** One request; its comparison counted as `comparisons`, with `diffs`; the example's differences when given. */
  const cases: { name: string; title: string; comparisons: Record<string, number>; diffs: Record<string, number>; example?: Json[] }[] = [
    { name: 'equal', title: 'the same answer: equal, no difference', comparisons: { equal: 1 }, diffs: {} },
    { name: 'status', title: 'status: the shadow answers 404', comparisons: { different: 1 }, diffs: { status: 1 }, example: [{ kind: 'status', live: 200, shadow: 404 }] },
    { name: 'missing', title: 'missing field: in the live answer, not in the shadow one', comparisons: { different: 1 }, diffs: { missing_field: 1 }, example: [{ kind: 'missing_field', path: '$.email' }] },
    {
      name: 'changed',
      title: 'changed value: another value, another type',
      comparisons: { different: 1 },
      diffs: { changed_value: 1 },
      example: [{ kind: 'changed_value', path: '$.name' }, { kind: 'changed_value', path: '$.total', live_type: 'number', shadow_type: 'string' }],
    },
    { name: 'extra', title: 'extra field: in the shadow answer only', comparisons: { different: 1 }, diffs: { extra_field: 1 }, example: [{ kind: 'extra_field', path: '$.nickname' }] },
    { name: 'tolerance-in', title: 'a number within numeric_tolerance is equal', comparisons: { equal: 1 }, diffs: {} },
    { name: 'tolerance-out', title: 'a number beyond numeric_tolerance is a changed value', comparisons: { different: 1 }, diffs: { changed_value: 1 }, example: [{ kind: 'changed_value', path: '$.total' }] },
    { name: 'ignored', title: 'ignored paths (exact, [*], **) are not counted', comparisons: { equal: 1 }, diffs: {} },
    {
      name: 'header',
      title: 'header: the selected headers, case-insensitive, names only (never values, even with show_values)',
      comparisons: { different: 1 },
      diffs: { header: 1 },
      example: [{ kind: 'header', header: 'cache-control' }, { kind: 'header', header: 'set-cookie' }],
    },
    { name: 'reset', title: 'shadow error: the shadow resets the connection', comparisons: { different: 1 }, diffs: { shadow_error: 1 }, example: [{ kind: 'shadow_error', code: 'BACKEND_UNREACHABLE' }] },
    { name: 'static', title: 'the answer as the backends composed it: proxy.static changes the client answer, not the comparison', comparisons: { equal: 1 }, diffs: {} },
    { name: 'merged', title: 'several live backends: their merged answer is compared', comparisons: { equal: 1 }, diffs: {} },
    { name: 'big-live', title: 'a live answer over max_body_bytes is not compared', comparisons: { skipped_too_large: 1 }, diffs: {} },
  ];

  for (const c of cases) {
    it(c.title, async () => {
      await assertLive(gw.base, c.name, c.name === 'static' ? { ...USER, added: true } : liveAnswer(c.name));
      const e = await settled(gw.mgmt, c.name, 1);
      assert.deepEqual(e.comparisons, c.comparisons);
      assert.deepEqual(e.diffs, c.diffs);
      if (c.example) {
        assert.equal(e.examples.length, 1);
        const ex = e.examples[0];
        assert.deepEqual(ex.diffs, c.example);
        assert.equal(ex.method, 'GET');
        assert.equal(ex.path, `/c/${c.name}`);
        assert.equal(ex.live.status, 200);
        assert.match(ex.request_id, /\S/);
      } else assert.deepEqual(e.examples, []);
      const text = (await get(gw.mgmt, '/metrics')).body;
      for (const [result, n] of Object.entries(c.comparisons)) assert.equal(sample(text, 'portico_shadow_comparisons_total', labels(c.name, { result })), n);
      for (const [kind, n] of Object.entries(c.diffs)) assert.equal(sample(text, 'portico_shadow_diffs_total', labels(c.name, { kind })), n);
    });
  }

  it('latency regression: a shadow slower than latency_margin; the client does not wait for it', async () => {
    const ms = await assertLive(gw.base, 'slow');
    assert.ok(ms < 350, `the client answer took ${ms} ms (the shadow takes 400)`);
    const e = await settled(gw.mgmt, 'slow', 1);
    assert.deepEqual(e.diffs, { latency_regression: 1 });
    const d = e.examples[0].diffs[0];
    assert.equal(d.kind, 'latency_regression');
    assert.ok(d.shadow_ms >= 400 && d.live_ms < d.shadow_ms, JSON.stringify(d));
  });

  it('a shadow that hangs: the client is answered at once, the comparison is a shadow timeout at the endpoint timeout', async () => {
    const ms = await assertLive(gw.base, 'hang');
    assert.ok(ms < 800, `the client answer took ${ms} ms (the endpoint timeout is 1s)`);
    const e = await settled(gw.mgmt, 'hang', 1);
    assert.deepEqual(e.comparisons, { different: 1 });
    assert.deepEqual(e.diffs, { shadow_timeout: 1 });
    assert.equal(e.examples[0].shadow.error, 'TIMEOUT');
    assert.ok(e.examples[0].shadow.ms >= 950, `timed out after ${e.examples[0].shadow.ms} ms`);
  });

  it('a shadow answering 100 MB: the client is fine, the body is read no further than max_body_bytes, skipped as too large', async () => {
    const before = ((await get(gw.mgmt, '/__stats')).json() as Json).process.rss_bytes as number;
    for (let i = 0; i < 3; i++) await assertLive(gw.base, 'huge');
    const e = await settled(gw.mgmt, 'huge', 3);
    assert.deepEqual(e.comparisons, { skipped_too_large: 3 });
    assert.deepEqual(e.diffs, {});
    const afterRss = ((await get(gw.mgmt, '/__stats')).json() as Json).process.rss_bytes as number;
    // Loose: buffering the answers would add hundreds of MB.
    assert.ok(afterRss - before < 60 * 1024 * 1024, `RSS grew by ${Math.round((afterRss - before) / 1e6)} MB`);
    assert.ok(hugeSent < 32 * 1024 * 1024, `the shadow wrote ${Math.round(hugeSent / 1e6)} MB before the gateway hung up`);
    assert.equal((await get(gw.base, '/c/equal')).status, 200, 'the process serves on');
  });

  it('at most max_pending comparisons wait at once: the others are skipped and counted', async () => {
    const answers = await Promise.all([0, 1, 2].map(() => get(gw.base, '/c/busy')));
    for (const r of answers) assert.deepEqual(r.json(), USER);
    const e = await settled(gw.mgmt, 'busy', 3);
    assert.deepEqual(e.comparisons, { equal: 1, skipped_busy: 2 });
  });

  it('a live side that fails without a status is not compared (live_error); the client gets the error', async () => {
    assert.equal((await get(gw.base, '/c/live-down')).status, 500);
    const e = await settled(gw.mgmt, 'live-down', 1);
    assert.deepEqual(e.comparisons, { live_error: 1 });
  });

  it('logs differing comparisons, at most log_per_minute a minute, with paths and no header values', async () => {
    for (let i = 0; i < 4; i++) await assertLive(gw.base, 'log-limit');
    await settled(gw.mgmt, 'log-limit', 4);
    const line = await logs.nth('shadow answer differs', 1);
    await get(gw.mgmt, '/__stats');
    const mine = logs.all('shadow answer differs').filter((r) => r.endpoint === '/c/log-limit');
    assert.equal(mine.length, 2, 'two of four logged');
    assert.deepEqual(mine[0].diffs, [{ kind: 'missing_field', path: '$.email' }]);
    assert.equal(mine[0].backend, '/shadow/log-limit');
    assert.ok(line.request_id);
    assert.doesNotMatch(gw.run.output(), /secret-cookie/, 'header values never logged');
  });
});

describe('portico/shadow-compare with --workers 2', () => {
  let gw: { run: Running; base: string; mgmt: string };

  before(async () => {
    gw = await startGatewayWith(['missing', 'equal'], 2);
  });
  after(async () => {
    gw.run.child.kill('SIGTERM');
    await gw.run.exited;
  });

  it('counts and examples are summed over the workers', async () => {
    for (let i = 0; i < 12; i++) await assertLive(gw.base, 'missing');
    for (let i = 0; i < 5; i++) await assertLive(gw.base, 'equal');
    const e = await settled(gw.mgmt, 'missing', 12);
    assert.deepEqual(e.comparisons, { different: 12 });
    assert.deepEqual(e.diffs, { missing_field: 12 });
    // Each worker keeps its last 10; /__stats shows the newest 10 of them all.
    assert.equal(e.examples.length, 10);
    assert.ok(e.examples.every((x, i) => i === 0 || e.examples[i - 1].at >= x.at), 'newest first');
    assert.deepEqual((await settled(gw.mgmt, 'equal', 5)).comparisons, { equal: 5 });
    const text = (await get(gw.mgmt, '/metrics')).body;
    assert.equal(sample(text, 'portico_shadow_diffs_total', labels('missing', { kind: 'missing_field' })), 12);
    assert.equal(sample(text, 'portico_shadow_comparisons_total', labels('equal', { result: 'equal' })), 5);
  });
});

describe('portico/shadow-compare: configuration', () => {
  const shadowBackend = (options: unknown, proxy: unknown = { shadow: true }, extra: Record<string, unknown> = {}) =>
    withEndpoint({ backend: [{ url_pattern: '/live' }, { url_pattern: '/shadow', ...extra, extra_config: { proxy, [NS]: options } }] });
  const AT = `$.endpoints[0].backend[1].extra_config["${NS}"]`;

  it('reads every field into plain options, with the documented defaults', () => {
    const read = (options: unknown) => loadTestConfig(shadowBackend(options) as Record<string, unknown>).endpoints[0].backends[1].namespaces.find((u) => u.name === NS)!.options;
    assert.deepEqual(read({}), {
      headers: [],
      ignore: [],
      numericTolerance: 0,
      latencyMarginMs: 100,
      maxBodyBytes: 1048576,
      maxPending: 32,
      examples: 10,
      logSampleRate: 1,
      logPerMinute: 10,
      showValues: false,
    });
    const o = read({
      headers: ['Content-Type', 'content-type', 'ETag'],
      ignore: ['$.id', 'items[*].ts'],
      numeric_tolerance: 0.5,
      latency_margin: '1.5s',
      max_body_bytes: 4096,
      max_pending: 3,
      examples: 0,
      log_sample_rate: 0.25,
      log_per_minute: 0,
      show_values: true,
    });
    assert.deepEqual(structuredClone(o), o);
    assert.deepEqual(o, {
      headers: ['content-type', 'etag'],
      ignore: ['$.id', 'items[*].ts'],
      numericTolerance: 0.5,
      latencyMarginMs: 1500,
      maxBodyBytes: 4096,
      maxPending: 3,
      examples: 0,
      logSampleRate: 0.25,
      logPerMinute: 0,
      showValues: true,
    });
  });

  it('on a backend that is not a shadow: an error at its JSON path', () => {
    assert.match(errorAt(shadowBackend({}, { shadow: false }), AT).expected, /shadow backend/);
    assert.match(errorAt(withEndpoint({ backend: [{ url_pattern: '/b', extra_config: { [NS]: {} } }] }), `$.endpoints[0].backend[0].extra_config["${NS}"]`).found, /live backend/);
  });

  it('on a no-op shadow: an error (a streamed answer cannot be compared)', () => {
    assert.match(errorAt(shadowBackend({}, { shadow: true }, { encoding: 'no-op' }), AT).found, /no-op/);
  });

  it('reports precise errors for bad fields', () => {
    assert.match(errorAt(shadowBackend([]), AT).expected, /object/);
    assert.match(errorAt(shadowBackend({ ignore: ['$.a', 'a[x]'] }), `${AT}.ignore[1]`).found, /expected \[N\]/);
    assert.match(errorAt(shadowBackend({ ignore: ['**'] }), `${AT}.ignore[0]`).found, /whole answer/);
    assert.match(errorAt(shadowBackend({ headers: ['Bad Header'] }), `${AT}.headers[0]`).expected, /header name/);
    assert.match(errorAt(shadowBackend({ numeric_tolerance: -1 }), `${AT}.numeric_tolerance`).expected, />= 0/);
    assert.match(errorAt(shadowBackend({ log_sample_rate: 2 }), `${AT}.log_sample_rate`).expected, /from 0 to 1/);
    assert.match(errorAt(shadowBackend({ latency_margin: 'soon' }), `${AT}.latency_margin`).expected, /Go duration/);
    assert.match(errorAt(shadowBackend({ max_body_bytes: 0 }), `${AT}.max_body_bytes`).expected, /positive/);
    assert.match(errorAt(shadowBackend({ examples: 101 }), `${AT}.examples`).expected, /0 to 100/);
    const r = load(shadowBackend({ ignor: [] }));
    assert.deepEqual(r.errors, []);
    assert.match(r.warnings.find((w) => w.path === `${AT}.ignor`)!.expected, /did you mean "ignore"/);
  });

  it('at endpoint level it is misplaced (a warning: it belongs on a shadow backend)', () => {
    const r = load(withEndpoint({ extra_config: { [NS]: {} } }));
    assert.match(r.warnings.find((w) => w.path === `$.endpoints[0].extra_config["${NS}"]`)!.found, /backend level/);
  });
});
