// The gateway's own endpoints: /__health, /__debug/*, /__echo/*.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { canonicalHeaderKey } from '../proxy/headers.ts';
import { parseQuery } from '../proxy/query.ts';
import { log } from '../telemetry/log.ts';
import { sendJson } from './respond.ts';

export type HealthInfo = () => Record<string, unknown>;

export function serveHealth(res: ServerResponse, info: HealthInfo): void {
  // KrakenD's fields first, then Portico's own (config version, sync state, ...).
  sendJson(res, 200, { status: 'ok', now: new Date().toISOString(), agents: {}, ...info() });
}

export function serveDebug(req: IncomingMessage, res: ServerResponse, body: Buffer | undefined): void {
  log('debug', 'debug endpoint', {
    method: req.method,
    url: req.url,
    headers: canonicalHeaders(req.rawHeaders),
    body: body?.toString('utf8') ?? '',
  });
  sendJson(res, 200, { message: 'pong' });
}

export function serveEcho(req: IncomingMessage, res: ServerResponse, path: string, rawQuery: string, body: Buffer | undefined): void {
  const query = Object.fromEntries(parseQuery(rawQuery));
  const sorted = new URLSearchParams();
  for (const k of Object.keys(query).sort()) for (const v of query[k]) sorted.append(k, v);
  sendJson(res, 200, {
    req_uri: req.url,
    req_uri_details: {
      scheme: '',
      user: '',
      host: req.headers.host ?? '',
      path,
      query: sorted.toString(),
      fragment: '',
    },
    req_method: req.method,
    req_querystring: query,
    req_body: body?.toString('utf8') ?? '',
    req_headers: canonicalHeaders(req.rawHeaders),
  });
}

/** Header names in Go's canonical form (user-agent -> User-Agent), values as lists. */
export function canonicalHeaders(raw: string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = canonicalHeaderKey(raw[i]);
    (out[name] ??= []).push(raw[i + 1]);
  }
  return out;
}
