// One origin's connections on Bun. Bun's fetch keeps connections alive in
// its own pool, with no per-origin limit and no way to see or close its
// sockets; Portico caps the calls in flight to an origin at the connection
// limit (max_idle_connections_per_host) instead, so Bun never opens more
// connections than that to it. A call past the limit waits in a FIFO queue
// (until a connection is free or its signal aborts), as in undici's Pool.
// The few calls fetch cannot make go through an undici pool of the same
// origin and limit, opened when first needed (upstream-fetch.ts).

import { abortReason, type CancelSignal } from './abort.ts';
import type { OriginPool, PoolStats } from './upstream.ts';

/** The idle connections Bun's fetch keeps, for all origins together (Bun 1.4; docs/runtimes.md). */
const BUN_IDLE_CONNECTIONS = 64;

export class FetchPool implements OriginPool {
  /** The connection limit. */
  readonly limit: number;
  #busy = 0;
  /**
   * The most calls that were in flight at once: the connections Bun opened
   * for them. An upper bound of what it keeps: Bun keeps at most
   * BUN_IDLE_CONNECTIONS idle, closes idle ones after its keep-alive timeout,
   * and a call aborted mid-answer closes its own.
   */
  #opened = 0;
  readonly #waiting: Waiter[] = [];
  #onIdle: (() => void) | undefined;
  #undici: OriginPool | undefined;

  constructor(connections: number) {
    this.limit = connections;
  }

  get stats(): PoolStats {
    const free = Math.min(this.#opened - this.#busy, BUN_IDLE_CONNECTIONS);
    const s = { connected: this.#busy + free, free, pending: this.#waiting.length };
    if (this.#undici === undefined) return s;
    const u = this.#undici.stats;
    return { connected: s.connected + u.connected, free: s.free + u.free, pending: s.pending + u.pending };
  }

  /** This origin's undici pool, opened by `open` on first use. */
  undici<P extends OriginPool>(open: () => P): P {
    return (this.#undici ??= open()) as P;
  }

  /** Take a connection: undefined when one was free (nothing allocated), else a promise for the next one given back. */
  take(signal: CancelSignal): Promise<void> | undefined {
    if (this.#busy < this.limit) {
      if (++this.#busy > this.#opened) this.#opened = this.#busy;
      return undefined;
    }
    return new Promise((resolve, reject) => {
      const w = new Waiter(this.#waiting, signal, resolve, reject);
      this.#waiting.push(w);
      signal.onAbort(w.onAbort);
    });
  }

  /** Give a connection back: the next waiting call gets it. */
  give(): void {
    const next = this.#waiting.shift();
    if (next) next.go();
    else if (--this.#busy === 0 && this.#onIdle) this.#onIdle();
  }

  /** Resolves once no call is in flight or waiting (Bun closes its idle connections itself). */
  async close(): Promise<void> {
    const own = this.#busy === 0 ? undefined : new Promise<void>((resolve) => (this.#onIdle = resolve));
    await Promise.all([own, this.#undici?.close()]);
  }
}

/** A call waiting for a connection. */
class Waiter {
  readonly #queue: Waiter[];
  readonly #signal: CancelSignal;
  readonly #resolve: () => void;
  readonly #reject: (err: unknown) => void;

  constructor(queue: Waiter[], signal: CancelSignal, resolve: () => void, reject: (err: unknown) => void) {
    this.#queue = queue;
    this.#signal = signal;
    this.#resolve = resolve;
    this.#reject = reject;
  }

  go(): void {
    this.#signal.offAbort(this.onAbort);
    this.#resolve();
  }

  readonly onAbort = (): void => {
    const i = this.#queue.indexOf(this);
    if (i >= 0) this.#queue.splice(i, 1);
    this.#reject(abortReason(this.#signal));
  };
}
