// An etcd wiped and repopulated whose new revision has already passed the one
// the gateway remembers (a restore or migration writing many keys, or a gateway
// paused or partitioned meanwhile) cannot be told by the revision alone: a
// single-node etcd re-created on the same peer URLs also keeps its cluster id.
// The gateway must still follow `current` when it holds a lower version with
// other content. Here the gateway is paused (SIGSTOP) across the wipe so that
// it cannot look early.

import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import { after, it } from 'node:test';
import type { TestBackend } from '../helpers/backend.ts';
import { ETCD_BIN, etcdAvailable, startEtcd, type TestEtcd } from '../helpers/etcd.ts';
import { startEchoBackend } from '../helpers/lifecycle-support.ts';
import { envelope, fleetConfig, health, putCurrent, servedTag, startGateway, stopEverything, waitServing } from './support.ts';

const skip = etcdAvailable ? undefined : `etcd is not installed at ${ETCD_BIN}`;

let backend: TestBackend | undefined;
let etcd: TestEtcd | undefined;
let client: Etcd3 | undefined;
after(async () => {
  await stopEverything();
  client?.close();
  await etcd?.stop({ wipe: true });
  await backend?.close();
});

it('an etcd wiped and repopulated past the old revision is still detected', { skip, timeout: 30_000 }, async (t) => {
  backend = await startEchoBackend();
  etcd = await startEtcd();
  client = new Etcd3({ hosts: etcd.url });
  await putCurrent(client, envelope(5, fleetConfig(backend.url, 'v5')));
  const gw = await startGateway({ id: 'gw', etcd: etcd.url });
  await waitServing(gw, 'v5', 5000);
  const before = await client.get('/portico/current').exec();
  client.close();

  gw.running.child.kill('SIGSTOP');
  try {
    await etcd.stop({ wipe: true });
    etcd = await etcd.restart();
    client = new Etcd3({ hosts: etcd.url });
    // A restore writing more keys than the old etcd had revisions, then the config at a lower version.
    for (let i = 0; i < Number(before.header.revision) + 5; i++) await client.put(`/restored/${i}`).value('x');
    await putCurrent(client, envelope(1, fleetConfig(backend.url, 'reset'), 'restored'));
  } finally {
    gw.running.child.kill('SIGCONT');
  }
  const after = await client.get('/portico/current').exec();
  // Wait for the gateway to look (watch reconnect) and for one periodic check (5 s).
  await gw.logs.nth('config version not newer', 2, 8000).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 5500));
  const h = await health(gw.base);
  t.diagnostic(`revision ${before.header.revision} -> ${after.header.revision}, cluster id ${before.header.cluster_id === after.header.cluster_id ? 'unchanged' : 'changed'}; serving ${await servedTag(gw.base)} (version ${h.config?.version}, status ${h.status}); reset logged: ${gw.logs.count('etcd was reset')}`);
  assert.equal(await servedTag(gw.base), 'reset');
  assert.equal(h.config?.version, 1);
  assert.equal(await gw.stop(), 0);
});
