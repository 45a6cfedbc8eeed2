// `security/http` (service): KrakenD's HTTP security options
// (krakend-httpsecure, which runs unrolled/secure). For every request, in
// unrolled/secure's order: the host (Host, or the first non-empty
// `host_proxy_headers` header) must be in `allowed_hosts`; a request that is
// not TLS (the connection, or an `ssl_proxy_headers` match) is redirected to
// https when `ssl_redirect` is set; then the security headers, prebuilt here,
// are added to whatever answer the request gets. A refused or redirected
// request gets none of them, as with unrolled/secure.

import { randomBytes } from 'node:crypto';
import { checkFields, expectObject, type ObjectRules } from '../config/fields.ts';
import type { IssueCollector } from '../config/issues.ts';
import type { JsonPath } from '../config/json-path.ts';
import { bool, int, obj, str, strings } from '../config/read.ts';
import { translateRe2, type JsPattern } from '../config/re2.ts';
import { PolicyError } from '../proxy/errors.ts';
import { HTTP_TOKEN } from '../proxy/headers.ts';
import { movedPermanentlyHtml } from '../proxy/redirect.ts';
import type { ProxyRequest } from '../proxy/types.ts';
import { addResponseHeader, type EarlyAnswer, type Guard, type Namespace } from './namespace.ts';

const NAME = 'security/http';

export interface SecurityHttpOptions {
  /** Exact hosts, lower-cased (compared case-insensitively, port included). */
  allowedHosts: string[];
  /** allowed_hosts_are_regex: each host as an anchored pattern, translated from RE2. */
  allowedHostPatterns: JsPattern[] | undefined;
  /** Lower-cased header names, in order. */
  hostProxyHeaders: string[];
  sslRedirect: boolean;
  /** '' when the redirect keeps the request's host. */
  sslHost: string;
  /** [lower-cased header name, exact value] pairs that mark a request as TLS. */
  sslProxyHeaders: [string, string][];
  stsSeconds: number;
  stsIncludeSubdomains: boolean;
  forceStsHeader: boolean;
  frameDeny: boolean;
  customFrameOptionsValue: string;
  contentTypeNosniff: boolean;
  browserXssFilter: boolean;
  contentSecurityPolicy: string;
  referrerPolicy: string;
  isDevelopment: boolean;
}

const RULES: ObjectRules = {
  allowed_hosts: 'string[]',
  allowed_hosts_are_regex: 'boolean',
  host_proxy_headers: 'string[]',
  ssl_redirect: 'boolean',
  ssl_host: 'string',
  ssl_proxy_headers: 'object',
  sts_seconds: { kind: 'integer', min: 0 },
  sts_include_subdomains: 'boolean',
  force_sts_header: 'boolean',
  frame_deny: 'boolean',
  custom_frame_options_value: 'string',
  content_type_nosniff: 'boolean',
  browser_xss_filter: 'boolean',
  content_security_policy: 'string',
  referrer_policy: 'string',
  hpkp_public_key: 'string',
  is_development: 'boolean',
};

/** The longest host allowed_hosts_are_regex patterns run on: DNS names stop at 253 bytes, plus a port. */
export const MAX_HOST_INSPECTED = 512;
/** A header value Portico sends as written: printable ASCII and tabs. */
const HEADER_VALUE = /^[\t\x20-\x7e]*$/;
/** The bytes Go accepts in a Host header (httpguts.ValidHostHeader): no '/', '?', '#', '@', '\' or spaces. */
const HOST = /^[A-Za-z0-9!$%&'()*+,\-.:;=[\]_~]+$/;

export const securityHttp: Namespace<SecurityHttpOptions> = {
  name: NAME,
  scopes: ['service'],
  order: 100,
  policy: true,
  parse(raw, path, c) {
    if (!expectObject(c, raw, path, 'an object with HTTP security options')) return undefined;
    const valid = checkFields(c, raw, path, RULES, 'the "security/http" namespace');
    const at = (key: string): JsonPath => [...path, key];
    const areRegex = bool(raw.allowed_hosts_are_regex);

    let allowedHostPatterns: JsPattern[] | undefined;
    if (valid.has('allowed_hosts')) {
      const hosts = raw.allowed_hosts as string[];
      if (areRegex) allowedHostPatterns = hostPatterns(c, hosts, at('allowed_hosts'));
      else {
        hosts.forEach((h, i) => {
          if (!HOST.test(h)) c.warning([...at('allowed_hosts'), i], 'a host name with its port when not the default, such as "api.example.com" or "api.example.com:8080"', `${c.found([...at('allowed_hosts'), i], h)}, which no Host header can match`);
        });
      }
    } else if (areRegex) {
      c.warning(at('allowed_hosts_are_regex'), 'allowed_hosts to go with it', 'true without allowed_hosts: no host check is made');
    }
    if (valid.has('host_proxy_headers')) checkHeaderNames(c, raw.host_proxy_headers as string[], at('host_proxy_headers'));
    if (valid.has('ssl_proxy_headers')) checkSslProxyHeaders(c, raw.ssl_proxy_headers as Record<string, unknown>, at('ssl_proxy_headers'));
    if (valid.has('ssl_host')) {
      const h = raw.ssl_host as string;
      if (h !== '' && !HOST.test(h)) c.invalid(at('ssl_host'), 'a host name with an optional port and nothing else, such as "ssl.example.com" or "ssl.example.com:8443"', h);
      else if (h !== '' && !bool(raw.ssl_redirect)) c.warning(at('ssl_host'), '"ssl_redirect": true to go with it', 'ssl_host without ssl_redirect: it is never used');
    }
    for (const key of ['custom_frame_options_value', 'content_security_policy', 'referrer_policy'] as const) {
      if (valid.has(key) && !HEADER_VALUE.test(raw[key] as string)) c.invalid(at(key), 'a header value of printable ASCII characters', raw[key]);
    }
    if (valid.has('hpkp_public_key')) {
      c.warning(at('hpkp_public_key'), 'no hpkp_public_key', 'hpkp_public_key, ignored as KrakenD ignores it: no Public-Key-Pins header is sent (HPKP is obsolete and browsers no longer honour it)');
    }
    const stsSeconds = int(raw.sts_seconds) ?? 0;
    if (stsSeconds === 0) {
      for (const key of ['sts_include_subdomains', 'force_sts_header'] as const) {
        if (raw[key] === true) c.warning(at(key), 'sts_seconds above 0 to go with it', `${key} without sts_seconds: no Strict-Transport-Security header is sent`);
      }
    }
    if (bool(raw.is_development)) {
      for (const key of ['allowed_hosts', 'ssl_redirect', 'sts_seconds'] as const) {
        if (isSet(raw[key])) c.warning(at(key), '"is_development": false for this to apply', `${key}, not enforced because is_development is true`);
      }
    }

    return {
      allowedHosts: areRegex ? [] : (strings(raw.allowed_hosts) ?? []).map((h) => h.toLowerCase()),
      allowedHostPatterns,
      hostProxyHeaders: (strings(raw.host_proxy_headers) ?? []).map((h) => h.toLowerCase()),
      sslRedirect: bool(raw.ssl_redirect),
      sslHost: str(raw.ssl_host) ?? '',
      sslProxyHeaders: Object.entries(obj(raw.ssl_proxy_headers))
        .filter((e): e is [string, string] => typeof e[1] === 'string')
        .map(([k, v]) => [k.toLowerCase(), v]),
      stsSeconds,
      stsIncludeSubdomains: bool(raw.sts_include_subdomains),
      forceStsHeader: bool(raw.force_sts_header),
      frameDeny: bool(raw.frame_deny),
      customFrameOptionsValue: str(raw.custom_frame_options_value) ?? '',
      contentTypeNosniff: bool(raw.content_type_nosniff),
      browserXssFilter: bool(raw.browser_xss_filter),
      contentSecurityPolicy: str(raw.content_security_policy) ?? '',
      referrerPolicy: str(raw.referrer_policy) ?? '',
      isDevelopment: bool(raw.is_development),
    };
  },
  compile(o) {
    return { guard: compileGuard(o) };
  },
};

/** A value that turns its feature on: true, a number above 0, a non-empty list. */
function isSet(v: unknown): boolean {
  return v === true || (typeof v === 'number' && v > 0) || (Array.isArray(v) && v.length > 0);
}

function hostPatterns(c: IssueCollector, hosts: string[], path: JsonPath): JsPattern[] {
  const out: JsPattern[] = [];
  hosts.forEach((h, i) => {
    const t = translateRe2(h);
    if (!t.ok) c.error([...path, i], 'a regular expression in Go RE2 syntax matching a whole host (allowed_hosts_are_regex is true)', `${c.found([...path, i], h)}: ${t.reason}`);
    else out.push({ source: `^(?:${t.source})$`, flags: t.flags });
  });
  return out;
}

function checkHeaderNames(c: IssueCollector, names: string[], path: JsonPath): void {
  names.forEach((n, i) => {
    if (!HTTP_TOKEN.test(n)) c.invalid([...path, i], 'a header name such as "X-Forwarded-Host"', n);
  });
}

function checkSslProxyHeaders(c: IssueCollector, headers: Record<string, unknown>, path: JsonPath): void {
  for (const [name, value] of Object.entries(headers)) {
    const at = [...path, name];
    if (!HTTP_TOKEN.test(name)) c.add('error', at, 'a header name such as "X-Forwarded-Proto"', c.found(at, name), 'key');
    if (typeof value !== 'string') c.invalid(at, 'the header value that marks a TLS request, such as "https"', value);
    else if (value === '') c.invalid(at, 'a non-empty header value (KrakenD would count every request without the header as TLS)', value);
    else if (!HEADER_VALUE.test(value)) c.invalid(at, 'a header value of printable ASCII characters', value);
  }
}

function compileGuard(o: SecurityHttpOptions): Guard {
  const dev = o.isDevelopment;
  const allowedHosts = new Set(o.allowedHosts);
  const hostPatterns = (o.allowedHostPatterns ?? []).map((p) => new RegExp(p.source, p.flags));
  const checkHost = !dev && (allowedHosts.size > 0 || hostPatterns.length > 0);
  const hostAllowed =
    hostPatterns.length > 0
      ? // The host is the client's: bound the regex work (no real host comes near the cap).
        (host: string) => host.length <= MAX_HOST_INSPECTED && hostPatterns.some((p) => p.test(host))
      : (host: string) => allowedHosts.has(host.toLowerCase());
  const proxyHeaders = o.hostProxyHeaders;
  const sslHeaders = o.sslProxyHeaders;
  const redirect = o.sslRedirect && !dev;
  const sslPrefix = o.sslHost !== '' ? `https://${o.sslHost}` : undefined;

  // unrolled/secure: the bad-host handler answers 500 (http.Error "Bad Host", with nosniff); built once.
  const badHost = new PolicyError(500, 'HOST_NOT_ALLOWED', NAME, 'bad host name', ['x-content-type-options', 'nosniff']);
  const malformedHost = new PolicyError(400, 'HOST_MALFORMED', NAME, 'malformed Host: no https URL can be built from it');

  const sts = o.stsSeconds > 0 && !dev ? `max-age=${o.stsSeconds}${o.stsIncludeSubdomains ? '; includeSubDomains' : ''}` : undefined;
  const stsAlways = o.forceStsHeader;
  const fixed: [string, string][] = [];
  const frame = o.customFrameOptionsValue !== '' ? o.customFrameOptionsValue : o.frameDeny ? 'DENY' : '';
  if (frame !== '') fixed.push(['x-frame-options', frame]);
  if (o.contentTypeNosniff) fixed.push(['x-content-type-options', 'nosniff']);
  if (o.browserXssFilter) fixed.push(['x-xss-protection', '1; mode=block']);
  // unrolled/secure replaces $NONCE with a fresh 'nonce-...' (16 random bytes) per request.
  const csp = o.contentSecurityPolicy.split('$NONCE');
  if (csp.length === 1 && csp[0] !== '') fixed.push(['content-security-policy', csp[0]!]);
  if (o.referrerPolicy !== '') fixed.push(['referrer-policy', o.referrerPolicy]);
  const nonceCsp = csp.length > 1 ? csp : undefined;

  const isTls = (req: ProxyRequest): boolean => {
    if (req.secure) return true;
    for (const [name, value] of sslHeaders) if (req.headers[name] === value) return true;
    return false;
  };

  return (req) => {
    let host = req.host;
    for (const name of proxyHeaders) {
      const v = req.headers[name];
      if (typeof v === 'string' && v !== '') {
        host = v;
        break;
      }
    }
    if (checkHost && !hostAllowed(host)) throw badHost;
    const tls = isTls(req);
    if (redirect && !tls) {
      if (sslPrefix === undefined && !HOST.test(host)) throw malformedHost;
      return redirectTo((sslPrefix ?? `https://${host}`) + safeTarget(req), req.method);
    }
    if (sts !== undefined && (tls || stsAlways)) addResponseHeader(req, 'strict-transport-security', sts);
    for (const [name, value] of fixed) addResponseHeader(req, name, value);
    if (nonceCsp) addResponseHeader(req, 'content-security-policy', nonceCsp.join(`'nonce-${randomBytes(16).toString('base64')}'`));
    return undefined;
  };
}

/** What the request path and query may keep as is in a Location; anything else is percent-encoded. */
const UNSAFE_IN_TARGET = /[^A-Za-z0-9\-._~!$&'()*+,;=:@/?%[\]]/;
const UNSAFE_IN_TARGET_ALL = new RegExp(UNSAFE_IN_TARGET.source, 'g');

/** The path and query as the client sent them, made safe for a Location header (as Go escapes them). */
function safeTarget(req: ProxyRequest): string {
  const target = req.rawQuery !== '' ? `${req.path}?${req.rawQuery}` : req.path;
  if (!UNSAFE_IN_TARGET.test(target)) return target;
  // node:http hands the request line over as latin1: each char is one byte.
  return target.replace(UNSAFE_IN_TARGET_ALL, (ch) => '%' + ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0'));
}

/** Go's http.Redirect with 301, as unrolled/secure answers (for every method). */
function redirectTo(location: string, method: string): EarlyAnswer {
  const answer: EarlyAnswer = { status: 301, headers: ['location', location] };
  if (method === 'GET' || method === 'HEAD') {
    // node:http sends no body for HEAD, only its length.
    answer.body = movedPermanentlyHtml(location);
    answer.contentType = 'text/html; charset=utf-8';
  }
  return answer;
}
