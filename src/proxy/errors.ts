// Errors are values with a status, a stable code and headers: every failure
// on the request path is a GatewayError carrying the HTTP status it turns
// into, a code that tests and logs match (never the prose), and the response
// headers it needs (WWW-Authenticate, Retry-After, Vary...). One place
// (server/respond.ts) renders them.

import type { RawHeaders } from './types.ts';

export interface GatewayErrorOptions {
  /** Body to show the client when error messages are enabled (router.return_error_msg). '' keeps it empty always. */
  body?: string;
  /** Content type of `body` when it came from a backend. */
  contentType?: string;
  cause?: unknown;
  /** Stable code, e.g. AUTH_TOKEN_MISSING (default GATEWAY_ERROR). */
  code?: string;
  /** Response headers the error carries (flat list, as writeHead takes them). */
  headers?: RawHeaders;
}

export class GatewayError extends Error {
  readonly status: number;
  readonly code: string;
  /** Body to show the client when error messages are enabled (router.return_error_msg). */
  readonly body: string;
  /** Content type of `body` when it came from a backend. */
  readonly contentType: string | undefined;
  readonly headers: RawHeaders | undefined;

  constructor(status: number, message: string, opts?: GatewayErrorOptions) {
    super(message, opts?.cause === undefined ? undefined : { cause: opts.cause });
    this.status = status;
    this.code = opts?.code ?? 'GATEWAY_ERROR';
    this.body = opts?.body ?? message;
    this.contentType = opts?.contentType;
    this.headers = opts?.headers;
  }
}

/**
 * A policy refused the request (401, 403, 429...): the body is empty whatever
 * router.return_error_msg says (KrakenD answers policy rejections with an
 * empty body); `reason` is logged, never shown. A refusal for which KrakenD
 * shows a text under router.return_error_msg (a JSON schema or CEL rejection)
 * passes it as `body`.
 */
export class PolicyError extends GatewayError {
  /** The namespace that refused. */
  readonly namespace: string;
  constructor(status: number, code: string, namespace: string, reason: string, headers?: RawHeaders, body = '') {
    super(status, reason, { code, headers, body });
    this.namespace = namespace;
  }
}

/**
 * KrakenD's text for a backend's unexpected status: "invalid status code 404
 * [GET /users/{id}]: http://users/users/7" (the backend's method and
 * url_pattern, then the URL that answered).
 */
export function invalidStatusText(status: number, backend: { method: string; urlPattern: string }, url: string): string {
  return `invalid status code ${status} [${backend.method} ${backend.urlPattern}]: ${url}`;
}

/** A backend answered with a status that is not a success for its encoding (text: invalidStatusText). */
export class BackendStatusError extends GatewayError {
  readonly backendStatus: number;
  readonly backendBody: string;
  constructor(backendStatus: number, backendBody: string, backend: { method: string; urlPattern: string }, url: string) {
    super(500, invalidStatusText(backendStatus, backend, url), { code: 'BACKEND_STATUS' });
    this.backendStatus = backendStatus;
    this.backendBody = backendBody;
  }
}

export class TimeoutError extends GatewayError {
  constructor() {
    super(500, 'context deadline exceeded', { code: 'TIMEOUT' });
  }
}

/** The reason a Deadline gives when its timer fires (built only then: an Error captures a stack). */
export const timeoutError = (): TimeoutError => new TimeoutError();

export function asGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new GatewayError(500, message, { cause: err });
}
