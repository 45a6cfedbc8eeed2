// The management listener: /metrics (Prometheus text), /__health and /__ready
// on their own port, for one process and for --workers 2 (the primary sums
// the workers' request metrics).

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { get } from '../helpers/http.ts';
import { managementPort, sample } from '../helpers/metrics.ts';
import { startCli, writeConfigFile, type Running } from '../helpers/process.ts';

for (const workers of [1, 2]) {
  describe(`management listener, --workers ${workers}`, () => {
    let be: TestBackend;
    let gw: Running;
    let base: string;
    let mgmt: string;
    let configPath: string;

    before(async () => {
      be = await startBackend((_req, res) => json(res, { ok: true }));
      const { file, cache } = writeConfigFile({
        version: 3,
        host: [be.url],
        extra_config: { router: { disable_access_log: true }, 'auth/api-keys': { keys: [{ key: 'k-1', roles: ['user'] }] } },
        endpoints: [
          { endpoint: '/items/{id}', backend: [{ url_pattern: '/items/{id}' }] },
          { endpoint: '/private', extra_config: { 'auth/api-keys': { roles: ['user'] } }, backend: [{ url_pattern: '/p' }] },
          // Nothing listens on port 1: connection refused.
          { endpoint: '/down', backend: [{ host: ['http://127.0.0.1:1'], url_pattern: '/d' }] },
        ],
      });
      configPath = file;
      gw = await startCli(['run', '-c', file, '-p', '0', '--management-port', '0', '--workers', String(workers), '--cache-dir', cache()], { PORTICO_WORKERS: String(workers) });
      base = `http://127.0.0.1:${gw.port}`;
      mgmt = `http://127.0.0.1:${managementPort(gw)}`;
    });

    after(async () => {
      gw.child.kill('SIGTERM');
      await gw.exited;
      await be.close();
    });

    it('counts requests by endpoint pattern (never the raw path), method and status, and policy refusals', async () => {
      for (let i = 0; i < 10; i++) assert.equal((await get(base, `/items/${i}`)).status, 200);
      assert.equal((await get(base, '/nowhere')).status, 404);
      assert.equal((await get(base, '/private')).status, 401);
      assert.equal((await get(base, '/down')).status, 500);
      const r = await get(mgmt, '/metrics');
      assert.equal(r.status, 200);
      assert.match(String(r.headers['content-type']), /^text\/plain/);
      const text = r.body;
      assert.equal(sample(text, 'portico_requests_total', { endpoint: '/items/{id}', method: 'GET', status: '200' }), 10, 'summed over every worker');
      assert.equal(sample(text, 'portico_requests_total', { endpoint: '', method: 'GET', status: '404' }), 1);
      assert.equal(sample(text, 'portico_requests_total', { endpoint: '/private', method: 'GET', status: '401' }), 1);
      assert.equal(sample(text, 'portico_request_duration_seconds_count', { endpoint: '/items/{id}', method: 'GET', status: '200' }), 10);
      assert.equal(sample(text, 'portico_policy_rejections_total', { namespace: 'auth/api-keys', status: '401', code: 'AUTH_KEY_MISSING' }), 1);
      assert.equal(sample(text, 'portico_backend_calls_total', { endpoint: '/items/{id}', backend: '/items/{id}', outcome: 'ok' }), 10);
      assert.equal(sample(text, 'portico_backend_calls_total', { endpoint: '/down', backend: '/d', outcome: 'connection' }), 1);
      assert.equal(sample(text, 'portico_backend_call_duration_seconds_count', { endpoint: '/items/{id}', backend: '/items/{id}' }), 10);
      assert.ok(!/\/items\/3/.test(text), 'no raw path in any label');
      assert.equal(sample(text, 'portico_config_info', { version: '1', source: 'file' }), 1);
      assert.ok((sample(text, 'process_resident_memory_bytes') ?? 0) > 0, 'process metrics');
    });

    it('serves /__health and /__ready, and nothing else', async () => {
      const h = await get(mgmt, '/__health');
      assert.equal(h.status, 200);
      assert.equal((h.json() as { config: { version: number } }).config.version, 1);
      assert.equal((await get(mgmt, '/__ready')).status, 200);
      assert.equal((await get(mgmt, '/items/1')).status, 404, 'the management port serves no traffic');
    });

    it('reports the config age and counts a rejected reload', async () => {
      const before = await get(mgmt, '/metrics');
      assert.ok((sample(before.body, 'portico_config_seconds_since_applied') ?? -1) >= 0);
      writeFileSync(configPath, '{"version": 3, "endpoints": [');
      gw.child.kill('SIGHUP');
      // The reload is refused; /__health shows it once processed.
      for (let i = 0; i < 200 && (await get(mgmt, '/__health')).json().rejected === null; i++) await sleep(10);
      const after = await get(mgmt, '/metrics');
      assert.equal(sample(after.body, 'portico_config_rejected_total', { source: 'file' }), 1);
      assert.equal(sample(after.body, 'portico_config_info', { version: '1', source: 'file' }), 1, 'the running config still serves');
      assert.equal((await get(base, '/items/1')).status, 200);
    });
  });
}

describe('management listener under load (--workers 2)', () => {
  let be: TestBackend;
  let gw: Running;
  let base: string;
  let mgmt: string;
  const held: ServerResponse[] = [];

  before(async () => {
    // A backend that holds every answer until the test lets go.
    be = await startBackend((_req, res) => void held.push(res));
    const { file, cache } = writeConfigFile({
      version: 3,
      timeout: '30s',
      host: [be.url],
      extra_config: { router: { disable_access_log: true } },
      endpoints: [{ endpoint: '/slow', backend: [{ url_pattern: '/slow' }] }],
    });
    gw = await startCli(['run', '-c', file, '-p', '0', '--management-port', '0', '--workers', '2', '--cache-dir', cache()], { PORTICO_WORKERS: '2' });
    base = `http://127.0.0.1:${gw.port}`;
    mgmt = `http://127.0.0.1:${managementPort(gw)}`;
  });

  after(async () => {
    for (const res of held) res.destroy();
    gw.child.kill('SIGTERM');
    await gw.exited;
    await be.close();
  });

  it('keeps answering while every worker holds hundreds of requests, and counts them in flight', async () => {
    const N = 300;
    const pending = Array.from({ length: N }, () => get(base, '/slow').catch(() => undefined));
    // Wait until the backend holds them all (each reached a worker and went upstream).
    for (let i = 0; i < 500 && held.length < N; i++) await sleep(10);
    assert.equal(held.length, N);
    const started = performance.now();
    const r = await get(mgmt, '/metrics');
    assert.equal(r.status, 200);
    assert.ok(performance.now() - started < 2000, 'answered promptly');
    assert.equal(sample(r.body, 'portico_requests_in_flight'), N, 'summed over both workers');
    for (const res of held.splice(0)) json(res, { ok: true });
    await Promise.all(pending);
  });
});
