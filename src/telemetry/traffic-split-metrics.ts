// Metrics of traffic splits (portico/traffic-split): requests by side and
// outcome, their duration by side, and whether a split's rollback guard has
// taken the candidate out. In prom-client's global registry like the others,
// so /metrics and /__stats sum them over the workers (--workers N); the gauge
// then counts the workers whose guard has tripped (each judges its own traffic).

import client from 'prom-client';
import { DURATION_BUCKETS } from './metrics.ts';

export const splitRequests = new client.Counter({
  name: 'portico_traffic_split_requests_total',
  help: 'Requests of a split endpoint, by endpoint pattern, method, side (stable, candidate) and outcome (ok, error: 5xx or a failed backend, client_error: 4xx).',
  labelNames: ['endpoint', 'method', 'side', 'outcome'] as const,
});

export const splitDuration = new client.Histogram({
  name: 'portico_traffic_split_duration_seconds',
  help: 'Time a side of a split endpoint took to answer (its backends and their merge), by endpoint pattern, method and side.',
  labelNames: ['endpoint', 'method', 'side'] as const,
  buckets: DURATION_BUCKETS,
});

/** A split with a rollback guard, as the gauge reads it. */
export interface GuardView {
  endpoint: string;
  method: string;
  rolledBack: boolean;
}

let guards: () => Iterable<GuardView> = () => [];

/** Where the gauge finds the live guards (set once by the namespace, which owns them). */
export function setGuardSource(list: () => Iterable<GuardView>): void {
  guards = list;
}

new client.Gauge({
  name: 'portico_traffic_split_rolled_back',
  help: 'Splits whose rollback guard sends nothing to the candidate side any more (1), or still watches it (0), by endpoint pattern and method; summed over workers.',
  labelNames: ['endpoint', 'method'] as const,
  collect() {
    this.reset();
    for (const g of guards()) this.set({ endpoint: g.endpoint, method: g.method }, g.rolledBack ? 1 : 0);
  },
});
