// TLS test support: a throwaway PKI made with the `openssl` CLI, the gateway
// started with a `tls` block, and an HTTPS client that reports what was negotiated.

import { execFile, execFileSync } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startGateway, type TestGateway } from './gateway.ts';

const run = promisify(execFile);

/** Why TLS tests must be skipped, or undefined when `openssl` is usable. */
export function opensslMissing(): string | undefined {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'the openssl CLI is not installed (needed to generate test certificates)';
  }
}

export interface Pki {
  dir: string;
  /** Test CA, and a second CA the gateway never trusts. */
  ca: string;
  otherCa: string;
  /** EC P-256 server certificate for 127.0.0.1 and localhost, signed by the test CA. */
  serverCert: string;
  serverKey: string;
  /** serverCert followed by the CA certificate, as a fullchain.pem. */
  serverChain: string;
  /** RSA server certificate for the same names, signed by the test CA. */
  rsaCert: string;
  rsaKey: string;
  /** EC server certificates for a.test and b.test only, signed by the test CA. */
  aCert: string;
  aKey: string;
  bCert: string;
  bKey: string;
  /** Client certificate (clientAuth) signed by the test CA, and one signed by the other CA. */
  clientCert: string;
  clientKey: string;
  otherClientCert: string;
  otherClientKey: string;
  cleanup(): void;
}

const OPENSSL_CNF = `
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_local]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
[server_a]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:a.test
[server_b]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:b.test
[client]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
`;

export interface IssueOptions {
  /** The name (in `dir`) of the signing CA's `.pem` and `.key`; self-signed without. */
  issuer?: string;
  keyAlg?: 'ec' | 'rsa';
  /** Subject; default `/CN=portico test <name>`. */
  subject?: string;
  /** Expired since yesterday (signed with `openssl ca`, which can date a certificate in the past). */
  expired?: boolean;
}

/**
 * `<dir>/<name>.pem` and `.key`: a certificate with the extensions of `section` of
 * `<dir>/openssl.cnf` (makePki writes it: ca, server_local, server_a, server_b, client).
 */
export async function issueCert(dir: string, name: string, section: string, o: IssueOptions = {}): Promise<void> {
  const path = (n: string) => join(dir, n);
  const cnf = path('openssl.cnf');
  const newkey = o.keyAlg === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  await run('openssl', ['req', '-new', ...newkey, '-nodes', '-keyout', path(`${name}.key`), '-subj', o.subject ?? `/CN=portico test ${name}`, '-out', path(`${name}.csr`), '-config', cnf]);
  if (o.expired) {
    if (!o.issuer) throw new Error('issueCert: an expired certificate needs an issuer');
    const db = mkdtempSync(join(dir, 'ca-db-'));
    writeFileSync(join(db, 'index.txt'), '');
    writeFileSync(join(db, 'serial'), randomBytes(8).toString('hex') + '\n');
    writeFileSync(join(db, 'ca.cnf'), `[ca]\ndefault_ca = d\n[d]\ndatabase = ${db}/index.txt\nnew_certs_dir = ${db}\nserial = ${db}/serial\ndefault_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n`);
    const day = 24 * 3600 * 1000;
    const stamp = (t: number) => new Date(t).toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
    await run('openssl', ['ca', '-batch', '-notext', '-config', join(db, 'ca.cnf'), '-cert', path(`${o.issuer}.pem`), '-keyfile', path(`${o.issuer}.key`), '-in', path(`${name}.csr`),
      '-startdate', stamp(Date.now() - 3 * day), '-enddate', stamp(Date.now() - day), '-extfile', cnf, '-extensions', section, '-out', path(`${name}.pem`)]);
    return;
  }
  const signer = o.issuer
    ? ['-CA', path(`${o.issuer}.pem`), '-CAkey', path(`${o.issuer}.key`), '-set_serial', `0x${randomBytes(8).toString('hex')}`]
    : ['-signkey', path(`${name}.key`)];
  await run('openssl', ['x509', '-req', '-in', path(`${name}.csr`), '-days', '2', ...signer, '-extfile', cnf, '-extensions', section, '-out', path(`${name}.pem`)]);
}

/** Generate every certificate once into a temp dir (EC keys, one RSA key; a few hundred ms). */
export async function makePki(): Promise<Pki> {
  const dir = mkdtempSync(join(tmpdir(), 'portico-tls-'));
  writeFileSync(join(dir, 'openssl.cnf'), OPENSSL_CNF);
  const path = (name: string) => join(dir, name);
  const issue = (name: string, section: string, issuer?: string, keyAlg: 'ec' | 'rsa' = 'ec') => issueCert(dir, name, section, { issuer, keyAlg });

  try {
    await Promise.all([issue('ca', 'ca'), issue('other-ca', 'ca')]);
    await Promise.all([
      issue('server', 'server_local', 'ca'),
      issue('server-rsa', 'server_local', 'ca', 'rsa'),
      issue('a', 'server_a', 'ca'),
      issue('b', 'server_b', 'ca'),
      issue('client', 'client', 'ca'),
      issue('other-client', 'client', 'other-ca'),
    ]);
    writeFileSync(path('server-chain.pem'), Buffer.concat([readFileSync(path('server.pem')), readFileSync(path('ca.pem'))]));
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    dir,
    ca: path('ca.pem'),
    otherCa: path('other-ca.pem'),
    serverCert: path('server.pem'),
    serverKey: path('server.key'),
    serverChain: path('server-chain.pem'),
    rsaCert: path('server-rsa.pem'),
    rsaKey: path('server-rsa.key'),
    aCert: path('a.pem'),
    aKey: path('a.key'),
    bCert: path('b.pem'),
    bKey: path('b.key'),
    clientCert: path('client.pem'),
    clientKey: path('client.key'),
    otherClientCert: path('other-client.pem'),
    otherClientKey: path('other-client.key'),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** SHA-256 fingerprint of a PEM certificate file, as getPeerCertificate() reports it. */
export function fingerprint(certFile: string): string {
  return new X509Certificate(readFileSync(certFile)).fingerprint256;
}

/** startGateway for a config with a `tls` block: the same gateway, with an https:// URL. */
export async function startHttpsGateway(config: Record<string, unknown>): Promise<TestGateway> {
  const gw = await startGateway(config);
  return { ...gw, url: `https://127.0.0.1:${gw.port}` };
}

export interface HttpsOptions {
  /** CA file(s) the client trusts for the server certificate. */
  ca?: string | string[];
  /** Client certificate and key files (mTLS). */
  cert?: string;
  key?: string;
  servername?: string;
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  maxVersion?: 'TLSv1.2' | 'TLSv1.3';
  ciphers?: string;
  ecdhCurve?: string;
  /** Signature algorithms the client offers, e.g. 'ecdsa_secp256r1_sha256'. */
  sigalgs?: string;
}

export interface HttpsResponse {
  status: number;
  body: string;
  /** TLS version, cipher and the server certificate's SHA-256 fingerprint. */
  protocol: string;
  cipher: string;
  peerFingerprint: string;
}

/** One GET over a fresh TLS connection (no agent, no session reuse). */
export function httpsGet(url: string, path: string, opts: HttpsOptions = {}): Promise<HttpsResponse> {
  const u = new URL(url);
  const files = (f: string | string[]) => (Array.isArray(f) ? f : [f]).map((x) => readFileSync(x));
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path,
        agent: false,
        ...(opts.ca ? { ca: files(opts.ca) } : {}),
        ...(opts.cert ? { cert: readFileSync(opts.cert) } : {}),
        ...(opts.key ? { key: readFileSync(opts.key) } : {}),
        ...(opts.servername !== undefined ? { servername: opts.servername } : {}),
        ...(opts.minVersion ? { minVersion: opts.minVersion } : {}),
        ...(opts.maxVersion ? { maxVersion: opts.maxVersion } : {}),
        ...(opts.ciphers ? { ciphers: opts.ciphers } : {}),
        ...(opts.ecdhCurve ? { ecdhCurve: opts.ecdhCurve } : {}),
        ...(opts.sigalgs ? { sigalgs: opts.sigalgs } : {}),
      },
      (res) => {
        const socket = res.socket as import('node:tls').TLSSocket;
        const protocol = socket.getProtocol() ?? '';
        const cipher = socket.getCipher().standardName;
        const peerFingerprint = socket.getPeerCertificate().fingerprint256;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString('utf8'), protocol, cipher, peerFingerprint }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}
