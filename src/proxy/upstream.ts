// The upstream half of the runtime seam. The data plane calls backends
// through an Upstream; each runtime has its own client behind it, chosen once
// below: undici's dispatch API on Node (upstream-undici.ts), fetch on Bun
// (upstream-fetch.ts). Both follow redirects with Portico's rules
// (redirect.ts), leave Content-Encoding alone, enforce the body limit while
// reading, stop at the request's CancelSignal and hold at most
// max_idle_connections_per_host connections per origin.
//
// The per-origin pools are shared by every Plan a process compiles, so a
// reload keeps the warm keep-alive connections to hosts that still exist.
// Each plan acquires the origins it uses; when a retired plan releases an
// origin no other plan uses, its pool is closed gracefully (running requests
// finish). Redirect targets get a pool too, through the same registry.

import { OTHER_ORIGIN, setUpstreamPoolSource, type UpstreamPoolView } from '../telemetry/metrics.ts';
import type { CancelSignal } from './abort.ts';
import type { BackendCall, BufferedResponse, Passthrough } from './types.ts';
import { loadUndici } from './undici-package.ts';

/** How a plan calls its backends. */
export interface Upstream {
  /** A call whose answer is read whole; more than `limit` body bytes fail it (BACKEND_BODY_TOO_LARGE). */
  buffered(call: BackendCall, signal: CancelSignal, limit: number): Promise<BufferedResponse>;
  /** A no-op call: status and headers first, then the body streamed into the client response with back-pressure. */
  streamed(call: BackendCall, signal: CancelSignal): Promise<Passthrough>;
}

/** Open sockets, sockets with no request on them, requests waiting for a socket. */
export interface PoolStats {
  connected: number;
  free: number;
  pending: number;
}

/** One origin's keep-alive connections. */
export interface OriginPool {
  readonly stats: PoolStats;
  /** Let running and queued requests finish, then let go of the connections. */
  close(): Promise<void>;
}

/** What a runtime provides: pools per origin, and calls routed to them by origin. */
export interface UpstreamClient<P extends OriginPool = OriginPool> {
  openPool(origin: string, connections: number): P;
  upstream(poolFor: (origin: string) => P): Upstream;
}

/** The runtime's client, chosen once: fetch on Bun (it has no undici dispatch API), undici on Node. */
const runtimeClient: UpstreamClient =
  process.versions.bun !== undefined
    ? (await import('./upstream-fetch.ts')).fetchClient
    : (await import('./upstream-undici.ts')).undiciClient(await loadUndici());

interface Entry {
  pool: OriginPool;
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
  readonly #upstreams = new Map<number, Upstream>();
  readonly #client: UpstreamClient;
  #closed = false;

  constructor(client: UpstreamClient = runtimeClient) {
    this.#client = client;
    live.add(this);
  }

  /** The calls of a plan: routed by origin to this registry's pools. */
  upstream(opts: UpstreamOptions): Upstream {
    let u = this.#upstreams.get(opts.connectionsPerHost);
    if (!u) {
      const group = this.#group(opts.connectionsPerHost);
      u = this.#client.upstream((origin) => this.#pool(group, origin, opts.connectionsPerHost));
      this.#upstreams.set(opts.connectionsPerHost, u);
    }
    return u;
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
  #pool(group: Map<string, Entry>, origin: string, connections: number): OriginPool {
    let e = group.get(origin);
    if (!e) {
      if (this.#closed) throw new Error('upstream pools are closed');
      e = { pool: this.#client.openPool(origin, connections), refs: 0 };
      group.set(origin, e);
    }
    return e.pool;
  }
}
