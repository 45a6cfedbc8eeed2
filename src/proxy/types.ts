import type { ServerResponse } from 'node:http';
import type { CallTrace, RequestTrace } from '../telemetry/tracing.ts';
import type { CancelSignal } from './abort.ts';

/** A decoded backend body, or the merged body of an endpoint. */
export type Data = Record<string, unknown>;

/** What every stage of an endpoint pipeline receives. Built once per client request. */
export interface ProxyRequest {
  method: string;
  /** The request path as the client sent it (percent-encoded, no query), extra slashes collapsed when router.remove_extra_slash. */
  path: string;
  /** Decoded endpoint parameters by name as written in the endpoint path. */
  params: Record<string, string>;
  /** The raw query string without '?', or '' when none. */
  rawQuery: string;
  /** Query parameters parsed once, lazily, from rawQuery. */
  query: Map<string, string[]> | undefined;
  /** Lower-cased header names, as node:http gives them. */
  headers: Record<string, string | string[] | undefined>;
  /** Buffered client body (bounded by the body limit), or undefined when there is none. */
  body: Buffer | undefined;
  /** The X-Forwarded-For value to send upstream. */
  forwardedFor: string;
  /** The Host the client asked for. */
  host: string;
  /** X-Request-Id: the client's when it sent a usable one, else generated; sent to backends, answered and logged. */
  requestId: string;
  /** The socket's remote address (see CompileContext.clientIp for the client IP). */
  peer: string;
  /** The client connection is TLS. */
  secure: boolean;
  /** Verified token claims (auth/validator), for {JWT.claim} placeholders and later policies. */
  claims: Record<string, unknown> | undefined;
  /** Headers policies add to whatever answer the client gets (flat list). */
  responseHeaders: RawHeaders | undefined;
  /** Headers policies add to every backend call (lower-case names; they replace forwarded ones). */
  upstreamHeaders: Record<string, string> | undefined;
  /** Aborted when the endpoint timeout fires or the client goes away. */
  signal: CancelSignal;
  /** Values from earlier sequential backends and other placeholders, by placeholder name. */
  extraParams?: Record<string, string>;
  /** The request's trace context, when tracing is on and the path is traced. */
  trace?: RequestTrace;
  /** Set on a backend call's own copy of the request when its call is traced: what the call reports to its span. */
  callTrace?: CallTrace;
  /** Set by a backend middleware that rewrites the call (modifier/lua-backend): runs just before it is sent, and may change it. */
  prepareCall?: (call: BackendCall) => Promise<void> | void;
}

/** A backend call about to be sent (see ProxyRequest.prepareCall). */
export interface BackendCall {
  origin: string;
  /** Path and query. */
  path: string;
  method: string;
  /** Lower-case names. */
  headers: Record<string, string | string[]>;
  body: Buffer | undefined;
}

/** What a pipeline stage answers. Failures are thrown as GatewayError. */
export interface ProxyResponse {
  data: Data;
  complete: boolean;
  /** Set only for no-op responses, which are streamed untouched. */
  passthrough?: Passthrough;
  /** Errors that made the response partial (logged, never shown unless configured). */
  errors?: Error[];
  /**
   * What the backend answered, for backend middlewares (qos/http-cache): set by a
   * successful buffered backend call only when its backend has namespaces.
   */
  meta?: BackendAnswer;
}

/** The status and headers of a backend answer, and its decoded body size. */
export interface BackendAnswer {
  status: number;
  headers: ResponseHeaders;
  /** Bytes of the body after content decoding (before JSON/XML decoding). */
  bodyBytes: number;
}

/** A backend's whole answer (every encoding but no-op). */
export interface BufferedResponse {
  status: number;
  headers: ResponseHeaders;
  body: Buffer;
  /** The URL that answered (the last one when redirects were followed). */
  url: string;
}

/** Response headers with lower-case names; a repeated header is an array. */
export type ResponseHeaders = Record<string, string | string[] | undefined>;

/** Header names and values in one flat list: [name, value, name, value, ...], as writeHead() takes them. */
export type RawHeaders = (string | string[])[];

export interface Passthrough {
  status: number;
  /** The backend's end-to-end headers (hop-by-hop ones removed, Content-Length kept). */
  headers: RawHeaders;
  /** Stream the body into the client response (once). */
  pipe(res: ServerResponse): void;
  /** Drop the body and free the upstream connection (shadow calls, concurrent losers). */
  discard(): void;
}

export type Proxy = (req: ProxyRequest) => Promise<ProxyResponse>;
