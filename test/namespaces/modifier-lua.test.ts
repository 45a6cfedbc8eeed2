// modifier/lua-endpoint, modifier/lua-proxy, modifier/lua-backend: KrakenD's
// Lua scripts through a real gateway and real backends over HTTP. Every
// object and helper of KrakenD's API is used by a script and its effect seen
// by the backend or the client; custom_error statuses; a script that loops
// forever is stopped at the endpoint timeout while other requests are
// served; a runaway allocation fails its own request; the sandbox; sources,
// md5, live; and `portico check` on code that does not compile.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LUA_MEMORY_MAX } from '../../src/namespaces/modifier-lua.ts';
import { redirectLog } from '../../src/telemetry/log.ts';
import { errorAt, issueAt, load, withBackend, withEndpoint } from '../config/support.ts';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';
import { get, request } from '../helpers/http.ts';
import { runCli, writeConfigFile } from '../helpers/process.ts';

const PROXY = 'modifier/lua-proxy';
const BACKEND = 'modifier/lua-backend';
const ENDPOINT = 'modifier/lua-endpoint';
const AT_PROXY = `$.endpoints[0].extra_config["${PROXY}"]`;

const dir = mkdtempSync(join(tmpdir(), 'portico-lua-'));
function luaFile(name: string, code: string): string {
  const file = join(dir, name);
  writeFileSync(file, code);
  return file;
}
const md5 = (text: string) => createHash('md5').update(text).digest('hex');

/** A backend that answers what it received. */
function startEcho(): Promise<TestBackend> {
  return startBackend((req, res) => {
    const u = new URL(req.url!, 'http://x');
    json(res, { method: req.method, path: u.pathname, query: u.search.slice(1), headers: req.headers, body: req.body, items: [{ id: 1, price: 2 }, { id: 2, price: 3 }], nothing: null }, 200, { 'x-backend': 'echo' });
  });
}

describe('modifier/lua-*: config', () => {
  it('reads sources (relative to the working directory, as KrakenD) and checks their md5', () => {
    const code = 'function double(n) return n * 2 end\n';
    const file = luaFile('double.lua', code);
    const rel = relative(process.cwd(), file);
    const ok = load(withEndpoint({ extra_config: { [PROXY]: { sources: [rel], md5: { [rel]: md5(code) }, pre: 'local x = double(2)' } } }));
    assert.deepEqual(ok.errors, []);
    const o = ok.config!.endpoints[0].namespaces[0].options;
    assert.deepEqual(structuredClone(o), o);
    assert.deepEqual(o, { sources: [{ path: rel, code }], pre: 'local x = double(2)', post: '', live: false, allowOpenLibs: false, skipNext: false });

    const wrong = errorAt(withEndpoint({ extra_config: { [PROXY]: { sources: [file], md5: { [file]: md5('other') } } } }), `${AT_PROXY}.md5["${file}"]`);
    assert.match(wrong.expected, new RegExp(`md5 checksum of .*\\(${md5(code)}\\)`));
    assert.match(errorAt(withEndpoint({ extra_config: { [PROXY]: { sources: [file], md5: { 'other.lua': md5(code) } } } }), `${AT_PROXY}.md5["other.lua"]`).expected, /listed in "sources"/);
    assert.match(errorAt(withEndpoint({ extra_config: { [PROXY]: { sources: [file], md5: { [file]: 12 } } } }), `${AT_PROXY}.md5["${file}"]`).expected, /hex string/);
    const missing = errorAt(withEndpoint({ extra_config: { [PROXY]: { sources: [join(dir, 'nope.lua')] } } }), `${AT_PROXY}.sources[0]`);
    assert.match(missing.expected, /working directory/);
    assert.match(missing.found, /ENOENT/);
  });

  it('reports code that does not compile with its place, and misplaced or ignored fields', () => {
    const pre = errorAt(withEndpoint({ extra_config: { [PROXY]: { pre: 'local a = 1\nlokal b = 2' } } }), `${AT_PROXY}.pre`);
    assert.match(pre.found, /syntax error near 'b' \(pre-script:L2\)/);
    assert.match(errorAt(withEndpoint({ extra_config: { [PROXY]: { post: 'if x then' } } }), `${AT_PROXY}.post`).found, /'end' expected .*\(post-script:L1\)/);
    // Sources are one chunk (as KrakenD joins them): an error names its own file and line.
    const good = luaFile('good.lua', 'function a() return 1 end\nfunction b() return 2 end');
    const bad = luaFile('bad.lua', 'function c()\n  return = 3\nend');
    assert.match(errorAt(withEndpoint({ extra_config: { [PROXY]: { sources: [good, bad] } } }), `${AT_PROXY}.sources`).found, /\(bad\.lua:L2\)/);
    assert.match(errorAt(withEndpoint({ extra_config: { [PROXY]: { pre: 1 } } }), `${AT_PROXY}.pre`).expected, /string/);
    // lua-proxy belongs to endpoints: at a backend it is refused, never ignored.
    assert.ok(load(withBackend({ extra_config: { [PROXY]: { pre: 'x = 1' } } })).errors.length > 0);
    const r = load(withEndpoint({ extra_config: { [ENDPOINT]: { pre: 'x = 1', post: 'y = 1', skip_next: true, prel: 'x' } } }));
    assert.deepEqual(r.errors, []);
    const at = `$.endpoints[0].extra_config["${ENDPOINT}"]`;
    assert.match(issueAt(r.warnings, `${at}.post`).found, /never runs/);
    assert.match(issueAt(r.warnings, `${at}.skip_next`).found, /ignored/);
    assert.match(issueAt(r.warnings, `${at}.prel`).expected, /did you mean "pre"/);
  });

  it('portico check: a syntax error fails with its JSON path and its place in the code', async () => {
    const { file } = writeConfigFile(withEndpoint({ extra_config: { [PROXY]: { pre: "local r = request.load()\nr:headers('X' 'y')" } } }));
    const r = await runCli(['check', '-c', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /\$\.endpoints\[0\]\.extra_config\["modifier\/lua-proxy"\]\.pre/);
    assert.match(r.stderr, /pre-script:L2/);
  });
});

describe('modifier/lua-*: KrakenD API over HTTP', () => {
  let echo: TestBackend;
  let extra: TestBackend;
  let gw: TestGateway;
  let quiet: TestGateway;
  const printed: string[] = [];

  before(async () => {
    echo = await startEcho();
    extra = await startBackend((req, res) => json(res, { extra: true, got: req.body }, 201, { 'x-extra': 'yes' }));
    redirectLog((line) => printed.push(line));
    const helper = luaFile('helper.lua', "function tag(s)\n  return 'tagged:' .. s\nend\n");
    gw = await startGateway({
      host: [echo.url],
      extra_config: {
        router: { return_error_msg: true },
        [ENDPOINT]: { pre: "ctx.load():headers('X-Service', 'svc')" },
      },
      endpoints: [
        {
          endpoint: '/ctx/{id}',
          method: 'POST',
          input_headers: ['X-Ctx', 'X-Service', 'X-Drop', 'X-Ctx-List', 'Content-Type'],
          input_query_strings: ['q', 'added'],
          extra_config: {
            [ENDPOINT]: {
              pre: `local c = ctx.load()
c:headers('X-Ctx', table.concat({c:method(), c:url(), c:host(), c:query('q'), c:params('id'), c:headers('X-In'), c:headerList('X-In'):get(0)}, '|'))
c:headers('X-Drop', nil)
local l = luaList.new()
l:set(0, 'l1')
l:set(1, 'l2')
c:headerList('X-Ctx-List', l)
c:query('added', 'yes please')
c:params('id', 'changed')
c:body(c:body() .. '+lua')
c:host('lua.example')`,
            },
          },
          backend: [{ url_pattern: '/echo/{id}', method: 'POST' }],
        },
        {
          endpoint: '/proxy/{id}',
          method: 'POST',
          input_headers: ['X-In', 'X-Gone'],
          input_query_strings: ['a', 'b'],
          extra_config: {
            [PROXY]: {
              sources: [helper],
              pre: `local r = request.load()
r:headers('X-Seen', table.concat({r:method(), r:path(), r:query(), r:url(), r:params('Id'), r:params('id'), r:headers('X-In'), r:headers('x-gone'), r:body()}, '|'))
r:headers('X-Gone', nil)
local l = luaList.new()
l:set(0, 'a')
l:set(1, 'b')
r:headerList('X-List', l)
r:params('Id', tag(r:params('Id')))
r:query('a=2&b=3')
r:body('{"from":"lua"}')
local all = r:headers()
r:headers('X-Forwarded-List', tostring(all:keyExists('X-Forwarded-For')))
Seen = r:method()`,
              post: `local resp = response.load()
local d = resp:data()
d:set('complete_before', resp:isComplete())
resp:isComplete(false)
d:set('status', resp:statusCode())
d:set('pre_global', Seen)
d:set('request_in_post', request.load():params('Id'))
resp:headers('X-Post', 'yes')
local h = luaList.new()
h:set(0, 'one')
h:set(1, 'two')
resp:headerList('X-Post-List', h)
print('post ran for', request.load():path())`,
            },
          },
          backend: [{ url_pattern: '/echo/{id}', method: 'POST' }],
        },
        {
          endpoint: '/backend',
          backend: [
            {
              url_pattern: '/echo/b?fixed=1',
              extra_config: {
                [BACKEND]: {
                  pre: `local r = request.load()
r:headers('X-Call', r:method() .. ' ' .. r:path() .. ' ' .. r:query())
r:method('PUT')
r:url(r:url() .. '&extra=1')
r:body('changed body')`,
                  post: `local resp = response.load()
local d = resp:data()
d:set('backend_status', resp:statusCode())
d:set('backend_header', resp:headers('X-Backend'))
resp:headers('Set-Cookie', 'k=v')`,
                },
              },
            },
          ],
        },
        {
          endpoint: '/backend-data/{id}',
          backend: [
            {
              url_pattern: '/echo/{id}',
              extra_config: {
                [BACKEND]: {
                  pre: "local r = request.load() r:headers('X-Params', r:params('Id') .. ' ' .. r:params():get('Id') .. ' ' .. r:headerList('X-Forwarded-Host'):len())",
                  post: "local r = response.load() r:data({only = 'this', list = {1, 2}})",
                },
              },
            },
          ],
        },
        {
          endpoint: '/helpers',
          extra_config: {
            [PROXY]: {
              post: `local d = response.load():data()
local t = luaTable.new()
t:set('a', 1)
t:set('b', 'x')
t:set('c', {1, 2, {z = true}})
t:set('n', luaNil.new())
t:set('gone', 'soon')
t:del('gone')
d:set('t', t)
d:set('t_len', t:len())
d:set('t_keys', t:keys())
d:set('t_has_a', t:keyExists('a'))
d:set('t_has_gone', t:keyExists('gone'))
d:set('t_b', t:get('b'))
d:set('t_missing', t:get('missing') == nil)
local l = luaList.new()
l:set(0, 'x')
l:set(2, 'z')
d:set('l', l)
d:set('l_len', l:len())
l:del(0)
d:set('l_after_del', l)
local items = d:get('items')
d:set('first_price', items:get(0):get('price'))
d:set('item_count', items:len())
items:del(0)
d:set('nothing_is_luaNil', type(d:get('nothing')) == 'userdata')
d:set('json', json.marshal({b = 1, a = {true, '<x>'}}))
local parsed = json.unmarshal('{"k":[1,2,{"z":"deep"}]}')
d:set('parsed', parsed)
d:set('deep', parsed:get('k'):get(2):get('z'))
d:del('headers')
d:del('body')`,
            },
          },
          backend: [{ url_pattern: '/echo/h' }],
        },
        {
          endpoint: '/static',
          extra_config: {
            proxy: { static: { strategy: 'always', data: { counter: { n: 1 } } } },
            [PROXY]: { post: "local c = response.load():data():get('counter') c:set('n', c:get('n') + 1)" },
          },
          backend: [{ url_pattern: '/echo/static', allow: ['method'] }],
        },
        { endpoint: '/custom/{status}', extra_config: { [PROXY]: { pre: "local s = request.load():params('Status') custom_error('teapot ' .. s, tonumber(s))" } }, backend: [{ url_pattern: '/echo/c' }] },
        { endpoint: '/custom-json', extra_config: { [PROXY]: { pre: `custom_error('{"error":"nope"}', 403, 'application/json')` } }, backend: [{ url_pattern: '/echo/cj' }] },
        { endpoint: '/custom-post', extra_config: { [PROXY]: { post: "custom_error('after the backend', 409)" } }, backend: [{ url_pattern: '/echo/custom-post' }] },
        { endpoint: '/custom-backend', backend: [{ url_pattern: '/echo/custom-backend', extra_config: { [BACKEND]: { pre: "custom_error('stop here', 422)" } } }] },
        { endpoint: '/custom-endpoint', extra_config: { [ENDPOINT]: { pre: "custom_error('denied', 401, 'text/plain')" } }, backend: [{ url_pattern: '/echo/custom-endpoint' }] },
        { endpoint: '/custom-500', extra_config: { [PROXY]: { pre: "custom_error('plain')" } }, backend: [{ url_pattern: '/echo/c5' }] },
        { endpoint: '/script-error', extra_config: { [PROXY]: { pre: 'local x = nil\nx.y = 1' } }, backend: [{ url_pattern: '/echo/script-error' }] },
        { endpoint: '/bad-header', extra_config: { [PROXY]: { pre: "local r = request.load()\nr:headers('Content-Length', '5')" } }, backend: [{ url_pattern: '/echo/bad-header' }] },
        { endpoint: '/bad-arg', extra_config: { [PROXY]: { post: "response.load():data():get()" } }, backend: [{ url_pattern: '/echo/bad-arg' }] },
        { endpoint: '/source-error', extra_config: { [PROXY]: { sources: [luaFile('boom.lua', '-- a helper\nfunction boom()\n  error("exploded")\nend')], pre: 'boom()' } }, backend: [{ url_pattern: '/echo/se' }] },
        {
          endpoint: '/skip-backend',
          backend: [{ url_pattern: '/echo/never', extra_config: { [BACKEND]: { skip_next: true, post: "local r = response.load() r:data():set('answered_by', 'lua') r:isComplete(true)" } } }],
        },
        { endpoint: '/skip-proxy', extra_config: { [PROXY]: { skip_next: true, post: "response.load():data():set('skipped', true)" } }, backend: [{ url_pattern: '/echo/never' }] },
        {
          endpoint: '/http',
          extra_config: {
            [PROXY]: {
              pre: `local h = http_response.new('${'EXTRA'}/x', 'POST', '{"x":1}', {['X-H'] = 'v'})
local r = request.load()
r:headers('X-Extra', h:statusCode() .. '|' .. h:headers('X-Extra') .. '|' .. h:headerList('Content-Type'):get(0) .. '|' .. h:body())
h:close()
local g = http_response.new('${'EXTRA'}/y')
r:headers('X-Extra-Get', tostring(g:statusCode()))
local ok, err = pcall(http_response.new, 'http://127.0.0.1:1/closed')
r:headers('X-Extra-Fail', tostring(ok) .. ' ' .. tostring(err))
local ok2, err2 = pcall(http_response.new, 'file:///etc/passwd')
r:headers('X-Extra-File', tostring(ok2) .. ' ' .. tostring(err2))`.replaceAll('EXTRA', extra.url),
            },
          },
          input_headers: [],
          backend: [{ url_pattern: '/echo/http' }],
        },
        {
          endpoint: '/sandbox',
          extra_config: {
            [PROXY]: {
              post: `local d = response.load():data()
d:set('libs', table.concat({type(os), type(io), type(require), type(debug), type(loadfile), type(dofile), type(package), type(coroutine)}, ','))
d:set('base', table.concat({type(string.format), type(table.concat), type(math.floor), type(utf8.char), type(pcall)}, ','))
d:set('readonly', (pcall(function() string.upper = nil end)))
local f = load('return 40 + 2')
d:set('load', f())
d:set('binary', (load(string.dump(function() end))) == nil)
GLOBAL_SET = (GLOBAL_SET or 0) + 1
d:set('global', GLOBAL_SET)
d:del('headers')`,
            },
          },
          backend: [{ url_pattern: '/echo/sandbox' }],
        },
        {
          endpoint: '/open-libs',
          extra_config: {
            [PROXY]: {
              allow_open_libs: true,
              post: "local d = response.load():data() d:set('time', type(os.time())) d:set('io', type(io)) d:set('co', coroutine.resume(coroutine.create(function() end))) d:del('headers')",
            },
          },
          backend: [{ url_pattern: '/echo/open' }],
        },
        {
          endpoint: '/noop',
          output_encoding: 'no-op',
          extra_config: { [PROXY]: { post: "local r = response.load() r:headers('X-Backend', nil) r:headers('X-Lua', tostring(r:statusCode())) r:statusCode(202)" } },
          backend: [{ url_pattern: '/echo/noop', encoding: 'no-op' }],
        },
      ],
    });
    quiet = await startGateway({
      host: [echo.url],
      endpoints: [
        { endpoint: '/script-error', extra_config: { [PROXY]: { pre: 'nope()' } }, backend: [{ url_pattern: '/echo/se' }] },
        { endpoint: '/custom', extra_config: { [PROXY]: { pre: "custom_error('hidden', 418)" } }, backend: [{ url_pattern: '/echo/c' }] },
      ],
    });
  });
  after(async () => {
    redirectLog(undefined);
    await Promise.all([gw?.close(), quiet?.close()]);
    await Promise.all([echo?.close(), extra?.close()]);
  });

  it('modifier/lua-endpoint: ctx reads and changes the HTTP request the backends get (service and endpoint scripts)', async () => {
    const r = await request(gw.url, '/ctx/7?q=hello&z=1', {
      method: 'POST',
      headers: { 'X-In': 'in', 'X-Drop': 'drop me', 'Content-Type': 'text/plain' },
      body: 'payload',
    });
    assert.equal(r.status, 200);
    const b = r.json();
    assert.equal(b.headers['x-ctx'], 'POST|/ctx/7?q=hello&z=1|' + new URL(gw.url).host + '|hello|7|in|in');
    assert.equal(b.headers['x-service'], 'svc', 'the service-level script ran too');
    assert.equal(b.path, '/echo/changed', 'params(k, v) changes the url_pattern parameter');
    assert.equal(b.query, 'added=yes+please&q=hello', 'query(k, v) re-encodes the query as Go does');
    assert.equal(b.body, 'payload+lua');
    assert.equal(b.headers['x-forwarded-host'], 'lua.example');
    assert.equal(b.headers['x-drop'], undefined);
    assert.equal(b.headers['x-ctx-list'], 'l1, l2');
  });

  it('modifier/lua-proxy: request before the backends (headers forwarded without input_headers, deleted, lists, params, query, body), response after', async () => {
    const r = await request(gw.url, '/proxy/7?a=1&b=x&c=hidden', { method: 'POST', headers: { 'X-In': 'in', 'X-Gone': 'bye', 'Content-Type': 'application/json' }, body: '{"orig":1}' });
    assert.equal(r.status, 200);
    const b = r.json();
    // KrakenD's view: the endpoint's query (filtered, sorted), no URL yet, params with a capital first letter.
    assert.equal(b.headers['x-seen'], 'POST|/proxy/7|a=1&b=x||7|7|in|bye|{"orig":1}');
    assert.equal(b.headers['x-gone'], undefined);
    assert.equal(b.headers['x-list'], 'a, b');
    assert.equal(b.headers['x-forwarded-list'], 'true');
    assert.equal(b.path, '/echo/tagged:7');
    assert.equal(b.query, 'a=2&b=3');
    assert.equal(b.body, '{"from":"lua"}');
    assert.equal(b.complete_before, true);
    assert.equal(b.status, 0, 'no status on a merged (non no-op) answer, as in KrakenD');
    assert.equal(b.pre_global, 'POST', 'pre and post of one request share their globals');
    assert.equal(b.request_in_post, 'tagged:7');
    assert.equal(r.headers['x-portico-completed'], 'false');
    assert.equal(r.headers['x-post'], 'yes');
    assert.equal(r.headers['x-post-list'], 'one, two');
    assert.ok(printed.some((l) => JSON.parse(l).msg === 'post ran for\t/proxy/7'), 'print() goes to the log');
  });

  it('modifier/lua-backend: request is the call about to be sent (method, URL, body), response is that backend', async () => {
    const before = echo.requests.length;
    const r = await get(gw.url, '/backend');
    assert.equal(r.status, 200);
    const sent = echo.requests[before];
    assert.equal(sent.method, 'PUT');
    assert.equal(sent.url, '/echo/b?fixed=1&extra=1');
    assert.equal(sent.body, 'changed body');
    assert.equal(sent.headers['x-call'], 'GET /echo/b fixed=1');
    const b = r.json();
    assert.equal(b.backend_status, 200);
    assert.equal(b.backend_header, 'echo');
    assert.equal(r.headers['set-cookie']?.[0], 'k=v');
  });

  it('modifier/lua-backend: params and header lists of the call; data(t) replaces the answer', async () => {
    const before = echo.requests.length;
    const r = await get(gw.url, '/backend-data/5');
    assert.deepEqual(r.json(), { only: 'this', list: [1, 2] });
    assert.equal(echo.requests[before].headers['x-params'], '5 5 1');
  });

  it('luaTable, luaList, luaNil and json, on the response data', async () => {
    const r = await get(gw.url, '/helpers');
    assert.equal(r.status, 200);
    const b = r.json();
    assert.deepEqual(b.t, { a: 1, b: 'x', c: [1, 2, { z: true }], n: null });
    assert.equal(b.t_len, 4);
    assert.deepEqual(b.t_keys, ['a', 'b', 'c', 'n']);
    assert.equal(b.t_has_a, true);
    assert.equal(b.t_has_gone, false);
    assert.equal(b.t_b, 'x');
    assert.equal(b.t_missing, true);
    assert.deepEqual(b.l, [null, 'z'], 'set() grew the list with nulls; the data holds the list itself, seen after its del(0)');
    assert.equal(b.l_len, 3);
    assert.deepEqual(b.l_after_del, [null, 'z']);
    assert.equal(b.first_price, 2);
    assert.equal(b.item_count, 2);
    assert.deepEqual(b.items, [{ id: 2, price: 3 }]);
    assert.equal(b.nothing_is_luaNil, true);
    assert.equal(b.json, '{\n\t"a": [\n\t\ttrue,\n\t\t"\\u003cx\\u003e"\n\t],\n\t"b": 1\n}');
    assert.deepEqual(b.parsed, { k: [1, 2, { z: 'deep' }] });
    assert.equal(b.deep, 'deep');
  });

  it('post changes its own copy of data shared between requests (proxy.static)', async () => {
    for (let i = 0; i < 2; i++) assert.deepEqual((await get(gw.url, '/static')).json(), { method: 'GET', counter: { n: 2 } });
  });

  it('custom_error answers with its status, its message (return_error_msg) and its content type', async () => {
    const teapot = await get(gw.url, '/custom/418');
    assert.equal(teapot.status, 418);
    assert.equal(teapot.body, 'teapot 418');
    assert.equal(teapot.headers['x-portico-completed'], 'false');
    const j = await get(gw.url, '/custom-json');
    assert.equal(j.status, 403);
    assert.equal(j.headers['content-type'], 'application/json');
    assert.deepEqual(j.json(), { error: 'nope' });
    const plain = await get(gw.url, '/custom-500');
    assert.equal(plain.status, 500);
    assert.equal(plain.body, 'plain');

    const calls = () => echo.requests.filter((q) => q.url.startsWith('/echo/custom-')).map((q) => q.url);
    const post = await get(gw.url, '/custom-post');
    assert.equal(post.status, 409);
    assert.equal(post.body, 'after the backend');
    const backend = await get(gw.url, '/custom-backend');
    assert.equal(backend.status, 422);
    assert.equal(backend.body, 'stop here');
    // At router level KrakenD answers the status with no body.
    const endpoint = await get(gw.url, '/custom-endpoint');
    assert.equal(endpoint.status, 401);
    assert.equal(endpoint.body, '');
    assert.deepEqual(calls(), ['/echo/custom-post'], 'a pre custom_error stops the request before its backend');
  });

  it('a script error is a 500 for its request only, its place in the message as KrakenD words it', async () => {
    const r = await get(gw.url, '/script-error');
    assert.equal(r.status, 500);
    assert.equal(r.body, "attempt to index a nil value (local 'x') (pre-script:L2)");
    // Errors of KrakenD's objects carry the place of the call too.
    assert.equal((await get(gw.url, '/bad-header')).body, 'Content-Length: this header cannot be set from a script (pre-script:L2)');
    assert.equal((await get(gw.url, '/bad-arg')).body, 'need arguments (post-script:L1)');
    const s = await get(gw.url, '/source-error');
    assert.equal(s.status, 500);
    assert.equal(s.body, 'exploded (boom.lua:L3)');
    // Without return_error_msg, the client gets no detail.
    const q = await get(quiet.url, '/script-error');
    assert.equal(q.status, 500);
    assert.equal(q.body, '');
    const c = await get(quiet.url, '/custom');
    assert.equal(c.status, 418);
    assert.equal(c.body, '');
    assert.equal((await get(gw.url, '/helpers')).status, 200, 'other requests are unaffected');
  });

  it('skip_next: the script answers without calling the backend (lua-backend and lua-proxy)', async () => {
    const before = echo.requests.length;
    const b = await get(gw.url, '/skip-backend');
    assert.equal(b.status, 200);
    assert.deepEqual(b.json(), { answered_by: 'lua' });
    assert.equal(b.headers['x-portico-completed'], 'true');
    const p = await get(gw.url, '/skip-proxy');
    assert.deepEqual(p.json(), { skipped: true });
    assert.equal(echo.requests.length, before);
  });

  it('http_response: calls from a script (method, body, headers; status, headers, body), bounded to http(s)', async () => {
    const before = extra.requests.length;
    const r = await get(gw.url, '/http');
    assert.equal(r.status, 200);
    const h = r.json().headers;
    assert.equal(h['x-extra'], '201|yes|application/json|{"extra":true,"got":"{\\"x\\":1}"}');
    assert.equal(h['x-extra-get'], '201');
    assert.match(h['x-extra-fail'], /^false http_response: /);
    assert.match(h['x-extra-file'], /^false .*file: URLs are not allowed/);
    const [post, plain] = extra.requests.slice(before);
    assert.equal(post.method, 'POST');
    assert.equal(post.body, '{"x":1}');
    assert.equal(post.headers['x-h'], 'v');
    assert.match(post.headers['user-agent']!, /^Portico Version/);
    assert.equal(plain.method, 'GET');
  });

  it('the sandbox: base, string, table, math and utf8 only; read-only libraries; text chunks only; globals per request', async () => {
    for (const round of [1, 2]) {
      const b = (await get(gw.url, '/sandbox')).json();
      assert.equal(b.libs, 'nil,nil,nil,nil,nil,nil,nil,nil');
      assert.equal(b.base, 'function,function,function,function,function');
      assert.equal(b.readonly, false);
      assert.equal(b.load, 42);
      assert.equal(b.binary, true);
      assert.equal(b.global, 1, `round ${round}: a global of one request is not seen by the next`);
    }
    const open = (await get(gw.url, '/open-libs')).json();
    assert.equal(open.time, 'number');
    assert.equal(open.io, 'nil', 'io stays closed even with allow_open_libs');
    assert.equal(open.co, true);
  });

  it('a no-op answer: post changes its status and headers, the body streams untouched', async () => {
    const r = await get(gw.url, '/noop');
    assert.equal(r.status, 202);
    assert.equal(r.headers['x-lua'], '200');
    assert.equal(r.headers['x-backend'], undefined);
    assert.equal(r.json().path, '/echo/noop');
  });
});

describe('modifier/lua-*: runaway scripts', () => {
  let backend: TestBackend;
  let gw: TestGateway;
  let loopReached: () => void = () => {};

  before(async () => {
    backend = await startBackend((req, res) => {
      if (req.url!.startsWith('/loop')) loopReached();
      json(res, { ok: true });
    });
    gw = await startGateway({
      host: [backend.url],
      timeout: '700ms',
      endpoints: [
        // The loop starts after the backend answered: the test knows when it runs.
        { endpoint: '/loop', extra_config: { [PROXY]: { post: 'while true do end' } }, backend: [{ url_pattern: '/loop' }] },
        { endpoint: '/pcall-loop', extra_config: { [PROXY]: { pre: 'while true do pcall(function() while true do end end) end' } }, backend: [{ url_pattern: '/x' }] },
        { endpoint: '/alloc', extra_config: { [PROXY]: { pre: "local t = {} while true do t[#t + 1] = string.rep('x', 1e6) .. #t end" } }, backend: [{ url_pattern: '/x' }] },
        { endpoint: '/fast', extra_config: { [PROXY]: { post: "response.load():data():set('fast', true)" } }, backend: [{ url_pattern: '/fast' }] },
      ],
    });
  });
  after(async () => {
    await gw?.close();
    await backend?.close();
  });

  it('a script that loops forever is stopped at the endpoint timeout, while other requests are served', async () => {
    const reached = new Promise<void>((r) => (loopReached = r));
    const started = performance.now();
    let loopDone = 0;
    const loop = get(gw.url, '/loop').then((r) => {
      loopDone = performance.now();
      return r;
    });
    await reached;
    const fast = await get(gw.url, '/fast');
    const fastDone = performance.now();
    assert.equal(fast.status, 200);
    assert.equal(fast.json().fast, true);
    const r = await loop;
    assert.equal(r.status, 500);
    assert.ok(fastDone < loopDone, 'the other request was answered while the script looped');
    const elapsed = loopDone - started;
    assert.ok(elapsed >= 600 && elapsed < 3000, `stopped at the 700 ms timeout (took ${elapsed.toFixed(0)} ms)`);
  });

  it('pcall cannot keep a script alive past the deadline', async () => {
    const started = performance.now();
    const r = await get(gw.url, '/pcall-loop');
    assert.equal(r.status, 500);
    assert.ok(performance.now() - started < 3000);
    assert.equal((await get(gw.url, '/fast')).status, 200);
  });

  it('a runaway allocation fails its own request at the memory budget; the VM goes on serving', async () => {
    assert.ok(LUA_MEMORY_MAX <= 64 * 1024 * 1024);
    for (let i = 0; i < 2; i++) {
      const r = await get(gw.url, '/alloc');
      assert.equal(r.status, 500);
    }
    assert.equal((await get(gw.url, '/fast')).status, 200);
  });
});

describe('modifier/lua-*: one VM, many requests', () => {
  let echo: TestBackend;
  let held: TestBackend;
  let gw: TestGateway;
  const waiting: (() => void)[] = [];

  before(async () => {
    echo = await startEcho();
    // Answers nothing until two calls are in: both scripts are suspended in http_response at once.
    held = await startBackend((req, res) => {
      waiting.push(() => json(res, { n: new URL(req.url!, 'http://x').searchParams.get('n') }));
      if (waiting.length === 2) for (const answer of waiting.splice(0)) answer();
    });
    gw = await startGateway({ host: [echo.url], endpoints: [endpoint("r:headers('X-Version', 'one')")] });
  });
  after(async () => {
    await gw?.close();
    await Promise.all([echo?.close(), held?.close()]);
  });

  function endpoint(extraLine: string): Record<string, unknown> {
    return {
      endpoint: '/n/{n}',
      extra_config: {
        [PROXY]: {
          pre: `N = request.load():params('N')
local h = http_response.new('${held.url}/held?n=' .. N)
local r = request.load()
r:headers('X-N', N .. '=' .. json.unmarshal(h:body()):get('n'))
${extraLine}`,
        },
      },
      backend: [{ url_pattern: '/echo/{n}' }],
    };
  }

  it('requests suspended together in one VM keep their own globals', async () => {
    const [one, two] = await Promise.all([get(gw.url, '/n/1'), get(gw.url, '/n/2')]);
    assert.equal(one.json().headers['x-n'], '1=1');
    assert.equal(two.json().headers['x-n'], '2=2');
  });

  it('a reload that changes the script compiles the new one; the old VM is let go', async () => {
    const keys = () => gw.state.keys().filter((k) => k.startsWith(PROXY));
    assert.equal(keys().length, 1);
    const before = keys()[0];
    await gw.reload({ host: [echo.url], endpoints: [endpoint("r:headers('X-Version', 'two')")] });
    const [a, b] = await Promise.all([get(gw.url, '/n/3'), get(gw.url, '/n/4')]);
    assert.equal(a.json().headers['x-version'], 'two');
    assert.equal(b.json().headers['x-n'], '4=4');
    assert.ok(keys().some((k) => k !== before));
  });
});

describe('modifier/lua-*: live sources', () => {
  let backend: TestBackend;
  let gw: TestGateway;
  const file = join(dir, 'live.lua');

  before(async () => {
    backend = await startBackend((_req, res) => json(res, {}));
    writeFileSync(file, "function version() return 'one' end");
    gw = await startGateway({
      host: [backend.url],
      endpoints: [{ endpoint: '/live', extra_config: { [PROXY]: { sources: [file], live: true, post: "response.load():data():set('v', version())" } }, backend: [{ url_pattern: '/x' }] }],
    });
  });
  after(async () => {
    await gw?.close();
    await backend?.close();
  });

  it('live: true re-reads the sources on every request', async () => {
    assert.equal((await get(gw.url, '/live')).json().v, 'one');
    writeFileSync(file, "function version() return 'two' end");
    assert.equal((await get(gw.url, '/live')).json().v, 'two');
    writeFileSync(file, 'function version(');
    const broken = await get(gw.url, '/live');
    assert.equal(broken.status, 500);
  });
});

describe('Lua, CEL and JSON schema run in KrakenD order', () => {
  let be: TestBackend;
  let gw: TestGateway;
  before(async () => {
    be = await startEcho();
    gw = await startGateway({
      host: [be.url],
      endpoints: [
        {
          endpoint: '/ordered',
          method: 'POST',
          input_headers: ['X-Ok'],
          extra_config: {
            // KrakenD's proxy stack wraps lua around cel around jsonschema: the script fixes the
            // body and the header the other two then accept.
            [PROXY]: { pre: `local r = request.load()\nr:body('{"name":"from-lua"}')\nr:headers('X-Ok', 'yes')` },
            'validation/cel': [{ check_expr: "req_headers['X-Ok'][0] == 'yes'" }],
            'validation/json-schema': { type: 'object', required: ['name'] },
          },
          backend: [{ url_pattern: '/o' }],
        },
      ],
    });
  });
  after(async () => {
    await gw.close();
    await be.close();
  });

  it('a lua-proxy pre script runs before validation/cel and validation/json-schema', async () => {
    const r = await request(gw.url, '/ordered', { method: 'POST', body: '{}', headers: { 'content-type': 'application/json', 'x-ok': 'no' } });
    assert.equal(r.status, 200, r.body);
    assert.equal((r.json() as { body: string }).body, '{"name":"from-lua"}');
  });
});
