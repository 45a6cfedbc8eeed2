// The client address and the X-Forwarded-For chain sent upstream. Incoming
// forwarding headers are believed only from trusted proxies (router.trusted_proxies).

import { BlockList, isIP } from 'node:net';
import type { RouterOptions } from '../config/types.ts';

export interface ClientAddressing {
  /** X-Forwarded-For to send upstream for a request from `peer`. */
  forwardedFor(peer: string, headers: Record<string, string | string[] | undefined>): string;
  /** The client IP (router.forwarded_by_client_ip / remote_ip_headers), for logs and limits. */
  clientIp(peer: string, headers: Record<string, string | string[] | undefined>): string;
}

function stripV4Mapped(ip: string): string {
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

export function compileClientAddressing(router: RouterOptions): ClientAddressing {
  const trusted = new BlockList();
  let any = false;
  for (const entry of router.trustedProxies) {
    const [addr, bits] = entry.split('/');
    const family = isIP(addr);
    if (!family) continue;
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) trusted.addAddress(addr, type);
    else trusted.addSubnet(addr, Number(bits), type);
    any = true;
  }
  const isTrusted = (ip: string): boolean => {
    if (!any) return false;
    const v = stripV4Mapped(ip);
    const family = isIP(v);
    return family !== 0 && trusted.check(v, family === 6 ? 'ipv6' : 'ipv4');
  };
  const headerNames = router.remoteIpHeaders.map((h) => h.toLowerCase());
  const first = (v: string | string[] | undefined) => (Array.isArray(v) ? v.join(', ') : v);

  return {
    forwardedFor(peer, headers) {
      const ip = stripV4Mapped(peer);
      const incoming = first(headers['x-forwarded-for']);
      return incoming && isTrusted(ip) ? `${incoming}, ${ip}` : ip;
    },
    clientIp(peer, headers) {
      const ip = stripV4Mapped(peer);
      if (!router.forwardedByClientIp || !isTrusted(ip)) return ip;
      for (const name of headerNames) {
        const v = first(headers[name]);
        if (!v) continue;
        // Walk the chain from the nearest hop; the first untrusted address is the client.
        const hops = v.split(',').map((s) => s.trim()).filter((s) => isIP(s));
        for (let i = hops.length - 1; i >= 0; i--) if (!isTrusted(hops[i]) || i === 0) return hops[i];
      }
      return ip;
    },
  };
}
