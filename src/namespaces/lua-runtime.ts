// The Lua runtime of modifier/lua-*: one VM per script set (a Lua state with
// KrakenD's API, the sources and the pre/post code compiled once), shared by
// every request that runs the set. Each request gets its own global table
// (reads fall through to a shared, read-only base), so requests never see each
// other's globals; pre and post of one request share theirs, as in KrakenD.
//
// A script runs in its own Lua thread under an instruction-count hook: past
// the request's deadline the hook raises an error on every instruction (a
// pcall cannot swallow it), and a script busy for more than a slice yields to
// the event loop, so one looping request never stalls the others. Each state
// has a memory budget (the engine's allocator refuses beyond it). Calls to
// http_response suspend the thread while the HTTP call runs. KrakenD's
// objects are in lua-api.ts.

import { GatewayError } from '../proxy/errors.ts';
import { active, HostApi, LuaError, LuaScope, TAG_HTTP, type LuaHttpAnswer, type LuaHttpRequest } from './lua-api.ts';
import { LUA_ERRMEM, LUA_OK, LUA_TNUMBER, LUA_TSTRING, LUA_TTABLE, LUA_YIELD, type LuaPort } from './lua-engine.ts';

/** What a VM runs: the sources (joined into one chunk, as KrakenD does), the pre and post code. */
export interface ScriptSet {
  readonly sources: readonly LuaSource[];
  /** '' when absent. */
  readonly pre: string;
  readonly post: string;
  /** Scripts also see coroutine and part of os (see the prelude). */
  readonly allowOpenLibs: boolean;
}

export interface LuaSource {
  /** As written in `sources` (errors name its base name, as KrakenD does). */
  readonly path: string;
  readonly code: string;
}

/** Lua instructions between two checks of the deadline. */
const HOOK_COUNT = 10_000;
/** A script busy this long gives the event loop a turn before it goes on. */
const SLICE_MS = 10;
const HTTP_MARK = '\u0000portico.http_response';
/** Idle Lua threads a VM keeps for reuse (more are made when more scripts wait at once). */
const MAX_IDLE_THREADS = 64;

// What the hook allows the running script besides its deadline.
let activeThread: unknown;
let activeSliceEnd = Infinity;

/**
 * The Lua side: the sandbox (the base scripts read through), KrakenD's
 * helpers written in Lua, and the entry points the host calls. `H` holds
 * the host functions.
 */
const PRELUDE = `
local H = ...
local type, tostring, tonumber, select, error, setmetatable, getmetatable, rawget, next, ipairs, pairs =
      type, tostring, tonumber, select, error, setmetatable, getmetatable, rawget, next, ipairs, pairs
local yield, rawload, collect, concat = coroutine.yield, load, collectgarbage, table.concat

local function ro(t)
  return setmetatable({}, {
    __index = t,
    __newindex = function() error('attempt to change a read-only table', 2) end,
    __pairs = function() return next, t, nil end,
    __metatable = false,
  })
end

local SAFE = {}
for _, k in ipairs({'assert', 'error', 'ipairs', 'next', 'pairs', 'pcall', 'rawequal', 'rawget', 'rawlen', 'rawset',
                    'select', 'setmetatable', 'getmetatable', 'tonumber', 'tostring', 'type', 'xpcall'}) do
  SAFE[k] = _G[k]
end
SAFE._VERSION = _VERSION
SAFE.string, SAFE.table, SAFE.math, SAFE.utf8 = ro(string), ro(table), ro(math), ro(utf8)
if H.openLibs then
  SAFE.coroutine = ro(coroutine)
  SAFE.os = ro({clock = os.clock, date = os.date, difftime = os.difftime, time = os.time})
end
getmetatable('').__metatable = false

local hostPrint = H.print
SAFE.print = function(...)
  local parts = {}
  for i = 1, select('#', ...) do parts[i] = tostring((select(i, ...))) end
  hostPrint(concat(parts, '\\t'))
end
local GC = {collect = true, count = true, step = true, isrunning = true}
SAFE.collectgarbage = function(opt, ...)
  if opt ~= nil and not GC[opt] then error("collectgarbage('" .. tostring(opt) .. "') is not allowed", 2) end
  return collect(opt, ...)
end

local CUSTOM = {__tostring = function(e) return rawget(e, 'msg') end}
SAFE.custom_error = function(...)
  if select('#', ...) == 0 then error('need arguments', 2) end
  local msg, status, ct = ...
  error(setmetatable({msg = tostring(msg), status = status, ct = ct}, CUSTOM), 0)
end

local classes = H.classes
classes.http_response.new = function(...)
  local n = select('#', ...)
  if n ~= 1 and n ~= 3 and n ~= 4 then error('need 1, 3 or 4 arguments', 2) end
  local ok, r = yield('${HTTP_MARK}', ...)
  if not ok then error(r, 2) end
  return r
end
local META = {}
for i, name in ipairs({'request', 'response', 'ctx', 'luaTable', 'luaList', 'luaNil', 'http_response'}) do
  META[i] = {__index = classes[name], __name = name, __metatable = false}
  SAFE[name] = ro(classes[name])
end
SAFE.json = ro(H.json)

local ENV = {__index = SAFE, __metatable = false}
local function pre(sources, code)
  local env = setmetatable({}, ENV)
  env._G = env
  env.load = function(chunk, name, mode, e) return rawload(chunk, name, 't', e or env) end
  if sources then sources(env) end
  if code then code(env) end
  return env
end
local function post(env, code) code(env) end
local function classify(e)
  if getmetatable(e) == CUSTOM then
    local st, ct = rawget(e, 'status'), rawget(e, 'ct')
    if type(st) == 'string' then st = tonumber(st) elseif type(st) ~= 'number' then st = nil end
    if type(ct) ~= 'string' then ct = nil end
    return 1, rawget(e, 'msg'), st, ct
  end
  local t = type(e)
  if t == 'string' then return 0, e end
  if t == 'number' then return 0, tostring(e) end
  return 0, '(error object is a ' .. t .. ' value)'
end
local function gc() collect('collect') end
return pre, post, classify, gc, table.unpack(META)
`;

interface Thread<S> {
  readonly s: S;
  readonly ref: number;
}

const apis = new Map<LuaPort<unknown>, HostApi<unknown>>();

function hostApi<S>(port: LuaPort<S>): HostApi<S> {
  let api = apis.get(port as LuaPort<unknown>) as HostApi<S> | undefined;
  if (api === undefined) {
    api = new HostApi(port);
    apis.set(port as LuaPort<unknown>, api as HostApi<unknown>);
    port.onHook = (T) => {
      const s = active.scope;
      if (s === undefined) return;
      const now = performance.now();
      if (now >= s.due) {
        s.timedOut = true;
        // From now on every instruction raises: a pcall in the script cannot go on.
        port.setHook(T, 1);
        port.raise(T, 'the script ran past the endpoint timeout');
      } else if (now >= activeSliceEnd && T === activeThread && port.isYieldable(T)) {
        port.yieldFromHook(T);
      }
    };
  }
  return api;
}

/** Wrap code as a function of its global table, keeping its line numbers. */
function asFunction(code: string): string {
  return `return function(_ENV, ...) ${code}\nend`;
}

/** The sources joined as KrakenD joins them, and where each starts (for error lines). */
export function joinSources(sources: readonly LuaSource[]): { code: string; starts: number[] } {
  const starts: number[] = [];
  let line = 1;
  for (const s of sources) {
    starts.push(line);
    line += countLines(s.code);
  }
  return { code: sources.map((s) => s.code).join('\n'), starts };
}

function countLines(code: string): number {
  let n = 1;
  for (let i = code.indexOf('\n'); i >= 0; i = code.indexOf('\n', i + 1)) n++;
  return n;
}

function baseName(path: string): string {
  const i = Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\'));
  return i < 0 ? path : path.slice(i + 1);
}

/**
 * KrakenD's way to name the place of an error: "msg (file.lua:L3)",
 * "msg (pre-script:L1)". Lines in the joined sources name their file.
 */
export function placeError(message: string, sources: readonly LuaSource[]): string {
  const m = /^([^\n:]+):(\d+): ([\s\S]*)$/.exec(message);
  if (m === null) return message;
  let [, chunk, lineText, text] = m;
  let line = Number(lineText);
  if (chunk === 'sources' && sources.length > 0) {
    const { starts } = joinSources(sources);
    let i = starts.length - 1;
    while (i > 0 && starts[i] > line) i--;
    chunk = baseName(sources[i].path);
    line = line - starts[i] + 1;
  }
  return `${text} (${chunk}:L${line})`;
}

/** A syntax check with no VM around it: the error as placeError words it, or undefined. */
export function luaSyntaxError<S>(port: LuaPort<S>, code: string, chunk: 'sources' | 'pre-script' | 'post-script', sources: readonly LuaSource[] = []): string | undefined {
  const L = checker(port);
  const err = port.load(L, code, '=' + chunk);
  if (err === undefined) {
    port.setTop(L, 0);
    return undefined;
  }
  return placeError(err, sources);
}

const checkers = new Map<LuaPort<unknown>, unknown>();

function checker<S>(port: LuaPort<S>): S {
  let L = checkers.get(port as LuaPort<unknown>) as S | undefined;
  if (L === undefined) {
    L = port.newState(16 * 1024 * 1024);
    checkers.set(port as LuaPort<unknown>, L);
  }
  return L;
}

/** How a script run failed. */
export const LUA_ERROR_CODE = 'LUA_ERROR';
export const LUA_CUSTOM_ERROR_CODE = 'LUA_CUSTOM_ERROR';
export const LUA_TIMEOUT_CODE = 'LUA_TIMEOUT';
export const LUA_MEMORY_CODE = 'LUA_MEMORY';

export interface LuaVmOptions {
  /** Bytes of Lua heap the state may use. */
  memoryMax: number;
}

/**
 * One script set compiled into one Lua state. `begin` runs the sources and
 * the pre code of a request, `finish` its post code, `end` lets its globals go.
 * Each returns undefined when the script ran to the end synchronously (the
 * usual case), or a promise when it had to wait (a slice, an HTTP call).
 */
export class LuaVm<S> {
  readonly #port: LuaPort<S>;
  readonly #api: HostApi<S>;
  readonly #scripts: ScriptSet;
  readonly #L: S;
  readonly #meta: number[] = [0];
  readonly #pre: number;
  readonly #post: number;
  readonly #classify: number;
  readonly #gc: number;
  readonly #sources: number;
  readonly #preCode: number;
  readonly #postCode: number;
  readonly #threads: Thread<S>[] = [];
  /** live: the last sources compiled on the request path, by their text. */
  #liveText = '';
  #liveRef = 0;
  #closed = false;

  constructor(port: LuaPort<S>, scripts: ScriptSet, opts: LuaVmOptions) {
    this.#port = port;
    this.#api = hostApi(port);
    this.#scripts = scripts;
    const L = (this.#L = port.newState(opts.memoryMax));
    try {
      this.#pushHostTable(scripts.allowOpenLibs);
      const err = port.load(L, PRELUDE, '=portico');
      if (err !== undefined) throw new Error(`the Lua prelude does not compile: ${err}`);
      port.pushValue(L, -2);
      if (port.pcall(L, 1, 11) !== LUA_OK) throw new Error(`the Lua prelude failed: ${port.toString(L, -1)}`);
      const refs: number[] = [];
      for (let i = 0; i < 11; i++) refs.unshift(port.ref(L));
      [this.#pre, this.#post, this.#classify, this.#gc] = refs;
      this.#meta.push(...refs.slice(4));
      port.setTop(L, 0);
      this.#sources = scripts.sources.length > 0 ? this.#compile(joinSources(scripts.sources).code, 'sources') : 0;
      this.#preCode = scripts.pre !== '' ? this.#compile(scripts.pre, 'pre-script') : 0;
      this.#postCode = scripts.post !== '' ? this.#compile(scripts.post, 'post-script') : 0;
    } catch (err) {
      port.closeState(L);
      throw err;
    }
  }

  get hasPost(): boolean {
    return this.#postCode !== 0;
  }

  /** Bytes of Lua heap in use. */
  memoryUsed(): number {
    return this.#port.memoryUsed(this.#L);
  }

  /** live: use these sources for this request (compiled when they changed). */
  useSources(scope: LuaScope, sources: readonly LuaSource[]): void {
    if (this.#closed) throw unloaded();
    const text = joinSources(sources).code;
    if (text !== this.#liveText || this.#liveRef === 0) {
      let ref: number;
      try {
        ref = this.#compile(text, 'sources');
      } catch (err) {
        throw new GatewayError(500, placeError((err as Error).message, sources), { code: LUA_ERROR_CODE });
      }
      if (this.#liveRef !== 0) this.#port.unref(this.#L, this.#liveRef);
      this.#liveText = text;
      this.#liveRef = ref;
    }
    scope.sourcesRef = this.#liveRef;
  }

  /** Run the sources and the pre code; the request's globals stay for finish(). */
  begin(scope: LuaScope): Promise<void> | undefined {
    const port = this.#port;
    const t = this.#thread();
    port.pushRef(t.s, this.#pre);
    const sources = scope.sourcesRef || this.#sources;
    if (sources !== 0) port.pushRef(t.s, sources);
    else port.pushNil(t.s);
    if (this.#preCode !== 0) port.pushRef(t.s, this.#preCode);
    else port.pushNil(t.s);
    return this.#drive(scope, t, 2, true);
  }

  /** Run the post code (after begin). */
  finish(scope: LuaScope): Promise<void> | undefined {
    if (this.#postCode === 0) return undefined;
    const port = this.#port;
    const t = this.#thread();
    port.pushRef(t.s, this.#post);
    port.pushRef(t.s, scope.envRef);
    port.pushRef(t.s, this.#postCode);
    return this.#drive(scope, t, 2, false);
  }

  /** Let the request's globals and objects go. */
  end(scope: LuaScope): void {
    if (scope.envRef !== 0 && !this.#closed) this.#port.unref(this.#L, scope.envRef);
    scope.envRef = 0;
    scope.objects.length = 0;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#port.closeState(this.#L);
  }

  #pushHostTable(openLibs: boolean): void {
    const port = this.#port;
    const L = this.#L;
    const api = this.#api;
    port.newTable(L);
    port.newTable(L);
    for (const [name, methods] of Object.entries(api.classes)) {
      port.newTable(L);
      for (const [m, fn] of Object.entries(methods)) {
        port.pushFunction(L, fn);
        port.setField(L, -2, m);
      }
      port.setField(L, -2, name);
    }
    port.setField(L, -2, 'classes');
    port.newTable(L);
    for (const [m, fn] of Object.entries(api.json)) {
      port.pushFunction(L, fn);
      port.setField(L, -2, m);
    }
    port.setField(L, -2, 'json');
    port.pushFunction(L, api.print);
    port.setField(L, -2, 'print');
    port.pushBoolean(L, openLibs);
    port.setField(L, -2, 'openLibs');
  }

  /** Compile code as a function of its global table; returns its registry reference. */
  #compile(code: string, chunk: string): number {
    const port = this.#port;
    const L = this.#L;
    const raw = port.load(L, code, '=' + chunk);
    if (raw !== undefined) throw new Error(raw);
    port.setTop(L, -2);
    const err = port.load(L, asFunction(code), '=' + chunk);
    if (err !== undefined) throw new Error(err);
    if (port.pcall(L, 0, 1) !== LUA_OK) {
      const message = port.toString(L, -1);
      port.setTop(L, 0);
      throw new Error(message);
    }
    return port.ref(L);
  }

  #thread(): Thread<S> {
    if (this.#closed) throw unloaded();
    const free = this.#threads.pop();
    if (free !== undefined) return free;
    const port = this.#port;
    const s = port.newThread(this.#L);
    const ref = port.ref(this.#L);
    port.setHook(s, HOOK_COUNT);
    return { s, ref };
  }

  #resume(scope: LuaScope, t: Thread<S>, nargs: number): number {
    this.#api.meta = this.#meta;
    active.scope = scope;
    activeThread = t.s;
    activeSliceEnd = performance.now() + SLICE_MS;
    try {
      return this.#port.resume(t.s, nargs);
    } finally {
      active.scope = undefined;
      activeThread = undefined;
    }
  }

  #drive(scope: LuaScope, t: Thread<S>, nargs: number, first: boolean): Promise<void> | undefined {
    if (performance.now() >= scope.due) {
      this.#port.setTop(t.s, 0);
      this.#threads.push(t);
      throw timeoutError();
    }
    const status = this.#resume(scope, t, nargs);
    if (status === LUA_OK) {
      this.#done(scope, t, first);
      return undefined;
    }
    if (status !== LUA_YIELD) throw this.#failure(scope, t, status);
    return this.#suspended(scope, t, first);
  }

  async #suspended(scope: LuaScope, t: Thread<S>, first: boolean): Promise<void> {
    for (;;) {
      const nargs = this.#port.results === 0 ? await nextTurn() : await this.#httpCall(scope, t);
      if (this.#closed) throw unloaded();
      const status = this.#resume(scope, t, nargs);
      if (status === LUA_OK) return this.#done(scope, t, first);
      if (status !== LUA_YIELD) throw this.#failure(scope, t, status);
    }
  }

  #done(scope: LuaScope, t: Thread<S>, first: boolean): void {
    const port = this.#port;
    if (first) {
      port.xmove(t.s, this.#L, 1);
      if (scope.envRef !== 0) port.unref(this.#L, scope.envRef);
      scope.envRef = port.ref(this.#L);
    }
    port.setTop(t.s, 0);
    // Threads are kept for the next runs, up to what a busy VM needs at once.
    if (this.#threads.length < MAX_IDLE_THREADS) this.#threads.push(t);
    else port.unref(this.#L, t.ref);
  }

  /** The error of a failed run, as the client gets it; the thread is dropped. */
  #failure(scope: LuaScope, t: Thread<S>, status: number): GatewayError {
    const port = this.#port;
    const L = this.#L;
    try {
      if (scope.timedOut) return timeoutError();
      if (status === LUA_ERRMEM) {
        port.pushRef(L, this.#gc);
        port.pcall(L, 0, 0);
        port.setTop(L, 0);
        return new GatewayError(500, 'lua: not enough memory', { code: LUA_MEMORY_CODE });
      }
      port.pushRef(L, this.#classify);
      port.xmove(t.s, L, 1);
      if (port.pcall(L, 1, 4) !== LUA_OK) return new GatewayError(500, 'lua: script error', { code: LUA_ERROR_CODE });
      const custom = port.toNumber(L, -4) === 1;
      const message = port.type(L, -3) === LUA_TSTRING ? port.toString(L, -3) : '';
      if (!custom) return new GatewayError(500, placeError(message, this.#scripts.sources), { code: LUA_ERROR_CODE });
      const st = port.type(L, -2) === LUA_TNUMBER ? Math.trunc(port.toNumber(L, -2)) : 500;
      const contentType = port.type(L, -1) === LUA_TSTRING ? port.toString(L, -1) : undefined;
      return new GatewayError(st >= 100 && st <= 599 ? st : 500, message, { code: LUA_CUSTOM_ERROR_CODE, contentType });
    } finally {
      port.setTop(L, 0);
      port.unref(L, t.ref);
    }
  }

  /** A suspended http_response.new: make the call, push (true, answer) or (false, message). */
  async #httpCall(scope: LuaScope, t: Thread<S>): Promise<number> {
    const port = this.#port;
    const T = t.s;
    const n = port.results;
    const base = port.top(T) - n + 1;
    let outcome: LuaHttpAnswer | string;
    try {
      if (port.type(T, base) !== LUA_TSTRING || port.toString(T, base) !== HTTP_MARK) throw new LuaError('attempt to yield from outside a coroutine');
      const str = (i: number) => (port.type(T, i) === LUA_TSTRING || port.type(T, i) === LUA_TNUMBER ? port.toString(T, i) : '');
      const request: LuaHttpRequest = { url: str(base + 1), method: 'GET', body: undefined, headers: [] };
      if (n >= 4) {
        request.method = str(base + 2) || 'GET';
        request.body = port.type(T, base + 3) === LUA_TSTRING ? port.toBytes(T, base + 3) : undefined;
      }
      if (n >= 5 && port.type(T, base + 4) === LUA_TTABLE) {
        active.scope = scope;
        try {
          const h = this.#api.readValue(T, base + 4, 0);
          if (h !== null && typeof h === 'object' && !Array.isArray(h)) {
            for (const [k, v] of Object.entries(h)) {
              for (const one of Array.isArray(v) ? v : [v]) request.headers.push([k, String(one)]);
            }
          }
        } finally {
          active.scope = undefined;
        }
      }
      port.setTop(T, base - 1);
      outcome = await scope.http(request);
    } catch (err) {
      port.setTop(T, Math.min(port.top(T), base - 1));
      outcome = (err as Error).message;
    }
    if (typeof outcome === 'string') {
      port.pushBoolean(T, false);
      port.pushString(T, outcome);
    } else {
      port.pushBoolean(T, true);
      port.pushObject(T, TAG_HTTP, scope.add(outcome), scope.gen, this.#meta[TAG_HTTP]);
    }
    return 2;
  }
}

/** A request of a retired plan outlived its grace period: its VM is closed. */
function unloaded(): GatewayError {
  return new GatewayError(500, 'lua: the scripts were unloaded by a reload', { code: LUA_ERROR_CODE });
}

function timeoutError(): GatewayError {
  return new GatewayError(500, 'lua: the script ran past the endpoint timeout', { code: LUA_TIMEOUT_CODE });
}

/** Give the event loop a turn; resolves to the number of values to resume with (none). */
function nextTurn(): Promise<number> {
  return new Promise((resolve) => setImmediate(resolve, 0));
}
