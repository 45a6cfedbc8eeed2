// `telemetry/opentelemetry` (service): KrakenD's OpenTelemetry settings
// (krakend-otel). Portico reads them for three things:
// - traces: a span per request and per backend call, W3C trace context taken
//   from clients and sent to backends, exported over OTLP/HTTP (telemetry/tracing.ts);
// - which of Portico's Prometheus metrics are collected (layers.*.disable_metrics);
// - where the management listener serves /metrics (exporters.prometheus).
// The core reads the options (plan/compile.ts, cli/run.ts); nothing here runs per request.

import { checkFields, expectObject, type ObjectRules } from '../config/fields.ts';
import type { IssueCollector } from '../config/issues.ts';
import type { JsonPath } from '../config/json-path.ts';
import { bool, str, strings } from '../config/read.ts';
import type { Namespace } from './namespace.ts';
import type { ManagementAddress, MetricsOptions } from './telemetry-metrics.ts';

const NAME = 'telemetry/opentelemetry';

/** KrakenD's default skip_paths: the built-in endpoints are not traced. */
export const DEFAULT_TRACE_SKIP_PATHS = ['/__health', '/__debug/', '/__echo/', '/__stats'];

/** Where to send spans: an OTLP/HTTP traces URL. */
export interface OtlpExporter {
  name: string;
  url: string;
}

export interface TracingOptions {
  serviceName: string;
  serviceVersion: string | undefined;
  deployEnv: string | undefined;
  /** 0..1: the share of new traces recorded (a client's sampled flag is followed). */
  sampleRate: number;
  /** Paths not traced: exact, or a prefix when ending in "/". */
  skipPaths: string[];
  exporters: OtlpExporter[];
  /** Continue the client's trace (traceparent/tracestate); false starts a new one. */
  propagation: boolean;
  requestSpans: boolean;
  backendSpans: boolean;
  /** Client request headers as span attributes (credentials redacted). */
  requestHeaders: boolean;
  /** Backend request headers as span attributes (credentials redacted). */
  backendHeaders: boolean;
  /** Attributes added to every backend span. */
  backendAttributes: [string, string][];
}

/** `management` comes from the first Prometheus exporter. */
export interface OpenTelemetryOptions extends MetricsOptions {
  /** Undefined when nothing exports spans (no OTLP exporter with traces, or traces disabled everywhere). */
  tracing: TracingOptions | undefined;
}

const RULES: ObjectRules = {
  service_name: 'string',
  service_version: 'string',
  deploy_env: 'string',
  skip_paths: 'string[]',
  metric_reporting_period: { kind: 'integer', min: 1 },
  trace_sample_rate: 'number',
  exporters: 'object',
  layers: 'object',
};

const OTLP_RULES: ObjectRules = {
  name: 'string',
  host: 'string',
  port: { kind: 'integer', min: 1, max: 65535 },
  use_http: 'boolean',
  disable_metrics: 'boolean',
  disable_traces: 'boolean',
};

const PROMETHEUS_RULES: ObjectRules = {
  name: 'string',
  port: { kind: 'integer', min: 0, max: 65535 },
  host: 'string',
  listen_ip: 'string',
  process_metrics: 'boolean',
  go_metrics: 'boolean',
  disable_metrics: 'boolean',
};

const LAYER_RULES: ObjectRules = {
  disable_metrics: 'boolean',
  disable_traces: 'boolean',
  disable_propagation: 'boolean',
  report_headers: 'boolean',
};

const STAGE_RULES: ObjectRules = {
  disable_stage: 'boolean',
  round_trip: 'boolean',
  read_payload: 'boolean',
  detailed_connection: 'boolean',
  static_attributes: 'array',
  report_headers: 'boolean',
};

export const telemetryOpentelemetry: Namespace<OpenTelemetryOptions> = {
  name: NAME,
  scopes: ['service'],
  order: 0,
  policy: false,
  parse(raw, path, c) {
    if (!expectObject(c, raw, path, 'an object with OpenTelemetry options ("exporters", "layers", "trace_sample_rate", ...)')) return undefined;
    const valid = checkFields(c, raw, path, RULES, `the "${NAME}" namespace`);
    const rate = valid.has('trace_sample_rate') ? (raw.trace_sample_rate as number) : 1;
    if (rate < 0 || rate > 1) c.invalid([...path, 'trace_sample_rate'], 'a number from 0 to 1 (the share of traces recorded)', rate);

    const layers = valid.has('layers') ? (raw.layers as Record<string, unknown>) : {};
    const lpath = [...path, 'layers'];
    checkFields(c, layers, lpath, { global: 'object', proxy: 'object', backend: 'object' }, 'the "layers" of telemetry/opentelemetry');
    const global = layer(c, layers.global, [...lpath, 'global'], LAYER_RULES);
    layer(c, layers.proxy, [...lpath, 'proxy'], { disable_metrics: 'boolean', disable_traces: 'boolean', report_headers: 'boolean' });
    const backend = layer(c, layers.backend, [...lpath, 'backend'], { metrics: 'object', traces: 'object' });
    const bmetrics = layer(c, backend.metrics, [...lpath, 'backend', 'metrics'], STAGE_RULES);
    const btraces = layer(c, backend.traces, [...lpath, 'backend', 'traces'], STAGE_RULES);
    const attributes = staticAttributes(c, btraces.static_attributes, [...lpath, 'backend', 'traces', 'static_attributes']);
    staticAttributes(c, bmetrics.static_attributes, [...lpath, 'backend', 'metrics', 'static_attributes']);

    const { otlp, management } = exporters(c, valid.has('exporters') ? (raw.exporters as Record<string, unknown>) : {}, [...path, 'exporters']);
    const requestSpans = !bool(global.disable_traces);
    const backendSpans = !bool(btraces.disable_stage);
    const tracing: TracingOptions | undefined =
      otlp.length > 0 && (requestSpans || backendSpans)
        ? {
            serviceName: str(raw.service_name) ?? 'portico',
            serviceVersion: str(raw.service_version),
            deployEnv: str(raw.deploy_env),
            sampleRate: rate >= 0 && rate <= 1 ? rate : 1,
            skipPaths: strings(raw.skip_paths) ?? DEFAULT_TRACE_SKIP_PATHS,
            exporters: otlp,
            propagation: !bool(global.disable_propagation),
            requestSpans,
            backendSpans,
            requestHeaders: bool(global.report_headers),
            backendHeaders: bool(btraces.report_headers),
            backendAttributes: attributes,
          }
        : undefined;
    return { tracing, requestMetrics: !bool(global.disable_metrics), backendMetrics: !bool(bmetrics.disable_stage), management };
  },
};

/** A nested layer object, checked; {} when absent or not an object. */
function layer(c: IssueCollector, value: unknown, path: JsonPath, rules: ObjectRules): Record<string, unknown> {
  if (value === undefined) return {};
  if (!expectObject(c, value, path, 'an object')) return {};
  const valid = checkFields(c, value, path, rules, `"${String(path.at(-1))}" in telemetry/opentelemetry layers`);
  return Object.fromEntries(Object.entries(value).filter(([k]) => valid.has(k)));
}

function staticAttributes(c: IssueCollector, value: unknown, path: JsonPath): [string, string][] {
  if (value === undefined) return [];
  const out: [string, string][] = [];
  (value as unknown[]).forEach((item, i) => {
    const at = [...path, i];
    if (!expectObject(c, item, at, 'an object {"key": "...", "value": "..."}')) return;
    const valid = checkFields(c, item, at, { key: 'string', value: 'string' }, 'a static attribute');
    if (!valid.has('key') || item.key === '') return c.invalid([...at, 'key'], 'a non-empty attribute name', item.key);
    out.push([item.key as string, valid.has('value') ? (item.value as string) : '']);
  });
  return out;
}

function exporters(c: IssueCollector, raw: Record<string, unknown>, path: JsonPath) {
  checkFields(c, raw, path, { otlp: 'array', prometheus: 'array' }, 'the "exporters" of telemetry/opentelemetry');
  const names = new Set<string>();
  const unique = (name: unknown, at: JsonPath) => {
    if (typeof name !== 'string') return;
    if (names.has(name)) c.error([...at, 'name'], 'a name no other exporter has', JSON.stringify(name));
    names.add(name);
  };
  const otlp: OtlpExporter[] = [];
  if (Array.isArray(raw.otlp)) {
    raw.otlp.forEach((e: unknown, i) => {
      const at = [...path, 'otlp', i];
      if (!expectObject(c, e, at, 'an object with an OTLP exporter ("name", "host", "port", "use_http")')) return;
      const valid = checkFields(c, e, at, OTLP_RULES, 'an OTLP exporter');
      unique(e.name, at);
      if (!valid.has('host')) return c.missing([...at, 'host'], 'the collector host, e.g. "otel-collector" or "https://otel-collector"');
      if (bool(e.disable_traces)) return;
      if (!bool(e.use_http)) {
        // KrakenD's default is OTLP/gRPC; Portico exports over OTLP/HTTP only. Telemetry never stops a gateway: a warning.
        c.warning([...at, 'use_http'], 'true: Portico exports spans over OTLP/HTTP only (usually port 4318); this exporter sends nothing', String(e.use_http ?? 'absent (gRPC)'));
        return;
      }
      const url = otlpUrl(e.host as string, valid.has('port') ? (e.port as number) : 4318);
      if (url === undefined) return c.invalid([...at, 'host'], 'a host name or an http(s) URL without a path', e.host);
      otlp.push({ name: str(e.name) ?? `otlp-${i}`, url });
    });
  }
  let management: ManagementAddress | undefined;
  if (Array.isArray(raw.prometheus)) {
    raw.prometheus.forEach((e: unknown, i) => {
      const at = [...path, 'prometheus', i];
      if (!expectObject(c, e, at, 'an object with a Prometheus exporter ("name", "port", "listen_ip")')) return;
      const valid = checkFields(c, e, at, PROMETHEUS_RULES, 'a Prometheus exporter');
      unique(e.name, at);
      if (bool(e.disable_metrics)) return;
      if (management !== undefined) {
        c.warning(at, 'one Prometheus exporter: Portico serves its metrics on one management listener, the first one', 'another one');
        return;
      }
      const host = str(e.listen_ip) ?? str(e.host);
      management = { host: host === '' ? undefined : host, port: valid.has('port') ? (e.port as number) : 9090 };
    });
  }
  return { otlp, management };
}

/** KrakenD's host (a name, or a URL with a scheme) and port as an OTLP/HTTP traces URL. */
export function otlpUrl(host: string, port: number): string | undefined {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(host) ? host : `http://${host}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    return undefined;
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || (u.pathname !== '/' && u.pathname !== '') || u.search !== '' || u.username !== '') return undefined;
  u.port = String(port);
  return `${u.origin}/v1/traces`;
}
