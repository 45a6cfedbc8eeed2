// `telemetry/logging` on real `portico run` processes: the level (and its
// change on reload, and back to PORTICO_LOG_LEVEL when the namespace goes),
// prefix, logstash format, stdout vs the default streams, syslog datagrams to
// a real UDP receiver; access lines (fields, skip paths) whole under a burst
// on two workers and not lost at SIGTERM; bad values refused by `portico check`.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Pool } from 'undici';
import { optionsOf } from '../../src/namespaces/namespace.ts';
import { logSettings, telemetryLogging } from '../../src/namespaces/telemetry-logging.ts';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { freePort } from '../helpers/etcd.ts';
import { loadTestConfig } from '../helpers/gateway.ts';
import { get } from '../helpers/http.ts';
import { logEntries, stopCli, tempDir, waitUntil, writeAtomic, type LogEntry } from '../helpers/lifecycle-support.ts';
import { LogLines } from '../helpers/log-lines.ts';
import { BIN, GATEWAY_RUNTIME, runCli, startCli, startScript, writeConfigFile, type Running } from '../helpers/process.ts';

const NS = 'telemetry/logging';
const AT = '$.extra_config["telemetry/logging"]';

/** The child's stdout and stderr, each on its own, from now on. */
function streams(r: Running): { stdout: () => LogEntry[]; stderr: () => LogEntry[]; rawStdout: () => string } {
  let out = '';
  let err = '';
  r.child.stdout!.on('data', (d: Buffer) => (out += d));
  r.child.stderr!.on('data', (d: Buffer) => (err += d));
  return { stdout: () => logEntries(out), stderr: () => logEntries(err), rawStdout: () => out };
}

/** A syslog collector: every datagram received on a loopback UDP port. */
async function syslogReceiver(): Promise<{ port: number; messages: string[]; close(): Promise<void> }> {
  const socket = createSocket('udp4');
  const messages: string[] = [];
  socket.on('message', (m) => messages.push(m.toString('utf8')));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { port: socket.address().port, messages, close: () => new Promise((resolve) => socket.close(() => resolve())) };
}

/** RFC 5424: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG, MSG being the JSON line. */
const SYSLOG_LINE = /^<(\d+)>1 (\S+) (\S+) (\S+) (\d+) - - (\{.*\})$/;

function parseSyslog(m: string): { pri: number; time: string; host: string; app: string; pid: number; entry: LogEntry } {
  const p = SYSLOG_LINE.exec(m);
  assert.ok(p, `an RFC 5424 message: ${m}`);
  return { pri: Number(p[1]), time: p[2], host: p[3], app: p[4], pid: Number(p[5]), entry: JSON.parse(p[6]) as LogEntry };
}

describe('telemetry/logging: parsing', () => {
  const settings = (o: Record<string, unknown>) => logSettings(optionsOf(loadTestConfig({ extra_config: { [NS]: o } }).namespaces, telemetryLogging));

  it("maps KrakenD's levels (any case), facilities, addresses and destinations", () => {
    assert.equal(settings({ level: 'CRITICAL' })?.level, 'error');
    assert.equal(settings({ level: 'Warning' })?.level, 'warn');
    assert.equal(settings({ level: 'debug' })?.level, 'debug');
    assert.deepEqual(settings({ level: 'INFO' }), { level: 'info', format: 'json', console: 'stderr' }, 'neither stdout nor syslog: stderr, as without the namespace');
    assert.equal(settings({ level: 'INFO', stdout: true })?.console, 'stdout');
    const onlySyslog = settings({ level: 'INFO', syslog: true, prefix: '[GW] a' })!;
    assert.equal(onlySyslog.console, 'none');
    assert.deepEqual(onlySyslog.syslog, { host: '127.0.0.1', port: 514, facility: 19, appName: '[GW]a' }, 'local3 on 127.0.0.1:514 by default; APP-NAME from the prefix');
    assert.deepEqual(settings({ level: 'INFO', syslog: true, syslog_facility: 'local4', syslog_address: '[::1]:5514' })!.syslog, { host: '::1', port: 5514, facility: 20, appName: 'portico' });
    assert.equal(settings({ level: 'INFO', syslog: true, syslog_address: 'logs.internal' })!.syslog!.port, 514);
    assert.equal(settings({ level: 'INFO', format: 'logstash' })?.format, 'logstash');
  });

  it('reports what it cannot do: custom formats, syslog settings without syslog', async () => {
    const { file } = writeConfigFile({
      version: 3,
      extra_config: { [NS]: { level: 'INFO', format: 'custom', custom_format: '%{message}', syslog_facility: 'local1' } },
      endpoints: [],
    });
    const r = await runCli(['check', '-c', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`warning ${escape(AT)}\\.format: .*custom_format patterns are not supported; lines are written as JSON`));
    assert.match(r.stderr, new RegExp(`warning ${escape(AT)}\\.syslog_facility: .*without syslog: ignored`));
  });

  it('portico check refuses bad values with their JSON path', async () => {
    const { file } = writeConfigFile({
      version: 3,
      extra_config: { [NS]: { level: 'LOUD', syslog: true, syslog_facility: 'nope', stdout: 'yes', syslog_address: 'logs:99999', prefix: 7 } },
      endpoints: [],
    });
    const r = await runCli(['check', '-c', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`error ${escape(AT)}\\.level: expected one of "DEBUG", "INFO", "WARNING", "ERROR" or "CRITICAL", found "LOUD"`));
    assert.match(r.stderr, new RegExp(`error ${escape(AT)}\\.syslog_facility: expected one of .*"local0".*found "nope"`));
    assert.match(r.stderr, new RegExp(`error ${escape(AT)}\\.stdout: expected true or false, found "yes"`));
    assert.match(r.stderr, new RegExp(`error ${escape(AT)}\\.syslog_address: expected a syslog address`));
    assert.match(r.stderr, new RegExp(`error ${escape(AT)}\\.prefix: expected a string`));
    assert.match(r.stderr, /5 error\(s\)/);
  });
});

describe('telemetry/logging: level, reloads and the default level', () => {
  let gw: Running;
  let lines: LogLines;
  const dir = tempDir('logging-level');
  const file = `${dir}/portico.json`;
  const config = (logging?: Record<string, unknown>) =>
    JSON.stringify({ version: 3, debug_endpoint: true, ...(logging ? { extra_config: { [NS]: logging } } : {}), endpoints: [] });

  before(async () => {
    writeAtomic(file, config({ level: 'DEBUG' }));
    gw = await startCli(['run', '-c', file, '-p', '0', '--cache-dir', `${dir}/cache`], { PORTICO_LOG_LEVEL: 'debug' });
    lines = new LogLines(gw);
  });
  after(() => stopCli(gw));

  it('DEBUG logs debug lines; a reload to INFO drops them; a reload without the namespace goes back to PORTICO_LOG_LEVEL', async () => {
    const base = `http://127.0.0.1:${gw.port}`;
    assert.equal((await get(base, '/__debug/one')).status, 200);
    assert.equal((await lines.nth('debug endpoint', 1)).level, 'debug');

    writeAtomic(file, config({ level: 'INFO' }));
    gw.child.kill('SIGHUP');
    await lines.nth('config applied', 2);
    assert.equal((await get(base, '/__debug/two')).status, 200);
    // A debug line would have been written before the answer; this info line comes after it.
    gw.child.kill('SIGHUP');
    await lines.nth('SIGHUP: reloading', 2);
    await lines.nth('config unchanged', 1);
    assert.equal(lines.count('debug endpoint'), 1, 'no debug line at INFO');

    writeAtomic(file, config());
    gw.child.kill('SIGHUP');
    await lines.nth('config applied', 3);
    assert.equal((await get(base, '/__debug/three')).status, 200);
    const back = await lines.nth('debug endpoint', 2);
    assert.equal(back.url, '/__debug/three', 'PORTICO_LOG_LEVEL=debug applies again');
  });
});

describe('telemetry/logging: destinations, prefix, access lines', () => {
  let be: TestBackend;
  before(async () => {
    be = await startBackend((_req, res) => json(res, { ok: true }));
  });
  after(() => be.close());

  async function run(logging: Record<string, unknown> | undefined) {
    const { file, cache } = writeConfigFile({
      version: 3,
      host: [be.url],
      ...(logging ? { extra_config: { [NS]: logging } } : {}),
      endpoints: [{ endpoint: '/x', backend: [{ url_pattern: '/x' }] }],
    });
    const gw = await startCli(['run', '-c', file, '-p', '0', '--cache-dir', cache()]);
    const s = streams(gw);
    const base = `http://127.0.0.1:${gw.port}`;
    assert.equal((await get(base, '/x', { 'x-request-id': 'req-42' })).status, 200);
    gw.child.kill('SIGHUP');
    const where = (msg: string) => waitUntil(() => {
      const out = s.stdout().find((e) => e.msg === msg);
      const err = s.stderr().find((e) => e.msg === msg);
      return out || err ? { out, err } : undefined;
    }, msg);
    const access = await where('access');
    const reload = await where('SIGHUP: reloading');
    assert.equal(await stopCli(gw), 0);
    return { access, reload, stdout: s.stdout(), stderr: s.stderr() };
  }

  it('without the namespace: application lines on stderr, access lines on stdout with their fields', async () => {
    const { access, reload } = await run(undefined);
    assert.ok(access.out && !access.err);
    assert.ok(reload.err && !reload.out);
    const { time, duration_ms, ...rest } = access.out;
    assert.match(String(time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(typeof duration_ms, 'number');
    assert.deepEqual(rest, { level: 'info', msg: 'access', method: 'GET', path: '/x', status: 200, client: '127.0.0.1', request_id: 'req-42' });
    assert.equal(reload.err.level, 'info');
    assert.equal(reload.err.prefix, undefined);
  });

  it('stdout: true puts application lines on stdout, with the prefix; nothing is lost at SIGTERM', async () => {
    const { access, reload, stdout, stderr } = await run({ level: 'INFO', stdout: true, prefix: '[GW]' });
    assert.ok(reload.out && !reload.err);
    assert.equal(reload.out.prefix, '[GW]');
    assert.equal(access.out?.prefix, undefined, 'access lines keep their own fields');
    assert.equal(access.out?.request_id, 'req-42');
    assert.deepEqual(stderr.filter((e) => e.msg !== undefined), [], 'no application line on stderr');
    // The last line before the exit, written after the shutdown finished.
    assert.equal(stdout.at(-1)?.msg, 'shutting down');
  });

  it('format logstash: @timestamp, @version, level in upper case, message; access lines unchanged', async () => {
    const { file, cache } = writeConfigFile({
      version: 3,
      host: [be.url],
      extra_config: { [NS]: { level: 'INFO', format: 'logstash', prefix: 'edge' } },
      // Nothing listens on port 1: a 500, logged as an error.
      endpoints: [{ endpoint: '/down', backend: [{ host: ['http://127.0.0.1:1'], url_pattern: '/d' }] }],
    });
    const gw = await startScript(BIN, ['run', '-c', file, '-p', '0', '--cache-dir', cache()], { ...process.env, PORTICO_WORKERS: '1' }, /"message":"listening".*?"port":(\d+)/, 'portico');
    try {
      const listening = logEntries(gw.output()).find((e) => e.message === 'listening')!;
      assert.equal(listening.level, 'INFO');
      assert.equal(listening['@version'], 1);
      assert.match(String(listening['@timestamp']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.equal(listening.prefix, 'edge');
      assert.equal(listening.port, gw.port);
      assert.equal(listening.msg, undefined);
      assert.equal(listening.time, undefined);
      assert.equal((await get(`http://127.0.0.1:${gw.port}`, '/down')).status, 500);
      const failed = await waitUntil(() => logEntries(gw.output()).find((e) => e.level === 'ERROR'), 'an ERROR line', 5000, gw.output);
      assert.equal(failed.endpoint, '/down');
      assert.equal(typeof failed.message, 'string');
      const access = await waitUntil(() => logEntries(gw.output()).find((e) => e.msg === 'access'), 'the access line', 5000, gw.output);
      assert.equal(access.level, 'info');
      assert.equal(access.status, 500);
      assert.equal(access['@timestamp'], undefined);
    } finally {
      await stopCli(gw);
    }
  });
});

/** `portico run` on a known port whose application lines may not reach the console: ready once /__health answers. */
async function startOnPort(args: string[], port: number): Promise<Running> {
  const child = spawn(GATEWAY_RUNTIME, [BIN, ...args, '-p', String(port)], { env: { ...process.env, PORTICO_WORKERS: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const running: Running = { child, port, output: () => out, exited };
  try {
    await waitUntil(async () => (await get(`http://127.0.0.1:${port}`, '/__health')).status === 200, 'the gateway answering', 10_000, () => out);
  } catch (err) {
    await stopCli(running);
    throw err;
  }
  return running;
}

describe('telemetry/logging: syslog', () => {
  let receiver: Awaited<ReturnType<typeof syslogReceiver>>;
  before(async () => {
    receiver = await syslogReceiver();
  });
  after(() => receiver.close());

  it('sends application lines as RFC 5424 datagrams with the facility and severity; none on the console; access lines stay on stdout', async () => {
    const dir = tempDir('logging-syslog');
    const file = `${dir}/portico.json`;
    const logging = { level: 'DEBUG', prefix: 'edge-1', syslog: true, syslog_facility: 'local4', syslog_address: `127.0.0.1:${receiver.port}` };
    writeAtomic(file, JSON.stringify({ version: 3, debug_endpoint: true, extra_config: { [NS]: logging }, endpoints: [] }));
    const gw = await startOnPort(['run', '-c', file, '--cache-dir', `${dir}/cache`], await freePort());
    const received = (msg: string) =>
      waitUntil(() => receiver.messages.map(parseSyslog).find((m) => m.entry.msg === msg), `a syslog message "${msg}"`, 5000, () => receiver.messages.join('\n'));
    try {
      const listening = await received('listening');
      assert.equal(listening.pri, 20 * 8 + 6, 'local4 (20), informational (6)');
      assert.equal(listening.app, 'edge-1');
      assert.equal(listening.pid, gw.child.pid);
      assert.ok(Math.abs(Date.parse(listening.time) - Date.now()) < 60_000);
      assert.equal(listening.entry.port, gw.port);
      assert.equal(listening.entry.prefix, 'edge-1');

      assert.equal((await get(`http://127.0.0.1:${gw.port}`, '/__debug/s')).status, 200);
      assert.equal((await received('debug endpoint')).pri, 20 * 8 + 7, 'debug (7)');

      writeFileSync(file, '{ not json');
      gw.child.kill('SIGHUP');
      const rejected = await received('config rejected; the current config keeps serving');
      assert.equal(rejected.pri, 20 * 8 + 3, 'error (3)');

      await waitUntil(() => logEntries(gw.output()).find((e) => e.msg === 'access'), 'the access line on stdout', 5000, gw.output);
    } finally {
      await stopCli(gw);
    }
    assert.equal(receiver.messages.map(parseSyslog).find((m) => m.entry.msg === 'access'), undefined, 'access lines never go to syslog');
    assert.deepEqual(logEntries(gw.output()).filter((e) => e.msg !== 'access').map((e) => e.msg), [], 'no application line on the console');
    assert.ok(receiver.messages.map(parseSyslog).some((m) => m.entry.msg === 'shutting down'), 'the last line before the exit was sent');
  });
});

describe('telemetry/logging: access lines of two workers', () => {
  let be: TestBackend;
  before(async () => {
    be = await startBackend((_req, res) => json(res, { ok: true }));
  });
  after(() => be.close());

  it('under a burst every stdout line is whole JSON, skip paths are skipped, and no line is lost at SIGTERM', async () => {
    const { file, cache } = writeConfigFile({
      version: 3,
      host: [be.url],
      extra_config: { router: { logger_skip_paths: ['/__health'] } },
      endpoints: [{ endpoint: '/p/{id}', backend: [{ url_pattern: '/p' }] }],
    });
    const gw = await startCli(['run', '-c', file, '-p', '0', '--workers', '2', '--cache-dir', cache()]);
    const s = streams(gw);
    const pool = new Pool(`http://127.0.0.1:${gw.port}`, { connections: 16 });
    // ~1.9 KB lines: two of them fill most of a 4096-byte write.
    const long = 'a'.repeat(1800);
    const n = 400;
    // A reader that falls behind for a while: the workers' writes wait on a full pipe, where a write over 4096 bytes could be split.
    gw.child.stdout!.pause();
    const resume = setTimeout(() => gw.child.stdout!.resume(), 500);
    try {
      const statuses = await Promise.all(
        Array.from({ length: n + 40 }, async (_, i) => {
          const path = i < n ? `/p/${long}-${i}` : '/__health';
          const r = await pool.request({ method: 'GET', path });
          await r.body.dump();
          return r.statusCode;
        }),
      );
      assert.ok(statuses.every((st) => st === 200));
    } finally {
      clearTimeout(resume);
      gw.child.stdout!.resume();
      await pool.close();
    }
    // Straight after the last answer: the workers' queued lines must still reach stdout.
    assert.equal(await stopCli(gw), 0);
    const text = s.rawStdout();
    assert.ok(text.endsWith('\n'));
    const lines = text.slice(0, -1).split('\n');
    const parsed = lines.map((l, i) => {
      try {
        return JSON.parse(l) as LogEntry;
      } catch {
        assert.fail(`stdout line ${i} is not whole JSON: ${l.slice(0, 120)}...`);
      }
    });
    const access = parsed.filter((e) => e.msg === 'access');
    assert.equal(access.filter((e) => e.path === '/__health').length, 0, 'skip paths are not logged');
    const ids = new Set(access.map((e) => Number(String(e.path).split('-').at(-1))));
    assert.equal(access.length, n);
    assert.equal(ids.size, n, 'one line per request');
    assert.ok(access.every((e) => e.status === 200 && typeof e.request_id === 'string' && e.client === '127.0.0.1'));
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
