// A real etcd (Debian's etcd-server) on free loopback ports with a temporary
// data directory, stopped by its pid. Tests that need it skip when it is absent.
// Optionally over TLS (client certificates required when a client CA is given),
// and with user/password authentication enabled through the v3 API.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import type { Etcd3 } from 'etcd3';

export const ETCD_BIN = process.env.PORTICO_TEST_ETCD ?? '/usr/bin/etcd';
export const etcdAvailable = spawnSync(ETCD_BIN, ['--version']).status === 0;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** TLS for the client URL: etcd's certificate and key, and the CA its clients' certificates must chain to. */
export interface EtcdTls {
  cert: string;
  key: string;
  /** --client-cert-auth --trusted-ca-file: clients must present a certificate from this CA. */
  clientCa?: string;
  /** What the helper's own health checks present (required with clientCa) and trust. */
  ca: string;
  clientCert?: string;
  clientKey?: string;
}

export interface TestEtcd {
  url: string;
  dataDir: string;
  child: ChildProcess;
  /** Stop (SIGTERM, then SIGKILL after 3 s); the data directory stays unless wipe is true. */
  stop(opts?: { wipe?: boolean }): Promise<void>;
  /** Start again on the same ports (and data directory, unless it was wiped). */
  restart(): Promise<TestEtcd>;
}

export async function startEtcd(opts: { dataDir?: string; clientPort?: number; peerPort?: number; tls?: EtcdTls } = {}): Promise<TestEtcd> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'portico-etcd-'));
  const clientPort = opts.clientPort ?? (await freePort());
  const peerPort = opts.peerPort ?? (await freePort());
  const tls = opts.tls;
  const url = `${tls ? 'https' : 'http'}://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const child = spawn(ETCD_BIN, [
    '--name', 'test',
    '--data-dir', dataDir,
    '--listen-client-urls', url,
    '--advertise-client-urls', url,
    '--listen-peer-urls', peer,
    '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `test=${peer}`,
    '--initial-cluster-state', 'new',
    '--log-level', 'error',
    ...(tls ? ['--cert-file', tls.cert, '--key-file', tls.key] : []),
    ...(tls?.clientCa ? ['--client-cert-auth', '--trusted-ca-file', tls.clientCa] : []),
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await waitHealthy(url, child, () => stderr, tls);
  const handle: TestEtcd = {
    url,
    dataDir,
    child,
    async stop(o = {}) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(timer);
      }
      if (o.wipe) rmSync(dataDir, { recursive: true, force: true });
    },
    restart: () => startEtcd({ dataDir, clientPort, peerPort, tls }),
  };
  return handle;
}

async function waitHealthy(url: string, child: ChildProcess, stderr: () => string, tls?: EtcdTls): Promise<void> {
  const deadline = Date.now() + 15_000;
  const file = (f?: string) => (f === undefined ? undefined : readFileSync(f));
  const dispatcher = new Agent({ connect: tls ? { ca: file(tls.ca), cert: file(tls.clientCert), key: file(tls.clientKey) } : {} });
  try {
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`etcd exited (${child.exitCode}): ${stderr()}`);
      try {
        const res = await request(`${url}/health`, { dispatcher, signal: AbortSignal.timeout(500) });
        const body = (await res.body.json()) as { health?: string };
        if (res.statusCode === 200 && body.health === 'true') return;
      } catch {
        // not up yet
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await dispatcher.close();
  }
  child.kill('SIGKILL');
  throw new Error(`etcd did not become healthy: ${stderr()}`);
}

/**
 * Turn on etcd's authentication as `etcdctl user add root; etcdctl auth enable` does,
 * with a root user and one user per entry of `users`, granted read and write on
 * `prefix` only. Returns after auth is enabled; `client` is closed.
 */
export async function enableEtcdAuth(client: Etcd3, rootPassword: string, users: Record<string, string> = {}, prefix = '/portico/'): Promise<void> {
  const { Range } = await import('etcd3'); // loaded only here: redis and NATS tests import this file for freePort
  try {
    await client.role('root').create();
    await client.user('root').create(rootPassword);
    await client.user('root').addRole('root');
    for (const [name, password] of Object.entries(users)) {
      const role = client.role(`${name}-role`);
      await role.create();
      await role.grant({ permission: 'Readwrite', range: Range.prefix(prefix) });
      await client.user(name).create(password);
      await client.user(name).addRole(role);
    }
    await client.auth.authEnable({});
  } finally {
    client.close();
  }
}
