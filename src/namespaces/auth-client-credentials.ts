// `auth/client-credentials` (backend): the gateway obtains an OAuth2 access
// token with the client-credentials grant (RFC 6749 section 4.4) and sends it
// to this backend in the Authorization header, as KrakenD does with
// golang.org/x/oauth2/clientcredentials.
//
// What follows the Go client: the token request (a form POST with
// grant_type=client_credentials, `scope` from the comma-separated `scopes`,
// `endpoint_params` added, keys sorted), the credentials first in an HTTP
// Basic header (id and secret form-escaped) and, when the server refuses
// that, once more in the form, the style that worked being remembered; JSON
// or form-encoded answers; the header value "<token_type> <access_token>"
// with Go's token type normalization.
//
// What Portico adds: the fetch is bounded (64 KiB body, the endpoint's
// timeout, TLS verified), one fetch at a time serves every waiting request
// (single flight), a failure is not cached, and the token lives in
// PolicyState, so a reload that leaves the options unchanged keeps it.
// Written by hand on undici's request(): no well-kept library does the
// client-credentials grant with these bounds without bringing a whole OAuth
// client along.

import type { Dispatcher } from 'undici';
import { checkFields, expectObject, type ObjectRules } from '../config/fields.ts';
import type { IssueCollector } from '../config/issues.ts';
import { isPlainObject, type JsonPath } from '../config/json-path.ts';
import type { CancelSignal } from '../proxy/abort.ts';
import { GatewayError } from '../proxy/errors.ts';
import { HTTP_TOKEN, isHopByHop } from '../proxy/headers.ts';
import type { Proxy, ProxyRequest } from '../proxy/types.ts';
import { loadUndici } from '../proxy/undici-package.ts';
import { USER_AGENT } from '../version.ts';
import { sha256Hex } from './credentials.ts';
import type { Namespace } from './namespace.ts';
import { stateKey } from './state.ts';

const NAME = 'auth/client-credentials';

export interface ClientCredentialsOptions {
  clientId: string;
  clientSecret: string;
  /** Absolute http(s) URL, fragment removed. */
  tokenUrl: string;
  /** `scopes` split on commas, trimmed, empty entries dropped. */
  scopes: string[];
  /** `endpoint_params`, sorted by name (Go's url.Values.Encode order). */
  endpointParams: [string, string[]][];
  /** Lower-case name of the header that carries the token (`auth_header_name`, default authorization). */
  headerName: string;
  /** `is_disabled`: no token is fetched or sent. */
  disabled: boolean;
}

/** Stable codes of a failed token fetch (each one fails this backend only). */
export const TOKEN_ERROR_CODES = {
  /** No answer: connection refused, DNS, TLS verification. */
  unreachable: 'CLIENT_CREDENTIALS_UNREACHABLE',
  /** The server refused: a non-2xx status or an OAuth2 error answer. */
  rejected: 'CLIENT_CREDENTIALS_REJECTED',
  /** An answer that is no usable token: not JSON, too large, no access_token, bad expires_in. */
  invalid: 'CLIENT_CREDENTIALS_INVALID',
  /** No token before the request's deadline. */
  timeout: 'CLIENT_CREDENTIALS_TIMEOUT',
} as const;

/** The largest token answer read (Go reads at most 1 MiB; a token answer is a few hundred bytes). */
export const MAX_TOKEN_BODY_BYTES = 64 * 1024;
/** Lifetime assumed when the answer has no expires_in (or 0, which Go reads as "unknown"). */
export const DEFAULT_TOKEN_LIFETIME_S = 300;
/** A token is refreshed this long before it expires (Go's expiryDelta), at most half its lifetime. */
const EXPIRY_MARGIN_MS = 10_000;
/** Bound of a fetch started outside any endpoint (not expected: backends always have one). */
const DEFAULT_FETCH_CAP_MS = 10_000;
const MAX_INT32 = 2 ** 31 - 1;

const RULES: ObjectRules = {
  client_id: 'custom',
  client_secret: 'custom',
  token_url: 'custom',
  scopes: 'custom',
  endpoint_params: 'custom',
  // Not in KrakenD's documentation, but read by its source (krakend-oauth2-clientcredentials).
  auth_header_name: 'custom',
  is_disabled: 'boolean',
};

/** A token value that can go into a header: visible ASCII, no spaces. */
const TOKEN_VALUE = /^[\x21-\x7e]+$/;
/** An OAuth2 `error` code (RFC 6749 5.2 charset), short enough to log. */
const ERROR_CODE = /^[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}$/;

export const authClientCredentials: Namespace<ClientCredentialsOptions> = {
  name: NAME,
  scopes: ['backend'],
  order: 400,
  policy: true,
  parse(raw, path, c) {
    if (!expectObject(c, raw, path, 'an object with "client_id", "client_secret" and "token_url"')) return undefined;
    const before = c.errors.length;
    const valid = checkFields(c, raw, path, RULES, 'the "auth/client-credentials" namespace');
    const clientId = textField(c, raw, path, 'client_id', true, false);
    const clientSecret = textField(c, raw, path, 'client_secret', true, true);
    const tokenUrl = checkTokenUrl(c, raw.token_url, [...path, 'token_url'], 'token_url' in raw);
    let scopes: string[] = [];
    if ('scopes' in raw) {
      const s = textField(c, raw, path, 'scopes', false, false, 'a comma-separated list of scopes, such as "read,write"');
      if (s !== undefined) scopes = s.split(',').map((x) => x.trim()).filter((x) => x !== '');
    }
    const endpointParams = 'endpoint_params' in raw ? checkEndpointParams(c, raw.endpoint_params, [...path, 'endpoint_params']) : [];
    let headerName = 'authorization';
    if ('auth_header_name' in raw) {
      const h = raw.auth_header_name;
      if (typeof h !== 'string' || !HTTP_TOKEN.test(h)) c.invalid([...path, 'auth_header_name'], 'a header name such as "Authorization" or "X-Access-Token"', h);
      else if (isHopByHop(h.toLowerCase())) c.invalid([...path, 'auth_header_name'], 'a header name that is not hop-by-hop (it would never reach the backend)', h);
      else headerName = h.toLowerCase();
    }
    if (c.errors.length > before || clientId === undefined || clientSecret === undefined || tokenUrl === undefined) return undefined;
    return {
      clientId,
      clientSecret,
      tokenUrl,
      scopes,
      endpointParams,
      headerName,
      disabled: valid.has('is_disabled') && raw.is_disabled === true,
    };
  },
  compile(o, ctx) {
    if (o.disabled) return undefined;
    // The secret identifies the policy but must not appear in state keys (they are listed by tests and health).
    const key = stateKey(NAME, 'token', { ...o, clientSecret: sha256Hex(o.clientSecret) });
    const source = ctx.state.get(key, () => new TokenSource(o), (s) => s.close());
    const capMs = ctx.endpoint?.timeoutMs || DEFAULT_FETCH_CAP_MS;
    const header = o.headerName;
    const withToken = (req: ProxyRequest, value: string): ProxyRequest => ({
      ...req,
      upstreamHeaders: req.upstreamHeaders ? { ...req.upstreamHeaders, [header]: value } : { [header]: value },
    });
    return {
      middleware: (next: Proxy): Proxy => (req) => {
        const value = source.cached();
        if (value !== undefined) return next(withToken(req, value));
        return source.fetch(req.signal, capMs).then((v) => next(withToken(req, v)));
      },
    };
  },
};

// ---------------------------------------------------------------- config checks

function textField(
  c: IssueCollector,
  raw: Record<string, unknown>,
  path: JsonPath,
  key: string,
  required: boolean,
  secret: boolean,
  expected = 'a string',
): string | undefined {
  const at = [...path, key];
  if (!(key in raw)) {
    if (required) c.missing(at, expected);
    return undefined;
  }
  const v = raw[key];
  if (typeof v !== 'string') {
    // A secret is never echoed, not even a mistyped one.
    if (secret) c.error(at, expected, `${v === null ? 'null' : Array.isArray(v) ? 'an array' : `a ${typeof v}`} (value not shown: it is a secret)`);
    else c.invalid(at, expected, v);
    return undefined;
  }
  if (!v.isWellFormed()) {
    c.error(at, `${expected} of valid Unicode text`, secret ? 'a string with an unpaired surrogate (value not shown: it is a secret)' : 'a string with an unpaired surrogate');
    return undefined;
  }
  return v;
}

const TOKEN_URL_EXPECTED = 'an absolute http:// or https:// URL, such as "https://idp.example.com/oauth2/token"';

function checkTokenUrl(c: IssueCollector, value: unknown, at: JsonPath, present: boolean): string | undefined {
  if (!present) {
    c.missing(at, TOKEN_URL_EXPECTED);
    return undefined;
  }
  if (typeof value !== 'string') {
    c.invalid(at, TOKEN_URL_EXPECTED, value);
    return undefined;
  }
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    c.invalid(at, TOKEN_URL_EXPECTED, value);
    return undefined;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    c.error(at, TOKEN_URL_EXPECTED, `a URL with scheme "${u.protocol.slice(0, -1)}"`);
    return undefined;
  }
  if (u.username !== '' || u.password !== '') {
    // Not echoed: the user info is a credential.
    c.error(at, `${TOKEN_URL_EXPECTED} without user info (credentials in token_url are not supported by this version: use client_id and client_secret)`, 'a URL with user info (value not shown)');
    return undefined;
  }
  if (u.protocol === 'http:' && !isLoopbackHost(u.hostname)) {
    c.warning(at, 'an https:// URL (over http:// the client secret and the token travel unencrypted)', c.found(at, value));
  }
  u.hash = '';
  return u.href;
}

function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host.startsWith('127.') || host === '[::1]';
}

function checkEndpointParams(c: IssueCollector, value: unknown, at: JsonPath): [string, string[]][] {
  const expected = 'an object of string arrays, such as {"audience": ["https://api.example.com"]}';
  if (!isPlainObject(value)) {
    c.invalid(at, expected, value);
    return [];
  }
  const out: [string, string[]][] = [];
  for (const [name, list] of Object.entries(value)) {
    const p = [...at, name];
    if (name === 'scope') {
      // Go's client refuses to overwrite the scope it sets itself: KrakenD fails every token request.
      c.error(p, 'a parameter other than "scope" (KrakenD always sends its own scope parameter, from "scopes")', '"scope" in endpoint_params');
      continue;
    }
    if (!Array.isArray(list)) {
      c.invalid(p, 'an array of strings (KrakenD reads every parameter as a list of values)', list);
      continue;
    }
    let ok = true;
    list.forEach((item, i) => {
      if (typeof item !== 'string' || !item.isWellFormed()) {
        c.invalid([...p, i], 'a string', item);
        ok = false;
      }
    });
    if (!name.isWellFormed()) {
      c.error(p, 'a parameter name of valid Unicode text', 'a name with an unpaired surrogate');
      ok = false;
    }
    if (ok) out.push([name, list as string[]]);
  }
  return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

// ---------------------------------------------------------------- the token source

/** Go's url.QueryEscape: everything but A-Z a-z 0-9 - _ . ~ escaped, space as "+". */
function formEscape(s: string): string {
  return encodeURIComponent(s)
    .replace(/[!'()*]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%20/g, '+');
}

/** A form body with keys sorted, as Go's url.Values.Encode writes it. */
function encodeForm(params: Map<string, string[]>): string {
  const parts: string[] = [];
  for (const k of [...params.keys()].sort()) {
    for (const v of params.get(k)!) parts.push(`${formEscape(k)}=${formEscape(v)}`);
  }
  return parts.join('&');
}

/** The header's auth scheme from token_type, as Go's oauth2.Token.Type() gives it. */
function tokenScheme(type: string): string {
  const lower = type.toLowerCase();
  if (lower === 'bearer' || type === '') return 'Bearer';
  if (lower === 'mac') return 'MAC';
  if (lower === 'basic') return 'Basic';
  return type;
}

type AuthStyle = 'header' | 'params';

interface Waiter {
  resolve(value: string): void;
  reject(err: unknown): void;
  signal: CancelSignal;
  onAbort(): void;
}

/** One token fetch and the requests waiting for it. */
interface Flight {
  readonly waiters: Set<Waiter>;
  readonly controller: AbortController;
  /** Why the fetch was aborted, when it was. */
  cause: GatewayError | undefined;
  timer: NodeJS.Timeout | undefined;
}

/**
 * The token of one set of options: cached until shortly before it expires,
 * fetched by one request at a time for everyone waiting. Failures are not
 * cached: the next request after a failure fetches again.
 */
class TokenSource {
  readonly #url: string;
  /** origin + path: what messages show (a query string may carry secrets). */
  readonly #where: string;
  readonly #secret: string;
  readonly #bodies: Record<AuthStyle, string>;
  readonly #basic: string;
  readonly #agent = loadUndici().then((u) => new u.Agent());
  /** The credential style that worked, once one has (Go's auth style cache). */
  #style: AuthStyle | undefined;
  #value: string | undefined;
  #refreshAt = 0;
  #flight: Flight | undefined;
  #closed = false;

  constructor(o: ClientCredentialsOptions) {
    this.#url = o.tokenUrl;
    const u = new URL(o.tokenUrl);
    this.#where = u.origin + u.pathname;
    this.#secret = o.clientSecret;
    const params = new Map<string, string[]>([['grant_type', ['client_credentials']]]);
    if (o.scopes.length) params.set('scope', [o.scopes.join(' ')]);
    // endpoint_params may override grant_type (Go allows it for non-compliant servers).
    for (const [k, v] of o.endpointParams) params.set(k, v);
    const inForm = new Map(params);
    if (o.clientId !== '') inForm.set('client_id', [o.clientId]);
    if (o.clientSecret !== '') inForm.set('client_secret', [o.clientSecret]);
    this.#bodies = { header: encodeForm(params), params: encodeForm(inForm) };
    this.#basic = 'Basic ' + Buffer.from(`${formEscape(o.clientId)}:${formEscape(o.clientSecret)}`).toString('base64');
  }

  /** The header value while the cached token is fresh, else undefined. */
  cached(): string | undefined {
    return this.#value !== undefined && performance.now() < this.#refreshAt ? this.#value : undefined;
  }

  /** Wait for a token: joins the fetch in flight or starts one. Rejects when `signal` aborts first. */
  fetch(signal: CancelSignal, capMs: number): Promise<string> {
    if (signal.aborted) return Promise.reject(this.#gaveUp(signal));
    if (this.#closed) return Promise.reject(new GatewayError(500, 'the OAuth2 token source was closed', { code: TOKEN_ERROR_CODES.unreachable }));
    return new Promise<string>((resolve, reject) => {
      let f = this.#flight;
      const start = f === undefined;
      if (f === undefined) f = this.#flight = { waiters: new Set(), controller: new AbortController(), cause: undefined, timer: undefined };
      const flight = f;
      const w: Waiter = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          flight.waiters.delete(w);
          reject(this.#gaveUp(signal));
          // Nobody waits any more: stop the fetch, and let the next request start a fresh one.
          if (flight.waiters.size === 0) this.#abort(flight, new GatewayError(499, 'nobody waits for the OAuth2 token', { code: TOKEN_ERROR_CODES.timeout }));
        },
      };
      flight.waiters.add(w);
      signal.onAbort(w.onAbort);
      if (start) this.#run(flight, capMs);
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    const f = this.#flight;
    if (f) this.#abort(f, new GatewayError(500, 'the OAuth2 token source was closed', { code: TOKEN_ERROR_CODES.unreachable }));
    await (await this.#agent).destroy();
  }

  #run(f: Flight, capMs: number): void {
    // The fetch never outlives the deadline of the request that started it, even if new requests keep joining.
    f.timer = setTimeout(() => this.#abort(f, this.#timeout()), capMs);
    f.timer.unref();
    this.#obtain(f.controller.signal, f).then(
      (t) => this.#settle(f, undefined, t),
      (err: unknown) => this.#settle(f, err, undefined),
    );
  }

  #abort(f: Flight, cause: GatewayError): void {
    if (this.#flight === f) this.#flight = undefined;
    if (f.cause !== undefined) return;
    f.cause = cause;
    f.controller.abort(cause);
  }

  #settle(f: Flight, err: unknown, token: { value: string; lifetimeS: number | undefined } | undefined): void {
    clearTimeout(f.timer);
    if (this.#flight === f) this.#flight = undefined;
    let value: string | undefined;
    if (token !== undefined) {
      value = token.value;
      // A negative lifetime: the server says it has expired already. The waiting requests use it
      // (as Go's client does) but it is not cached.
      if (token.lifetimeS === undefined || token.lifetimeS > 0) {
        const lifetimeMs = (token.lifetimeS ?? DEFAULT_TOKEN_LIFETIME_S) * 1000;
        if (!this.#closed) {
          this.#value = value;
          this.#refreshAt = performance.now() + lifetimeMs - Math.min(EXPIRY_MARGIN_MS, lifetimeMs / 2);
        }
      }
    }
    const failure = err === undefined ? undefined : f.cause ?? err;
    for (const w of f.waiters) {
      w.signal.offAbort(w.onAbort);
      if (failure !== undefined) w.reject(failure);
      else w.resolve(value!);
    }
    f.waiters.clear();
  }

  /** One fetch: the remembered credential style, or the Basic header and then the form (Go's probe). */
  async #obtain(signal: AbortSignal, f: Flight): Promise<{ value: string; lifetimeS: number | undefined }> {
    const style = this.#style;
    if (style !== undefined) return this.#attempt(style, signal, f);
    try {
      const t = await this.#attempt('header', signal, f);
      this.#style = 'header';
      return t;
    } catch (err) {
      // Only a refusal may mean "send the credentials in the form instead".
      if (!(err instanceof GatewayError) || err.code !== TOKEN_ERROR_CODES.rejected || signal.aborted) throw err;
    }
    const t = await this.#attempt('params', signal, f);
    this.#style = 'params';
    return t;
  }

  async #attempt(style: AuthStyle, signal: AbortSignal, f: Flight): Promise<{ value: string; lifetimeS: number | undefined }> {
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': USER_AGENT };
    if (style === 'header') headers.authorization = this.#basic;
    let status: number;
    let contentType: string;
    let body: string;
    try {
      const [{ request }, agent] = await Promise.all([loadUndici(), this.#agent]);
      const res = await request(this.#url, { method: 'POST', headers, body: this.#bodies[style], signal, dispatcher: agent });
      status = res.statusCode;
      contentType = String(res.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      body = await readBounded(res.body, res.headers['content-length'], this.#where);
    } catch (err) {
      if (f.cause !== undefined) throw f.cause;
      if (err instanceof GatewayError) throw err;
      const message = err instanceof Error ? err.message : String(err);
      throw new GatewayError(500, `fetching the OAuth2 token from ${this.#where}: ${message}`, { code: TOKEN_ERROR_CODES.unreachable, cause: err });
    }
    return this.#parse(status, contentType, body);
  }

  #parse(status: number, contentType: string, body: string): { value: string; lifetimeS: number | undefined } {
    const failed = status < 200 || status > 299;
    let fields: Record<string, unknown> | undefined;
    if (contentType === 'application/x-www-form-urlencoded' || contentType === 'text/plain') {
      fields = Object.fromEntries(new URLSearchParams(body));
    } else {
      try {
        const parsed: unknown = JSON.parse(body);
        if (isPlainObject(parsed)) fields = parsed;
      } catch {
        // reported below
      }
    }
    const errorCode = typeof fields?.error === 'string' && fields.error !== '' ? fields.error : undefined;
    if (failed || errorCode !== undefined) {
      throw this.#invalid(`the token server at ${this.#where} refused: status ${status}${errorCode ? `, error ${this.#printable(errorCode)}` : ''}`, TOKEN_ERROR_CODES.rejected);
    }
    if (fields === undefined) throw this.#invalid(`the token server at ${this.#where} answered something that is not a JSON object`);
    const token = fields.access_token;
    if (typeof token !== 'string' || token === '') throw this.#invalid(`the answer of ${this.#where} has no access_token`);
    if (!TOKEN_VALUE.test(token)) throw this.#invalid(`the access_token from ${this.#where} has characters a header cannot carry`);
    const type = fields.token_type ?? '';
    if (typeof type !== 'string' || (type !== '' && !HTTP_TOKEN.test(type))) throw this.#invalid(`the token_type from ${this.#where} is not a valid token type`);
    return { value: `${tokenScheme(type)} ${token}`, lifetimeS: this.#lifetime(fields.expires_in) };
  }

  /** expires_in in seconds: undefined when absent, null, empty or 0 (Go reads 0 as "no expiry given"). */
  #lifetime(v: unknown): number | undefined {
    if (v === undefined || v === null || v === '') return undefined;
    // Go accepts a JSON number or a numeric string (some servers send "3600"), integers only.
    const n = typeof v === 'number' ? v : typeof v === 'string' && /^[+-]?\d+$/.test(v.trim()) ? Number(v.trim()) : NaN;
    if (!Number.isInteger(n)) throw this.#invalid(`the expires_in from ${this.#where} is not an integer number of seconds`);
    if (n === 0) return undefined;
    return Math.min(n, MAX_INT32);
  }

  #printable(code: string): string {
    if (!ERROR_CODE.test(code) || (this.#secret !== '' && code.includes(this.#secret))) return '(not printable)';
    return JSON.stringify(code);
  }

  #invalid(message: string, code: string = TOKEN_ERROR_CODES.invalid): GatewayError {
    return new GatewayError(500, message, { code });
  }

  #timeout(): GatewayError {
    return new GatewayError(500, `no OAuth2 token from ${this.#where} before the endpoint timeout`, { code: TOKEN_ERROR_CODES.timeout });
  }

  /** The error of a request that stopped waiting: its own reason when the client left, else a token timeout. */
  #gaveUp(signal: CancelSignal): unknown {
    const r = signal.reason;
    if (r instanceof GatewayError && r.code !== 'TIMEOUT') return r;
    return this.#timeout();
  }
}

type Body = Dispatcher.ResponseData['body'];

/** The whole body as text, or an error past MAX_TOKEN_BODY_BYTES (the connection is dropped, not drained). */
async function readBounded(body: Body, length: string | string[] | undefined, where: string): Promise<string> {
  const tooLarge = () => new GatewayError(500, `the answer of ${where} is larger than ${MAX_TOKEN_BODY_BYTES} bytes`, { code: TOKEN_ERROR_CODES.invalid });
  if (Number(length) > MAX_TOKEN_BODY_BYTES) {
    body.destroy();
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > MAX_TOKEN_BODY_BYTES) {
      body.destroy();
      throw tooLarge();
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, size).toString('utf8');
}
