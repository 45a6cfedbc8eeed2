// `telemetry/metrics` (service): KrakenD's metrics module (krakend-metrics).
// Portico always counts in Prometheus form; this namespace says which layers
// are counted and where the management listener serves /metrics and /__stats
// (`listen_address`, KrakenD's address for its /__stats).

import { checkFields, expectObject, type ObjectRules } from '../config/fields.ts';
import { parseHostPort } from '../config/host-port.ts';
import { bool, str } from '../config/read.ts';
import type { Namespace } from './namespace.ts';

const NAME = 'telemetry/metrics';

/** Where the management listener serves (host undefined: loopback). */
export interface ManagementAddress {
  host: string | undefined;
  port: number;
}

/** What a telemetry namespace says of Portico's metrics (telemetry/opentelemetry says it too). */
export interface MetricsOptions {
  /** Request counts, latency and in-flight gauge are collected. */
  requestMetrics: boolean;
  /** Backend-call counts and latency are collected. */
  backendMetrics: boolean;
  management: ManagementAddress | undefined;
}

const RULES: ObjectRules = {
  collection_time: 'duration',
  listen_address: 'string',
  router_disabled: 'boolean',
  proxy_disabled: 'boolean',
  backend_disabled: 'boolean',
  endpoint_disabled: 'boolean',
};

export const telemetryMetrics: Namespace<MetricsOptions> = {
  name: NAME,
  scopes: ['service'],
  order: 0,
  policy: false,
  parse(raw, path, c) {
    if (!expectObject(c, raw, path, 'an object with metrics options ("listen_address", "router_disabled", ...)')) return undefined;
    const valid = checkFields(c, raw, path, RULES, `the "${NAME}" namespace`);
    let management: MetricsOptions['management'];
    if (valid.has('listen_address')) {
      management = listenAddress(str(raw.listen_address)!);
      if (!management) c.invalid([...path, 'listen_address'], 'an address like ":8090", "127.0.0.1:8090" or "[::1]:8090"', raw.listen_address);
    } else management = { host: undefined, port: 8090 };
    return {
      // KrakenD's router layer is the requests clients make; its endpoint layer, the same requests per endpoint.
      requestMetrics: !bool(raw.router_disabled) || !bool(raw.endpoint_disabled),
      backendMetrics: !bool(raw.backend_disabled),
      management,
    };
  },
};

/** Go's "host:port" (host optional, IPv6 in brackets). */
function listenAddress(text: string): ManagementAddress | undefined {
  const address = parseHostPort(text, { listen: true });
  if (!address) return undefined;
  return { host: address.host === '' ? undefined : address.host, port: address.port };
}
