// KrakenD's Lua modifiers (krakend-lua), on the runtime of lua-runtime.ts:
//
//   modifier/lua-endpoint  service or endpoint: `ctx`, the HTTP request, before
//                          the backends (pre only)
//   modifier/lua-proxy     endpoint: `request` before the backends are split,
//                          `response` after they are merged
//   modifier/lua-backend   backend: `request` of one backend call (its URL,
//                          method, headers, body), `response` of that backend
//
// Fields: sources (files read at load, relative to the working directory, as
// KrakenD reads them; joined into one chunk), md5 (their checksums), pre,
// post, live (re-read the sources on every request), allow_open_libs,
// skip_next (no call to the next stage: the script answers). A source that is
// missing, a checksum that differs and code that does not compile are
// configuration errors. Each script set is compiled once into one VM, kept
// across reloads that leave it unchanged.
//
// A script error is that request's 500 (the message, placed as KrakenD does,
// "... (pre-script:L2)", is the body with router.return_error_msg);
// custom_error(msg, status, content_type) answers with its status. A script
// is stopped at the request's deadline, and its state has a memory budget.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { checkFields, expectObject, type ObjectRules } from '../config/fields.ts';
import type { IssueCollector } from '../config/issues.ts';
import type { JsonPath } from '../config/json-path.ts';
import type { BackendConfig, EndpointConfig } from '../config/types.ts';
import { Deadline } from '../proxy/abort.ts';
import { GatewayError } from '../proxy/errors.ts';
import { canonicalHeaderKey, compileHeaderForwarder, HTTP_TOKEN, isHopByHop, type HeaderForwarder } from '../proxy/headers.ts';
import { compileQueryFilter, parseQuery, type QueryFilter } from '../proxy/query.ts';
import type { BackendCall, Passthrough, Proxy, ProxyRequest, ProxyResponse, RawHeaders } from '../proxy/types.ts';
import { loadUndici } from '../proxy/undici-package.ts';
import { log } from '../telemetry/log.ts';
import { USER_AGENT } from '../version.ts';
import { luaEngineError, wasmoonPort } from './lua-engine.ts';
import {
  LuaError, LuaScope,
  type LuaContextApi, type LuaHttpAnswer, type LuaHttpRequest, type LuaRequestApi, type LuaResponseApi,
} from './lua-api.ts';
import { joinSources, LUA_ERROR_CODE, luaSyntaxError, LuaVm, type LuaSource, type ScriptSet } from './lua-runtime.ts';
import { addResponseHeader, type CompileContext, type Middleware, type Namespace, type NamespaceScope } from './namespace.ts';
import { cloneData } from './qos-http-cache.ts';
import { stateKey } from './state.ts';

export interface LuaOptions {
  /** The source files as read at load (path as written, text). */
  sources: LuaSource[];
  pre: string;
  post: string;
  live: boolean;
  allowOpenLibs: boolean;
  skipNext: boolean;
}

/** Lua heap one script set may use (its VM is shared by the requests running it). */
export const LUA_MEMORY_MAX = 64 * 1024 * 1024;
/** A source file larger than this is refused. */
const MAX_SOURCE_BYTES = 4 * 1024 * 1024;

const RULES: ObjectRules = {
  sources: 'string[]',
  md5: 'object',
  pre: 'string',
  post: 'string',
  live: 'boolean',
  allow_open_libs: 'boolean',
  skip_next: 'boolean',
};

type Kind = 'endpoint' | 'proxy' | 'backend';

function parseLua(name: string, kind: Kind, raw: unknown, path: JsonPath, c: IssueCollector): LuaOptions | undefined {
  if (!expectObject(c, raw, path, 'an object with "pre", "post" or "sources"')) return undefined;
  const before = c.errors.length;
  const valid = checkFields(c, raw, path, RULES, `the "${name}" namespace`);
  const o: LuaOptions = {
    sources: [],
    pre: valid.has('pre') ? (raw.pre as string) : '',
    post: valid.has('post') ? (raw.post as string) : '',
    live: raw.live === true,
    allowOpenLibs: raw.allow_open_libs === true,
    skipNext: raw.skip_next === true,
  };
  const engineError = luaEngineError();
  if (engineError !== undefined) {
    c.error(path, 'a working Lua engine', engineError);
    return undefined;
  }
  const digests = new Map<string, string>();
  if (valid.has('sources')) {
    (raw.sources as string[]).forEach((file, i) => {
      const at = [...path, 'sources', i];
      let bytes: Buffer;
      try {
        bytes = readFileSync(file);
      } catch (err) {
        c.error(at, 'a readable Lua file (relative to the working directory, as KrakenD reads it)', `${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        return;
      }
      if (bytes.length > MAX_SOURCE_BYTES) {
        c.error(at, `a Lua file of at most ${MAX_SOURCE_BYTES} bytes`, `${file}: ${bytes.length} bytes`);
        return;
      }
      digests.set(file, createHash('md5').update(bytes).digest('hex'));
      o.sources.push({ path: file, code: bytes.toString('utf8') });
    });
  }
  if (valid.has('md5')) checkDigests(c, raw.md5 as Record<string, unknown>, [...path, 'md5'], digests, o.live);
  if (kind === 'endpoint') {
    if (o.post !== '') c.warning([...path, 'post'], 'no "post" (modifier/lua-endpoint runs before the backends only)', 'post code that never runs, as in KrakenD');
    if (o.skipNext) c.warning([...path, 'skip_next'], 'no "skip_next" (it applies to modifier/lua-proxy and modifier/lua-backend)', 'skip_next: true, ignored');
  }
  if (c.errors.length > before) return undefined;
  const port = wasmoonPort!;
  if (o.sources.length > 0) {
    const err = luaSyntaxError(port, joinSources(o.sources).code, 'sources', o.sources);
    if (err !== undefined) c.error([...path, 'sources'], 'Lua code that compiles', err);
  }
  for (const field of ['pre', 'post'] as const) {
    if (o[field] === '') continue;
    const err = luaSyntaxError(port, o[field], `${field}-script`);
    if (err !== undefined) c.error([...path, field], 'Lua code that compiles', err);
  }
  if (c.errors.length > before) return undefined;
  return o;
}

function checkDigests(c: IssueCollector, md5: Record<string, unknown>, path: JsonPath, digests: ReadonlyMap<string, string>, live: boolean): void {
  if (live && Object.keys(md5).length > 0) {
    c.warning(path, 'no "md5" with "live": true', 'checksums that are not checked when the sources are re-read on every request (as in KrakenD)');
    return;
  }
  for (const [file, want] of Object.entries(md5)) {
    const at = [...path, file];
    if (typeof want !== 'string') {
      c.invalid(at, 'the md5 checksum of the file, as a hex string', want);
      continue;
    }
    const have = digests.get(file);
    if (have === undefined) {
      c.error(at, 'a file listed in "sources"', JSON.stringify(file));
      continue;
    }
    if (have !== want.toLowerCase()) c.error(at, `the md5 checksum of ${file} (${have})`, JSON.stringify(want));
  }
}

function hasWork(o: LuaOptions): boolean {
  return o.sources.length > 0 || o.pre !== '' || o.post !== '' || o.skipNext;
}

function scriptSet(o: LuaOptions, kind: Kind): ScriptSet {
  return { sources: o.sources, pre: o.pre, post: kind === 'endpoint' ? '' : o.post, allowOpenLibs: o.allowOpenLibs };
}

/** The VM of a script set: one per distinct set, kept while a plan uses it. */
function vmFor(name: string, o: LuaOptions, kind: Kind, ctx: CompileContext): LuaVm<number> {
  const scripts = scriptSet(o, kind);
  return ctx.state.get(stateKey(name, scripts), () => new LuaVm(wasmoonPort!, scripts, { memoryMax: LUA_MEMORY_MAX }), (vm) => vm.close());
}

/** Settings every middleware of the three namespaces needs. */
interface RunSettings {
  readonly name: string;
  readonly vm: LuaVm<number>;
  readonly o: LuaOptions;
  readonly endpoint: string;
  /** The endpoint timeout, when the request carries no deadline. */
  readonly timeoutMs: number;
  /** http_response bodies larger than this are refused. */
  readonly maxBodyBytes: number;
}

function settings(name: string, o: LuaOptions, kind: Kind, ctx: CompileContext): RunSettings {
  return {
    name,
    vm: vmFor(name, o, kind, ctx),
    o,
    endpoint: ctx.endpoint?.endpoint ?? '',
    timeoutMs: ctx.endpoint?.timeoutMs ?? ctx.service.timeoutMs,
    maxBodyBytes: ctx.service.maxBackendBodyBytes,
  };
}

/** One request's scope: its deadline, where print() goes, its http_response calls. */
class RequestScope extends LuaScope {
  readonly #s: RunSettings;
  readonly #req: ProxyRequest;

  constructor(s: RunSettings, req: ProxyRequest) {
    const signal = req.signal;
    if (signal.aborted) throw signal.reason;
    super(signal instanceof Deadline && signal.due > 0 ? signal.due : performance.now() + s.timeoutMs);
    this.#s = s;
    this.#req = req;
  }

  override print(text: string): void {
    const s = this.#s;
    log('info', text, { namespace: s.name, ...(s.endpoint ? { endpoint: s.endpoint } : {}), request_id: this.#req.requestId });
  }

  override http(r: LuaHttpRequest): Promise<LuaHttpAnswer> {
    return httpCall(r, this.#req, this.due, this.#s.maxBodyBytes);
  }
}

/** live: the sources as they are on disk now. */
async function readSources(sources: readonly LuaSource[]): Promise<LuaSource[]> {
  return Promise.all(
    sources.map(async (src) => {
      try {
        return { path: src.path, code: await readFile(src.path, 'utf8') };
      } catch {
        throw new GatewayError(500, `lua: unable to load required source ${src.path}`, { code: LUA_ERROR_CODE });
      }
    }),
  );
}

// ---------------------------------------------------------------- lua-endpoint

function endpointMiddleware(s: RunSettings): Middleware {
  return (next: Proxy): Proxy =>
    async (req) => {
      const ctx = new ContextView(req);
      try {
        const scope = new RequestScope(s, req);
        scope.ctx = ctx;
        try {
          if (s.o.live) s.vm.useSources(scope, await readSources(s.o.sources));
          const p = s.vm.begin(scope);
          if (p !== undefined) await p;
        } finally {
          s.vm.end(scope);
        }
      } catch (err) {
        throw routerError(err);
      }
      return next(ctx.out);
    };
}

/** At router level KrakenD answers a script error with its status and no body (the content type of custom_error, if any). */
function routerError(err: unknown): unknown {
  if (!(err instanceof GatewayError)) return err;
  const headers = err.contentType !== undefined ? ['content-type', err.contentType] : undefined;
  return new GatewayError(err.status, err.message, { code: err.code, body: '', headers, cause: err });
}

/** `ctx`: the client's request, as a copy the next stages get. */
class ContextView implements LuaContextApi {
  readonly out: ProxyRequest;
  #headersCopied = false;
  #paramsCopied = false;

  constructor(req: ProxyRequest) {
    // Headers later scripts add to the answer must reach the request the handler holds: share the list.
    req.responseHeaders ??= [];
    this.out = { ...req };
  }

  method(): string {
    return this.out.method;
  }

  setMethod(v: string): void {
    this.out.method = v;
  }

  url(): string {
    return this.out.rawQuery === '' ? this.out.path : `${this.out.path}?${this.out.rawQuery}`;
  }

  setUrl(v: string): void {
    const u = new URL(v, 'http://localhost');
    this.out.path = u.pathname;
    this.out.rawQuery = u.search.slice(1);
    this.out.query = undefined;
  }

  host(): string {
    return this.out.host;
  }

  setHost(v: string): void {
    this.out.host = v;
  }

  queryValue(key: string): string | undefined {
    return new URLSearchParams(this.out.rawQuery).get(key) ?? undefined;
  }

  setQueryValue(key: string, v: string): void {
    const q = parseQuery(this.out.rawQuery);
    q.set(key, [v]);
    this.out.rawQuery = encodeQueryGo(q);
    this.out.query = undefined;
  }

  param(name: string): string | undefined {
    const k = paramKey(this.out.params, name);
    return k === undefined ? undefined : this.out.params[k];
  }

  setParam(name: string, v: string): void {
    if (!this.#paramsCopied) {
      this.out.params = { ...this.out.params };
      this.#paramsCopied = true;
    }
    this.out.params[paramKey(this.out.params, name) ?? name] = v;
  }

  header(name: string): string[] | undefined {
    const v = this.out.headers[name.toLowerCase()];
    return v === undefined ? undefined : Array.isArray(v) ? v : [v];
  }

  setHeader(name: string, values: string[] | undefined): void {
    checkHeader(name, values, 'request');
    if (!this.#headersCopied) {
      this.out.headers = { ...this.out.headers };
      this.#headersCopied = true;
    }
    const key = name.toLowerCase();
    if (values === undefined) delete this.out.headers[key];
    else this.out.headers[key] = values.length === 1 ? values[0] : values;
  }

  body(): Buffer | undefined {
    return this.out.body;
  }

  setBody(b: Buffer): void {
    this.out.body = b;
  }
}

// ---------------------------------------------------------------- lua-proxy

interface ProxyCompiled {
  /** The endpoint's view of the client headers (what KrakenD's proxy request holds). */
  forward: HeaderForwarder;
  /** The endpoint's query filter. */
  query: QueryFilter;
}

function proxyMiddleware(s: RunSettings, ep: EndpointConfig): Middleware {
  const compiled: ProxyCompiled = {
    forward: compileHeaderForwarder(ep.inputHeaders, undefined, USER_AGENT),
    query: compileQueryFilter(ep.inputQueryStrings, undefined),
  };
  // proxy.static merges objects shared by every request into the answer: a post script gets a copy of the data then.
  const copyData = ep.proxy.static !== undefined;
  return (next: Proxy): Proxy =>
    async (req) => {
      const scope = new RequestScope(s, req);
      try {
        if (s.o.live) s.vm.useSources(scope, await readSources(s.o.sources));
        const view = new ProxyRequestView(req, compiled);
        scope.request = view;
        const p = s.vm.begin(scope);
        if (p !== undefined) await p;
        const out = view.result();
        const res = s.o.skipNext ? { data: {}, complete: false } : await next(out);
        if (!s.vm.hasPost) return res;
        const rv = new ResponseView(res, copyData);
        scope.response = rv;
        const q = s.vm.finish(scope);
        if (q !== undefined) await q;
        return rv.result(out);
      } finally {
        s.vm.end(scope);
      }
    };
}

/** Framing headers of an answer: a script may not set them (the gateway frames what it sends). */
const FRAMING = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'trailer']);

/** A header a script sets must be one HTTP can carry, and not one that frames the message. */
function checkHeader(name: string, values: string[] | undefined, side: 'request' | 'response'): void {
  if (!HTTP_TOKEN.test(name)) throw new LuaError(`invalid header name ${JSON.stringify(name)}`);
  if (values === undefined) return;
  const key = name.toLowerCase();
  if (side === 'request' ? isHopByHop(key) : FRAMING.has(key)) throw new LuaError(`${name}: this header cannot be set from a script`);
  for (const v of values) if (/[\r\n\0]/.test(v)) throw new LuaError(`invalid value for header ${name}`);
}

/** KrakenD's params are keyed with a capital first letter ("Id" for {id}); either spelling finds the parameter. */
function paramKey(params: Record<string, string>, name: string): string | undefined {
  if (Object.hasOwn(params, name)) return name;
  if (name === '') return undefined;
  const first = name[0];
  const other = (first === first.toUpperCase() ? first.toLowerCase() : first.toUpperCase()) + name.slice(1);
  return Object.hasOwn(params, other) ? other : undefined;
}

function capitalized(params: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k in params) out[k === '' ? k : k[0].toUpperCase() + k.slice(1)] = params[k];
  return out;
}

/** Header lists of a request or answer, by lower-case name. */
function headerMap(headers: Record<string, string | string[] | undefined>): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const k in headers) {
    const v = headers[k];
    if (v !== undefined) m.set(k, Array.isArray(v) ? [...v] : [v]);
  }
  return m;
}

function canonicalMap(m: Map<string, string[]>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [k, v] of m) out.set(canonicalHeaderKey(k), v);
  return out;
}

/** Header lists by lower-case name, read when a script first asks, and what it changed. */
class HeaderEdits {
  readonly changed = new Map<string, string[] | undefined>();
  readonly #load: () => Map<string, string[]>;
  readonly #side: 'request' | 'response';
  #map: Map<string, string[]> | undefined;

  constructor(load: () => Map<string, string[]>, side: 'request' | 'response') {
    this.#load = load;
    this.#side = side;
  }

  /** By canonical name (X-Forwarded-For), as KrakenD's tables are. */
  all(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const [k, v] of this.#headers()) out.set(canonicalHeaderKey(k), v);
    return out;
  }

  get(name: string): string[] | undefined {
    return this.#headers().get(name.toLowerCase());
  }

  set(name: string, values: string[] | undefined): void {
    checkHeader(name, values, this.#side);
    const key = name.toLowerCase();
    if (values === undefined) this.#headers().delete(key);
    else this.#headers().set(key, values);
    this.changed.set(key, values);
  }

  #headers(): Map<string, string[]> {
    return (this.#map ??= this.#load());
  }
}

/** The header methods of `request` (lua-proxy) and `response`, over their HeaderEdits. */
abstract class HeaderMethods {
  protected abstract readonly edits: HeaderEdits;

  headers(): Map<string, string[]> {
    return this.edits.all();
  }

  header(name: string): string[] | undefined {
    return this.edits.get(name);
  }

  setHeader(name: string, values: string[] | undefined): void {
    this.edits.set(name, values);
  }
}

/** The headers a post script reads: a no-op answer's, else the backend's (lua-backend), else none yet. */
function answerHeaders(res: ProxyResponse): Map<string, string[]> {
  const pt = res.passthrough;
  if (pt === undefined) return res.meta ? headerMap(res.meta.headers) : new Map();
  const m = new Map<string, string[]>();
  for (let i = 0; i < pt.headers.length; i += 2) {
    const k = (pt.headers[i] as string).toLowerCase();
    const v = pt.headers[i + 1];
    m.set(k, [...(m.get(k) ?? []), ...(Array.isArray(v) ? v : [v])]);
  }
  return m;
}

/**
 * `request` of modifier/lua-proxy: the request before it is split to the
 * backends. Headers are what the endpoint forwards (input_headers, plus
 * X-Forwarded-For, X-Forwarded-Host, User-Agent); a header the script sets
 * reaches every backend, one it deletes none.
 */
class ProxyRequestView extends HeaderMethods implements LuaRequestApi {
  readonly #req: ProxyRequest;
  readonly #c: ProxyCompiled;
  readonly #out: ProxyRequest;
  protected readonly edits: HeaderEdits;
  #url = '';

  constructor(req: ProxyRequest, c: ProxyCompiled) {
    super();
    this.#req = req;
    this.#c = c;
    this.edits = new HeaderEdits(() => headerMap(c.forward(req)), 'request');
    req.responseHeaders ??= [];
    this.#out = { ...req };
  }

  method(): string {
    return this.#out.method;
  }

  setMethod(v: string): void {
    this.#out.method = v;
  }

  path(): string {
    return this.#out.path;
  }

  setPath(v: string): void {
    this.#out.path = v;
  }

  query(): string {
    return encodeQueryGo(parseQuery(this.#c.query(this.#out.rawQuery)));
  }

  setQuery(v: string): void {
    this.#out.rawQuery = v.startsWith('?') ? v.slice(1) : v;
    this.#out.query = undefined;
  }

  url(): string {
    return this.#url;
  }

  setUrl(v: string): void {
    this.#url = v;
  }

  params(): Record<string, string> {
    return capitalized(this.#out.params);
  }

  param(name: string): string | undefined {
    const k = paramKey(this.#out.params, name);
    return k === undefined ? undefined : this.#out.params[k];
  }

  setParam(name: string, v: string): void {
    const params = this.#out.params === this.#req.params ? (this.#out.params = { ...this.#req.params }) : this.#out.params;
    params[paramKey(params, name) ?? name] = v;
  }

  body(): Buffer | undefined {
    return this.#out.body;
  }

  setBody(b: Buffer): void {
    this.#out.body = b;
  }

  /** The request the backends get. */
  result(): ProxyRequest {
    const changed = this.edits.changed;
    if (changed.size === 0) return this.#out;
    const out = this.#out;
    out.headers = { ...out.headers };
    const added: Record<string, string> = { ...out.upstreamHeaders };
    for (const [k, v] of changed) {
      if (v === undefined) {
        delete out.headers[k];
        delete added[k];
      } else added[k] = v.join(', ');
    }
    out.upstreamHeaders = added;
    return out;
  }
}

/**
 * `response`: the data the script changes (at endpoint level a private copy:
 * the merged data may hold objects shared with later requests), and the
 * headers it sets: on a no-op answer they change the backend's headers, on
 * any other they are added to the client's answer.
 */
class ResponseView extends HeaderMethods implements LuaResponseApi {
  #res: ProxyResponse;
  readonly #copy: boolean;
  #copied = false;
  #status: number;
  protected readonly edits: HeaderEdits;

  constructor(res: ProxyResponse, copy: boolean) {
    super();
    this.#res = { ...res };
    this.#copy = copy;
    this.#status = res.passthrough?.status ?? res.meta?.status ?? 0;
    this.edits = new HeaderEdits(() => answerHeaders(res), 'response');
  }

  complete(): boolean {
    return this.#res.complete;
  }

  setComplete(b: boolean): void {
    this.#res.complete = b;
  }

  status(): number {
    return this.#status;
  }

  setStatus(n: number): void {
    this.#status = n;
  }

  data(): Record<string, unknown> {
    if (this.#copy && !this.#copied) {
      this.#res.data = cloneData(this.#res.data);
      this.#copied = true;
    }
    return this.#res.data;
  }

  setData(d: Record<string, unknown>): void {
    this.#res.data = d;
    this.#copied = true;
  }

  body(): Buffer {
    if (this.#res.passthrough) throw new LuaError('the body of a no-op response is streamed to the client: body() is not available in Portico');
    return Buffer.alloc(0);
  }

  setBody(): void {
    if (this.#res.passthrough) throw new LuaError('the body of a no-op response is streamed to the client: body() is not available in Portico');
  }

  /** The answer after the script: a changed status and headers on a no-op answer, else headers for the client. */
  result(req: ProxyRequest): ProxyResponse {
    const res = this.#res;
    const pt = res.passthrough;
    const changed = this.edits.changed;
    if (pt !== undefined) {
      if (changed.size === 0 && this.#status === pt.status) return res;
      res.passthrough = rewritePassthrough(pt, this.#status, changed);
      return res;
    }
    for (const [k, v] of changed) {
      if (v === undefined) continue;
      for (const one of v) addResponseHeader(req, canonicalHeaderKey(k), one);
    }
    return res;
  }
}

function rewritePassthrough(pt: Passthrough, status: number, changed: ReadonlyMap<string, string[] | undefined>): Passthrough {
  const headers: RawHeaders = [];
  for (let i = 0; i < pt.headers.length; i += 2) {
    if (!changed.has((pt.headers[i] as string).toLowerCase())) headers.push(pt.headers[i], pt.headers[i + 1]);
  }
  for (const [k, v] of changed) if (v !== undefined) for (const one of v) headers.push(canonicalHeaderKey(k), one);
  return { status, headers, pipe: (res) => pt.pipe(res), discard: () => pt.discard() };
}

// ---------------------------------------------------------------- lua-backend

function backendMiddleware(s: RunSettings, ep: EndpointConfig, b: BackendConfig): Middleware {
  const forward = compileHeaderForwarder(ep.inputHeaders, b.inputHeaders, USER_AGENT);
  return (next: Proxy): Proxy =>
    async (req) => {
      const scope = new RequestScope(s, req);
      try {
        if (s.o.live) s.vm.useSources(scope, await readSources(s.o.sources));
        let started = false;
        const begin = (call: BackendCall, sent: boolean): Promise<void> | undefined => {
          scope.request = new CallView(call, req, sent);
          started = true;
          return s.vm.begin(scope);
        };
        const unsent = (): BackendCall => ({ origin: '', path: '', method: b.method, headers: forward(req), body: req.body });
        let res: ProxyResponse;
        if (s.o.skipNext) {
          const p = begin(unsent(), false);
          if (p !== undefined) await p;
          res = { data: {}, complete: false };
        } else {
          res = await next({ ...req, prepareCall: (call) => begin(call, true) });
          // A stage below answered without calling: the request's globals still come from the sources and pre.
          if (!started) {
            const p = begin(unsent(), false);
            if (p !== undefined) await p;
          }
        }
        if (!s.vm.hasPost) return res;
        const rv = new ResponseView(res, false);
        scope.response = rv;
        const q = s.vm.finish(scope);
        if (q !== undefined) await q;
        return rv.result(req);
      } finally {
        s.vm.end(scope);
      }
    };
}

/**
 * `request` of modifier/lua-backend: the call about to be sent. url() is its
 * full URL and url(v) sends it elsewhere; method, headers and body are the
 * call's own. path(v), query(v) and params(k, v) change nothing any more (the
 * URL is built), as in KrakenD.
 */
class CallView implements LuaRequestApi {
  readonly #call: BackendCall;
  readonly #req: ProxyRequest;
  readonly #sent: boolean;
  #params: Record<string, string> | undefined;

  constructor(call: BackendCall, req: ProxyRequest, sent: boolean) {
    this.#call = call;
    this.#req = req;
    this.#sent = sent;
  }

  method(): string {
    return this.#call.method;
  }

  setMethod(v: string): void {
    if (!HTTP_TOKEN.test(v)) throw new LuaError(`invalid method ${JSON.stringify(v)}`);
    this.#call.method = v;
  }

  path(): string {
    const q = this.#call.path.indexOf('?');
    return q < 0 ? this.#call.path : this.#call.path.slice(0, q);
  }

  setPath(): void {}

  query(): string {
    const q = this.#call.path.indexOf('?');
    return q < 0 ? '' : this.#call.path.slice(q + 1);
  }

  setQuery(): void {}

  url(): string {
    return this.#sent ? this.#call.origin + this.#call.path : '';
  }

  setUrl(v: string): void {
    let u: URL;
    try {
      u = new URL(v);
    } catch {
      throw new LuaError(`invalid URL ${JSON.stringify(v)}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new LuaError(`invalid URL ${JSON.stringify(v)}: http or https expected`);
    this.#call.origin = u.origin;
    this.#call.path = u.pathname + u.search;
  }

  params(): Record<string, string> {
    return capitalized(this.#params ?? this.#req.params);
  }

  param(name: string): string | undefined {
    const p = this.#params ?? this.#req.params;
    const k = paramKey(p, name);
    return k === undefined ? undefined : p[k];
  }

  setParam(name: string, v: string): void {
    const p = (this.#params ??= { ...this.#req.params });
    p[paramKey(p, name) ?? name] = v;
  }

  headers(): Map<string, string[]> {
    return canonicalMap(headerMap(this.#call.headers));
  }

  header(name: string): string[] | undefined {
    const v = this.#call.headers[name.toLowerCase()];
    return v === undefined ? undefined : Array.isArray(v) ? v : [v];
  }

  setHeader(name: string, values: string[] | undefined): void {
    checkHeader(name, values, 'request');
    const key = name.toLowerCase();
    if (values === undefined) delete this.#call.headers[key];
    else this.#call.headers[key] = values.length === 1 ? values[0] : values;
  }

  body(): Buffer | undefined {
    return this.#call.body;
  }

  setBody(b: Buffer): void {
    this.#call.body = b;
  }
}

// ---------------------------------------------------------------- http_response

/**
 * http_response.new: an HTTP call from a script, bounded like a backend call:
 * it ends at the request's deadline, its body may not exceed the backend body
 * limit, redirects are not followed, only http and https.
 */
async function httpCall(r: LuaHttpRequest, req: ProxyRequest, due: number, limit: number): Promise<LuaHttpAnswer> {
  let url: URL;
  try {
    url = new URL(r.url);
  } catch {
    throw new Error(`http_response: invalid URL ${JSON.stringify(r.url)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`http_response: ${url.protocol} URLs are not allowed (http or https)`);
  if (!HTTP_TOKEN.test(r.method)) throw new Error(`http_response: invalid method ${JSON.stringify(r.method)}`);
  const remaining = due - performance.now();
  if (remaining <= 0) throw new Error('http_response: the endpoint timeout has passed');
  const headers: string[] = ['user-agent', USER_AGENT];
  for (const [k, v] of r.headers) headers.push(k, v);
  const abort = new AbortController();
  const onAbort = () => abort.abort(req.signal.reason);
  req.signal.onAbort(onAbort);
  const timer = setTimeout(() => abort.abort(new Error('http_response: the endpoint timeout has passed')), remaining);
  try {
    const res = await (await loadUndici()).request(url, { method: r.method, headers, body: r.body, signal: abort.signal });
    const declared = Number(res.headers['content-length']);
    if (declared > limit) {
      res.body.destroy();
      throw new Error(`http_response: body larger than ${limit} bytes`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length;
      if (size > limit) {
        res.body.destroy();
        throw new Error(`http_response: body larger than ${limit} bytes`);
      }
      chunks.push(chunk as Buffer);
    }
    return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks, size) };
  } catch (err) {
    if (abort.signal.aborted) throw new Error(`http_response: ${(abort.signal.reason as Error)?.message ?? 'aborted'}`);
    throw err instanceof Error && err.message.startsWith('http_response:') ? err : new Error(`http_response: ${(err as Error).message}`);
  } finally {
    clearTimeout(timer);
    req.signal.offAbort(onAbort);
  }
}

// ---------------------------------------------------------------- queries

/** Go's url.Values.Encode: names sorted, QueryEscape'd names and values. */
function encodeQueryGo(q: Map<string, string[]>): string {
  const parts: string[] = [];
  for (const k of [...q.keys()].sort()) for (const v of q.get(k)!) parts.push(`${queryEscape(k)}=${queryEscape(v)}`);
  return parts.join('&');
}

function queryEscape(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase()).replace(/%20/g, '+');
}

// ---------------------------------------------------------------- the namespaces

function luaNamespace(name: string, kind: Kind, scopes: readonly NamespaceScope[], order: number): Namespace<LuaOptions> {
  return {
    name,
    scopes,
    order,
    // Scripts change what is served: an unsupported one is never silently ignored.
    policy: true,
    parse: (raw, path, c) => parseLua(name, kind, raw, path, c),
    compile(o, ctx) {
      if (!hasWork(o) || ctx.checkOnly) return undefined;
      const s = settings(name, o, kind, ctx);
      if (kind === 'endpoint') return { middleware: endpointMiddleware(s) };
      if (kind === 'proxy') return { middleware: proxyMiddleware(s, ctx.endpoint!) };
      return { middleware: backendMiddleware(s, ctx.endpoint!, ctx.backend!) };
    },
  };
}

/** `modifier/lua-endpoint` (service or endpoint): `ctx`, the HTTP request, before anything else of the endpoint's pipeline. */
export const modifierLuaEndpoint = luaNamespace('modifier/lua-endpoint', 'endpoint', ['service', 'endpoint'], 600);
/** `modifier/lua-proxy` (endpoint): `request` before the backends, `response` after their merge. */
export const modifierLuaProxy = luaNamespace('modifier/lua-proxy', 'proxy', ['endpoint'], 602);
/** `modifier/lua-backend` (backend): `request` of one backend call, `response` of that backend. */
export const modifierLuaBackend = luaNamespace('modifier/lua-backend', 'backend', ['backend'], 605);
