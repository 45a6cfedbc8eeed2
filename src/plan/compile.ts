import type { ServiceConfig } from '../config/types.ts';
import { compileEndpointProxy } from '../proxy/endpoint.ts';
import { createUpstream } from '../proxy/upstream.ts';
import { compileClientAddressing } from '../server/client-ip.ts';
import { Router } from '../server/router.ts';
import { createAccessLog } from '../telemetry/access-log.ts';
import { compileRenderer } from '../transform/encode.ts';
import { USER_AGENT } from '../version.ts';
import type { CompiledEndpoint, Plan } from './plan.ts';

export interface CompileOptions {
  /** Where access-log lines go (default stdout). */
  accessLogOut?: NodeJS.WritableStream;
}

export function compilePlan(config: ServiceConfig, opts: CompileOptions = {}): Plan {
  const upstream = createUpstream({ connectionsPerHost: config.maxIdleConnectionsPerHost });
  const deps = { upstream, maxBackendBodyBytes: config.maxBackendBodyBytes, userAgent: USER_AGENT };
  const router = new Router<CompiledEndpoint>({
    redirectTrailingSlash: !config.router.disableRedirectTrailingSlash,
    redirectFixedPath: !config.router.disableRedirectFixedPath,
  });
  for (const ep of config.endpoints) {
    const compiled: CompiledEndpoint = {
      config: ep,
      proxy: compileEndpointProxy(ep, deps),
      render: ep.outputEncoding === 'no-op' ? undefined : compileRenderer(ep.outputEncoding),
      cacheControl: ep.cacheTtlSeconds > 0 ? `public, max-age=${Math.floor(ep.cacheTtlSeconds)}` : undefined,
      timeoutMs: ep.timeoutMs,
      returnErrorMsg: config.router.returnErrorMsg,
    };
    router.add(ep.endpoint, ep.method, compiled);
  }
  return {
    config,
    router,
    addressing: compileClientAddressing(config.router),
    upstream,
    accessLog: createAccessLog({ disabled: config.router.disableAccessLog, skipPaths: config.router.loggerSkipPaths, out: opts.accessLogOut }),
    close: () => upstream.close(),
  };
}
