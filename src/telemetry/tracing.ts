// Traces (OpenTelemetry): a SERVER span per client request and a CLIENT span
// per backend call, with the attributes OpenTelemetry's HTTP semantic
// conventions name; W3C trace context (traceparent, tracestate) taken from
// clients and sent to backends; spans batched and exported over OTLP/HTTP.
//
// The SDK costs ~25 MB and ~0.5 s to load, so it is required only when a
// configuration turns tracing on (`require` keeps compile() synchronous).
// With tracing off nothing here runs: the request path checks one field.
// Spans are parented explicitly (no async context manager): a request's
// context travels on its ProxyRequest.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type * as ApiModule from '@opentelemetry/api';
import type { Context, Span, TextMapGetter, TextMapSetter, Tracer } from '@opentelemetry/api';
import type * as CoreModule from '@opentelemetry/core';
import type * as ExporterModule from '@opentelemetry/exporter-trace-otlp-http';
import type * as ResourcesModule from '@opentelemetry/resources';
import type * as SdkModule from '@opentelemetry/sdk-trace';
import { splitHostHeader } from '../config/host-port.ts';
import type { TracingOptions } from '../namespaces/telemetry-opentelemetry.ts';
import type { Proxy, ProxyRequest } from '../proxy/types.ts';
import { VERSION } from '../version.ts';
import { log } from './log.ts';

const require = createRequire(import.meta.url);

/** What a request's span leaves for the backend spans: the context they are children of. */
export interface RequestTrace {
  readonly context: Context;
  /** Undefined when request spans are off (backend spans then continue the client's trace). */
  readonly span: Span | undefined;
}

/** What a backend call reports to its span (set by proxy/backend.ts). */
export interface CallTrace {
  url?: string;
  status?: number;
}

/** How long closing waits for the last spans to be exported. */
export const CLOSE_BOUND_MS = 2_000;
/** One export request's timeout (the SDK's default is 10 s). */
const EXPORT_TIMEOUT_MS = 5_000;

/** Header values never put in span attributes. */
const REDACTED_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key']);

export class Tracing {
  readonly #o: TracingOptions;
  readonly #api: typeof ApiModule;
  readonly #tracer: Tracer;
  readonly #provider: SdkModule.TracerProvider;
  readonly #propagator: CoreModule.W3CTraceContextPropagator;
  readonly #getter: TextMapGetter<IncomingMessage['headers']>;
  readonly #setter: TextMapSetter<Record<string, string>>;

  constructor(o: TracingOptions) {
    this.#o = o;
    const api = (this.#api = require('@opentelemetry/api') as typeof ApiModule);
    const sdk = require('@opentelemetry/sdk-trace') as typeof SdkModule;
    const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http') as typeof ExporterModule;
    const { resourceFromAttributes } = require('@opentelemetry/resources') as typeof ResourcesModule;
    const core = require('@opentelemetry/core') as typeof CoreModule;
    const attributes: Record<string, string | number> = {
      'service.name': o.serviceName,
      // One process of an instance (a worker with --workers N).
      'process.pid': process.pid,
      'telemetry.sdk.name': 'opentelemetry',
      'telemetry.sdk.language': 'nodejs',
    };
    if (o.serviceVersion !== undefined) attributes['service.version'] = o.serviceVersion;
    if (o.deployEnv !== undefined) attributes['deployment.environment.name'] = o.deployEnv;
    this.#provider = new sdk.TracerProvider({
      resource: resourceFromAttributes(attributes),
      sampler: new sdk.ParentBasedSampler({ root: new sdk.TraceIdRatioBasedSampler(o.sampleRate) }),
      // Batched; a collector that is down costs a bounded queue (spans past it are dropped), never a request.
      spanProcessors: o.exporters.map((e) => new sdk.BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: e.url, timeoutMillis: EXPORT_TIMEOUT_MS }), ...batchOptions() })),
    });
    this.#tracer = this.#provider.getTracer('portico', VERSION);
    this.#propagator = new core.W3CTraceContextPropagator();
    this.#getter = api.defaultTextMapGetter;
    this.#setter = api.defaultTextMapSetter;
    log('info', 'tracing on', { exporters: o.exporters.map((e) => e.url), sample_rate: o.sampleRate });
  }

  /** Flush what is queued and stop exporting; a collector that does not answer delays this at most CLOSE_BOUND_MS. */
  async close(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<'late'>((resolve) => (timer = setTimeout(resolve, CLOSE_BOUND_MS, 'late')));
    try {
      if ((await Promise.race([this.#provider.shutdown(), bound])) === 'late') log('warn', 'the last spans were not exported in time', { ms: CLOSE_BOUND_MS });
    } catch (err) {
      log('warn', 'exporting the last spans failed', { error: String(err) });
    } finally {
      clearTimeout(timer);
    }
  }

  /** The trace of a client request (undefined on skipped paths); its span ends with `res`. */
  startRequest(req: IncomingMessage, res: ServerResponse, path: string): RequestTrace | undefined {
    if (this.#skipped(path)) return undefined;
    const api = this.#api;
    const parent = this.#o.propagation ? this.#propagator.extract(api.ROOT_CONTEXT, req.headers, this.#getter) : api.ROOT_CONTEXT;
    if (!this.#o.requestSpans) return { context: parent, span: undefined };
    const method = req.method ?? 'GET';
    const host = req.headers.host === undefined ? undefined : splitHostHeader(req.headers.host);
    const span = this.#tracer.startSpan(
      method,
      {
        kind: api.SpanKind.SERVER,
        attributes: {
          'http.request.method': method,
          'url.path': path,
          'url.scheme': (req.socket as { encrypted?: boolean }).encrypted === true ? 'https' : 'http',
          'server.address': host?.hostname,
          'server.port': host?.port ?? req.socket.localPort,
          'client.address': req.socket.remoteAddress,
          'network.protocol.version': req.httpVersion,
          'user_agent.original': req.headers['user-agent'],
        },
      },
      parent,
    );
    if (this.#o.requestHeaders) setHeaderAttributes(span, 'http.request.header.', req.headers);
    res.once('close', () => {
      const status = res.statusCode;
      span.setAttribute('http.response.status_code', status);
      if (status >= 500) {
        span.setAttribute('error.type', String(status));
        span.setStatus({ code: api.SpanStatusCode.ERROR });
      }
      if (!res.writableFinished) span.setAttribute('error.type', 'client_closed');
      span.end();
    });
    return { context: api.trace.setSpan(parent, span), span };
  }

  /** A request reached an endpoint: name its span after the route. */
  routed(t: RequestTrace, method: string, route: string, requestId: string): void {
    if (t.span === undefined) return;
    t.span.updateName(`${method} ${route}`);
    t.span.setAttribute('http.route', route);
    t.span.setAttribute('portico.request_id', requestId);
  }

  /** Wrap one backend call in a CLIENT span and send its trace context to the backend. */
  backend(call: Proxy, endpoint: string, method: string, urlPattern: string): Proxy {
    if (!this.#o.backendSpans) return this.#propagateOnly(call);
    const api = this.#api;
    const tracer = this.#tracer;
    const o = this.#o;
    return async (req) => {
      const parent = req.trace;
      if (parent === undefined) return call(req);
      const span = tracer.startSpan(method, { kind: api.SpanKind.CLIENT, attributes: { 'http.request.method': method, 'portico.endpoint': endpoint, 'portico.backend': urlPattern } }, parent.context);
      for (const [k, v] of o.backendAttributes) span.setAttribute(k, v);
      const info: CallTrace = {};
      const traced = this.#withContext(req, api.trace.setSpan(parent.context, span), info);
      if (o.backendHeaders) setHeaderAttributes(span, 'http.request.header.', req.headers);
      try {
        const r = await call(traced);
        if (r.passthrough !== undefined) info.status ??= r.passthrough.status;
        return r;
      } catch (err) {
        const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
        span.setAttribute('error.type', typeof code === 'string' ? code : 'error');
        span.setStatus({ code: api.SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
        throw err;
      } finally {
        if (info.url !== undefined) {
          span.setAttribute('url.full', info.url);
          const u = URL.parse(info.url);
          if (u) {
            span.setAttribute('server.address', u.hostname);
            span.setAttribute('server.port', Number(u.port) || (u.protocol === 'https:' ? 443 : 80));
          }
        }
        if (info.status !== undefined) {
          span.setAttribute('http.response.status_code', info.status);
          if (info.status >= 400) span.setStatus({ code: api.SpanStatusCode.ERROR });
        }
        span.end();
      }
    };
  }

  /** Backend spans off: the backend still gets the request's trace context. */
  #propagateOnly(call: Proxy): Proxy {
    return (req) => (req.trace === undefined ? call(req) : call(this.#withContext(req, req.trace.context, undefined)));
  }

  /** The request as one backend call sees it: its own traceparent, its own CallTrace. */
  #withContext(req: ProxyRequest, ctx: Context, info: CallTrace | undefined): ProxyRequest {
    const headers: Record<string, string> = { ...req.upstreamHeaders };
    this.#propagator.inject(ctx, headers, this.#setter);
    // Headers policies add to the answer must reach the client's request object: share the list.
    req.responseHeaders ??= [];
    return { ...req, upstreamHeaders: headers, callTrace: info };
  }

  #skipped(path: string): boolean {
    for (const p of this.#o.skipPaths) if (p.endsWith('/') ? path.startsWith(p) : path === p) return true;
    return false;
  }
}

/** The OpenTelemetry specification's OTEL_BSP_* variables (the SDK no longer reads them itself). */
function batchOptions(): { scheduledDelayMillis?: number; maxQueueSize?: number; maxExportBatchSize?: number; exportTimeoutMillis?: number } {
  const n = (name: string) => {
    const v = Number(process.env[name]);
    return process.env[name] !== undefined && Number.isInteger(v) && v > 0 ? v : undefined;
  };
  return {
    scheduledDelayMillis: n('OTEL_BSP_SCHEDULE_DELAY'),
    maxQueueSize: n('OTEL_BSP_MAX_QUEUE_SIZE'),
    maxExportBatchSize: n('OTEL_BSP_MAX_EXPORT_BATCH_SIZE'),
    exportTimeoutMillis: n('OTEL_BSP_EXPORT_TIMEOUT'),
  };
}

function setHeaderAttributes(span: Span, prefix: string, headers: IncomingMessage['headers']): void {
  for (const name in headers) {
    const v = headers[name];
    if (v === undefined) continue;
    const values = REDACTED_HEADERS.has(name) ? ['[redacted]'] : Array.isArray(v) ? v : [v];
    span.setAttribute(prefix + name, values);
  }
}
