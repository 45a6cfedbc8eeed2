import type { ServiceConfig } from '../config/types.ts';
import { compileEndpointProxy } from '../proxy/endpoint.ts';
import { splitHost } from '../proxy/backend.ts';
import { UpstreamPools } from '../proxy/upstream.ts';
import { compileClientAddressing } from '../server/client-ip.ts';
import { Router } from '../server/router.ts';
import { createAccessLog } from '../telemetry/access-log.ts';
import { compileRenderer } from '../transform/encode.ts';
import { USER_AGENT } from '../version.ts';
import type { CompiledEndpoint, Plan, PlanUsage } from './plan.ts';

export interface CompileOptions {
  /** Where access-log lines go (default stdout). */
  accessLogOut?: NodeJS.WritableStream;
  /** Pools shared with earlier and later plans (reloads); a private registry when absent. */
  pools?: UpstreamPools;
}

export function compilePlan(config: ServiceConfig, opts: CompileOptions = {}): Plan {
  const ownPools = opts.pools === undefined;
  const pools = opts.pools ?? new UpstreamPools();
  const poolOptions = { connectionsPerHost: config.maxIdleConnectionsPerHost };
  const upstream = pools.dispatcher(poolOptions);
  const origins = new Set(config.endpoints.flatMap((ep) => ep.backends.flatMap((b) => b.host.map((h) => splitHost(h).origin))));
  const usage: PlanUsage = { active: 0, onIdle: undefined };
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
  // Acquired last: a compile that throws must not leave pool references behind.
  pools.acquire(poolOptions, origins);
  return {
    config,
    router,
    addressing: compileClientAddressing(config.router),
    upstream,
    usage,
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
      await pools.release(poolOptions, origins);
      if (ownPools) await pools.close();
    },
  };
}
