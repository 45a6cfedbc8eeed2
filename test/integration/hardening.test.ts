import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';
import { get, raw, request } from '../helpers/http.ts';

describe('malformed requests get a clear 4xx and never reach a backend', () => {
  let be: TestBackend;
  let gw: TestGateway;
  before(async () => {
    be = await startBackend((_req, res) => json(res, { ok: true }));
    gw = await startGateway({
      host: [be.url],
      extra_config: { 'portico/server': { max_body_bytes: 1024 } },
      endpoints: [
        { endpoint: '/files/{name}', backend: [{ url_pattern: '/f/{name}' }] },
        { endpoint: '/upload', method: 'POST', backend: [{ url_pattern: '/up' }] },
      ],
    });
  });
  after(async () => {
    await gw.close();
    await be.close();
  });

  const status = (text: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);

  it('two Host headers: 400', async () => {
    const n = be.requests.length;
    const text = await raw(gw.port, 'GET /files/a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n');
    assert.equal(status(text), 400);
    assert.equal(be.requests.length, n);
  });

  it('absolute-form target for another authority: 400', async () => {
    const n = be.requests.length;
    const text = await raw(gw.port, `GET http://evil.example/files/a HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\n\r\n`);
    assert.equal(status(text), 400);
    assert.equal(be.requests.length, n);
  });

  it('absolute-form target for our own authority is served', async () => {
    const text = await raw(gw.port, `GET http://127.0.0.1:${gw.port}/files/a HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\nConnection: close\r\n\r\n`);
    assert.equal(status(text), 200);
  });

  it('HTTP/1.0 with Transfer-Encoding: 400', async () => {
    const n = be.requests.length;
    const text = await raw(gw.port, 'POST /upload HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
    assert.equal(status(text), 400);
    assert.equal(be.requests.length, n);
  });

  for (const [what, path] of [
    ['encoded slash', '/files/a%2Fb'],
    ['encoded dot-dot', '/files/%2e%2e'],
    ['raw dot-dot', '/files/..'],
    ['bad percent-encoding', '/files/%zz'],
  ]) {
    it(`${what} in a path parameter: 400`, async () => {
      const n = be.requests.length;
      const r = await get(gw.url, path);
      assert.equal(r.status, 400);
      assert.equal(be.requests.length, n);
    });
  }

  it('oversized headers: 431', async () => {
    const text = await raw(gw.port, `GET /files/a HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    assert.equal(status(text), 431);
  });

  it('a body over the limit: 413, by Content-Length and when streamed', async () => {
    const n = be.requests.length;
    const r = await request(gw.url, '/upload', { method: 'POST', body: 'x'.repeat(2000) });
    assert.equal(r.status, 413);
    const text = await raw(gw.port, `POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n${'y'.repeat(2000)}\r\n0\r\n\r\n`);
    assert.equal(status(text), 413);
    assert.equal(be.requests.length, n);
  });

  it('a body under the limit passes', async () => {
    const r = await request(gw.url, '/upload', { method: 'POST', body: 'x'.repeat(1000) });
    assert.equal(r.status, 200);
    assert.equal(be.requests.at(-1)!.body.length, 1000);
  });

  it('garbage on the wire: 400, and the gateway keeps serving', async () => {
    const text = await raw(gw.port, 'NOT HTTP AT ALL\r\n\r\n');
    assert.equal(status(text), 400);
    assert.equal((await get(gw.url, '/files/ok')).status, 200);
  });
});

describe('slow clients', () => {
  it('a client that sends headers too slowly gets 408 after read_header_timeout (slowloris)', async () => {
    const be = await startBackend((_req, res) => json(res, {}));
    const gw = await startGateway({ host: [be.url], read_header_timeout: '300ms', endpoints: [{ endpoint: '/a', backend: [{ url_pattern: '/a' }] }] });
    try {
      const t0 = Date.now();
      const text = await raw(gw.port, 'GET /a HTTP/1.1\r\nHost: x\r\nX-Slow: 1', 3000);
      assert.match(text, /^HTTP\/1\.1 408/);
      assert.ok(Date.now() - t0 < 2500, 'closed well before the client gave up');
      assert.equal(be.requests.length, 0);
    } finally {
      await gw.close();
      await be.close();
    }
  });
});

describe('misbehaving backends are errors for that request only', () => {
  let be: TestBackend;
  let resetter: Server;
  let resetPort: number;
  let gw: TestGateway;
  before(async () => {
    be = await startBackend(async (req, res) => {
      if (req.url === '/invalid') return json(res, '{"a":');
      if (req.url === '/hang') return; // never answers
      if (req.url === '/huge') {
        res.writeHead(200, { 'content-type': 'application/json' });
        const chunk = Buffer.alloc(64 * 1024, 32);
        res.write('{"a":"');
        for (let i = 0; i < 64 && !res.destroyed; i++) {
          res.write(chunk);
          await sleep(1);
        }
        return void res.end('"}');
      }
      if (req.url === '/half') {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': 100 });
        res.write('{"a":');
        await sleep(20);
        return void res.destroy();
      }
      json(res, { fine: true });
    });
    resetter = createServer((s) => s.destroy());
    await new Promise<void>((r) => resetter.listen(0, '127.0.0.1', r));
    resetPort = (resetter.address() as AddressInfo).port;
    gw = await startGateway({
      host: [be.url],
      timeout: '500ms',
      extra_config: { 'portico/server': { max_backend_body_bytes: 1024 * 1024 } },
      endpoints: [
        { endpoint: '/invalid', backend: [{ url_pattern: '/invalid' }] },
        { endpoint: '/hang', backend: [{ url_pattern: '/hang' }] },
        { endpoint: '/huge', backend: [{ url_pattern: '/huge' }] },
        { endpoint: '/half', backend: [{ url_pattern: '/half' }] },
        { endpoint: '/reset', backend: [{ host: [`http://127.0.0.1:${resetPort}`], url_pattern: '/' }] },
        { endpoint: '/mixed', backend: [{ url_pattern: '/fine' }, { url_pattern: '/hang', group: 'h' }, { host: [`http://127.0.0.1:${resetPort}`], url_pattern: '/', group: 'r' }] },
      ],
    });
  });
  after(async () => {
    await gw.close();
    await be.close();
    resetter.close();
  });

  for (const path of ['/invalid', '/hang', '/huge', '/half', '/reset']) {
    it(`${path}: 500, and the next request is served`, async () => {
      const r = await get(gw.url, path);
      assert.equal(r.status, 500);
      assert.equal((await get(gw.url, '/mixed')).status, 200);
    });
  }

  it('a mix of good, hanging and resetting backends answers partial', async () => {
    const r = await get(gw.url, '/mixed');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { fine: true });
    assert.equal(r.headers['x-portico-completed'], 'false');
  });
});
