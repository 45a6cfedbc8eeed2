// The one place where pipeline results and errors become HTTP responses.

import type { ServerResponse } from 'node:http';
import type { CompiledEndpoint } from '../plan/plan.ts';
import type { GatewayError } from '../proxy/errors.ts';
import type { ProxyResponse, RawHeaders } from '../proxy/types.ts';

export const COMPLETED = 'x-portico-completed';

export function sendResult(res: ServerResponse, ep: CompiledEndpoint, r: ProxyResponse, accept: string | undefined): void {
  const pt = r.passthrough;
  if (pt && !ep.render) {
    const headers = res.getHeaderNames().length > 0 ? withoutPolicyHeaders(res, pt.headers) : pt.headers;
    headers.push(COMPLETED, 'false');
    res.writeHead(pt.status, headers);
    // Back-pressure both ways; the upstream call is aborted if the client leaves.
    pt.pipe(res);
    return;
  }
  pt?.discard();
  const hasData = !pt && hasKeys(r.data);
  const complete = hasData && r.complete;
  res.setHeader(COMPLETED, complete ? 'true' : 'false');
  if (complete && ep.cacheControl) res.setHeader('cache-control', ep.cacheControl);
  const out = ep.render ? ep.render(pt ? {} : r.data, accept) : { contentType: 'application/json; charset=utf-8', body: JSON.stringify(r.data) };
  res.setHeader('content-type', out.contentType);
  res.setHeader('content-length', Buffer.byteLength(out.body));
  res.writeHead(200);
  res.end(out.body);
}

/**
 * A streamed backend answer under headers a policy already set (CORS, security
 * headers): the policy's value wins over the backend's, except Vary, which
 * keeps both.
 */
function withoutPolicyHeaders(res: ServerResponse, headers: RawHeaders): RawHeaders {
  const out: RawHeaders = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = (headers[i] as string).toLowerCase();
    if (!res.hasHeader(name)) out.push(headers[i], headers[i + 1]);
    else if (name === 'vary') res.appendHeader(name, headers[i + 1]);
  }
  return out;
}

export function sendError(res: ServerResponse, err: GatewayError, showMessage: boolean): void {
  if (res.headersSent) {
    res.destroy(err);
    return;
  }
  res.setHeader(COMPLETED, 'false');
  const h = err.headers;
  if (h) for (let i = 0; i < h.length; i += 2) res.appendHeader(h[i] as string, h[i + 1]);
  if (showMessage && err.body !== '') {
    const body = err.body;
    res.setHeader('content-type', err.contentType ?? 'text/plain; charset=utf-8');
    res.setHeader('content-length', Buffer.byteLength(body));
    res.writeHead(err.status);
    res.end(body);
    return;
  }
  res.setHeader('content-length', 0);
  res.writeHead(err.status);
  res.end();
}

/** A plain-text answer from the gateway itself (404, 405, 400, ...). */
export function sendText(res: ServerResponse, status: number, body: string, headers?: Record<string, string>, contentType = 'text/plain; charset=utf-8'): void {
  if (headers) for (const k in headers) res.setHeader(k, headers[k]);
  res.setHeader('content-type', contentType);
  res.setHeader('content-length', Buffer.byteLength(body));
  res.writeHead(status);
  res.end(body);
}

export function sendJson(res: ServerResponse, status: number, value: unknown, headers?: Record<string, string>): void {
  sendText(res, status, JSON.stringify(value), headers, 'application/json; charset=utf-8');
}

function hasKeys(o: object): boolean {
  for (const _ in o) return true;
  return false;
}
