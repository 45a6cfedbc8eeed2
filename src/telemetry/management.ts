// The management listener (--management-port): metrics, health and readiness
// on their own port, so operators can see a saturated or degraded data plane.
// It shares nothing with the traffic listener but the process: with
// --workers N it runs in the primary, which serves no traffic, and sums the
// workers' metrics at each scrape.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { log } from './log.ts';
import { clusterMetrics, collectProcessMetrics, METRICS_CONTENT_TYPE, processMetrics } from './metrics.ts';

export interface ManagementOptions {
  port: number;
  /** Listen address (default: loopback only; metrics and health are for operators). */
  host?: string;
  /** The health document (as /__health on the traffic port). */
  health: () => Record<string, unknown>;
  ready: () => boolean;
  /** --workers N: metrics are the sum over the worker processes. */
  cluster: boolean;
}

export interface ManagementListener {
  port: number;
  close(): Promise<void>;
}

export async function startManagement(o: ManagementOptions): Promise<ManagementListener> {
  collectProcessMetrics();
  const server = createServer((req, res) => void serve(o, req, res));
  // Scrapes are short; nobody may hold this listener open.
  server.headersTimeout = 5_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: o.port, host: o.host ?? '127.0.0.1' }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  log('info', 'management listening', { port, host: o.host ?? '127.0.0.1' });
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function serve(o: ManagementOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain; charset=utf-8', '405 method not allowed');
  try {
    switch (path) {
      case '/metrics':
        return send(res, 200, METRICS_CONTENT_TYPE, o.cluster ? await clusterMetrics() : await processMetrics());
      case '/__health':
        return send(res, 200, 'application/json; charset=utf-8', JSON.stringify({ status: 'ok', now: new Date().toISOString(), ...o.health() }));
      case '/__ready': {
        const ready = o.ready();
        return send(res, ready ? 200 : 503, 'application/json; charset=utf-8', JSON.stringify({ ready }));
      }
      default:
        return send(res, 404, 'text/plain; charset=utf-8', '404 page not found');
    }
  } catch (err) {
    log('warn', 'management request failed', { path, error: String(err) });
    send(res, 500, 'text/plain; charset=utf-8', 'metrics unavailable');
  }
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
