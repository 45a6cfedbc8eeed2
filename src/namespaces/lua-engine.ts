// The Lua engine behind the modifier/lua-* namespaces. The runtime
// (lua-runtime.ts) talks to Lua only through LuaPort, a small slice of the
// Lua C API; this file implements it on wasmoon: PUC-Rio Lua 5.4 compiled to
// WebAssembly, driven through its raw exports (no per-value wrappers). Another
// engine can be measured behind the same port (bench/lua-engines.ts runs the
// same runtime on fengari).
//
// Every state has its own allocation budget (its own allocator function):
// a script that allocates without bound gets "not enough memory" in its own
// request, the WebAssembly heap stays bounded. One WebAssembly instance is
// shared by all states of the process; it is started when this module loads.

import { LuaWasm, LUA_REGISTRYINDEX } from 'wasmoon';

export const LUA_TNIL = 0;
export const LUA_TBOOLEAN = 1;
export const LUA_TNUMBER = 3;
export const LUA_TSTRING = 4;
export const LUA_TTABLE = 5;
export const LUA_TFUNCTION = 6;
export const LUA_TUSERDATA = 7;

export const LUA_OK = 0;
export const LUA_YIELD = 1;
export const LUA_ERRMEM = 4;

/**
 * A host function: reads its arguments from the stack of L, pushes its
 * results, returns how many. It must not throw (see lua-api.ts: errors are
 * raised with raise(), outside any JavaScript try).
 */
export type HostFunction<S> = (L: S) => number;

/**
 * What the runtime needs from a Lua engine. `S` is the engine's handle of a
 * Lua thread (a state is its main thread). Stack indexes follow the C API.
 */
export interface LuaPort<S> {
  /** The engine, for logs and benchmarks. */
  readonly engine: string;
  /** True when newState's memory budget is enforced. */
  readonly boundsMemory: boolean;
  /**
   * A new state with the libraries base, string, table, math, utf8,
   * coroutine and os opened (the runtime decides what scripts see).
   * `memoryMax`: bytes of Lua heap it may use (0: no limit).
   */
  newState(memoryMax: number): S;
  closeState(L: S): void;
  /** Bytes of Lua heap in use (0 when the engine does not count). */
  memoryUsed(L: S): number;
  /** Compile text: pushes the function and returns undefined, or returns the syntax error (nothing pushed). */
  load(L: S, code: string, chunkname: string): string | undefined;
  /** A new thread of L's state, pushed on L's stack. */
  newThread(L: S): S;
  /** Start or continue T with `nargs` values from its stack: LUA_OK, LUA_YIELD or an error status; then `results` says how many values it left. */
  resume(T: S, nargs: number): number;
  readonly results: number;
  /** Call onHook(T) every `count` instructions of T (0: never). */
  setHook(T: S, count: number): void;
  onHook: (T: S) => void;
  /** From onHook only: suspend T (resume returns LUA_YIELD with no values). */
  yieldFromHook(T: S): void;
  isYieldable(T: S): boolean;
  /** Pop the top value into the registry; returns its reference. */
  ref(L: S): number;
  unref(L: S, ref: number): void;
  pushRef(L: S, ref: number): void;
  top(L: S): number;
  setTop(L: S, n: number): void;
  pushValue(L: S, index: number): void;
  /** Move the top n values of `from` onto `to` (threads of one state). */
  xmove(from: S, to: S, n: number): void;
  type(L: S, index: number): number;
  toBoolean(L: S, index: number): boolean;
  /** Integers and floats alike (call isInteger to tell them apart). */
  toNumber(L: S, index: number): number;
  isInteger(L: S, index: number): boolean;
  /** A string value (only call on LUA_TSTRING), decoded as UTF-8. */
  toString(L: S, index: number): string;
  /** A string value's bytes. */
  toBytes(L: S, index: number): Buffer;
  pushNil(L: S): void;
  pushBoolean(L: S, b: boolean): void;
  /** A safe integer becomes a Lua integer, anything else a float. */
  pushNumber(L: S, n: number): void;
  pushString(L: S, s: string): void;
  pushBytes(L: S, b: Uint8Array): void;
  newTable(L: S): void;
  /** t[key] = top (popped), t at `index`. */
  setField(L: S, index: number, key: string): void;
  /** t[i] = top (popped), t at `index`. */
  rawSetI(L: S, index: number, i: number): void;
  /** lua_next: pops a key, pushes the next key and value; false at the end. */
  next(L: S, index: number): boolean;
  setGlobal(L: S, name: string): void;
  /** Registered once per process; push with pushFunction. */
  newFunction(fn: HostFunction<S>): unknown;
  pushFunction(L: S, fn: unknown): void;
  /** A userdata holding (tag, id, gen), with the metatable stored at `metaRef`. */
  pushObject(L: S, tag: number, id: number, gen: number, metaRef: number): void;
  /** Fill out[0..2] with (tag, id, gen) of an object made by pushObject; false for any other value. */
  readObject(L: S, index: number, out: Int32Array): boolean;
  /** Raise an error with this message in L (never returns normally). */
  raise(L: S, message: string): number;
  /** luaL_where: the place in the script that called the running host function ("pre-script:3: "). */
  where(L: S): string;
  /** lua_pcall: LUA_OK or an error status (the error value on top). */
  pcall(L: S, nargs: number, nresults: number): number;
}

/** The raw exports of wasmoon's WebAssembly module that this port calls. */
interface RawLua {
  HEAPU8: Uint8Array;
  HEAP32: Int32Array;
  HEAPU32: Uint32Array;
  addFunction(fn: (...args: number[]) => number | void, sig: string): number;
  removeFunction(fn: number): void;
  _malloc(n: number): number;
  _free(p: number): void;
  _realloc(p: number, n: number): number;
  _lua_newstate(alloc: number, ud: number): number;
  _luaL_newstate(): number;
  _lua_close(L: number): void;
  _lua_gettop(L: number): number;
  _lua_settop(L: number, n: number): void;
  _lua_pushvalue(L: number, i: number): void;
  _lua_xmove(from: number, to: number, n: number): void;
  _lua_type(L: number, i: number): number;
  _lua_toboolean(L: number, i: number): number;
  _lua_tonumberx(L: number, i: number, isnum: number): number;
  _lua_isinteger(L: number, i: number): number;
  _lua_tolstring(L: number, i: number, len: number): number;
  _lua_pushnil(L: number): void;
  _lua_pushboolean(L: number, b: number): void;
  _lua_pushnumber(L: number, n: number): void;
  _lua_pushinteger(L: number, n: bigint): void;
  _lua_pushlstring(L: number, p: number, n: number): number;
  _lua_createtable(L: number, narr: number, nrec: number): void;
  _lua_setfield(L: number, i: number, k: number): void;
  _lua_rawseti(L: number, i: number, n: bigint): void;
  _lua_rawgeti(L: number, i: number, n: bigint): number;
  _lua_next(L: number, i: number): number;
  _lua_setglobal(L: number, k: number): void;
  _lua_pushcclosure(L: number, fn: number, n: number): void;
  _lua_newuserdatauv(L: number, size: number, nuv: number): number;
  _lua_touserdata(L: number, i: number): number;
  _lua_setmetatable(L: number, i: number): number;
  _lua_newthread(L: number): number;
  _lua_resume(L: number, from: number, nargs: number, nres: number): number;
  _lua_sethook(L: number, fn: number, mask: number, count: number): void;
  _lua_yieldk(L: number, n: number, ctx: number, k: number): number;
  _lua_isyieldable(L: number): number;
  _lua_error(L: number): number;
  _lua_pcallk(L: number, nargs: number, nres: number, errfunc: number, ctx: number, k: number): number;
  _luaL_ref(L: number, t: number): number;
  _luaL_where(L: number, level: number): void;
  _luaL_unref(L: number, t: number, ref: number): void;
  _luaL_loadbufferx(L: number, p: number, n: number, name: number, mode: number): number;
  _luaopen_base(L: number): number;
  _luaopen_string(L: number): number;
  _luaopen_table(L: number): number;
  _luaopen_math(L: number): number;
  _luaopen_utf8(L: number): number;
  _luaopen_coroutine(L: number): number;
  _luaopen_os(L: number): number;
}

const LUA_MASKCOUNT = 8;
/** Marks the userdata pushObject makes (first int of the payload). */
const OBJECT_MAGIC = 0x4c554131;

let startError: unknown;
let wasm: LuaWasm | undefined;
/**
 * The instance's own exports. wasmoon ships an Emscripten build with
 * assertions, whose wrapper around every export (a check and an apply) costs
 * more than many of the calls themselves; the port calls the exports
 * directly. They are caught as the instance is made (the only way to them).
 */
let exports: WebAssembly.Exports | undefined;
// The module is compiled and instantiated synchronously (Emscripten reads the
// file synchronously in Node too): the engine is ready before this turn of the
// event loop ends, so modules that import this one (a --workers process
// listening for its first message) lose no event to the top-level await below.
const instantiate = WebAssembly.instantiate;
WebAssembly.instantiate = function (source: BufferSource | WebAssembly.Module, imports?: WebAssembly.Imports) {
  const module = source instanceof WebAssembly.Module ? source : new WebAssembly.Module(source);
  const instance = new WebAssembly.Instance(module, imports);
  if (typeof instance.exports.lua_newstate === 'function') {
    exports = instance.exports;
    WebAssembly.instantiate = instantiate;
  }
  return Promise.resolve(source instanceof WebAssembly.Module ? instance : { module, instance });
} as typeof WebAssembly.instantiate;
try {
  wasm = await LuaWasm.initialize();
} catch (err) {
  startError = err;
} finally {
  WebAssembly.instantiate = instantiate;
}

/** Why the engine is unusable, or undefined when it runs. */
export function luaEngineError(): string | undefined {
  return wasm === undefined ? `the Lua engine (wasmoon) did not start: ${(startError as Error)?.message ?? String(startError)}` : undefined;
}

class WasmoonPort implements LuaPort<number> {
  readonly engine = 'wasmoon (Lua 5.4, WebAssembly)';
  readonly boundsMemory = true;
  results = 0;
  onHook: (T: number) => void = () => {};
  readonly #m: RawLua;
  /** The states with a memory budget: bytes in use, the limit, their allocator. */
  readonly #budgets = new Map<number, { used: number; max: number; fn: number }>();
  readonly #hook: number;
  // Scratch memory in the WebAssembly heap: strings in and out, result counts.
  #scratch: number;
  #scratchSize = 4096;
  readonly #int: number;
  readonly #encoder = new TextEncoder();
  readonly #decoder = new TextDecoder();

  constructor(w: LuaWasm) {
    this.#m = rawLua(w);
    this.#scratch = this.#m._malloc(this.#scratchSize);
    this.#int = this.#m._malloc(8);
    this.#hook = this.#m.addFunction((L: number) => this.onHook(L), 'vii');
  }

  newState(memoryMax: number): number {
    const m = this.#m;
    let L: number;
    if (memoryMax > 0) {
      // lua_Alloc with a budget: refusing an allocation makes Lua raise "not enough memory" in the running script.
      const budget = { used: 0, max: memoryMax, fn: 0 };
      budget.fn = m.addFunction((_ud: number, p: number, osize: number, nsize: number) => {
        if (nsize === 0) {
          if (p !== 0) {
            budget.used -= osize;
            m._free(p);
          }
          return 0;
        }
        const delta = p !== 0 ? nsize - osize : nsize;
        if (delta > 0 && budget.used + delta > budget.max) return 0;
        const q = m._realloc(p, nsize);
        if (q !== 0) budget.used += delta;
        return q;
      }, 'iiiii');
      L = m._lua_newstate(budget.fn, 0);
      if (L === 0) {
        m.removeFunction(budget.fn);
        throw new Error('lua_newstate returned no state');
      }
      this.#budgets.set(L, budget);
    } else {
      L = m._luaL_newstate();
      if (L === 0) throw new Error('luaL_newstate returned no state');
    }
    m._luaopen_base(L);
    m._lua_settop(L, 0);
    const libs: [string, (L: number) => number][] = [
      ['string', m._luaopen_string], ['table', m._luaopen_table], ['math', m._luaopen_math],
      ['utf8', m._luaopen_utf8], ['coroutine', m._luaopen_coroutine], ['os', m._luaopen_os],
    ];
    for (const [name, open] of libs) {
      open(L);
      this.setGlobal(L, name);
    }
    return L;
  }

  closeState(L: number): void {
    this.#m._lua_close(L);
    const budget = this.#budgets.get(L);
    this.#budgets.delete(L);
    if (budget !== undefined) this.#m.removeFunction(budget.fn);
  }

  memoryUsed(L: number): number {
    return this.#budgets.get(L)?.used ?? 0;
  }

  load(L: number, code: string, chunkname: string): string | undefined {
    const m = this.#m;
    const bytes = this.#encoder.encode(code);
    const p = m._malloc(bytes.length + 1);
    const name = this.#cString(chunkname);
    try {
      m.HEAPU8.set(bytes, p);
      if (m._luaL_loadbufferx(L, p, bytes.length, name, 0) === LUA_OK) return undefined;
      const message = this.toString(L, -1);
      m._lua_settop(L, -2);
      return message;
    } finally {
      m._free(p);
      m._free(name);
    }
  }

  newThread(L: number): number {
    return this.#m._lua_newthread(L);
  }

  resume(T: number, nargs: number): number {
    const status = this.#m._lua_resume(T, 0, nargs, this.#int);
    this.results = this.#m.HEAP32[this.#int >> 2];
    return status;
  }

  setHook(T: number, count: number): void {
    if (count > 0) this.#m._lua_sethook(T, this.#hook, LUA_MASKCOUNT, count);
    else this.#m._lua_sethook(T, 0, 0, 0);
  }

  yieldFromHook(T: number): void {
    this.#m._lua_yieldk(T, 0, 0, 0);
  }

  isYieldable(T: number): boolean {
    return this.#m._lua_isyieldable(T) !== 0;
  }

  ref(L: number): number {
    return this.#m._luaL_ref(L, LUA_REGISTRYINDEX);
  }

  unref(L: number, ref: number): void {
    this.#m._luaL_unref(L, LUA_REGISTRYINDEX, ref);
  }

  pushRef(L: number, ref: number): void {
    this.#m._lua_rawgeti(L, LUA_REGISTRYINDEX, big(ref));
  }

  top(L: number): number {
    return this.#m._lua_gettop(L);
  }

  setTop(L: number, n: number): void {
    this.#m._lua_settop(L, n);
  }

  pushValue(L: number, index: number): void {
    this.#m._lua_pushvalue(L, index);
  }

  xmove(from: number, to: number, n: number): void {
    this.#m._lua_xmove(from, to, n);
  }

  type(L: number, index: number): number {
    return this.#m._lua_type(L, index);
  }

  toBoolean(L: number, index: number): boolean {
    return this.#m._lua_toboolean(L, index) !== 0;
  }

  toNumber(L: number, index: number): number {
    return this.#m._lua_tonumberx(L, index, 0);
  }

  isInteger(L: number, index: number): boolean {
    return this.#m._lua_isinteger(L, index) !== 0;
  }

  toString(L: number, index: number): string {
    const m = this.#m;
    const p = m._lua_tolstring(L, index, this.#int);
    const n = m.HEAPU32[this.#int >> 2];
    if (p === 0) return '';
    const heap = m.HEAPU8;
    // Short ASCII strings (header names, keys) skip the decoder.
    if (n <= 32) {
      let s = '';
      for (let i = 0; i < n; i++) {
        const c = heap[p + i];
        if (c > 0x7f) return this.#decoder.decode(heap.subarray(p, p + n));
        s += String.fromCharCode(c);
      }
      return s;
    }
    return this.#decoder.decode(heap.subarray(p, p + n));
  }

  toBytes(L: number, index: number): Buffer {
    const m = this.#m;
    const p = m._lua_tolstring(L, index, this.#int);
    const n = m.HEAPU32[this.#int >> 2];
    return Buffer.from(m.HEAPU8.subarray(p, p + n));
  }

  pushNil(L: number): void {
    this.#m._lua_pushnil(L);
  }

  pushBoolean(L: number, b: boolean): void {
    this.#m._lua_pushboolean(L, b ? 1 : 0);
  }

  pushNumber(L: number, n: number): void {
    if (Number.isSafeInteger(n)) this.#m._lua_pushinteger(L, big(n));
    else this.#m._lua_pushnumber(L, n);
  }

  pushString(L: number, s: string): void {
    const m = this.#m;
    const max = s.length * 3;
    if (max > this.#scratchSize) this.#grow(max);
    let n: number;
    if (s.length <= 32 && isAscii(s)) {
      const heap = m.HEAPU8;
      for (let i = 0; i < s.length; i++) heap[this.#scratch + i] = s.charCodeAt(i);
      n = s.length;
    } else {
      n = this.#encoder.encodeInto(s, m.HEAPU8.subarray(this.#scratch, this.#scratch + this.#scratchSize)).written;
    }
    m._lua_pushlstring(L, this.#scratch, n);
  }

  pushBytes(L: number, b: Uint8Array): void {
    if (b.length > this.#scratchSize) this.#grow(b.length);
    this.#m.HEAPU8.set(b, this.#scratch);
    this.#m._lua_pushlstring(L, this.#scratch, b.length);
  }

  newTable(L: number): void {
    this.#m._lua_createtable(L, 0, 0);
  }

  setField(L: number, index: number, key: string): void {
    const k = this.#cString(key);
    try {
      this.#m._lua_setfield(L, index, k);
    } finally {
      this.#m._free(k);
    }
  }

  rawSetI(L: number, index: number, i: number): void {
    this.#m._lua_rawseti(L, index, big(i));
  }

  next(L: number, index: number): boolean {
    return this.#m._lua_next(L, index) !== 0;
  }

  setGlobal(L: number, name: string): void {
    const k = this.#cString(name);
    try {
      this.#m._lua_setglobal(L, k);
    } finally {
      this.#m._free(k);
    }
  }

  newFunction(fn: HostFunction<number>): number {
    return this.#m.addFunction(fn, 'ii');
  }

  pushFunction(L: number, fn: unknown): void {
    this.#m._lua_pushcclosure(L, fn as number, 0);
  }

  pushObject(L: number, tag: number, id: number, gen: number, metaRef: number): void {
    const m = this.#m;
    const p = m._lua_newuserdatauv(L, 16, 0);
    const h = m.HEAP32;
    h[p >> 2] = OBJECT_MAGIC;
    h[(p >> 2) + 1] = tag;
    h[(p >> 2) + 2] = id;
    h[(p >> 2) + 3] = gen;
    m._lua_rawgeti(L, LUA_REGISTRYINDEX, big(metaRef));
    m._lua_setmetatable(L, -2);
  }

  readObject(L: number, index: number, out: Int32Array): boolean {
    const m = this.#m;
    // Not a userdata: 0, and the word at address 0 is never the magic number.
    const p = m._lua_touserdata(L, index) >> 2;
    const h = m.HEAP32;
    if (h[p] !== OBJECT_MAGIC) return false;
    out[0] = h[p + 1];
    out[1] = h[p + 2];
    out[2] = h[p + 3];
    return true;
  }

  raise(L: number, message: string): number {
    this.pushString(L, message);
    return this.#m._lua_error(L);
  }

  where(L: number): string {
    this.#m._luaL_where(L, 1);
    const where = this.toString(L, -1);
    this.#m._lua_settop(L, -2);
    return where;
  }

  pcall(L: number, nargs: number, nresults: number): number {
    return this.#m._lua_pcallk(L, nargs, nresults, 0, 0, 0);
  }

  #grow(n: number): void {
    this.#m._free(this.#scratch);
    this.#scratchSize = Math.max(n, this.#scratchSize * 2);
    this.#scratch = this.#m._malloc(this.#scratchSize);
  }

  #cString(s: string): number {
    const bytes = this.#encoder.encode(s);
    const p = this.#m._malloc(bytes.length + 1);
    this.#m.HEAPU8.set(bytes, p);
    this.#m.HEAPU8[p + bytes.length] = 0;
    return p;
  }
}

/**
 * The module with its `_name` functions replaced by the instance's exports
 * (same functions, without the assertion wrappers). The heap views stay the
 * module's: they are replaced when memory grows.
 */
function rawLua(w: LuaWasm): RawLua {
  const m = w.module as unknown as RawLua & Record<string, unknown>;
  if (exports === undefined) return m;
  const direct = Object.create(m) as Record<string, unknown>;
  for (const [name, fn] of Object.entries(exports)) {
    if (typeof fn === 'function' && typeof m['_' + name] === 'function') direct['_' + name] = fn;
  }
  return direct as unknown as RawLua;
}

// 64-bit integer arguments (lua_Integer) are BigInts: the small ones (registry
// references, counts, most JSON integers) are made once, not on every call.
const SMALL = Array.from({ length: 4096 }, (_, i) => BigInt(i));

function big(n: number): bigint {
  return n >= 0 && n < 4096 ? SMALL[n] : BigInt(n);
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** The engine of this process; undefined when it could not start (see luaEngineError). */
export const wasmoonPort: LuaPort<number> | undefined = wasm === undefined ? undefined : new WasmoonPort(wasm);
