// Builds the typed ServiceConfig from a raw configuration that passed
// validation: defaults applied, values inherited (service -> endpoint ->
// backend), durations in milliseconds, hosts sanitized.

import { backendGraphql } from '../namespaces/backend-graphql.ts';
import { backendHttp } from '../namespaces/backend-http.ts';
import { modifierMartian } from '../namespaces/modifier-martian.ts';
import { optionsOf } from '../namespaces/namespace.ts';
import { porticoServer } from '../namespaces/portico-server.ts';
import { proxy, type BackendProxyOptions } from '../namespaces/proxy.ts';
import { DEFAULT_ROUTER, router } from '../namespaces/router.ts';
import * as D from './defaults.ts';
import { sanitizeHost } from './hosts.ts';
import { isPlainObject } from './json-path.ts';
import { bool, int, ms, obj, seconds, str, strings, type Raw } from './read.ts';
import { cleanPath } from './routes.ts';
import type { BackendConfig, EndpointConfig, EndpointProxyOptions, HttpMethod, ServiceConfig, TlsConfig } from './types.ts';
import type { ParsedNamespaces } from './validate.ts';
import { TLS_VERSIONS } from './validate-tls.ts';
import { toEncoding, toOutputEncoding } from './vocabulary.ts';

function sanitizeHosts(hosts: string[], disableSanitize: boolean): string[] {
  return hosts.map((h) => {
    const checked = sanitizeHost(h, disableSanitize);
    return checked.ok ? checked.host : h;
  });
}

export function normalizeConfig(raw: Raw, parsed: ParsedNamespaces): ServiceConfig {
  const extra = obj(raw.extra_config);
  const namespaces = parsed.get(extra) ?? [];
  const server = optionsOf(namespaces, porticoServer);
  const service: Omit<ServiceConfig, 'endpoints'> = {
    version: 3,
    name: str(raw.name),
    port: int(raw.port) || D.DEFAULT_PORT,
    listenIp: str(raw.listen_ip) || undefined,
    timeoutMs: ms(raw.timeout) || D.DEFAULT_TIMEOUT_MS,
    cacheTtlSeconds: seconds(raw.cache_ttl) || D.DEFAULT_CACHE_TTL_SECONDS,
    host: sanitizeHosts(strings(raw.host) ?? [], false),
    outputEncoding: toOutputEncoding(str(raw.output_encoding) ?? D.DEFAULT_OUTPUT_ENCODING),
    readTimeoutMs: ms(raw.read_timeout) || D.UNLIMITED_MS,
    writeTimeoutMs: ms(raw.write_timeout) || D.UNLIMITED_MS,
    idleTimeoutMs: ms(raw.idle_timeout) || D.UNLIMITED_MS,
    readHeaderTimeoutMs: ms(raw.read_header_timeout) || D.DEFAULT_READ_HEADER_TIMEOUT_MS,
    maxIdleConnectionsPerHost: int(raw.max_idle_connections_per_host) || D.DEFAULT_MAX_IDLE_CONNECTIONS_PER_HOST,
    maxBodyBytes: server?.maxBodyBytes ?? D.DEFAULT_MAX_BODY_BYTES,
    maxBackendBodyBytes: server?.maxBackendBodyBytes ?? D.DEFAULT_MAX_BACKEND_BODY_BYTES,
    tls: normalizeTls(raw.tls),
    debugEndpoint: bool(raw.debug_endpoint),
    echoEndpoint: bool(raw.echo_endpoint),
    router: optionsOf(namespaces, router) ?? DEFAULT_ROUTER,
    namespaces,
    extraConfig: extra,
  };
  const endpoints = (Array.isArray(raw.endpoints) ? raw.endpoints : []).map((e) => normalizeEndpoint(obj(e), service, parsed));
  return { ...service, endpoints };
}

function minOf(a: 'TLSv1.2' | 'TLSv1.3', b: 'TLSv1.2' | 'TLSv1.3' | undefined): 'TLSv1.2' | 'TLSv1.3' {
  return b !== undefined && b < a ? b : a;
}

function normalizeTls(value: unknown): TlsConfig | undefined {
  if (!isPlainObject(value) || value.disabled === true) return undefined;
  const pairs: TlsConfig['keyPairs'] = [];
  const legacyPublic = str(value.public_key);
  const legacyPrivate = str(value.private_key);
  if (legacyPublic !== undefined && legacyPrivate !== undefined) pairs.push({ publicKey: legacyPublic, privateKey: legacyPrivate });
  for (const pair of Array.isArray(value.keys) ? value.keys : []) {
    const p = obj(pair);
    pairs.push({ publicKey: str(p.public_key) ?? '', privateKey: str(p.private_key) ?? '' });
  }
  const first = pairs[0] ?? { publicKey: '', privateKey: '' };
  const tls: TlsConfig = {
    publicKey: first.publicKey,
    privateKey: first.privateKey,
    keyPairs: pairs,
    // A max_version written alone below the default min pulls the min down with it,
    // rather than producing a server no client can reach.
    minVersion: TLS_VERSIONS[str(value.min_version) ?? ''] ?? minOf(D.DEFAULT_TLS_VERSION, TLS_VERSIONS[str(value.max_version) ?? '']),
    maxVersion: TLS_VERSIONS[str(value.max_version) ?? ''] ?? D.DEFAULT_TLS_VERSION,
    caCerts: strings(value.ca_certs) ?? [],
    requireClientCert: bool(value.enable_mtls),
    disableSystemCaPool: bool(value.disable_system_ca_pool),
  };
  if (Array.isArray(value.cipher_suites) && value.cipher_suites.length > 0) tls.cipherSuites = value.cipher_suites as number[];
  if (Array.isArray(value.curve_preferences) && value.curve_preferences.length > 0) tls.curvePreferences = value.curve_preferences as number[];
  return tls;
}

function normalizeEndpoint(e: Raw, service: Omit<ServiceConfig, 'endpoints'>, parsed: ParsedNamespaces): EndpointConfig {
  const extra = obj(e.extra_config);
  const namespaces = parsed.get(extra) ?? [];
  const method = (str(e.method) ?? D.DEFAULT_METHOD) as HttpMethod;
  const outputEncoding = e.output_encoding === undefined ? service.outputEncoding : toOutputEncoding(str(e.output_encoding) ?? '');
  const inputHeaders = strings(e.input_headers);
  const endpoint: Omit<EndpointConfig, 'backends'> = {
    endpoint: str(e.endpoint) ?? '/',
    method,
    // KrakenD: a zero endpoint timeout or cache_ttl means "use the service's"
    timeoutMs: ms(e.timeout) || service.timeoutMs,
    cacheTtlSeconds: seconds(e.cache_ttl) || service.cacheTtlSeconds,
    outputEncoding,
    // KrakenD: an empty input_headers list is the default, not "no headers"
    inputHeaders: inputHeaders && inputHeaders.length > 0 ? inputHeaders : [...D.DEFAULT_INPUT_HEADERS],
    inputQueryStrings: strings(e.input_query_strings) ?? [],
    concurrentCalls: int(e.concurrent_calls) ?? D.DEFAULT_CONCURRENT_CALLS,
    proxy: (optionsOf(namespaces, proxy) as EndpointProxyOptions | undefined) ?? { sequential: false },
    namespaces,
    extraConfig: extra,
  };
  const backends = (Array.isArray(e.backend) ? e.backend : []).map((b) => normalizeBackend(obj(b), endpoint, service.host, parsed));
  return { ...endpoint, backends };
}

/** A further per-backend filter; KrakenD treats an empty list as "no further filtering". */
function furtherFilter(value: unknown): string[] | undefined {
  const list = strings(value);
  return list && list.length > 0 ? list : undefined;
}

function normalizeBackend(b: Raw, endpoint: Omit<EndpointConfig, 'backends'>, serviceHosts: string[], parsed: ParsedNamespaces): BackendConfig {
  const extra = obj(b.extra_config);
  const namespaces = parsed.get(extra) ?? [];
  const options = optionsOf(namespaces, proxy) as BackendProxyOptions | undefined;
  const http = optionsOf(namespaces, backendHttp);
  const disableHostSanitize = bool(b.disable_host_sanitize);
  const ownHosts = strings(b.host) ?? [];
  const backend: BackendConfig = {
    host: ownHosts.length > 0 ? sanitizeHosts(ownHosts, disableHostSanitize) : [...serviceHosts],
    urlPattern: cleanPath(str(b.url_pattern) ?? ''),
    method: (str(b.method) ?? endpoint.method) as HttpMethod,
    // KrakenD forces no-op decoding under a no-op endpoint: the body is passed through
    encoding: endpoint.outputEncoding === 'no-op' ? 'no-op' : toEncoding(str(b.encoding) ?? D.DEFAULT_BACKEND_ENCODING),
    target: str(b.target) || undefined,
    allow: strings(b.allow) ?? [],
    deny: strings(b.deny) ?? [],
    mapping: Object.fromEntries(Object.entries(obj(b.mapping)).filter((kv): kv is [string, string] => typeof kv[1] === 'string')),
    group: str(b.group) || undefined,
    isCollection: bool(b.is_collection),
    disableHostSanitize,
    inputHeaders: furtherFilter(b.input_headers),
    inputQueryStrings: furtherFilter(b.input_query_strings),
    flatmapFilter: options?.flatmapFilter,
    shadow: options?.shadow ?? false,
    returnErrorDetails: http?.returnErrorDetails,
    returnErrorCode: http?.returnErrorCode ?? false,
    graphql: optionsOf(namespaces, backendGraphql),
    martian: optionsOf(namespaces, modifierMartian),
    namespaces,
    extraConfig: extra,
  };
  return backend;
}
