// A real RabbitMQ (Debian's rabbitmq-server) for tests: AMQP and Erlang
// distribution on free loopback ports, no plugins (no management), its own
// config, mnesia, log dir, erlang cookie (HOME) and node name under a temp dir,
// and its own epmd on a free port (ERL_EPMD_PORT, `-start_epmd false`), so
// several test files can each run one at the same time without sharing the
// system epmd on 4369. Stopped by pid: the broker's whole process group
// (sh -> beam.smp) is SIGKILLed, then its epmd, then the temp dir removed.
//
// API for any test that needs a broker (backend/amqp, pub/sub `rabbit://`):
//   const mq = await startRabbitmq();   // resolves once amqplib can connect
//   mq.url      amqp://guest:guest@127.0.0.1:<port>/
//   mq.kill()   broker down (port refused), data kept
//   mq.restart() kill + start again on the same ports and data (durable
//               queues and exchanges survive, non-persistent messages do not)
//   mq.close()  stop everything and remove the temp dir
// Tests skip when the broker is absent (`rabbitmqAvailable`).

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { freePort } from './etcd.ts';

export const RABBITMQ_BIN = process.env.PORTICO_TEST_RABBITMQ ?? '/usr/lib/rabbitmq/bin/rabbitmq-server';
export const EPMD_BIN = process.env.PORTICO_TEST_EPMD ?? '/usr/bin/epmd';
export const rabbitmqAvailable = existsSync(RABBITMQ_BIN) && existsSync(EPMD_BIN);

export interface TestRabbitmq {
  /** amqp://guest:guest@127.0.0.1:<port>/ */
  url: string;
  /** The AMQP port. */
  port: number;
  /** The broker's shell pid, also its process group id; undefined while down. */
  readonly pid: number | undefined;
  /** SIGKILL the broker (its process group) and wait until the AMQP port refuses. */
  kill(): Promise<void>;
  /** kill(), then start again on the same ports and data; resolves once it accepts AMQP. */
  restart(): Promise<void>;
  /** Stop the broker and its epmd, remove the temp dir. */
  close(): Promise<void>;
}

const START_TIMEOUT_MS = 40_000;

export async function startRabbitmq(): Promise<TestRabbitmq> {
  const dir = mkdtempSync(join(tmpdir(), 'portico-rabbitmq-'));
  const [port, distPort, epmdPort] = [await freePort(), await freePort(), await freePort()];
  const node = `portico-${process.pid}-${randomBytes(4).toString('hex')}@localhost`;
  writeFileSync(join(dir, '.erlang.cookie'), randomBytes(16).toString('hex').toUpperCase(), { mode: 0o400 });
  writeFileSync(join(dir, 'enabled_plugins'), '[].\n');
  writeFileSync(join(dir, 'rabbitmq.conf'), `listeners.tcp.default = 127.0.0.1:${port}\nlog.console = false\nlog.file.level = warning\n`);
  mkdirSync(join(dir, 'log'));
  const url = `amqp://guest:guest@127.0.0.1:${port}/`;

  const epmd = spawn(EPMD_BIN, ['-port', String(epmdPort), '-address', '127.0.0.1'], { stdio: 'ignore' });
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: dir,
    LANG: 'C.UTF-8',
    ERL_EPMD_PORT: String(epmdPort),
    RABBITMQ_CONF_ENV_FILE: join(dir, 'rabbitmq-env.conf'), // absent: not /etc/rabbitmq's
    RABBITMQ_NODENAME: node,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq.conf'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}',
  };

  let child: ChildProcess | undefined;
  let output = '';
  const spawnBroker = async () => {
    output = '';
    // detached: a process group of its own, so kill(-pid) reaches beam.smp too.
    const c = spawn(RABBITMQ_BIN, [], { env, cwd: dir, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    c.stdout!.on('data', (d) => (output = (output + d).slice(-8000)));
    c.stderr!.on('data', (d) => (output = (output + d).slice(-8000)));
    child = c;
    await waitAmqp(url, c, () => output);
  };
  const kill = async () => {
    const c = child;
    child = undefined;
    if (!c || c.pid === undefined) return;
    if (c.exitCode === null && c.signalCode === null) {
      const exited = new Promise<void>((r) => c.once('exit', () => r()));
      killGroup(c.pid);
      await exited;
    } else {
      killGroup(c.pid); // the shell is gone; beam.smp may not be
    }
    await waitRefused(port);
  };
  const close = async () => {
    await kill();
    if (epmd.exitCode === null && epmd.signalCode === null) {
      const exited = new Promise<void>((r) => epmd.once('exit', () => r()));
      epmd.kill('SIGKILL');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await spawnBroker();
  } catch (err) {
    await close();
    throw err;
  }
  return {
    url,
    port,
    get pid() {
      return child?.pid;
    },
    kill,
    async restart() {
      await kill();
      await spawnBroker();
    },
    close,
  };
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Resolve once amqplib can open (and close) a connection; reject if the broker exits or the deadline passes. */
async function waitAmqp(url: string, child: ChildProcess, output: () => string): Promise<void> {
  const amqp = await import('amqplib');
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`rabbitmq-server exited (${child.exitCode ?? child.signalCode}):\n${output()}`);
    }
    try {
      const conn = await amqp.connect(url, { timeout: 1000 });
      await conn.close();
      return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  killGroup(child.pid!);
  throw new Error(`rabbitmq-server did not accept AMQP connections within ${START_TIMEOUT_MS} ms:\n${output()}`);
}

/** After a SIGKILL the group's beam.smp may outlive the shell for a moment: wait until the port refuses. */
async function waitRefused(port: number): Promise<void> {
  const { connect } = await import('node:net');
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const open = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (!open) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`rabbitmq port ${port} still open 10 s after SIGKILL`);
}
