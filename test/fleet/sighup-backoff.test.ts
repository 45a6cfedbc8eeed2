// SIGHUP ("reload now") also ends the control-plane source's backoff pause.
// After an outage of several seconds a gateway's next attempt can be tens of
// seconds away (full jitter, cap 30 s); an operator who brought the control
// plane back and sends SIGHUP gets an immediate retry instead of waiting for
// it. (Before the fix the pause ignored SIGHUP: measured 25.8 s from SIGHUP to
// reconnection after a 12 s outage.)

import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TestBackend } from '../helpers/backend.ts';
import { startEchoBackend } from '../helpers/lifecycle-support.ts';
import { fleetConfig, health, ms, publish, startCp, startGateway, stopEverything, tempDir, until, waitServing } from './support.ts';

/** Long enough for the backoff ceiling to reach 8-16 s or more. */
const OUTAGE_MS = 6000;

let backend: TestBackend | undefined;
after(async () => {
  await stopEverything();
  await backend?.close();
});

it('SIGHUP makes a gateway in backoff ask the control plane again at once', { timeout: 30_000 }, async (t) => {
  backend = await startEchoBackend();
  const store = tempDir('cp-store');
  const args = ['--store', store, '--watch-hold', '500ms'];
  let cp = await startCp(args);
  const port = cp.port;
  assert.equal((await publish(cp.url, fleetConfig(backend.url, 'v1'))).status, 201);
  const gw = await startGateway({ id: 'gw-hup', controlPlane: cp.url });
  await waitServing(gw, 'v1', 5000);

  await cp.stop('SIGKILL');
  await sleep(OUTAGE_MS);
  assert.equal((await health(gw.base)).sync.state, 'stale');
  cp = await startCp(args, port);
  const v2 = await publish(cp.url, fleetConfig(backend.url, 'v2'));
  assert.equal(v2.status, 201);
  const hup = performance.now();
  gw.running.child.kill('SIGHUP');
  const took = (await waitServing(gw, 'v2', 25_000)) - hup;
  await until('sync current', async () => (await health(gw.base)).sync.state === 'current', 2000);
  t.diagnostic(`control plane down ${OUTAGE_MS} ms; SIGHUP -> serving version 2: ${ms(took)}`);
  assert.ok(took < 2000, `picked up ${ms(took)} after SIGHUP`);
  assert.equal(await gw.stop(), 0);
  assert.equal(await cp.stop(), 0);
});
