// Upstream connection pools, shared by every Plan a process compiles, so a
// reload keeps the warm keep-alive connections to hosts that still exist.
// Each plan acquires the origins it uses; when a retired plan releases an
// origin no other plan uses, its pool is closed gracefully (running requests
// finish, idle sockets close). Redirects are followed by the calls themselves
// (redirect.ts), through this same router.
//
// undici's Agent keeps its own origin -> pool map with no way to close one
// origin's pool, so a small router dispatcher stands in for it here.

import { Dispatcher, Pool } from 'undici';
import { OTHER_ORIGIN, setUpstreamPoolSource, type UpstreamPoolView } from '../telemetry/metrics.ts';

interface Entry {
  pool: Pool;
  refs: number;
}

export interface UpstreamOptions {
  /** Connections per origin (max_idle_connections_per_host). */
  connectionsPerHost: number;
}

/** Every registry of this process that is not closed, for the upstream pool gauges. */
const live = new Set<UpstreamPools>();
setUpstreamPoolSource(function* () {
  for (const p of live) yield* p.views();
});

export class UpstreamPools {
  /** connectionsPerHost -> origin -> pool: plans with different limits get different pools. */
  readonly #groups = new Map<number, Map<string, Entry>>();
  readonly #dispatchers = new Map<number, Dispatcher>();
  #closed = false;

  constructor() {
    live.add(this);
  }

  /** The dispatcher a plan uses: routes by origin to this registry's pools. */
  dispatcher(opts: UpstreamOptions): Dispatcher {
    let d = this.#dispatchers.get(opts.connectionsPerHost);
    if (!d) {
      const group = this.#group(opts.connectionsPerHost);
      d = new OriginRouter((origin) => this.#pool(group, origin, opts.connectionsPerHost));
      this.#dispatchers.set(opts.connectionsPerHost, d);
    }
    return d;
  }

  acquire(opts: UpstreamOptions, origins: Iterable<string>): void {
    const group = this.#group(opts.connectionsPerHost);
    for (const origin of origins) {
      this.#pool(group, origin, opts.connectionsPerHost);
      group.get(origin)!.refs++;
    }
  }

  /** Give back origins; pools nobody holds any more are closed gracefully. */
  async release(opts: UpstreamOptions, origins: Iterable<string>): Promise<void> {
    const group = this.#group(opts.connectionsPerHost);
    const closing: Promise<void>[] = [];
    for (const origin of origins) {
      const e = group.get(origin);
      if (!e || --e.refs > 0) continue;
      group.delete(origin);
      closing.push(e.pool.close());
    }
    await Promise.all(closing);
  }

  /** Origins with an open pool (for tests and health). */
  origins(): string[] {
    return [...this.#groups.values()].flatMap((g) => [...g.keys()]);
  }

  /** The open pools and their stats (metrics); a pool no plan holds serves redirect targets only. */
  *views(): Iterable<UpstreamPoolView> {
    for (const [limit, group] of this.#groups) {
      for (const [origin, e] of group) yield { origin: e.refs > 0 ? origin : OTHER_ORIGIN, limit, stats: e.pool.stats };
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    live.delete(this);
    const all = [...this.#groups.values()].flatMap((g) => [...g.values()]);
    this.#groups.clear();
    await Promise.all(all.map((e) => e.pool.close()));
  }

  #group(connections: number): Map<string, Entry> {
    let g = this.#groups.get(connections);
    if (!g) this.#groups.set(connections, (g = new Map()));
    return g;
  }

  /** An origin nobody acquired (a redirect target) gets a pool with no references; it lives until close(). */
  #pool(group: Map<string, Entry>, origin: string, connections: number): Pool {
    let e = group.get(origin);
    if (!e) {
      if (this.#closed) throw new Error('upstream pools are closed');
      e = {
        pool: new Pool(origin, {
          connections,
          keepAliveTimeout: 30_000,
          keepAliveMaxTimeout: 90_000,
          // The endpoint deadline aborts calls; these are only a backstop.
          headersTimeout: 300_000,
          bodyTimeout: 300_000,
        }),
        refs: 0,
      };
      group.set(origin, e);
    }
    return e.pool;
  }
}

class OriginRouter extends Dispatcher {
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
}
