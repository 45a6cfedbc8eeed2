// What a namespace module is. Each extra_config namespace (`router`,
// `auth/validator`, `security/cors`, ...) is one module implementing
// Namespace: it parses and checks its own fields (one pass, precise issues),
// and compiles its options once per Plan into a guard (runs before the request
// body is read) and/or a middleware around the next pipeline stage. State
// that must outlive a Plan (key sets, buckets, breakers) is kept in the
// PolicyState registry, keyed by the namespace's own options.
//
// Adding a namespace: one file here, one line in registry.ts, its tests, its
// docs section (README "Adding a namespace").

import type { IssueCollector } from '../config/issues.ts';
import type { JsonPath } from '../config/json-path.ts';
import type { BackendConfig, EndpointConfig, ServiceConfig } from '../config/types.ts';
import type { BackendTransport } from '../proxy/backend.ts';
import type { ShadowComparer } from '../proxy/shadow.ts';
import type { Proxy, ProxyRequest, RawHeaders } from '../proxy/types.ts';
import type { StateScope } from './state.ts';

export type NamespaceScope = 'service' | 'endpoint' | 'backend';

/** What parse() may know besides its own value. */
export interface ParseContext {
  readonly scope: NamespaceScope;
  /**
   * Options of the service-level namespaces parsed so far: all of them at
   * endpoint and backend level; at service level, those earlier in the stack
   * order (namespaces are parsed in that order).
   */
  readonly service: ReadonlyMap<string, unknown>;
  /** The endpoint path as written, at endpoint and backend scope. */
  readonly endpointPath?: string;
  /**
   * At endpoint and backend scope: the answer here is a no-op passthrough,
   * streamed untouched (output_encoding or the backend's encoding is "no-op"),
   * so nothing can read or change its body.
   */
  readonly streamed?: boolean;
  /** At backend scope: the backend object as written (a backend kind reads its `host`, `encoding`...). */
  readonly backend?: Readonly<Record<string, unknown>>;
  /** At endpoint and backend scope: the endpoint object as written (portico/traffic-split checks its backends against it). */
  readonly endpoint?: Readonly<Record<string, unknown>>;
}

/** What compile() may use. */
export interface CompileContext {
  readonly scope: NamespaceScope;
  readonly service: ServiceConfig;
  readonly endpoint?: EndpointConfig;
  readonly backend?: BackendConfig;
  /** Long-lived state shared across reloads (see state.ts). */
  readonly state: StateScope;
  /** `portico check` compiles too: then nothing may be fetched or started ahead of a request. */
  readonly checkOnly: boolean;
  /** The client IP of a request (router.forwarded_by_client_ip, trusted_proxies applied). */
  clientIp(req: ProxyRequest): string;
  /** Parsed options of a service-level namespace, when the configuration has it. */
  serviceOptions<O>(ns: Namespace<O>): O | undefined;
}

/**
 * A direct answer from a guard (a CORS preflight, an SSL redirect): the
 * request goes no further. Headers added with addResponseHeader() are sent too.
 */
export interface EarlyAnswer {
  status: number;
  headers?: RawHeaders;
  body?: string;
  contentType?: string;
}

/**
 * Runs before the request body is read. Returns undefined to let the request
 * go on, an EarlyAnswer to answer it now, or throws a GatewayError (with its
 * status, code and headers) to reject it. May be async (a key-set fetch).
 */
export type Guard = (req: ProxyRequest) => EarlyAnswer | undefined | Promise<EarlyAnswer | undefined>;

/** Wraps the next stage of the pipeline (the backends, or one backend call). */
export type Middleware = (next: Proxy) => Proxy;

export interface Compiled {
  guard?: Guard;
  middleware?: Middleware;
}

export interface Namespace<O = unknown> {
  /** The extra_config key, e.g. 'auth/validator'. */
  readonly name: string;
  /** Where the namespace may appear. */
  readonly scopes: readonly NamespaceScope[];
  /**
   * Position in the stack, declared once: lower runs first (guards) and wraps
   * outermost (middlewares). See registry.ts for the ranges.
   */
  readonly order: number;
  /** A security or traffic policy: misplaced or unsupported, it is an error, never ignored. */
  readonly policy: boolean;
  /**
   * Check and normalize in one pass; report every problem to `c`; undefined
   * when unusable. The options must be plain data (structured-cloneable: they
   * travel to worker processes inside the config); compile() builds the rest.
   */
  parse(raw: unknown, at: JsonPath, c: IssueCollector, ctx: ParseContext): O | undefined;
  /** Once per Plan. Namespaces the core reads directly (router, proxy, ...) have none. */
  compile?(options: O, ctx: CompileContext): Compiled | undefined;
  /**
   * Backend namespaces only: the backend is reached by this transport instead of
   * HTTP (a backend has at most one; its hosts get no HTTP connection pool).
   * Once per Plan; connections it keeps belong in ctx.state, and under
   * ctx.checkOnly nothing may be connected.
   */
  transport?(options: O, ctx: CompileContext): BackendTransport;
  /**
   * Shadow backends only: compares this shadow's answers with the live ones
   * (see proxy/shadow.ts). Once per Plan.
   */
  shadowCompare?(options: O, ctx: CompileContext): ShadowComparer;
}

/** A namespace as configured at one place: its name and parsed options (plain data, see parse()). */
export interface NamespaceUse<O = unknown> {
  readonly name: string;
  readonly options: O;
}

/** The parsed options of `ns` in a list of uses, if present. */
export function optionsOf<O>(uses: readonly NamespaceUse[], ns: Namespace<O>): O | undefined {
  for (const u of uses) if (u.name === ns.name) return u.options as O;
  return undefined;
}

/** Add a header to whatever answer this request gets (success, error or early answer). */
export function addResponseHeader(req: ProxyRequest, name: string, value: string): void {
  if (req.responseHeaders) req.responseHeaders.push(name, value);
  else req.responseHeaders = [name, value];
}

/** Add a header to every backend call of this request (lower-case name; it replaces a forwarded one). */
export function addUpstreamHeader(req: ProxyRequest, name: string, value: string): void {
  if (req.upstreamHeaders) req.upstreamHeaders[name] = value;
  else req.upstreamHeaders = { [name]: value };
}
