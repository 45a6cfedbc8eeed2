// A Plan is everything the data plane needs to serve one configuration,
// decided once at load time. It is immutable: a new config means a new Plan.

import type { ServerResponse } from 'node:http';
import type { EndpointConfig, ServiceConfig } from '../config/types.ts';
import type { Renderer } from '../transform/encode.ts';
import type { Guard } from '../namespaces/namespace.ts';
import type { Proxy } from '../proxy/types.ts';
import type { Upstream } from '../proxy/upstream.ts';
import type { ClientAddressing } from '../server/client-ip.ts';
import type { AccessLog } from '../telemetry/access-log.ts';
import type { Tracing } from '../telemetry/tracing.ts';
import type { Router } from '../server/router.ts';

export interface CompiledEndpoint {
  readonly config: EndpointConfig;
  /** The endpoint's policies that run before its body is read (auth, ...). */
  readonly guard: Guard | undefined;
  /** The backends, composed, wrapped by the endpoint's and the service's middlewares. */
  readonly proxy: Proxy;
  /** Undefined for no-op endpoints, which stream the backend answer. */
  readonly render: Renderer | undefined;
  /** "public, max-age=N" when cache_ttl > 0. */
  readonly cacheControl: string | undefined;
  readonly timeoutMs: number;
  /** router.return_error_msg: show error text to clients. */
  readonly returnErrorMsg: boolean;
}

export interface Plan {
  readonly config: ServiceConfig;
  readonly router: Router<CompiledEndpoint>;
  /** Service-level policies (CORS, security headers, bot detection): run for every request, before routing. */
  readonly guard: Guard | undefined;
  readonly addressing: ClientAddressing;
  readonly upstream: Upstream;
  /** Requests currently running on this plan; a retired plan waits for zero before releasing its pools. */
  readonly usage: PlanUsage;
  /** Undefined when router.disable_access_log is set. */
  readonly accessLog: AccessLog | undefined;
  /** Request metrics (counts, latency, in flight) are collected; telemetry/metrics or telemetry/opentelemetry may turn them off. */
  readonly requestMetrics: boolean;
  /** Called with every response before anything is written (modifier/response-headers); undefined when nothing needs it. */
  readonly onResponse: ((res: ServerResponse) => void) | undefined;
  /** Spans per request and backend call (telemetry/opentelemetry with an OTLP exporter); undefined when off. */
  readonly tracing: Tracing | undefined;
  /** Release this plan's upstream pools once no request runs on it (bounded by `graceMs`). */
  close(graceMs?: number): Promise<void>;
}

export interface PlanUsage {
  active: number;
  /** Set by close(): called when `active` drops to zero. */
  onIdle: (() => void) | undefined;
}
