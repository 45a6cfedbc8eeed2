// The management listener beyond /metrics: /__stats (JSON), every worker's pid,
// configuration and liveness with --workers N, the listener's address taken
// from the configuration (and moved by a reload), and metrics turned off.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { freePort } from '../helpers/etcd.ts';
import { get } from '../helpers/http.ts';
import { managementPort, sample } from '../helpers/metrics.ts';
import { startCli, writeConfigFile, type Running } from '../helpers/process.ts';

type Json = Record<string, any>;

const config = (backend: string, extra: Record<string, unknown> = {}) => ({
  version: 3,
  host: [backend],
  extra_config: { router: { disable_access_log: true }, 'auth/api-keys': { keys: [{ key: 'k-1', roles: ['user'] }] }, ...extra },
  endpoints: [
    { endpoint: '/items/{id}', backend: [{ url_pattern: '/items/{id}' }] },
    { endpoint: '/private', extra_config: { 'auth/api-keys': { roles: ['user'] } }, backend: [{ url_pattern: '/p' }] },
    { endpoint: '/down', backend: [{ host: ['http://127.0.0.1:1'], url_pattern: '/d' }] },
  ],
});

/** Poll (bounded) until `pred` holds for what `probe` returns. */
async function until<T>(probe: () => Promise<T>, pred: (v: T) => boolean, what: string): Promise<T> {
  for (let i = 0; i < 300; i++) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined && pred(v)) return v;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

let be: TestBackend;
before(async () => {
  be = await startBackend((_req, res) => json(res, { ok: true }));
});
after(() => be.close());

for (const workers of [1, 2]) {
  describe(`/__stats and worker reports, --workers ${workers}`, () => {
    let gw: Running;
    let base: string;
    let mgmt: string;

    before(async () => {
      const { file, cache } = writeConfigFile(config(be.url));
      gw = await startCli(['run', '-c', file, '-p', '0', '--management-port', '0', '--workers', String(workers), '--cache-dir', cache()]);
      base = `http://127.0.0.1:${gw.port}`;
      mgmt = `http://127.0.0.1:${managementPort(gw)}`;
    });

    after(async () => {
      gw.child.kill('SIGTERM');
      await gw.exited;
    });

    it('serves the metrics as one JSON document: requests per endpoint with latency, backend outcomes, refusals', async () => {
      for (let i = 0; i < 20; i++) assert.equal((await get(base, `/items/${i}`)).status, 200);
      await get(base, '/private');
      await get(base, '/down');
      await get(base, '/nowhere');
      const r = await get(mgmt, '/__stats');
      assert.equal(r.status, 200);
      assert.match(String(r.headers['content-type']), /^application\/json/);
      const s = r.json() as Json;
      assert.equal(s.config.version, 1);
      assert.equal(s.requests.total, 23, 'summed over every worker');
      const items = s.requests.by_endpoint['/items/{id}'].GET['200'];
      assert.equal(items.count, 20);
      assert.ok(items.p50_ms > 0 && items.p50_ms <= items.p99_ms, `percentiles in order: ${JSON.stringify(items)}`);
      assert.ok(items.mean_ms > 0);
      assert.equal(s.requests.by_endpoint['(no endpoint)'].GET['404'].count, 1);
      assert.equal(s.backends['/items/{id}']['/items/{id}'].outcomes.ok, 20);
      assert.equal(s.backends['/down']['/d'].outcomes.connection, 1);
      assert.equal(s.policy_rejections['auth/api-keys'].AUTH_KEY_MISSING, 1);
      if (workers === 1) assert.ok(s.process.rss_bytes > 0);
      else {
        assert.equal(s.workers.length, 2);
        assert.ok(s.workers.every((w: Json) => w.alive && w.version === 1 && w.rss_bytes > 0));
        assert.ok(s.primary.pid > 0);
      }
    });

    if (workers === 2) {
      it('reports every worker in /__health: pid, configuration version, liveness; a dead worker shows until replaced', async () => {
        const h = (await get(mgmt, '/__health')).json() as Json;
        assert.equal(h.status, 'ok');
        assert.deepEqual(h.workers.map((w: Json) => w.slot), [0, 1]);
        assert.ok(h.workers.every((w: Json) => w.alive === true && w.version === 1 && typeof w.hash === 'string' && w.pid > 0));
        const victim = h.workers[1].pid as number;
        process.kill(victim, 'SIGKILL');
        const replaced = await until(
          async () => (await get(mgmt, '/__health')).json() as Json,
          // A replacement answers as soon as it runs; it reports a version once it serves the current configuration.
          (x) => x.workers[1].alive && x.workers[1].pid !== victim && x.workers[1].version === 1,
          'a replacement worker in slot 1 serving version 1',
        );
        assert.equal(replaced.workers[0].pid, h.workers[0].pid, 'the other worker is untouched');
      });

      it('says a worker whose event loop is stuck is not alive (and the instance degraded)', async () => {
        const h = (await get(mgmt, '/__health')).json() as Json;
        const stuck = h.workers[0].pid as number;
        // SIGSTOP freezes the worker: it cannot answer the primary; SIGCONT lets it go on.
        process.kill(stuck, 'SIGSTOP');
        try {
          const started = performance.now();
          const frozen = (await get(mgmt, '/__health')).json() as Json;
          assert.ok(performance.now() - started < 3000, 'answered in bounded time');
          assert.equal(frozen.status, 'degraded');
          assert.equal(frozen.workers[0].alive, false);
          assert.match(frozen.workers[0].error, /did not answer/);
          assert.equal(frozen.workers[1].alive, true);
        } finally {
          process.kill(stuck, 'SIGCONT');
        }
        await until(async () => (await get(mgmt, '/__health')).json() as Json, (x) => x.status === 'ok', 'the worker answering again');
      });
    }
  });
}

describe('the management address from the configuration', () => {
  let gw: Running;
  let file: string;

  after(async () => {
    gw.child.kill('SIGTERM');
    await gw.exited;
  });

  it("listens where telemetry/metrics' listen_address says, and moves when a reload changes it", async () => {
    const first = await freePort();
    const w = writeConfigFile(config(be.url, { 'telemetry/metrics': { listen_address: `127.0.0.1:${first}` } }));
    file = w.file;
    gw = await startCli(['run', '-c', file, '-p', '0', '--cache-dir', w.cache()]);
    assert.equal(managementPort(gw), first);
    assert.equal((await get(`http://127.0.0.1:${first}`, '/__health')).status, 200);

    // A Prometheus exporter of telemetry/opentelemetry names it too; the reload moves the listener.
    const second = await freePort();
    writeFileSync(file, JSON.stringify(config(be.url, { 'telemetry/opentelemetry': { exporters: { prometheus: [{ name: 'p', port: second, listen_ip: '127.0.0.1' }] } } })));
    gw.child.kill('SIGHUP');
    await until(() => get(`http://127.0.0.1:${second}`, '/metrics'), (r) => r.status === 200, 'the listener on its new port');
    await assert.rejects(get(`http://127.0.0.1:${first}`, '/__health'), 'the old port is closed');

    // A reload without any telemetry namespace stops it.
    writeFileSync(file, JSON.stringify(config(be.url)));
    gw.child.kill('SIGHUP');
    await until(
      () => get(`http://127.0.0.1:${second}`, '/__health').then(() => false, () => true),
      (closed) => closed,
      'the listener closed',
    );
  });

  it('an address from the configuration that is taken: traffic is served without the listener, and the error is logged', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as AddressInfo).port;
    const w = writeConfigFile(config(be.url, { 'telemetry/metrics': { listen_address: `127.0.0.1:${port}` } }));
    const run = await startCli(['run', '-c', w.file, '-p', '0', '--cache-dir', w.cache()]);
    try {
      assert.equal((await get(`http://127.0.0.1:${run.port}`, '/items/1')).status, 200);
      assert.match(run.output(), /the management listener cannot start; serving without it/);
    } finally {
      run.child.kill('SIGTERM');
      await run.exited;
      taken.close();
    }
  });

  it('--management-port wins over the configuration', async () => {
    const configured = await freePort();
    const w = writeConfigFile(config(be.url, { 'telemetry/metrics': { listen_address: `127.0.0.1:${configured}` } }));
    const run = await startCli(['run', '-c', w.file, '-p', '0', '--management-port', '0', '--cache-dir', w.cache()]);
    try {
      assert.notEqual(managementPort(run), configured);
      await assert.rejects(get(`http://127.0.0.1:${configured}`, '/__health'));
    } finally {
      run.child.kill('SIGTERM');
      await run.exited;
    }
  });
});

describe('metrics turned off', () => {
  it('telemetry/metrics router_disabled + backend_disabled: no request or backend series, lifecycle metrics stay', async () => {
    const w = writeConfigFile(config(be.url, { 'telemetry/metrics': { router_disabled: true, endpoint_disabled: true, backend_disabled: true, listen_address: '127.0.0.1:0' } }));
    const run = await startCli(['run', '-c', w.file, '-p', '0', '--cache-dir', w.cache()]);
    try {
      const base = `http://127.0.0.1:${run.port}`;
      for (let i = 0; i < 5; i++) assert.equal((await get(base, `/items/${i}`)).status, 200);
      const text = (await get(`http://127.0.0.1:${managementPort(run)}`, '/metrics')).body;
      assert.equal(sample(text, 'portico_requests_total', { endpoint: '/items/{id}', method: 'GET', status: '200' }), undefined);
      assert.equal(sample(text, 'portico_backend_calls_total', { endpoint: '/items/{id}', backend: '/items/{id}', outcome: 'ok' }), undefined);
      assert.equal(sample(text, 'portico_config_info', { version: '1', source: 'file' }), 1);
    } finally {
      run.child.kill('SIGTERM');
      await run.exited;
    }
  });
});
