import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { json, startBackend } from '../helpers/backend.ts';
import { accessLines, startGateway } from '../helpers/gateway.ts';
import { get } from '../helpers/http.ts';

describe('access log', () => {
  it('logs one line per request, except logger_skip_paths, and none with disable_access_log', async () => {
    const be = await startBackend((_req, res) => json(res, { ok: 1 }));
    const on = await startGateway({
      host: [be.url],
      extra_config: { router: { logger_skip_paths: ['/__health'] } },
      endpoints: [{ endpoint: '/logged', backend: [{ url_pattern: '/x' }] }],
    });
    const off = await startGateway({
      host: [be.url],
      extra_config: { router: { disable_access_log: true } },
      endpoints: [{ endpoint: '/quiet', backend: [{ url_pattern: '/x' }] }],
    });
    try {
      accessLines.length = 0;
      await get(on.url, '/logged?secret=1');
      await get(on.url, '/__health');
      await get(on.url, '/missing');
      await get(off.url, '/quiet');
      await sleep(20);
      const entries = accessLines.map((l) => JSON.parse(l));
      assert.deepEqual(
        entries.map((e) => [e.method, e.path, e.status]),
        [['GET', '/logged', 200], ['GET', '/missing', 404]],
      );
      assert.equal(entries[0].client, '127.0.0.1');
      assert.equal(typeof entries[0].duration_ms, 'number');
    } finally {
      await on.close();
      await off.close();
      await be.close();
    }
  });
});

describe('router.disable_health', () => {
  it('removes /__health', async () => {
    const be = await startBackend((_req, res) => json(res, {}));
    const gw = await startGateway({ host: [be.url], extra_config: { router: { disable_health: true } }, endpoints: [{ endpoint: '/a', backend: [{ url_pattern: '/a' }] }] });
    try {
      assert.equal((await get(gw.url, '/__health')).status, 404);
    } finally {
      await gw.close();
      await be.close();
    }
  });
});

describe('no-op streaming', () => {
  it('streams the backend body as it arrives instead of buffering it', async () => {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const be = await startBackend(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first-chunk;');
      await released;
      res.end('last-chunk');
    });
    const gw = await startGateway({
      host: [be.url],
      timeout: '5s',
      endpoints: [{ endpoint: '/stream', output_encoding: 'no-op', backend: [{ url_pattern: '/s', encoding: 'no-op' }] }],
    });
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const req = httpRequest(`${gw.url}/stream`, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            text += chunk;
            // The first chunk reached the client while the backend was still holding the rest.
            if (text === 'first-chunk;') release();
          });
          res.on('end', () => resolve(text));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(body, 'first-chunk;last-chunk');
    } finally {
      release();
      await gw.close();
      await be.close();
    }
  });

  it('a client that stops reading does not make the gateway buffer the whole body', async () => {
    const chunk = Buffer.alloc(64 * 1024, 97);
    let written = 0;
    let done = false;
    const be = await startBackend(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      // Write as fast as the gateway accepts; stop after 64 MiB or when the test ends.
      while (!done && written < 64 * 1024 * 1024) {
        written += chunk.length;
        if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
        if (res.destroyed) return;
      }
      res.end();
    });
    const gw = await startGateway({
      host: [be.url],
      timeout: '10s',
      endpoints: [{ endpoint: '/big', output_encoding: 'no-op', backend: [{ url_pattern: '/b', encoding: 'no-op' }] }],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        const req = httpRequest(`${gw.url}/big`, (res) => {
          res.once('data', () => {
            res.pause(); // a slow client
            setTimeout(() => {
              // With back-pressure the backend is held to what the socket buffers can take.
              assert.ok(written < 16 * 1024 * 1024, `backend wrote ${written} bytes to a paused client`);
              req.destroy();
              resolve();
            }, 300);
          });
        });
        req.on('error', () => {});
        req.on('close', () => resolve());
        req.end();
        setTimeout(() => reject(new Error('timed out')), 5000).unref();
      });
    } finally {
      done = true;
      await gw.close();
      await be.close();
    }
  });
});
