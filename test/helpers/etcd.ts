// A real etcd (Debian's etcd-server) on free loopback ports with a temporary
// data directory, stopped by its pid. Tests that need it skip when it is absent.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

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

export interface TestEtcd {
  url: string;
  dataDir: string;
  child: ChildProcess;
  /** Stop (SIGTERM, then SIGKILL after 3 s); the data directory stays unless wipe is true. */
  stop(opts?: { wipe?: boolean }): Promise<void>;
  /** Start again on the same ports (and data directory, unless it was wiped). */
  restart(): Promise<TestEtcd>;
}

export async function startEtcd(opts: { dataDir?: string; clientPort?: number; peerPort?: number } = {}): Promise<TestEtcd> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'portico-etcd-'));
  const clientPort = opts.clientPort ?? (await freePort());
  const peerPort = opts.peerPort ?? (await freePort());
  const url = `http://127.0.0.1:${clientPort}`;
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
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await waitHealthy(url, child, () => stderr);
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
    restart: () => startEtcd({ dataDir, clientPort, peerPort }),
  };
  return handle;
}

async function waitHealthy(url: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`etcd exited (${child.exitCode}): ${stderr()}`);
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(500) });
      if (res.ok && ((await res.json()) as { health?: string }).health === 'true') return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`etcd did not become healthy: ${stderr()}`);
}
