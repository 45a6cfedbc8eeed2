// Real HTTP backends on loopback for integration tests.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

export interface Recorded {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  rawHeaders: string[];
  body: string;
}

export interface TestBackend {
  url: string;
  port: number;
  requests: Recorded[];
  close(): Promise<void>;
}

export type Handler = (req: IncomingMessage & { body: string }, res: ServerResponse) => void | Promise<void>;

/** `tls`: serve HTTPS with this certificate and key (PEM). */
export async function startBackend(handler: Handler, opts: { tls?: { cert: Buffer; key: Buffer } } = {}): Promise<TestBackend> {
  const requests: Recorded[] = [];
  const listener = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    requests.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body });
    try {
      await handler(Object.assign(req, { body }), res);
    } catch (err) {
      res.destroy(err as Error);
    }
  };
  const server: Server = opts.tls ? createHttpsServer(opts.tls, listener) : createServer(listener);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    port,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export function json(res: ServerResponse, body: unknown, status = 200, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** A backend answering fixed JSON per path (exact path+query match, or path alone). */
export function startJsonBackend(routes: Record<string, unknown>): Promise<TestBackend> {
  return startBackend((req, res) => {
    const url = req.url!;
    const path = url.split('?')[0];
    const body = routes[url] ?? routes[path];
    if (body === undefined) return json(res, { error: 'not found' }, 404);
    json(res, body);
  });
}
