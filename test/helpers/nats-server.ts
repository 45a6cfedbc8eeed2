// A real nats-server on a free loopback port (core NATS, no JetStream, no
// monitoring port), controlled by its own pid: kill and restart on the same
// port. Tests that need it skip when the binary is absent.
//
//   const nats = await startNats();
//   nats.url        nats://127.0.0.1:<port>
//   nats.kill()     server down (port refused)
//   nats.restart()  kill, then a fresh server on the same port
//   nats.close()    kill for good

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { freePort } from './etcd.ts';

/** Debian's package installs it in /usr/sbin. */
export const NATS_BIN = process.env.PORTICO_TEST_NATS ?? ['/usr/sbin/nats-server', '/usr/bin/nats-server'].find((p) => existsSync(p)) ?? 'nats-server';
export const natsAvailable = spawnSync(NATS_BIN, ['--version']).status === 0;

export interface TestNats {
  /** nats://127.0.0.1:<port>, as NATS_SERVER_URL takes it. */
  url: string;
  port: number;
  readonly pid: number | undefined;
  /** SIGKILL the server and wait for it to exit. */
  kill(): Promise<void>;
  /** kill(), then start a fresh server on the same port; resolves once it is ready. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startNats(): Promise<TestNats> {
  const port = await freePort();
  let child: ChildProcess | undefined = await spawnNats(port);
  const kill = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGKILL');
    await exited;
  };
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    get pid() {
      return child?.pid;
    },
    kill,
    async restart() {
      await kill();
      child = await spawnNats(port);
    },
    close: kill,
  };
}

function spawnNats(port: number): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(NATS_BIN, ['-a', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`nats-server did not start:\n${out}`));
    }, 10_000);
    const onData = (d: Buffer) => {
      out += d;
      if (out.includes('Server is ready')) {
        clearTimeout(timer);
        child.stderr!.off('data', onData);
        child.stdout!.off('data', onData);
        child.stderr!.resume();
        child.stdout!.resume();
        resolve(child);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`nats-server exited (${code}):\n${out}`));
    });
  });
}
