// The control plane's HTTP(S) server: routes, error answers, TLS (tls-server.ts)
// re-read on SIGHUP, and a clean stop (stop accepting, answer held watches
// with 204, let in-flight calls finish, close the store).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { log } from '../telemetry/log.ts';
import { diff, getLatest, getVersion, listConfigs, listNodes, putConfig, rollback } from './admin-api.ts';
import type { AuthOptions } from './auth.ts';
import type { ApiContext } from './context.ts';
import { report, watch } from './data-api.ts';
import { HttpError, sendJson } from './http-util.ts';
import { WATCH_HOLD_MS } from './protocol.ts';
import { StoreError, type ConfigStore } from './store.ts';
import { createTlsServer, reloadServerTls, type ServerTlsFiles } from './tls-server.ts';
import type { TlsMaterial } from './tls-files.ts';
import { WatchHub } from './watch-hub.ts';

const DRAIN_LIMIT_BYTES = 32 * 1024 * 1024;

type Handler = (ctx: ApiContext, req: IncomingMessage, res: ServerResponse, params: string[], url: URL) => Promise<void>;

const ROUTES: Array<{ path: RegExp; methods: Record<string, Handler> }> = [
  { path: /^\/v1\/config$/, methods: { GET: getLatest, PUT: putConfig } },
  { path: /^\/v1\/configs$/, methods: { GET: listConfigs } },
  { path: /^\/v1\/configs\/([^/]+)$/, methods: { GET: getVersion } },
  { path: /^\/v1\/configs\/([^/]+)\/diff\/([^/]+)$/, methods: { GET: diff } },
  { path: /^\/v1\/rollback\/([^/]+)$/, methods: { POST: rollback } },
  { path: /^\/v1\/nodes$/, methods: { GET: listNodes } },
  { path: /^\/v1\/nodes\/([^/]+)\/report$/, methods: { POST: report } },
  { path: /^\/v1\/watch$/, methods: { GET: watch } },
  { path: /^\/v1\/health$/, methods: { GET: health } },
];

export interface ControlPlaneOptions extends AuthOptions {
  store: ConfigStore;
  watchHoldMs?: number;
  /** Serve HTTPS with these files (read now; throws an Error naming a bad one). */
  tls?: ServerTlsFiles;
  /** What is left open, when started anyway with --insecure (said in GET /v1/health). */
  insecure?: string[];
}

export class ControlPlane {
  readonly server: Server | HttpsServer;
  readonly #ctx: ApiContext;
  readonly #tls: ServerTlsFiles | undefined;
  /** TLS: closes connections that have not sent a byte yet (the HTTP server does not know them). */
  readonly #dropSilent: () => void = () => undefined;
  #stopping = false;
  /** Answers not sent yet: told to close their connection when the server stops. */
  #inFlight = new Set<ServerResponse>();

  constructor(opts: ControlPlaneOptions) {
    this.#ctx = {
      store: opts.store,
      hub: new WatchHub(opts.store),
      auth: { adminToken: opts.adminToken, nodeToken: opts.nodeToken, clientCerts: opts.tls?.clientCa !== undefined },
      watchHoldMs: opts.watchHoldMs ?? WATCH_HOLD_MS,
      security: { tls: opts.tls !== undefined, client_certs: opts.tls?.clientCa !== undefined, insecure: opts.insecure?.length ? opts.insecure : null },
    };
    this.#tls = opts.tls;
    const timeouts = { requestTimeout: 60_000, headersTimeout: 10_000 };
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.#handle(req, res);
    if (opts.tls) {
      const tls = createTlsServer(opts.tls, timeouts, handler);
      this.server = tls.server;
      this.#dropSilent = tls.dropSilent;
    } else this.server = createServer(timeouts, handler);
  }

  /** Read the TLS files again (SIGHUP): new connections use them, open ones and held watches stay. Throws (old files kept) on an error. */
  reloadTls(): TlsMaterial | undefined {
    if (!this.#tls) return undefined;
    return reloadServerTls(this.server as HttpsServer, this.#tls);
  }

  listen(port: number, host?: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  /** Stop accepting, answer held watches (204), wait for in-flight calls (up to graceMs), close the store. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    // Keep-alive connections of calls in flight (held watches) close after their answer.
    for (const res of this.#inFlight) if (!res.headersSent) res.setHeader('connection', 'close');
    this.#ctx.hub.close();
    this.server.closeIdleConnections();
    this.#dropSilent();
    const timer = setTimeout(() => this.server.closeAllConnections(), graceMs);
    await closed;
    clearTimeout(timer);
    await this.#ctx.store.close();
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.#stopping) res.setHeader('connection', 'close');
    this.#inFlight.add(res);
    res.once('close', () => this.#inFlight.delete(res));
    try {
      const url = new URL((req.url ?? '/').startsWith('/') ? `http://control-plane${req.url}` : (req.url ?? '/'));
      const route = ROUTES.find((r) => r.path.test(url.pathname));
      if (!route) throw new HttpError(404, `no such API: ${url.pathname}`);
      const handler = route.methods[req.method ?? ''];
      if (!handler) throw new HttpError(405, `${req.method} is not allowed here`, {}, { allow: Object.keys(route.methods).join(', ') });
      await handler(this.#ctx, req, res, route.path.exec(url.pathname)!.slice(1), url);
    } catch (err) {
      await this.#fail(req, res, err);
    }
  }

  async #fail(req: IncomingMessage, res: ServerResponse, err: unknown): Promise<void> {
    const e =
      err instanceof HttpError ? err
      : err instanceof StoreError ? new HttpError(err.status, err.message)
      : err instanceof TypeError && /Invalid URL/.test(err.message) ? new HttpError(400, 'malformed request target')
      : new HttpError(500, `internal error: ${(err as Error).message}`);
    if (e.status >= 500) log('error', 'control plane request failed', { method: req.method, url: req.url, status: e.status, error: e.message });
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    await drainUnreadBody(req, res);
    sendJson(res, e.status, { error: e.message, ...e.extra }, e.headers);
  }
}

/**
 * Before answering an error (413, 401, ...), read and drop the rest of a body
 * the handler did not read, so a client that
 * is still sending gets the answer instead of a reset connection. A body that
 * goes (or is declared to go) past DRAIN_LIMIT_BYTES is not waited for: the
 * answer says Connection: close and the connection is cut.
 */
function drainUnreadBody(req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.complete || req.readableEnded) return Promise.resolve();
  if (Number(req.headers['content-length'] ?? 0) > DRAIN_LIMIT_BYTES) {
    res.setHeader('connection', 'close');
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    let drained = 0;
    const done = () => {
      req.off('data', onData);
      resolve();
    };
    const onData = (chunk: Buffer) => {
      drained += chunk.length;
      if (drained <= DRAIN_LIMIT_BYTES) return;
      res.setHeader('connection', 'close');
      req.pause();
      done();
    };
    req.on('data', onData);
    req.once('end', done);
    req.once('close', done);
    req.once('error', done);
    req.resume();
  });
}

/** GET /v1/health (no auth): 200 while the store answers, 503 when it does not. For load balancers. */
async function health(ctx: ApiContext, _req: IncomingMessage, res: ServerResponse): Promise<void> {
  try {
    const latest = await ctx.store.latest();
    sendJson(res, 200, { status: 'ok', store: ctx.store.kind, latest: latest?.version ?? 0, held_watches: ctx.hub.held, ...ctx.security });
  } catch (err) {
    sendJson(res, 503, { status: 'unavailable', store: ctx.store.kind, error: (err as Error).message, ...ctx.security });
  }
}
