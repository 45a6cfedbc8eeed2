// Errors are values with a status: every failure on the request path is a
// GatewayError carrying the HTTP status and message it turns into. One place
// (server/respond.ts) renders them.

export class GatewayError extends Error {
  readonly status: number;
  /** Body to show the client when error messages are enabled (router.return_error_msg). */
  readonly body: string;
  /** Content type of `body` when it came from a backend. */
  readonly contentType: string | undefined;

  constructor(status: number, message: string, opts?: { body?: string; contentType?: string; cause?: unknown }) {
    super(message, opts?.cause === undefined ? undefined : { cause: opts.cause });
    this.status = status;
    this.body = opts?.body ?? message;
    this.contentType = opts?.contentType;
  }
}

/** A backend answered with a status that is not a success for its encoding. */
export class BackendStatusError extends GatewayError {
  readonly backendStatus: number;
  readonly backendBody: string;
  constructor(backendStatus: number, backendBody: string) {
    super(500, 'invalid status code');
    this.backendStatus = backendStatus;
    this.backendBody = backendBody;
  }
}

export class TimeoutError extends GatewayError {
  constructor() {
    super(500, 'context deadline exceeded');
  }
}

/** The reason a Deadline gives when its timer fires (built only then: an Error captures a stack). */
export const timeoutError = (): TimeoutError => new TimeoutError();

export function asGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new GatewayError(500, message, { cause: err });
}
