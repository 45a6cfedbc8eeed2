// modifier/martian at run time: the parsed modifier tree (namespaces/
// modifier-martian.ts) compiled once per Plan into two functions, one over
// the backend call about to be sent, one over the answer before it is decoded
// (buffered) or streamed (no-op). The shapes follow Go's http.Request and
// http.Response as Martian sees them: URL parts, headers, body; status.
// Go's url.Values rules (parse, sorted re-encoding) are written out here
// because Martian's query-string modifier re-encodes the whole query that way.

import { randomUUID } from 'node:crypto';
import { splitHostHeader } from '../config/host-port.ts';
import type { MartianCondition, MartianModifier } from '../namespaces/modifier-martian.ts';
import { decodePath } from './query.ts';
import type { BufferedResponse, Passthrough, RawHeaders } from './types.ts';

type HeaderValue = string | string[];
type Headers = Record<string, HeaderValue | undefined>;

/** The backend call as backend.ts builds it (mutated in place). */
export interface MartianCall {
  origin: string;
  /** Encoded path and query. */
  path: string;
  headers: Record<string, HeaderValue>;
  body: Buffer | undefined;
}

/** The request as Martian sees it: the URL in parts. */
export interface MartianRequest {
  scheme: string;
  /** host[:port] */
  host: string;
  /** Encoded path. */
  path: string;
  /** Raw query, without '?'. */
  query: string;
  headers: Record<string, HeaderValue>;
  body: Buffer | undefined;
}

interface MartianResponse {
  status: number;
  headers: Headers;
  /** Set when a body.Modifier replaced the body. */
  body: Buffer | undefined;
  /** The request as it was sent. */
  request: MartianRequest;
}

type RequestFn = (r: MartianRequest) => void;
type ResponseFn = (r: MartianResponse) => void;

interface Parts {
  request?: RequestFn;
  response?: ResponseFn;
}

export interface CompiledMartian {
  /** Applies the request modifiers to `call`; returns the request as sent (for response filters). */
  modifyRequest(call: MartianCall): MartianRequest;
  /** The answer with the response modifiers applied (before content decoding and the status check). */
  modifyBuffered(res: BufferedResponse, sent: MartianRequest): BufferedResponse;
  /** A no-op answer with the response modifiers applied (status, headers, and its body when replaced). */
  modifyStreamed(pt: Passthrough, sent: MartianRequest): Passthrough;
}

export function compileMartian(m: MartianModifier): CompiledMartian {
  const { request, response } = compile(m);
  return {
    modifyRequest(call) {
      const sep = call.origin.indexOf('://');
      const q = call.path.indexOf('?');
      const r: MartianRequest = {
        scheme: call.origin.slice(0, sep),
        host: call.origin.slice(sep + 3),
        path: q < 0 ? call.path : call.path.slice(0, q),
        query: q < 0 ? '' : call.path.slice(q + 1),
        headers: call.headers,
        body: call.body,
      };
      if (request === undefined) return r;
      const host = r.host;
      request(r);
      call.origin = `${r.scheme}://${r.host}`;
      call.path = r.query === '' ? r.path : `${r.path}?${r.query}`;
      call.body = r.body;
      // Go's client sends Request.Host, which stays the backend's when only the URL changes.
      if (r.host !== host && r.headers.host === undefined) r.headers.host = host;
      return r;
    },
    modifyBuffered(res, sent) {
      if (response === undefined) return res;
      const view: MartianResponse = { status: res.status, headers: { ...res.headers }, body: undefined, request: sent };
      response(view);
      if (view.body === undefined) return { status: view.status, headers: view.headers, body: res.body, url: res.url };
      view.headers['content-length'] = String(view.body.length);
      return { status: view.status, headers: view.headers, body: view.body, url: res.url };
    },
    modifyStreamed(pt, sent) {
      if (response === undefined) return pt;
      const headers: Headers = {};
      for (let i = 0; i < pt.headers.length; i += 2) headers[(pt.headers[i] as string).toLowerCase()] = pt.headers[i + 1];
      const view: MartianResponse = { status: pt.status, headers, body: undefined, request: sent };
      response(view);
      const body = view.body;
      if (body !== undefined) headers['content-length'] = String(body.length);
      const flat: RawHeaders = [];
      for (const name in headers) {
        const v = headers[name];
        if (v !== undefined) flat.push(name, v);
      }
      if (body === undefined) return { status: view.status, headers: flat, pipe: (res) => pt.pipe(res), discard: () => pt.discard() };
      // The backend's body is replaced: free its connection now.
      pt.discard();
      return { status: view.status, headers: flat, pipe: (res) => void res.end(body), discard: () => {} };
    },
  };
}

// --- compiling the tree

function compile(m: MartianModifier): Parts {
  const p = parts(m);
  return { request: m.scope.request ? p.request : undefined, response: m.scope.response ? p.response : undefined };
}

function parts(m: MartianModifier): Parts {
  switch (m.type) {
    case 'header.set': {
      const { name, value, append } = m;
      const set = append ? (h: Headers) => void (h[name] = added(h[name], value)) : (h: Headers) => void (h[name] = value);
      return { request: (r) => set(r.headers), response: (r) => set(r.headers) };
    }
    case 'header.remove': {
      const remove = (h: Headers) => {
        for (const n of m.names) delete h[n];
      };
      return { request: (r) => remove(r.headers), response: (r) => remove(r.headers) };
    }
    case 'header.copy': {
      // Go: Set(to, Get(from)), so a missing `from` gives an empty `to`.
      const copy = (h: Headers) => void (h[m.to] = first(h[m.from]) ?? '');
      return { request: (r) => copy(r.headers), response: (r) => copy(r.headers) };
    }
    case 'header.id':
      return {
        request(r) {
          // A request that has one keeps it.
          if (!first(r.headers[m.name])) r.headers[m.name] = randomUUID();
        },
      };
    case 'query.set':
      return {
        request(r) {
          const values = parseGoQuery(r.query);
          values.set(m.name, [m.value]);
          r.query = encodeGoQuery(values);
        },
      };
    case 'body': {
      const body = Buffer.from(m.body, 'base64');
      const set = (h: Headers) => {
        if (m.contentType === undefined) delete h['content-type'];
        else h['content-type'] = m.contentType;
        delete h['content-encoding'];
      };
      return {
        request(r) {
          set(r.headers);
          r.body = body;
        },
        response(r) {
          set(r.headers);
          r.body = body;
        },
      };
    }
    case 'url': {
      const path = m.path === undefined ? undefined : encodePath(m.path);
      return {
        request(r) {
          if (m.scheme !== undefined) r.scheme = m.scheme;
          if (m.host !== undefined) r.host = m.host;
          if (path !== undefined) r.path = path;
          if (m.query !== undefined && m.query !== '') r.query = m.query;
        },
      };
    }
    case 'cookie':
      return {
        request(r) {
          // Go's AddCookie: one Cookie header, pairs joined with "; ".
          const had = first(r.headers.cookie);
          r.headers.cookie = had ? `${had}; ${m.request}` : m.request;
        },
        response: (r) => void (r.headers['set-cookie'] = added(r.headers['set-cookie'], m.response)),
      };
    case 'stash':
      return {
        request: (r) => void (r.headers[m.name] = urlOf(r)),
        response: (r) => void (r.headers[m.name] = first(r.request.headers[m.name]) ?? ''),
      };
    case 'port':
      return {
        request(r) {
          const { hostname } = splitHostHeader(r.host);
          if (m.port === 'remove') r.host = hostname;
          else if (m.port === 'default') {
            if (r.scheme === 'http' || r.scheme === 'https') r.host = `${hostname}:${r.scheme === 'http' ? 80 : 443}`;
          } else r.host = `${hostname}:${m.port}`;
        },
      };
    case 'status':
      return { response: (r) => void (r.status = m.status) };
    case 'filter': {
      const cond = condition(m.when);
      const then = compile(m.then);
      const otherwise = m.otherwise === undefined ? {} : compile(m.otherwise);
      const out: Parts = {};
      if (then.request !== undefined || otherwise.request !== undefined) {
        const t = then.request;
        const f = otherwise.request;
        out.request = (r) => (cond.request(r) ? t?.(r) : f?.(r));
      }
      if (then.response !== undefined || otherwise.response !== undefined) {
        const t = then.response;
        const f = otherwise.response;
        out.response = (r) => (cond.response(r) ? t?.(r) : f?.(r));
      }
      return out;
    }
    case 'group': {
      const children = m.modifiers.map(compile);
      const req = children.flatMap((c) => (c.request ? [c.request] : []));
      const res = children.flatMap((c) => (c.response ? [c.response] : []));
      return {
        request: req.length === 0 ? undefined : (r) => req.forEach((f) => f(r)),
        response: res.length === 0 ? undefined : (r) => res.forEach((f) => f(r)),
      };
    }
    case 'none':
      return {};
  }
}

interface Condition {
  request(r: MartianRequest): boolean;
  response(r: MartianResponse): boolean;
}

function condition(c: MartianCondition): Condition {
  const onRequest = (test: (r: MartianRequest) => boolean): Condition => ({ request: test, response: (r) => test(r.request) });
  switch (c.on) {
    case 'header': {
      const test = (h: Headers) => {
        const v = h[c.name];
        if (v === undefined) return false;
        return c.value === undefined || (Array.isArray(v) ? v.includes(c.value) : v === c.value);
      };
      return { request: (r) => test(r.headers), response: (r) => test(r.headers) };
    }
    case 'header-regex': {
      // As Martian's: the request's header, on the response too; an empty one never matches.
      const re = new RegExp(c.pattern.source, c.pattern.flags);
      return onRequest((r) => {
        const v = first(r.headers[c.name]);
        return v !== undefined && v !== '' && re.test(v);
      });
    }
    case 'query':
      return onRequest((r) => {
        const values = parseGoQuery(r.query).get(c.name);
        return values !== undefined && (c.value === undefined || values.includes(c.value));
      });
    case 'url': {
      const query = c.query === undefined ? undefined : encodeGoQuery(parseGoQuery(c.query));
      return onRequest(
        (r) =>
          (c.scheme === undefined || c.scheme === r.scheme) &&
          (c.host === undefined || matchHost(r.host, c.host)) &&
          (c.path === undefined || c.path === decodePath(r.path)) &&
          (query === undefined || query === encodeGoQuery(parseGoQuery(r.query))),
      );
    }
    case 'url-regex': {
      const re = new RegExp(c.pattern.source, c.pattern.flags);
      return onRequest((r) => re.test(urlOf(r)));
    }
    case 'cookie': {
      const match = (pairs: [string, string][]) => pairs.some(([n, v]) => n === c.name && (c.value === undefined || v === c.value));
      return {
        request: (r) => match(requestCookies(r.headers.cookie)),
        response: (r) => match(responseCookies(r.headers['set-cookie'])),
      };
    }
    case 'port':
      return onRequest((r) => {
        const { port } = splitHostHeader(r.host);
        const effective = port ?? (r.scheme === 'http' ? 80 : r.scheme === 'https' ? 443 : 0);
        return effective === c.port;
      });
  }
}

// --- helpers

function first(v: HeaderValue | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function added(v: HeaderValue | undefined, value: string): HeaderValue {
  if (v === undefined) return value;
  return Array.isArray(v) ? [...v, value] : [v, value];
}

/** Go's URL.String() for the request: scheme://host/path?query. */
function urlOf(r: MartianRequest): string {
  return `${r.scheme}://${r.host}${r.path}${r.query === '' ? '' : '?' + r.query}`;
}

/** Martian's host match: exact, or label by label with "*" standing for any one label ("*.example.com"). */
export function matchHost(host: string, pattern: string): boolean {
  if (host === pattern) return true;
  if (!pattern.includes('*')) return false;
  const h = host.split('.');
  const p = pattern.split('.');
  return h.length === p.length && p.every((label, i) => label === '*' || label === h[i]);
}

/** A configured (decoded) path as Go's URL.EscapedPath() sends it. */
function encodePath(path: string): string {
  return encodeURI(path).replaceAll('?', '%3F').replaceAll('#', '%23');
}

/** Go's url.ParseQuery: "&"-separated pairs, "+" is a space, a pair with ";" or a bad escape is dropped. */
export function parseGoQuery(raw: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  if (raw === '') return out;
  for (const pair of raw.split('&')) {
    if (pair === '' || pair.includes(';')) continue;
    const eq = pair.indexOf('=');
    const key = unescapeQuery(eq < 0 ? pair : pair.slice(0, eq));
    const value = eq < 0 ? '' : unescapeQuery(pair.slice(eq + 1));
    if (key === undefined || value === undefined) continue;
    const list = out.get(key);
    if (list) list.push(value);
    else out.set(key, [value]);
  }
  return out;
}

function unescapeQuery(s: string): string | undefined {
  if (!s.includes('%') && !s.includes('+')) return s;
  try {
    return decodeURIComponent(s.replaceAll('+', ' '));
  } catch {
    return undefined;
  }
}

/** Go's url.Values.Encode: keys sorted, QueryEscape'd ("+" for a space, only A-Za-z0-9-_.~ left as they are). */
export function encodeGoQuery(values: Map<string, string[]>): string {
  const keys = [...values.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const parts: string[] = [];
  for (const k of keys) for (const v of values.get(k)!) parts.push(`${queryEscape(k)}=${queryEscape(v)}`);
  return parts.join('&');
}

function queryEscape(s: string): string {
  return encodeURIComponent(s)
    .replace(/[!'()*]/g, (ch) => '%' + ch.charCodeAt(0).toString(16).toUpperCase())
    .replaceAll('%20', '+');
}

/** Go's Request.Cookies(): name=value pairs of the Cookie header(s), surrounding quotes removed. */
function requestCookies(v: HeaderValue | undefined): [string, string][] {
  if (v === undefined) return [];
  const out: [string, string][] = [];
  for (const line of Array.isArray(v) ? v : [v]) {
    for (const part of line.split(';')) {
      const eq = part.indexOf('=');
      if (eq < 0) continue;
      out.push([part.slice(0, eq).trim(), unquote(part.slice(eq + 1).trim())]);
    }
  }
  return out;
}

/** The name=value of each Set-Cookie header. */
function responseCookies(v: HeaderValue | undefined): [string, string][] {
  if (v === undefined) return [];
  const out: [string, string][] = [];
  for (const line of Array.isArray(v) ? v : [v]) {
    const pair = line.split(';', 1)[0];
    const eq = pair.indexOf('=');
    if (eq > 0) out.push([pair.slice(0, eq).trim(), unquote(pair.slice(eq + 1).trim())]);
  }
  return out;
}

function unquote(v: string): string {
  return v.length > 1 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v;
}
