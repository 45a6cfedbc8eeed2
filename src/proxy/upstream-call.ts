// What every backend call on undici's dispatch API shares: the controller of
// the current hop, the request's signal, and redirects (followed here, in the
// handler, only when a backend answers with one; see redirect.ts). Subclasses
// see one answer, the final one, and hear when the signal aborts.

import type { Dispatcher } from 'undici';
import { abortReason, type CancelSignal } from './abort.ts';
import { redirectTo } from './redirect.ts';
import type { BackendCall, ResponseHeaders } from './types.ts';

export abstract class UpstreamCall implements Dispatcher.DispatchHandler {
  /** The controller of the hop in flight (a redirect starts a new one). */
  protected controller: Dispatcher.DispatchController | undefined;
  protected readonly signal: CancelSignal;
  /** Set while a redirect answer's body is drained; dispatched when it ends. */
  #redirect: BackendCall | undefined;
  #hops = 0;
  #opts: BackendCall;
  readonly #dispatcher: Dispatcher;
  /** The first hop's own Referer (redirects keep it, as Go's client does). */
  readonly #referer: string | undefined;

  constructor(d: Dispatcher, opts: BackendCall, signal: CancelSignal) {
    this.#dispatcher = d;
    this.#opts = opts;
    this.signal = signal;
    const r = opts.headers.referer;
    this.#referer = typeof r === 'string' ? r : undefined;
  }

  /** Make the call (the first hop), listening to the signal until detach(). */
  dispatch(): void {
    this.signal.onAbort(this.onAbort);
    this.#dispatcher.dispatch(this.#opts as Dispatcher.DispatchOptions, this);
  }

  /** The URL of the hop in flight (after redirects, the one that answered). */
  protected get url(): string {
    return this.#opts.origin + this.#opts.path;
  }

  /** Stop listening to the signal (the call settled). */
  protected detach(): void {
    this.signal.offAbort(this.onAbort);
  }

  /** The signal aborted while the call was listening. */
  protected abstract readonly onAbort: () => void;

  /** The final answer's status and headers. */
  protected abstract start(c: Dispatcher.DispatchController, status: number, headers: ResponseHeaders): void;
  protected abstract data(c: Dispatcher.DispatchController, chunk: Buffer): void;
  protected abstract end(): void;
  protected abstract fail(err: Error): void;

  onRequestStart(c: Dispatcher.DispatchController): void {
    this.controller = c;
    // Aborted while a redirect was being followed: stop the next hop at once.
    if (this.signal.aborted) c.abort(abortReason(this.signal));
  }

  onResponseStart(c: Dispatcher.DispatchController, status: number, headers: ResponseHeaders): void {
    this.#redirect = redirectTo(this.#opts, status, headers, this.#hops, this.#referer);
    if (!this.#redirect) this.start(c, status, headers);
  }

  onResponseData(c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.#redirect) this.data(c, chunk);
  }

  onResponseEnd(): void {
    const next = this.#redirect;
    if (!next) return this.end();
    // The redirect answer was read to its end (its connection is reusable): make the next hop.
    this.#redirect = undefined;
    this.#hops++;
    this.#opts = next;
    this.#dispatcher.dispatch(next as Dispatcher.DispatchOptions, this);
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    this.fail(err);
  }
}
