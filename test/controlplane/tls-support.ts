// The throwaway PKI of the control-plane TLS tests: the test CA's server and
// client certificates (test/helpers/tls.ts) plus the hostile ones: an expired,
// a self-signed and another CA's server certificate for 127.0.0.1, and client
// certificates issued to the node ids gw-1 (CN) and gw-2 (DNS SAN).

import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { issueCert, makePki, type Pki } from '../helpers/tls.ts';

export interface FleetPki extends Pki {
  expiredCert: string;
  expiredKey: string;
  selfSignedCert: string;
  selfSignedKey: string;
  /** 127.0.0.1, signed by the CA nobody trusts. */
  otherCaServerCert: string;
  otherCaServerKey: string;
  /** CN=gw-1, no SAN. */
  gw1Cert: string;
  gw1Key: string;
  /** CN=portico gateway, DNS SAN gw-2. */
  gw2Cert: string;
  gw2Key: string;
  read(file: string): Buffer;
  /** Copy a certificate and its key over `certPath`/`keyPath` (rotation before a SIGHUP). */
  install(cert: string, key: string, certPath: string, keyPath: string): void;
}

export async function makeFleetPki(): Promise<FleetPki> {
  const pki = await makePki();
  const d = pki.dir;
  const path = (n: string) => join(d, n);
  // A client section with a DNS SAN, appended to makePki's openssl.cnf.
  const cnf = readFileSync(path('openssl.cnf'), 'utf8');
  writeFileSync(path('openssl.cnf'), cnf + '\n[client_gw2]\nbasicConstraints = CA:FALSE\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = clientAuth\nsubjectAltName = DNS:gw-2\n');
  await Promise.all([
    issueCert(d, 'expired', 'server_local', { issuer: 'ca', expired: true }),
    issueCert(d, 'self-signed', 'server_local'),
    issueCert(d, 'other-ca-server', 'server_local', { issuer: 'other-ca' }),
    issueCert(d, 'gw-1', 'client', { issuer: 'ca', subject: '/CN=gw-1' }),
    issueCert(d, 'gw-2', 'client_gw2', { issuer: 'ca', subject: '/CN=portico gateway' }),
  ]);
  return {
    ...pki,
    expiredCert: path('expired.pem'),
    expiredKey: path('expired.key'),
    selfSignedCert: path('self-signed.pem'),
    selfSignedKey: path('self-signed.key'),
    otherCaServerCert: path('other-ca-server.pem'),
    otherCaServerKey: path('other-ca-server.key'),
    gw1Cert: path('gw-1.pem'),
    gw1Key: path('gw-1.key'),
    gw2Cert: path('gw-2.pem'),
    gw2Key: path('gw-2.key'),
    read: (file) => readFileSync(file),
    install(cert, key, certPath, keyPath) {
      copyFileSync(cert, certPath);
      copyFileSync(key, keyPath);
    },
  };
}
