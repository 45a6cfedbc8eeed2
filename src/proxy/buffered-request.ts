// A backend call whose body is needed whole (every encoding but no-op), on
// undici's dispatch API: chunks go straight into an array, with no Readable
// stream, async iterator or promise per chunk in between (what request() costs).
// The size limit is enforced as data arrives, and the call is aborted with the
// request's signal. One object per call is the handler and the abort listener.

import type { Dispatcher } from 'undici';
import { abortReason, type CancelSignal } from './abort.ts';
import { bodyTooLarge } from './backend-body.ts';
import type { BackendCall, BufferedResponse, ResponseHeaders } from './types.ts';
import { UpstreamCall } from './upstream-call.ts';

// Kept for the modules that import the type from here.
export type { BufferedResponse } from './types.ts';

export function requestBuffered(d: Dispatcher, opts: BackendCall, signal: CancelSignal, limit: number): Promise<BufferedResponse> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    new BufferedCall(d, opts, signal, limit, resolve, reject).dispatch();
  });
}

/** The dispatch handler and abort listener of one call. */
class BufferedCall extends UpstreamCall {
  #settled = false;
  #status = 0;
  #headers: ResponseHeaders = {};
  readonly #chunks: Buffer[] = [];
  #size = 0;
  readonly #limit: number;
  readonly #resolve: (r: BufferedResponse) => void;
  readonly #reject: (err: unknown) => void;

  constructor(
    d: Dispatcher,
    opts: BackendCall,
    signal: CancelSignal,
    limit: number,
    resolve: (r: BufferedResponse) => void,
    reject: (err: unknown) => void,
  ) {
    super(d, opts, signal);
    this.#limit = limit;
    this.#resolve = resolve;
    this.#reject = reject;
  }

  protected readonly onAbort = (): void => {
    const reason = abortReason(this.signal);
    const c = this.controller;
    if (c && !c.aborted) c.abort(reason);
    this.#finish(reason);
  };

  protected start(c: Dispatcher.DispatchController, status: number, headers: ResponseHeaders): void {
    this.#status = status;
    this.#headers = headers;
    if (Number(headers['content-length']) > this.#limit) c.abort(bodyTooLarge(this.#limit));
  }

  protected data(c: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#size += chunk.length;
    if (this.#size > this.#limit) return c.abort(bodyTooLarge(this.#limit));
    this.#chunks.push(chunk);
  }

  protected end(): void {
    const chunks = this.#chunks;
    const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, this.#size);
    this.#finish(undefined, { status: this.#status, headers: this.#headers, body, url: this.url });
  }

  protected fail(err: Error): void {
    this.#finish(err);
  }

  #finish(err: unknown, value?: BufferedResponse): void {
    if (this.#settled) return;
    this.#settled = true;
    this.detach();
    if (err) this.#reject(err);
    else this.#resolve(value!);
  }
}
