// A watched config file that goes bad in every way a file can: each gives a
// log line, the old config keeps serving, the process stays up, and the next
// good file is picked up. A file written slowly in pieces is never read half-way.

import assert from 'node:assert/strict';
import { closeSync, mkdirSync, openSync, rmdirSync, rmSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DataPlane } from '../../src/lifecycle/data-plane.ts';
import { FileSource } from '../../src/lifecycle/file-source.ts';
import type { TestBackend } from '../helpers/backend.ts';
import { get } from '../helpers/http.ts';
import { startCli, type Running } from '../helpers/process.ts';
import { captureLog, ChildLog, discard, configFor, configText, servedTag, startEchoBackend, stopCli, tempDir, writeAtomic } from '../helpers/lifecycle-support.ts';

const REJECTED = 'config rejected; the current config keeps serving';
const UNREADABLE = 'config file unreadable; the current config keeps serving';

describe('bad input in a watched config file', () => {
  let be: TestBackend;
  let gw: Running;
  let log: ChildLog;
  let base: string;
  let file: string;
  let served = 'good0';
  let n = 0;

  before(async () => {
    be = await startEchoBackend();
    const dir = tempDir('bad-input');
    file = join(dir, 'portico.json');
    writeFileSync(file, configText(be.url, served));
    gw = await startCli(['run', '-c', file, '-p', '0', '--watch', '--cache-dir', join(dir, 'cache')]);
    log = new ChildLog(gw);
    base = `http://127.0.0.1:${gw.port}`;
    assert.equal(await servedTag(base), served);
  });
  after(async () => {
    if (gw) assert.equal(await stopCli(gw), 0, 'a clean exit after all of it');
    await be?.close();
  });

  /** After a bad input: the log line came, the old config answers, the process is alive. */
  async function expectKeptServing(msg: string, from: number, match: RegExp): Promise<void> {
    const entry = await log.waitFor(msg, from);
    const detail = JSON.stringify(entry);
    assert.match(detail, match);
    assert.equal(entry.level, 'error');
    assert.equal(await servedTag(base), served, 'the old config keeps serving');
    assert.equal(gw.child.exitCode, null, 'the process is still running');
    const h = (await get(base, '/__health')).json();
    assert.equal(h.ready, true);
    if (msg === REJECTED) {
      assert.equal(h.status, 'degraded');
      assert.equal(h.rejected.label, file);
      assert.ok(h.rejected.errors.some((e: string) => match.test(e)), JSON.stringify(h.rejected));
    } else {
      assert.match(String(h.sync.last_error), match);
    }
  }

  /** A good file (new content) is picked up again: applied, served, health ok. */
  async function expectRecovery(write: (text: string) => void): Promise<void> {
    const from = log.mark();
    const tag = `good${++n}`;
    write(configText(be.url, tag));
    await log.waitFor('config applied', from);
    assert.equal(await servedTag(base), tag);
    served = tag;
    const h = (await get(base, '/__health')).json();
    assert.equal(h.status, 'ok');
    assert.equal(h.rejected, null);
    assert.equal(h.sync.last_error, null);
  }

  const inPlace = (text: string) => writeFileSync(file, text);

  const rejections: { name: string; text: () => string; match: RegExp }[] = [
    { name: 'empty', text: () => '', match: /found an empty file/ },
    {
      name: 'truncated JSON',
      text: () => {
        const t = configText(be.url, 'cut');
        return t.slice(0, t.indexOf('/cut') + 2); // cut inside a string
      },
      match: /found the end of the file before the JSON was complete/,
    },
    { name: 'not JSON', text: () => 'endpoints: none, this is not JSON\n', match: /expected valid JSON/ },
    { name: 'binary garbage', text: () => '\u0000\u0001\u0002\u00ff', match: /expected valid JSON/ },
    { name: 'a JSON array', text: () => '[1, 2, 3]', match: /expected a configuration object.*found \[1,2,3\] \(array\)/ },
    { name: 'version 2', text: () => JSON.stringify({ ...configFor(be.url, 'old'), version: 2 }), match: /\$\.version: expected 3.*found 2/ },
    { name: 'a JSON string', text: () => '"version 3"', match: /expected a configuration object/ },
  ];

  for (const c of rejections) {
    it(`${c.name}: rejected with a log line, old config keeps serving, then a good file is picked up`, async () => {
      const from = log.mark();
      inPlace(c.text());
      await expectKeptServing(REJECTED, from, c.match);
      await expectRecovery(inPlace);
    });
  }

  it('deleted: a log line, old config keeps serving, then a new file is picked up', async () => {
    const from = log.mark();
    rmSync(file);
    await expectKeptServing(UNREADABLE, from, /does not exist/);
    await expectRecovery(inPlace);
  });

  it('replaced by a directory: a log line, old config keeps serving, then a file again is picked up', async () => {
    rmSync(file);
    const from = log.mark();
    mkdirSync(file);
    await expectKeptServing(UNREADABLE, from, /is a directory/);
    await expectRecovery((text) => {
      rmdirSync(file);
      writeFileSync(file, text);
    });
  });

  it('over 64 MiB (a sparse file): refused without being read, old config keeps serving', async () => {
    const from = log.mark();
    truncateSync(file, 64 * 1024 * 1024 + 1);
    await expectKeptServing(UNREADABLE, from, /67108865 bytes, more than the 67108864-byte limit/);
    assert.equal(log.find(REJECTED, from).length, 0, 'never parsed');
    await expectRecovery((text) => writeAtomic(file, text));
  });

  it('a ~5 MiB valid config (thousands of endpoints) is applied and serves', async () => {
    const endpoints = [{ endpoint: '/x', backend: [{ host: [be.url], url_pattern: '/huge' }] }];
    for (let i = 0; i < 5000; i++) {
      endpoints.push({ endpoint: `/e${i}/{id}`, '@comment': 'x'.repeat(900), backend: [{ host: [be.url], url_pattern: `/b${i}/{id}` }] } as (typeof endpoints)[0]);
    }
    const text = JSON.stringify({ version: 3, endpoints }, null, 1);
    assert.ok(text.length > 5 * 1024 * 1024);
    const from = log.mark();
    writeAtomic(file, text);
    const applied = await log.waitFor('config applied', from, 10_000);
    assert.equal(applied.endpoints, 5001);
    assert.equal(await servedTag(base), 'huge');
    served = 'huge';
    assert.equal((await get(base, '/e4999/7')).json().path, '/b4999/7');
    await expectRecovery((t) => writeAtomic(file, t));
  });

  it('a file written slowly in pieces is not read half-way', async () => {
    const text = configText(be.url, 'slow');
    const from = log.mark();
    const fd = openSync(file, 'w');
    try {
      // Each piece lands well within the 150 ms debounce of the one before.
      const third = Math.floor(text.length / 3);
      writeSync(fd, text.slice(0, third));
      await sleep(30);
      writeSync(fd, text.slice(third, 2 * third));
      await sleep(30);
      writeSync(fd, text.slice(2 * third));
    } finally {
      closeSync(fd);
    }
    const applied = await log.waitFor('config applied', from);
    assert.equal(await servedTag(base), 'slow');
    served = 'slow';
    assert.deepEqual(log.find(REJECTED, from), [], 'no rejection was logged for a half-written file');
    assert.ok(applied.version > 0);
  });
});

describe('FileSource size limit (in-process)', () => {
  it('a file over maxBytes is refused without being offered; a smaller one is applied', async () => {
    const dir = tempDir('bad-input-max');
    const file = join(dir, 'portico.json');
    const plane = new DataPlane({ listenIp: '127.0.0.1', port: 0, syncEnabled: true, staleAfterMs: 60_000, env: {}, accessLogOut: discard() });
    const source = new FileSource(file, plane, { maxBytes: 1024, debounceMs: 20 });
    const cap = captureLog();
    try {
      // Not even valid JSON: were it read, it would be rejected, not refused.
      writeFileSync(file, '{'.repeat(2000));
      const big = await source.read();
      assert.deepEqual(big, { kind: 'unreadable', error: 'is 2000 bytes, more than the 1024-byte limit' });
      assert.equal(plane.health().config, null, 'nothing applied');
      assert.equal(plane.rejected, undefined, 'nothing was offered');
      const line = cap.find(UNREADABLE);
      assert.equal(line.length, 1);
      assert.equal(line[0].file, file);
      assert.match(String((plane.health().sync as { last_error: string }).last_error), /more than the 1024-byte limit/);

      writeFileSync(file, JSON.stringify(configFor('http://127.0.0.1:1', 'small')));
      const small = await source.read();
      assert.equal(small.kind, 'applied');
      assert.equal(plane.current?.version, 1);

      // Exactly at the limit is allowed.
      const exact = JSON.stringify({ ...configFor('http://127.0.0.1:1', 'exact'), '@pad': '' });
      writeFileSync(file, exact.replace('"@pad":""', `"@pad":"${'p'.repeat(1024 - exact.length)}"`));
      const atLimit = await source.read();
      assert.equal(atLimit.kind, 'applied');
    } finally {
      cap.restore();
      await plane.shutdown(0);
    }
  });
});
