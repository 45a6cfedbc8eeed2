// Checks of `endpoints[]` and their `backend[]`.

import { checkFields, checkValue, expectObject, quoteList, type ObjectRules } from './fields.ts';
import { HOST_EXPECTED, sanitizeHost } from './hosts.ts';
import { isPlainObject, type JsonPath } from './json-path.ts';
import type { IssueCollector } from './issues.ts';
import type { NamespaceScope } from '../namespaces/namespace.ts';
import type { EndpointProxyOptions } from './types.ts';
import { parseNamespaces } from '../namespaces/registry.ts';
import type { ParsedNamespaces } from './validate.ts';
import {
  endpointParams,
  FORBIDDEN_PATH_CHARS,
  JWT_PLACEHOLDER,
  reservedPath,
  routeKey,
  SEQUENTIAL_PLACEHOLDER,
  urlPatternPlaceholders,
} from './routes.ts';
import { BACKEND_ENCODING_NAMES, BACKEND_METHODS, ENDPOINT_METHODS, OUTPUT_ENCODING_NAMES } from './vocabulary.ts';

/** What the endpoint checks need to know about the service level. */
export interface ServiceFacts {
  /** A top-level host list exists for backends without their own. */
  hasHost: boolean;
  healthPath: string;
  /** The top-level output_encoding, or "json". */
  outputEncoding: string;
  /** Parsed service-level namespaces by name. */
  service: ReadonlyMap<string, unknown>;
  /** Where parsed namespaces are recorded for normalize. */
  parsed: ParsedNamespaces;
}

const ENDPOINT_RULES: ObjectRules = {
  endpoint: 'custom',
  method: 'custom',
  backend: 'custom',
  timeout: 'duration',
  cache_ttl: 'duration',
  output_encoding: { kind: 'string', oneOf: OUTPUT_ENCODING_NAMES },
  input_headers: 'string[]',
  input_query_strings: 'string[]',
  concurrent_calls: { kind: 'integer', min: 1 },
  extra_config: 'custom',
};

const BACKEND_RULES: ObjectRules = {
  url_pattern: 'custom',
  host: 'custom',
  method: 'custom',
  encoding: { kind: 'string', oneOf: BACKEND_ENCODING_NAMES },
  target: 'string',
  allow: 'string[]',
  deny: 'string[]',
  mapping: 'custom',
  group: 'string',
  is_collection: 'boolean',
  disable_host_sanitize: 'boolean',
  input_headers: 'string[]',
  input_query_strings: 'string[]',
  sd: { kind: 'string', oneOf: ['static', 'dns', 'dns-shared'] },
  sd_scheme: 'string',
  extra_config: 'custom',
};

export function checkEndpoints(c: IssueCollector, endpoints: unknown, facts: ServiceFacts): void {
  if (!Array.isArray(endpoints)) {
    c.invalid(['endpoints'], 'an array of endpoint objects', endpoints);
    return;
  }
  const routes = new Map<string, { index: number; path: string }>();
  endpoints.forEach((endpoint, i) => {
    const path = ['endpoints', i];
    if (!expectObject(c, endpoint, path, 'an endpoint object {"endpoint": ..., "backend": [...]}')) return;
    const route = checkEndpoint(c, endpoint, path, facts);
    if (!route) return;
    const key = routeKey(route.method, route.path);
    const first = routes.get(key);
    if (first) {
      c.error(
        [...path, 'endpoint'],
        `a method and path no other endpoint uses (parameter names do not make routes different)`,
        `${route.method} ${JSON.stringify(route.path)}, already declared at $.endpoints[${first.index}] as ${JSON.stringify(first.path)}`,
      );
    } else {
      routes.set(key, { index: i, path: route.path });
    }
  });
}

function checkMethod(c: IssueCollector, value: unknown, path: JsonPath, allowed: readonly string[]): boolean {
  if (typeof value === 'string' && allowed.includes(value)) return true;
  const upper = typeof value === 'string' && allowed.includes(value.toUpperCase());
  c.invalid(path, `one of ${quoteList(allowed)}${upper ? ' in upper-case, as KrakenD requires' : ''}`, value);
  return false;
}

/** Returns the route (method and path) when both are usable, for the duplicate check. */
function checkEndpoint(
  c: IssueCollector,
  endpoint: Record<string, unknown>,
  path: JsonPath,
  facts: ServiceFacts,
): { method: string; path: string } | undefined {
  checkFields(c, endpoint, path, ENDPOINT_RULES, 'an endpoint');
  const endpointPath = checkEndpointPath(c, endpoint, path, facts);

  let method: string | undefined = 'GET';
  if ('method' in endpoint) method = checkMethod(c, endpoint.method, [...path, 'method'], ENDPOINT_METHODS) ? (endpoint.method as string) : undefined;

  const output = 'output_encoding' in endpoint ? endpoint.output_encoding : facts.outputEncoding;
  const streamed = output === 'no-op';
  const namespaces = checkNamespaces(c, endpoint, path, 'endpoint', facts, endpointPath, streamed, endpoint);
  const proxy = namespaces.get('proxy') as EndpointProxyOptions | undefined;
  const sequential = proxy?.sequential === true;

  const backendPath = [...path, 'backend'];
  const backends = endpoint.backend;
  if (!('backend' in endpoint)) {
    c.missing(backendPath, 'a list of at least one backend');
  } else if (!Array.isArray(backends)) {
    c.invalid(backendPath, 'a list of at least one backend', backends);
  } else if (backends.length === 0) {
    c.invalid(backendPath, 'at least one backend (an endpoint with no backend has nothing to serve)', backends);
  } else {
    // A traffic split checks its own sides (one backend each under no-op).
    if (streamed && backends.length > 1 && !namespaces.has('portico/traffic-split')) {
      c.error(backendPath, 'exactly one backend, because the output_encoding is "no-op" (the backend response is passed through)', `${backends.length} backends`);
    }
    const params = endpointPath === undefined ? undefined : endpointParams(endpointPath);
    backends.forEach((backend, j) => {
      checkBackend(c, backend, [...backendPath, j], { endpointPath, params, sequential, index: j, facts, streamed, endpoint });
    });
  }
  return endpointPath !== undefined && method !== undefined ? { method, path: endpointPath } : undefined;
}

function checkEndpointPath(c: IssueCollector, endpoint: Record<string, unknown>, path: JsonPath, facts: ServiceFacts): string | undefined {
  const at = [...path, 'endpoint'];
  const value = endpoint.endpoint;
  if (!('endpoint' in endpoint)) {
    c.missing(at, 'the path of the endpoint, such as "/users/{id}"');
    return undefined;
  }
  if (typeof value !== 'string' || !value.startsWith('/')) {
    c.invalid(at, 'a path starting with "/", such as "/users/{id}"', value);
    return undefined;
  }
  if (FORBIDDEN_PATH_CHARS.test(value)) {
    c.invalid(at, 'a path without "?", "&", "%" or "*" (use input_query_strings to forward query strings)', value);
  }
  const reserved = reservedPath(value, facts.healthPath);
  if (reserved) c.invalid(at, `a path outside ${JSON.stringify(reserved)}, which the gateway reserves for a built-in endpoint`, value);
  return value;
}

interface BackendContext {
  endpointPath: string | undefined;
  /** Parameters of the endpoint path; undefined when the path itself is unusable. */
  params: string[] | undefined;
  sequential: boolean;
  index: number;
  facts: ServiceFacts;
  /** The endpoint's output_encoding is "no-op" (its single backend is streamed whatever its encoding says). */
  streamed: boolean;
  /** The endpoint as written. */
  endpoint: Record<string, unknown>;
}

function checkBackend(c: IssueCollector, backend: unknown, path: JsonPath, ctx: BackendContext): void {
  if (!expectObject(c, backend, path, 'a backend object {"url_pattern": ..., "host": [...]}')) return;
  const valid = checkFields(c, backend, path, BACKEND_RULES, 'a backend');

  const urlPath = [...path, 'url_pattern'];
  if (!('url_pattern' in backend)) c.missing(urlPath, 'the path to call on the backend, such as "/users/{id}"');
  else if (typeof backend.url_pattern !== 'string') c.invalid(urlPath, 'a string such as "/users/{id}"', backend.url_pattern);
  else checkPlaceholders(c, backend.url_pattern, urlPath, ctx);

  checkBackendHosts(c, backend, path, ctx.facts.hasHost);
  if ('method' in backend) checkMethod(c, backend.method, [...path, 'method'], BACKEND_METHODS);
  if ('mapping' in backend) checkMapping(c, backend.mapping, [...path, 'mapping']);
  if (valid.has('sd') && backend.sd !== 'static') {
    c.warning([...path, 'sd'], '"static": Portico does not implement DNS SRV discovery and resolves hosts with plain DNS', c.found([...path, 'sd'], backend.sd));
  }
  checkNamespaces(c, backend, path, 'backend', ctx.facts, ctx.endpointPath, ctx.streamed || backend.encoding === 'no-op', ctx.endpoint);
}

/** Parse the extra_config of an endpoint or backend; returns the parsed options by namespace name. */
function checkNamespaces(
  c: IssueCollector,
  owner: Record<string, unknown>,
  path: JsonPath,
  scope: NamespaceScope,
  facts: ServiceFacts,
  endpointPath: string | undefined,
  streamed: boolean,
  endpoint: Record<string, unknown>,
): Map<string, unknown> {
  const byName = new Map<string, unknown>();
  if (!('extra_config' in owner)) return byName;
  const extraPath = [...path, 'extra_config'];
  const extra = owner.extra_config;
  if (!expectObject(c, extra, extraPath, 'an object of namespaces')) return byName;
  const backend = scope === 'backend' ? owner : undefined;
  const uses = parseNamespaces(c, extra, extraPath, { scope, service: facts.service, endpointPath, streamed, backend, endpoint });
  facts.parsed.set(extra, uses);
  for (const u of uses) byName.set(u.name, u.options);
  return byName;
}

function checkPlaceholders(c: IssueCollector, urlPattern: string, path: JsonPath, ctx: BackendContext): void {
  if (ctx.params === undefined || ctx.endpointPath === undefined) return;
  const endpointPath = ctx.endpointPath;
  for (const name of urlPatternPlaceholders(urlPattern)) {
    if (JWT_PLACEHOLDER.test(name)) continue;
    const sequential = SEQUENTIAL_PLACEHOLDER.exec(name);
    if (sequential) {
      if (!ctx.sequential) {
        c.error(path, `{resp${sequential[1]}_...} placeholders only in an endpoint with "extra_config": {"proxy": {"sequential": true}}`, `{${name}} in ${JSON.stringify(endpointPath)}, which is not sequential`);
      } else if (Number(sequential[1]) >= ctx.index) {
        c.error(path, `a {respN_...} placeholder naming an earlier backend (N < ${ctx.index})`, `{${name}} in backend ${ctx.index}`);
      }
      continue;
    }
    if (ctx.params.includes(name)) continue;
    const declared = ctx.params.length > 0 ? ctx.params.map((p) => `{${p}}`).join(', ') : 'none';
    const inside = endpointPath.includes(`{${name}}`)
      ? ' (it is written there, but a {parameter} must fill a whole path segment)'
      : '';
    c.error(
      path,
      `only parameters of the endpoint ${JSON.stringify(endpointPath)} (declared: ${declared}), {JWT.claim} or, when sequential, {respN_field}`,
      `{${name}}, which is not a parameter of endpoint ${JSON.stringify(endpointPath)}${inside}`,
    );
  }
}

export function checkHost(c: IssueCollector, host: unknown, path: JsonPath, disableSanitize: boolean): void {
  if (typeof host !== 'string') {
    c.invalid(path, HOST_EXPECTED, host);
    return;
  }
  const checked = sanitizeHost(host, disableSanitize);
  if (!checked.ok) c.invalid(path, checked.expected, host);
}

function checkBackendHosts(c: IssueCollector, backend: Record<string, unknown>, path: JsonPath, hasServiceHost: boolean): void {
  const hostPath = [...path, 'host'];
  if ('host' in backend) {
    const hosts = backend.host;
    if (!Array.isArray(hosts)) {
      c.invalid(hostPath, 'an array of hosts such as ["http://users-api:8080"]', hosts);
      return;
    }
    hosts.forEach((host, k) => checkHost(c, host, [...hostPath, k], backend.disable_host_sanitize === true));
    if (hosts.length > 0) return;
  }
  if (!hasServiceHost) {
    c.error(
      hostPath,
      'a non-empty host list on the backend, or a top-level "host" list to inherit',
      'host' in backend ? '[] (an empty array) and no top-level "host"' : 'no "host" here and no top-level "host"',
    );
  }
}

function checkMapping(c: IssueCollector, mapping: unknown, path: JsonPath): void {
  if (!isPlainObject(mapping)) {
    c.invalid(path, 'an object renaming fields, such as {"user_name": "name"}', mapping);
    return;
  }
  for (const [from, to] of Object.entries(mapping)) checkValue(c, to, [...path, from], { kind: 'string' });
}
