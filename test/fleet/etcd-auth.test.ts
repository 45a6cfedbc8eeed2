// etcd with user/password authentication enabled (root user, `auth enable`, and
// one user per Portico role with read-write on /portico/ only): a control plane
// and a gateway log in with --etcd-user and $PORTICO_ETCD_PASSWORD. A wrong
// password, no user at all, or a user whose roles do not cover the key: each is
// said in the gateway's log and /__health, and the gateway keeps serving its last
// known good configuration. The password never appears in any output.

import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import { after, before, describe, it } from 'node:test';
import { etcdConnection } from '../../src/controlplane/etcd-connection.ts';
import { call, startControlPlane } from '../controlplane/support.ts';
import type { TestBackend } from '../helpers/backend.ts';
import { enableEtcdAuth, ETCD_BIN, etcdAvailable, startEtcd, type TestEtcd } from '../helpers/etcd.ts';
import { startEchoBackend } from '../helpers/lifecycle-support.ts';
import { runCli } from '../helpers/process.ts';
import { expectRefusals, type RefusedCase } from './etcd-refusals.ts';
import { fleetConfig, health, publish, startGateway, stopEverything, until, waitServing } from './support.ts';

const skip = etcdAvailable ? undefined : `etcd is not installed at ${ETCD_BIN} (apt-get install etcd-server, or set PORTICO_TEST_ETCD)`;

const CP_PASSWORD = 'cp-secret-7f3a9c';
const GW_PASSWORD = 'gw-secret-51d2e8';
const WRONG_PASSWORD = 'wrong-secret-0b6e44';

describe('etcd with user/password authentication', { skip, timeout: 60_000 }, () => {
  let etcd: TestEtcd;
  let backend: TestBackend;

  before(async () => {
    backend = await startEchoBackend();
    etcd = await startEtcd();
    await enableEtcdAuth(new Etcd3({ hosts: etcd.url }), 'root-secret', { 'portico-cp': CP_PASSWORD, 'portico-gw': GW_PASSWORD });
  });
  after(async () => {
    await stopEverything();
    await etcd?.stop({ wipe: true });
    await backend?.close();
  });

  it('a control plane and a gateway log in; wrong or missing credentials are refused and the gateway keeps its last known good', async () => {
    // Auth is really on: an anonymous client is refused.
    const anonymous = new Etcd3({ hosts: etcd.url });
    await assert.rejects(anonymous.get('/portico/current').string(), /user name is empty/);
    anonymous.close();

    const cp = await startControlPlane(['--etcd', etcd.url, '--etcd-user', 'portico-cp', '--watch-hold', '500ms'], { PORTICO_ETCD_PASSWORD: CP_PASSWORD });
    assert.match(cp.output(), /"etcd_user":"portico-cp"/);
    const v1 = await publish(cp.url, fleetConfig(backend.url, 'v1'));
    assert.equal(v1.status, 201, v1.body);

    const login = ['--etcd-user', 'portico-gw'];
    const gw = await startGateway({ id: 'gw-auth', etcd: etcd.url, args: login, env: { PORTICO_ETCD_PASSWORD: GW_PASSWORD } });
    await waitServing(gw, 'v1', 5000);
    const v2 = await publish(cp.url, fleetConfig(backend.url, 'v2'));
    assert.equal(v2.status, 201, v2.body);
    await waitServing(gw, 'v2', 5000);
    await until('gw-auth reported version 2 (a write under /portico/nodes/ as portico-gw)', async () => {
      const nodes = await call(cp.url, '/v1/nodes');
      return (nodes.json().nodes as { node: string; applied_version: number }[]).some((n) => n.node === 'gw-auth' && n.applied_version === 2);
    }, 5000);
    assert.equal((await health(gw.base)).status, 'ok');
    assert.equal(await gw.stop(), 0);
    assert.ok(!gw.running.output().includes(GW_PASSWORD), 'the password is never logged');

    const v3 = await publish(cp.url, fleetConfig(backend.url, 'v3'));
    assert.equal(v3.status, 201, v3.body);
    const cases: RefusedCase[] = [
      { id: 'wrong-password', args: login, env: { PORTICO_ETCD_PASSWORD: WRONG_PASSWORD }, why: /refused the user name or password/ },
      { id: 'no-user', args: [], env: {}, why: /requires a user name and password/ },
      { id: 'no-permission', args: [...login, '--etcd-key', '/elsewhere/current'], env: { PORTICO_ETCD_PASSWORD: GW_PASSWORD }, why: /roles do not allow it/ },
    ];
    const started = await expectRefusals(etcd.url, gw.cacheDir, cases, { version: 2, tag: 'v2' });
    for (const g of started) {
      assert.equal(await g.stop(), 0);
      for (const secret of [GW_PASSWORD, WRONG_PASSWORD]) assert.ok(!g.running.output().includes(secret), `${g.id}: no password in the output`);
    }

    // A control plane with the wrong password: calls answer 503 with the reason.
    const wrong = await startControlPlane(['--etcd', etcd.url, '--etcd-user', 'portico-cp'], { PORTICO_ETCD_PASSWORD: WRONG_PASSWORD });
    const refused = await publish(wrong.url, fleetConfig(backend.url, 'v4'));
    assert.equal(refused.status, 503, refused.body);
    assert.match(JSON.parse(refused.body).error, /refused the user name or password/);
    assert.equal(await wrong.stop(), 0);
    assert.equal(await cp.stop(), 0);
    for (const out of [cp.output(), wrong.output()]) for (const secret of [CP_PASSWORD, WRONG_PASSWORD]) assert.ok(!out.includes(secret));
  });

  it('the password comes from $PORTICO_ETCD_PASSWORD only, with --etcd-user; over http:// to another host a warning says it crosses in clear', async () => {
    const env = { PORTICO_ETCD_PASSWORD: 'p' };
    const no = (flags: Parameters<typeof etcdConnection>[0], e: NodeJS.ProcessEnv) => {
      const c = etcdConnection(flags, e);
      return 'error' in c ? c.error : undefined;
    };
    assert.equal(no({ etcd: etcd.url, user: 'u' }, {}), '--etcd-user needs the password in $PORTICO_ETCD_PASSWORD');
    assert.equal(no({ etcd: etcd.url, user: 'u' }, { PORTICO_ETCD_PASSWORD: '' }), '--etcd-user needs the password in $PORTICO_ETCD_PASSWORD');
    assert.equal(no({ etcd: etcd.url }, env), '$PORTICO_ETCD_PASSWORD is set but --etcd-user is not');
    assert.equal(no({ etcd: etcd.url, user: '' }, env), '--etcd-user cannot be empty');
    const local = etcdConnection({ etcd: etcd.url, user: 'u' }, env);
    assert.ok(!('error' in local));
    assert.deepEqual(local.security.auth, { username: 'u', password: 'p' });
    assert.deepEqual(local.warnings, []);
    const remote = etcdConnection({ etcd: 'http://etcd-1.example:2379', user: 'u' }, env);
    assert.ok(!('error' in remote));
    assert.match(remote.warnings.join(), /cross the network in clear over http:\/\//);
    const tls = etcdConnection({ etcd: 'https://etcd-1.example:2379', user: 'u' }, env);
    assert.ok(!('error' in tls) && tls.warnings.length === 0);

    // No --etcd-password flag exists: a password on the command line would show in `ps`.
    const r = await runCli(['run', '--node-id', 'x', '--etcd', etcd.url, '--etcd-user', 'u', '--etcd-password', 'p']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /Unknown option '--etcd-password'/);
    const missing = await runCli(['control-plane', '--etcd', etcd.url, '--etcd-user', 'u'], { PORTICO_ETCD_PASSWORD: '' });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--etcd-user needs the password in \$PORTICO_ETCD_PASSWORD/);
  });
});
