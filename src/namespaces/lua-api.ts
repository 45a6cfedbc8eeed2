// KrakenD's Lua objects for modifier/lua-*: request, response, ctx, luaTable,
// luaList, luaNil, http_response (its methods; `new` is the runtime's), json
// and print, as host functions registered once per engine. The objects are
// userdata holding an id into the running request's own object list (its
// LuaScope); data stays in JavaScript: a luaTable reads and writes the
// response object itself, and only the values a script asks for cross into
// Lua. What the request, response and ctx objects act on is given by the
// namespaces (modifier-lua.ts) through the Lua*Api interfaces.

import {
  LUA_TBOOLEAN, LUA_TNIL, LUA_TNUMBER, LUA_TSTRING, LUA_TTABLE, LUA_TUSERDATA,
  type HostFunction, type LuaPort,
} from './lua-engine.ts';

/** The `request` object (modifier/lua-proxy, modifier/lua-backend). */
export interface LuaRequestApi {
  method(): string;
  setMethod(v: string): void;
  path(): string;
  setPath(v: string): void;
  /** The query string, without '?'. */
  query(): string;
  setQuery(v: string): void;
  url(): string;
  setUrl(v: string): void;
  params(): Record<string, string>;
  param(name: string): string | undefined;
  setParam(name: string, v: string): void;
  headers(): Map<string, string[]>;
  header(name: string): string[] | undefined;
  /** undefined deletes. */
  setHeader(name: string, values: string[] | undefined): void;
  body(): Buffer | undefined;
  setBody(b: Buffer): void;
}

/** The `ctx` object (modifier/lua-endpoint): the HTTP request itself. */
export interface LuaContextApi {
  method(): string;
  setMethod(v: string): void;
  /** Path and query, as the client sent them. */
  url(): string;
  setUrl(v: string): void;
  host(): string;
  setHost(v: string): void;
  queryValue(key: string): string | undefined;
  setQueryValue(key: string, v: string): void;
  param(name: string): string | undefined;
  setParam(name: string, v: string): void;
  header(name: string): string[] | undefined;
  setHeader(name: string, values: string[] | undefined): void;
  body(): Buffer | undefined;
  setBody(b: Buffer): void;
}

/** The `response` object (post). */
export interface LuaResponseApi {
  complete(): boolean;
  setComplete(b: boolean): void;
  status(): number;
  setStatus(n: number): void;
  /** The data the script may change (the caller decides whether it is a private copy). */
  data(): Record<string, unknown>;
  setData(d: Record<string, unknown>): void;
  headers(): Map<string, string[]>;
  header(name: string): string[] | undefined;
  setHeader(name: string, values: string[] | undefined): void;
  body(): Buffer;
  setBody(b: Buffer): void;
}

/** What http_response.new asks for. */
export interface LuaHttpRequest {
  url: string;
  method: string;
  body: Buffer | undefined;
  headers: [string, string][];
}

export interface LuaHttpAnswer {
  status: number;
  /** Lower-case names. */
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** One request's run of a script set: its global table, its objects, its deadline. */
export class LuaScope {
  readonly gen: number;
  /** performance.now() after which the script is stopped. */
  due: number;
  request: LuaRequestApi | undefined;
  ctx: LuaContextApi | undefined;
  response: LuaResponseApi | undefined;
  /** Set when the hook stopped the script at the deadline. */
  timedOut = false;
  /** The request's global table (a registry reference), between pre and post. */
  envRef = 0;
  /** live: the compiled sources for this request (else the VM's). */
  sourcesRef = 0;
  readonly objects: unknown[] = [];
  #ids: Map<object, number> | undefined;

  constructor(due: number) {
    this.gen = nextGen = (nextGen + 1) | 0;
    this.due = due;
  }

  /** Where print() goes (nowhere unless a subclass says). */
  print(_text: string): void {}

  /** Makes the calls of http_response. */
  http(_r: LuaHttpRequest): Promise<LuaHttpAnswer> {
    return Promise.reject(new LuaError('http_response is not available here'));
  }

  /** The id of a data object (one id per object, however often a script asks for it). */
  idOf(o: object): number {
    const ids = (this.#ids ??= new Map());
    let id = ids.get(o);
    if (id === undefined) {
      id = this.objects.push(o) - 1;
      ids.set(o, id);
    }
    return id;
  }

  add(o: unknown): number {
    return this.objects.push(o) - 1;
  }
}

let nextGen = 0;

/** An error a script sees (bad arguments...): raised in Lua with this message. */
export class LuaError extends Error {}

const TAG_REQUEST = 1;
const TAG_RESPONSE = 2;
const TAG_CTX = 3;
const TAG_TABLE = 4;
const TAG_LIST = 5;
const TAG_NIL = 6;
export const TAG_HTTP = 7;
const TAG_NAMES = ['', 'request', 'response', 'ctx', 'luaTable', 'luaList', 'luaNil', 'http_response'];

/** Nesting of Lua tables converted to data (deeper: a cycle, or an abuse). */
const MAX_DEPTH = 100;

/** The request whose script is running (scripts run one at a time: the event loop); set by the runtime around each run. */
export const active: { scope: LuaScope | undefined } = { scope: undefined };

/** The stack index of `index` that stays valid while pushing. */
function absolute<S>(port: LuaPort<S>, L: S, index: number): number {
  return index < 0 ? port.top(L) + index + 1 : index;
}

/**
 * Host functions of one engine, registered once per process: the methods of
 * KrakenD's objects, print, json.
 */
export class HostApi<S> {
  readonly classes: Record<string, Record<string, unknown>> = {};
  readonly print: unknown;
  readonly json: Record<string, unknown>;
  readonly #port: LuaPort<S>;
  readonly #obj = new Int32Array(3);
  /** Per VM: the registry references of the metatables, by tag (set while the VM runs). */
  meta: number[] = [];

  constructor(port: LuaPort<S>) {
    this.#port = port;
    // An Error a method throws becomes a Lua error at the script's call. A Lua error already
    // on its way (the engine unwinds with a non-Error throw) goes on; raising happens outside the try.
    const fn = (f: HostFunction<S>) =>
      port.newFunction((L) => {
        let message: string;
        try {
          return f(L);
        } catch (err) {
          if (!(err instanceof Error)) throw err;
          message = err.message;
        }
        return port.raise(L, port.where(L) + message);
      });
    const method = (tag: number, f: (L: S, self: unknown, n: number) => number) => fn((L) => f(L, this.#self(L, tag), port.top(L)));
    this.print = fn((L) => {
      scope().print(port.toString(L, 1));
      return 0;
    });
    this.json = {
      marshal: fn((L) => {
        if (port.top(L) !== 1) throw new LuaError('need arguments');
        port.pushString(L, marshalGo(this.readValue(L, 1, 0)));
        return 1;
      }),
      unmarshal: fn((L) => {
        if (port.top(L) !== 1) throw new LuaError('need arguments');
        let v: unknown;
        try {
          v = JSON.parse(this.#string(L, 1));
        } catch (err) {
          throw new LuaError((err as Error).message);
        }
        return this.pushValue(L, v);
      }),
    };
    const load = (tag: number, get: (s: LuaScope) => unknown) =>
      fn((L) => {
        const s = scope();
        if (get(s) === undefined) throw new LuaError(`${TAG_NAMES[tag]} is not available here`);
        this.pushObject(L, tag, 0);
        return 1;
      });
    this.classes.request = {
      load: load(TAG_REQUEST, (s) => s.request),
      method: method(TAG_REQUEST, (L, r, n) => this.#accessor(L, n, () => (r as LuaRequestApi).method(), (v) => (r as LuaRequestApi).setMethod(v))),
      path: method(TAG_REQUEST, (L, r, n) => this.#accessor(L, n, () => (r as LuaRequestApi).path(), (v) => (r as LuaRequestApi).setPath(v))),
      query: method(TAG_REQUEST, (L, r, n) => this.#accessor(L, n, () => (r as LuaRequestApi).query(), (v) => (r as LuaRequestApi).setQuery(v))),
      url: method(TAG_REQUEST, (L, r, n) => this.#accessor(L, n, () => (r as LuaRequestApi).url(), (v) => (r as LuaRequestApi).setUrl(v))),
      params: method(TAG_REQUEST, (L, r, n) => {
        const req = r as LuaRequestApi;
        if (n === 1) return this.pushValue(L, { ...req.params() });
        if (n === 2) return this.#pushString(L, req.param(this.#string(L, 2)) ?? '');
        req.setParam(this.#string(L, 2), this.#string(L, 3));
        return 0;
      }),
      headers: method(TAG_REQUEST, (L, r, n) => this.#headers(L, n, r as LuaRequestApi, true)),
      headerList: method(TAG_REQUEST, (L, r, n) => this.#headerList(L, n, r as LuaRequestApi)),
      body: method(TAG_REQUEST, (L, r, n) => this.#body(L, n, r as LuaRequestApi)),
    };
    this.classes.ctx = {
      load: load(TAG_CTX, (s) => s.ctx),
      method: method(TAG_CTX, (L, c, n) => this.#accessor(L, n, () => (c as LuaContextApi).method(), (v) => (c as LuaContextApi).setMethod(v))),
      url: method(TAG_CTX, (L, c, n) => this.#accessor(L, n, () => (c as LuaContextApi).url(), (v) => (c as LuaContextApi).setUrl(v))),
      host: method(TAG_CTX, (L, c, n) => this.#accessor(L, n, () => (c as LuaContextApi).host(), (v) => (c as LuaContextApi).setHost(v))),
      query: method(TAG_CTX, (L, c, n) => {
        const ctx = c as LuaContextApi;
        if (n === 1) throw new LuaError('need arguments');
        if (n === 2) return this.#pushString(L, ctx.queryValue(this.#string(L, 2)) ?? '');
        ctx.setQueryValue(this.#string(L, 2), this.#string(L, 3));
        return 0;
      }),
      params: method(TAG_CTX, (L, c, n) => {
        const ctx = c as LuaContextApi;
        if (n === 1) throw new LuaError('need arguments');
        if (n === 2) return this.#pushString(L, ctx.param(this.#string(L, 2)) ?? '');
        ctx.setParam(this.#string(L, 2), this.#string(L, 3));
        return 0;
      }),
      headers: method(TAG_CTX, (L, c, n) => this.#headers(L, n, c as LuaContextApi, false)),
      headerList: method(TAG_CTX, (L, c, n) => this.#headerList(L, n, c as LuaContextApi)),
      body: method(TAG_CTX, (L, c, n) => this.#body(L, n, c as LuaContextApi)),
    };
    this.classes.response = {
      load: load(TAG_RESPONSE, (s) => s.response),
      isComplete: method(TAG_RESPONSE, (L, r, n) => {
        const res = r as LuaResponseApi;
        if (n === 1) {
          port.pushBoolean(L, res.complete());
          return 1;
        }
        res.setComplete(port.toBoolean(L, 2));
        return 0;
      }),
      statusCode: method(TAG_RESPONSE, (L, r, n) => {
        const res = r as LuaResponseApi;
        if (n === 1) {
          port.pushNumber(L, res.status());
          return 1;
        }
        res.setStatus(Math.trunc(this.#number(L, 2)));
        return 0;
      }),
      data: method(TAG_RESPONSE, (L, r, n) => {
        const res = r as LuaResponseApi;
        if (n === 1) {
          this.pushObject(L, TAG_TABLE, scope().idOf(res.data()));
          return 1;
        }
        const d = this.readValue(L, 2, 0);
        if (d === null || typeof d !== 'object' || Array.isArray(d)) throw new LuaError('a luaTable or a table expected');
        res.setData(d as Record<string, unknown>);
        return 0;
      }),
      headers: method(TAG_RESPONSE, (L, r, n) => this.#headers(L, n, r as LuaResponseApi, true)),
      headerList: method(TAG_RESPONSE, (L, r, n) => this.#headerList(L, n, r as LuaResponseApi)),
      body: method(TAG_RESPONSE, (L, r, n) => {
        const res = r as LuaResponseApi;
        if (n === 1) {
          port.pushBytes(L, res.body());
          return 1;
        }
        res.setBody(this.#bytes(L, 2));
        return 0;
      }),
    };
    this.classes.luaTable = {
      new: fn((L) => {
        this.pushObject(L, TAG_TABLE, scope().idOf({}));
        return 1;
      }),
      get: method(TAG_TABLE, (L, t, n) => {
        if (n !== 2) throw new LuaError('need arguments');
        const o = t as Record<string, unknown>;
        const k = this.#string(L, 2);
        return Object.hasOwn(o, k) ? this.pushValue(L, o[k]) : 0;
      }),
      set: method(TAG_TABLE, (L, t, n) => {
        if (n !== 3) throw new LuaError('need arguments');
        const v = this.readValue(L, 3, 0);
        if (v !== undefined) (t as Record<string, unknown>)[this.#string(L, 2)] = v;
        return 0;
      }),
      len: method(TAG_TABLE, (L, t) => {
        port.pushNumber(L, Object.keys(t as object).length);
        return 1;
      }),
      del: method(TAG_TABLE, (L, t, n) => {
        if (n !== 2) throw new LuaError('need arguments');
        delete (t as Record<string, unknown>)[this.#string(L, 2)];
        return 0;
      }),
      keys: method(TAG_TABLE, (L, t) => {
        this.pushObject(L, TAG_LIST, scope().add(Object.keys(t as object).sort()));
        return 1;
      }),
      keyExists: method(TAG_TABLE, (L, t, n) => {
        if (n !== 2) throw new LuaError('need arguments');
        port.pushBoolean(L, Object.hasOwn(t as object, this.#string(L, 2)));
        return 1;
      }),
    };
    this.classes.luaList = {
      new: fn((L) => {
        this.pushObject(L, TAG_LIST, scope().add([]));
        return 1;
      }),
      get: method(TAG_LIST, (L, l, n) => {
        if (n !== 2) throw new LuaError('need arguments');
        const a = l as unknown[];
        const i = Math.trunc(this.#number(L, 2));
        return i < 0 || i >= a.length ? 0 : this.pushValue(L, a[i]);
      }),
      set: method(TAG_LIST, (L, l, n) => {
        if (n !== 3) throw new LuaError('need arguments');
        const a = l as unknown[];
        const i = Math.trunc(this.#number(L, 2));
        if (i < 0) return 0;
        if (i > 1_000_000) throw new LuaError('list index too large');
        const v = this.readValue(L, 3, 0);
        while (a.length < i) a.push(null);
        if (v !== undefined) a[i] = v;
        else if (i === a.length) a.push(null);
        return 0;
      }),
      len: method(TAG_LIST, (L, l) => {
        port.pushNumber(L, (l as unknown[]).length);
        return 1;
      }),
      del: method(TAG_LIST, (L, l, n) => {
        if (n !== 2) throw new LuaError('need arguments');
        const a = l as unknown[];
        const i = Math.trunc(this.#number(L, 2));
        if (i >= 0 && i < a.length) a.splice(i, 1);
        return 0;
      }),
    };
    this.classes.luaNil = {
      new: fn((L) => {
        this.pushObject(L, TAG_NIL, 0);
        return 1;
      }),
    };
    this.classes.http_response = {
      statusCode: method(TAG_HTTP, (L, h) => {
        port.pushNumber(L, (h as LuaHttpAnswer).status);
        return 1;
      }),
      headers: method(TAG_HTTP, (L, h, n) => {
        if (n !== 2) throw new LuaError('need arguments');
        return this.#pushString(L, headerValues((h as LuaHttpAnswer).headers, this.#string(L, 2))[0] ?? '');
      }),
      headerList: method(TAG_HTTP, (L, h, n) => {
        if (n !== 2) throw new LuaError('need arguments');
        this.pushObject(L, TAG_LIST, scope().add(headerValues((h as LuaHttpAnswer).headers, this.#string(L, 2))));
        return 1;
      }),
      body: method(TAG_HTTP, (L, h) => {
        port.pushBytes(L, (h as LuaHttpAnswer).body);
        return 1;
      }),
      close: method(TAG_HTTP, () => 0),
    };
  }

  pushObject(L: S, tag: number, id: number): void {
    this.#port.pushObject(L, tag, id, scope().gen, this.meta[tag]);
  }

  /** Push a data value as KrakenD does: objects and arrays as luaTable and luaList, null as luaNil. */
  pushValue(L: S, v: unknown): number {
    const port = this.#port;
    switch (typeof v) {
      case 'string':
        port.pushString(L, v);
        return 1;
      case 'number':
        port.pushNumber(L, v);
        return 1;
      case 'boolean':
        port.pushBoolean(L, v);
        return 1;
      case 'object':
        if (v === null) this.pushObject(L, TAG_NIL, 0);
        else this.pushObject(L, Array.isArray(v) ? TAG_LIST : TAG_TABLE, scope().idOf(v));
        return 1;
      default:
        return 0;
    }
  }

  /**
   * A Lua value as data: luaTable and luaList give their own object (shared,
   * as in KrakenD), luaNil null, a Lua table a new object (an array when
   * every key is an integer), functions and threads nothing (undefined).
   */
  readValue(L: S, index: number, depth: number): unknown {
    const port = this.#port;
    switch (port.type(L, index)) {
      case LUA_TNIL:
        return undefined;
      case LUA_TBOOLEAN:
        return port.toBoolean(L, index);
      case LUA_TNUMBER:
        return port.toNumber(L, index);
      case LUA_TSTRING:
        return port.toString(L, index);
      case LUA_TUSERDATA: {
        const o = this.#obj;
        if (!port.readObject(L, index, o)) return undefined;
        if (o[0] === TAG_NIL) return null;
        if (o[0] !== TAG_TABLE && o[0] !== TAG_LIST) return undefined;
        if (o[2] !== scope().gen) throw new LuaError(`${TAG_NAMES[o[0]]} from another request`);
        return scope().objects[o[1]];
      }
      case LUA_TTABLE:
        return this.#readTable(L, absolute(port, L, index), depth);
      default:
        return undefined;
    }
  }

  #readTable(L: S, t: number, depth: number): unknown {
    if (depth >= MAX_DEPTH) throw new LuaError('table nested too deep (or a table containing itself)');
    const port = this.#port;
    const keys: string[] = [];
    const values: unknown[] = [];
    const numeric: number[] = [];
    let allIntegers = true;
    port.pushNil(L);
    while (port.next(L, t)) {
      const kt = port.type(L, -2);
      let key: string | undefined;
      if (kt === LUA_TSTRING) {
        key = port.toString(L, -2);
        allIntegers = false;
      } else if (kt === LUA_TNUMBER) {
        const n = port.toNumber(L, -2);
        key = String(n);
        if (port.isInteger(L, -2)) numeric.push(n);
        else allIntegers = false;
      } else if (kt === LUA_TBOOLEAN) {
        key = String(port.toBoolean(L, -2));
        allIntegers = false;
      }
      const v = this.readValue(L, -1, depth + 1);
      port.setTop(L, -2);
      if (key === undefined || v === undefined) continue;
      keys.push(key);
      values.push(v);
    }
    if (allIntegers && keys.length > 0) {
      const order = numeric.map((n, i) => [n, i]).sort((a, b) => a[0] - b[0]);
      return order.map(([, i]) => values[i]);
    }
    const out: Record<string, unknown> = {};
    for (let i = 0; i < keys.length; i++) out[keys[i]] = values[i];
    return out;
  }

  #self(L: S, tag: number): unknown {
    const o = this.#obj;
    if (!this.#port.readObject(L, 1, o) || o[0] !== tag) throw new LuaError(`${TAG_NAMES[tag]} expected`);
    const s = scope();
    if (o[2] !== s.gen) throw new LuaError(`${TAG_NAMES[tag]} from another request`);
    switch (tag) {
      case TAG_REQUEST: return s.request;
      case TAG_RESPONSE: return s.response;
      case TAG_CTX: return s.ctx;
      default: return s.objects[o[1]];
    }
  }

  /** A getter without argument, a setter with one. */
  #accessor(L: S, n: number, get: () => string, set: (v: string) => void): number {
    if (n === 1) return this.#pushString(L, get());
    set(this.#string(L, 2));
    return 0;
  }

  #headers(L: S, n: number, api: LuaRequestApi | LuaContextApi | LuaResponseApi, all: boolean): number {
    if (n === 1) {
      if (!all || !('headers' in api)) throw new LuaError('need arguments');
      const t: Record<string, string[]> = {};
      for (const [k, v] of api.headers()) t[k] = [...v];
      return this.pushValue(L, t);
    }
    const name = this.#string(L, 2);
    if (n === 2) return this.#pushString(L, api.header(name)?.[0] ?? '');
    api.setHeader(name, this.#port.type(L, 3) === LUA_TNIL ? undefined : [this.#string(L, 3)]);
    return 0;
  }

  #headerList(L: S, n: number, api: LuaRequestApi | LuaContextApi | LuaResponseApi): number {
    if (n === 1) throw new LuaError('need arguments');
    const name = this.#string(L, 2);
    if (n === 2) {
      this.pushObject(L, TAG_LIST, scope().add([...(api.header(name) ?? [])]));
      return 1;
    }
    const o = this.#obj;
    if (!this.#port.readObject(L, 3, o) || o[0] !== TAG_LIST) throw new LuaError('invalid header value, must be a luaList');
    const list = this.readValue(L, 3, 0) as unknown[];
    api.setHeader(name, list.map((v) => (typeof v === 'string' ? v : JSON.stringify(v))));
    return 0;
  }

  #body(L: S, n: number, api: LuaRequestApi | LuaContextApi): number {
    if (n === 1) {
      const b = api.body();
      if (b === undefined) this.#port.pushString(L, '');
      else this.#port.pushBytes(L, b);
      return 1;
    }
    api.setBody(this.#bytes(L, 2));
    return 0;
  }

  #pushString(L: S, s: string): number {
    this.#port.pushString(L, s);
    return 1;
  }

  /** A string argument (numbers are converted, as Lua does). */
  #string(L: S, i: number): string {
    const port = this.#port;
    const t = port.type(L, i);
    if (t === LUA_TSTRING) return port.toString(L, i);
    if (t === LUA_TNUMBER) return String(port.toNumber(L, i));
    if (t === LUA_TBOOLEAN) return String(port.toBoolean(L, i));
    throw new LuaError(t === LUA_TNIL ? 'need arguments' : `a string expected (argument ${i - 1})`);
  }

  #bytes(L: S, i: number): Buffer {
    const port = this.#port;
    return port.type(L, i) === LUA_TSTRING ? port.toBytes(L, i) : Buffer.from(this.#string(L, i));
  }

  #number(L: S, i: number): number {
    const port = this.#port;
    const t = port.type(L, i);
    if (t === LUA_TNUMBER) return port.toNumber(L, i);
    if (t === LUA_TSTRING) {
      const n = Number(port.toString(L, i));
      if (!Number.isNaN(n)) return n;
    }
    throw new LuaError(`a number expected (argument ${i - 1})`);
  }
}

function scope(): LuaScope {
  if (active.scope === undefined) throw new LuaError('no request');
  return active.scope;
}

function headerValues(headers: Record<string, string | string[] | undefined>, name: string): string[] {
  const v = headers[name.toLowerCase()];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/**
 * Go's json.MarshalIndent(v, "", "\t"), which KrakenD's json.marshal uses:
 * object keys sorted, tab indentation, <, > and & escaped as \u003c...
 */
export function marshalGo(v: unknown, indent = ''): string {
  if (v === undefined || v === null) return 'null';
  switch (typeof v) {
    case 'boolean':
      return String(v);
    case 'number':
      if (!Number.isFinite(v)) throw new LuaError(`json: unsupported value: ${v}`);
      return JSON.stringify(v);
    case 'string':
      return goString(v);
    case 'object': {
      const inner = indent + '\t';
      if (Array.isArray(v)) {
        if (v.length === 0) return '[]';
        return `[\n${v.map((x) => inner + marshalGo(x, inner)).join(',\n')}\n${indent}]`;
      }
      const keys = Object.keys(v).sort();
      if (keys.length === 0) return '{}';
      return `{\n${keys.map((k) => `${inner}${goString(k)}: ${marshalGo((v as Record<string, unknown>)[k], inner)}`).join(',\n')}\n${indent}}`;
    }
    default:
      return 'null';
  }
}

const GO_ESCAPES: Record<string, string> = { '<': '\\u003c', '>': '\\u003e', '&': '\\u0026', '\u2028': '\\u2028', '\u2029': '\\u2029' };

function goString(s: string): string {
  return JSON.stringify(s).replace(/[<>&\u2028\u2029]/g, (c) => GO_ESCAPES[c]);
}
