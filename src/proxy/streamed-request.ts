// A no-op backend call on undici's dispatch API: the status and headers come
// back first; the body is then written straight into the client response as
// chunks arrive, pausing the upstream read while the client socket is full
// (back-pressure) and aborting it if the client goes away. No Readable stream
// or pipeline sits in between, which is most of what request() costs here.
// One object per call is the dispatch handler, the Passthrough and the abort
// listener at once; redirects are followed by UpstreamCall before any of this.

import type { ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import { abortReason, type CancelSignal } from './abort.ts';
import { isPassedOn } from './headers.ts';
import type { BackendCall, Passthrough, RawHeaders, ResponseHeaders } from './types.ts';
import { UpstreamCall } from './upstream-call.ts';

export function requestStreamed(d: Dispatcher, opts: BackendCall, signal: CancelSignal): Promise<Passthrough> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    new StreamedCall(d, opts, signal, resolve, reject).dispatch();
  });
}

class StreamedCall extends UpstreamCall implements Passthrough {
  status = 0;
  headers: RawHeaders = [];
  #started = false;
  #ended = false;
  #discarded = false;
  #target: ServerResponse | undefined;
  #early: Buffer[] | undefined;
  readonly #resolve: (p: Passthrough) => void;
  readonly #reject: (err: unknown) => void;

  constructor(d: Dispatcher, opts: BackendCall, signal: CancelSignal, resolve: (p: Passthrough) => void, reject: (err: unknown) => void) {
    super(d, opts, signal);
    this.#resolve = resolve;
    this.#reject = reject;
  }

  protected readonly onAbort = (): void => {
    const reason = abortReason(this.signal);
    this.#abortUpstream(reason);
    if (!this.#started) this.#reject(reason);
  };

  // --- the final answer (UpstreamCall)

  protected start(c: Dispatcher.DispatchController, status: number, headers: ResponseHeaders): void {
    this.#started = true;
    this.status = status;
    const out = this.headers;
    for (const name in headers) {
      const v = headers[name];
      if (v !== undefined && isPassedOn(name)) out.push(name, v);
    }
    // Hold the body until the caller attaches a response (or discards it).
    c.pause();
    this.#resolve(this);
  }

  protected data(c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#discarded) return;
    if (this.#target) this.#write(c, chunk);
    else (this.#early ??= []).push(chunk);
  }

  protected end(): void {
    this.#ended = true;
    if (this.#target) {
      this.detach();
      this.#target.end();
    }
  }

  protected fail(err: Error): void {
    this.detach();
    if (!this.#started) this.#reject(err);
    else if (this.#target) this.#target.destroy(err);
  }

  // --- Passthrough

  pipe(res: ServerResponse): void {
    this.#target = res;
    const c = this.controller!;
    if (res.destroyed) {
      // The client left before the answer started: free the upstream connection.
      this.detach();
      this.#abortUpstream('client closed the connection');
      return;
    }
    res.on('close', this.#onClientClose);
    if (this.#early) for (const chunk of this.#early.splice(0)) this.#write(c, chunk);
    if (this.#ended) {
      this.detach();
      res.end();
    } else c.resume();
  }

  discard(): void {
    this.#discarded = true;
    this.detach();
    this.#abortUpstream('response discarded');
  }

  // --- internals

  readonly #onClientClose = (): void => {
    this.#abortUpstream('client closed the connection');
  };

  #write(c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.#target!.write(chunk)) {
      c.pause();
      this.#target!.once('drain', () => c.resume());
    }
  }

  /** `why` is a message or an Error; an Error is built only when there is something to abort (it captures a stack). */
  #abortUpstream(why: string | Error): void {
    const c = this.controller;
    if (!this.#ended && c && !c.aborted) c.abort(typeof why === 'string' ? new Error(why) : why);
  }}
