// Shadow comparison (portico/shadow-compare) in the metrics and /__stats: the
// comparisons by result and the differences by kind, per endpoint pattern and
// shadow backend url_pattern (prom-client's global registry, so --workers N
// sums them like every other metric), and the rings of example differences
// each process keeps (the primary gathers the workers' rings for /__stats).

import client, { type MetricObjectWithValues, type MetricValueWithName } from 'prom-client';

type Metric = MetricObjectWithValues<MetricValueWithName<string>>;

export const shadowComparisons = new client.Counter({
  name: 'portico_shadow_comparisons_total',
  help: 'Shadow answers compared with the live one, by endpoint pattern, shadow backend url_pattern and result (equal, different, live_error, skipped_too_large, skipped_busy, skipped_streamed).',
  labelNames: ['endpoint', 'backend', 'result'] as const,
});

export const shadowDiffs = new client.Counter({
  name: 'portico_shadow_diffs_total',
  help: 'Shadow comparisons that found a difference of a kind (status, header, missing_field, extra_field, changed_value, latency_regression, shadow_timeout, shadow_error), by endpoint pattern and shadow backend url_pattern.',
  labelNames: ['endpoint', 'backend', 'kind'] as const,
});

/** One difference found, as an example shows it: a JSON path and its kind, never a header value. */
export interface ShadowExampleDiff {
  kind: string;
  /** The JSON path of a body difference. */
  path?: string;
  /** The name of a header that differs (its values are never shown). */
  header?: string;
  /** The error code of a shadow that failed. */
  code?: string;
  /** Statuses (kind status), or truncated values (body differences, with show_values). */
  live?: number | string;
  shadow?: number | string;
  /** The JSON types of a changed value, when they differ. */
  live_type?: string;
  shadow_type?: string;
  /** Latencies (kind latency_regression). */
  live_ms?: number;
  shadow_ms?: number;
}

/** One comparison that found differences. */
export interface ShadowExample {
  /** ISO time of the comparison. */
  at: string;
  method: string;
  /** The client's path, without the query string. */
  path: string;
  request_id: string;
  live: { status?: number; error?: string; ms: number };
  shadow: { status?: number; error?: string; ms: number };
  diffs: ShadowExampleDiff[];
  /** Differences found beyond those listed. */
  more: number;
}

/** The last examples of one shadow backend of one endpoint, newest last. */
export interface ShadowExampleRing {
  endpoint: string;
  backend: string;
  /** How many it keeps. */
  size: number;
  examples: ShadowExample[];
}

const rings = new Set<ShadowExampleRing>();

/** A ring this process shows in /__stats until removed (its owner lives in the policy state). */
export function addShadowRing(ring: ShadowExampleRing): void {
  rings.add(ring);
}

export function removeShadowRing(ring: ShadowExampleRing): void {
  rings.delete(ring);
}

/** This process's rings, as plain data (they travel from the workers to the primary). */
export function shadowRings(): ShadowExampleRing[] {
  return [...rings].filter((r) => r.examples.length > 0).map((r) => ({ ...r, examples: [...r.examples] }));
}

interface SectionEntry {
  comparisons: Record<string, number>;
  diffs: Record<string, number>;
  examples: ShadowExample[];
}

/**
 * The /__stats `shadow` section: endpoint > shadow backend > comparisons by
 * result, diffs by kind, and the newest examples first (the rings of every
 * process merged, as many as the ring keeps).
 */
export function shadowSection(byName: ReadonlyMap<string, Metric>, processRings: readonly ShadowExampleRing[]): Record<string, unknown> {
  const out: Record<string, Record<string, SectionEntry>> = {};
  const entry = (endpoint: string, backend: string): SectionEntry => {
    const e = (out[endpoint] ??= {});
    return (e[backend] ??= { comparisons: {}, diffs: {}, examples: [] });
  };
  for (const v of byName.get('portico_shadow_comparisons_total')?.values ?? []) {
    entry(String(v.labels.endpoint), String(v.labels.backend)).comparisons[String(v.labels.result)] = v.value;
  }
  for (const v of byName.get('portico_shadow_diffs_total')?.values ?? []) {
    entry(String(v.labels.endpoint), String(v.labels.backend)).diffs[String(v.labels.kind)] = v.value;
  }
  const sizes = new Map<SectionEntry, number>();
  for (const r of processRings) {
    const e = entry(r.endpoint, r.backend);
    e.examples.push(...r.examples);
    sizes.set(e, Math.max(sizes.get(e) ?? 0, r.size));
  }
  for (const [e, size] of sizes) {
    e.examples.sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0));
    e.examples.length = Math.min(e.examples.length, size);
  }
  return out;
}
