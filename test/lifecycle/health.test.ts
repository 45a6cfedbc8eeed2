// /__health, /__ready and `portico status` against real `portico run` processes:
// every field, degraded on a rejection or a watched file failing for longer
// than --stale-after, the status command's output and exit codes, and /__ready
// turning 503 while a SIGTERM drains in-flight requests.

import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { configHash } from '../../src/lifecycle/canonical.ts';
import { VERSION } from '../../src/version.ts';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { freePort } from '../helpers/etcd.ts';
import { get } from '../helpers/http.ts';
import { runCli, startCli, type Running } from '../helpers/process.ts';
import { ChildLog, configFor, configText, servedTag, stopCli, tempDir, waitUntil, writeAtomic } from '../helpers/lifecycle-support.ts';

type Health = Record<string, any>;

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;


describe('health, readiness and portico status', { concurrency: 2 }, () => {
  let be: TestBackend;
  const running = new Set<Running>();
  const start = async (args: string[]) => {
    const r = await startCli(args);
    running.add(r);
    return { r, base: `http://127.0.0.1:${r.port}`, log: new ChildLog(r) };
  };
  const health = async (base: string): Promise<Health> => {
    const res = await get(base, '/__health');
    assert.equal(res.status, 200, '/__health always answers 200');
    return res.json();
  };

  before(async () => {
    be = await startBackend(async (req, res) => {
      if (req.url === '/slow') await sleep(800);
      json(res, { path: req.url });
    });
  });
  after(async () => {
    await Promise.all([...running].map(stopCli));
    await be.close();
  });

  it('every field, then a rejection, then recovery', async () => {
    const dir = tempDir('health-fields');
    const file = join(dir, 'portico.json');
    const doc = configFor(be.url, 'one');
    writeFileSync(file, JSON.stringify(doc));
    const before = Date.now();
    const { base, log } = await start(['run', '-c', file, '-p', '0', '--watch', '--stale-after', '2s', '--cache-dir', join(dir, 'cache')]);

    const h = await health(base);
    assert.equal(h.status, 'ok');
    assert.equal(h.ready, true);
    assert.equal(h.portico_version, VERSION);
    assert.match(h.now, ISO);
    assert.deepEqual(h.agents, {});
    assert.deepEqual(Object.keys(h.config).sort(), ['applied_at', 'endpoints', 'hash', 'source', 'version']);
    assert.equal(h.config.version, 1);
    assert.equal(h.config.hash, configHash(doc));
    assert.equal(h.config.source, 'file');
    assert.match(h.config.applied_at, ISO);
    assert.ok(Date.parse(h.config.applied_at) >= before - 1000 && Date.parse(h.config.applied_at) <= Date.parse(h.now));
    assert.equal(h.config.endpoints, 1);
    assert.deepEqual(Object.keys(h.sync).sort(), ['last_error', 'last_success_seconds_ago', 'stale_after_seconds', 'state']);
    assert.equal(h.sync.state, 'current');
    assert.equal(typeof h.sync.last_success_seconds_ago, 'number');
    assert.ok(h.sync.last_success_seconds_ago >= 0 && h.sync.last_success_seconds_ago < 10);
    assert.equal(h.sync.last_error, null);
    assert.equal(h.sync.stale_after_seconds, 2);
    assert.equal(h.rejected, null);
    assert.equal((await get(base, '/__ready')).status, 200);

    // portico status: a readable summary, exit 0; --json; a URL naming /__health.
    const [st, asJson] = await Promise.all([runCli(['status', '--url', `${base}/`]), runCli(['status', '--url', `${base}/__health`, '--json'])]);
    assert.equal(st.code, 0, st.stdout + st.stderr);
    const lines = st.stdout.trimEnd().split('\n');
    assert.equal(lines[0], `Portico ${VERSION} at ${base}: ok (ready)`);
    assert.match(lines[1], new RegExp(`^  config    version 1, hash ${configHash(doc).slice(0, 12)}, from file, applied \\d+s ago, 1 endpoint\\(s\\)$`));
    assert.match(lines[2], /^  sync      current, last reached [\d.]+s ago$/);
    assert.equal(lines.length, 3, 'no rejected line');
    assert.equal(asJson.code, 0, 'a URL that already names /__health works too');
    const fromJson = JSON.parse(asJson.stdout);
    assert.equal(fromJson.status, 'ok');
    assert.equal(fromJson.config.hash, configHash(doc));

    // A file that parses but does not validate: rejected, with the hash of what it holds.
    const badDoc = { version: 3, timeout: '2 seconds', endpoints: [{ endpoint: '/x', backend: [] }] };
    let from = log.mark();
    writeAtomic(file, JSON.stringify(badDoc));
    await log.waitFor('config rejected', from);
    const d = await health(base);
    assert.equal(d.status, 'degraded');
    assert.equal(d.ready, true, 'a rejection does not make the instance unready');
    assert.equal(d.config.version, 1, 'the old config is still the current one');
    assert.equal(d.config.hash, h.config.hash);
    assert.deepEqual(Object.keys(d.rejected).sort(), ['at', 'errors', 'hash', 'label', 'source', 'version']);
    assert.equal(d.rejected.version, null, 'a file has no version of its own');
    assert.equal(d.rejected.hash, configHash(badDoc));
    assert.equal(d.rejected.source, 'file');
    assert.equal(d.rejected.label, file);
    assert.ok(Array.isArray(d.rejected.errors) && d.rejected.errors.length >= 1);
    assert.ok(d.rejected.errors.every((e: unknown) => typeof e === 'string'));
    assert.ok(d.rejected.errors.some((e: string) => e.startsWith(file) && e.includes('$.endpoints[0].backend')), d.rejected.errors.join('\n'));
    assert.match(d.rejected.at, ISO);
    assert.equal(d.sync.state, 'current', 'the file was readable');

    // portico status lists the rejection and exits 1.
    const sd = await runCli(['status', '--url', base]);
    assert.equal(sd.code, 1, sd.stdout + sd.stderr);
    assert.match(sd.stdout, new RegExp(`^Portico ${VERSION.replace(/\./g, '\\.')} at ${base}: degraded \\(ready\\)\\n`));
    assert.match(sd.stdout, new RegExp(`\\n  rejected  from file \\(${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\) \\d+s ago:\\n`));
    assert.match(sd.stdout, /\n {12}\S*portico\.json:\d+:\d+ error \$\.timeout: expected a Go duration/);
    assert.match(sd.stdout, /\n {12}\S*portico\.json:\d+:\d+ error \$\.endpoints\[0\]\.backend/);

    // Not even JSON: no hash to show.
    from = log.mark();
    writeAtomic(file, '{ not json');
    await log.waitFor('config rejected', from);
    const n = await health(base);
    assert.equal(n.rejected.hash, null);
    assert.match(n.rejected.errors[0], /expected valid JSON/);

    // Fixed: the rejection is gone.
    from = log.mark();
    const doc2 = configFor(be.url, 'two');
    writeAtomic(file, JSON.stringify(doc2));
    await log.waitFor('config applied', from);
    const ok = await health(base);
    assert.equal(ok.status, 'ok');
    assert.equal(ok.rejected, null);
    assert.equal(ok.config.version, 2);
    assert.equal(ok.config.hash, configHash(doc2));
    assert.ok(Date.parse(ok.config.applied_at) >= Date.parse(h.config.applied_at));
  });

  it('degraded once the watched file has been unreadable for longer than --stale-after, and not before', async () => {
    const dir = tempDir('health-stale');
    const file = join(dir, 'portico.json');
    writeFileSync(file, configText(be.url, 'one'));
    const { r, base, log } = await start(['run', '-c', file, '-p', '0', '--watch', '--stale-after', '300ms', '--cache-dir', join(dir, 'cache')]);

    // A watched file that simply does not change is not a failing source.
    await sleep(600);
    const quiet = await health(base);
    assert.equal(quiet.sync.state, 'current', `an unchanged, readable file is not stale: ${JSON.stringify(quiet.sync)}`);
    assert.equal(quiet.status, 'ok');

    const from = log.mark();
    rmSync(file);
    const failed = await log.waitFor('config file unreadable', from);
    const failedAt = Date.parse(failed.time);
    const samples: { sinceFailure: number; state: string; status: string }[] = [];
    const stale = await waitUntil(async () => {
      const h = await health(base);
      samples.push({ sinceFailure: Date.parse(h.now) - failedAt, state: h.sync.state, status: h.status });
      return h.sync.state === 'stale' ? h : undefined;
    }, 'sync.state stale', 5000);
    for (const s of samples) {
      // The log line is written just before the failure is recorded: allow a few ms either side.
      if (s.sinceFailure < 280) assert.deepEqual([s.state, s.status], ['current', 'ok'], `too early to be stale: ${JSON.stringify(samples)}`);
      if (s.sinceFailure > 330) assert.deepEqual([s.state, s.status], ['stale', 'degraded'], `late enough to be stale: ${JSON.stringify(samples)}`);
    }
    assert.equal(stale.status, 'degraded');
    assert.match(stale.sync.last_error, /does not exist/);
    assert.ok(stale.sync.last_error.includes(file));
    assert.equal(stale.rejected, null, 'an unreadable file is not a rejected config');
    assert.equal(stale.ready, true, 'stale but still serving');
    assert.equal(await servedTag(base), 'one');

    const st = await runCli(['status', '--url', base]);
    assert.equal(st.code, 1, st.stdout + st.stderr);
    assert.match(st.stdout, /: degraded \(ready\)/);
    assert.match(st.stdout, /sync +stale, last reached [\d.]+s ago, last error: .*does not exist/);

    writeFileSync(file, configText(be.url, 'back'));
    const back = await waitUntil(async () => {
      const h = await health(base);
      return h.status === 'ok' ? h : undefined;
    }, 'health ok again', 5000, r.output);
    assert.equal(back.sync.state, 'current');
    assert.equal(back.sync.last_error, null);
    assert.equal(await servedTag(base), 'back');
  });

  describe('portico status', () => {
    it('not ready (embedded default): exits 1', async () => {
      const dir = tempDir('status-default');
      const file = join(dir, 'portico.json');
      writeFileSync(file, '');
      const { base } = await start(['run', '-c', file, '-p', '0', '--watch', '--cache-dir', join(dir, 'cache')]);
      const st = await runCli(['status', '--url', base]);
      assert.equal(st.code, 1);
      assert.match(st.stdout, /\(not ready\)/);
      assert.match(st.stdout, /from default, applied \d+s ago, 0 endpoint\(s\)/);
    });

    it('unreachable: exits 2 with a message on stderr', async () => {
      const port = await freePort();
      const st = await runCli(['status', '--url', `http://127.0.0.1:${port}`]);
      assert.equal(st.code, 2);
      assert.equal(st.stdout, '');
      assert.match(st.stderr, new RegExp(`cannot reach http://127\\.0\\.0\\.1:${port}/__health`));
    });
  });

  it('without --watch sync is disabled; /__ready answers 503 while SIGTERM drains, on a connection that was already open', async () => {
    const dir = tempDir('health-drain');
    const file = join(dir, 'portico.json');
    writeFileSync(file, JSON.stringify({ version: 3, endpoints: [{ endpoint: '/slow', backend: [{ host: [be.url], url_pattern: '/slow' }] }] }));
    const { r, base, log } = await start(['run', '-c', file, '-p', '0', '--stale-after', '100ms', '--cache-dir', join(dir, 'cache')]);
    assert.equal((await get(base, '/__ready')).status, 200);

    // Without --watch nobody looks at the file: sync is disabled and never degrades health.
    rmSync(file);
    await sleep(250);
    const h = await health(base);
    assert.equal(h.sync.state, 'disabled');
    assert.equal(h.sync.stale_after_seconds, 0.1);
    assert.equal(h.status, 'ok');

    const socket = connect(r.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.on('error', () => {});
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));

    socket.write('GET /slow HTTP/1.1\r\nHost: portico\r\n\r\n');
    await sleep(200); // the slow request is in flight
    const from = log.mark();
    r.child.kill('SIGTERM');
    await log.waitFor('shutting down', from);
    socket.write('GET /__ready HTTP/1.1\r\nHost: portico\r\n\r\n');
    await closed;

    const text = Buffer.concat(chunks).toString('latin1');
    const responses = text.split(/(?=HTTP\/1\.1 \d{3} )/);
    assert.equal(responses.length, 2, text);
    assert.match(responses[0], /^HTTP\/1\.1 200 /, 'the in-flight request finished');
    assert.match(responses[0], /"path":"\/slow"/);
    assert.match(responses[1], /^HTTP\/1\.1 503 /, `draining: not ready\n${text}`);
    assert.match(responses[1], /\{"ready":false\}/);
    assert.equal(await r.exited, 0);
  });
});
