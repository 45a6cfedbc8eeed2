// Gateways watching etcd directly (`portico run --etcd`), under constant
// keep-alive load, through two etcd failures:
//  1. etcd stopped and restarted on the same data directory: serving goes on
//     (no failed request), both say degraded once --stale-after has passed, and
//     a version written right after the restart is applied;
//  2. etcd wiped and repopulated (stop({wipe}), restart(), then an envelope
//     with a LOWER version than the one served): the gateways see that etcd's
//     revision went backwards, forget their version floor and serve the
//     repopulated config.

import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import { after, it } from 'node:test';
import type { TestBackend } from '../helpers/backend.ts';
import { ETCD_BIN, etcdAvailable, startEtcd, type TestEtcd } from '../helpers/etcd.ts';
import { startEchoBackend } from '../helpers/lifecycle-support.ts';
import { envelope, fleetConfig, health, Load, ms, putCurrent, startGateway, stopEverything, STALE_AFTER_MS, until, waitServing, type Gateway } from './support.ts';

const skip = etcdAvailable ? undefined : `etcd is not installed at ${ETCD_BIN} (apt-get install etcd-server, or set PORTICO_TEST_ETCD)`;
const KEY = '/portico/current';

let backend: TestBackend | undefined;
let etcd: TestEtcd | undefined;
let client: Etcd3 | undefined;
let load: Load | undefined;
after(async () => {
  await load?.stop();
  await stopEverything();
  client?.close();
  await etcd?.stop({ wipe: true });
  await backend?.close();
});

async function position(c: Etcd3): Promise<{ revision: number; clusterId: string }> {
  const res = await c.get(KEY).exec();
  return { revision: Number(res.header.revision), clusterId: String(res.header.cluster_id) };
}

async function waitAll(gws: Gateway[], what: string, pred: (h: Awaited<ReturnType<typeof health>>) => boolean, timeoutMs: number, from: number): Promise<Record<string, number>> {
  const at: Record<string, number> = {};
  await Promise.all(
    gws.map(async (g) => {
      await until(`${g.id} ${what}`, async () => pred(await health(g.base)), timeoutMs);
      at[g.id] = performance.now() - from;
    }),
  );
  return at;
}

const show = (r: Record<string, number>) => Object.entries(r).map(([k, v]) => `${k} ${ms(v)}`).join(', ');

it('etcd stopped/restarted and wiped/repopulated: serving never stops, degraded while down, newer and reset configs applied', { skip, timeout: 40_000 }, async (t) => {
  backend = await startEchoBackend();
  etcd = await startEtcd();
  client = new Etcd3({ hosts: etcd.url });
  await putCurrent(client, envelope(1, fleetConfig(backend.url, 'v1')));
  const gws = await Promise.all(['gw-a', 'gw-b'].map((id) => startGateway({ id, etcd: etcd!.url })));
  for (const g of gws) await waitServing(g, 'v1', 5000);
  load = new Load(gws, 4);
  await load.more(200);

  // --- 1. stopped and restarted, same data directory ---------------------------
  const beforeStop = await position(client);
  client.close();
  const stoppedAt = performance.now();
  const atStop = load.responses;
  await etcd.stop();
  const degraded = await waitAll(gws, 'degraded (stale)', (h) => h.status === 'degraded' && h.sync.state === 'stale' && h.config?.version === 1, STALE_AFTER_MS + 8000, stoppedAt);
  for (const [id, v] of Object.entries(degraded)) assert.ok(v >= STALE_AFTER_MS, `${id} degraded only after the threshold (${ms(v)})`);
  etcd = await etcd.restart();
  const downMs = performance.now() - stoppedAt;
  const duringOutage = load.responses - atStop;
  client = new Etcd3({ hosts: etcd.url });
  const afterRestart = await position(client);
  assert.equal(afterRestart.clusterId, beforeStop.clusterId, 'same data directory, same cluster');
  await putCurrent(client, envelope(2, fleetConfig(backend.url, 'v2')));
  const writtenAt = performance.now();
  const picked: Record<string, number> = {};
  await Promise.all(gws.map(async (g) => (picked[g.id] = (await waitServing(g, 'v2', 10_000)) - writtenAt)));
  const ok = await waitAll(gws, 'ok on version 2', (h) => h.status === 'ok' && h.sync.state === 'current' && h.config?.version === 2 && h.config.source === 'etcd', 10_000, writtenAt);
  t.diagnostic(`restart: etcd down ${ms(downMs)} (${duringOutage} responses meanwhile); degraded after ${show(degraded)}; version 2 (written right after the restart) served after ${show(picked)}; ok again after ${show(ok)}`);

  // --- 2. wiped and repopulated with a lower version ---------------------------
  // Pad the revision so "lower after the wipe" does not hang on a handful of writes.
  for (let i = 0; i < 20; i++) await client.put(`/padding/${i}`).value('x');
  const beforeWipe = await position(client);
  client.close();
  const atWipe = load.responses;
  await etcd.stop({ wipe: true });
  etcd = await etcd.restart();
  client = new Etcd3({ hosts: etcd.url });
  assert.equal((await client.get(KEY).string()), null, 'the wipe emptied etcd');
  await putCurrent(client, envelope(1, fleetConfig(backend.url, 'reset'), 'repopulated'));
  const repopulatedAt = performance.now();
  const afterWipe = await position(client);
  assert.ok(afterWipe.revision < beforeWipe.revision, `revision went backwards: ${beforeWipe.revision} -> ${afterWipe.revision}`);
  const reset: Record<string, number> = {};
  await Promise.all(gws.map(async (g) => (reset[g.id] = (await waitServing(g, 'reset', 15_000)) - repopulatedAt)));
  for (const g of gws) {
    const h = await until(`${g.id} ok on the repopulated version 1`, async () => {
      const h = await health(g.base);
      return h.status === 'ok' && h.config?.version === 1 ? h : undefined;
    }, 5000);
    assert.equal(h.config?.source, 'etcd');
    assert.equal(h.rejected, null);
    assert.ok(g.logs.count('etcd was reset') >= 1, `${g.id} logged the reset`);
  }
  // Reports go to the new etcd: each node ACKed the repopulated version 1.
  await until('both nodes reported version 1 to the new etcd', async () => {
    const all = await client!.getAll().prefix('/portico/nodes/').json();
    return ['gw-a', 'gw-b'].every((id) => (all[`/portico/nodes/${id}`] as { applied_version?: number } | undefined)?.applied_version === 1);
  }, 5000);

  await load.more(100);
  const stats = await load.stop();
  t.diagnostic(`wipe: revision ${beforeWipe.revision} -> ${afterWipe.revision}, cluster id ${beforeWipe.clusterId === afterWipe.clusterId ? `unchanged (${afterWipe.clusterId})` : `${beforeWipe.clusterId} -> ${afterWipe.clusterId}`}; repopulated version 1 served after ${show(reset)} (${load.responses - atWipe} responses since the wipe)`);
  t.diagnostic(`requests: ${stats.responses} total (${JSON.stringify(stats.perGateway)}); statuses ${JSON.stringify(stats.statuses)}; failures ${stats.failures}`);
  assert.deepEqual(stats.samples, [], 'no failed request');
  assert.equal(stats.failures, 0);
  assert.ok(duringOutage > 100, `requests flowed while etcd was down (${duringOutage})`);
  for (const [id, v] of Object.entries(picked)) assert.ok(v < 10_000, `${id} applied version 2 ${ms(v)} after it was written`);

  for (const g of gws) assert.equal(await g.stop(), 0);
});
