// The etcd store: the shared API suite, then what only etcd gives: several
// control-plane replicas on one etcd with no other coordination.

import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import { after, before, describe, it } from 'node:test';
import { etcdKeys } from '../../src/controlplane/protocol.ts';
import { configHash } from '../../src/lifecycle/canonical.ts';
import { ETCD_BIN, etcdAvailable, startEtcd, type TestEtcd } from '../helpers/etcd.ts';
import { apiSuite, HOLD_MS } from './api-suite.ts';
import { call, config, okReport, startControlPlane, stopAll, type ControlPlaneProcess } from './support.ts';

const skip = etcdAvailable ? undefined : `etcd is not installed at ${ETCD_BIN} (apt-get install etcd-server, or set PORTICO_TEST_ETCD)`;
let etcdStarted: Promise<TestEtcd> | undefined;
const etcd = () => (etcdStarted ??= startEtcd());
after(async () => {
  await stopAll();
  if (etcdStarted) await (await etcdStarted).stop({ wipe: true });
});

apiSuite('etcd store', async () => startControlPlane(['--etcd', (await etcd()).url, '--etcd-prefix', '/api', '--watch-hold', `${HOLD_MS}ms`]), { skip });

describe('two control-plane replicas on one etcd', { skip }, () => {
  const prefix = '/replicas';
  let a: ControlPlaneProcess;
  let b: ControlPlaneProcess;
  let client: Etcd3;
  before(async () => {
    const e = await etcd();
    const args = ['--etcd', e.url, '--etcd-prefix', prefix, '--watch-hold', '5s'];
    [a, b] = await Promise.all([startControlPlane(args), startControlPlane(args)]);
    client = new Etcd3({ hosts: e.url });
  });
  after(() => client?.close());

  it('a version written through A is served by B, in the layout protocol.ts gives', async () => {
    const put = await call(a.url, '/v1/config', { body: config('one') });
    assert.equal(put.status, 201);
    const got = (await call(b.url, '/v1/config')).json();
    assert.equal(got.version, 1);
    assert.equal(got.hash, configHash(config('one')));
    assert.equal((await call(b.url, '/v1/configs/1')).json().hash, got.hash);
    const keys = etcdKeys(prefix);
    assert.deepEqual(await client.get(keys.current).json(), await client.get(keys.config(1)).json());
    assert.equal(((await client.get(keys.config(1)).json()) as any).hash, got.hash);
  });

  it('a watch held on B is answered when A publishes', async () => {
    const t0 = Date.now();
    const pending = call(b.url, '/v1/watch?after=1&node=gw-1');
    await new Promise((r) => setTimeout(r, 150));
    const put = await call(a.url, '/v1/config', { body: config('two') });
    assert.equal(put.status, 201);
    const w = await pending;
    assert.equal(w.status, 200);
    assert.equal(w.json().version, 2);
    assert.ok(Date.now() - t0 < 3000, `answered after ${Date.now() - t0} ms (hold is 5 s)`);
  });

  it('concurrent writes through both replicas get distinct, gapless versions', async () => {
    const puts = await Promise.all(
      Array.from({ length: 16 }, (_, i) => call(i % 2 ? a.url : b.url, '/v1/config', { body: config(`c${i}`) })),
    );
    assert.deepEqual(puts.map((p) => p.status), Array(16).fill(201));
    const versions = puts.map((p) => p.json().version).sort((x, y) => x - y);
    assert.deepEqual(versions, Array.from({ length: 16 }, (_, i) => i + 3));
    const h = (await call(b.url, '/v1/configs')).json();
    assert.equal(h.total, 18);
    assert.deepEqual(h.configs.map((c: any) => c.version), Array.from({ length: 18 }, (_, i) => 18 - i));
  });

  it('If-Match races across replicas: exactly one wins, the other gets 409', async () => {
    const latest = (await call(a.url, '/v1/config')).json().version;
    const [x, y] = await Promise.all([
      call(a.url, '/v1/config', { body: config('race-a'), headers: { 'if-match': String(latest) } }),
      call(b.url, '/v1/config', { body: config('race-b'), headers: { 'if-match': String(latest) } }),
    ]);
    assert.deepEqual([x.status, y.status].sort(), [201, 409]);
    assert.equal((x.status === 409 ? x : y).json().latest, latest + 1);
  });

  it('node reports and watches through one replica are listed by the other', async () => {
    const latest = (await call(a.url, '/v1/config')).json();
    assert.equal((await call(a.url, '/v1/nodes/gw-1/report', { method: 'POST', body: okReport(latest.version, latest.hash) })).status, 204);
    const nodes = (await call(b.url, '/v1/nodes')).json().nodes;
    assert.deepEqual(nodes.map((n: any) => [n.node, n.applied_version, n.behind]), [['gw-1', latest.version, 0]]);
  });

  it('a config written into etcd directly (bypassing validation) is served, but cannot be rolled back to', async () => {
    const keys = etcdKeys(prefix);
    const latest = (await call(a.url, '/v1/config')).json().version;
    const bad = { version: 3, endpoints: [{ endpoint: '/x', backend: [] }] };
    const envelope = { version: latest + 1, hash: configHash(bad), created_at: new Date().toISOString(), config: bad };
    await client.put(keys.config(latest + 1)).value(JSON.stringify(envelope));
    await client.put(keys.current).value(JSON.stringify(envelope));
    assert.equal((await call(b.url, '/v1/config')).json().version, latest + 1);
    const r = await call(a.url, `/v1/rollback/${latest + 1}`, { method: 'POST' });
    assert.equal(r.status, 422);
    assert.match(r.json().errors[0], /^version \d+ error \$\.endpoints\[0\]\.backend/);
    const back = await call(b.url, `/v1/rollback/${latest}`, { method: 'POST' });
    assert.equal(back.status, 201);
    assert.equal(back.json().version, latest + 2);
  });
});
