import assert from 'node:assert/strict';
import { getCACertificates } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import type { TlsConfig } from '../../src/config/types.ts';
import { tlsServerOptions } from '../../src/server/tls.ts';
import { startJsonBackend, type TestBackend } from '../helpers/backend.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { fingerprint, httpsGet, makePki, opensslMissing, startHttpsGateway, type HttpsOptions, type Pki } from '../helpers/tls.ts';

// How a refused handshake reaches the client. In TLS 1.3 the server checks the client
// certificate after the client has sent its Finished, so a rejected certificate may show
// up as the server's alert or, when the server closes first, as a reset.
// OpenSSL (Node) words alerts with spaces, BoringSSL (Bun) with underscores.
const VERSION_REFUSED = /alert[ _]protocol[ _]version/i;
const NO_COMMON_PARAMETERS = /alert[ _]handshake[ _]failure/i;
const CERTIFICATE_REQUIRED = /alert[ _]certificate[ _]required|ECONNRESET/i;
const CERTIFICATE_REJECTED = /alert[ _]unknown[ _]ca|alert[ _]bad[ _]certificate|ECONNRESET/i;

async function assertRefused(promise: Promise<unknown>, expected: RegExp, message: string): Promise<void> {
  await assert.rejects(
    promise,
    (err: NodeJS.ErrnoException) => {
      assert.match(`${err.code ?? ''} ${err.message}`, expected, message);
      return true;
    },
    message,
  );
}

describe('tls: HTTPS and mTLS', { skip: opensslMissing() }, () => {
  let pki: Pki;
  let backend: TestBackend;
  const open: TestGateway[] = [];

  before(async () => {
    [pki, backend] = await Promise.all([makePki(), startJsonBackend({ '/hello': { hello: 'world' } })]);
  });
  after(async () => {
    await Promise.all(open.map((g) => g.close()));
    await backend?.close();
    pki?.cleanup();
  });

  async function gateway(tls: Record<string, unknown>): Promise<TestGateway> {
    const gw = await startHttpsGateway({ tls, endpoints: [{ endpoint: '/hello', backend: [{ host: [backend.url], url_pattern: '/hello' }] }] });
    open.push(gw);
    return gw;
  }
  const hello = (gw: TestGateway, opts: HttpsOptions = {}) => httpsGet(gw.url, '/hello', { ca: pki.ca, ...opts });
  const serverPair = () => ({ public_key: pki.serverCert, private_key: pki.serverKey });

  describe('versions', () => {
    it('serves HTTPS with TLS 1.3 and proxies to the backend', async () => {
      const gw = await gateway(serverPair());
      const res = await hello(gw);
      assert.equal(res.status, 200);
      assert.deepEqual(JSON.parse(res.body), { hello: 'world' });
      assert.equal(res.protocol, 'TLSv1.3');
      assert.equal(res.peerFingerprint, fingerprint(pki.serverCert));
      assert.equal(backend.requests.at(-1)?.url, '/hello');
    });

    it('refuses TLS 1.2 clients by default and with min_version TLS13', async () => {
      const byDefault = await gateway(serverPair());
      await assertRefused(hello(byDefault, { maxVersion: 'TLSv1.2' }), VERSION_REFUSED, 'KrakenD defaults to TLS 1.3 only');
      const explicit = await gateway({ ...serverPair(), min_version: 'TLS13' });
      await assertRefused(hello(explicit, { maxVersion: 'TLSv1.2' }), VERSION_REFUSED, 'min_version TLS13');
      assert.equal((await hello(explicit)).status, 200);
    });

    it('accepts TLS 1.2 with min_version TLS12, and still TLS 1.3', async () => {
      const gw = await gateway({ ...serverPair(), min_version: 'TLS12' });
      const tls12 = await hello(gw, { maxVersion: 'TLSv1.2' });
      assert.equal(tls12.status, 200);
      assert.equal(tls12.protocol, 'TLSv1.2');
      assert.equal((await hello(gw)).protocol, 'TLSv1.3');
    });

    it('max_version TLS12 refuses TLS 1.3-only clients', async () => {
      const gw = await gateway({ ...serverPair(), min_version: 'TLS12', max_version: 'TLS12' });
      assert.equal((await hello(gw)).protocol, 'TLSv1.2');
      await assertRefused(hello(gw, { minVersion: 'TLSv1.3' }), VERSION_REFUSED, 'TLS 1.3 is above max_version');
    });
  });

  describe('cipher suites and curves', () => {
    it('cipher_suites limits TLS 1.2 to the listed suites and leaves the TLS 1.3 suites on', async () => {
      // 49195 = TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256; 4865 (TLS 1.3) and 9999 (unknown) change nothing.
      const gw = await gateway({ ...serverPair(), min_version: 'TLS12', cipher_suites: [49195, 4865, 9999] });
      const ok = await hello(gw, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384' });
      assert.equal(ok.cipher, 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256');
      await assertRefused(hello(gw, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384' }), NO_COMMON_PARAMETERS, 'a suite not listed');
      const tls13 = await hello(gw);
      assert.equal(tls13.protocol, 'TLSv1.3', 'listing only TLS 1.2 suites must not disable TLS 1.3');
    });

    it('curve_preferences limits the key exchange groups', async () => {
      const gw = await gateway({ ...serverPair(), curve_preferences: [24] }); // P-384 only
      assert.equal((await hello(gw, { ecdhCurve: 'secp384r1' })).status, 200);
      await assertRefused(hello(gw, { ecdhCurve: 'X25519:prime256v1' }), NO_COMMON_PARAMETERS, 'no common group');
    });
  });

  describe('mTLS (enable_mtls)', () => {
    it('requires a client certificate signed by a trusted CA (system pool + ca_certs)', async () => {
      const gw = await gateway({ ...serverPair(), enable_mtls: true, ca_certs: [pki.ca] });
      await assertRefused(hello(gw), CERTIFICATE_REQUIRED, 'no client certificate');
      await assertRefused(hello(gw, { cert: pki.otherClientCert, key: pki.otherClientKey }), CERTIFICATE_REJECTED, 'a certificate from an untrusted CA');
      const res = await hello(gw, { cert: pki.clientCert, key: pki.clientKey });
      assert.equal(res.status, 200);
      assert.deepEqual(JSON.parse(res.body), { hello: 'world' });
    });

    it('trusts the certificates in public_key too (a fullchain file with the CA)', async () => {
      const gw = await gateway({ public_key: pki.serverChain, private_key: pki.serverKey, enable_mtls: true, disable_system_ca_pool: true });
      assert.equal((await hello(gw, { cert: pki.clientCert, key: pki.clientKey })).status, 200);
      await assertRefused(hello(gw, { cert: pki.otherClientCert, key: pki.otherClientKey }), CERTIFICATE_REJECTED, 'other CA');
    });

    it('with disable_system_ca_pool trusts only ca_certs and public_key', async () => {
      const gw = await gateway({ ...serverPair(), enable_mtls: true, disable_system_ca_pool: true, ca_certs: [pki.ca] });
      assert.equal((await hello(gw, { cert: pki.clientCert, key: pki.clientKey })).status, 200);
      await assertRefused(hello(gw), CERTIFICATE_REQUIRED, 'no client certificate');
      // Same file without the CA in ca_certs: the leaf-only public_key does not vouch for the client.
      const noCa = await gateway({ ...serverPair(), enable_mtls: true, disable_system_ca_pool: true });
      await assertRefused(hello(noCa, { cert: pki.clientCert, key: pki.clientKey }), CERTIFICATE_REJECTED, 'CA not trusted');
    });

    it('builds the CA list as KrakenD does', () => {
      const base = tlsConfig({ requireClientCert: true, caCerts: [pki.ca] });
      assert.equal(tlsServerOptions(base).ca?.length, getCACertificates('system').length + 2, 'system roots + ca_certs + public_key');
      assert.equal(tlsServerOptions({ ...base, disableSystemCaPool: true }).ca?.length, 2);
      const plain = tlsServerOptions(tlsConfig({ caCerts: [pki.ca] }));
      assert.equal(plain.ca, undefined, 'ca_certs without enable_mtls asks for no client certificate');
      assert.equal(plain.requestCert, undefined);
    });
  });

  describe('several key pairs', () => {
    it('serves an RSA and an ECDSA certificate, each to the clients that support it', async () => {
      const gw = await gateway({ keys: [serverPair(), { public_key: pki.rsaCert, private_key: pki.rsaKey }] });
      const ec = await hello(gw, { sigalgs: 'ecdsa_secp256r1_sha256' });
      assert.equal(ec.peerFingerprint, fingerprint(pki.serverCert));
      const rsa = await hello(gw, { sigalgs: 'rsa_pss_rsae_sha256' });
      assert.equal(rsa.peerFingerprint, fingerprint(pki.rsaCert));
    });

    it('picks the certificate matching the SNI name, as Go does, also with mTLS', async () => {
      const config = {
        public_key: pki.aCert,
        private_key: pki.aKey,
        keys: [{ public_key: pki.bCert, private_key: pki.bKey }],
        enable_mtls: true,
        disable_system_ca_pool: true,
        ca_certs: [pki.ca],
      };
      if (process.versions.bun !== undefined) {
        // Bun's TLS server calls no SNICallback: refused at start rather than serving the wrong certificate.
        await assert.rejects(gateway(config), /cannot do on Bun/);
        return;
      }
      const gw = await gateway(config);
      const client = { cert: pki.clientCert, key: pki.clientKey };
      assert.equal((await hello(gw, { ...client, servername: 'a.test' })).peerFingerprint, fingerprint(pki.aCert));
      const b = await hello(gw, { ...client, servername: 'b.test' });
      assert.equal(b.peerFingerprint, fingerprint(pki.bCert));
      assert.equal(b.status, 200);
      await assertRefused(hello(gw, { servername: 'b.test' }), CERTIFICATE_REQUIRED, 'the SNI context still requires a client certificate');
    });
  });

  describe('configuration errors', () => {
    it('names the file and the config key when a file cannot be read', () => {
      const missing = `${pki.dir}/missing.pem`;
      assert.throws(() => tlsServerOptions(tlsConfig({ keyPairs: [{ publicKey: missing, privateKey: pki.serverKey }] })), (err: Error) => {
        assert.match(err.message, /^tls public_key: cannot read ".*missing\.pem": ENOENT/);
        return true;
      });
      const second = [{ publicKey: pki.serverCert, privateKey: pki.serverKey }, { publicKey: pki.rsaCert, privateKey: missing }];
      assert.throws(() => tlsServerOptions(tlsConfig({ keyPairs: second })), /^Error: tls key pair 2 of 2, private_key: cannot read ".*missing\.pem"/);
      assert.throws(() => tlsServerOptions(tlsConfig({ requireClientCert: true, caCerts: [pki.ca, missing] })), /tls\.ca_certs\[1\]: cannot read ".*missing\.pem"/);
    });

    it('refuses unusable files and settings no client could connect with', () => {
      assert.throws(() => tlsServerOptions(tlsConfig({ keyPairs: [{ publicKey: pki.serverCert, privateKey: pki.rsaKey }] })), /private_key ".*server-rsa\.key" does not match/);
      assert.throws(() => tlsServerOptions(tlsConfig({ keyPairs: [{ publicKey: pki.serverKey, privateKey: pki.serverKey }] })), /tls public_key: ".*server\.key" holds no PEM certificate/);
      assert.throws(() => tlsServerOptions(tlsConfig({ requireClientCert: true, caCerts: [pki.clientKey] })), /tls\.ca_certs\[0\]: ".*client\.key" holds no PEM certificate/);
      assert.throws(() => tlsServerOptions(tlsConfig({ minVersion: 'TLSv1.3', maxVersion: 'TLSv1.2' })), /max_version "TLS12" is below/);
      assert.throws(() => tlsServerOptions(tlsConfig({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', cipherSuites: [4865, 9999] })), /tls\.cipher_suites/);
      assert.throws(() => tlsServerOptions(tlsConfig({ curvePreferences: [30, 9999] })), /tls\.curve_preferences/);
    });

    it('maps Go ids to OpenSSL names, ignoring ids Go would never negotiate', () => {
      const o = tlsServerOptions(tlsConfig({ cipherSuites: [0xc02f, 0x1301, 0x0005, 0xcca9], curvePreferences: [29, 23, 12345] }));
      assert.equal(o.ciphers, 'ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256');
      assert.equal(o.ecdhCurve, 'X25519:prime256v1');
      const defaults = tlsServerOptions(tlsConfig({}));
      assert.equal(defaults.minVersion, 'TLSv1.3');
      assert.equal(defaults.maxVersion, 'TLSv1.3');
      assert.equal(defaults.ecdhCurve, undefined, "Node's default groups");
      assert.match(defaults.ciphers!, /^ECDHE-RSA-AES128-GCM-SHA256:.*:TLS_AES_128_GCM_SHA256$/);
    });

    it('fails gateway startup with that message', async () => {
      await assert.rejects(gateway({ public_key: `${pki.dir}/nope.pem`, private_key: pki.serverKey }), /tls public_key: cannot read ".*nope\.pem"/);
    });
  });

  function tlsConfig(over: Partial<TlsConfig>): TlsConfig {
    const keyPairs = over.keyPairs ?? [{ publicKey: pki.serverCert, privateKey: pki.serverKey }];
    return { publicKey: keyPairs[0].publicKey, privateKey: keyPairs[0].privateKey, keyPairs, caCerts: [], requireClientCert: false, disableSystemCaPool: false, ...over };
  }
});
