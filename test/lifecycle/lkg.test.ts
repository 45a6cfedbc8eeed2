// The last-known-good (LKG) config: written atomically after every applied
// config, served at start-up when the -c file is broken, skipped (with a clear
// log line) when it is corrupted, and never a reason to stop serving when the
// cache directory cannot be written.

import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { configHash } from '../../src/lifecycle/canonical.ts';
import { LastKnownGood } from '../../src/lifecycle/last-known-good.ts';
import type { Snapshot } from '../../src/lifecycle/snapshot.ts';
import type { TestBackend } from '../helpers/backend.ts';
import { get } from '../helpers/http.ts';
import { runCli, startCli, type Running } from '../helpers/process.ts';
import { ChildLog, configFor, configText, servedTag, startEchoBackend, stopCli, tempDir, waitUntil, writeAtomic } from '../helpers/lifecycle-support.ts';

const BROKEN = JSON.stringify({ version: 3, endpoints: [{ endpoint: '/x', backend: [] }] });
const LKG = 'last-known-good.json';

function readLkg(dir: string): Record<string, any> {
  return JSON.parse(readFileSync(join(dir, LKG), 'utf8'));
}

describe('last-known-good config', { concurrency: 2 }, () => {
  let be: TestBackend;
  const running = new Set<Running>();
  const start = async (args: string[]) => {
    const r = await startCli(args);
    running.add(r);
    return r;
  };
  before(async () => {
    be = await startEchoBackend();
  });
  after(async () => {
    await Promise.all([...running].map(stopCli));
    await be.close();
  });

  it('a broken -c file at start-up: the LKG of an earlier run serves, health says degraded and lists the rejection', async () => {
    const dir = tempDir('lkg');
    const cache = join(dir, 'cache');
    const file = join(dir, 'portico.json');
    writeFileSync(file, configText(be.url, 'first'));

    // An earlier, good run at the same cache dir leaves the LKG behind.
    const good = await start(['run', '-c', file, '-p', '0', '--cache-dir', cache]);
    const base1 = `http://127.0.0.1:${good.port}`;
    assert.equal(await servedTag(base1), 'first');
    const h1 = (await get(base1, '/__health')).json();
    assert.equal(await stopCli(good), 0);
    const stored = readLkg(cache);
    assert.equal(stored.version, h1.config.version);
    assert.equal(stored.hash, h1.config.hash);
    assert.equal(stored.hash, configHash(configFor(be.url, 'first')));
    const lkgBytes = readFileSync(join(cache, LKG));

    // Now the file is broken.
    writeFileSync(file, BROKEN);
    const gw = await start(['run', '-c', file, '-p', '0', '--cache-dir', cache]);
    const base = `http://127.0.0.1:${gw.port}`;
    const log = new ChildLog(gw);
    assert.equal(await servedTag(base), 'first', 'the LKG endpoints serve');
    assert.match(gw.output(), /\$\.endpoints\[0\]\.backend/, 'the file errors are printed');
    const warn = await log.waitFor('serving the last known good config');
    assert.equal(warn.version, stored.version);

    const health = await get(base, '/__health');
    assert.equal(health.status, 200);
    const h = health.json();
    assert.equal(h.status, 'degraded');
    assert.equal(h.ready, true);
    assert.equal(h.config.source, 'last-known-good');
    assert.equal(h.config.version, stored.version);
    assert.equal(h.config.hash, stored.hash);
    assert.equal(h.config.endpoints, 1);
    assert.ok(h.rejected, 'the rejection is listed');
    assert.equal(h.rejected.source, 'file');
    assert.equal(h.rejected.label, file);
    assert.ok(h.rejected.errors.some((e: string) => /\$\.endpoints\[0\]\.backend/.test(e)), JSON.stringify(h.rejected.errors));
    assert.equal((await get(base, '/__ready')).status, 200, 'a real config serves: ready');

    assert.equal(await stopCli(gw), 0);
    assert.deepEqual(readFileSync(join(cache, LKG)), lkgBytes, 'restoring the LKG does not rewrite it');
  });

  it('the LKG is rewritten atomically after each applied reload (new version and hash, no *.tmp left)', async () => {
    const dir = tempDir('lkg-atomic');
    const cache = join(dir, 'cache');
    const file = join(dir, 'portico.json');
    writeFileSync(file, configText(be.url, 'v1'));
    const gw = await start(['run', '-c', file, '-p', '0', '--watch', '--cache-dir', cache]);
    const base = `http://127.0.0.1:${gw.port}`;
    assert.equal(readLkg(cache).version, 1);

    // A reader that keeps reading the LKG while it is being replaced: every read
    // must see a complete file whose document matches its hash.
    let reading = true;
    let reads = 0;
    const badReads: string[] = [];
    const reader = (async () => {
      while (reading) {
        try {
          const text = await readFile(join(cache, LKG), 'utf8');
          const s = JSON.parse(text);
          if (configHash(s.document) !== s.hash) badReads.push(`hash mismatch in ${text.slice(0, 80)}`);
          reads++;
        } catch (err) {
          badReads.push((err as Error).message);
        }
        await new Promise((r) => setImmediate(r));
      }
    })();

    try {
      for (let v = 2; v <= 4; v++) {
        const doc = configFor(be.url, `v${v}`);
        writeAtomic(file, JSON.stringify(doc));
        const s = await waitUntil(() => {
          const x = readLkg(cache);
          return x.version === v ? x : undefined;
        }, `the LKG at version ${v}`, 15_000, () => gw.output());
        assert.equal(s.format, 'portico-last-known-good/1');
        assert.equal(s.source, 'file');
        assert.equal(s.hash, configHash(doc));
        assert.deepEqual(s.document, doc);
        assert.ok(!Number.isNaN(Date.parse(s.appliedAt)));
        const h = (await get(base, '/__health')).json();
        assert.equal(h.config.version, v);
        assert.equal(h.config.hash, s.hash);
        assert.equal(await servedTag(base), `v${v}`);
      }
    } finally {
      reading = false;
      await reader;
    }
    assert.deepEqual(badReads, [], 'no reader ever saw a partial LKG');
    assert.ok(reads > 0);
    assert.deepEqual(readdirSync(cache), [LKG], 'no temp files are left behind');
  });

  describe('an unusable LKG is skipped with a clear log line', { concurrency: 2 }, () => {
    const cases: { name: string; corrupt: (text: string) => string; message: RegExp }[] = [
      {
        name: 'a wrong hash (document edited)',
        corrupt: (text) => text.replace('"/good"', '"/edited"'),
        message: /last-known-good config does not match its hash \(corrupted or edited\), skipped/,
      },
      { name: 'truncated', corrupt: (text) => text.slice(0, Math.floor(text.length / 2)), message: /last-known-good config is corrupted \(not JSON; truncated\?\), skipped/ },
      { name: 'not JSON', corrupt: () => 'this is not JSON at all\n', message: /last-known-good config is corrupted \(not JSON; truncated\?\), skipped/ },
      { name: 'JSON of another layout', corrupt: () => '{"hello":"world"}', message: /last-known-good config has an unknown layout, skipped/ },
    ];

    async function corruptedCache(corrupt: (text: string) => string): Promise<{ dir: string; cache: string; file: string }> {
      const dir = tempDir('lkg-bad');
      const cache = join(dir, 'cache');
      const doc = configFor(be.url, 'good');
      const snapshot = { version: 7, hash: configHash(doc), source: 'file', appliedAt: new Date(), document: doc } as unknown as Snapshot;
      await new LastKnownGood(cache).save(snapshot);
      const text = readFileSync(join(cache, LKG), 'utf8');
      const bad = corrupt(text);
      assert.notEqual(bad, text);
      writeFileSync(join(cache, LKG), bad);
      const file = join(dir, 'portico.json');
      writeFileSync(file, BROKEN);
      return { dir, cache, file };
    }

    for (const c of cases) {
      it(`${c.name}: with a broken file and no --watch the process exits 1`, async () => {
        const { cache, file } = await corruptedCache(c.corrupt);
        const r = await runCli(['run', '-c', file, '-p', '0', '--cache-dir', cache]);
        assert.equal(r.code, 1, r.stderr);
        const line = r.stderr.split('\n').find((l) => c.message.test(l));
        assert.ok(line, `expected a log line ${c.message}:\n${r.stderr}`);
        const entry = JSON.parse(line);
        assert.equal(entry.level, 'error');
        assert.equal(entry.file, join(cache, LKG), 'the log line names the file');
        assert.match(r.stderr, /refusing to start/);
        assert.doesNotMatch(r.stderr, /"msg":"listening"/);
      });
    }

    it('with --watch and nothing usable the embedded default serves (/__health 200, /__ready 503) until the file is fixed', async () => {
      const { cache, file } = await corruptedCache((t) => t.slice(0, 40));
      const gw = await start(['run', '-c', file, '-p', '0', '--watch', '--cache-dir', cache]);
      const base = `http://127.0.0.1:${gw.port}`;
      assert.match(gw.output(), /last-known-good config is corrupted/);
      assert.match(gw.output(), /serving the embedded default/);

      const health = await get(base, '/__health');
      assert.equal(health.status, 200);
      const h = health.json();
      assert.equal(h.ready, false);
      assert.equal(h.config.source, 'default');
      assert.equal(h.config.endpoints, 0);
      assert.equal(h.status, 'degraded', 'the rejected file is reported');
      assert.ok(h.rejected.errors.length > 0);
      const ready = await get(base, '/__ready');
      assert.equal(ready.status, 503);
      assert.deepEqual(ready.json(), { ready: false });
      assert.equal((await get(base, '/x')).status, 404, 'no endpoint of any config');

      writeAtomic(file, configText(be.url, 'fixed'));
      await waitUntil(async () => (await get(base, '/__ready')).status === 200, '/__ready 200 after the fix', 5000, gw.output);
      assert.equal(await servedTag(base), 'fixed');
      const h2 = (await get(base, '/__health')).json();
      assert.equal(h2.status, 'ok');
      assert.equal(h2.ready, true);
      assert.equal(h2.config.source, 'file');
      assert.equal(h2.rejected, null);
      // The fixed config replaced the corrupted LKG.
      const s = await waitUntil(() => {
        try {
          return readLkg(cache);
        } catch {
          return undefined;
        }
      }, 'a readable LKG');
      assert.equal(s.hash, configHash(configFor(be.url, 'fixed')));
      assert.equal(s.version, h2.config.version);
    });
  });

  describe('a cache dir that cannot be written', () => {
    async function check(cache: string): Promise<void> {
      const dir = tempDir('lkg-ro');
      const file = join(dir, 'portico.json');
      writeFileSync(file, configText(be.url, 'one'));
      const gw = await start(['run', '-c', file, '-p', '0', '--watch', '--cache-dir', cache]);
      const base = `http://127.0.0.1:${gw.port}`;
      const log = new ChildLog(gw);
      const first = await log.waitFor('cannot persist the last-known-good config; serving continues');
      assert.equal(first.level, 'error');
      assert.equal(first.file, join(cache, LKG));
      assert.equal(typeof first.error, 'string');
      assert.equal(await servedTag(base), 'one', 'still serving');

      const from = log.mark();
      writeAtomic(file, configText(be.url, 'two'));
      const applied = await log.waitFor('config applied', from);
      assert.equal(applied.version, 2);
      await log.waitFor('cannot persist the last-known-good config', from);
      assert.equal(await servedTag(base), 'two', 'reloads still apply');
      const h = (await get(base, '/__health')).json();
      assert.equal(h.status, 'ok');
      assert.equal(h.config.version, 2);
      assert.equal(gw.child.exitCode, null, 'still running');
    }

    it('a path whose parent is a regular file', async () => {
      const dir = tempDir('lkg-notdir');
      writeFileSync(join(dir, 'plain'), 'a regular file');
      await check(join(dir, 'plain', 'cache'));
    });

    const root = process.getuid?.() === 0;
    it('a read-only directory (chmod 500)', { skip: root ? 'running as root: chmod does not stop writes' : false }, async () => {
      const dir = tempDir('lkg-chmod');
      const cache = join(dir, 'cache');
      mkdirSync(cache);
      chmodSync(cache, 0o500);
      try {
        await check(cache);
        assert.equal(existsSync(join(cache, LKG)), false);
      } finally {
        chmodSync(cache, 0o700);
      }
    });
  });
});
