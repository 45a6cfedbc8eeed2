// Upstream pool gauges on the management listener: connections to each backend
// origin, busy while a backend holds requests and idle (kept alive) afterwards,
// requests waiting for a connection when the pool is full, and with --workers 2
// the sum over both workers.

import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { get, type TestResponse } from '../helpers/http.ts';
import { stopCli, waitUntil } from '../helpers/lifecycle-support.ts';
import { managementPort, sample } from '../helpers/metrics.ts';
import { startCli, writeConfigFile, type Running } from '../helpers/process.ts';

/** A backend that holds every request while `holding`, and answers at once otherwise (and on release). */
async function holdingBackend() {
  const held: ServerResponse[] = [];
  let holding = true;
  const be = await startBackend((_req, res) => {
    if (holding) held.push(res);
    else json(res, { ok: true });
  });
  return {
    be,
    held,
    release() {
      holding = false;
      for (const res of held.splice(0)) json(res, { ok: true });
    },
  };
}

async function startGateway(slow: string, fast: string, workers: number, perHost?: number): Promise<{ gw: Running; base: string; mgmt: string }> {
  const { file, cache } = writeConfigFile({
    version: 3,
    timeout: '30s',
    ...(perHost ? { max_idle_connections_per_host: perHost } : {}),
    extra_config: { router: { disable_access_log: true } },
    endpoints: [
      { endpoint: '/slow', backend: [{ host: [slow], url_pattern: '/slow' }] },
      { endpoint: '/fast', backend: [{ host: [fast], url_pattern: '/fast' }] },
    ],
  });
  const gw = await startCli(['run', '-c', file, '-p', '0', '--management-port', '0', '--workers', String(workers), '--cache-dir', cache()], {
    PORTICO_WORKERS: String(workers),
  });
  return { gw, base: `http://127.0.0.1:${gw.port}`, mgmt: `http://127.0.0.1:${managementPort(gw)}` };
}

const metrics = async (mgmt: string): Promise<string> => {
  const r = await get(mgmt, '/metrics');
  assert.equal(r.status, 200);
  return r.body;
};

interface Setup {
  slow: Awaited<ReturnType<typeof holdingBackend>>;
  fast: TestBackend;
  gw: Running;
  base: string;
  mgmt: string;
}

/** In a describe: a holding backend, an answering one, and a gateway with /slow and /fast in front of them. */
function setUp(workers: number, perHost?: number): Setup {
  const s = {} as Setup;
  before(async () => {
    s.slow = await holdingBackend();
    s.fast = await startBackend((_req, res) => json(res, { ok: true }));
    Object.assign(s, await startGateway(s.slow.be.url, s.fast.url, workers, perHost));
  });
  after(async () => {
    s.slow.release();
    await stopCli(s.gw);
    await Promise.all([s.slow.be.close(), s.fast.close()]);
  });
  return s;
}

describe('upstream pool gauges, one process', () => {
  // Two connections per origin: a third request waits for one.
  const s = setUp(1, 2);

  it('declares the families before any backend was called, with each configured origin at zero', async () => {
    const text = await metrics(s.mgmt);
    assert.match(text, /^# TYPE portico_upstream_connections gauge$/m);
    assert.match(text, /^# TYPE portico_upstream_connections_limit gauge$/m);
    assert.match(text, /^# TYPE portico_upstream_requests_queued gauge$/m);
    for (const origin of [s.slow.be.url, s.fast.url]) {
      assert.equal(sample(text, 'portico_upstream_connections', { origin, state: 'busy' }), 0);
      assert.equal(sample(text, 'portico_upstream_connections', { origin, state: 'idle' }), 0);
      assert.equal(sample(text, 'portico_upstream_connections_limit', { origin }), 2);
    }
  });

  it('shows busy connections while the backend holds requests, a queued one past the limit, and idle ones afterwards, per origin', async () => {
    const slow = s.slow.be.url;
    const fast = s.fast.url;
    assert.equal((await get(s.base, '/fast')).status, 200);
    const pending: Promise<TestResponse>[] = Array.from({ length: 3 }, () => get(s.base, '/slow'));
    await waitUntil(() => s.slow.held.length === 2, 'the backend holds two requests');
    // The third request waits in the gateway for one of the two connections.
    const during = await waitUntil(async () => {
      const t = await metrics(s.mgmt);
      return sample(t, 'portico_upstream_requests_queued', { origin: slow }) === 1 ? t : undefined;
    }, 'one request queued for the slow origin');
    assert.equal(sample(during, 'portico_upstream_connections', { origin: slow, state: 'busy' }), 2);
    assert.equal(sample(during, 'portico_upstream_connections', { origin: slow, state: 'idle' }), 0);
    // The other origin's pool is apart: its one connection is idle, nothing waits.
    assert.equal(sample(during, 'portico_upstream_connections', { origin: fast, state: 'busy' }), 0);
    assert.equal(sample(during, 'portico_upstream_connections', { origin: fast, state: 'idle' }), 1);
    assert.equal(sample(during, 'portico_upstream_requests_queued', { origin: fast }), 0);

    s.slow.release();
    for (const r of await Promise.all(pending)) assert.equal(r.status, 200);
    const afterText = await metrics(s.mgmt);
    assert.equal(sample(afterText, 'portico_upstream_connections', { origin: slow, state: 'busy' }), 0);
    assert.equal(sample(afterText, 'portico_upstream_connections', { origin: slow, state: 'idle' }), 2, 'both connections kept alive');
    assert.equal(sample(afterText, 'portico_upstream_requests_queued', { origin: slow }), 0);
    assert.equal(s.slow.be.requests.length, 3);
  });
});

describe('upstream pool gauges, --workers 2', () => {
  const s = setUp(2);

  it('sums the connections of both workers', async () => {
    const N = 6;
    const slow = s.slow.be.url;
    const pending = Array.from({ length: N }, () => get(s.base, '/slow'));
    await waitUntil(() => s.slow.held.length === N, `the backend holds ${N} requests`);
    const during = await metrics(s.mgmt);
    assert.equal(sample(during, 'portico_upstream_connections', { origin: slow, state: 'busy' }), N, 'one busy connection per held request, over both workers');
    assert.equal(sample(during, 'portico_upstream_connections_limit', { origin: slow }), 2 * 250, 'the default limit, in each worker');
    s.slow.release();
    for (const r of await Promise.all(pending)) assert.equal(r.status, 200);
    const afterText = await metrics(s.mgmt);
    assert.equal(sample(afterText, 'portico_upstream_connections', { origin: slow, state: 'busy' }), 0);
    assert.equal(sample(afterText, 'portico_upstream_connections', { origin: slow, state: 'idle' }), N);
  });
});
