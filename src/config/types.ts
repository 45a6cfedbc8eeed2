// The typed, validated, defaulted form of a KrakenD v3 configuration.
// `config/` produces it; `plan/` compiles it. Durations are milliseconds, every
// default is already applied, and every `extra_config` namespace Portico
// implements is parsed by its module (src/namespaces) into `namespaces`; the
// ones the core reads directly (router, proxy, backend/http, portico/server)
// are also copied into typed fields. `extraConfig` keeps what was written.

import type { MartianModifier } from '../namespaces/modifier-martian.ts';
import type { NamespaceUse } from '../namespaces/namespace.ts';

export type Encoding = 'json' | 'safejson' | 'string' | 'xml' | 'no-op' | 'yaml' | 'rss';
export type OutputEncoding = 'json' | 'json-collection' | 'string' | 'xml' | 'yaml' | 'negotiate' | 'no-op';
export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'HEAD' | 'OPTIONS';

export interface ServiceConfig {
  version: 3;
  name?: string;
  port: number;
  /** Address to listen on; undefined means every interface. */
  listenIp?: string;
  timeoutMs: number;
  cacheTtlSeconds: number;
  host: string[];
  outputEncoding: OutputEncoding;
  endpoints: EndpointConfig[];
  /** Server timeouts in ms; 0 means unlimited (except readHeaderTimeoutMs, which always has a safe value). */
  readTimeoutMs: number;
  writeTimeoutMs: number;
  idleTimeoutMs: number;
  readHeaderTimeoutMs: number;
  maxIdleConnectionsPerHost: number;
  /** Request bodies larger than this get 413 (portico/server.max_body_bytes, default 10 MiB). */
  maxBodyBytes: number;
  /** Backend bodies larger than this are a backend error (portico/server.max_backend_body_bytes, default 64 MiB). */
  maxBackendBodyBytes: number;
  tls?: TlsConfig;
  debugEndpoint: boolean;
  echoEndpoint: boolean;
  router: RouterOptions;
  /** Service-level namespaces Portico implements, parsed, in stack order. */
  namespaces: NamespaceUse[];
  /** Every service-level namespace as written, including the ones parsed above. */
  extraConfig: Record<string, unknown>;
}

export interface TlsConfig {
  publicKey: string;
  privateKey: string;
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  maxVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** Every certificate/key pair (tls.public_key/private_key first, then tls.keys[]); publicKey/privateKey are the first. */
  keyPairs: Array<{ publicKey: string; privateKey: string }>;
  /** Extra CA files (tls.ca_certs) used to verify client certificates when requireClientCert is set. */
  caCerts: string[];
  /**
   * tls.enable_mtls: reject clients without a valid certificate. As in KrakenD, the
   * trusted CAs are the system's (unless disableSystemCaPool), caCerts, and publicKey itself.
   */
  requireClientCert: boolean;
  /** tls.disable_system_ca_pool */
  disableSystemCaPool: boolean;
  /** Go/IANA cipher suite ids and curve ids as written (tls.cipher_suites, tls.curve_preferences); undefined = defaults. */
  cipherSuites?: number[];
  curvePreferences?: number[];
}

export interface RouterOptions {
  returnErrorMsg: boolean;
  healthPath: string;
  disableHealth: boolean;
  /** Custom JSON bodies for 404 and 405. */
  errorBody?: { notFound?: unknown; methodNotAllowed?: unknown };
  autoOptions: boolean;
  removeExtraSlash: boolean;
  disableRedirectTrailingSlash: boolean;
  disableRedirectFixedPath: boolean;
  forwardedByClientIp: boolean;
  remoteIpHeaders: string[];
  trustedProxies: string[];
  disableAccessLog: boolean;
  loggerSkipPaths: string[];
}

export interface EndpointConfig {
  /** The path as written, e.g. /users/{id}. */
  endpoint: string;
  method: HttpMethod;
  backends: BackendConfig[];
  timeoutMs: number;
  cacheTtlSeconds: number;
  outputEncoding: OutputEncoding;
  /** Header names as written; ['*'] means all. Default ['Content-Type']. */
  inputHeaders: string[];
  /** Query parameter names; ['*'] means all. Default []. */
  inputQueryStrings: string[];
  concurrentCalls: number;
  proxy: EndpointProxyOptions;
  /** Endpoint-level namespaces, parsed, in stack order. */
  namespaces: NamespaceUse[];
  extraConfig: Record<string, unknown>;
}

export interface EndpointProxyOptions {
  sequential: boolean;
  static?: { strategy: 'always' | 'success' | 'errored' | 'complete' | 'incomplete'; data: Record<string, unknown> };
  /** Endpoint-level proxy.flatmap_filter: applied to the merged response. */
  flatmapFilter?: FlatmapOperation[];
}

export interface BackendConfig {
  /** Normalized base URLs (scheme added, trailing slash removed unless disableHostSanitize). */
  host: string[];
  urlPattern: string;
  method: HttpMethod;
  encoding: Encoding;
  target?: string;
  allow: string[];
  deny: string[];
  mapping: Record<string, string>;
  group?: string;
  isCollection: boolean;
  disableHostSanitize: boolean;
  /** Further filters; undefined means no further filtering. */
  inputHeaders?: string[];
  inputQueryStrings?: string[];
  flatmapFilter?: FlatmapOperation[];
  shadow: boolean;
  /** backend/http */
  returnErrorDetails?: string;
  returnErrorCode: boolean;
  /** backend/graphql: the backend is called with a GraphQL request built from these. */
  graphql?: GraphqlOptions;
  /** modifier/martian: changes to the backend call and its answer, at HTTP level. */
  martian?: MartianModifier;
  /** Backend-level namespaces, parsed, in stack order. */
  namespaces: NamespaceUse[];
  extraConfig: Record<string, unknown>;
}

/** backend/graphql, parsed (namespaces/backend-graphql.ts). */
export interface GraphqlOptions {
  type: 'query' | 'mutation';
  method: 'GET' | 'POST';
  query: string;
  operationName: string | undefined;
  /** As configured; "{param}" string values are replaced per request (see placeholders). */
  variables: Record<string, unknown>;
  /** [variable, endpoint parameter] for the "{param}" values. */
  placeholders: [string, string][];
}

export interface FlatmapOperation {
  type: 'move' | 'del' | 'append';
  args: string[];
}

/** One problem found in a configuration file. */
export interface ConfigIssue {
  severity: 'error' | 'warning';
  /** The file name as given (or a label such as "<control-plane>"). */
  file: string;
  /** JSON path, e.g. $.endpoints[2].backend[0].url_pattern */
  path: string;
  /** 1-based position of the offending value in the file, when known. */
  line?: number;
  column?: number;
  expected: string;
  found: string;
}

export interface LoadResult {
  /** Present only when there are no errors. */
  config?: ServiceConfig;
  errors: ConfigIssue[];
  warnings: ConfigIssue[];
  /** The parsed document without comment keys and with environment overrides applied (absent when unparsable). */
  raw?: unknown;
  /** The parsed document without comment keys, before environment overrides: what snapshots hash and persist. */
  document?: unknown;
}
