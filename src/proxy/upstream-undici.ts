// The upstream client on Node: an undici Pool per origin, and calls made on
// undici's dispatch API by Portico's own handlers (buffered-request.ts,
// streamed-request.ts, redirects in upstream-call.ts). On Bun it makes the
// few calls fetch cannot (upstream-fetch.ts).
//
// undici's Agent keeps its own origin -> pool map with no way to close one
// origin's pool, so a small router dispatcher stands in for it here.

import type { Dispatcher, Pool } from 'undici';
import { requestBuffered } from './buffered-request.ts';
import { requestStreamed } from './streamed-request.ts';
import type { Undici } from './undici-package.ts';
import type { UpstreamClient } from './upstream.ts';

export function undiciClient(undici: Undici): UpstreamClient<Pool> {
  const OriginRouter = originRouter(undici);
  return {
    openPool: (origin, connections) =>
      new undici.Pool(origin, {
        connections,
        keepAliveTimeout: 30_000,
        keepAliveMaxTimeout: 90_000,
        // The endpoint deadline aborts calls; these are only a backstop.
        headersTimeout: 300_000,
        bodyTimeout: 300_000,
      }),
    upstream(poolFor) {
      const router = new OriginRouter(poolFor);
      return {
        buffered: (call, signal, limit) => requestBuffered(router, call, signal, limit),
        streamed: (call, signal) => requestStreamed(router, call, signal),
      };
    },
  };
}

/** A Dispatcher that routes each call to its origin's pool (the package's own Dispatcher is its base). */
const originRouter = (undici: Undici) => class OriginRouter extends undici.Dispatcher {
  readonly #poolFor: (origin: string) => Pool;

  constructor(poolFor: (origin: string) => Pool) {
    super();
    this.#poolFor = poolFor;
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const o = options.origin;
    const origin = typeof o === 'string' ? o : o instanceof URL ? o.origin : String(o);
    return this.#poolFor(origin).dispatch(options, handler);
  }

  // The registry owns the pools; closing a plan's view of them closes nothing.
  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    if (callback) return void queueMicrotask(callback);
    return Promise.resolve();
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(a?: unknown, b?: unknown): Promise<void> | void {
    const callback = typeof a === 'function' ? a : typeof b === 'function' ? b : undefined;
    if (callback) return void queueMicrotask(callback as () => void);
    return Promise.resolve();
  }
};
