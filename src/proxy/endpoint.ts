// An endpoint's backends, composed from its config: the backend calls (each
// wrapped by its backend-level namespaces), then the merge; shadow backends run
// beside it. Endpoint-level namespaces (proxy.static, flatmap, policies) wrap
// the result (plan/compile.ts).

import type { BackendConfig, EndpointConfig } from '../config/types.ts';
import { Deadline } from './abort.ts';
import { compileBackendProxy, type BackendDeps } from './backend.ts';
import { concurrentCalls } from './concurrent.ts';
import { mergeTimeout, parallelMerge, sequentialMerge } from './merge.ts';
import type { Proxy } from './types.ts';
import { compileUrlTemplate } from './url-template.ts';

export interface EndpointDeps extends BackendDeps {
  /** Wraps one backend call with its backend-level namespaces. */
  wrapBackend(ep: EndpointConfig, b: BackendConfig, call: Proxy): Proxy;
}

export function compileEndpointProxy(ep: EndpointConfig, deps: EndpointDeps): Proxy {
  const call = (b: BackendConfig) => deps.wrapBackend(ep, b, compileBackendProxy(ep, b, deps));
  const live = ep.backends.filter((b) => !b.shadow);
  const shadows = ep.backends.filter((b) => b.shadow).map(call);
  const parts = live.map((b) => concurrentCalls(call(b), ep.concurrentCalls));

  let proxy: Proxy;
  if (parts.length === 1) proxy = parts[0];
  else if (ep.proxy.sequential) {
    const placeholders = live.map((b) => [...compileUrlTemplate(b.urlPattern).names]);
    proxy = sequentialMerge(parts, placeholders, mergeTimeout(ep.timeoutMs));
  } else proxy = parallelMerge(parts, mergeTimeout(ep.timeoutMs));

  if (shadows.length) proxy = withShadows(proxy, shadows, ep.timeoutMs);
  return proxy;
}

/** Shadow backends get the same request; their answers and failures never reach the client. */
function withShadows(next: Proxy, shadows: Proxy[], timeoutMs: number): Proxy {
  return (req) => {
    for (const shadow of shadows) {
      const d = new Deadline(undefined, timeoutMs);
      shadow({ ...req, signal: d }).then(
        (r) => { r.passthrough?.discard(); d.dispose(); },
        () => d.dispose(),
      );
    }
    return next(req);
  };
}
