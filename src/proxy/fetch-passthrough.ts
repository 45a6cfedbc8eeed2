// A no-op answer on Bun (upstream-fetch.ts): the status and the backend's
// end-to-end headers come first; the body is read only once a client response
// takes it, one chunk at a time, waiting for 'drain' whenever the response
// is full (back-pressure), and the call is aborted if the client goes away.
// Its connection is given back to the pool when the body ends or is dropped.

import type { ServerResponse } from 'node:http';
import type { FetchPool } from './fetch-pool.ts';
import { isPassedOn } from './headers.ts';
import type { Passthrough, RawHeaders } from './types.ts';

export class FetchPassthrough implements Passthrough {
  readonly status: number;
  readonly headers: RawHeaders = [];
  readonly #res: Response;
  readonly #pool: FetchPool;
  readonly #abort: AbortController;
  readonly #detach: () => void;
  #done = false;

  constructor(res: Response, pool: FetchPool, abort: AbortController, detach: () => void) {
    this.status = res.status;
    for (const [name, value] of res.headers) if (isPassedOn(name)) this.headers.push(name, value);
    this.#res = res;
    this.#pool = pool;
    this.#abort = abort;
    this.#detach = detach;
  }

  pipe(res: ServerResponse): void {
    if (res.destroyed) return this.#drop('client closed the connection');
    void this.#pump(res);
  }

  discard(): void {
    this.#drop('response discarded');
  }

  async #pump(res: ServerResponse): Promise<void> {
    const body = this.#res.body;
    const onClose = () => {
      if (!this.#done) this.#abort.abort(new Error('client closed the connection'));
    };
    res.on('close', onClose);
    try {
      if (body !== null) {
        const reader = body.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          if (!res.write(value)) await drained(res);
        }
      }
      this.#finish();
      res.end();
    } catch (err) {
      this.#finish();
      res.destroy(err as Error);
    } finally {
      res.off('close', onClose);
    }
  }

  /** Stop reading: the connection is closed, not reused. */
  #drop(why: string): void {
    if (this.#done) return;
    this.#abort.abort(new Error(why));
    this.#finish();
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    this.#detach();
    this.#pool.give();
  }
}

/** Resolves when the response can take more (or is gone). */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const go = () => {
      res.off('drain', go);
      res.off('close', go);
      resolve();
    };
    res.on('drain', go);
    res.on('close', go);
  });
}
