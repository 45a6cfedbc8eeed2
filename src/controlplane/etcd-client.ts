// One way to build an etcd client, for the control plane's store and the data
// plane's etcd source: bounded unary calls, and a watch that reconnects within
// ~2 s of etcd coming back (etcd3's default backoff grows to 30 s).

import { Etcd3 } from 'etcd3';
import { jitteredBackoff } from './backoff.ts';
import type { EtcdSecurity } from './etcd-connection.ts';

export const ETCD_CALL_TIMEOUT_MS = 5000;

export function createEtcdClient(hosts: string[], security: EtcdSecurity = {}): Etcd3 {
  const tls = security.tls;
  return new Etcd3({
    hosts,
    // https:// without --etcd-ca: etcd3 verifies against the system CAs. With TLS material given,
    // gRPC's createSsl takes a null root certificate as "the system CAs" too.
    ...(tls && (tls.ca || tls.cert) ? { credentials: { rootCertificate: (tls.ca ?? null) as Buffer, privateKey: tls.key, certChain: tls.cert } } : {}),
    ...(security.auth ? { auth: { ...security.auth } } : {}),
    dialTimeout: ETCD_CALL_TIMEOUT_MS,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + ETCD_CALL_TIMEOUT_MS }),
    faultHandling: { watchBackoff: jitteredBackoff(100, 2000) },
  });
}
