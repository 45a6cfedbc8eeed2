// An OpenAPI document -> a KrakenD v3 configuration that fronts the API it
// describes: one endpoint per path and method, each proxying to the same path
// on the API's server. Answers pass through untouched (output_encoding and
// encoding "no-op": the API's statuses, headers and bodies, whatever they
// are), the parameters the spec declares are forwarded (query parameters as
// input_query_strings, header and cookie parameters and the credentials of
// its security schemes as input_headers), and, with `validate`, JSON request
// bodies are checked against the spec's schema (validation/json-schema).
//
// Paths: a `{param}` filling a segment maps as it is (names KrakenD's router
// refuses are renamed); a segment that mixes text and parameters
// (`/files/{name}.{ext}`) becomes one parameter for the whole segment, passed
// to the backend as the client sent it. Operations Portico cannot route
// (HEAD, OPTIONS, TRACE; a path with "?", "&", "%" or "*"; a reserved path;
// a route already taken) are left out with a warning naming them.

import type { IssueCollector } from '../config/issues.ts';
import { formatPath, type JsonPath } from '../config/json-path.ts';
import { DEFAULT_HEALTH_PATH, FORBIDDEN_PATH_CHARS, reservedPath, routeKey } from '../config/routes.ts';
import { requestBodySchema } from './schema.ts';
import { RefResolver, type OpenApiDocument, type Operation, type ServerUrl } from './spec.ts';

export interface ImportOptions {
  /** The backend base URL (origin and optional base path); default: each operation's first server. */
  host?: string;
  /** Validate JSON request bodies against the spec's schemas. */
  validate?: boolean;
  /** The spec's file name, for the generated comment. */
  source?: string;
}

const ROUTED_METHODS = new Set(['get', 'post', 'put', 'patch', 'delete']);
const JSON_MEDIA_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;.*)?$/i;
/** What KrakenD's router accepts as a parameter name (config/routes.ts). */
const PARAM_NAME = /^[a-zA-Z\-_0-9]+$/;

/** A base URL split as KrakenD wants it: the host (scheme, name, port) and the path to put before every url_pattern. */
interface Base {
  host: string;
  path: string;
}

/** Builds the configuration; problems go to `c` (errors at the spec's places, or at $ for --host). Undefined when `c` has errors (the document's included). */
export function importOpenApi(doc: OpenApiDocument, opts: ImportOptions, c: IssueCollector): Record<string, unknown> | undefined {
  const refs = new RefResolver(doc.root, c);
  let flag: ServerBase | undefined;
  if (opts.host !== undefined) {
    const b = splitServerUrl(opts.host);
    if (typeof b === 'string' || b.host === undefined) {
      c.error([], `a --host such as "http://127.0.0.1:8000" or "https://api.example.com/v1": ${typeof b === 'string' ? b : 'a relative URL names no host'}`, JSON.stringify(opts.host));
    } else flag = b;
  }
  // --host replaces the servers' host, and their base path when it has one.
  const combine = (server: ServerBase | undefined): Base | undefined => {
    const host = flag?.host ?? server?.host;
    return host === undefined ? undefined : { host, path: flag?.path || server?.path || '' };
  };
  // Each server is read once; one that names no host (and no --host) is reported once, by the first operation that needs it.
  const bases = new Map<ServerUrl, Base | undefined>();
  const baseOf = (server: ServerUrl | undefined): Base | undefined => {
    if (!server) return combine(undefined);
    if (!bases.has(server)) {
      const b = splitServerUrl(server.url);
      if (typeof b === 'string') c.error(server.at, `a server URL such as "https://api.example.com/v1" (${b})`, JSON.stringify(server.url));
      else if (combine(b) === undefined) c.error(server.at, 'a server URL that names a host, such as "https://api.example.com/v1", or --host URL', JSON.stringify(server.url));
      bases.set(server, typeof b === 'string' ? undefined : combine(b));
    }
    return bases.get(server);
  };
  const rootServer = doc.servers[0];
  const rootParsed = rootServer ? splitServerUrl(rootServer.url) : undefined;
  const rootBase = typeof rootParsed === 'string' ? undefined : combine(rootParsed);

  const endpoints: Record<string, unknown>[] = [];
  const routes = new Map<string, JsonPath>();
  const notValidated: string[] = [];
  for (const op of doc.operations) {
    const where = `${op.method.toUpperCase()} ${op.path}`;
    if (!ROUTED_METHODS.has(op.method)) {
      c.warning(op.at, 'GET, POST, PUT, PATCH or DELETE (the methods an endpoint serves)', `${op.method.toUpperCase()}: ${where} is left out`);
      continue;
    }
    const path = convertPath(op, c);
    if (path === undefined) continue;
    const method = op.method.toUpperCase();
    const route = routeKey(method, path.endpoint);
    const taken = routes.get(route);
    if (taken) {
      c.warning(op.at, 'a route no other operation takes (parameter names do not make routes different)', `${where}, the same route as ${formatPath(taken)}: left out`);
      continue;
    }
    routes.set(route, op.at);

    const endpoint: Record<string, unknown> = {};
    const comment = [op.operationId, op.summary].filter(Boolean).join(': ');
    if (comment) endpoint['@comment'] = comment;
    endpoint.endpoint = path.endpoint;
    endpoint.method = method;
    endpoint.output_encoding = 'no-op';
    const query = unique(op.parameters.filter((p) => p.in === 'query').map((p) => p.name));
    for (const cr of op.credentials) if (cr.in === 'query') query.push(cr.name);
    const headers = op.parameters.filter((p) => p.in === 'header').map((p) => p.name);
    if (op.parameters.some((p) => p.in === 'cookie')) headers.push('Cookie');
    for (const cr of op.credentials) headers.push(cr.in === 'cookie' ? 'Cookie' : cr.in === 'header' ? cr.name : '');
    // Listing headers replaces the default (Content-Type only): keep Content-Type for a body.
    if (headers.some(Boolean) && op.body) headers.unshift('Content-Type');
    const headerList = uniqueHeaders(headers.filter(Boolean));
    if (headerList.length) endpoint.input_headers = headerList;
    if (query.length) endpoint.input_query_strings = unique(query);

    if (opts.validate && op.body) {
      const json = op.body.content.find((m) => JSON_MEDIA_TYPE.test(m.mediaType) && m.schema !== undefined);
      if (!json) {
        c.warning(op.body.at, 'an application/json request body with a schema, for --validate', `${where}: ${op.body.content.map((m) => m.mediaType).join(', ') || 'no media type'}; not validated`);
      } else if (!op.body.required) {
        notValidated.push(where);
      } else {
        const schema = requestBodySchema(json.schema, json.at, doc.version, refs, c);
        if (schema !== undefined) endpoint.extra_config = { 'validation/json-schema': schema };
      }
    }
    const server = op.servers[0];
    const base = baseOf(server);
    if (base === undefined) {
      if (!server) c.error(op.at, 'a backend host: --host URL, or "servers" in the document', `no server for ${where}`);
      continue;
    }
    const backend: Record<string, unknown> = { url_pattern: joinPath(base.path, path.backend), encoding: 'no-op' };
    if (base.host !== rootBase?.host) backend.host = [base.host];
    endpoint.backend = [backend];
    endpoints.push(endpoint);
  }
  if (notValidated.length) {
    c.warning(['paths'], '"required": true on request bodies to validate (validation/json-schema refuses a request without a body, and these bodies are optional)', `not validated: ${notValidated.join(', ')}`);
  }
  if (c.errors.length > 0) return undefined;
  if (endpoints.length === 0) {
    c.error(['paths'], 'at least one operation Portico can serve', 'none (every operation was left out, or the document has none)');
    return undefined;
  }
  const config: Record<string, unknown> = {
    '@comment': `Generated by portico import openapi${opts.source ? ` from ${opts.source}` : ''}: ${doc.title} ${doc.apiVersion}`.trimEnd(),
    version: 3,
  };
  if (doc.title) config.name = doc.title;
  if (rootBase) config.host = [rootBase.host];
  config.endpoints = endpoints;
  return config;
}

/** The endpoint path and the backend path of an operation, or undefined (with a warning) when Portico cannot route it. */
function convertPath(op: Operation, c: IssueCollector): { endpoint: string; backend: string } | undefined {
  const where = `${op.method.toUpperCase()} ${op.path}`;
  if (FORBIDDEN_PATH_CHARS.test(op.path.replace(/\{[^{}]*\}/g, ''))) {
    c.warning(['paths', op.path], 'a path without "?", "&", "%" or "*" (KrakenD endpoints cannot have them)', `${where}: left out`);
    return undefined;
  }
  const used = new Set<string>();
  const segments: string[] = [];
  for (const seg of op.path.split('/')) {
    if (!seg.includes('{') && !seg.includes('}')) {
      segments.push(seg);
      continue;
    }
    const whole = /^\{([^{}]+)\}$/.exec(seg);
    const names = [...seg.matchAll(/\{([^{}]*)\}/g)].map((m) => m[1] as string);
    if (!whole) {
      if (names.length === 0 || names.includes('') || /[{}]/.test(seg.replace(/\{[^{}]*\}/g, ''))) {
        c.warning(['paths', op.path], 'a path whose braces enclose parameter names', `${where}: segment ${JSON.stringify(seg)}; left out`);
        return undefined;
      }
      c.warning(
        ['paths', op.path],
        'parameters that fill a whole path segment (the only kind KrakenD routes)',
        `${where}: segment ${JSON.stringify(seg)} is routed as one parameter, so it matches any value of that segment; the backend gets it as sent`,
      );
    }
    segments.push(`{${paramName(names.join('_'), used)}}`);
  }
  const endpoint = segments.join('/') || '/';
  const reserved = reservedPath(endpoint, DEFAULT_HEALTH_PATH);
  if (reserved) {
    c.warning(['paths', op.path], `a path outside ${reserved}, which the gateway reserves`, `${where}: left out`);
    return undefined;
  }
  return { endpoint, backend: endpoint };
}

/** A parameter name KrakenD's router takes, unique in its path. */
function paramName(raw: string, used: Set<string>): string {
  let name = PARAM_NAME.test(raw) ? raw : raw.replace(/[^a-zA-Z\-_0-9]/g, '_') || 'param';
  for (let n = 2; used.has(name); n++) name = `${name.replace(/_\d+$/, '')}_${n}`;
  used.add(name);
  return name;
}

/** What a server URL (or --host) gives a backend: the host (scheme, name, port), if it names one, and a base path. */
interface ServerBase {
  host?: string;
  path: string;
}

/** "https://api.example.com:8443/v1/" -> host "https://api.example.com:8443", path "/v1"; "/v1" -> path "/v1"; a reason string when unusable. */
export function splitServerUrl(url: string): ServerBase | string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    // Relative to where the document is served: a base path only.
    if (url === '' || url.startsWith('/') || url.startsWith('.')) {
      if (/[?#]/.test(url)) return 'a query string or fragment has no place in a server URL';
      return { path: url.replace(/^\.+/, '').replace(/\/+$/, '') };
    }
    url = `http://${url}`; // "api.example.com:8080", as KrakenD reads hosts
  }
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'not a URL';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return `the scheme ${u.protocol.slice(0, -1)} is not http or https`;
  if (u.hostname === '') return 'no host name';
  if (u.search !== '' || u.hash !== '') return 'a query string or fragment has no place in a server URL';
  if (u.username !== '' || u.password !== '') return 'credentials have no place in a server URL';
  return { host: `${u.protocol}//${u.host}`, path: u.pathname.replace(/\/+$/, '') };
}

function joinPath(base: string, path: string): string {
  return base !== '' && path === '/' ? base : base + path;
}

function unique(list: string[]): string[] {
  return [...new Set(list)];
}

/** Header names are case-insensitive: the first spelling of each is kept. */
function uniqueHeaders(list: string[]): string[] {
  const seen = new Set<string>();
  return list.filter((h) => {
    const k = h.toLowerCase();
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
