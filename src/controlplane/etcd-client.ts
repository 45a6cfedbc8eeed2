// One way to build an etcd client, for the control plane's store and the data
// plane's etcd source: bounded unary calls, and a watch that reconnects within
// ~2 s of etcd coming back (etcd3's default backoff grows to 30 s).

import { isIP } from 'node:net';
import nodeTls, { type ConnectionOptions } from 'node:tls';
import { Etcd3 } from 'etcd3';
import { jitteredBackoff } from './backoff.ts';
import type { EtcdSecurity } from './etcd-connection.ts';

export const ETCD_CALL_TIMEOUT_MS = 5000;

export function createEtcdClient(hosts: string[], security: EtcdSecurity = {}): Etcd3 {
  if (process.versions.bun !== undefined && hosts.some(isHttpsToIp)) allowIpServernameOnBun();
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

/**
 * gRPC passes the etcd URL's host as the TLS `servername`, an IP address for
 * https://10.0.0.5:2379. Node warns (DEP0123) and verifies the certificate
 * against that address; Bun's tls.connect throws instead, so no etcd behind an
 * IP URL could be reached over TLS. On Bun, tls.connect is wrapped once to drop
 * a `servername` that is an IP address: Bun then verifies the certificate
 * against `host` (the same address; gRPC sets it) and sends no SNI, which
 * RFC 6066 does not allow for IP addresses anyway. Other calls are unchanged.
 */
let ipServernameAllowed = false;
function allowIpServernameOnBun(): void {
  if (ipServernameAllowed) return;
  ipServernameAllowed = true;
  const connect = nodeTls.connect as (...args: unknown[]) => nodeTls.TLSSocket;
  const withoutIpServername = (a: unknown) => {
    if (a === null || typeof a !== 'object' || !isIP(String((a as ConnectionOptions).servername ?? ''))) return a;
    const options = { ...(a as ConnectionOptions) };
    delete options.servername;
    return options;
  };
  nodeTls.connect = function (this: unknown, ...args: unknown[]) {
    return connect.apply(this, args.map(withoutIpServername));
  } as typeof nodeTls.connect;
}

const isHttpsToIp = (url: string): boolean => url.startsWith('https://') && isIP(new URL(url).hostname.replace(/^\[|\]$/g, '')) !== 0;
