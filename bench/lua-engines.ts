// Which Lua engine for modifier/lua-*: the same runtime (src/namespaces/lua-runtime.ts,
// KrakenD's API, the sandbox, the deadline hook) on two engines behind its
// LuaPort: wasmoon (PUC Lua 5.4 in WebAssembly, the one Portico uses) and
// fengari (Lua 5.3 written in JavaScript, a devDependency kept for this
// benchmark only; its port is below).
//
// Measured per engine: start-up (loading the engine), the cost of one VM
// (prelude and scripts compiled) in time and memory, and the throughput of a
// realistic script pair: a pre that reads and sets request headers, a
// parameter and the query, and a post over a ~1 KiB JSON response (walks a
// list, sums a field, deletes and adds keys, sets a response header). Each
// operation parses the 1 KiB body first (as a backend answer would be), so
// "JSON.parse only" is the floor. wasmoon also runs without its memory
// budget (the tracing allocator calls into JavaScript on every allocation)
// and with one VM per request instead of one shared VM.
//
//   node bench/lua-engines.ts [--seconds 1]

import { createRequire } from 'node:module';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { HostFunction, LuaPort } from '../src/namespaces/lua-engine.ts';
import type { LuaRequestApi, LuaResponseApi } from '../src/namespaces/lua-api.ts';
import type { ScriptSet } from '../src/namespaces/lua-runtime.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const seconds = Number(process.argv[process.argv.indexOf('--seconds') + 1]) || 1;

// ---- start-up ----

let t0 = performance.now();
const engine = await import('../src/namespaces/lua-engine.ts');
const wasmoonStart = performance.now() - t0;
const runtime = await import('../src/namespaces/lua-runtime.ts');
const { LuaScope } = await import('../src/namespaces/lua-api.ts');
t0 = performance.now();
const require = createRequire(import.meta.url);
const fengari = require('fengari');
const fengariStart = performance.now() - t0;

// ---- fengari behind the runtime's port ----

type FState = object;
const { lua, lauxlib, lualib, to_luastring } = fengari;
const REG = lua.LUA_REGISTRYINDEX;

/** fengari (Lua 5.3, 32-bit integers, no memory budget) behind LuaPort. */
class FengariPort implements LuaPort<FState> {
  readonly engine = 'fengari (Lua 5.3, JavaScript)';
  readonly boundsMemory = false;
  results = 0;
  onHook: (T: FState) => void = () => {};
  #hookYield = false;

  newState(): FState {
    const L = lauxlib.luaL_newstate();
    const libs: [string, unknown][] = [
      ['_G', lualib.luaopen_base], ['string', lualib.luaopen_string], ['table', lualib.luaopen_table], ['math', lualib.luaopen_math],
      ['utf8', lualib.luaopen_utf8], ['coroutine', lualib.luaopen_coroutine], ['os', lualib.luaopen_os],
    ];
    for (const [name, open] of libs) {
      lauxlib.luaL_requiref(L, to_luastring(name), open, 1);
      lua.lua_pop(L, 1);
    }
    return L;
  }
  closeState(L: FState): void {
    lua.lua_close(L);
  }
  memoryUsed(): number {
    return 0;
  }
  load(L: FState, code: string, chunkname: string): string | undefined {
    if (lauxlib.luaL_loadbuffer(L, to_luastring(code), null, to_luastring(chunkname)) === lua.LUA_OK) return undefined;
    const message = lua.lua_tojsstring(L, -1);
    lua.lua_pop(L, 1);
    return message;
  }
  newThread(L: FState): FState {
    return lua.lua_newthread(L);
  }
  resume(T: FState, nargs: number): number {
    this.#hookYield = false;
    const status = lua.lua_resume(T, null, nargs);
    this.results = status === lua.LUA_YIELD && this.#hookYield ? 0 : lua.lua_gettop(T);
    return status;
  }
  setHook(T: FState, count: number): void {
    if (count > 0) lua.lua_sethook(T, (L: FState) => this.onHook(L), lua.LUA_MASKCOUNT, count);
    else lua.lua_sethook(T, null, 0, 0);
  }
  yieldFromHook(T: FState): void {
    this.#hookYield = true;
    lua.lua_yield(T, 0);
  }
  isYieldable(T: FState): boolean {
    return lua.lua_isyieldable(T) !== 0;
  }
  ref(L: FState): number {
    return lauxlib.luaL_ref(L, REG);
  }
  unref(L: FState, ref: number): void {
    lauxlib.luaL_unref(L, REG, ref);
  }
  pushRef(L: FState, ref: number): void {
    lua.lua_rawgeti(L, REG, ref);
  }
  top(L: FState): number {
    return lua.lua_gettop(L);
  }
  setTop(L: FState, n: number): void {
    lua.lua_settop(L, n);
  }
  pushValue(L: FState, index: number): void {
    lua.lua_pushvalue(L, index);
  }
  xmove(from: FState, to: FState, n: number): void {
    lua.lua_xmove(from, to, n);
  }
  type(L: FState, index: number): number {
    return lua.lua_type(L, index);
  }
  toBoolean(L: FState, index: number): boolean {
    return lua.lua_toboolean(L, index);
  }
  toNumber(L: FState, index: number): number {
    return lua.lua_tonumber(L, index);
  }
  isInteger(L: FState, index: number): boolean {
    return lua.lua_isinteger(L, index);
  }
  toString(L: FState, index: number): string {
    return lua.lua_tojsstring(L, index);
  }
  toBytes(L: FState, index: number): Buffer {
    return Buffer.from(lua.lua_tolstring(L, index));
  }
  pushNil(L: FState): void {
    lua.lua_pushnil(L);
  }
  pushBoolean(L: FState, b: boolean): void {
    lua.lua_pushboolean(L, b);
  }
  pushNumber(L: FState, n: number): void {
    if (Number.isInteger(n) && n >= -0x80000000 && n <= 0x7fffffff) lua.lua_pushinteger(L, n);
    else lua.lua_pushnumber(L, n);
  }
  pushString(L: FState, s: string): void {
    lua.lua_pushstring(L, to_luastring(s));
  }
  pushBytes(L: FState, b: Uint8Array): void {
    lua.lua_pushstring(L, Uint8Array.from(b));
  }
  newTable(L: FState): void {
    lua.lua_newtable(L);
  }
  setField(L: FState, index: number, key: string): void {
    lua.lua_setfield(L, index, to_luastring(key));
  }
  rawSetI(L: FState, index: number, i: number): void {
    lua.lua_rawseti(L, index, i);
  }
  next(L: FState, index: number): boolean {
    return lua.lua_next(L, index) !== 0;
  }
  setGlobal(L: FState, name: string): void {
    lua.lua_setglobal(L, to_luastring(name));
  }
  newFunction(fn: HostFunction<FState>): unknown {
    return fn;
  }
  pushFunction(L: FState, fn: unknown): void {
    lua.lua_pushcfunction(L, fn);
  }
  pushObject(L: FState, tag: number, id: number, gen: number, metaRef: number): void {
    const d = lua.lua_newuserdata(L, 0) as Record<string, number>;
    d.tag = tag;
    d.id = id;
    d.gen = gen;
    lua.lua_rawgeti(L, REG, metaRef);
    lua.lua_setmetatable(L, -2);
  }
  readObject(L: FState, index: number, out: Int32Array): boolean {
    if (lua.lua_type(L, index) !== lua.LUA_TUSERDATA) return false;
    const d = lua.lua_touserdata(L, index) as Record<string, number> | null;
    if (d === null || d.tag === undefined) return false;
    out[0] = d.tag;
    out[1] = d.id;
    out[2] = d.gen;
    return true;
  }
  raise(L: FState, message: string): number {
    this.pushString(L, message);
    return lua.lua_error(L);
  }
  where(L: FState): string {
    lauxlib.luaL_where(L, 1);
    const where = lua.lua_tojsstring(L, -1);
    lua.lua_pop(L, 1);
    return where;
  }
  pcall(L: FState, nargs: number, nresults: number): number {
    return lua.lua_pcall(L, nargs, nresults, 0);
  }
}

// ---- the workload ----

const BODY = JSON.stringify({
  page: 1,
  per_page: 8,
  currency: null,
  internal_trace: 'a1b2c3d4e5f6',
  items: Array.from({ length: 8 }, (_, i) => ({
    id: 1000 + i,
    name: `Product number ${i} with a longer name`,
    price: 10 + i * 2.5,
    tags: ['alpha', 'beta'],
    internal: { warehouse: `W${i}`, cost: i },
  })),
});

const SCRIPTS: ScriptSet = {
  sources: [{ path: 'pricing.lua', code: 'function with_tax(p) return math.floor(p * 121 + 0.5) / 100 end' }],
  pre: `local r = request.load()
r:headers('X-Gateway', 'portico')
local id = r:params('Id')
if r:headers('Authorization') == '' then custom_error('unauthorized', 401) end
r:query('id=' .. id .. '&lang=' .. (r:headers('Accept-Language') ~= '' and 'es' or 'en'))`,
  post: `local resp = response.load()
local d = resp:data()
local items = d:get('items')
local total = 0
for i = 0, items:len() - 1 do
  local it = items:get(i)
  total = total + with_tax(it:get('price'))
  it:del('internal')
end
d:set('total', total)
d:set('count', items:len())
d:del('internal_trace')
resp:headers('X-Total', tostring(total))`,
  allowOpenLibs: false,
};

/** A request and a response as plain maps, for the script to work on. */
function views(data: Record<string, unknown>): { request: LuaRequestApi; response: LuaResponseApi } {
  const headers = new Map<string, string[]>([['authorization', ['Bearer x']], ['accept-language', ['es']]]);
  const out = new Map<string, string[]>();
  let query = 'a=1';
  const request: LuaRequestApi = {
    method: () => 'GET', setMethod() {}, path: () => '/items/42', setPath() {},
    query: () => query, setQuery: (v) => { query = v; }, url: () => '', setUrl() {},
    params: () => ({ Id: '42' }), param: (n) => (n === 'Id' || n === 'id' ? '42' : undefined), setParam() {},
    headers: () => headers, header: (n) => headers.get(n.toLowerCase()),
    setHeader: (n, v) => void (v ? headers.set(n.toLowerCase(), v) : headers.delete(n.toLowerCase())),
    body: () => undefined, setBody() {},
  };
  const response: LuaResponseApi = {
    complete: () => true, setComplete() {}, status: () => 200, setStatus() {}, data: () => data, setData() {},
    headers: () => out, header: (n) => out.get(n.toLowerCase()), setHeader: (n, v) => void (v ? out.set(n.toLowerCase(), v) : out.delete(n.toLowerCase())),
    body: () => Buffer.alloc(0), setBody() {},
  };
  return { request, response };
}

function runOnce<S>(vm: InstanceType<typeof runtime.LuaVm<S>>): void {
  const data = JSON.parse(BODY) as Record<string, unknown>;
  const scope = new LuaScope(performance.now() + 1000);
  const v = views(data);
  scope.request = v.request;
  scope.response = v.response;
  if (vm.begin(scope) !== undefined || vm.finish(scope) !== undefined) throw new Error('the script was expected to finish synchronously');
  vm.end(scope);
  const header = v.response.header('x-total')?.[0];
  if (Math.abs((data.total as number) - 181.52) > 1e-9 || Math.abs(Number(header) - 181.52) > 1e-9 || 'internal_trace' in data) {
    throw new Error(`wrong result: ${JSON.stringify(data.total)} ${header}`);
  }
}

/** Operations per second of `op`, after a short warm-up. */
function rate(op: () => void): number {
  const warm = performance.now() + 200;
  while (performance.now() < warm) op();
  let n = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  while (performance.now() < end) {
    for (let i = 0; i < 100; i++) op();
    n += 100;
  }
  return n / ((performance.now() - start) / 1000);
}

interface Row {
  engine: string;
  startMs: number;
  vmMs: number;
  vmBytes: number;
  opsPerSec: number;
  note: string;
}

function measure<S>(port: LuaPort<S>, startMs: number, memoryMax: number, note: string): Row {
  const make = () => new runtime.LuaVm(port, SCRIPTS, { memoryMax });
  make().close();
  // One VM: creation time, and the memory of 50 kept alive.
  const count = 50;
  gc();
  const heap0 = process.memoryUsage();
  const t = performance.now();
  const vms = Array.from({ length: count }, make);
  const vmMs = (performance.now() - t) / count;
  gc();
  const heap1 = process.memoryUsage();
  // The Lua heap of a WebAssembly engine is counted by its budgeted allocator only; a JavaScript engine's is the JS heap.
  const lua = port.boundsMemory ? vms.reduce((sum, vm) => sum + vm.memoryUsed(), 0) : 0;
  const js = heap1.heapUsed - heap0.heapUsed;
  const vmBytes = port.boundsMemory && memoryMax === 0 ? NaN : (lua + Math.max(0, js)) / count;
  for (const vm of vms) vm.close();
  const vm = make();
  const opsPerSec = rate(() => runOnce(vm));
  vm.close();
  return { engine: port.engine, startMs, vmMs, vmBytes, opsPerSec, note };
}

const wasmoon = engine.wasmoonPort!;
const fengariPort = new FengariPort();
const floor = rate(() => JSON.parse(BODY));
const rows: Row[] = [
  measure(wasmoon, wasmoonStart, 64 << 20, 'shared VM, 64 MiB budget (as served)'),
  measure(wasmoon, wasmoonStart, 0, 'shared VM, no memory budget'),
  measure(fengariPort, fengariStart, 0, 'shared VM (no memory budget possible)'),
];
const perRequest = rate(() => {
  const vm = new runtime.LuaVm(wasmoon, SCRIPTS, { memoryMax: 64 << 20 });
  runOnce(vm);
  vm.close();
});

const fmt = (n: number, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
console.log(`Lua engines: pre+post over a request and a ${BODY.length}-byte JSON response, ${seconds}s per run, Node ${process.version}\n`);
console.log('| engine | start-up | one VM | memory per VM | pre+post ops/s | µs/op | setup |');
console.log('|---|---:|---:|---:|---:|---:|---|');
for (const r of rows) {
  console.log(`| ${r.engine} | ${fmt(r.startMs, 1)} ms | ${fmt(r.vmMs, 2)} ms | ${Number.isNaN(r.vmBytes) ? 'not counted' : `${fmt(r.vmBytes / 1024)} KiB`} | ${fmt(r.opsPerSec)} | ${fmt(1e6 / r.opsPerSec, 1)} | ${r.note} |`);
}
console.log(`| ${wasmoon.engine} | | | | ${fmt(perRequest)} | ${fmt(1e6 / perRequest, 1)} | one VM per request |`);
console.log(`| JSON.parse only | | | | ${fmt(floor)} | ${fmt(1e6 / floor, 1)} | the floor |`);
