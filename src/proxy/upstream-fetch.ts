// The upstream client on Bun, on its fetch (Bun implements no undici dispatch
// API; its fetch is the fastest client it has: docs/performance.md):
// - redirect: 'manual': redirects are followed here with Portico's rules (redirect.ts);
// - decompress: false: the body stays as the backend encoded it (buffered
//   answers are decoded by backend.ts, no-op ones pass through), and Bun then
//   adds no Accept-Encoding of its own;
// - keep-alive is Bun's; FetchPool caps the connections per origin;
// - one AbortController per call, aborted by the request's CancelSignal;
// - the body limit is enforced while reading.
// fetch cannot send a body with GET or HEAD, nor a header on several lines
// (it joins them with commas): those few calls go through undici instead
// (upstream-undici.ts), loaded when first needed.

import { abortReason, type CancelSignal } from './abort.ts';
import { bodyTooLarge } from './backend-body.ts';
import { FetchPassthrough } from './fetch-passthrough.ts';
import { FetchPool } from './fetch-pool.ts';
import { redirectTo } from './redirect.ts';
import type { BackendCall, BufferedResponse, Passthrough, ResponseHeaders } from './types.ts';
import { loadUndici } from './undici-package.ts';
import type { Upstream, UpstreamClient } from './upstream.ts';
import { undiciClient } from './upstream-undici.ts';

type PoolFor = (origin: string) => FetchPool;

/** Bun's own fetch options. */
interface BunRequestInit extends RequestInit {
  decompress?: boolean;
}

export const fetchClient: UpstreamClient<FetchPool> = {
  openPool: (_origin, connections) => new FetchPool(connections),
  upstream(poolFor) {
    let slow: Promise<Upstream> | undefined;
    const viaUndici = () => (slow ??= undiciUpstream(poolFor));
    return {
      buffered: (call, signal, limit) => (fetchCan(call) ? buffered(poolFor, call, signal, limit) : viaUndici().then((u) => u.buffered(call, signal, limit))),
      streamed: (call, signal) => (fetchCan(call) ? streamed(poolFor, call, signal) : viaUndici().then((u) => u.streamed(call, signal))),
    };
  },
};

/** No body on GET or HEAD, every header on one line. */
function fetchCan(call: BackendCall): boolean {
  if (call.body !== undefined && (call.method === 'GET' || call.method === 'HEAD')) return false;
  for (const name in call.headers) if (typeof call.headers[name] !== 'string') return false;
  return true;
}

async function undiciUpstream(poolFor: PoolFor): Promise<Upstream> {
  const client = undiciClient(await loadUndici());
  return client.upstream((origin) => {
    const pool = poolFor(origin);
    return pool.undici(() => client.openPool(origin, pool.limit));
  });
}

const EMPTY = Buffer.alloc(0);

async function buffered(poolFor: PoolFor, call: BackendCall, signal: CancelSignal, limit: number): Promise<BufferedResponse> {
  if (signal.aborted) throw signal.reason;
  const ctl = new AbortController();
  const onAbort = () => ctl.abort(abortReason(signal));
  signal.onAbort(onAbort);
  let pool: FetchPool | undefined;
  try {
    const a = await answer(poolFor, call, signal, ctl.signal);
    pool = a.pool;
    const body = await readBody(a.res, limit);
    return { status: a.res.status, headers: headersOf(a.res.headers), body, url: a.url };
  } finally {
    pool?.give();
    signal.offAbort(onAbort);
  }
}

async function streamed(poolFor: PoolFor, call: BackendCall, signal: CancelSignal): Promise<Passthrough> {
  if (signal.aborted) throw signal.reason;
  const ctl = new AbortController();
  const onAbort = () => ctl.abort(abortReason(signal));
  signal.onAbort(onAbort);
  try {
    const a = await answer(poolFor, call, signal, ctl.signal);
    return new FetchPassthrough(a.res, a.pool, ctl, () => signal.offAbort(onAbort));
  } catch (err) {
    signal.offAbort(onAbort);
    throw err;
  }
}

interface Answer {
  res: Response;
  /** The pool whose connection the answer holds until its body is read or dropped. */
  pool: FetchPool;
  url: string;
}

/** Send the call and follow redirects; the final answer's body is still unread. */
async function answer(poolFor: PoolFor, first: BackendCall, signal: CancelSignal, abort: AbortSignal): Promise<Answer> {
  const r = first.headers.referer;
  const referer = typeof r === 'string' ? r : undefined;
  let call = first;
  for (let hops = 0; ; hops++) {
    const pool = poolFor(call.origin);
    const wait = pool.take(signal);
    if (wait !== undefined) await wait;
    const url = call.origin + call.path;
    let res: Response;
    try {
      res = await fetch(url, init(call, abort));
    } catch (err) {
      pool.give();
      throw err;
    }
    const status = res.status;
    const next = status >= 301 && status <= 308 ? redirectTo(call, status, { location: res.headers.get('location') ?? undefined }, hops, referer) : undefined;
    if (next === undefined) return { res, pool, url };
    // Read the redirect answer to its end, so that its connection is kept.
    try {
      await drain(res);
    } finally {
      pool.give();
    }
    call = next;
  }
}

/** A call fetchCan() make. */
function init(call: BackendCall, signal: AbortSignal): BunRequestInit {
  const body = call.body as Uint8Array<ArrayBuffer> | undefined;
  return { method: call.method, headers: call.headers as Record<string, string>, body, redirect: 'manual', decompress: false, signal };
}

/** Lower-case names (as fetch gives them); a repeated header (Set-Cookie) becomes an array. */
function headersOf(h: Headers): ResponseHeaders {
  const out: ResponseHeaders = {};
  for (const [name, value] of h) {
    const old = out[name];
    if (old === undefined) out[name] = value;
    else if (Array.isArray(old)) old.push(value);
    else out[name] = [old, value];
  }
  return out;
}

async function drain(res: Response): Promise<void> {
  const body = res.body;
  if (body === null) return;
  const reader = body.getReader();
  while (!(await reader.read()).done);
}

/** The whole body, failing (and dropping the connection) past `limit` bytes. */
async function readBody(res: Response, limit: number): Promise<Buffer> {
  const declared = res.headers.get('content-length');
  if (declared !== null) {
    if (Number(declared) > limit) {
      await res.body?.cancel();
      throw bodyTooLarge(limit);
    }
    // A declared length bounds what is read: one native read into one buffer.
    return Buffer.from(await res.arrayBuffer());
  }
  const body = res.body;
  if (body === null) return EMPTY;
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > limit) {
      await reader.cancel();
      throw bodyTooLarge(limit);
    }
    chunks.push(value);
  }
  return chunks.length === 1 ? Buffer.from(chunks[0].buffer, chunks[0].byteOffset, size) : Buffer.concat(chunks, size);
}
