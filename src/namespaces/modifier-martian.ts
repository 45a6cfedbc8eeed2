// `modifier/martian` (backend): static changes to the backend call and its
// answer, written in Google Martian's JSON DSL as KrakenD (krakend-martian)
// reads it: one modifier object, whose key names its type ("header.Modifier",
// "fifo.Group", ...), each with a `scope` ("request", "response" or both).
// Request modifiers change the HTTP call just before it is sent (headers,
// query string, URL, body); response ones change the answer before it is
// decoded (status, headers, body), so they work with no-op too.
//
// The core reads the parsed tree (config/normalize.ts -> BackendConfig.martian,
// applied by proxy/martian.ts inside the backend call), as it reads
// backend/graphql: the modifiers act at HTTP level, where no middleware runs.
// Hence order 0. Anything Portico cannot apply is a `check` error: a modifier
// left out would send the call unmodified.

import { checkFields, expectObject, quoteList, type FieldKind, type FieldRule } from '../config/fields.ts';
import { suggest, type IssueCollector } from '../config/issues.ts';
import { isPlainObject, type JsonPath } from '../config/json-path.ts';
import { translateRe2, type JsPattern } from '../config/re2.ts';
import { BAD_HEADER_VALUE, HTTP_TOKEN, isHopByHop } from '../proxy/headers.ts';
import type { Namespace } from './namespace.ts';

const NAME = 'modifier/martian';

export interface MartianScope {
  request: boolean;
  response: boolean;
}

/** What a filter checks. Header names are lower-case. */
export type MartianCondition =
  | { on: 'header'; name: string; value: string | undefined }
  | { on: 'header-regex'; name: string; pattern: JsPattern }
  | { on: 'query'; name: string; value: string | undefined }
  | { on: 'url'; scheme?: string; host?: string; path?: string; query?: string }
  | { on: 'url-regex'; pattern: JsPattern }
  | { on: 'cookie'; name: string; value: string | undefined }
  | { on: 'port'; port: number };

/** One parsed modifier (plain data; proxy/martian.ts compiles it). Header names are lower-case. */
export type MartianModifier = { scope: MartianScope } & MartianAction;

/** What a modifier does. */
export type MartianAction =
  | { type: 'header.set'; name: string; value: string; append: boolean }
  | { type: 'header.remove'; names: string[] }
  | { type: 'header.copy'; from: string; to: string }
  | { type: 'header.id'; name: string }
  | { type: 'query.set'; name: string; value: string }
  /** `body` in base64, as configured. */
  | { type: 'body'; body: string; contentType: string | undefined }
  | { type: 'url'; scheme?: string; host?: string; path?: string; query?: string }
  /** `request`: the Cookie pair; `response`: the Set-Cookie value. */
  | { type: 'cookie'; request: string; response: string }
  | { type: 'stash'; name: string }
  | { type: 'port'; port: number | 'default' | 'remove' }
  | { type: 'status'; status: number }
  | { type: 'filter'; when: MartianCondition; then: MartianModifier; otherwise: MartianModifier | undefined }
  /** The modifiers in the order they run (fifo: as written; priority: highest first). */
  | { type: 'group'; modifiers: MartianModifier[] }
  /** A Martian verifier: it only records failed expectations, which nothing reads. */
  | { type: 'none' };

type Rules = Record<string, FieldKind | FieldRule>;

interface Kind {
  /** The scopes the Martian modifier implements (a scope it lacks is refused, as Martian refuses it). */
  scopes: readonly ('request' | 'response')[];
  rules: Rules;
  /** Builds the modifier from its type-checked fields; reports and returns undefined when unusable. */
  build(b: Builder): MartianAction | undefined;
}

/** What a kind's build() gets: the fields that passed their type checks, and where they are. */
interface Builder {
  c: IssueCollector;
  raw: Record<string, unknown>;
  valid: Set<string>;
  path: JsonPath;
  /** A required string field (reported when missing or, unless `empty`, empty). */
  need(key: string, what: string, empty?: boolean): string | undefined;
  /** An optional string field that passed its type check. */
  opt(key: string): string | undefined;
  /** The nested modifier under `key` (`modifier` or `else`). */
  nested(key: string): MartianModifier | undefined;
}

const BOTH = ['request', 'response'] as const;
const REQUEST = ['request'] as const;
const RESPONSE = ['response'] as const;
const FILTER_RULES: Rules = { modifier: 'object', else: 'object' };

/** Reports `value` at `at` as not `expected`; returns false. */
function refuse(c: IssueCollector, at: JsonPath, expected: string, value: unknown): false {
  c.invalid(at, expected, value);
  return false;
}

/** A required header name a modifier writes: lower-case; not a framing or hop-by-hop one (Host may be set). */
function writableHeader(b: Builder, key: string): string | undefined {
  const name = b.need(key, 'a header name');
  if (name === undefined) return undefined;
  return checkHeaderName(b.c, name, [...b.path, key], true);
}

/** A required header name that is only read (a filter's, header.Copy's `from`): lower-case. */
function readHeader(b: Builder, key: string, what: string): string | undefined {
  const name = b.need(key, what);
  return name === undefined ? undefined : checkHeaderName(b.c, name, [...b.path, key], false);
}

function checkHeaderName(c: IssueCollector, name: string, at: JsonPath, writing: boolean): string | undefined {
  if (!HTTP_TOKEN.test(name)) {
    c.invalid(at, 'a header name (letters, digits and !#$%&\'*+-.^_`|~)', name);
    return undefined;
  }
  const lower = name.toLowerCase();
  if (writing && lower !== 'host' && isHopByHop(lower)) {
    c.invalid(at, 'a header other than the hop-by-hop and framing ones (Content-Length, Transfer-Encoding, Connection, ...): the HTTP client sets those', name);
    return undefined;
  }
  return lower;
}

function headerValue(b: Builder, key: string): string | undefined {
  const value = b.need(key, 'a header value', true);
  if (value === undefined) return undefined;
  if (BAD_HEADER_VALUE.test(value)) {
    b.c.invalid([...b.path, key], 'a header value without control characters (CR, LF, NUL, ...)', value);
    return undefined;
  }
  return value;
}

function pattern(b: Builder, key: string): JsPattern | undefined {
  const p = b.need(key, 'a regular expression (Go RE2 syntax)');
  if (p === undefined) return undefined;
  const t = translateRe2(p);
  if (!t.ok) {
    b.c.error([...b.path, key], 'a regular expression in Go RE2 syntax (what KrakenD accepts)', `${b.c.found([...b.path, key], p)}: ${t.reason}`);
    return undefined;
  }
  return { source: t.source, flags: t.flags };
}

function filter(b: Builder, when: MartianCondition | undefined): MartianAction | undefined {
  if (b.raw.modifier === undefined) b.c.missing([...b.path, 'modifier'], 'the modifier to run when the condition holds');
  const then = b.nested('modifier');
  const otherwise = b.nested('else');
  if (when === undefined || then === undefined || (b.raw.else !== undefined && otherwise === undefined)) return undefined;
  return { type: 'filter', when, then, otherwise };
}

/** A filter on a query parameter or a cookie: by name, and by value when one is given. */
function namedFilter(on: 'query' | 'cookie', what: string): Kind {
  return {
    scopes: BOTH,
    rules: { name: 'string', value: 'string', ...FILTER_RULES },
    build(b) {
      const name = b.need('name', what);
      return filter(b, name === undefined ? undefined : { on, name, value: b.opt('value') || undefined });
    },
  };
}

const URL_PARTS: Rules = { scheme: 'string', host: 'string', path: 'string', query: 'string' };
const QUERY_CHARS = /^[^\s#\0-\x1f\x7f]*$/;

/** scheme/host/path/query of url.Modifier and url.Filter, checked. */
function urlParts(b: Builder, modifying: boolean): { scheme?: string; host?: string; path?: string; query?: string } | undefined {
  const out: { scheme?: string; host?: string; path?: string; query?: string } = {};
  let ok = true;
  const scheme = b.opt('scheme');
  if (scheme !== undefined) {
    if (scheme !== 'http' && scheme !== 'https') ok = refuse(b.c, [...b.path, 'scheme'], '"http" or "https"', scheme);
    else out.scheme = scheme;
  }
  const host = b.opt('host');
  if (host !== undefined) {
    if (!validHost(host, modifying)) ok = refuse(b.c, [...b.path, 'host'], modifying ? 'a host name with an optional port ("api.example.com:8080")' : 'a host name with an optional port, "*." wildcards allowed', host);
    else out.host = host.toLowerCase();
  }
  const path = b.opt('path');
  if (path !== undefined) {
    if (/[\0-\x1f\x7f]/.test(path)) ok = refuse(b.c, [...b.path, 'path'], 'a URL path without control characters', path);
    else out.path = path;
  }
  const query = b.opt('query');
  if (query !== undefined) {
    if (!QUERY_CHARS.test(query)) ok = refuse(b.c, [...b.path, 'query'], 'an encoded query string ("a=1&b=x%20y": no spaces, "#" or control characters)', query);
    else out.query = query;
  }
  return ok ? out : undefined;
}

function validHost(host: string, modifying: boolean): boolean {
  const name = modifying ? host : host.replaceAll('*', 'w');
  if (host === '' || /[/?#@\s\\]/.test(host)) return false;
  try {
    return new URL(`http://${name}`).host !== '';
  } catch {
    return false;
  }
}

/** Go's cookie rules: a token name; value bytes 0x20-0x7e but '"', ';' and '\' (quoted when it has a space or a comma). */
const COOKIE_VALUE = /^[\x20-\x7e]*$/;
const COOKIE_DOMAIN = /^\.?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

function cookie(b: Builder): MartianAction | undefined {
  const name = b.need('name', 'a cookie name');
  const value = b.need('value', 'the cookie value', true);
  let ok = name !== undefined && value !== undefined;
  if (name !== undefined && !HTTP_TOKEN.test(name)) ok = refuse(b.c, [...b.path, 'name'], 'a cookie name (a token: letters, digits and !#$%&\'*+-.^_`|~)', name);
  if (value !== undefined && (!COOKIE_VALUE.test(value) || /[";\\]/.test(value))) {
    ok = refuse(b.c, [...b.path, 'value'], 'a cookie value of printable ASCII without ", ; or \\', value);
  }
  let attributes = '';
  const path = b.opt('path');
  if (path !== undefined && path !== '') {
    if (!COOKIE_VALUE.test(path) || path.includes(';')) ok = refuse(b.c, [...b.path, 'path'], 'a cookie path of printable ASCII without ;', path);
    else attributes += `; Path=${path}`;
  }
  const domain = b.opt('domain');
  if (domain !== undefined && domain !== '') {
    if (!COOKIE_DOMAIN.test(domain)) ok = refuse(b.c, [...b.path, 'domain'], 'a cookie domain ("example.com")', domain);
    else attributes += `; Domain=${domain.replace(/^\./, '')}`;
  }
  const expires = b.opt('expires');
  if (expires !== undefined) {
    const t = Date.parse(expires);
    if (!RFC3339.test(expires) || Number.isNaN(t)) ok = refuse(b.c, [...b.path, 'expires'], 'a date in RFC 3339 format ("2030-04-12T23:20:50Z")', expires);
    else if (new Date(t).getUTCFullYear() >= 1601) attributes += `; Expires=${new Date(t).toUTCString()}`;
  }
  if (b.valid.has('maxAge')) {
    const maxAge = b.raw.maxAge as number;
    if (maxAge > 0) attributes += `; Max-Age=${maxAge}`;
    else if (maxAge < 0) attributes += '; Max-Age=0';
  }
  if (b.raw.httpOnly === true) attributes += '; HttpOnly';
  if (b.raw.secure === true) attributes += '; Secure';
  if (!ok) return undefined;
  const pair = `${name}=${/[ ,]/.test(value!) ? `"${value}"` : value}`;
  return { type: 'cookie', request: pair, response: pair + attributes };
}

const KINDS: Readonly<Record<string, Kind>> = {
  'header.Modifier': {
    scopes: BOTH,
    rules: { name: 'string', value: 'string', behavior: { kind: 'string', oneOf: ['replace', 'append'] } },
    build(b) {
      const name = writableHeader(b, 'name');
      const value = headerValue(b, 'value');
      if (name === undefined || value === undefined) return undefined;
      return { type: 'header.set', name, value, append: b.raw.behavior === 'append' };
    },
  },
  'header.Append': {
    scopes: BOTH,
    rules: { name: 'string', value: 'string' },
    build(b) {
      const name = writableHeader(b, 'name');
      const value = headerValue(b, 'value');
      if (name === undefined || value === undefined) return undefined;
      return { type: 'header.set', name, value, append: true };
    },
  },
  'header.Blacklist': {
    scopes: BOTH,
    rules: { names: 'string[]' },
    build(b) {
      if (!b.valid.has('names')) {
        if (b.raw.names === undefined) b.c.missing([...b.path, 'names'], 'the header names to remove');
        return undefined;
      }
      const names = (b.raw.names as string[]).map((n, i) => checkHeaderName(b.c, n, [...b.path, 'names', i], false));
      if (names.some((n) => n === undefined)) return undefined;
      return { type: 'header.remove', names: names as string[] };
    },
  },
  'header.Copy': {
    scopes: BOTH,
    rules: { from: 'string', to: 'string' },
    build(b) {
      const from = readHeader(b, 'from', 'the header to copy');
      const to = writableHeader(b, 'to');
      if (from === undefined || to === undefined) return undefined;
      return { type: 'header.copy', from, to };
    },
  },
  'header.Id': {
    scopes: REQUEST,
    rules: { header: 'string' },
    build(b) {
      const header = b.opt('header') || 'X-Krakend-Id';
      const name = checkHeaderName(b.c, header, [...b.path, 'header'], true);
      return name === undefined ? undefined : { type: 'header.id', name };
    },
  },
  'header.Filter': {
    scopes: BOTH,
    rules: { name: 'string', value: 'string', ...FILTER_RULES },
    build(b) {
      const name = readHeader(b, 'name', 'the header to check');
      return filter(b, name === undefined ? undefined : { on: 'header', name, value: b.opt('value') || undefined });
    },
  },
  'header.RegexFilter': {
    scopes: BOTH,
    rules: { header: 'string', regex: 'string', ...FILTER_RULES },
    build(b) {
      const name = readHeader(b, 'header', 'the header to check');
      const p = pattern(b, 'regex');
      return filter(b, name === undefined || p === undefined ? undefined : { on: 'header-regex', name, pattern: p });
    },
  },
  'querystring.Modifier': {
    scopes: REQUEST,
    rules: { name: 'string', value: 'string' },
    build(b) {
      const name = b.need('name', 'the query string parameter to set');
      const value = b.need('value', 'the value to set', true);
      if (name === undefined || value === undefined) return undefined;
      return { type: 'query.set', name, value };
    },
  },
  'querystring.Filter': namedFilter('query', 'the query string parameter to check'),
  'body.Modifier': {
    scopes: BOTH,
    rules: { body: 'string', contentType: 'string' },
    build(b) {
      const body = b.need('body', 'the new body, base64-encoded', true);
      if (body === undefined) return undefined;
      // Go's encoding/json reads []byte as standard base64 (padding required; CR and LF ignored).
      const clean = body.replace(/[\r\n]/g, '');
      if (clean.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(clean)) {
        b.c.invalid([...b.path, 'body'], 'standard base64 (e.g. `echo -n \'{"a":1}\' | base64`)', body);
        return undefined;
      }
      const contentType = b.opt('contentType');
      if (contentType !== undefined && BAD_HEADER_VALUE.test(contentType)) {
        b.c.invalid([...b.path, 'contentType'], 'a content type without control characters', contentType);
        return undefined;
      }
      return { type: 'body', body: clean, contentType: contentType || undefined };
    },
  },
  'url.Modifier': {
    scopes: REQUEST,
    rules: URL_PARTS,
    build(b) {
      const parts = urlParts(b, true);
      if (parts === undefined) return undefined;
      if (parts.path !== undefined && !parts.path.startsWith('/')) parts.path = '/' + parts.path;
      return { type: 'url', ...parts };
    },
  },
  'url.Filter': {
    scopes: BOTH,
    rules: { ...URL_PARTS, ...FILTER_RULES },
    build(b) {
      const parts = urlParts(b, false);
      return filter(b, parts === undefined ? undefined : { on: 'url', ...parts });
    },
  },
  'url.RegexFilter': {
    scopes: BOTH,
    rules: { regex: 'string', ...FILTER_RULES },
    build(b) {
      const p = pattern(b, 'regex');
      return filter(b, p === undefined ? undefined : { on: 'url-regex', pattern: p });
    },
  },
  'cookie.Modifier': {
    scopes: BOTH,
    rules: { name: 'string', value: 'string', path: 'string', domain: 'string', expires: 'string', secure: 'boolean', httpOnly: 'boolean', maxAge: 'integer' },
    build: cookie,
  },
  'cookie.Filter': namedFilter('cookie', 'the cookie to check'),
  'stash.Modifier': {
    scopes: BOTH,
    rules: { headerName: 'string' },
    build(b) {
      const name = writableHeader(b, 'headerName');
      return name === undefined ? undefined : { type: 'stash', name };
    },
  },
  'port.Modifier': {
    scopes: REQUEST,
    rules: { port: { kind: 'integer', min: 0, max: 65535 }, defaultForScheme: 'boolean', remove: 'boolean' },
    build(b) {
      if (b.raw.port !== undefined && !b.valid.has('port')) return undefined;
      const set = [b.valid.has('port') && b.raw.port !== 0, b.raw.defaultForScheme === true, b.raw.remove === true].filter(Boolean).length;
      if (set !== 1) {
        b.c.error(b.path, 'exactly one of "port" (1-65535), "defaultForScheme": true or "remove": true', set === 0 ? 'none of them' : 'more than one');
        return undefined;
      }
      const port = b.raw.remove === true ? 'remove' : b.raw.defaultForScheme === true ? 'default' : (b.raw.port as number);
      return { type: 'port', port };
    },
  },
  'port.Filter': {
    scopes: BOTH,
    rules: { port: { kind: 'integer', min: 1, max: 65535 }, ...FILTER_RULES },
    build(b) {
      if (!b.valid.has('port') && b.raw.port === undefined) b.c.missing([...b.path, 'port'], 'the port to check (1-65535)');
      return filter(b, b.valid.has('port') ? { on: 'port', port: b.raw.port as number } : undefined);
    },
  },
  'status.Modifier': {
    scopes: RESPONSE,
    rules: { statusCode: { kind: 'integer', min: 200, max: 599 } },
    build(b) {
      if (!b.valid.has('statusCode')) {
        if (b.raw.statusCode === undefined) b.c.missing([...b.path, 'statusCode'], 'the status code to answer with (200-599)');
        return undefined;
      }
      return { type: 'status', status: b.raw.statusCode as number };
    },
  },
  'fifo.Group': {
    scopes: BOTH,
    rules: { modifiers: 'array', aggregateErrors: 'boolean' },
    build(b) {
      const list = group(b, (item, at) => parseModifier(b.c, item, at));
      return list === undefined ? undefined : { type: 'group', modifiers: list };
    },
  },
  'priority.Group': {
    scopes: BOTH,
    rules: { modifiers: 'array' },
    build(b) {
      const ranked: { priority: number; index: number; modifier: MartianModifier }[] = [];
      const list = group(b, (item, at, index) => {
        if (!expectObject(b.c, item, at, 'an object with "priority" (an integer) and "modifier"')) return undefined;
        const valid = checkFields(b.c, item, at, { priority: 'integer', modifier: 'object' }, 'a priority.Group entry');
        if (!valid.has('priority')) {
          if (item.priority === undefined) b.c.missing([...at, 'priority'], 'an integer (higher runs first)');
          return undefined;
        }
        if (item.modifier === undefined) {
          b.c.missing([...at, 'modifier'], 'the modifier to run');
          return undefined;
        }
        const modifier = parseModifier(b.c, item.modifier, [...at, 'modifier']);
        if (modifier !== undefined) ranked.push({ priority: item.priority as number, index, modifier });
        return modifier;
      });
      if (list === undefined) return undefined;
      // Martian runs the highest priority first; of equal ones, the one added last (written later) first.
      ranked.sort((x, y) => y.priority - x.priority || y.index - x.index);
      return { type: 'group', modifiers: ranked.map((r) => r.modifier) };
    },
  },
};

/** Martian verifiers (KrakenD registers their packages): they record failed expectations for Martian's verify API, which KrakenD never reads. */
const VERIFIERS = new Set(['status.Verifier', 'header.Verifier', 'querystring.Verifier', 'url.Verifier', 'method.Verifier', 'cookie.Verifier', 'port.Verifier']);

function group(b: Builder, item: (value: unknown, at: JsonPath, index: number) => MartianModifier | undefined): MartianModifier[] | undefined {
  if (!b.valid.has('modifiers')) {
    if (b.raw.modifiers === undefined) b.c.missing([...b.path, 'modifiers'], 'the list of modifiers');
    return undefined;
  }
  const out: MartianModifier[] = [];
  let ok = true;
  (b.raw.modifiers as unknown[]).forEach((value, i) => {
    const m = item(value, [...b.path, 'modifiers', i], i);
    if (m === undefined) ok = false;
    else out.push(m);
  });
  return ok ? out : undefined;
}

const EXAMPLES = '"header.Modifier", "querystring.Modifier", "fifo.Group", ...';

/** Parses one Martian modifier object ({"type": {...}}) at `path`. Reports every problem; undefined when unusable. */
function parseModifier(c: IssueCollector, raw: unknown, path: JsonPath): MartianModifier | undefined {
  if (!expectObject(c, raw, path, `an object with one Martian modifier (${EXAMPLES})`)) return undefined;
  const keys = Object.keys(raw);
  if (keys.length !== 1) {
    c.error(path, 'exactly one Martian modifier (put several in a "fifo.Group")', keys.length === 0 ? 'an empty object' : `${keys.length}: ${keys.join(', ')}`);
    return undefined;
  }
  const type = keys[0];
  const at = [...path, type];
  const kind = KINDS[type];
  if (kind === undefined) {
    if (VERIFIERS.has(type)) {
      c.warning(at, 'a Martian modifier', `${JSON.stringify(type)}, a verifier: it only records failed expectations, which KrakenD never reads; ignored`, 'key');
      return { scope: { request: false, response: false }, type: 'none' };
    }
    const hint = suggest(type, Object.keys(KINDS));
    c.add('error', at, `a Martian modifier Portico implements (${quoteList(Object.keys(KINDS))})`, `unknown modifier ${JSON.stringify(type)}${hint ? ` (did you mean ${JSON.stringify(hint)}?)` : ''}: the call would go unmodified`, 'key');
    return undefined;
  }
  const body = raw[type];
  if (!expectObject(c, body, at, `the options of ${type} (an object with "scope" and its fields)`)) return undefined;
  const valid = checkFields(c, body, at, { scope: 'string[]', ...kind.rules }, `a Martian ${type}`);
  const scope = parseScope(c, body.scope, valid.has('scope'), [...at, 'scope'], type, kind.scopes);
  const b: Builder = {
    c,
    raw: body,
    valid,
    path: at,
    need(key, what, empty = false) {
      if (valid.has(key)) {
        const v = body[key] as string;
        if (v !== '' || empty) return v;
        c.invalid([...at, key], what, v);
        return undefined;
      }
      if (body[key] === undefined) c.missing([...at, key], what);
      return undefined;
    },
    opt: (key) => (valid.has(key) ? (body[key] as string) : undefined),
    nested: (key) => (isPlainObject(body[key]) ? parseModifier(c, body[key], [...at, key]) : undefined),
  };
  const built = kind.build(b);
  if (built === undefined || scope === undefined) return undefined;
  return { scope, ...built } as MartianModifier;
}

function parseScope(
  c: IssueCollector,
  raw: unknown,
  valid: boolean,
  at: JsonPath,
  type: string,
  supported: readonly ('request' | 'response')[],
): MartianScope | undefined {
  // No scope: Martian applies every scope the modifier implements.
  if (raw === undefined) return { request: supported.includes('request'), response: supported.includes('response') };
  if (!valid) return undefined;
  const scope = { request: false, response: false };
  let ok = true;
  (raw as string[]).forEach((s, i) => {
    if (s !== 'request' && s !== 'response') {
      c.invalid([...at, i], '"request" or "response"', s);
      ok = false;
    } else if (!supported.includes(s)) {
      c.invalid([...at, i], `a scope ${type} acts in (${quoteList(supported)})`, s);
      ok = false;
    } else scope[s] = true;
  });
  if (ok && !scope.request && !scope.response) c.warning(at, '"request", "response" or both', 'an empty scope: this modifier never runs');
  return ok ? scope : undefined;
}

export const modifierMartian: Namespace<MartianModifier> = {
  name: NAME,
  scopes: ['backend'],
  // Read by the core (the backend call applies it at HTTP level), like backend/graphql.
  order: 0,
  policy: true,
  parse(raw, path, c) {
    return parseModifier(c, raw, path);
  },
};
