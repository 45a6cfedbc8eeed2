// 100 SIGHUP reloads of a real `portico run` process, valid and invalid mixed,
// while 8 keep-alive client loops hammer endpoints every version has: not one
// request may fail, every reload must be logged as applied or rejected, and
// /__health must follow along.

import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { Pool } from 'undici';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { get } from '../helpers/http.ts';
import { LogLines } from '../helpers/log-lines.ts';
import { startCli, type Running } from '../helpers/process.ts';

const RELOADS = 100;
const LOOPS = 8;
/** The whole test stops by itself well within this. */
const BUDGET_MS = 28_000;
/** Conservative: a 2-core machine running other test files at the same time still does far more. */
const MIN_REQUESTS = 300;

type Variant = 'A' | 'B';

function validConfig(variant: Variant, b1: string, b2: string): Record<string, unknown> {
  return {
    version: 3,
    name: `reload-under-load ${variant}`,
    // The variants differ in the timeout, a host list and one endpoint.
    timeout: variant === 'A' ? '3s' : '2500ms',
    extra_config: { router: { disable_access_log: true } },
    endpoints: [
      {
        endpoint: '/merged',
        backend: [
          { host: [b1], url_pattern: '/users/1' },
          { host: [b2], url_pattern: '/orders' },
        ],
      },
      {
        endpoint: '/noop',
        output_encoding: 'no-op',
        backend: [{ host: variant === 'A' ? [b1] : [b1, b2], url_pattern: '/ping', encoding: 'no-op' }],
      },
      { endpoint: variant === 'A' ? '/extra-a' : '/extra-b', backend: [{ host: [b1], url_pattern: '/users/1' }] },
    ],
  };
}

/** Three ways to be wrong, taken in turn. */
function invalidText(k: number, b1: string): string {
  switch (k % 3) {
    case 0: // not JSON at all: a file cut short
      return JSON.stringify(validConfig('A', b1, b1), null, 2).slice(0, 120);
    case 1: // JSON, wrong shape
      return JSON.stringify({ version: 3, timeout: 42, endpoints: { '/merged': 'nope' } });
    default: // an endpoint with no backend
      return JSON.stringify({ version: 3, endpoints: [{ endpoint: '/merged', backend: [] }] });
  }
}

function writeAtomically(file: string, text: string, n: number): void {
  const tmp = `${file}.${n}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

it('100 reloads (1 in 3 invalid) under constant keep-alive load: no failed request, every outcome logged', { timeout: 30_000 }, async (t) => {
  const testStart = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'portico-reload-'));
  const cacheDir = join(dir, 'cache');
  const file = join(dir, 'portico.json');
  let b1: TestBackend | undefined;
  let b2: TestBackend | undefined;
  let gw: Running | undefined;
  let client: Pool | undefined;
  let stop = false;
  let loops: Promise<void>[] = [];
  try {
    b1 = await startBackend((req, res) => {
      if (req.url === '/users/1') return json(res, { id: 1, name: 'ada' });
      if (req.url === '/ping') return json(res, { pong: 'b1' });
      json(res, { error: 'not found' }, 404);
    });
    b2 = await startBackend((req, res) => {
      if (req.url === '/orders') return json(res, { orders: [10, 11] });
      if (req.url === '/ping') return json(res, { pong: 'b2' });
      json(res, { error: 'not found' }, 404);
    });
    const [u1, u2] = [b1.url, b2.url];

    writeFileSync(file, JSON.stringify(validConfig('A', u1, u2)));
    gw = await startCli(['run', '-c', file, '-p', '0', '--cache-dir', cacheDir]);
    const logs = new LogLines(gw);
    const base = `http://127.0.0.1:${gw.port}`;
    const first = await logs.nth('config applied', 1);
    assert.equal(first.version, 1);

    // --- the load -------------------------------------------------------------
    const statuses = new Map<number, number>();
    const clientErrors = new Map<string, number>();
    const bad: string[] = [];
    let responses = 0;
    const bump = <K>(m: Map<K, number>, k: K) => m.set(k, (m.get(k) ?? 0) + 1);
    client = new Pool(base, { connections: LOOPS, pipelining: 1, keepAliveTimeout: 30_000 });
    const pool = client;
    const loop = async (n: number) => {
      for (let i = n; !stop; i++) {
        const path = i % 2 === 0 ? '/merged' : '/noop';
        try {
          const r = await pool.request({ path, method: 'GET' });
          const body = await r.body.text();
          responses++;
          bump(statuses, r.statusCode);
          if (r.statusCode !== 200) {
            if (bad.length < 20) bad.push(`${path} -> ${r.statusCode} ${body.slice(0, 200)}`);
          } else if (path === '/merged') {
            // A partial answer is a 200 too: it must be complete and carry both backends.
            const v = JSON.parse(body) as Record<string, unknown>;
            if (r.headers['x-portico-completed'] !== 'true' || v.name !== 'ada' || !Array.isArray(v.orders)) {
              bump(clientErrors, 'incomplete /merged');
              if (bad.length < 20) bad.push(`/merged incomplete: ${r.headers['x-portico-completed']} ${body}`);
            }
          } else if (!/^\{"pong":"b[12]"\}$/.test(body)) {
            bump(clientErrors, 'unexpected /noop body');
            if (bad.length < 20) bad.push(`/noop body: ${body}`);
          }
        } catch (err) {
          const e = err as NodeJS.ErrnoException;
          bump(clientErrors, e.code ?? e.name ?? String(err));
          if (bad.length < 20) bad.push(`${path}: ${e.code ?? ''} ${e.message}`);
        }
      }
    };
    loops = Array.from({ length: LOOPS }, (_, n) => loop(n));

    // Warm up: every loop has a connection and traffic flows before the first reload.
    while (responses < LOOPS * 4 && Date.now() - testStart < 5_000) await new Promise((r) => setTimeout(r, 10));
    const beforeReloads = responses;

    // --- the reloads ----------------------------------------------------------
    let version = 1;
    let applied = 0;
    let rejected = 0;
    let valid = 0;
    let lastValid: Variant = 'A';
    const perReload: number[] = [];
    const wallMs: number[] = [];
    const reloadStart = Date.now();
    for (let i = 0; i < RELOADS; i++) {
      assert.ok(Date.now() - testStart < BUDGET_MS - 3_000, `out of time after ${i} reloads`);
      const invalid = i % 3 === 2;
      let variant: Variant | undefined;
      if (invalid) {
        writeAtomically(file, invalidText(rejected, u1), i);
      } else {
        // Strict alternation, so every valid config differs from the one serving.
        variant = valid++ % 2 === 0 ? 'B' : 'A';
        writeAtomically(file, JSON.stringify(validConfig(variant, u1, u2)), i);
      }
      const from = logs.records.length;
      const before = responses;
      const t0 = performance.now();
      gw.child.kill('SIGHUP');
      const outcome = await logs.next(from, ['config applied', 'config rejected'], 10_000);
      wallMs.push(performance.now() - t0);
      perReload.push(responses - before);

      if (invalid) {
        assert.match(String(outcome.msg), /^config rejected/, `reload #${i + 1} (invalid) must be rejected`);
        assert.equal(outcome.current_version, version);
        rejected++;
      } else {
        assert.equal(outcome.msg, 'config applied', `reload #${i + 1} (variant ${variant}) must be applied: ${JSON.stringify(outcome)}`);
        version++;
        applied++;
        lastValid = variant!;
        assert.equal(outcome.version, version);
        assert.equal(outcome.endpoints, 3);
      }

      // /__health follows every outcome, and the variant serving is the last valid one.
      const h = (await get(base, '/__health')).json();
      assert.equal(h.config.version, version);
      if (invalid) {
        assert.equal(h.status, 'degraded');
        assert.ok(h.rejected && h.rejected.errors.length > 0, 'the rejection is reported');
      } else {
        assert.equal(h.config.hash, outcome.hash);
        assert.equal(h.rejected, null, 'a good config clears the rejection');
        assert.equal(h.status, 'ok');
        const [onlyA, onlyB] = [(await get(base, '/extra-a')).status, (await get(base, '/extra-b')).status];
        assert.deepEqual([onlyA, onlyB], lastValid === 'A' ? [200, 404] : [404, 200], `variant ${lastValid} serves`);
      }
    }
    const reloadMs = Date.now() - reloadStart;
    const duringReloads = responses - beforeReloads;

    // A little more load after the last swap, then stop.
    const settle = responses;
    while (responses < settle + LOOPS * 4 && Date.now() - testStart < BUDGET_MS) await new Promise((r) => setTimeout(r, 10));
    stop = true;
    await Promise.all(loops);

    // --- the verdict ----------------------------------------------------------
    const ms = logs.all('config applied').slice(1).map((r) => Number(r.ms)).sort((a, b) => a - b);
    const wall = [...wallMs].sort((a, b) => a - b);
    const perSorted = [...perReload].sort((a, b) => a - b);
    const failures = [...clientErrors.values()].reduce((a, b) => a + b, 0) + responses - (statuses.get(200) ?? 0);
    t.diagnostic(`requests: ${responses} total, ${duringReloads} during the ${RELOADS} reloads (${reloadMs} ms, ${Math.round((duringReloads / reloadMs) * 1000)} req/s)`);
    t.diagnostic(`statuses: ${JSON.stringify(Object.fromEntries(statuses))}; client errors: ${JSON.stringify(Object.fromEntries(clientErrors))}; failures: ${failures}`);
    t.diagnostic(`reloads: ${applied} applied, ${rejected} rejected; log lines: ${logs.count('config applied')} "config applied" (incl. start-up), ${logs.count('config rejected')} "config rejected"`);
    t.diagnostic(`"config applied" ms (parse+validate+compile+swap): min ${ms[0]} median ${quantile(ms, 0.5)} p95 ${quantile(ms, 0.95)} max ${ms.at(-1)}`);
    t.diagnostic(`SIGHUP -> outcome logged, ms: median ${quantile(wall, 0.5).toFixed(1)} p95 ${quantile(wall, 0.95).toFixed(1)} max ${wall.at(-1)!.toFixed(1)}`);
    t.diagnostic(`responses completed while one reload was in progress: min ${perSorted[0]} median ${quantile(perSorted, 0.5)} max ${perSorted.at(-1)}`);

    assert.deepEqual(bad, [], 'no failed, dropped or incomplete request');
    assert.equal(failures, 0);
    assert.deepEqual([...statuses.keys()], [200]);
    assert.ok(responses >= MIN_REQUESTS, `at least ${MIN_REQUESTS} requests, got ${responses}`);
    assert.ok(duringReloads > 0, 'requests flowed during the reloads');

    const sentInvalid = Math.floor(RELOADS / 3);
    assert.equal(rejected, sentInvalid);
    assert.equal(applied, RELOADS - sentInvalid);
    assert.equal(logs.count('config applied'), 1 + applied, 'one "config applied" per valid reload, plus start-up');
    assert.equal(logs.count('config rejected'), rejected, 'one "config rejected" per invalid reload');
    assert.equal(logs.count('SIGHUP: reloading'), RELOADS);
    // Nothing else went wrong: no partial-result warnings, no errors besides the rejections.
    const unexpected = logs.records.filter((r) => (r.level === 'warn' || r.level === 'error') && !String(r.msg).startsWith('config rejected'));
    assert.deepEqual(unexpected, []);

    // The last reload (#100, i = 99) was valid: health shows its version and no rejection.
    const h = (await get(base, '/__health')).json();
    assert.equal(h.config.version, 1 + applied);
    assert.equal(h.config.hash, logs.all('config applied').at(-1)!.hash);
    assert.equal(h.config.source, 'file');
    assert.equal(h.rejected, null);
    assert.equal(h.status, 'ok');

    gw.child.kill('SIGTERM');
    assert.equal(await gw.exited, 0);
  } finally {
    stop = true;
    await Promise.allSettled(loops);
    await client?.close().catch(() => {});
    if (gw && gw.child.exitCode === null && gw.child.signalCode === null) {
      gw.child.kill('SIGKILL');
      await gw.exited;
    }
    await b1?.close();
    await b2?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
