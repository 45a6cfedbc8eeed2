// /__stats on the management listener: the metrics as one JSON document a
// person (or a script without a Prometheus) can read: requests per endpoint,
// method and status with latency percentiles, backend calls by outcome,
// policy refusals, and every worker's pid, configuration and memory. Built
// from the same prom-client values /metrics serves (summed over workers).

import client, { type MetricObjectWithValues, type MetricValueWithName } from 'prom-client';
import { shadowRings, shadowSection, type ShadowExampleRing } from './shadow-metrics.ts';

type Metric = MetricObjectWithValues<MetricValueWithName<string>>;

/** What one serving process says of itself. */
export interface ProcessReport {
  pid: number;
  /** The configuration it serves. */
  version: number | undefined;
  hash: string | undefined;
  uptime_seconds: number;
  rss_bytes: number;
  heap_used_bytes: number;
  /** What its policy state reports for /__health (circuit breakers, traffic splits): each worker judges its own traffic. */
  policies?: Record<string, Record<string, unknown>>;
  /** Its metrics (prom-client JSON), when asked for them. */
  metrics?: Metric[];
  /** Its rings of shadow comparison examples, with the metrics. */
  shadow_examples?: ShadowExampleRing[];
}

/** One worker process as the primary sees it (--workers N): its slot, whether it answered in time, what it said. */
export type WorkerReport = { slot: number; alive: boolean; error?: string } & Partial<ProcessReport>;

export async function processReport(served: { version: number; hash: string } | undefined, withMetrics: boolean): Promise<ProcessReport> {
  const mem = process.memoryUsage();
  return {
    pid: process.pid,
    version: served?.version,
    hash: served?.hash,
    uptime_seconds: Math.round(process.uptime() * 10) / 10,
    rss_bytes: mem.rss,
    heap_used_bytes: mem.heapUsed,
    ...(withMetrics ? { metrics: (await client.register.getMetricsAsJSON()) as Metric[], shadow_examples: shadowRings() } : {}),
  };
}

/** The workers' metrics summed, as prom-client sums them for /metrics. */
export async function sumMetrics(perWorker: Metric[][]): Promise<Metric[]> {
  if (perWorker.length === 0) return [];
  return (await client.AggregatorRegistry.aggregate(perWorker).getMetricsAsJSON()) as Metric[];
}

interface LatencyStats {
  count: number;
  mean_ms: number | null;
  p50_ms: number | null;
  p95_ms: number | null;
  p99_ms: number | null;
}

/** Counts, mean and percentiles (interpolated within histogram buckets) per label set. */
function histogramStats(m: Metric | undefined, keyOf: (labels: Record<string, string | number>) => string): Map<string, LatencyStats> {
  const groups = new Map<string, { buckets: [number, number][]; sum: number; count: number }>();
  for (const v of m?.values ?? []) {
    const { le, ...labels } = v.labels as Record<string, string | number>;
    const key = keyOf(labels);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { buckets: [], sum: 0, count: 0 }));
    if (v.metricName?.endsWith('_bucket')) g.buckets.push([le === '+Inf' ? Infinity : Number(le), v.value]);
    else if (v.metricName?.endsWith('_sum')) g.sum = v.value;
    else if (v.metricName?.endsWith('_count')) g.count = v.value;
  }
  const out = new Map<string, LatencyStats>();
  for (const [key, g] of groups) {
    g.buckets.sort((a, b) => a[0] - b[0]);
    const q = (p: number) => quantileMs(g.buckets, g.count, p);
    out.set(key, { count: g.count, mean_ms: g.count === 0 ? null : round((g.sum / g.count) * 1000), p50_ms: q(0.5), p95_ms: q(0.95), p99_ms: q(0.99) });
  }
  return out;
}

/** The p-quantile in ms, linear within its bucket (as PromQL's histogram_quantile); the largest finite bound when it falls in +Inf. */
function quantileMs(buckets: [number, number][], count: number, p: number): number | null {
  if (count === 0) return null;
  const rank = p * count;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [bound, cumulative] of buckets) {
    if (cumulative >= rank) {
      if (bound === Infinity) return round(lowerBound * 1000);
      const inBucket = cumulative - lowerCount;
      const fraction = inBucket === 0 ? 0 : (rank - lowerCount) / inBucket;
      return round((lowerBound + (bound - lowerBound) * fraction) * 1000);
    }
    lowerBound = bound;
    lowerCount = cumulative;
  }
  return round(lowerBound * 1000);
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}

const SEP = '\u0000';

/** Nest `value` under path[0] > path[1] > ... in `into`. */
function put(into: Record<string, unknown>, path: string[], value: unknown): void {
  let node = into;
  for (const p of path.slice(0, -1)) node = (node[p] ??= {}) as Record<string, unknown>;
  node[path.at(-1)!] = value;
}

/** The /__stats document from a set of metrics (one process's, or the workers' sum) and the processes' shadow examples. */
export function statsDocument(metrics: Metric[], extra: Record<string, unknown>, shadowExamples: readonly ShadowExampleRing[] = []): Record<string, unknown> {
  const byName = new Map(metrics.map((m) => [m.name, m]));
  const total = (name: string) => (byName.get(name)?.values ?? []).reduce((s, v) => s + v.value, 0);

  const requests: Record<string, unknown> = {};
  const reqKey = (l: Record<string, string | number>) => [l.endpoint === '' ? '(no endpoint)' : String(l.endpoint), String(l.method), String(l.status)].join(SEP);
  for (const [key, s] of histogramStats(byName.get('portico_request_duration_seconds'), reqKey)) put(requests, key.split(SEP), s);

  const backends: Record<string, unknown> = {};
  const beKey = (l: Record<string, string | number>) => [String(l.endpoint), String(l.backend)].join(SEP);
  for (const [key, s] of histogramStats(byName.get('portico_backend_call_duration_seconds'), beKey)) put(backends, [...key.split(SEP), 'latency'], s);
  for (const v of byName.get('portico_backend_calls_total')?.values ?? []) {
    put(backends, [String(v.labels.endpoint), String(v.labels.backend), 'outcomes', String(v.labels.outcome)], v.value);
  }

  const rejections: Record<string, unknown> = {};
  for (const v of byName.get('portico_policy_rejections_total')?.values ?? []) {
    put(rejections, [String(v.labels.namespace), String(v.labels.code)], v.value);
  }

  // portico/traffic-split: per endpoint, method and side.
  const splits: Record<string, unknown> = {};
  const splitKey = (l: Record<string, string | number>) => [String(l.endpoint), String(l.method), String(l.side)].join(SEP);
  for (const [key, s] of histogramStats(byName.get('portico_traffic_split_duration_seconds'), splitKey)) put(splits, [...key.split(SEP), 'latency'], s);
  for (const v of byName.get('portico_traffic_split_requests_total')?.values ?? []) {
    put(splits, [String(v.labels.endpoint), String(v.labels.method), String(v.labels.side), 'outcomes', String(v.labels.outcome)], v.value);
  }

  // portico/shadow-compare: per endpoint and shadow backend.
  const shadow = shadowSection(byName, shadowExamples);

  return {
    now: new Date().toISOString(),
    ...extra,
    requests: { total: total('portico_requests_total'), in_flight: total('portico_requests_in_flight'), by_endpoint: requests },
    backends,
    policy_rejections: rejections,
    ...(Object.keys(shadow).length ? { shadow } : {}),
    ...(Object.keys(splits).length ? { traffic_splits: splits } : {}),
  };
}
