// The control plane is not on the request path: a control plane (file store)
// and two gateways under constant keep-alive load; the control plane is
// SIGKILLed. Not one request fails during the outage, both gateways say
// `degraded` (sync stale) once --stale-after has passed, and once the control
// plane is back on the same port and store, a newly published version reaches
// both within seconds.
//
// How long "within seconds" is depends on the gateways' retry backoff (base
// 500 ms, doubling, full jitter, cap 30 s): after an outage of t seconds a
// gateway's next attempt can be up to ~2t (and, past ~30 s of outage, up to 30 s)
// away. The outage here is kept as short as the scenario allows (the control
// plane comes back as soon as both gateways said degraded, ~1.5-2 s), which keeps
// the chance of a >10 s recovery around 0.3% per run; a longer outage makes it
// likely (a 1-minute outage: median ~9 s, p95 ~23 s, max 30 s, simulated). The
// measured times and the backoff state are printed as diagnostics.
//
// The scenario runs twice: over plain HTTP, and over HTTPS with client
// certificates bound to the node ids (--tls-cert/--client-ca, --control-plane-ca/-cert/-key).

import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { call } from '../controlplane/support.ts';
import { startEchoBackend } from '../helpers/lifecycle-support.ts';
import type { TestBackend } from '../helpers/backend.ts';
import {
  fleetConfig,
  health,
  Load,
  ms,
  publish,
  secureLink,
  startCp,
  startGateway,
  stopEverything,
  STALE_AFTER_MS,
  tempDir,
  until,
  waitServing,
  type Gateway,
  type SecureLink,
} from './support.ts';

/** How long the control plane stays down after both gateways said degraded (see the header: longer outages make recovery slower). */
const EXTRA_OUTAGE_MS = 0;
const RECOVERY_LIMIT_MS = 10_000;

let backend: TestBackend | undefined;
let link: SecureLink | undefined;
after(async () => {
  await stopEverything();
  await backend?.close();
  link?.cleanup();
});

for (const secure of [false, true]) {
  it(`control plane killed under load: no failed request, degraded after the threshold, next version picked up when it is back (${secure ? 'HTTPS + client certificates' : 'plain HTTP'})`, { timeout: 40_000 }, async (t) => {
    backend ??= await startEchoBackend();
    if (secure) link ??= await secureLink();
    const tls = secure ? link! : undefined;
    const admin = tls?.admin ?? {};
    const store = tempDir('cp-store');
    const cpArgs = ['--store', store, '--watch-hold', '500ms', ...(tls?.cpArgs ?? [])];
    let cp = await startCp(cpArgs);
    const port = cp.port;
    const v1 = await publish(cp.url, fleetConfig(backend.url, 'v1'), admin);
    assert.equal(v1.status, 201, v1.body);

    const gws: Gateway[] = await Promise.all((['gw-1', 'gw-2'] as const).map((id) => startGateway({ id, controlPlane: cp.url, args: tls?.gatewayArgs(id) })));
    for (const g of gws) {
      await waitServing(g, 'v1', 5000);
      const h = await health(g.base);
      assert.equal(h.config?.version, 1);
      assert.equal(h.config?.source, 'control-plane');
      assert.equal(h.status, 'ok');
    }

    const load = new Load(gws, 4);
    await load.more(200);

    // --- the outage ------------------------------------------------------------
    const atKill = load.responses;
    const killedAt = performance.now();
    assert.equal(await cp.stop('SIGKILL'), null, 'killed, not exited');
    const degradedAfter: Record<string, number> = {};
    await Promise.all(
      gws.map(async (g) => {
        const h = await until(`${g.id} degraded`, async () => {
          const h = await health(g.base);
          return h.status === 'degraded' && h.sync.state === 'stale' ? h : undefined;
        }, STALE_AFTER_MS + 5000);
        degradedAfter[g.id] = performance.now() - killedAt;
        assert.equal(h.config?.version, 1, 'still serving version 1');
        assert.ok(h.sync.last_error, 'the last sync error is shown');
        assert.equal(h.rejected, null, 'degraded because stale, not because of a rejection');
        assert.equal(h.ready, true);
      }),
    );
    for (const id of Object.keys(degradedAfter)) assert.ok(degradedAfter[id] >= STALE_AFTER_MS, `${id} degraded only after the threshold (${ms(degradedAfter[id])})`);
    if (EXTRA_OUTAGE_MS > 0) await sleep(EXTRA_OUTAGE_MS);

    // --- back, same port and store ---------------------------------------------
    cp = await startCp(cpArgs, port);
    const duringOutage = load.responses - atKill;
    const outageMs = performance.now() - killedAt;
    assert.equal(cp.port, port);
    const latest = await call(cp.url, '/v1/config', admin);
    assert.equal(latest.json().version, 1, 'the file store kept version 1');
    const v2 = await publish(cp.url, fleetConfig(backend.url, 'v2'), admin);
    assert.equal(v2.status, 201, v2.body);
    assert.equal(v2.version, 2);

    const recovery: Record<string, number> = {};
    await Promise.all(
      gws.map(async (g) => {
        recovery[g.id] = (await waitServing(g, 'v2', RECOVERY_LIMIT_MS + 20_000)) - v2.at;
      }),
    );
    for (const g of gws) {
      const h = await until(`${g.id} ok again`, async () => {
        const h = await health(g.base);
        return h.status === 'ok' ? h : undefined;
      }, 3000);
      assert.equal(h.config?.version, 2);
      assert.equal(h.config?.source, 'control-plane');
      assert.equal(h.sync.state, 'current');
      assert.equal(h.sync.last_error, null);
    }
    // Both ACKed version 2 to the control plane.
    await until('both nodes reported version 2', async () => {
      const nodes = (await call(cp.url, '/v1/nodes', admin)).json().nodes as { node: string; applied_version: number; status: string }[];
      return nodes.length === 2 && nodes.every((n) => n.applied_version === 2 && n.status === 'ok');
    }, 5000);

    await load.more(100);
    const stats = await load.stop();
    t.diagnostic(`requests: ${stats.responses} total (${JSON.stringify(stats.perGateway)}), ${duringOutage} during the ${ms(outageMs)} outage (kill -> listening again); statuses ${JSON.stringify(stats.statuses)}; failures ${stats.failures}`);
    t.diagnostic(`degraded after: ${Object.entries(degradedAfter).map(([k, v]) => `${k} ${ms(v)}`).join(', ')} (threshold ${STALE_AFTER_MS} ms)`);
    t.diagnostic(`recovery (publish 201 -> serving v2): ${Object.entries(recovery).map(([k, v]) => `${k} ${ms(v)}`).join(', ')}`);

    assert.deepEqual(stats.samples, [], 'no failed request');
    assert.equal(stats.failures, 0);
    assert.ok(duringOutage > 100, `requests flowed during the outage (${duringOutage})`);
    // The restarted control plane is ready long before this; a slow pick-up is the gateways' backoff (header comment).
    for (const [id, v] of Object.entries(recovery)) assert.ok(v < RECOVERY_LIMIT_MS, `${id} picked up version 2 ${ms(v)} after the publish (limit ${RECOVERY_LIMIT_MS} ms)`);

    for (const g of gws) assert.equal(await g.stop(), 0);
    assert.equal(await cp.stop(), 0);
  });
}
