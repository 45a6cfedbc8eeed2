// A gateway following a control plane over HTTPS with client certificates,
// and every hostile case of that link: the control plane comes back (same
// port, same store) with an expired, a self-signed, another CA's and a
// wrong-name certificate; the gateway's client certificate is swapped (SIGHUP
// re-reads it) for another node's and for one of another CA; a gateway talks
// plain HTTP, with a token, to the TLS port. Each is refused with a clear
// error in /__health while the gateway keeps serving its last good version;
// secrets of the configuration appear in no log.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { call } from '../controlplane/support.ts';
import type { TestBackend } from '../helpers/backend.ts';
import { startEchoBackend } from '../helpers/lifecycle-support.ts';
import { opensslMissing } from '../helpers/tls.ts';
import { fleetConfig, health, publish, secureLink, servedTag, startCp, startGateway, stopEverything, tempDir, until, waitServing, type SecureLink } from './support.ts';

const SECRET = 'api-key-never-logged-51c9';
const NODE_TOKEN = 'node-token-sent-in-clear-0d2e';

let backend: TestBackend | undefined;
let link: SecureLink | undefined;
before(async () => {
  backend = await startEchoBackend();
});
after(async () => {
  await stopEverything();
  await backend?.close();
  link?.cleanup();
});

it('hostile certificates on either side are refused, said in /__health, and the gateway keeps serving its last good version', { skip: opensslMissing(), timeout: 60_000 }, async () => {
  link = await secureLink();
  const { pki } = link;
  const store = tempDir('cp-tls-store');
  const serverArgs = (cert: string, key: string) => ['--store', store, '--watch-hold', '500ms', ...link!.cpArgs.slice(4), '--tls-cert', cert, '--tls-key', key];
  const cpOutputs: (() => string)[] = [];
  const restartCp = async (cert: string, key: string, p = port) => {
    const next = await startCp(serverArgs(cert, key), p);
    cpOutputs.push(() => next.output());
    return next;
  };
  let port = 0;
  let cp = await restartCp(pki.serverCert, pki.serverKey);
  port = cp.port;
  const withSecret = { ...fleetConfig(backend!.url, 'v1'), extra_config: { router: { disable_access_log: true }, 'auth/api-keys': { keys: [{ key: SECRET, roles: ['a'] }] } } };
  const v1 = await publish(cp.url, withSecret, link.admin);
  assert.equal(v1.status, 201, v1.body);

  // The gateway's certificate lives in files the test swaps before a SIGHUP.
  const certPath = join(pki.dir, 'gw-cert.pem');
  const keyPath = join(pki.dir, 'gw-key.pem');
  pki.install(pki.gw1Cert, pki.gw1Key, certPath, keyPath);
  const gw = await startGateway({ id: 'gw-1', controlPlane: cp.url, args: ['--control-plane-ca', pki.ca, '--control-plane-cert', certPath, '--control-plane-key', keyPath] });
  await waitServing(gw, 'v1', 5000);
  assert.equal((await health(gw.base)).sync.last_error, null);

  /** Wait until the gateway's last sync error matches, and check it still serves version 1. */
  const refusedWith = async (what: string, error: RegExp) => {
    let seen: string | null = null;
    const h = await until(`${what}: the error in /__health`, async () => {
      const h = await health(gw.base);
      seen = h.sync.last_error;
      return seen && error.test(seen) ? h : undefined;
    }, 10_000).catch((err: Error) => {
      throw new Error(`${err.message}; its last error: ${seen}`);
    });
    assert.equal(h.config?.version, 1, `${what}: still version 1`);
    assert.equal(await servedTag(gw.base), 'v1', `${what}: still serving`);
  };

  // --- the control plane's certificate ----------------------------------------
  const hostile: [string, string, string, RegExp][] = [
    ['expired', pki.expiredCert, pki.expiredKey, /TLS: the certificate of 127\.0\.0\.1:\d+ is refused: certificate has expired \(CERT_HAS_EXPIRED\)/],
    // Bun (BoringSSL) says UNABLE_TO_VERIFY_LEAF_SIGNATURE where Node says DEPTH_ZERO_SELF_SIGNED_CERT.
    ['self-signed', pki.selfSignedCert, pki.selfSignedKey, /TLS: the certificate of 127\.0\.0\.1:\d+ is refused: .*\((DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE)\)/],
    ['another CA', pki.otherCaServerCert, pki.otherCaServerKey, /TLS: the certificate of 127\.0\.0\.1:\d+ is refused: .*\((UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)\)/],
    ['wrong name', pki.aCert, pki.aKey, /TLS: the certificate of 127\.0\.0\.1:\d+ is refused: .*IP: 127\.0\.0\.1 is not in the cert's list.*\(ERR_TLS_CERT_ALTNAME_INVALID\)/],
  ];
  for (const [what, cert, key, error] of hostile) {
    await cp.stop();
    cp = await restartCp(cert, key);
    gw.running.child.kill('SIGHUP'); // ask now rather than after the backoff
    await refusedWith(what, error);
  }

  // --- the gateway's certificate -----------------------------------------------
  await cp.stop();
  cp = await restartCp(pki.serverCert, pki.serverKey);
  gw.running.child.kill('SIGHUP');
  await until('the gateway syncs again', async () => (await health(gw.base)).sync.last_error === null, 10_000);

  pki.install(pki.gw2Cert, pki.gw2Key, certPath, keyPath);
  gw.running.child.kill('SIGHUP');
  await refusedWith('another node\'s certificate', /^watch answered 403: the client certificate is issued to "portico gateway", "gw-2", not to node "gw-1"$/);

  pki.install(pki.otherClientCert, pki.otherClientKey, certPath, keyPath);
  gw.running.child.kill('SIGHUP');
  await refusedWith('a certificate of another CA', /^watch answered 403: client certificate refused: /);

  // Back to its own certificate: the next version arrives and is reported.
  pki.install(pki.gw1Cert, pki.gw1Key, certPath, keyPath);
  gw.running.child.kill('SIGHUP');
  const v2 = await publish(cp.url, fleetConfig(backend!.url, 'v2'), link.admin);
  assert.equal(v2.status, 201, v2.body);
  await waitServing(gw, 'v2', 10_000);
  await until('gw-1 reported version 2', async () => {
    const nodes = (await call(cp.url, '/v1/nodes', link!.admin)).json().nodes as { node: string; applied_version: number; status: string }[];
    return nodes.length === 1 && nodes[0].node === 'gw-1' && nodes[0].applied_version === 2 && nodes[0].status === 'ok';
  }, 5000);

  // --- plain HTTP with a token to the TLS port -----------------------------------
  const plain = await startGateway({ id: 'gw-plain', controlPlane: cp.url.replace('https:', 'http:'), args: ['--node-token', NODE_TOKEN] });
  const h = await until('the plain gateway says why', async () => {
    const h = await health(plain.base);
    return h.sync.last_error ? h : undefined;
  }, 10_000);
  assert.match(h.sync.last_error!, /^watch answered 400: this control plane only speaks HTTPS: use an https:\/\/ URL/);
  assert.equal(h.ready, false, 'no configuration came over plain HTTP');

  assert.equal(await plain.stop(), 0);
  assert.equal(await gw.stop(), 0);
  assert.equal(await cp.stop(), 0);
  for (const [who, out] of [['control plane', cpOutputs.map((o) => o()).join('')], ['gateway', gw.running.output() + plain.running.output()]]) {
    assert.doesNotMatch(out, new RegExp(SECRET), `${who}: no secret in the logs`);
    assert.doesNotMatch(out, new RegExp(NODE_TOKEN), `${who}: no token in the logs`);
  }
});

it('portico run: TLS flags need an https:// control plane, and files that can be read', async () => {
  const { runCli } = await import('../helpers/process.ts');
  const plain = await runCli(['run', '--control-plane', 'http://127.0.0.1:1', '--control-plane-ca', '/etc/hostname', '-p', '0']);
  assert.equal(plain.code, 2);
  assert.match(plain.stderr, /--control-plane-ca needs an https:\/\/ control plane URL/);
  const missing = await runCli(['run', '--control-plane', 'https://127.0.0.1:1', '--control-plane-ca', '/nonexistent/ca.pem', '-p', '0']);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /--control-plane-ca \/nonexistent\/ca\.pem: no such file/);
  const half = await runCli(['run', '--control-plane', 'https://127.0.0.1:1', '--control-plane-cert', '/nonexistent/c.pem', '-p', '0']);
  assert.equal(half.code, 2);
  assert.match(half.stderr, /--control-plane-cert and --control-plane-key go together/);
});
