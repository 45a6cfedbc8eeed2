import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';
import { get } from '../helpers/http.ts';

describe('encodings through the gateway', () => {
  let be: TestBackend;
  let gw: TestGateway;
  before(async () => {
    be = await startBackend((req, res) => {
      const url = req.url!;
      if (url === '/obj') return json(res, { user: { id: 1, name: 'n', secret: 's', tags: ['a'] }, meta: { page: 1 } });
      if (url === '/arr') return json(res, [{ id: 1 }, { id: 2 }]);
      if (url === '/scalar') return json(res, '"just a string"');
      if (url === '/text') return json(res, 'plain words', 200, { 'content-type': 'text/plain' });
      if (url === '/xml') return json(res, '<user><id>1</id><name>n</name></user>', 200, { 'content-type': 'application/xml' });
      if (url === '/bad') return json(res, '{not json');
      if (url === '/noop') {
        res.writeHead(203, { 'content-type': 'text/csv', 'x-backend': 'kept', 'set-cookie': ['a=1', 'b=2'] });
        return void res.end('a,b\n1,2\n');
      }
      json(res, {}, 404);
    });
    gw = await startGateway({
      host: [be.url],
      endpoints: [
        { endpoint: '/target', backend: [{ url_pattern: '/obj', target: 'user', allow: ['id', 'name'] }] },
        { endpoint: '/deny', backend: [{ url_pattern: '/obj', deny: ['user.secret', 'meta'] }] },
        { endpoint: '/mapping', backend: [{ url_pattern: '/obj', target: 'user', mapping: { name: 'full_name' }, deny: ['secret'] }] },
        { endpoint: '/collection', backend: [{ url_pattern: '/arr', is_collection: true }] },
        { endpoint: '/json-collection', output_encoding: 'json-collection', backend: [{ url_pattern: '/arr', is_collection: true }] },
        { endpoint: '/safejson', backend: [{ url_pattern: '/scalar', encoding: 'safejson' }] },
        { endpoint: '/string', output_encoding: 'string', backend: [{ url_pattern: '/text', encoding: 'string' }] },
        { endpoint: '/xml-in', backend: [{ url_pattern: '/xml', encoding: 'xml' }] },
        { endpoint: '/yaml-out', output_encoding: 'yaml', backend: [{ url_pattern: '/obj', target: 'meta' }] },
        { endpoint: '/xml-out', output_encoding: 'xml', backend: [{ url_pattern: '/obj', target: 'meta' }] },
        { endpoint: '/negotiate', output_encoding: 'negotiate', backend: [{ url_pattern: '/obj', target: 'meta' }] },
        { endpoint: '/bad', backend: [{ url_pattern: '/bad' }] },
        { endpoint: '/noop', output_encoding: 'no-op', backend: [{ url_pattern: '/noop', encoding: 'no-op' }] },
        {
          endpoint: '/flatmap',
          backend: [{ url_pattern: '/obj', extra_config: { proxy: { flatmap_filter: [{ type: 'move', args: ['user.name', 'username'] }, { type: 'del', args: ['meta'] }] } } }],
        },
      ],
    });
  });
  after(async () => {
    await gw.close();
    await be.close();
  });

  it('target then allow', async () => assert.deepEqual((await get(gw.url, '/target')).json(), { id: 1, name: 'n' }));
  it('deny with nested paths', async () => assert.deepEqual((await get(gw.url, '/deny')).json(), { user: { id: 1, name: 'n', tags: ['a'] } }));
  it('mapping renames keys', async () => assert.deepEqual((await get(gw.url, '/mapping')).json(), { id: 1, full_name: 'n', tags: ['a'] }));
  it('is_collection wraps arrays', async () => assert.deepEqual((await get(gw.url, '/collection')).json(), { collection: [{ id: 1 }, { id: 2 }] }));
  it('json-collection answers the array alone', async () => {
    const r = await get(gw.url, '/json-collection');
    assert.equal(r.body, '[{"id":1},{"id":2}]');
  });
  it('safejson wraps scalars as result (as lura does)', async () => assert.deepEqual((await get(gw.url, '/safejson')).json(), { result: 'just a string' }));
  it('string in, string out', async () => {
    const r = await get(gw.url, '/string');
    assert.equal(r.body, 'plain words');
    assert.match(String(r.headers['content-type']), /^text\/plain/);
  });
  it('xml backends decode to objects', async () => assert.deepEqual((await get(gw.url, '/xml-in')).json(), { user: { id: '1', name: 'n' } }));
  it('yaml output', async () => {
    const r = await get(gw.url, '/yaml-out');
    assert.match(String(r.headers['content-type']), /yaml/);
    assert.equal(r.body.trim(), 'page: 1');
  });
  it('xml output', async () => {
    const r = await get(gw.url, '/xml-out');
    assert.match(String(r.headers['content-type']), /xml/);
    assert.match(r.body, /<page>1<\/page>/);
  });
  it('negotiate picks by Accept', async () => {
    assert.match(String((await get(gw.url, '/negotiate', { accept: 'application/xml' })).headers['content-type']), /xml/);
    assert.match(String((await get(gw.url, '/negotiate', { accept: 'application/json' })).headers['content-type']), /json/);
    assert.match(String((await get(gw.url, '/negotiate')).headers['content-type']), /json/);
  });
  it('invalid JSON from a backend is a backend error', async () => {
    const r = await get(gw.url, '/bad');
    assert.equal(r.status, 500);
  });
  it('no-op passes status, headers and body through untouched', async () => {
    const r = await get(gw.url, '/noop');
    assert.equal(r.status, 203);
    assert.equal(r.body, 'a,b\n1,2\n');
    assert.equal(r.headers['content-type'], 'text/csv');
    assert.equal(r.headers['x-backend'], 'kept');
    assert.deepEqual(r.headers['set-cookie'], ['a=1', 'b=2']);
  });
  it('backend flatmap_filter replaces allow/deny/mapping', async () => {
    assert.deepEqual((await get(gw.url, '/flatmap')).json(), { user: { id: 1, secret: 's', tags: ['a'] }, username: 'n' });
  });
});

describe('compressed backend bodies', () => {
  it('decodes a gzip or brotli body when Accept-Encoding was forwarded', async () => {
    const { gzipSync, brotliCompressSync } = await import('node:zlib');
    const be = await startBackend((req, res) => {
      const body = Buffer.from(JSON.stringify({ packed: req.url }));
      const enc = String(req.headers['accept-encoding'] ?? '');
      if (enc.includes('br')) {
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'br' });
        return void res.end(brotliCompressSync(body));
      }
      if (enc.includes('gzip')) {
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
        return void res.end(gzipSync(body));
      }
      json(res, { plain: true });
    });
    const gw = await startGateway({ host: [be.url], endpoints: [{ endpoint: '/z', input_headers: ['Accept-Encoding'], backend: [{ url_pattern: '/z' }] }] });
    try {
      assert.deepEqual((await get(gw.url, '/z', { 'accept-encoding': 'gzip' })).json(), { packed: '/z' });
      assert.deepEqual((await get(gw.url, '/z', { 'accept-encoding': 'br' })).json(), { packed: '/z' });
      assert.deepEqual((await get(gw.url, '/z')).json(), { plain: true });
    } finally {
      await gw.close();
      await be.close();
    }
  });
});
