// Small HTTP helpers for the control plane's JSON API: answers, bounded
// request bodies, and the errors handlers throw to answer with a status.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { GatewayError } from '../proxy/errors.ts';
import { readRequestBody } from '../server/request-body.ts';

/** Thrown by handlers (and helpers) to answer `status` with {error, ...extra}. */
export class HttpError extends Error {
  readonly status: number;
  readonly extra: Record<string, unknown>;
  readonly headers: Record<string, string>;

  constructor(status: number, message: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.extra = extra;
    this.headers = headers;
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

export function sendEmpty(res: ServerResponse, status: number): void {
  res.writeHead(status, { 'cache-control': 'no-store' });
  res.end();
}

/** The whole body (empty when there is none), or HttpError 413 past `limit` bytes / 400 when reading fails. */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  try {
    return (await readRequestBody(req, limit)) ?? Buffer.alloc(0);
  } catch (err) {
    const e = err as GatewayError;
    throw new HttpError(e.status === 413 ? 413 : 400, e.status === 413 ? `request body too large (limit ${limit} bytes)` : e.message);
  }
}

export function utf8(body: Buffer): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    throw new HttpError(400, 'the request body is not UTF-8 text');
  }
}

export function parseJsonBody(body: Buffer): unknown {
  const text = utf8(body);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, `the request body is not JSON: ${(err as Error).message}`);
  }
}

/** A version in a URL or header: a positive integer, else HttpError 400. */
export function parseVersion(text: string | null | undefined, what: string, opts: { allowZero?: boolean } = {}): number {
  const re = opts.allowZero ? /^(0|[1-9]\d{0,15})$/ : /^[1-9]\d{0,15}$/;
  const n = Number(text);
  if (text === null || text === undefined || !re.test(text) || !Number.isSafeInteger(n)) {
    throw new HttpError(400, `${what}: expected a version (${opts.allowZero ? 'an integer >= 0' : 'a positive integer'}), found ${JSON.stringify(text ?? null)}`);
  }
  return n;
}
