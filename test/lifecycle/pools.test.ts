// Upstream keep-alive pools across reloads, in-process through the DataPlane:
// a backend that stays keeps its warm connection, a backend that goes away has
// its pooled connections closed once the old plan's requests are done, and a
// request that started on the old plan finishes there.

import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DataPlane } from '../../src/lifecycle/data-plane.ts';
import { setLogLevel } from '../../src/telemetry/log.ts';
import { get } from '../helpers/http.ts';

interface TrackedSocket {
  id: number;
  openedAt: number;
  closedAt: number | undefined;
  requests: string[];
}

interface TrackedBackend {
  url: string;
  sockets: TrackedSocket[];
  open(): TrackedSocket[];
  close(): Promise<void>;
}

/** A backend that numbers its connections and records which requests came on which. */
async function startTracked(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<TrackedBackend> {
  const sockets: TrackedSocket[] = [];
  const ids = new WeakMap<Socket, TrackedSocket>();
  const server = createServer((req, res) => {
    ids.get(req.socket)!.requests.push(req.url!);
    handler(req, res);
  });
  server.on('connection', (socket: Socket) => {
    const t: TrackedSocket = { id: sockets.length + 1, openedAt: performance.now(), closedAt: undefined, requests: [] };
    sockets.push(t);
    ids.set(socket, t);
    socket.on('close', () => (t.closedAt = performance.now()));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    sockets,
    open: () => sockets.filter((s) => s.closedAt === undefined),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

function send(res: ServerResponse, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function until(what: string, cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await sleep(5);
  }
}

const sink = new Writable({ write: (_c, _e, done) => done() });

let a: TrackedBackend;
let b: TrackedBackend;
/** When B finished sending the slow answer. */
let slowAnsweredAt: number | undefined;
let slowArrived: () => void = () => {};

before(async () => {
  setLogLevel('error');
  a = await startTracked((req, res) => send(res, { from: 'a', url: req.url }));
  b = await startTracked((req, res) => {
    if (req.url !== '/slow') return send(res, { from: 'b', url: req.url });
    slowArrived();
    setTimeout(() => {
      send(res, { from: 'b', slow: true });
      res.once('finish', () => (slowAnsweredAt = performance.now()));
    }, 600);
  });
});

after(async () => {
  await a.close();
  await b.close();
  setLogLevel('info');
});

function config(withB: boolean, extra: Record<string, unknown> = {}): string {
  const endpoints: Record<string, unknown>[] = [
    { endpoint: '/a', backend: [{ host: [a.url], url_pattern: '/a' }] },
    { endpoint: '/a2', backend: [{ host: [a.url], url_pattern: '/a2' }] },
  ];
  if (withB) {
    endpoints.push(
      { endpoint: '/b', backend: [{ host: [b.url], url_pattern: '/b' }] },
      { endpoint: '/b-slow', backend: [{ host: [b.url], url_pattern: '/slow' }] },
    );
  }
  return JSON.stringify({ version: 3, timeout: '3s', extra_config: { router: { disable_access_log: true } }, endpoints, ...extra });
}

it('a reload keeps warm pools for kept backends, closes removed ones after their in-flight requests, and serves those on the old plan', { timeout: 20_000 }, async () => {
  const plane = new DataPlane({ env: {}, listenIp: '127.0.0.1', port: 0, syncEnabled: false, staleAfterMs: 60_000, accessLogOut: sink });
  try {
    const first = await plane.offer({ source: 'file', label: 'v1.json', text: config(true) });
    assert.equal(first.kind, 'applied');
    const base = `http://127.0.0.1:${await plane.listen()}`;

    // Warm both pools with sequential requests: one keep-alive connection each.
    for (let i = 0; i < 3; i++) assert.equal((await get(base, '/a')).status, 200);
    assert.equal((await get(base, '/b')).status, 200);
    assert.equal(a.sockets.length, 1, 'sequential requests to A share one connection');
    assert.equal(b.sockets.length, 1);
    const [aSocket] = a.sockets;

    // (c) A slow request to B starts on v1 ...
    const arrived = new Promise<void>((r) => (slowArrived = r));
    const slowStartedAt = performance.now();
    const slow = get(base, '/b-slow');
    await arrived;

    // ... then v2 (A kept, B removed) is swapped in while it runs.
    const second = await plane.offer({ source: 'file', label: 'v2.json', text: config(false) });
    assert.equal(second.kind, 'applied');
    assert.equal(plane.current!.version, 2);
    assert.equal((await get(base, '/b')).status, 404, 'v2 serves: /b is gone');

    // (a) A is reached over the very same connection, before and after the old plan retires.
    for (let i = 0; i < 3; i++) assert.equal((await get(base, '/a2')).status, 200);
    assert.equal(a.sockets.length, 1, 'no new connection to A after the reload');
    assert.deepEqual(aSocket.requests, ['/a', '/a', '/a', '/a2', '/a2', '/a2']);

    // B's pooled connections stay open while the old plan still has a request running.
    assert.equal(slowAnsweredAt, undefined, 'the slow request is still running');
    assert.equal(b.open().length, b.sockets.length, 'nothing of B closed while a request to it runs');

    // (c) The in-flight request finishes on the old plan.
    const r = await slow;
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-portico-completed'], 'true');
    assert.deepEqual(r.json(), { from: 'b', slow: true });
    assert.ok(slowAnsweredAt !== undefined && slowAnsweredAt - slowStartedAt >= 500);

    // (b) Then B's pool is closed: every connection to B goes away, none before the answer went out.
    await until("B's pooled connections are closed", () => b.open().length === 0);
    for (const s of b.sockets) assert.ok(s.closedAt! >= slowAnsweredAt!, `B socket #${s.id} closed only after the in-flight answer`);
    assert.ok(b.sockets.length >= 1);

    // A's connection survived the retirement of v1 (which also held A) and is still the one used.
    await sleep(50);
    assert.equal(aSocket.closedAt, undefined, "A's warm connection is not closed by the old plan's retirement");
    assert.equal((await get(base, '/a')).status, 200);
    assert.equal(a.sockets.length, 1);
    assert.equal(aSocket.requests.length, 7);

    // A later config bringing B back gets a fresh pool (the closed one is not reused).
    const bBefore = b.sockets.length;
    const third = await plane.offer({ source: 'file', label: 'v3.json', text: config(true) });
    assert.equal(third.kind, 'applied');
    const again = await get(base, '/b');
    assert.equal(again.status, 200);
    assert.deepEqual(again.json(), { from: 'b', url: '/b' });
    assert.equal(b.sockets.length, bBefore + 1, 'one new connection to B');
    assert.equal(a.sockets.length, 1, 'A still on its first connection after two reloads');
  } finally {
    await plane.shutdown(1_000);
  }
});

it('a rejected offer changes nothing: same plan, same connections', { timeout: 10_000 }, async () => {
  const plane = new DataPlane({ env: {}, listenIp: '127.0.0.1', port: 0, syncEnabled: false, staleAfterMs: 60_000, accessLogOut: sink });
  try {
    assert.equal((await plane.offer({ source: 'file', label: 'v1.json', text: config(true) })).kind, 'applied');
    const base = `http://127.0.0.1:${await plane.listen()}`;
    const aCount = a.sockets.length;
    const bCount = b.sockets.length;
    assert.equal((await get(base, '/a')).status, 200);
    assert.equal((await get(base, '/b')).status, 200);
    const aOpen = a.open().length;
    const bOpen = b.open().length;
    const plan = plane.gateway!.plan;

    const bad = await plane.offer({ source: 'file', label: 'bad.json', text: config(false, { endpoints: [{ endpoint: '/a', backend: [] }] }) });
    assert.equal(bad.kind, 'rejected');
    assert.equal(plane.gateway!.plan, plan, 'the serving plan is untouched');
    assert.equal(plane.current!.version, 1);
    assert.equal(plane.rejected?.label, 'bad.json');

    assert.equal((await get(base, '/a')).status, 200);
    assert.equal((await get(base, '/b')).status, 200);
    await sleep(50);
    assert.equal(a.open().length, aOpen, 'no connection to A closed');
    assert.equal(b.open().length, bOpen, 'no connection to B closed');
    assert.equal(a.sockets.length, aCount + 1, 'one connection to A for this gateway, reused');
    assert.equal(b.sockets.length, bCount + 1, 'one connection to B for this gateway, reused');
  } finally {
    await plane.shutdown(1_000);
  }
});
