// The control plane over HTTPS with client certificates (--tls-cert, --tls-key,
// --client-ca): plain HTTP refused unread, node ids bound to certificates,
// certificates re-read on SIGHUP without dropping held watches, ctl verifying
// the server, secrets masked on request and never logged, and a control plane
// on a non-loopback address refusing to start open.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { raw } from '../helpers/http.ts';
import { LogLines } from '../helpers/log-lines.ts';
import { until } from '../fleet/support.ts';
import { fingerprint, httpsGet, opensslMissing } from '../helpers/tls.ts';
import { call, config, okReport, runEntry, startControlPlane, stopAll, tempDir, type ControlPlaneProcess } from './support.ts';
import { makeFleetPki, type FleetPki } from './tls-support.ts';

const ADMIN = 'admin-token-tls-test';
const SECRET = 'api-key-never-in-a-log-7f3a';

/** A valid configuration holding a secret (an API key). */
const withSecret = (tag: string) => config(tag, { extra_config: { 'auth/api-keys': { keys: [{ key: SECRET, roles: ['a'] }] } } });

describe('control plane over TLS', { skip: opensslMissing() }, () => {
  let pki: FleetPki;
  let cp: ControlPlaneProcess;
  let certPath: string;
  let keyPath: string;
  const admin = () => ({ token: ADMIN, tls: { ca: pki.read(pki.ca) } });
  const node = (cert: string, key: string) => ({ tls: { ca: pki.read(pki.ca), cert: pki.read(cert), key: pki.read(key) } });

  before(async () => {
    pki = await makeFleetPki();
    certPath = join(pki.dir, 'cp-cert.pem');
    keyPath = join(pki.dir, 'cp-key.pem');
    pki.install(pki.serverCert, pki.serverKey, certPath, keyPath);
    cp = await startControlPlane(['--store', tempDir('cp-tls'), '--tls-cert', certPath, '--tls-key', keyPath, '--client-ca', pki.ca, '--admin-token', ADMIN], {
      PORTICO_LOG_LEVEL: 'debug',
    });
  });
  after(async () => {
    await stopAll();
    pki?.cleanup();
  });

  it('serves HTTPS; its health says TLS and client certificates', async () => {
    assert.match(cp.url, /^https:/);
    const h = await call(cp.url, '/v1/health', { tls: { ca: pki.read(pki.ca) } });
    assert.equal(h.status, 200);
    assert.equal(h.json().tls, true);
    assert.equal(h.json().client_certs, true);
    assert.equal(h.json().insecure, null);
  });

  it('plain HTTP with a token on the TLS port: 400 before the request is read, nothing published', async () => {
    const body = JSON.stringify(config('plain'));
    const answer = await raw(cp.port, `PUT /v1/config HTTP/1.1\r\nHost: cp\r\nAuthorization: Bearer ${ADMIN}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    assert.match(answer, /^HTTP\/1\.1 400 /);
    assert.match(answer, /only speaks HTTPS/);
    const ctlPlain = await runEntry(['ctl', 'history', '--url', cp.url.replace('https:', 'http:'), '--token', ADMIN]);
    assert.equal(ctlPlain.code, 1);
    assert.match(ctlPlain.stderr, /400: this control plane only speaks HTTPS/);
    assert.equal((await call(cp.url, '/v1/configs', admin())).json().total, 0, 'the plain PUT was not processed');
    assert.doesNotMatch(cp.output(), new RegExp(ADMIN), 'the token is never logged');
  });

  it('the data-plane API needs a client certificate issued to the node id it acts as', async () => {
    const v1 = await call(cp.url, '/v1/config', { body: withSecret('v1'), ...admin() });
    assert.equal(v1.status, 201, v1.body);
    const hash = v1.json().hash;

    const none = await call(cp.url, '/v1/watch?after=0&node=gw-1', { tls: { ca: pki.read(pki.ca) } });
    assert.equal(none.status, 401);
    assert.match(none.json().error, /needs a client certificate/);

    const gw1 = node(pki.gw1Cert, pki.gw1Key);
    assert.equal((await call(cp.url, '/v1/watch?after=0&node=gw-1', gw1)).status, 200, 'CN=gw-1 acts as gw-1');
    const asOther = await call(cp.url, '/v1/watch?after=0&node=gw-2', gw1);
    assert.equal(asOther.status, 403);
    assert.equal(asOther.json().error, 'the client certificate is issued to "gw-1", not to node "gw-2"');
    const reportAsOther = await call(cp.url, '/v1/nodes/gw-2/report', { method: 'POST', body: okReport(1, hash), ...gw1 });
    assert.equal(reportAsOther.status, 403);
    assert.equal((await call(cp.url, '/v1/nodes/gw-1/report', { method: 'POST', body: okReport(1, hash), ...gw1 })).status, 204);

    const gw2 = node(pki.gw2Cert, pki.gw2Key);
    assert.equal((await call(cp.url, '/v1/watch?after=0&node=gw-2', gw2)).status, 200, 'DNS SAN gw-2 acts as gw-2');

    const foreign = await call(cp.url, '/v1/watch?after=0&node=gw-1', node(pki.otherClientCert, pki.otherClientKey));
    assert.equal(foreign.status, 403);
    assert.match(foreign.json().error, /^client certificate refused: /);

    const nodes = (await call(cp.url, '/v1/nodes', admin())).json().nodes as { node: string; status: string }[];
    assert.deepEqual(nodes.map((n) => [n.node, n.status]).sort(), [['gw-1', 'ok'], ['gw-2', 'starting']], 'gw-1 could not report as gw-2');
  });

  it('ctl verifies the certificate: the system CAs by default, or only --ca; NODE_TLS_REJECT_UNAUTHORIZED=0 changes nothing', async () => {
    const base = ['ctl', 'history', '--url', cp.url, '--token', ADMIN];
    const untrusted = await runEntry(base);
    assert.equal(untrusted.code, 2);
    assert.match(untrusted.stderr, /TLS: the certificate of 127\.0\.0\.1:\d+ is refused: .*\((UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN)\)/);
    const envOff = await runEntry(base, { NODE_TLS_REJECT_UNAUTHORIZED: '0' });
    assert.equal(envOff.code, 2, envOff.stdout);
    const otherCa = await runEntry([...base, '--ca', pki.otherCa]);
    assert.equal(otherCa.code, 2);
    assert.match(otherCa.stderr, /TLS: .*refused/);
    const ok = await runEntry([...base, '--ca', pki.ca]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^VERSION/);
    const byName = await runEntry(['ctl', 'history', '--url', cp.url.replace('127.0.0.1', 'localhost'), '--token', ADMIN], { PORTICO_CONTROL_PLANE_CA: pki.ca });
    assert.equal(byName.code, 0, byName.stderr);
    const missing = await runEntry([...base, '--ca', join(pki.dir, 'nope.pem')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--ca .*nope\.pem: no such file/);
  });

  it('ctl get --mask-secrets: the control plane masks known secret fields; secrets are never logged', async () => {
    const args = ['ctl', 'get', '--url', cp.url, '--token', ADMIN, '--ca', pki.ca];
    const plain = await runEntry(args);
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(JSON.parse(plain.stdout).extra_config['auth/api-keys'].keys[0].key, SECRET);
    const masked = await runEntry([...args, '--mask-secrets']);
    assert.equal(masked.code, 0, masked.stderr);
    assert.equal(JSON.parse(masked.stdout).extra_config['auth/api-keys'].keys[0].key, '***');
    assert.doesNotMatch(masked.stdout, new RegExp(SECRET));
    assert.match(masked.stderr, /secrets masked/);
    assert.equal((await runEntry(['ctl', 'history', '--mask-secrets', '--url', cp.url, '--token', ADMIN, '--ca', pki.ca])).code, 0);
    const badMask = await call(cp.url, '/v1/config?mask=all', admin());
    assert.equal(badMask.status, 400);
    // Rollback, diff and a rejection report go through the logs too (at debug level here).
    await call(cp.url, '/v1/config', { body: config('v2'), ...admin() });
    assert.equal((await call(cp.url, '/v1/rollback/1', { method: 'POST', ...admin() })).status, 201);
    assert.equal((await call(cp.url, '/v1/configs/2/diff/3', admin())).status, 200);
    assert.doesNotMatch(cp.output(), new RegExp(SECRET));
  });

  it('SIGHUP re-reads the certificate: a held watch stays and is answered, new connections get the new certificate; a broken file keeps the old one', async () => {
    const gw1 = node(pki.gw1Cert, pki.gw1Key);
    const latest = (await call(cp.url, '/v1/config', admin())).json().version as number;
    assert.equal(fingerprint(certPath), (await httpsGet(cp.url, '/v1/health', { ca: pki.ca })).peerFingerprint);
    const held = call(cp.url, `/v1/watch?after=${latest}&node=gw-1`, gw1);
    await until('a held watch', async () => (await call(cp.url, '/v1/health', { tls: { ca: pki.read(pki.ca) } })).json().held_watches === 1, 5000);

    const logs = new LogLines(cp);
    pki.install(pki.rsaCert, pki.rsaKey, certPath, keyPath);
    cp.child.kill('SIGHUP');
    const reloaded = await logs.nth('TLS files reloaded', 1);
    assert.equal((reloaded.cert as { fingerprint256: string }).fingerprint256, fingerprint(pki.rsaCert));
    assert.equal((await httpsGet(cp.url, '/v1/health', { ca: pki.ca })).peerFingerprint, fingerprint(pki.rsaCert), 'new connections: the new certificate');

    assert.equal((await call(cp.url, '/v1/config', { body: config('after-hup'), ...admin() })).status, 201);
    const answer = await held;
    assert.equal(answer.status, 200, 'the held watch was answered, not dropped');
    assert.equal(answer.json().version, latest + 1);

    writeFileSync(keyPath, 'not a key');
    cp.child.kill('SIGHUP');
    const refused = await logs.nth('TLS files not reloaded; the current ones stay in use', 1);
    assert.match(String(refused.error), /--tls-key .*: not a usable PEM file/);
    assert.equal((await httpsGet(cp.url, '/v1/health', { ca: pki.ca })).peerFingerprint, fingerprint(pki.rsaCert), 'still the last good certificate');
  });
});

describe('control plane start-up: open listeners and TLS files', { skip: opensslMissing() }, () => {
  let pki: FleetPki;
  before(async () => {
    pki = await makeFleetPki();
  });
  after(async () => {
    await stopAll();
    pki?.cleanup();
  });

  it('a non-loopback address without credentials is refused unless --insecure, which health then reports', async () => {
    const refused = await runEntry(['control-plane', '--listen', ':0', '--store', tempDir('cp-open')]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /refusing to listen on :0 \(not loopback\) with no --admin-token; no --node-token nor --client-ca.*--insecure/);
    const onlyAdmin = await runEntry(['control-plane', '--listen', ':0', '--store', tempDir('cp-open'), '--admin-token', ADMIN]);
    assert.equal(onlyAdmin.code, 2, 'the data-plane API would hand configurations to anyone');

    const insecure = await startControlPlane(['--store', tempDir('cp-insecure'), '--listen', ':0', '--insecure']);
    const h = (await call(insecure.url, '/v1/health')).json();
    assert.equal(h.tls, false);
    assert.deepEqual(h.insecure, ['no --admin-token', 'no --node-token nor --client-ca: anyone who reaches it can watch every configuration']);
    assert.match(insecure.output(), /"msg":"started with --insecure"/);

    const closed = await startControlPlane(['--store', tempDir('cp-closed'), '--listen', ':0', '--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--client-ca', pki.ca, '--admin-token', ADMIN]);
    assert.equal((await call(closed.url, '/v1/health', { tls: { ca: pki.read(pki.ca) } })).json().insecure, null);
  });

  it('a connection that never sends a byte does not hold a stop', async () => {
    const cp = await startControlPlane(['--store', tempDir('cp-silent'), '--tls-cert', pki.serverCert, '--tls-key', pki.serverKey]);
    const socket = connect(cp.port, '127.0.0.1');
    await once(socket, 'connect');
    const closed = once(socket, 'close');
    const started = performance.now();
    assert.equal(await cp.stop(), 0);
    await closed;
    assert.ok(performance.now() - started < 4000, `stopped in ${Math.round(performance.now() - started)} ms`);
  });

  it('TLS files: missing, mismatched or half given are clear errors', async () => {
    const start = (args: string[]) => runEntry(['control-plane', '--store', tempDir('cp-bad'), ...args]);
    const missing = await start(['--tls-cert', join(pki.dir, 'nope.pem'), '--tls-key', pki.serverKey]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot serve HTTPS: --tls-cert .*nope\.pem: no such file/);
    const mismatch = await start(['--tls-cert', pki.serverCert, '--tls-key', pki.rsaKey]);
    assert.equal(mismatch.code, 1);
    assert.match(mismatch.stderr, /--tls-key .* is not the key of --tls-cert/);
    const notPem = await start(['--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--client-ca', join(pki.dir, 'openssl.cnf')]);
    assert.equal(notPem.code, 1);
    assert.match(notPem.stderr, /--client-ca .*openssl\.cnf: not a usable PEM file/);
    assert.equal((await start(['--tls-cert', pki.serverCert])).code, 2);
    const caAlone = await start(['--client-ca', pki.ca]);
    assert.equal(caAlone.code, 2);
    assert.match(caAlone.stderr, /--client-ca needs --tls-cert/);
  });
});
