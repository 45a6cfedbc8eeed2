// Long-poll waiters of GET /v1/watch: each waits for a version newer than the
// one it has, up to a hold time. A waiter is registered with the store's
// change notifications *before* the newest version is read, so a version
// published in between is never missed. close() answers every held waiter
// (with "nothing newer") for a clean shutdown.

import type { ConfigEnvelope } from './protocol.ts';
import type { ConfigStore } from './store.ts';

export type WatchOutcome =
  | { kind: 'newer'; envelope: ConfigEnvelope }
  /** Nothing newer within the hold time (or the control plane is stopping, or the client left). */
  | { kind: 'none' }
  /** `after` is ahead of the newest version (0: nothing published). */
  | { kind: 'ahead'; latest: number };

interface Waiter {
  after: number;
  settle(outcome: WatchOutcome): void;
}

export class WatchHub {
  #store: ConfigStore;
  #waiters = new Set<Waiter>();
  #closed = false;
  #unsubscribe: () => void;

  constructor(store: ConfigStore) {
    this.#store = store;
    this.#unsubscribe = store.subscribe((e) => {
      for (const w of [...this.#waiters]) if (e.version > w.after) w.settle({ kind: 'newer', envelope: e });
    });
  }

  get held(): number {
    return this.#waiters.size;
  }

  /** Throws when the store cannot be read. */
  async wait(after: number, holdMs: number, signal?: AbortSignal): Promise<WatchOutcome> {
    if (this.#closed) return { kind: 'none' };
    const { promise, resolve } = Promise.withResolvers<WatchOutcome>();
    let timer: NodeJS.Timeout | undefined;
    const onAbort = () => waiter.settle({ kind: 'none' });
    const waiter: Waiter = {
      after,
      settle: (outcome) => {
        if (!this.#waiters.delete(waiter)) return;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        resolve(outcome);
      },
    };
    this.#waiters.add(waiter);
    let latest: ConfigEnvelope | undefined;
    try {
      latest = await this.#store.latest();
    } catch (err) {
      waiter.settle({ kind: 'none' });
      throw err;
    }
    const latestVersion = latest?.version ?? 0;
    if (latest && latestVersion > after) waiter.settle({ kind: 'newer', envelope: latest });
    else if (after > latestVersion) waiter.settle({ kind: 'ahead', latest: latestVersion });
    else if (signal?.aborted) waiter.settle({ kind: 'none' });
    else if (this.#waiters.has(waiter)) {
      timer = setTimeout(() => waiter.settle({ kind: 'none' }), holdMs);
      signal?.addEventListener('abort', onAbort, { once: true });
    }
    return promise;
  }

  /** Answer every held waiter with "nothing newer" and refuse to hold new ones. */
  close(): void {
    this.#closed = true;
    this.#unsubscribe();
    for (const w of [...this.#waiters]) w.settle({ kind: 'none' });
  }
}
