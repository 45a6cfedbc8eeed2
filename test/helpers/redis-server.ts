// A real redis-server on a free loopback port, without persistence
// (`--save '' --appendonly no`), controlled by its own pid: kill, pause
// (SIGSTOP/SIGCONT) and restart on the same port. Tests that need it skip when
// the binary is absent.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { freePort } from './etcd.ts';

export const REDIS_BIN = process.env.PORTICO_TEST_REDIS ?? '/usr/bin/redis-server';
export const redisAvailable = spawnSync(REDIS_BIN, ['--version']).status === 0;

export interface TestRedis {
  port: number;
  /** host:port, as KrakenD's `address` takes it. */
  address: string;
  readonly pid: number | undefined;
  /** SIGKILL the server and wait for it to exit. */
  kill(): Promise<void>;
  /** SIGSTOP: the socket stays open, nothing answers. */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** Start a fresh server (empty data) on the same port after kill(). */
  restart(): Promise<void>;
  /** Kill for good (resumes first when paused). */
  close(): Promise<void>;
}

export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  let child = await spawnRedis(port);
  let paused = false;
  const alive = () => child.exitCode === null && child.signalCode === null;
  const kill = async () => {
    if (!alive()) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGKILL');
    await exited;
    paused = false;
  };
  return {
    port,
    address: `127.0.0.1:${port}`,
    get pid() {
      return child.pid;
    },
    kill,
    pause() {
      if (alive()) {
        child.kill('SIGSTOP');
        paused = true;
      }
    },
    resume() {
      if (alive() && paused) {
        child.kill('SIGCONT');
        paused = false;
      }
    },
    async restart() {
      await kill();
      child = await spawnRedis(port);
    },
    close: kill,
  };
}

function spawnRedis(port: number): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      REDIS_BIN,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--loglevel', 'notice'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`redis-server did not start:\n${out}`));
    }, 10_000);
    const onData = (d: Buffer) => {
      out += d;
      if (out.includes('Ready to accept connections')) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        resolve(child);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (d) => (out += d));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited (${code}):\n${out}`));
    });
  });
}
