// `security/cors` (service): Cross-Origin Resource Sharing as KrakenD applies
// it (krakend-cors wrapping rs/cors 1.11 around the whole router). A service
// guard, so it runs for every request before routing:
//
// - a preflight (OPTIONS with a non-empty Access-Control-Request-Method) is
//   answered here with `options_success_status` (204), whether it is allowed
//   or not: an allowed one carries the Access-Control-Allow-* headers, a
//   refused one only `Vary`. With `options_passthrough` the headers are set
//   and the request goes on to routing instead;
// - any other request gets `Vary: Origin` and, when its origin and method are
//   allowed, Access-Control-Allow-Origin, -Expose-Headers, -Allow-Credentials.
//   A disallowed origin is not refused: the browser enforces CORS.
//
// Headers are added with addResponseHeader, so every answer the request gets
// (200, 404, a 401 from an auth policy, a 500) carries them.
//
// Everything is decided at compile time: origin lists become a Set plus
// prefix/suffix matchers, header lists a Set, header values are prebuilt
// strings. An actual request costs a Set lookup and a few pushes.

import { checkFields, checkValue, expectObject, type ObjectRules } from '../config/fields.ts';
import { DURATION_EXPECTED, parseDuration } from '../config/duration.ts';
import type { IssueCollector } from '../config/issues.ts';
import type { JsonPath } from '../config/json-path.ts';
import { canonicalHeaderKey, HTTP_TOKEN } from '../proxy/headers.ts';
import type { ProxyRequest, RawHeaders } from '../proxy/types.ts';
import { log } from '../telemetry/log.ts';
import { addResponseHeader, type EarlyAnswer, type Guard, type Namespace } from './namespace.ts';

/** Parsed options: plain data (see Namespace.parse). Lists are already normalized. */
export interface CorsOptions {
  /** `allow_origins` empty, absent or containing "*": every origin, answered with `*`. */
  anyOrigin: boolean;
  /** Exact origins, lower-cased (rs/cors matches origins case-insensitively). */
  origins: string[];
  /** Origins with one `*`: [prefix, suffix], lower-cased. */
  originPatterns: [string, string][];
  /** Allowed methods, matched exactly (case-sensitive); OPTIONS is always allowed. */
  methods: string[];
  /** `allow_headers` empty, absent or containing "*": every requested header. */
  anyHeader: boolean;
  /** Allowed request headers, lower-cased. */
  headers: string[];
  /** Access-Control-Expose-Headers value ('' for none). */
  expose: string;
  credentials: boolean;
  /** Access-Control-Max-Age value, or '' for no header. */
  maxAge: string;
  passthrough: boolean;
  successStatus: number;
  privateNetwork: boolean;
  debug: boolean;
}

const RULES: ObjectRules = {
  allow_origins: 'string[]',
  allow_methods: 'string[]',
  allow_headers: 'string[]',
  expose_headers: 'string[]',
  allow_credentials: 'boolean',
  max_age: 'custom',
  options_passthrough: 'boolean',
  options_success_status: 'custom',
  allow_private_network: 'boolean',
  debug: 'boolean',
};

/** rs/cors's default when allow_methods is empty. */
const DEFAULT_METHODS = ['GET', 'POST', 'HEAD'];
const DEFAULT_SUCCESS_STATUS = 204;
/** Go's time.Duration is an int64 of nanoseconds. */
const MAX_GO_DURATION_MS = 9_223_372_036_854.775;
/** Empty elements tolerated in Access-Control-Request-Headers (as rs/cors). */
const MAX_EMPTY_ELEMENTS = 16;

export const securityCors: Namespace<CorsOptions> = {
  name: 'security/cors',
  // KrakenD documents the namespace at service level only ("Scope: service");
  // at endpoint level the registry refuses it (it would not be enforced there).
  scopes: ['service'],
  // First of all: KrakenD CE wraps the whole router in CORS, so a preflight is
  // answered, and refusals by later policies carry the CORS headers.
  order: 50,
  policy: true,
  parse(raw, path, c) {
    if (!expectObject(c, raw, path, 'an object with CORS options')) return undefined;
    const valid = checkFields(c, raw, path, RULES, 'the "security/cors" namespace');
    const list = (key: string): string[] => (valid.has(key) ? (raw[key] as string[]) : []);

    let maxAge = '';
    if ('max_age' in raw) {
      const ms = goDuration(raw.max_age);
      if (ms === undefined) c.invalid([...path, 'max_age'], `${DURATION_EXPECTED} (Go's limits: at most 2562047h)`, raw.max_age);
      else maxAge = maxAgeHeader(ms);
    }
    let successStatus = DEFAULT_SUCCESS_STATUS;
    if ('options_success_status' in raw) {
      const s = raw.options_success_status;
      const at = [...path, 'options_success_status'];
      if (checkValue(c, s, at, { kind: 'integer' })) {
        // rs/cors reads 0 as "the default".
        if (s !== 0 && ((s as number) < 200 || (s as number) > 599)) c.invalid(at, 'an HTTP status from 200 to 599 (0 means the default, 204)', s);
        else if (s !== 0) successStatus = s as number;
      }
    }

    const credentials = raw.allow_credentials === true;
    const origins = parseOrigins(c, list('allow_origins'), [...path, 'allow_origins'], credentials, [...path, 'allow_credentials']);
    const methods = list('allow_methods');
    methods.forEach((m, i) => {
      if (!HTTP_TOKEN.test(m)) c.warning([...path, 'allow_methods', i], 'an HTTP method such as "GET" or "PUT"', `${JSON.stringify(m)}, which no request method can match`);
      else if (m !== m.toUpperCase()) c.warning([...path, 'allow_methods', i], `an upper-case method such as ${JSON.stringify(m.toUpperCase())} (methods are matched case-sensitively)`, `${JSON.stringify(m)}, which never matches a request`);
    });
    const headers = list('allow_headers');
    headers.forEach((h, i) => {
      if (h !== '*' && !HTTP_TOKEN.test(h)) c.warning([...path, 'allow_headers', i], 'a header name such as "Authorization", or "*"', `${JSON.stringify(h)}, which no request header can match`);
    });
    const expose = list('expose_headers');

    return {
      ...origins,
      methods: methods.length > 0 ? [...methods] : [...DEFAULT_METHODS],
      // krakend-cors turns an empty allow_headers into "*" (all headers), keeping its pre-rs/cors-1.11 behaviour.
      anyHeader: headers.length === 0 || headers.includes('*'),
      headers: headers.includes('*') ? [] : [...new Set(headers.map((h) => h.toLowerCase()))],
      expose: expose.map(canonicalHeaderKey).join(', '),
      credentials,
      maxAge,
      passthrough: raw.options_passthrough === true,
      successStatus,
      privateNetwork: raw.allow_private_network === true,
      debug: raw.debug === true,
    };
  },
  compile(o) {
    return { guard: compileCors(o) };
  },
};

type OriginOptions = Pick<CorsOptions, 'anyOrigin' | 'origins' | 'originPatterns'>;

function parseOrigins(c: IssueCollector, list: string[], path: JsonPath, credentials: boolean, credentialsPath: JsonPath): OriginOptions {
  if (list.length === 0 || list.includes('*')) {
    if (credentials) {
      c.warning(
        credentialsPath,
        'allow_credentials with a list of trusted origins',
        'allow_credentials with every origin allowed: the answer is "Access-Control-Allow-Origin: *" (as in KrakenD), which browsers refuse for credentialed requests, so cookies and Authorization from a browser will not work; list the origins to trust instead',
      );
    }
    return { anyOrigin: true, origins: [], originPatterns: [] };
  }
  const origins: string[] = [];
  const originPatterns: [string, string][] = [];
  list.forEach((entry, i) => {
    const at = [...path, i];
    const origin = entry.toLowerCase();
    const star = origin.indexOf('*');
    if (star < 0) {
      checkExactOrigin(c, origin, entry, at);
      origins.push(origin);
      return;
    }
    const prefix = origin.slice(0, star);
    const suffix = origin.slice(star + 1);
    if (suffix.includes('*')) {
      c.warning(at, 'an origin with at most one "*", such as "https://*.example.com"', `${JSON.stringify(entry)}: only the first "*" is a wildcard, the others must appear literally in the Origin`);
    }
    const open = broadPattern(prefix, suffix);
    if (open) {
      const risk = credentials ? ', and with allow_credentials that origin can read credentialed answers' : '';
      c.warning(at, 'a wildcard that only covers subdomains, such as "https://*.example.com"', `${JSON.stringify(entry)}, which also matches ${JSON.stringify(open)}${risk}`);
    }
    originPatterns.push([prefix, suffix]);
  });
  return { anyOrigin: false, origins: [...new Set(origins)], originPatterns };
}

function checkExactOrigin(c: IssueCollector, origin: string, entry: string, at: JsonPath): void {
  if (origin === 'null') {
    c.warning(at, 'a real origin such as "https://app.example.com"', '"null": sandboxed frames, file: pages and redirected requests all send "Origin: null", so any site can produce it');
    return;
  }
  const m = /^([a-z][a-z0-9+.-]*):\/\/[^/?#]+(.*)$/.exec(origin);
  if (!m) {
    c.warning(at, 'an origin such as "https://app.example.com" (scheme, host and optional port)', `${JSON.stringify(entry)}, which never matches a browser's Origin header`);
  } else if (m[2] !== '') {
    const fixed = entry.slice(0, entry.length - (m[2] as string).length);
    c.warning(at, `an origin without a path (did you mean ${JSON.stringify(fixed)}?)`, `${JSON.stringify(entry)}, which never matches a browser's Origin header`);
  }
}

/**
 * An origin the pattern lets in although it is outside the domain the pattern
 * seems to name, or undefined when the wildcard only covers subdomains (or a
 * port of a fixed host).
 */
function broadPattern(prefix: string, suffix: string): string | undefined {
  if (suffix.startsWith('.') && suffix.length > 1) return undefined; // https://*.example.com
  if (suffix === '' && prefix.endsWith(':') && /:\/\/[^/]+:$/.test(prefix)) return undefined; // http://localhost:*
  if (suffix === '') return `${prefix}evil.example`; // https://* or https://app.*
  return `${prefix}evil${suffix}`; // https://*example.com matches https://evilexample.com
}

/** A Go duration in ms, sign included (Go accepts "-1s"); undefined when Go would reject it. */
function goDuration(value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined;
  const negative = value.startsWith('-');
  const rest = negative ? value.slice(1) : value;
  if (negative && rest.startsWith('+')) return undefined;
  const ms = parseDuration(rest);
  if (ms === undefined || ms > MAX_GO_DURATION_MS) return undefined;
  return negative ? -ms : ms;
}

/** krakend-cors passes whole seconds (truncated); rs/cors sends none for 0 and "0" for a negative value. */
function maxAgeHeader(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  if (seconds > 0) return String(seconds);
  return seconds < 0 ? '0' : '';
}

// ---- the guard ----

function compileCors(o: CorsOptions): Guard {
  const originAllowed = compileOriginMatcher(o);
  const methods = new Set(o.methods);
  const methodAllowed = (m: string): boolean => m === 'OPTIONS' || methods.has(m);
  const headersAllowed = o.anyHeader ? undefined : compileHeaderMatcher(o.headers);
  const preflightVary = o.privateNetwork
    ? 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers, Access-Control-Request-Private-Network'
    : 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers';
  const { anyOrigin, expose, credentials, maxAge, passthrough, successStatus, privateNetwork, debug } = o;
  const trace = debug ? (msg: string, fields: Record<string, unknown>) => log('debug', `CORS: ${msg}`, fields) : undefined;

  function preflight(req: ProxyRequest, requestMethod: string): EarlyAnswer | undefined {
    const h = req.headers;
    const out: RawHeaders = ['Vary', preflightVary];
    const origin = h.origin as string | undefined;
    const requestHeaders = h['access-control-request-headers'] as string | undefined;
    if (origin === undefined || origin === '') trace?.('preflight without Origin: no CORS headers', { path: req.path });
    else if (!originAllowed(origin)) trace?.('preflight from an origin not allowed', { origin, path: req.path });
    else if (!methodAllowed(requestMethod)) trace?.('preflight for a method not allowed', { origin, method: requestMethod });
    else if (requestHeaders !== undefined && headersAllowed !== undefined && !headersAllowed(requestHeaders)) {
      trace?.('preflight for headers not allowed', { origin, headers: requestHeaders.slice(0, 200) });
    } else {
      out.push('Access-Control-Allow-Origin', anyOrigin ? '*' : origin, 'Access-Control-Allow-Methods', requestMethod);
      if (requestHeaders !== undefined && requestHeaders !== '') out.push('Access-Control-Allow-Headers', requestHeaders);
      if (credentials) out.push('Access-Control-Allow-Credentials', 'true');
      if (privateNetwork && h['access-control-request-private-network'] === 'true') out.push('Access-Control-Allow-Private-Network', 'true');
      if (maxAge !== '') out.push('Access-Control-Max-Age', maxAge);
      trace?.('preflight allowed', { origin, method: requestMethod, path: req.path });
    }
    if (!passthrough) return { status: successStatus, headers: out };
    for (let i = 0; i < out.length; i += 2) addResponseHeader(req, out[i] as string, out[i + 1] as string);
    return undefined;
  }

  return (req) => {
    const method = req.method;
    if (method === 'OPTIONS') {
      const requestMethod = req.headers['access-control-request-method'];
      if (typeof requestMethod === 'string' && requestMethod !== '') return preflight(req, requestMethod);
    }
    addResponseHeader(req, 'Vary', 'Origin');
    const origin = req.headers.origin as string | undefined;
    if (origin === undefined || origin === '') return undefined;
    if (!originAllowed(origin)) {
      trace?.('origin not allowed: no CORS headers', { origin, path: req.path });
      return undefined;
    }
    if (!methodAllowed(method)) {
      trace?.('method not allowed: no CORS headers', { origin, method });
      return undefined;
    }
    addResponseHeader(req, 'Access-Control-Allow-Origin', anyOrigin ? '*' : origin);
    if (expose !== '') addResponseHeader(req, 'Access-Control-Expose-Headers', expose);
    if (credentials) addResponseHeader(req, 'Access-Control-Allow-Credentials', 'true');
    return undefined;
  };
}

function compileOriginMatcher(o: OriginOptions): (origin: string) => boolean {
  if (o.anyOrigin) return () => true;
  const exact = new Set(o.origins);
  const patterns = o.originPatterns.map(([prefix, suffix]) => ({ prefix, suffix, min: prefix.length + suffix.length }));
  return (origin) => {
    if (exact.has(origin)) return true;
    const lower = origin.toLowerCase();
    if (lower !== origin && exact.has(lower)) return true;
    // A comma means several Origin headers joined: no browser sends that, and no single origin matches it.
    if (patterns.length === 0 || lower.includes(',')) return false;
    for (const p of patterns) {
      if (lower.length >= p.min && lower.startsWith(p.prefix) && lower.endsWith(p.suffix)) return true;
    }
    return false;
  };
}

/**
 * Access-Control-Request-Headers against the allowed names, case-insensitively.
 * Bounded work whatever the client sends: names longer than the longest allowed
 * one are refused without being copied, the scan stops at the first unknown
 * name, and a list with more names than the set holds (plus a few empty
 * elements) is refused.
 */
function compileHeaderMatcher(allowed: readonly string[]): (value: string) => boolean {
  const set = new Set(allowed);
  const longest = allowed.reduce((n, h) => Math.max(n, h.length), 0);
  const maxElements = set.size + MAX_EMPTY_ELEMENTS;
  return (value) => {
    let elements = 0;
    let start = 0;
    while (start <= value.length) {
      let end = value.indexOf(',', start);
      if (end < 0) end = value.length;
      if (++elements > maxElements) return false;
      let a = start;
      let b = end;
      while (a < b && (value.charCodeAt(a) === 32 || value.charCodeAt(a) === 9)) a++;
      while (b > a && (value.charCodeAt(b - 1) === 32 || value.charCodeAt(b - 1) === 9)) b--;
      if (b > a) {
        if (b - a > longest || !set.has(value.slice(a, b).toLowerCase())) return false;
      }
      start = end + 1;
    }
    return true;
  };
}
