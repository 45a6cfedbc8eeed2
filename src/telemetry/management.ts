// The management listener (--management-port, or the address a configuration's
// telemetry/metrics or telemetry/opentelemetry Prometheus exporter names):
// metrics, health, readiness and stats on their own port, so operators can see
// a saturated or degraded data plane.
// It shares nothing with the traffic listener but the process: with
// --workers N it runs in the primary, which serves no traffic, and sums the
// workers' metrics at each scrape.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { log } from './log.ts';
import { clusterMetrics, collectProcessMetrics, METRICS_CONTENT_TYPE, processMetrics } from './metrics.ts';
import { processReport, statsDocument, sumMetrics, type WorkerReport } from './stats.ts';

export interface ManagementOptions {
  port: number;
  /** Listen address (default: loopback only; metrics and health are for operators). */
  host?: string;
  /** The health document (as /__health on the traffic port). */
  health: () => Record<string, unknown>;
  ready: () => boolean;
  /** --workers N: how every worker is (metrics, stats and health are then about the workers). */
  workers?: (withMetrics: boolean) => Promise<WorkerReport[]>;
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
        return send(res, 200, METRICS_CONTENT_TYPE, o.workers ? await clusterMetrics() : await processMetrics());
      case '/__health':
        return send(res, 200, 'application/json; charset=utf-8', JSON.stringify(await health(o)));
      case '/__stats':
        return send(res, 200, 'application/json; charset=utf-8', JSON.stringify(await stats(o)));
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

/** The data plane's health; with workers, each one's pid, configuration and whether it answered (one that did not makes the status degraded). */
async function health(o: ManagementOptions): Promise<Record<string, unknown>> {
  const h = { status: 'ok', now: new Date().toISOString(), ...o.health() };
  if (!o.workers) return h;
  const workers = await o.workers(false);
  return { ...h, status: workers.every((w) => w.alive) ? h.status : 'degraded', workers };
}

async function stats(o: ManagementOptions): Promise<Record<string, unknown>> {
  const h = o.health();
  const self = await processReport(undefined, !o.workers);
  const { metrics, version: _v, hash: _h, shadow_examples: examples, ...primary } = self;
  if (!o.workers) return statsDocument(metrics ?? [], { config: h.config ?? null, process: primary }, examples);
  const reports = await o.workers(true);
  const summed = await sumMetrics(reports.flatMap((r) => (r.metrics ? [r.metrics] : [])));
  const workers = reports.map(({ metrics: _m, shadow_examples: _s, ...r }) => r);
  return statsDocument(summed, { config: h.config ?? null, primary, workers }, reports.flatMap((r) => r.shadow_examples ?? []));
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
