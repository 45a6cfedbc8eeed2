// Prometheus metrics (prom-client) of this process. The families live in
// prom-client's global registry, so that with --workers N the primary can ask
// every worker for its values and serve their sum (prom-client's
// AggregatorRegistry talks to the workers over node:cluster's channel).
//
// Label sets are bounded: an endpoint is its pattern as configured (never the
// raw path), requests that match no endpoint share one label, statuses and
// methods come from small sets, namespaces and codes from the code.

import client from 'prom-client';

/** The endpoint label of requests that matched no endpoint (404, 405, built-ins, refused before routing). */
export const NO_ENDPOINT = '';

export const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export const requestsTotal = new client.Counter({
  name: 'portico_requests_total',
  help: 'Requests answered, by endpoint pattern, method and status.',
  labelNames: ['endpoint', 'method', 'status'] as const,
});

export const requestDuration = new client.Histogram({
  name: 'portico_request_duration_seconds',
  help: 'Time from the request to the last byte of the answer, by endpoint pattern, method and status.',
  labelNames: ['endpoint', 'method', 'status'] as const,
  buckets: DURATION_BUCKETS,
});

export const requestsInFlight = new client.Gauge({
  name: 'portico_requests_in_flight',
  help: 'Requests being served now.',
});

export const backendCalls = new client.Counter({
  name: 'portico_backend_calls_total',
  help: 'Backend calls, by endpoint pattern, backend url_pattern and outcome (ok, timeout, connection, status, decode, breaker_open, rate_limited, error).',
  labelNames: ['endpoint', 'backend', 'outcome'] as const,
});

export const backendDuration = new client.Histogram({
  name: 'portico_backend_call_duration_seconds',
  help: 'Time of a backend call (redirects, decoding and its policies included), by endpoint pattern and backend url_pattern.',
  labelNames: ['endpoint', 'backend'] as const,
  buckets: DURATION_BUCKETS,
});

/** Error codes of a failed backend call, as the outcome label names them. */
const OUTCOMES: Readonly<Record<string, string>> = {
  TIMEOUT: 'timeout',
  BACKEND_UNREACHABLE: 'connection',
  BACKEND_STATUS: 'status',
  BACKEND_DECODE: 'decode',
  BACKEND_BODY_TOO_LARGE: 'decode',
  BREAKER_OPEN: 'breaker_open',
  BREAKER_TOO_MANY_REQUESTS: 'breaker_open',
  RATE_LIMIT_BACKEND: 'rate_limited',
};

/** The outcome label of a failed call, from its error's stable code. */
export function backendOutcome(err: unknown): string {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return (typeof code === 'string' && OUTCOMES[code]) || 'error';
}

export const policyRejections = new client.Counter({
  name: 'portico_policy_rejections_total',
  help: 'Requests a policy refused, by namespace, status and code.',
  labelNames: ['namespace', 'status', 'code'] as const,
});

/**
 * What the lifecycle knows (the configuration served): kept in the process
 * that owns the lifecycle (the primary with --workers), apart from the request
 * metrics the workers count, and added to every scrape.
 */
const lifecycleRegistry = new client.Registry();

export const configInfo = new client.Gauge({
  name: 'portico_config_info',
  help: 'The configuration being served: 1 for its version and hash.',
  labelNames: ['version', 'hash', 'source'] as const,
  registers: [lifecycleRegistry],
});

export const configRejected = new client.Counter({
  name: 'portico_config_rejected_total',
  help: 'Configurations refused (invalid, wrong hash, cannot be served), by source; the running one kept serving.',
  labelNames: ['source'] as const,
  registers: [lifecycleRegistry],
});

/** What the lifecycle reports at scrape time: when the served config was applied, when its source last answered. */
export interface LifecycleClock {
  appliedAt(): Date | undefined;
  /** Epoch ms of the last successful sync with a watched source; undefined when none yet or none watched. */
  lastSyncOk(): number | undefined;
}

let lifecycle: LifecycleClock | undefined;

/** The data plane's clock for the age gauges (set once by `portico run`). */
export function setLifecycleClock(clock: LifecycleClock): void {
  lifecycle = clock;
}

new client.Gauge({
  name: 'portico_config_seconds_since_applied',
  help: 'Seconds since the configuration served was applied.',
  registers: [lifecycleRegistry],
  collect() {
    const at = lifecycle?.appliedAt();
    if (at) this.set((Date.now() - at.getTime()) / 1000);
  },
});

new client.Gauge({
  name: 'portico_config_seconds_since_sync',
  help: 'Seconds since the last successful sync with the configuration source (control plane, etcd, watched file).',
  registers: [lifecycleRegistry],
  collect() {
    const ok = lifecycle?.lastSyncOk();
    if (ok !== undefined) this.set((Date.now() - ok) / 1000);
  },
});

let defaultsOn = false;

/** Process metrics (CPU, memory, event loop lag, GC): once per process. */
export function collectProcessMetrics(): void {
  if (defaultsOn) return;
  defaultsOn = true;
  client.collectDefaultMetrics();
}

/** The configuration now served (one series; the previous one is removed). */
export function setConfigInfo(version: number, hash: string, source: string): void {
  configInfo.reset();
  configInfo.set({ version: String(version), hash, source }, 1);
}

/** This process's metrics in Prometheus text format. */
export async function processMetrics(): Promise<string> {
  return (await client.register.metrics()) + '\n' + (await lifecycleRegistry.metrics());
}

let aggregator: client.AggregatorRegistry<client.PrometheusContentType> | undefined;

/**
 * In a worker process: answer the primary's scrapes over the cluster channel.
 * (prom-client installs that responder when an AggregatorRegistry is made.)
 */
export function answerClusterScrapes(): void {
  aggregator ??= new client.AggregatorRegistry();
}

/** The sum over every worker process (--workers N), asked at scrape time, and the primary's lifecycle metrics; primary only. */
export async function clusterMetrics(): Promise<string> {
  aggregator ??= new client.AggregatorRegistry();
  return (await aggregator.clusterMetrics()) + '\n' + (await lifecycleRegistry.metrics());
}

export const METRICS_CONTENT_TYPE = client.register.contentType;

/** The origin label of pools opened for redirect targets (not configured backends): one label, however many targets. */
export const OTHER_ORIGIN = 'other';

/** One live upstream pool as its owner (proxy/upstream.ts) reports it. */
export interface UpstreamPoolView {
  /** A configured backend origin (`http://host:port`), or OTHER_ORIGIN. */
  origin: string;
  /** Its connection limit (max_idle_connections_per_host). */
  limit: number;
  /** undici's PoolStats: open sockets, sockets with no request on them, requests not yet sent. */
  stats: { connected: number; free: number; pending: number };
}

let upstreamPools: () => Iterable<UpstreamPoolView> = () => [];

/** Where the upstream pool gauges find the live pools (set once by proxy/upstream.ts, which owns them). */
export function setUpstreamPoolSource(list: () => Iterable<UpstreamPoolView>): void {
  upstreamPools = list;
}

/** Per-origin sums at scrape time (one origin may have several pools: plans with different limits). */
function upstreamTotals(): Map<string, { busy: number; idle: number; queued: number; limit: number }> {
  const totals = new Map<string, { busy: number; idle: number; queued: number; limit: number }>();
  for (const p of upstreamPools()) {
    let t = totals.get(p.origin);
    if (!t) totals.set(p.origin, (t = { busy: 0, idle: 0, queued: 0, limit: 0 }));
    t.busy += p.stats.connected - p.stats.free;
    t.idle += p.stats.free;
    t.queued += p.stats.pending;
    t.limit += p.limit;
  }
  return totals;
}

// Origins whose pool was closed (a reload dropped the backend) disappear: each collect starts from reset().
new client.Gauge({
  name: 'portico_upstream_connections',
  help: 'Open connections to backends, by origin and state (busy: a request on it; idle: kept alive for the next one).',
  labelNames: ['origin', 'state'] as const,
  collect() {
    this.reset();
    for (const [origin, t] of upstreamTotals()) {
      this.set({ origin, state: 'busy' }, t.busy);
      this.set({ origin, state: 'idle' }, t.idle);
    }
  },
});

new client.Gauge({
  name: 'portico_upstream_connections_limit',
  help: 'Most connections the gateway opens to a backend origin (max_idle_connections_per_host), by origin.',
  labelNames: ['origin'] as const,
  collect() {
    this.reset();
    for (const [origin, t] of upstreamTotals()) this.set({ origin }, t.limit);
  },
});

new client.Gauge({
  name: 'portico_upstream_requests_queued',
  help: 'Backend requests waiting for a connection (not yet sent), by origin.',
  labelNames: ['origin'] as const,
  collect() {
    this.reset();
    for (const [origin, t] of upstreamTotals()) this.set({ origin }, t.queued);
  },
});
