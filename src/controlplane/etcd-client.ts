// One way to build an etcd client, for the control plane's store and the data
// plane's etcd source: bounded unary calls, and a watch that reconnects within
// ~2 s of etcd coming back (etcd3's default backoff grows to 30 s).

import { Etcd3 } from 'etcd3';
import { jitteredBackoff } from './backoff.ts';

export const ETCD_CALL_TIMEOUT_MS = 5000;

export function createEtcdClient(hosts: string[]): Etcd3 {
  return new Etcd3({
    hosts,
    dialTimeout: ETCD_CALL_TIMEOUT_MS,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + ETCD_CALL_TIMEOUT_MS }),
    faultHandling: { watchBackoff: jitteredBackoff(100, 2000) },
  });
}
