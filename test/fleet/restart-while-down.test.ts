// A gateway that applied version N from the control plane is restarted while
// the control plane is down: it starts from its last known good file (source
// last-known-good, version N), serves, says degraded once the control plane has
// been unreachable past --stale-after, and when the control plane is back (same
// port, same store) it follows the versions published after N.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { get } from '../helpers/http.ts';
import { call } from '../controlplane/support.ts';
import { startEchoBackend } from '../helpers/lifecycle-support.ts';
import type { TestBackend } from '../helpers/backend.ts';
import { fleetConfig, health, ms, publish, servedTag, startCp, startGateway, stopEverything, STALE_AFTER_MS, tempDir, until, waitServing } from './support.ts';

let backend: TestBackend | undefined;
after(async () => {
  await stopEverything();
  await backend?.close();
});

it('a gateway restarted while the control plane is down serves its last known good, then follows the control plane again', { timeout: 40_000 }, async (t) => {
  backend = await startEchoBackend();
  const store = tempDir('cp-store');
  const cpArgs = ['--store', store, '--watch-hold', '500ms'];
  let cp = await startCp(cpArgs);
  const port = cp.port;
  assert.equal((await publish(cp.url, fleetConfig(backend.url, 'v1'))).status, 201);
  const v2 = await publish(cp.url, fleetConfig(backend.url, 'v2'));
  assert.equal(v2.version, 2);

  // --- N = 2 applied from the control plane, then persisted ----------------
  const cacheDir = tempDir('cache-gw');
  let gw = await startGateway({ id: 'gw-restart', controlPlane: cp.url, cacheDir });
  await waitServing(gw, 'v2', 5000);
  let h = await health(gw.base);
  assert.deepEqual([h.config?.version, h.config?.source, h.config?.hash], [2, 'control-plane', v2.hash]);
  const lkgFile = join(cacheDir, 'last-known-good.json');
  await until('the last-known-good file', async () => existsSync(lkgFile) && readFileSync(lkgFile, 'utf8').includes(v2.hash), 3000);

  // --- control plane down, gateway restarted --------------------------------
  assert.equal(await cp.stop('SIGKILL'), null);
  assert.equal(await gw.stop(), 0, 'the gateway stops cleanly');
  const startedAt = performance.now();
  gw = await startGateway({ id: 'gw-restart', controlPlane: `http://127.0.0.1:${port}`, cacheDir });
  const startMs = performance.now() - startedAt;
  h = await health(gw.base);
  assert.equal(h.config?.version, 2);
  assert.equal(h.config?.hash, v2.hash);
  assert.equal(h.config?.source, 'last-known-good');
  assert.equal(h.ready, true);
  assert.equal((await get(gw.base, '/__ready')).status, 200);
  assert.equal(await servedTag(gw.base), 'v2');
  assert.equal(gw.logs.count('serving the last known good config'), 1);
  for (let i = 0; i < 20; i++) assert.equal(await servedTag(gw.base), 'v2', 'serves while the control plane is down');

  // Past the threshold it says why it is degraded: the source is unreachable.
  h = await until('degraded (stale)', async () => {
    const x = await health(gw.base);
    return x.status === 'degraded' ? x : undefined;
  }, STALE_AFTER_MS + 5000);
  assert.equal(h.sync.state, 'stale');
  assert.ok(h.sync.last_error);
  assert.equal(h.config?.version, 2);
  assert.equal(h.rejected, null);

  // --- the control plane is back --------------------------------------------
  cp = await startCp(cpArgs, port);
  const downMs = performance.now() - startedAt;
  // Nothing newer yet: the gateway reconnects (its next backoff attempt) and is current again, still on version 2.
  const reconnectedAt = performance.now();
  h = await until('sync current again', async () => {
    const x = await health(gw.base);
    return x.status === 'ok' && x.sync.state === 'current' ? x : undefined;
  }, 15_000);
  const reconnectMs = performance.now() - reconnectedAt;
  assert.equal(h.config?.version, 2);
  const sourceAfterReconnect = h.config?.source;

  const v3 = await publish(cp.url, fleetConfig(backend.url, 'v3'));
  assert.equal(v3.version, 3);
  const pickUp = (await waitServing(gw, 'v3', 5000)) - v3.at;
  h = await health(gw.base);
  assert.deepEqual([h.config?.version, h.config?.source, h.status], [3, 'control-plane', 'ok']);
  await until('the node reported version 3', async () => {
    const nodes = (await call(cp.url, '/v1/nodes')).json().nodes as { node: string; applied_version: number; behind: number }[];
    const n = nodes.find((x) => x.node === 'gw-restart');
    return n?.applied_version === 3 && n.behind === 0;
  }, 5000);
  await until('the last-known-good file holds version 3', async () => readFileSync(lkgFile, 'utf8').includes(v3.hash), 3000);

  t.diagnostic(`restart with the control plane down: listening after ${ms(startMs)}; control plane back after ${ms(downMs)}; sync current ${ms(reconnectMs)} later (source then: ${sourceAfterReconnect}); version 3 served ${ms(pickUp)} after its publish`);
  assert.equal(await gw.stop(), 0);
  assert.equal(await cp.stop(), 0);
});
