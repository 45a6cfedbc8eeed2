import type { BackendConfig, EndpointConfig, ServiceConfig } from '../config/types.ts';
import { optionsOf, type CompileContext, type Namespace, type NamespaceScope } from '../namespaces/namespace.ts';
import { namespaceNamed, transportUse } from '../namespaces/registry.ts';
import { compileStack } from '../namespaces/stack.ts';
import { PolicyState, stateKey, type StateScope } from '../namespaces/state.ts';
import { applyTo, modifierResponseHeaders } from '../namespaces/modifier-response-headers.ts';
import { telemetryMetrics } from '../namespaces/telemetry-metrics.ts';
import { telemetryOpentelemetry } from '../namespaces/telemetry-opentelemetry.ts';
import { compileTrafficSplit } from '../namespaces/portico-traffic-split.ts';
import { compileEndpointProxy, type EndpointDeps } from '../proxy/endpoint.ts';
import { splitHost } from '../proxy/backend.ts';
import type { Proxy, ProxyRequest } from '../proxy/types.ts';
import { UpstreamPools } from '../proxy/upstream.ts';
import { compileClientAddressing } from '../server/client-ip.ts';
import { Router } from '../server/router.ts';
import { createAccessLog } from '../telemetry/access-log.ts';
import { compileRenderer } from '../transform/encode.ts';
import { meteredBackend } from '../telemetry/backend-metrics.ts';
import { Tracing } from '../telemetry/tracing.ts';
import { USER_AGENT } from '../version.ts';
import type { CompiledEndpoint, Plan, PlanUsage } from './plan.ts';

export interface CompileOptions {
  /** Where access-log lines go (default stdout). */
  accessLogOut?: NodeJS.WritableStream;
  /** Pools shared with earlier and later plans (reloads); a private registry when absent. */
  pools?: UpstreamPools;
  /** Policy state shared with earlier and later plans (reloads); a private registry when absent. */
  state?: PolicyState;
  /** Compiling only to check the configuration (portico check): policies fetch and start nothing. */
  checkOnly?: boolean;
  /** Finds the module of a parsed namespace; the built-in registry unless given (tests add their own). */
  namespaces?: (name: string) => Namespace;
}

export function compilePlan(config: ServiceConfig, opts: CompileOptions = {}): Plan {
  const ownPools = opts.pools === undefined;
  const pools = opts.pools ?? new UpstreamPools();
  const ownState = opts.state === undefined;
  const state = opts.state ?? new PolicyState();
  const scope = state.scope();
  try {
    return build(config, opts, pools, ownPools, scope, ownState ? state : undefined);
  } catch (err) {
    void scope.release();
    throw err;
  }
}

function build(
  config: ServiceConfig,
  opts: CompileOptions,
  pools: UpstreamPools,
  ownPools: boolean,
  scope: StateScope & { release(): Promise<void> },
  ownState: PolicyState | undefined,
): Plan {
  const poolOptions = { connectionsPerHost: config.maxIdleConnectionsPerHost };
  const upstream = pools.upstream(poolOptions);

  const usage: PlanUsage = { active: 0, onIdle: undefined };
  const addressing = compileClientAddressing(config.router);
  const clientIp = (req: ProxyRequest): string => addressing.clientIp(req.peer, req.headers);
  const context = (scopeName: NamespaceScope, endpoint?: EndpointConfig, backend?: BackendConfig): CompileContext => ({
    scope: scopeName,
    service: config,
    endpoint,
    backend,
    state: scope,
    checkOnly: opts.checkOnly === true,
    clientIp,
    serviceOptions: (ns) => optionsOf(config.namespaces, ns),
  });

  const moduleOf = opts.namespaces ?? namespaceNamed;
  // HTTP pools for the backends reached over HTTP (not those with a transport: AMQP, Lambda, pub/sub).
  const httpBackends = config.endpoints.flatMap((ep) => ep.backends.filter((b) => transportUse(b.namespaces, moduleOf) === undefined));
  const origins = new Set(httpBackends.flatMap((b) => b.host.map((h) => splitHost(h).origin)));
  const transport = (ep: EndpointConfig, b: BackendConfig) => {
    const use = transportUse(b.namespaces, moduleOf);
    return use === undefined ? undefined : moduleOf(use.name).transport!(use.options, context('backend', ep, b));
  };
  const service = compileStack(config.namespaces, context('service'), moduleOf);
  const responseRules = optionsOf(config.namespaces, modifierResponseHeaders);
  const otel = optionsOf(config.namespaces, telemetryOpentelemetry);
  const metrics = optionsOf(config.namespaces, telemetryMetrics);
  const requestMetrics = (otel?.requestMetrics ?? true) && (metrics?.requestMetrics ?? true);
  const backendMetrics = (otel?.backendMetrics ?? true) && (metrics?.backendMetrics ?? true);
  // One exporter per distinct tracing configuration, kept across reloads that leave it unchanged.
  const t = otel?.tracing;
  const tracing = t === undefined || opts.checkOnly ? undefined : scope.get(stateKey(telemetryOpentelemetry.name, 'tracing', t), () => new Tracing(t), (x) => x.close());
  const wrapBackend = (ep: EndpointConfig, b: BackendConfig, call: Proxy): Proxy => {
    let wrapped = b.namespaces.length === 0 ? call : (compileStack(b.namespaces, context('backend', ep, b), moduleOf).middleware?.(call) ?? call);
    // Outermost: the metrics and the span see what the endpoint sees (an open breaker, a limited call).
    if (backendMetrics) wrapped = meteredBackend(wrapped, ep.endpoint, b.urlPattern);
    return tracing === undefined ? wrapped : tracing.backend(wrapped, ep.endpoint, b.method, b.urlPattern);
  };
  const splitTraffic: EndpointDeps['splitTraffic'] = (ep, live, compose) => compileTrafficSplit(ep, live, compose, context('endpoint', ep));
  // portico/shadow-compare on a shadow backend: its comparer (proxy/shadow.ts).
  const shadowComparer: EndpointDeps['shadowComparer'] = (ep, b) => {
    const use = b.namespaces.find((u) => moduleOf(u.name).shadowCompare !== undefined);
    return use === undefined ? undefined : moduleOf(use.name).shadowCompare!(use.options, context('backend', ep, b));
  };
  const deps = { upstream, maxBackendBodyBytes: config.maxBackendBodyBytes, userAgent: USER_AGENT, wrapBackend, transport, splitTraffic, shadowComparer };
  const router = new Router<CompiledEndpoint>({
    redirectTrailingSlash: !config.router.disableRedirectTrailingSlash,
    redirectFixedPath: !config.router.disableRedirectFixedPath,
  });
  for (const ep of config.endpoints) {
    const stack = compileStack(ep.namespaces, context('endpoint', ep), moduleOf);
    let proxy = compileEndpointProxy(ep, deps);
    if (stack.middleware) proxy = stack.middleware(proxy);
    if (service.middleware) proxy = service.middleware(proxy);
    const compiled: CompiledEndpoint = {
      config: ep,
      guard: stack.guard,
      proxy,
      render: ep.outputEncoding === 'no-op' ? undefined : compileRenderer(ep.outputEncoding),
      cacheControl: ep.cacheTtlSeconds > 0 ? `public, max-age=${Math.floor(ep.cacheTtlSeconds)}` : undefined,
      timeoutMs: ep.timeoutMs,
      returnErrorMsg: config.router.returnErrorMsg,
    };
    router.add(ep.endpoint, ep.method, compiled);
  }
  // Acquired last: a compile that throws must not leave pool references behind.
  pools.acquire(poolOptions, origins);
  return {
    config,
    router,
    guard: service.guard,
    addressing,
    upstream,
    usage,
    requestMetrics,
    tracing,
    onResponse: responseRules === undefined ? undefined : (res) => applyTo(res, responseRules),
    accessLog: createAccessLog({ disabled: config.router.disableAccessLog, skipPaths: config.router.loggerSkipPaths, out: opts.accessLogOut }),
    async close(graceMs = 30_000) {
      if (usage.active > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, graceMs);
          usage.onIdle = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      await Promise.all([pools.release(poolOptions, origins), scope.release()]);
      if (ownPools) await pools.close();
      if (ownState) await ownState.close();
    },
  };
}
