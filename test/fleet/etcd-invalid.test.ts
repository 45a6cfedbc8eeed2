// An invalid configuration written straight into etcd's <prefix>/current
// (bypassing the control plane's validation, with a correct content hash) is
// rejected by every node, whichever way it follows the fleet: a gateway
// watching a control plane that uses etcd, and a gateway watching etcd itself.
// Both keep serving the previous version; the rejection shows in GET /v1/nodes
// (status rejected, rejected_version, error) and in each node's /__health
// (rejected.version). A valid publish then clears it everywhere.

import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import { after, it } from 'node:test';
import { configHash } from '../../src/lifecycle/canonical.ts';
import { call } from '../controlplane/support.ts';
import type { TestBackend } from '../helpers/backend.ts';
import { ETCD_BIN, etcdAvailable, startEtcd, type TestEtcd } from '../helpers/etcd.ts';
import { startEchoBackend } from '../helpers/lifecycle-support.ts';
import { envelope, fleetConfig, health, invalidConfig, ms, publish, putCurrent, servedTag, startCp, startGateway, stopEverything, until, waitServing } from './support.ts';

const skip = etcdAvailable ? undefined : `etcd is not installed at ${ETCD_BIN} (apt-get install etcd-server, or set PORTICO_TEST_ETCD)`;

let backend: TestBackend | undefined;
let etcd: TestEtcd | undefined;
let client: Etcd3 | undefined;
after(async () => {
  await stopEverything();
  client?.close();
  await etcd?.stop({ wipe: true });
  await backend?.close();
});

interface NodeView {
  node: string;
  applied_version: number | null;
  hash: string | null;
  status: string;
  rejected_version: number | null;
  error: string | null;
  behind: number | null;
}

async function nodes(cpUrl: string): Promise<Record<string, NodeView>> {
  const r = await call(cpUrl, '/v1/nodes');
  assert.equal(r.status, 200, r.body);
  return Object.fromEntries((r.json().nodes as NodeView[]).map((n) => [n.node, n]));
}

it('an invalid config written directly into etcd is rejected by every node, which keeps serving; a valid publish clears it', { skip, timeout: 40_000 }, async (t) => {
  backend = await startEchoBackend();
  etcd = await startEtcd();
  client = new Etcd3({ hosts: etcd.url });
  const cp = await startCp(['--etcd', etcd.url, '--watch-hold', '500ms']);
  const v1 = await publish(cp.url, fleetConfig(backend.url, 'v1'));
  assert.equal(v1.status, 201, v1.body);

  const [viaCp, viaEtcd] = await Promise.all([
    startGateway({ id: 'gw-cp', controlPlane: cp.url }),
    startGateway({ id: 'gw-etcd', etcd: etcd.url }),
  ]);
  const gws = [viaCp, viaEtcd];
  for (const g of gws) await waitServing(g, 'v1', 5000);
  assert.equal((await health(viaCp.base)).config?.source, 'control-plane');
  assert.equal((await health(viaEtcd.base)).config?.source, 'etcd');
  await until('both nodes ACKed version 1', async () => {
    const n = await nodes(cp.url);
    return n['gw-cp']?.applied_version === 1 && n['gw-etcd']?.applied_version === 1 && n['gw-cp'].status === 'ok' && n['gw-etcd'].status === 'ok';
  }, 5000);

  // --- the bad write -----------------------------------------------------------
  const bad = invalidConfig();
  const badEnv = envelope(2, bad, 'written around the control plane');
  assert.equal(badEnv.hash, configHash(bad));
  const writtenAt = performance.now();
  await putCurrent(client, badEnv);

  const seen: Record<string, number> = {};
  await Promise.all(
    gws.map(async (g) => {
      const h = await until(`${g.id} rejecting version 2`, async () => {
        const h = await health(g.base);
        return h.rejected?.version === 2 ? h : undefined;
      }, 10_000, 10);
      seen[g.id] = performance.now() - writtenAt;
      assert.equal(h.status, 'degraded');
      assert.equal(h.config?.version, 1, `${g.id} keeps serving version 1`);
      assert.equal(h.rejected?.hash, badEnv.hash, 'the hash matched: refused for its content, not its hash');
      assert.ok(h.rejected!.errors.some((e) => /backend/.test(e)), `${g.id}: ${JSON.stringify(h.rejected!.errors)}`);
      assert.ok(!h.rejected!.errors.some((e) => /does not match the announced hash/.test(e)));
    }),
  );
  for (const g of gws) for (let i = 0; i < 10; i++) assert.equal(await servedTag(g.base), 'v1');

  const rejectedView = await until('GET /v1/nodes shows both rejections', async () => {
    const n = await nodes(cp.url);
    return ['gw-cp', 'gw-etcd'].every((id) => n[id]?.status === 'rejected' && n[id].rejected_version === 2) ? n : undefined;
  }, 5000);
  for (const id of ['gw-cp', 'gw-etcd']) {
    const n = rejectedView[id];
    assert.equal(n.applied_version, 1);
    assert.equal(n.hash, v1.hash);
    assert.match(n.error ?? '', /backend/);
    assert.equal(n.behind, 1, 'latest is the invalid version 2');
  }

  // --- a valid publish clears it ----------------------------------------------
  const v3 = await publish(cp.url, fleetConfig(backend.url, 'v3'));
  assert.equal(v3.status, 201, v3.body);
  assert.equal(v3.version, 3, 'the next version after the one written into etcd');
  for (const g of gws) {
    await waitServing(g, 'v3', 10_000);
    const h = await until(`${g.id} ok`, async () => {
      const h = await health(g.base);
      return h.status === 'ok' ? h : undefined;
    }, 3000);
    assert.equal(h.config?.version, 3);
    assert.equal(h.rejected, null);
  }
  await until('GET /v1/nodes shows both ok on version 3', async () => {
    const n = await nodes(cp.url);
    return ['gw-cp', 'gw-etcd'].every((id) => n[id]?.status === 'ok' && n[id].applied_version === 3 && n[id].rejected_version === null && n[id].error === null && n[id].behind === 0);
  }, 5000);

  t.diagnostic(`invalid version 2 rejected (seen in /__health) after: ${Object.entries(seen).map(([k, v]) => `${k} ${ms(v)}`).join(', ')}`);
  for (const g of gws) assert.equal(await g.stop(), 0);
  assert.equal(await cp.stop(), 0);
});
