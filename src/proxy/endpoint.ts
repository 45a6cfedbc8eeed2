// An endpoint's pipeline, built from its config: backend calls, then the merge,
// then endpoint-level flatmap, then static data; shadow backends run beside it.

import type { EndpointConfig, EndpointProxyOptions } from '../config/types.ts';
import { mergeInto } from '../transform/data.ts';
import { compileFlatmap } from '../transform/manipulate.ts';
import { Deadline } from './abort.ts';
import { compileBackendProxy, type BackendDeps } from './backend.ts';
import { concurrentCalls } from './concurrent.ts';
import { mergeTimeout, parallelMerge, sequentialMerge } from './merge.ts';
import type { Proxy, ProxyResponse } from './types.ts';
import { compileUrlTemplate } from './url-template.ts';

export function compileEndpointProxy(ep: EndpointConfig, deps: BackendDeps): Proxy {
  const live = ep.backends.filter((b) => !b.shadow);
  const shadows = ep.backends.filter((b) => b.shadow).map((b) => compileBackendProxy(ep, b, deps));
  const parts = live.map((b) => concurrentCalls(compileBackendProxy(ep, b, deps), ep.concurrentCalls));

  let proxy: Proxy;
  if (parts.length === 1) proxy = parts[0];
  else if (ep.proxy.sequential) {
    const placeholders = live.map((b) => [...compileUrlTemplate(b.urlPattern).names]);
    proxy = sequentialMerge(parts, placeholders, mergeTimeout(ep.timeoutMs));
  } else proxy = parallelMerge(parts, mergeTimeout(ep.timeoutMs));

  if (ep.proxy.flatmapFilter?.length) proxy = withFlatmap(proxy, compileFlatmap(ep.proxy.flatmapFilter));
  if (ep.proxy.static) proxy = withStatic(proxy, ep.proxy.static);
  if (shadows.length) proxy = withShadows(proxy, shadows, ep.timeoutMs);
  return proxy;
}

function withFlatmap(next: Proxy, flatmap: (d: Record<string, unknown>) => Record<string, unknown>): Proxy {
  return async (req) => {
    const r = await next(req);
    return r.passthrough ? r : { ...r, data: flatmap(r.data) };
  };
}

type StaticOptions = NonNullable<EndpointProxyOptions['static']>;

/** proxy.static: merge fixed data into the answer when the strategy matches (lura's semantics). */
function withStatic(next: Proxy, opts: StaticOptions): Proxy {
  const { strategy, data } = opts;
  const matches = (r: ProxyResponse | undefined, err: unknown): boolean => {
    const failed = err !== undefined || (r?.errors?.length ?? 0) > 0;
    switch (strategy) {
      case 'always': return true;
      case 'success': return !failed;
      case 'errored': return failed;
      case 'complete': return err === undefined && r !== undefined && r.complete;
      case 'incomplete': return r === undefined || !r.complete;
    }
  };
  return async (req) => {
    let r: ProxyResponse | undefined;
    let err: unknown;
    try {
      r = await next(req);
    } catch (e) {
      err = e;
    }
    if (!matches(r, err)) {
      if (err !== undefined) throw err;
      return r!;
    }
    // Static values are shared by every request: they are only ever assigned, never mutated.
    const merged = r ? r.data : {};
    mergeInto(merged, data);
    const errors = err !== undefined ? [err as Error] : r?.errors;
    return { data: merged, complete: r ? r.complete : false, ...(errors ? { errors } : {}) };
  };
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
