// The upstream client of the runtime the gateway runs on (undici on Node,
// fetch on Bun: PORTICO_TEST_RUNTIME=bun), through `portico run`: TLS to
// backends verified against the runtime's CA store (NODE_EXTRA_CA_CERTS adds
// one), a body on GET forwarded, nothing added to Accept-Encoding and
// compressed answers passed on untouched, the per-origin connection limit,
// and a call queued for a connection ending at the endpoint timeout.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { get, request } from '../helpers/http.ts';
import { stopCli } from '../helpers/lifecycle-support.ts';
import { startCli, writeConfigFile, type Running } from '../helpers/process.ts';
import { makePki, opensslMissing, type Pki } from '../helpers/tls.ts';

async function gateway(config: Record<string, unknown>, env: Record<string, string> = {}): Promise<{ gw: Running; base: string }> {
  const { file, cache } = writeConfigFile({ version: 3, extra_config: { router: { disable_access_log: true } }, ...config });
  const gw = await startCli(['run', '-c', file, '-p', '0', '--cache-dir', cache()], env);
  return { gw, base: `http://127.0.0.1:${gw.port}` };
}

describe('upstream: HTTPS backends', { skip: opensslMissing() }, () => {
  let pki: Pki;
  let be: TestBackend;
  const endpoints = () => [
    { endpoint: '/json', backend: [{ host: [be.url], url_pattern: '/j' }] },
    { endpoint: '/raw', output_encoding: 'no-op', backend: [{ host: [be.url], url_pattern: '/r', encoding: 'no-op' }] },
  ];
  before(async () => {
    pki = await makePki();
    be = await startBackend((req, res) => json(res, { path: req.url }), { tls: { cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) } });
  });
  after(async () => {
    await be.close();
    pki.cleanup();
  });

  it('a backend whose CA the runtime trusts (NODE_EXTRA_CA_CERTS) is reached over TLS, buffered and streamed', async () => {
    const { gw, base } = await gateway({ endpoints: endpoints() }, { NODE_EXTRA_CA_CERTS: pki.ca });
    try {
      assert.deepEqual((await get(base, '/json')).json(), { path: '/j' });
      const raw = await get(base, '/raw');
      assert.equal(raw.status, 200);
      assert.deepEqual(JSON.parse(raw.body), { path: '/r' });
    } finally {
      await stopCli(gw);
    }
  });

  it('a backend certificate nobody vouches for is refused: TLS stays verified', async () => {
    const before = be.requests.length;
    const { gw, base } = await gateway({ endpoints: endpoints() });
    try {
      assert.equal((await get(base, '/json')).status, 500);
      assert.equal((await get(base, '/raw')).status, 500);
      assert.equal(be.requests.length, before, 'no request reached the backend');
    } finally {
      await stopCli(gw);
    }
  });
});

describe('upstream: what is sent and what comes back', () => {
  const packed = gzipSync(JSON.stringify({ packed: true }));
  let be: TestBackend;
  let gw: Running;
  let base: string;
  before(async () => {
    be = await startBackend((req, res) => {
      if (req.url === '/gz') {
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': packed.length });
        return void res.end(packed);
      }
      json(res, { method: req.method, body: req.body, acceptEncoding: req.headers['accept-encoding'] ?? null });
    });
    ({ gw, base } = await gateway({
      host: [be.url],
      endpoints: [
        { endpoint: '/echo', method: 'GET', input_headers: ['*'], backend: [{ url_pattern: '/echo' }] },
        { endpoint: '/gz', input_headers: ['Accept-Encoding'], backend: [{ url_pattern: '/gz' }] },
        { endpoint: '/gz-raw', output_encoding: 'no-op', input_headers: ['Accept-Encoding'], backend: [{ url_pattern: '/gz', encoding: 'no-op' }] },
      ],
    }));
  });
  after(async () => {
    if (gw) await stopCli(gw); // unset when it failed to start: the backend must still close
    await be.close();
  });

  it('a GET with a body forwards the body, as Go does', async () => {
    const r = await request(base, '/echo', { method: 'GET', headers: { 'content-type': 'application/json', 'content-length': '7' }, body: '{"q":1}' });
    assert.deepEqual(r.json(), { method: 'GET', body: '{"q":1}', acceptEncoding: null });
  });

  it('the gateway adds no Accept-Encoding of its own', async () => {
    assert.equal((await get(base, '/echo')).json().acceptEncoding, null);
  });

  it('a compressed answer is decoded for a buffered endpoint and passed on byte for byte by a no-op one', async () => {
    assert.deepEqual((await get(base, '/gz', { 'accept-encoding': 'gzip' })).json(), { packed: true });
    const raw = await new Promise<{ headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
      import('node:http').then(({ get: httpGet }) => {
        httpGet(`${base}/gz-raw`, { headers: { 'accept-encoding': 'gzip' }, agent: false }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }));
        }).on('error', reject);
      }, reject);
    });
    assert.equal(raw.headers['content-encoding'], 'gzip');
    assert.equal(raw.headers['content-length'], String(packed.length));
    assert.deepEqual(raw.body, packed);
  });
});

describe('upstream: connections per origin', () => {
  const held: ServerResponse[] = [];
  let inFlight = 0;
  let most = 0;
  let be: TestBackend;
  let gw: Running;
  let base: string;
  before(async () => {
    be = await startBackend((req, res) => {
      inFlight++;
      most = Math.max(most, inFlight);
      res.on('close', () => inFlight--);
      if (req.url === '/hold') held.push(res);
      else json(res, { ok: true });
    });
    ({ gw, base } = await gateway({
      host: [be.url],
      max_idle_connections_per_host: 2,
      timeout: '300ms',
      endpoints: [
        { endpoint: '/hold', timeout: '10s', backend: [{ url_pattern: '/hold' }] },
        { endpoint: '/quick', backend: [{ url_pattern: '/quick' }] },
        // The same backend call without the tight timeout: queued calls that must succeed even on a loaded machine.
        { endpoint: '/patient', timeout: '10s', backend: [{ url_pattern: '/quick' }] },
      ],
    }));
  });
  after(async () => {
    for (const res of held.splice(0)) json(res, { ok: true });
    if (gw) await stopCli(gw);
    await be.close();
  });

  it('at most max_idle_connections_per_host calls run at once; a queued call ends at its endpoint timeout', async () => {
    const holding = [get(base, '/hold'), get(base, '/hold')];
    const deadline = Date.now() + 5000;
    while (held.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(held.length, 2, 'both connections are busy');
    // A third call waits for a connection, and gives up at its 300 ms timeout.
    const started = Date.now();
    const queued = await get(base, '/quick');
    assert.equal(queued.status, 500);
    assert.ok(Date.now() - started >= 250, 'it waited for the timeout');
    assert.equal(most, 2, 'the backend never saw more than 2 calls at once');
    // Once the connections are free, calls go through again.
    for (const res of held.splice(0)) json(res, { ok: true });
    for (const r of await Promise.all(holding)) assert.equal(r.status, 200);
    const more = await Promise.all(Array.from({ length: 6 }, () => get(base, '/patient')));
    for (const r of more) assert.equal(r.status, 200);
    assert.ok(most <= 2, `at most 2 calls at once (saw ${most})`);
  });
});
