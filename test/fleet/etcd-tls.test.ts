// etcd over TLS with client certificates (--client-cert-auth), certificates from
// a throwaway CA made in the test: a control plane stores configurations there
// and a gateway watches the key directly, both over mutual TLS. Gateways with a
// wrong CA, no CA (system CAs), a client certificate from another CA or none at
// all are refused by the TLS handshake: each says why in its log and /__health
// and keeps serving its last known good configuration. A control plane with a
// wrong CA answers 503 with the reason.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { call } from '../controlplane/support.ts';
import type { TestBackend } from '../helpers/backend.ts';
import { ETCD_BIN, etcdAvailable, startEtcd, type TestEtcd } from '../helpers/etcd.ts';
import { startEchoBackend } from '../helpers/lifecycle-support.ts';
import { runCli } from '../helpers/process.ts';
import { etcdConnection, type EtcdFlags } from '../../src/controlplane/etcd-connection.ts';
import { makePki, opensslMissing, type Pki } from '../helpers/tls.ts';
import { expectRefusals, type RefusedCase } from './etcd-refusals.ts';
import { fleetConfig, health, publish, startCp, startGateway, stopEverything, until, waitServing } from './support.ts';

const skip = !etcdAvailable ? `etcd is not installed at ${ETCD_BIN} (apt-get install etcd-server, or set PORTICO_TEST_ETCD)` : opensslMissing();

describe('etcd over TLS with client certificates', { skip, timeout: 60_000 }, () => {
  let pki: Pki;
  let etcd: TestEtcd;
  let backend: TestBackend;
  let tlsArgs: string[];

  before(async () => {
    pki = await makePki();
    backend = await startEchoBackend();
    etcd = await startEtcd({ tls: { cert: pki.serverCert, key: pki.serverKey, clientCa: pki.ca, ca: pki.ca, clientCert: pki.clientCert, clientKey: pki.clientKey } });
    tlsArgs = ['--etcd-ca', pki.ca, '--etcd-cert', pki.clientCert, '--etcd-cert-key', pki.clientKey];
  });
  after(async () => {
    await stopEverything();
    await etcd?.stop({ wipe: true });
    await backend?.close();
    pki?.cleanup();
  });

  it('a control plane and a gateway reach etcd over mTLS; wrong trust or client certificates are refused and the gateway keeps its last known good', async () => {
    assert.match(etcd.url, /^https:\/\//);
    const cp = await startCp(['--etcd', etcd.url, ...tlsArgs, '--watch-hold', '500ms']);
    assert.match(cp.output(), /"etcd_tls":"client certificate"/);
    const v1 = await publish(cp.url, fleetConfig(backend.url, 'v1'));
    assert.equal(v1.status, 201, v1.body);

    const gw = await startGateway({ id: 'gw-tls', etcd: etcd.url, args: tlsArgs });
    await waitServing(gw, 'v1', 5000);
    const v2 = await publish(cp.url, fleetConfig(backend.url, 'v2'));
    assert.equal(v2.status, 201, v2.body);
    await waitServing(gw, 'v2', 5000); // the watch works over TLS too
    const h = await until('gw-tls ok on version 2', async () => {
      const h = await health(gw.base);
      return h.status === 'ok' && h.config?.version === 2 ? h : undefined;
    }, 5000);
    assert.equal(h.config?.source, 'etcd');
    await until('gw-tls reported version 2 through etcd', async () => {
      const nodes = await call(cp.url, '/v1/nodes');
      return (nodes.json().nodes as { node: string; applied_version: number }[]).some((n) => n.node === 'gw-tls' && n.applied_version === 2);
    }, 5000);
    assert.equal(await gw.stop(), 0);

    // The same gateway restarted (same last-known-good cache) with bad TLS settings.
    const cases: RefusedCase[] = [
      { id: 'wrong-ca', args: ['--etcd-ca', pki.otherCa, '--etcd-cert', pki.clientCert, '--etcd-cert-key', pki.clientKey], why: /server certificate is not trusted.*--etcd-ca/ },
      { id: 'system-ca', args: ['--etcd-cert', pki.clientCert, '--etcd-cert-key', pki.clientKey], why: /server certificate is not trusted/ },
      { id: 'other-client', args: ['--etcd-ca', pki.ca, '--etcd-cert', pki.otherClientCert, '--etcd-cert-key', pki.otherClientKey], why: /did not accept the client certificate.*--etcd-cert/ },
      { id: 'no-client', args: ['--etcd-ca', pki.ca], why: /did not accept the client certificate/ },
    ];
    const v3 = await publish(cp.url, fleetConfig(backend.url, 'v3'));
    assert.equal(v3.status, 201, v3.body);
    const started = await expectRefusals(etcd.url, gw.cacheDir, cases, { version: 2, tag: 'v2' });
    for (const g of started) assert.equal(await g.stop(), 0);

    // A control plane that does not trust etcd's certificate: writes answer 503 with the reason.
    const wrong = await startCp(['--etcd', etcd.url, '--etcd-ca', pki.otherCa, '--etcd-cert', pki.clientCert, '--etcd-cert-key', pki.clientKey]);
    // gRPC may fail the very first call before it knows why ("No connection established. Last error: null"): the reason comes with the next ones.
    const refused = await until('a 503 naming the untrusted certificate', async () => {
      const r = await publish(wrong.url, fleetConfig(backend.url, 'v4'));
      assert.equal(r.status, 503, r.body);
      return /server certificate is not trusted/.test(JSON.parse(r.body).error) ? r : undefined;
    }, 10_000, 200);
    assert.equal(refused.status, 503);
    assert.equal(await wrong.stop(), 0);
    assert.equal(await cp.stop(), 0);
  });

  it('TLS flags are checked before anything starts: http:// URLs, missing or mismatched files', async () => {
    const plainUrl = etcd.url.replace('https://', 'http://');
    const bad: [EtcdFlags, RegExp][] = [
      [{ etcd: plainUrl, ca: pki.ca }, /^--etcd-ca needs https:\/\/ etcd URLs$/],
      [{ etcd: plainUrl, cert: pki.clientCert, key: pki.clientKey }, /^--etcd-cert needs https:\/\/ etcd URLs$/],
      [{ etcd: etcd.url, cert: pki.clientCert }, /^--etcd-cert and --etcd-cert-key go together$/],
      [{ etcd: etcd.url, ca: `${pki.dir}/missing.pem` }, /^--etcd-ca .*missing\.pem: no such file$/],
      [{ etcd: etcd.url, ca: pki.clientKey }, /^--etcd-ca .*: not a usable PEM file/],
      [{ etcd: etcd.url, cert: pki.clientKey, key: pki.clientKey }, /^--etcd-cert .*: not a usable PEM file/],
      [{ etcd: etcd.url, cert: pki.clientCert, key: pki.clientCert }, /^--etcd-cert-key .*: not a usable PEM file/],
      [{ etcd: etcd.url, cert: pki.clientCert, key: pki.otherClientKey }, /^--etcd-cert-key .* is not the key of --etcd-cert /],
      [{ etcd: `${etcd.url},${plainUrl}` }, /all https:\/\/ or all http:\/\//],
      [{ etcd: 'etcd:2379' }, /--etcd expects comma-separated http\(s\):\/\/ URLs/],
    ];
    for (const [flags, why] of bad) {
      const c = etcdConnection(flags, {});
      assert.ok('error' in c, JSON.stringify(flags));
      assert.match(c.error, why);
    }
    const good = etcdConnection({ etcd: etcd.url, ca: pki.ca, cert: pki.clientCert, key: pki.clientKey }, {});
    assert.ok(!('error' in good));
    assert.deepEqual(Object.keys(good.security.tls ?? {}).sort(), ['ca', 'cert', 'key']);
    const system = etcdConnection({ etcd: etcd.url }, {});
    assert.ok(!('error' in system) && system.security.tls && system.security.tls.ca === undefined, 'https:// alone: the system CAs');

    // The same checks, through both commands, before anything starts.
    const [run, cp, noEtcd] = await Promise.all([
      runCli(['run', '--node-id', 'x', '--etcd', plainUrl, '--etcd-ca', pki.ca]),
      runCli(['control-plane', '--etcd', etcd.url, '--etcd-cert', pki.clientCert, '--etcd-cert-key', pki.otherClientKey]),
      runCli(['run', '-c', 'x.json', '--etcd-ca', pki.ca]),
    ]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /--etcd-ca needs https:\/\/ etcd URLs/);
    assert.equal(cp.code, 2, cp.stderr);
    assert.match(cp.stderr, /--etcd-cert-key .* is not the key of --etcd-cert/);
    assert.equal(noEtcd.code, 2, noEtcd.stderr);
    assert.match(noEtcd.stderr, /--etcd-ca goes with --etcd/);
  });
});
