// Request-header forwarding, compiled from input_headers. Only allowed headers
// reach a backend; hop-by-hop headers never do; X-Forwarded-For/-Host and
// User-Agent follow KrakenD's rules; headers policies add (req.upstreamHeaders)
// always go.

import { randomUUID } from 'node:crypto';
import type { ProxyRequest } from './types.ts';

export type OutgoingHeaders = Record<string, string | string[]>;
export type HeaderForwarder = (req: ProxyRequest) => OutgoingHeaders;

/** Never forwarded, whatever input_headers says (RFC 9110 7.6.1 plus what undici sets itself). */
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade',
  'proxy-connection', 'proxy-authenticate', 'proxy-authorization',
  'host', 'content-length', 'expect', 'http2-settings',
]);

export function isHopByHop(name: string): boolean {
  return HOP_BY_HOP.has(name) || name.startsWith('proxy-');
}

/** A backend answer header a no-op endpoint passes on: the end-to-end ones, and Content-Length (the body passes untouched). */
export function isPassedOn(name: string): boolean {
  return name === 'content-length' || !isHopByHop(name);
}

/** Names listed in the Connection header are hop-by-hop for this message too. */
function connectionListed(req: ProxyRequest): Set<string> | undefined {
  const c = req.headers.connection;
  if (c === undefined) return undefined;
  const v = Array.isArray(c) ? c.join(',') : c;
  const names = v.split(',').map((s) => s.trim().toLowerCase()).filter((s) => s && s !== 'close' && s !== 'keep-alive');
  return names.length ? new Set(names) : undefined;
}

export function compileHeaderForwarder(
  endpointList: readonly string[],
  backendList: readonly string[] | undefined,
  userAgent: string,
): HeaderForwarder {
  const endpointAll = endpointList.includes('*');
  const backendAll = backendList === undefined || backendList.includes('*');
  const lower = (l: readonly string[]) => l.map((h) => h.toLowerCase());
  let names: string[] | undefined; // undefined = all
  if (!(endpointAll && backendAll)) {
    if (endpointAll) names = lower(backendList!);
    else if (backendAll) names = lower(endpointList);
    else {
      const b = new Set(lower(backendList!));
      names = lower(endpointList).filter((n) => b.has(n));
    }
    names = [...new Set(names)].filter((n) => !isHopByHop(n) && n !== 'x-forwarded-for' && n !== 'x-forwarded-host' && n !== 'x-request-id');
  }
  const list = names;
  const uaForwarded = list === undefined || list.includes('user-agent');

  return (req) => {
    const out: OutgoingHeaders = {};
    const extraHop = connectionListed(req);
    if (list === undefined) {
      for (const name in req.headers) {
        if (isHopByHop(name) || extraHop?.has(name)) continue;
        const v = req.headers[name];
        if (v !== undefined) out[name] = v;
      }
    } else {
      for (let i = 0; i < list.length; i++) {
        const v = req.headers[list[i]];
        if (v !== undefined && !extraHop?.has(list[i])) out[list[i]] = v;
      }
    }
    out['x-forwarded-for'] = req.forwardedFor;
    out['x-forwarded-host'] = req.host;
    out['x-request-id'] = req.requestId;
    if (uaForwarded && out['user-agent'] !== undefined) out['x-forwarded-via'] = userAgent;
    else out['user-agent'] = userAgent;
    // Set by policies (claims, roles, OAuth2 tokens): they replace whatever the client sent.
    const added = req.upstreamHeaders;
    if (added !== undefined) for (const name in added) out[name] = added[name];
    return out;
  };
}

/** An RFC 9110 token: what a method or a header name is made of. */
export const HTTP_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** A control character other than tab: Go and node:http refuse header values with one (a CR or LF would split the header). */
export const BAD_HEADER_VALUE = /[\0-\x08\x0a-\x1f\x7f]/;

/** Go's http.CanonicalHeaderKey: "x-request-id" -> "X-Request-Id"; a name with a non-token byte is left as is. */
export function canonicalHeaderKey(name: string): string {
  if (!HTTP_TOKEN.test(name)) return name;
  let out = '';
  let upper = true;
  for (const ch of name) {
    out += upper ? ch.toUpperCase() : ch.toLowerCase();
    upper = ch === '-';
  }
  return out;
}

/** A request id a client may choose: short, and only characters safe in headers and logs. */
const USABLE_REQUEST_ID = /^[A-Za-z0-9._:+=/-]{1,128}$/;

/** The client's X-Request-Id when usable, else a fresh UUID. */
export function requestIdOf(sent: string | string[] | undefined): string {
  return typeof sent === 'string' && USABLE_REQUEST_ID.test(sent) ? sent : randomUUID();
}
