// The management listener while the control plane is down: a gateway follows
// a real control plane, which is SIGKILLed. /metrics and /__health on the
// management port keep answering, the seconds since the last sync keep
// growing from before the outage, the configuration series stays the same,
// /__health says the source is failing (degraded, sync stale, its last error),
// and traffic is still served.

import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import type { TestBackend } from '../helpers/backend.ts';
import { get } from '../helpers/http.ts';
import { startEchoBackend } from '../helpers/lifecycle-support.ts';
import { managementPort, sample, seriesOf } from '../helpers/metrics.ts';
import { fleetConfig, publish, servedTag, startCp, startGateway, stopEverything, STALE_AFTER_MS, tempDir, until, waitServing, type Health } from '../fleet/support.ts';

let backend: TestBackend | undefined;
after(async () => {
  await stopEverything();
  await backend?.close();
});

async function scrape(mgmt: string): Promise<string> {
  const r = await get(mgmt, '/metrics');
  assert.equal(r.status, 200);
  return r.body;
}

async function managementHealth(mgmt: string): Promise<Health> {
  const r = await get(mgmt, '/__health');
  assert.equal(r.status, 200);
  return r.json() as Health;
}

/** The portico_config_info series, as label sets with their values. */
const configInfo = (text: string) => seriesOf(text).filter((s) => s.name === 'portico_config_info');

it('metrics and health answer on the management port while the control plane is down', { timeout: 30_000 }, async () => {
  backend = await startEchoBackend();
  const cp = await startCp(['--store', tempDir('cp-store'), '--watch-hold', '500ms']);
  const v1 = await publish(cp.url, fleetConfig(backend.url, 'v1'));
  assert.equal(v1.status, 201, v1.body);
  const gw = await startGateway({ id: 'gw-mgmt', controlPlane: cp.url, args: ['--management-port', '0'] });
  await waitServing(gw, 'v1', 5000);
  const mgmt = `http://127.0.0.1:${managementPort(gw.running)}`;

  const before = await scrape(mgmt);
  assert.deepEqual(configInfo(before), [{ name: 'portico_config_info', labels: { version: '1', hash: v1.hash, source: 'control-plane' }, value: 1 }]);
  const syncedBefore = sample(before, 'portico_config_seconds_since_sync');
  assert.ok(syncedBefore !== undefined && syncedBefore < 2, `in sync with the control plane (${syncedBefore} s)`);
  assert.equal((await managementHealth(mgmt)).status, 'ok');

  // --- the outage ------------------------------------------------------------
  const killedAt = Date.now();
  assert.equal(await cp.stop('SIGKILL'), null, 'killed, not exited');
  const h = await until('the management /__health to say the source is failing', async () => {
    const h = await managementHealth(mgmt);
    return h.status === 'degraded' && h.sync.state === 'stale' ? h : undefined;
  }, STALE_AFTER_MS + 5000);
  assert.ok(h.sync.last_error, 'the last sync error is shown');
  assert.equal(h.config?.version, 1, 'still serving version 1');
  assert.equal(h.config?.hash, v1.hash);
  assert.equal(h.ready, true);
  assert.equal(h.rejected, null);

  const during = await scrape(mgmt);
  const syncedDuring = sample(during, 'portico_config_seconds_since_sync')!;
  // The last successful sync was before the kill (0.25 s of slack for an answer read as the process died).
  const outage = (Date.now() - killedAt) / 1000;
  assert.ok(syncedDuring >= outage - 0.25, `seconds since sync (${syncedDuring}) cover the outage so far (${outage})`);
  assert.ok(syncedDuring >= STALE_AFTER_MS / 1000);
  assert.deepEqual(configInfo(during), configInfo(before), 'the configuration series is unchanged');

  // It keeps growing while the control plane stays down.
  const later = await until('seconds since sync to grow', async () => {
    const s = sample(await scrape(mgmt), 'portico_config_seconds_since_sync')!;
    return s >= syncedDuring + 0.5 ? s : undefined;
  }, 5000, 100);
  assert.ok(later > syncedDuring);
  assert.equal((await get(mgmt, '/__ready')).status, 200, 'still ready: it serves its last known good configuration');
  for (let i = 0; i < 20; i++) assert.equal(await servedTag(gw.base), 'v1', 'traffic is still served');
  const afterTraffic = await scrape(mgmt);
  assert.ok((sample(afterTraffic, 'portico_requests_total', { endpoint: '/x', status: '200' }) ?? 0) >= 20, 'and counted');
  assert.deepEqual(configInfo(afterTraffic), configInfo(before));

  assert.equal(await gw.stop(), 0);
});
