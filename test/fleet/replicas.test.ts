// Two control-plane replicas on one etcd, nothing else shared: a PUT on
// replica A is served by replica B (GET /v1/config), and a gateway watching B
// gets each version published through A (B's held watch is answered by B's
// etcd watch). The gateway's ACK sent to B is visible through A.

import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import { call } from '../controlplane/support.ts';
import type { TestBackend } from '../helpers/backend.ts';
import { ETCD_BIN, etcdAvailable, startEtcd, type TestEtcd } from '../helpers/etcd.ts';
import { startEchoBackend } from '../helpers/lifecycle-support.ts';
import { fleetConfig, health, ms, publish, startCp, startGateway, stopEverything, until, waitServing } from './support.ts';

const skip = etcdAvailable ? undefined : `etcd is not installed at ${ETCD_BIN} (apt-get install etcd-server, or set PORTICO_TEST_ETCD)`;

let backend: TestBackend | undefined;
let etcd: TestEtcd | undefined;
after(async () => {
  await stopEverything();
  await etcd?.stop({ wipe: true });
  await backend?.close();
});

it('two control-plane replicas on one etcd: a write on A is served by B, and a gateway watching B follows it', { skip, timeout: 30_000 }, async (t) => {
  backend = await startEchoBackend();
  etcd = await startEtcd();
  // A long hold on purpose: the gateway's watch on B is answered by A's publish, not by the hold running out.
  const args = ['--etcd', etcd.url, '--watch-hold', '5s'];
  const [a, b] = await Promise.all([startCp(args), startCp(args)]);

  const v1 = await publish(a.url, fleetConfig(backend.url, 'v1'));
  assert.equal(v1.status, 201, v1.body);
  const onB = await call(b.url, '/v1/config');
  assert.equal(onB.status, 200);
  assert.equal(onB.json().version, 1);
  assert.equal(onB.json().hash, v1.hash);
  assert.equal(onB.headers.etag, '"1"');
  assert.deepEqual(onB.json().config, fleetConfig(backend.url, 'v1'));

  const gw = await startGateway({ id: 'gw-on-b', controlPlane: b.url });
  await waitServing(gw, 'v1', 5000);

  const times: number[] = [];
  for (const [i, tag] of ['v2', 'v3', 'v4'].entries()) {
    const p = await publish(a.url, fleetConfig(backend.url, tag));
    assert.equal(p.status, 201, p.body);
    assert.equal(p.version, i + 2);
    times.push((await waitServing(gw, tag, 4000)) - p.at);
    const fromB = (await call(b.url, '/v1/config')).json();
    assert.deepEqual([fromB.version, fromB.hash], [p.version, p.hash], 'B serves what A stored');
  }
  const h = await health(gw.base);
  assert.deepEqual([h.config?.version, h.config?.source, h.status], [4, 'control-plane', 'ok']);

  // The report went to B; A reads the same etcd.
  await until('A lists the gateway on version 4', async () => {
    const n = ((await call(a.url, '/v1/nodes')).json().nodes as { node: string; applied_version: number; behind: number }[]).find((x) => x.node === 'gw-on-b');
    return n?.applied_version === 4 && n.behind === 0;
  }, 5000);
  // And both replicas give the same history.
  assert.deepEqual((await call(a.url, '/v1/configs')).json(), (await call(b.url, '/v1/configs')).json());

  t.diagnostic(`publish on A (201) -> gateway on B serving it: ${times.map(ms).join(', ')} (watch hold 5 s)`);
  assert.ok(times.every((x) => x < 3000), 'answered by the publish, not by the hold running out');
  assert.equal(await gw.stop(), 0);
  assert.deepEqual(await Promise.all([a.stop(), b.stop()]), [0, 0]);
});
