// qos/http-cache: backend answers cached by RFC 9111 rules, through a real
// gateway and real backends on loopback. Config checks, every field, and the
// hostile cases: no-store / private never stored, Vary kept apart, expiry,
// 50 concurrent misses making one call, huge answers not stored, LRU bounds,
// and a cached answer that later merges cannot corrupt.

import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { cloneData, DEFAULT_MAX_ITEMS, DEFAULT_MAX_SIZE } from '../../src/namespaces/qos-http-cache.ts';
import { errorAt, issueAt, load, service, withBackend } from '../config/support.ts';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { loadTestConfig, startGateway, type TestGateway } from '../helpers/gateway.ts';
import { get } from '../helpers/http.ts';

const NS = 'qos/http-cache';
const AT = `$.endpoints[0].backend[0].extra_config["${NS}"]`;
const nsConfig = (options: unknown) => withBackend({ extra_config: { [NS]: options } });

describe('qos/http-cache: config', () => {
  it('reads the documented fields into plain, cloneable options', () => {
    const cfg = loadTestConfig({
      endpoints: [
        { endpoint: '/a', backend: [{ host: ['http://127.0.0.1:9'], url_pattern: '/a', extra_config: { [NS]: {} } }] },
        { endpoint: '/b', backend: [{ host: ['http://127.0.0.1:9'], url_pattern: '/b', extra_config: { [NS]: { shared: true, max_items: 10, max_size: 4096 } } }] },
      ],
    });
    const a = cfg.endpoints[0]!.backends[0]!.namespaces;
    const b = cfg.endpoints[1]!.backends[0]!.namespaces;
    assert.deepEqual(structuredClone(b), b);
    assert.deepEqual(a, [{ name: NS, options: { shared: false, maxItems: DEFAULT_MAX_ITEMS, maxSize: DEFAULT_MAX_SIZE } }]);
    assert.deepEqual(b, [{ name: NS, options: { shared: true, maxItems: 10, maxSize: 4096 } }]);
  });

  it('rejects wrong types and unbounded sizes with precise errors', () => {
    assert.match(errorAt(nsConfig('yes'), AT).expected, /an object/);
    assert.match(errorAt(nsConfig({ shared: 'yes' }), `${AT}.shared`).expected, /true or false/);
    const zero = errorAt(nsConfig({ max_items: 0, max_size: 100 }), `${AT}.max_items`);
    assert.match(zero.expected, /unbounded cache is not supported/);
    assert.match(errorAt(nsConfig({ max_items: 5, max_size: 0 }), `${AT}.max_size`).expected, /unbounded cache is not supported/);
    assert.match(errorAt(nsConfig({ max_items: 5, max_size: -1 }), `${AT}.max_size`).expected, /positive integer of bytes/);
    assert.match(errorAt(nsConfig({ max_items: 1.5, max_size: 10 }), `${AT}.max_items`).expected, /positive integer of entries/);
    assert.match(errorAt(nsConfig({ max_items: '5', max_size: 10 }), `${AT}.max_items`).found, /string/);
  });

  it('warns about unknown keys (did you mean) and about one bound without the other', () => {
    const r = load(nsConfig({ max_item: 5 }));
    assert.deepEqual(r.errors, []);
    assert.match(issueAt(r.warnings, `${AT}.max_item`).expected, /did you mean "max_items"/);
    const one = load(nsConfig({ max_size: 1000 }));
    assert.deepEqual(one.errors, []);
    assert.match(issueAt(one.warnings, `${AT}.max_size`).expected, /only when both are set/);
    const opts = one.config!.endpoints[0]!.backends[0]!.namespaces[0]!.options;
    assert.deepEqual(opts, { shared: false, maxItems: DEFAULT_MAX_ITEMS, maxSize: 1000 });
  });

  it('refuses a no-op (streamed) backend: a config error at the namespace, by either encoding', () => {
    const viaEndpoint = errorAt(service({ endpoints: [{ endpoint: '/s', output_encoding: 'no-op', backend: [{ url_pattern: '/s', extra_config: { [NS]: {} } }] }] }), `$.endpoints[0].backend[0].extra_config["${NS}"]`);
    assert.match(viaEndpoint.expected, /no-op answer is streamed and cannot be cached/);
    errorAt(withBackend({ encoding: 'no-op', extra_config: { [NS]: {} } }), `$.endpoints[0].backend[0].extra_config["${NS}"]`);
  });

  it('deep copies keep "__proto__" keys as keys', () => {
    const d = JSON.parse('{"__proto__": {"polluted": true}, "a": [1, {"b": 2}]}') as Record<string, unknown>;
    const c = cloneData(d);
    assert.deepEqual(c, d);
    assert.equal(Object.getPrototypeOf(c), Object.prototype);
    assert.equal((c as { polluted?: boolean }).polluted, undefined);
    assert.notEqual(c.a, d.a);
  });
});

// ---------------------------------------------------------------- behaviour

type Reply = (path: string, res: ServerResponse, headers: Record<string, string | string[] | undefined>) => void | Promise<void>;

const open: { close(): Promise<void> }[] = [];
after(async () => {
  await Promise.all(open.map((o) => o.close()));
});

async function backend(reply: Reply): Promise<TestBackend> {
  const b = await startBackend((req, res) => reply(req.url!, res, req.headers));
  open.push(b);
  return b;
}

async function gateway(config: Record<string, unknown>): Promise<TestGateway> {
  const g = await startGateway(config);
  open.push(g);
  return g;
}

/** One endpoint `/e/{id}` whose only backend is `/r/{id}` with the cache options given. */
function oneBackend(b: TestBackend, options: unknown = {}, extra: Record<string, unknown> = {}, endpoint: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    endpoints: [{ endpoint: '/e/{id}', ...endpoint, backend: [{ host: [b.url], url_pattern: '/r/{id}', extra_config: { [NS]: options }, ...extra }] }],
  };
}

const calls = (b: TestBackend, path?: string) => b.requests.filter((r) => path === undefined || r.url === path).length;

describe('qos/http-cache: what is stored', () => {
  it('a backend answering max-age=60 is called once for ten requests', async () => {
    let n = 0;
    const b = await backend((_p, res) => json(res, { n: ++n, nested: { list: [1, 2] } }, 200, { 'cache-control': 'max-age=60' }));
    const g = await gateway(oneBackend(b));
    for (let i = 0; i < 10; i++) {
      const r = await get(g.url, '/e/1');
      assert.equal(r.status, 200);
      assert.deepEqual(r.json(), { n: 1, nested: { list: [1, 2] } });
    }
    assert.equal(calls(b), 1);
    // Another URL is another entry.
    assert.deepEqual((await get(g.url, '/e/2')).json(), { n: 2, nested: { list: [1, 2] } });
    assert.equal(calls(b), 2);
  });

  it('Expires is honoured like max-age', async () => {
    const b = await backend((_p, res) => json(res, { ok: true }, 200, { expires: new Date(Date.now() + 60_000).toUTCString(), date: new Date().toUTCString() }));
    const g = await gateway(oneBackend(b));
    for (let i = 0; i < 3; i++) assert.equal((await get(g.url, '/e/1')).status, 200);
    assert.equal(calls(b), 1);
  });

  for (const [name, cc] of [
    ['no-store', 'no-store, max-age=60'],
    ['private (never stored: the gateway cache serves every client)', 'private, max-age=60'],
    ['no-cache (needs revalidation)', 'no-cache, max-age=60'],
    ['no caching headers at all', undefined],
  ] as const) {
    for (const shared of [false, true]) {
      it(`${name} is never cached (shared: ${shared})`, async () => {
        let n = 0;
        const b = await backend((_p, res) => json(res, { n: ++n }, 200, cc === undefined ? {} : { 'cache-control': cc }));
        const g = await gateway(oneBackend(b, { shared }));
        for (let i = 1; i <= 3; i++) assert.deepEqual((await get(g.url, '/e/1')).json(), { n: i });
        assert.equal(calls(b), 3);
      });
    }
  }

  it('a failed answer is not cached; the next success is', async () => {
    let n = 0;
    const b = await backend((_p, res) => (++n === 1 ? json(res, { err: true }, 500, { 'cache-control': 'max-age=60' }) : json(res, { n }, 200, { 'cache-control': 'max-age=60' })));
    const g = await gateway(oneBackend(b));
    assert.equal((await get(g.url, '/e/1')).status, 500);
    assert.deepEqual((await get(g.url, '/e/1')).json(), { n: 2 });
    assert.deepEqual((await get(g.url, '/e/1')).json(), { n: 2 });
    assert.equal(calls(b), 2);
  });

  it('a request with Authorization is not stored unless the answer is public', async () => {
    let n = 0;
    const b = await backend((p, res) => json(res, { n: ++n }, 200, { 'cache-control': p.startsWith('/r/pub') ? 'public, max-age=60' : 'max-age=60' }));
    const g = await gateway(oneBackend(b, {}, {}, { input_headers: ['Authorization'] }));
    const auth = { authorization: 'Bearer x' };
    await get(g.url, '/e/1', auth);
    await get(g.url, '/e/1', auth);
    assert.equal(calls(b, '/r/1'), 2);
    await get(g.url, '/e/pub', auth);
    await get(g.url, '/e/pub', auth);
    assert.equal(calls(b, '/r/pub'), 1);
  });

  it('an unsafe backend method is never cached', async () => {
    let n = 0;
    const b = await backend((_p, res) => json(res, { n: ++n }, 200, { 'cache-control': 'max-age=60' }));
    const g = await gateway(oneBackend(b, {}, { method: 'POST' }));
    await get(g.url, '/e/1');
    await get(g.url, '/e/1');
    assert.equal(calls(b), 2);
  });

  it('Vary: Accept-Language keeps two entries apart', async () => {
    const b = await backend((_p, res, h) => json(res, { lang: h['accept-language'] ?? 'none' }, 200, { 'cache-control': 'max-age=60', vary: 'Accept-Language' }));
    const g = await gateway(oneBackend(b, {}, {}, { input_headers: ['Accept-Language'] }));
    for (let i = 0; i < 3; i++) {
      assert.deepEqual((await get(g.url, '/e/1', { 'accept-language': 'en' })).json(), { lang: 'en' });
      assert.deepEqual((await get(g.url, '/e/1', { 'accept-language': 'fr' })).json(), { lang: 'fr' });
    }
    assert.equal(calls(b), 2);
    assert.deepEqual((await get(g.url, '/e/1')).json(), { lang: 'none' });
    assert.equal(calls(b), 3);
  });

  it('an entry expires with its max-age', async () => {
    let n = 0;
    const b = await backend((_p, res) => json(res, { n: ++n }, 200, { 'cache-control': 'max-age=1' }));
    const g = await gateway(oneBackend(b));
    assert.deepEqual((await get(g.url, '/e/1')).json(), { n: 1 });
    assert.deepEqual((await get(g.url, '/e/1')).json(), { n: 1 });
    await sleep(1100); // max-age has a one-second granularity: nothing to await but time
    assert.deepEqual((await get(g.url, '/e/1')).json(), { n: 2 });
    assert.equal(calls(b), 2);
  });
});

describe('qos/http-cache: concurrency, bounds, sharing', () => {
  it('50 concurrent misses make one backend call', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let n = 0;
    const b = await backend(async (_p, res) => {
      n++;
      await gate;
      json(res, { n }, 200, { 'cache-control': 'max-age=60' });
    });
    const g = await gateway(oneBackend(b));
    const all = Array.from({ length: 50 }, () => get(g.url, '/e/1'));
    while (calls(b) === 0) await sleep(5);
    await sleep(50); // let the other 49 reach the gateway and join the flight
    release();
    const rs = await Promise.all(all);
    for (const r of rs) assert.deepEqual(r.json(), { n: 1 });
    assert.equal(calls(b), 1);
  });

  it('waiters leave with their own deadline while the one call hangs', async () => {
    const b = await backend(() => undefined); // never answers
    const g = await gateway({ ...oneBackend(b), timeout: '300ms' });
    const started = performance.now();
    const rs = await Promise.all(Array.from({ length: 5 }, () => get(g.url, '/e/1')));
    for (const r of rs) assert.equal(r.status, 500);
    assert.ok(performance.now() - started < 3000);
    assert.equal(calls(b), 1);
  });

  it('a huge answer is not stored, and the rest of the cache stays', async () => {
    const big = 'x'.repeat(20_000);
    const b = await backend((p, res) => json(res, p === '/r/big' ? { big } : { small: true }, 200, { 'cache-control': 'max-age=60' }));
    const g = await gateway(oneBackend(b, { max_items: 10, max_size: 8192 }));
    await get(g.url, '/e/small');
    for (let i = 0; i < 3; i++) assert.equal((await get(g.url, '/e/big')).json().big.length, 20_000);
    await get(g.url, '/e/small');
    assert.equal(calls(b, '/r/big'), 3);
    assert.equal(calls(b, '/r/small'), 1);
  });

  it('max_items evicts the least recently used entry', async () => {
    const b = await backend((_p, res) => json(res, { ok: true }, 200, { 'cache-control': 'max-age=60' }));
    const g = await gateway(oneBackend(b, { max_items: 2, max_size: 1_000_000 }));
    for (const id of ['a', 'b', 'a', 'c', 'a', 'b']) await get(g.url, `/e/${id}`);
    assert.equal(calls(b, '/r/a'), 1); // kept: used most recently each time
    assert.equal(calls(b, '/r/b'), 2); // evicted by c
    assert.equal(calls(b, '/r/c'), 1);
  });

  it('max_size evicts by estimated bytes', async () => {
    const b = await backend((_p, res) => json(res, { pad: 'y'.repeat(3000) }, 200, { 'cache-control': 'max-age=60' }));
    const g = await gateway(oneBackend(b, { max_items: 100, max_size: 8000 }));
    for (const id of ['a', 'b', 'c', 'a']) await get(g.url, `/e/${id}`);
    // Two answers of ~3.5 KB fit in 8000 bytes, three do not: a was evicted by c.
    assert.equal(calls(b, '/r/a'), 2);
  });

  it('a cached answer is not corrupted when a later merge mutates the data', async () => {
    let n = 0;
    const cached = await backend((_p, res) => json(res, { user: { name: 'ann', tags: ['a'] } }, 200, { 'cache-control': 'max-age=60' }));
    const other = await backend((_p, res) => {
      n++;
      json(res, { [`extra${n}`]: n });
    });
    const g = await gateway({
      endpoints: [
        {
          endpoint: '/m',
          backend: [
            { host: [cached.url], url_pattern: '/u', extra_config: { [NS]: {} } },
            { host: [other.url], url_pattern: '/o' },
          ],
        },
      ],
    });
    const first = (await get(g.url, '/m')).json();
    const second = (await get(g.url, '/m')).json();
    const third = (await get(g.url, '/m')).json();
    assert.equal(calls(cached), 1);
    assert.equal(first.extra1, 1);
    assert.deepEqual(third, { user: { name: 'ann', tags: ['a'] }, extra3: 3 }, 'a merge into a cache hit leaked into the cached answer');
    assert.equal(second.extra2, 2);
    assert.equal(second.extra1, undefined, 'the first merge leaked into the cached answer');
    assert.deepEqual(second.user.tags, ['a']);
  });

  it('shared: one cache for identical backends of different endpoints; otherwise one per backend', async () => {
    for (const shared of [true, false]) {
      const b = await backend((_p, res) => json(res, { ok: true }, 200, { 'cache-control': 'max-age=60' }));
      const be = { host: [b.url], url_pattern: '/r', extra_config: { [NS]: { shared } } };
      const g = await gateway({ endpoints: [{ endpoint: '/x', backend: [be] }, { endpoint: '/y', backend: [be] }] });
      await get(g.url, '/x');
      await get(g.url, '/y');
      await get(g.url, '/x');
      await get(g.url, '/y');
      assert.equal(calls(b), shared ? 1 : 2, `shared: ${shared}`);
    }
  });

  it('shared entries are not mixed between backends that shape the answer differently', async () => {
    const b = await backend((_p, res) => json(res, { a: 1, b: 2 }, 200, { 'cache-control': 'max-age=60' }));
    const g = await gateway({
      endpoints: [
        { endpoint: '/x', backend: [{ host: [b.url], url_pattern: '/r', allow: ['a'], extra_config: { [NS]: { shared: true } } }] },
        { endpoint: '/y', backend: [{ host: [b.url], url_pattern: '/r', allow: ['b'], extra_config: { [NS]: { shared: true } } }] },
      ],
    });
    assert.deepEqual((await get(g.url, '/x')).json(), { a: 1 });
    assert.deepEqual((await get(g.url, '/y')).json(), { b: 2 });
  });

  it('the cache survives a reload that keeps the policy', async () => {
    const b = await backend((_p, res) => json(res, { ok: true }, 200, { 'cache-control': 'max-age=60' }));
    const config = oneBackend(b);
    const g = await gateway(config);
    await get(g.url, '/e/1');
    await g.reload(config);
    await get(g.url, '/e/1');
    assert.equal(calls(b), 1);
    assert.ok(g.state.keys().some((k) => k.startsWith(NS)));
  });
});
