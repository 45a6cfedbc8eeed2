// modifier/response-headers: add, replace and delete headers of every answer,
// whatever produced it (an endpoint, a streamed no-op answer, an error, a 404,
// a policy refusal), over HTTP with real backends.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadConfigText } from '../../src/config/load.ts';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';
import { get } from '../helpers/http.ts';

describe('modifier/response-headers', () => {
  let be: TestBackend;
  let gw: TestGateway;

  before(async () => {
    be = await startBackend((req, res) => {
      res.setHeader('x-backend', 'b');
      res.setHeader('set-cookie', ['a=1', 'b=2']);
      json(res, { url: req.url });
    });
    gw = await startGateway({
      host: [be.url],
      extra_config: {
        'modifier/response-headers': {
          add: { 'x-hello': ['World'], 'Set-Cookie': ['c=3'] },
          replace: { 'X-Portico-Completed': ['replaced'], 'x-backend': ['gateway'] },
          delete: ['X-Request-Id'],
        },
        'auth/api-keys': { keys: [{ key: 'k-1', roles: ['user'] }] },
      },
      endpoints: [
        { endpoint: '/json', backend: [{ url_pattern: '/json' }] },
        { endpoint: '/noop', output_encoding: 'no-op', backend: [{ url_pattern: '/noop', encoding: 'no-op' }] },
        { endpoint: '/down', backend: [{ host: ['http://127.0.0.1:1'], url_pattern: '/d' }] },
        { endpoint: '/private', extra_config: { 'auth/api-keys': { roles: ['user'] } }, backend: [{ url_pattern: '/p' }] },
      ],
    });
  });

  after(async () => {
    await gw.close();
    await be.close();
  });

  const expectRules = (h: Record<string, unknown>) => {
    assert.equal(h['x-hello'], 'World', 'added');
    assert.equal(h['x-portico-completed'], 'replaced', "Portico's own header replaced");
    assert.equal(h['x-request-id'], undefined, 'deleted');
  };

  it('changes the headers of a decoded answer', async () => {
    const r = await get(gw.url, '/json');
    assert.equal(r.status, 200);
    expectRules(r.headers);
    assert.deepEqual(r.json(), { url: '/json' }, 'the body is untouched');
  });

  it("changes a streamed answer's headers, the backend's included; add appends to what is there", async () => {
    const r = await get(gw.url, '/noop');
    assert.equal(r.status, 200);
    expectRules(r.headers);
    assert.equal(r.headers['x-backend'], 'gateway', "the backend's header replaced");
    assert.deepEqual(r.headers['set-cookie'], ['a=1', 'b=2', 'c=3']);
    assert.equal(r.headers['content-length'], String(Buffer.byteLength(JSON.stringify({ url: '/noop' }))));
  });

  it('changes errors, policy refusals, 404s and the built-in endpoints too', async () => {
    for (const [path, status] of [['/down', 500], ['/private', 401], ['/nowhere', 404], ['/__health', 200]] as const) {
      const r = await get(gw.url, path);
      assert.equal(r.status, status, path);
      assert.equal(r.headers['x-hello'], 'World', path);
      assert.equal(r.headers['x-request-id'], undefined, path);
    }
  });

  it('refuses names and values that would corrupt the answer, with their place', () => {
    const r = loadConfigText(
      JSON.stringify({
        version: 3,
        extra_config: { 'modifier/response-headers': { delete: ['Content-Length'], add: { 'bad name': ['x'], 'X-Ok': ['a\r\nInjected: 1'], 'X-Bell': ['\u0007'] }, replace: { 'X-N': [1] } } },
        endpoints: [],
      }),
      'c.json',
      { env: {} },
    );
    const where = r.errors.map((e) => e.path);
    assert.ok(where.includes('$.extra_config["modifier/response-headers"].delete[0]'), where.join('\n'));
    assert.ok(where.includes('$.extra_config["modifier/response-headers"].add["bad name"]'), where.join('\n'));
    assert.ok(where.includes('$.extra_config["modifier/response-headers"].add["X-Ok"]'), where.join('\n'));
    // node:http would throw on any control character but tab when the header is written.
    assert.ok(where.includes('$.extra_config["modifier/response-headers"].add["X-Bell"]'), where.join('\n'));
    assert.ok(where.includes('$.extra_config["modifier/response-headers"].replace["X-N"]'), where.join('\n'));
  });

  it('is a policy: on an endpoint it is refused, not skipped', () => {
    const r = loadConfigText(
      JSON.stringify({ version: 3, endpoints: [{ endpoint: '/x', extra_config: { 'modifier/response-headers': { delete: ['X-A'] } }, backend: [{ host: ['http://a'], url_pattern: '/' }] }] }),
      'c.json',
      { env: {} },
    );
    assert.ok(r.errors.some((e) => e.path === '$.endpoints[0].extra_config["modifier/response-headers"]'));
  });
});
