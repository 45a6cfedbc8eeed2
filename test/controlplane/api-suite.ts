// The admin and data-plane API behaviour every store must show, run against a
// fresh control plane (started with --watch-hold 300ms) by each store's test file.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { configHash } from '../../src/lifecycle/canonical.ts';
import { call, config, okReport, stopAll, type ControlPlaneProcess } from './support.ts';

export const HOLD_MS = 300;

export function apiSuite(name: string, start: () => Promise<ControlPlaneProcess>, opts: { skip?: string } = {}): void {
  describe(`control plane API (${name})`, { skip: opts.skip }, () => {
    let cp: ControlPlaneProcess;
    let url: string;
    const hashes: Record<number, string> = {};
    before(async () => {
      cp = await start();
      url = cp.url;
    });
    after(stopAll);

    it('answers 404 / an empty history / a zero latest before anything is published', async () => {
      assert.equal((await call(url, '/v1/config')).status, 404);
      const h = await call(url, '/v1/configs');
      assert.equal(h.status, 200);
      assert.deepEqual(h.json(), { latest: 0, total: 0, configs: [] });
      const w = await call(url, '/v1/watch?after=3&node=n1');
      assert.equal(w.status, 409);
      assert.equal(w.json().latest, 0);
    });

    it('PUT /v1/config stores a valid config as version 1 with its content hash', async () => {
      const doc = config('a');
      const r = await call(url, '/v1/config', { body: doc, headers: { 'x-portico-author': 'alice', 'x-portico-message': 'first' } });
      assert.equal(r.status, 201, r.body);
      assert.deepEqual(r.json(), { version: 1, hash: configHash(doc) });
      assert.equal(r.headers.location, '/v1/configs/1');
      hashes[1] = r.json().hash;
    });

    it('the same content again (reformatted, keys reordered, comment keys) is 200 unchanged, no new version', async () => {
      const doc = config('a');
      const text = JSON.stringify({ endpoints: doc.endpoints, '@comment': 'ignored', timeout: '3s', version: 3 }, null, 4);
      const r = await call(url, '/v1/config', { body: text });
      assert.equal(r.status, 200);
      assert.deepEqual(r.json(), { version: 1, hash: hashes[1], unchanged: true });
      assert.equal((await call(url, '/v1/configs')).json().total, 1);
    });

    it('a different config becomes version 2; YAML with the same content is unchanged', async () => {
      const r = await call(url, '/v1/config?author=bob&message=second%20%C3%A9', { body: config('b') });
      assert.equal(r.status, 201);
      assert.equal(r.json().version, 2);
      hashes[2] = r.json().hash;
      const yaml = 'version: 3\ntimeout: 3s\nendpoints:\n  - endpoint: /b\n    backend:\n      - host: ["http://backend:8000"]\n        url_pattern: /b\n';
      const y = await call(url, '/v1/config', { method: 'PUT', body: yaml, headers: { 'content-type': 'application/yaml' } });
      assert.equal(y.status, 200, y.body);
      assert.deepEqual(y.json(), { version: 2, hash: hashes[2], unchanged: true });
    });

    it('GET /v1/config, /v1/configs/{v} and the history (newest first, with author and message)', async () => {
      const latest = await call(url, '/v1/config');
      assert.equal(latest.status, 200);
      assert.equal(latest.headers.etag, '"2"');
      assert.equal(latest.json().version, 2);
      assert.deepEqual(latest.json().config, config('b'));
      const v1 = (await call(url, '/v1/configs/1')).json();
      assert.equal(v1.hash, hashes[1]);
      assert.equal(v1.author, 'alice');
      const h = (await call(url, '/v1/configs')).json();
      assert.equal(h.latest, 2);
      assert.deepEqual(
        h.configs.map((c: any) => [c.version, c.hash, c.author, c.message, typeof c.created_at]),
        [
          [2, hashes[2], 'bob', 'second é', 'string'],
          [1, hashes[1], 'alice', 'first', 'string'],
        ],
      );
      assert.equal(h.configs[0].config, undefined, 'history carries no config bodies');
      assert.deepEqual((await call(url, '/v1/configs?limit=1')).json().configs.map((c: any) => c.version), [2]);
    });

    it('version in the URL: 404 when missing, 400 when not a positive integer', async () => {
      assert.equal((await call(url, '/v1/configs/99')).status, 404);
      for (const bad of ['0', '-1', 'abc', '1.5', '01', '99999999999999999999']) {
        const r = await call(url, `/v1/configs/${bad}`);
        assert.equal(r.status, 400, bad);
        assert.match(r.json().error, /positive integer/);
      }
      assert.equal((await call(url, '/v1/configs?limit=x')).status, 400);
    });

    it('an invalid config is 400 with every error, and nothing is stored', async () => {
      const body = '{\n  "version": 2,\n  "timeout": "2 seconds",\n  "endpoints": [{ "endpoint": "/a", "backend": [] }]\n}';
      const r = await call(url, '/v1/config', { method: 'PUT', body });
      assert.equal(r.status, 400);
      const errors: string[] = r.json().errors;
      assert.equal(errors.length, 3, errors.join('\n'));
      assert.match(errors[0], /^<request body>:2:\d+ error \$\.version: expected/);
      assert.match(errors[1], /\$\.timeout: expected a Go duration.*found "2 seconds"/);
      assert.match(errors[2], /\$\.endpoints\[0\]\.backend/);
      assert.equal((await call(url, '/v1/configs')).json().total, 2);
    });

    it('bodies that are not JSON, empty, not UTF-8 or over 8 MiB: 400 / 413', async () => {
      const notJson = await call(url, '/v1/config', { method: 'PUT', body: '{"version": 3,' });
      assert.equal(notJson.status, 400);
      assert.match(notJson.json().error, /not JSON/);
      assert.equal(notJson.json().errors.length, 1);
      assert.equal((await call(url, '/v1/config', { method: 'PUT', body: '' })).status, 400);
      assert.equal((await call(url, '/v1/config', { method: 'PUT', body: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]) })).status, 400);
      const big = await call(url, '/v1/config', { method: 'PUT', body: Buffer.alloc(8 * 1024 * 1024 + 1, 0x20) });
      assert.equal(big.status, 413);
      const streamed = await call(url, '/v1/config', { method: 'PUT', body: Buffer.alloc(8 * 1024 * 1024 + 1, 0x20), headers: { 'transfer-encoding': 'chunked' } });
      assert.equal(streamed.status, 413);
      assert.equal((await call(url, '/v1/configs')).json().total, 2);
    });

    it('If-Match: 409 with the latest when another write won, 201 when it matches, 400 when not a version', async () => {
      const stale = await call(url, '/v1/config', { body: config('c'), headers: { 'if-match': '1' } });
      assert.equal(stale.status, 409);
      assert.equal(stale.json().latest, 2);
      assert.equal((await call(url, '/v1/config', { body: config('c'), headers: { 'if-match': 'two' } })).status, 400);
      const ok = await call(url, '/v1/config', { body: config('c'), headers: { 'if-match': '"2"' } });
      assert.equal(ok.status, 201);
      assert.equal(ok.json().version, 3);
      hashes[3] = ok.json().hash;
    });

    it('diff: endpoints added, removed and changed, backends by index, service keys', async () => {
      const base = config('c');
      const next = {
        ...base,
        timeout: '5s',
        endpoints: [
          { endpoint: '/c', timeout: '1s', backend: [{ host: ['http://backend:8000'], url_pattern: '/c2' }, { host: ['http://other:80'], url_pattern: '/extra' }] },
          { endpoint: '/new', method: 'POST', backend: [{ host: ['http://backend:8000'], url_pattern: '/n' }] },
        ],
      };
      const put = await call(url, '/v1/config', { body: next });
      assert.equal(put.status, 201);
      const d = await call(url, '/v1/configs/2/diff/4');
      assert.equal(d.status, 200);
      assert.deepEqual(d.json(), {
        from: { version: 2, hash: hashes[2] },
        to: { version: 4, hash: put.json().hash },
        identical: false,
        service: {
          changed: true,
          keys: ['timeout'],
          fields: [{ path: 'timeout', change: 'changed', from: '3s', to: '5s', inherited_by: 1 }],
          namespaces: { added: [], removed: [], changed: [] },
        },
        endpoints: { added: ['GET /c', 'POST /new'], removed: ['GET /b'], changed: [] },
      });
      const c = (await call(url, '/v1/configs/3/diff/4')).json();
      assert.deepEqual(c.endpoints.changed, [
        {
          endpoint: 'GET /c',
          keys: ['timeout'],
          fields: [{ path: 'timeout', change: 'added', to: '1s' }],
          namespaces: { added: [], removed: [], changed: [] },
          backends: [
            {
              index: 0,
              host: ['http://backend:8000'],
              url_pattern: '/c2',
              change: 'changed',
              keys: ['url_pattern'],
              fields: [{ path: 'url_pattern', change: 'changed', from: '/c', to: '/c2' }],
              namespaces: { added: [], removed: [], changed: [] },
            },
            { index: 1, host: ['http://other:80'], url_pattern: '/extra', change: 'added' },
          ],
          backends_reordered: false,
        },
      ]);
      assert.equal((await call(url, '/v1/configs/3/diff/3')).json().identical, true);
      assert.equal((await call(url, '/v1/configs/3/diff/77')).status, 404);
      assert.equal((await call(url, '/v1/configs/x/diff/3')).status, 400);
    });

    it('rollback publishes an old version again as a new one; 404 for a missing one; unchanged when already latest', async () => {
      const r = await call(url, '/v1/rollback/1', { method: 'POST' });
      assert.equal(r.status, 201, r.body);
      assert.deepEqual(r.json(), { version: 5, hash: hashes[1], rolled_back_from: 1 });
      const latest = (await call(url, '/v1/config')).json();
      assert.deepEqual(latest.config, config('a'));
      assert.equal(latest.message, 'rollback to version 1');
      const again = await call(url, '/v1/rollback/1', { method: 'POST' });
      assert.equal(again.status, 200);
      assert.equal(again.json().unchanged, true);
      assert.equal((await call(url, '/v1/rollback/42', { method: 'POST' })).status, 404);
      assert.equal((await call(url, '/v1/rollback/zero', { method: 'POST' })).status, 400);
      assert.equal((await call(url, '/v1/rollback/2', { method: 'POST', headers: { 'if-match': '4' } })).status, 409);
    });

    it('watch: at once when newer, 204 after the hold, 409 from the future, 400 for bad input', async () => {
      const now = await call(url, '/v1/watch?after=2&node=node-1');
      assert.equal(now.status, 200);
      assert.equal(now.json().version, 5);
      assert.deepEqual(now.json().config, config('a'));
      const t0 = Date.now();
      const held = await call(url, '/v1/watch?after=5&node=node-1');
      assert.equal(held.status, 204);
      assert.ok(Date.now() - t0 >= HOLD_MS - 50, `held ${Date.now() - t0} ms`);
      const future = await call(url, '/v1/watch?after=6&node=node-1');
      assert.equal(future.status, 409);
      assert.equal(future.json().latest, 5);
      for (const q of ['after=abc', 'after=-1', 'after=1e3', 'after=1&node=', 'after=1&node=a%2Fb', 'after=1&node=..', `after=1&node=${'x'.repeat(129)}`, 'after=1&node=%C3%A9']) {
        assert.equal((await call(url, `/v1/watch?${q}`)).status, 400, q);
      }
    });

    it('a held watch is answered as soon as a new version is published', async () => {
      const pending = call(url, '/v1/watch?after=5&node=node-2');
      await new Promise((r) => setTimeout(r, 50));
      const put = await call(url, '/v1/config', { body: config('d') });
      assert.equal(put.status, 201);
      const w = await pending;
      assert.equal(w.status, 200);
      assert.equal(w.json().version, put.json().version);
      hashes[6] = put.json().hash;
    });

    it('node reports: 204, kept and listed with staleness; a watch alone lists the node as starting', async () => {
      const r = await call(url, '/v1/nodes/node-1/report', { method: 'POST', body: okReport(5, hashes[1]) });
      assert.equal(r.status, 204, r.body);
      const rej = { applied_version: 5, hash: hashes[1], status: 'rejected', rejected_version: 6, error: 'bad thing' };
      assert.equal((await call(url, '/v1/nodes/gw-b.example_1/report', { method: 'POST', body: rej })).status, 204);
      const { latest, nodes } = (await call(url, '/v1/nodes')).json();
      assert.equal(latest, 6);
      const byId = Object.fromEntries(nodes.map((n: any) => [n.node, n]));
      assert.deepEqual(Object.keys(byId).sort(), ['gw-b.example_1', 'n1', 'node-1', 'node-2']);
      assert.equal(byId['node-1'].applied_version, 5);
      assert.equal(byId['node-1'].behind, 1);
      assert.equal(byId['node-1'].status, 'ok');
      assert.ok(byId['node-1'].seconds_since_seen < 5);
      assert.equal(byId['gw-b.example_1'].rejected_version, 6);
      assert.equal(byId['gw-b.example_1'].error, 'bad thing');
      assert.equal(byId['node-2'].status, 'starting');
      assert.equal(byId['node-2'].behind, null);
    });

    it('bad reports and node ids: 400, nothing stored', async () => {
      const good = okReport(1, hashes[1]);
      const cases: Array<[string, string | object]> = [
        ['/v1/nodes/ok-node/report', 'not json'],
        ['/v1/nodes/ok-node/report', [1, 2]],
        ['/v1/nodes/ok-node/report', { ...good, status: 'fine' }],
        ['/v1/nodes/ok-node/report', { ...good, applied_version: -1 }],
        ['/v1/nodes/ok-node/report', { ...good, hash: 'abc' }],
        ['/v1/nodes/ok-node/report', { applied_version: 1 }],
        ['/v1/nodes/bad%20id/report', good],
        ['/v1/nodes/.hidden/report', good],
        ['/v1/nodes/a;b/report', good],
      ];
      for (const [path, body] of cases) {
        const r = await call(url, path, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json' } });
        assert.equal(r.status, 400, `${path} ${JSON.stringify(body)}: ${r.body}`);
      }
      const nodes = (await call(url, '/v1/nodes')).json().nodes.map((n: any) => n.node);
      assert.ok(!nodes.includes('ok-node'));
    });

    it('unknown paths 404, wrong methods 405 with Allow, health 200', async () => {
      assert.equal((await call(url, '/v2/config')).status, 404);
      const r = await call(url, '/v1/configs', { method: 'DELETE' });
      assert.equal(r.status, 405);
      assert.equal(r.headers.allow, 'GET');
      const h = await call(url, '/v1/health');
      assert.equal(h.status, 200);
      assert.equal(h.json().latest, 6);
    });
  });
}
