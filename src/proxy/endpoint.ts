// An endpoint's backends, composed from its config: the backend calls (each
// wrapped by its backend-level namespaces), then the merge; shadow backends run
// beside it. Endpoint-level namespaces (proxy.static, flatmap, policies) wrap
// the result (plan/compile.ts).

import type { BackendConfig, EndpointConfig } from '../config/types.ts';
import { compileBackendProxy, type BackendDeps } from './backend.ts';
import { concurrentCalls } from './concurrent.ts';
import { mergeTimeout, parallelMerge, sequentialMerge } from './merge.ts';
import { shadowCall, withShadows, type ShadowComparer } from './shadow.ts';
import type { Proxy } from './types.ts';
import { compileUrlTemplate } from './url-template.ts';

export interface EndpointDeps extends BackendDeps {
  /** Wraps one backend call with its backend-level namespaces. */
  wrapBackend(ep: EndpointConfig, b: BackendConfig, call: Proxy): Proxy;
  /**
   * Picks one of several sets of the live backends per request (portico/traffic-split),
   * each built by `compose` as an endpoint's backends are; undefined when the endpoint has one set.
   */
  splitTraffic?(ep: EndpointConfig, live: BackendConfig[], compose: (backends: BackendConfig[]) => Proxy): Proxy | undefined;
  /** The comparer of a shadow backend with portico/shadow-compare, if it has one. */
  shadowComparer?(ep: EndpointConfig, b: BackendConfig): ShadowComparer | undefined;
}

export function compileEndpointProxy(ep: EndpointConfig, deps: EndpointDeps): Proxy {
  const call = (b: BackendConfig, d: BackendDeps = deps) => deps.wrapBackend(ep, b, compileBackendProxy(ep, b, d));
  const live = ep.backends.filter((b) => !b.shadow);
  const shadows = ep.backends.filter((b) => b.shadow).map((b) => shadowCall(deps.shadowComparer?.(ep, b), deps, (d) => call(b, d)));
  // A compared shadow needs the live answer's status and headers (known when one backend answers).
  const compared = shadows.some((s) => s.comparer !== undefined);
  const liveDeps = compared ? { ...deps, withMeta: true } : deps;
  const compose = (backends: BackendConfig[]): Proxy => {
    const parts = backends.map((b) => concurrentCalls(call(b, liveDeps), ep.concurrentCalls));
    if (parts.length === 1) return parts[0];
    if (ep.proxy.sequential) {
      const placeholders = backends.map((b) => [...compileUrlTemplate(b.urlPattern).names]);
      return sequentialMerge(parts, placeholders, mergeTimeout(ep.timeoutMs));
    }
    return parallelMerge(parts, mergeTimeout(ep.timeoutMs));
  };

  let proxy = deps.splitTraffic?.(ep, live, compose) ?? compose(live);

  // The status and headers asked for the comparison only are taken off again (live backends with namespaces have them anyway).
  if (shadows.length) proxy = withShadows(proxy, shadows, ep.timeoutMs, compared && live.every((b) => b.namespaces.length === 0));
  return proxy;
}
