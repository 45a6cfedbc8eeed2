// Access lines: their fields and skip paths; on stdout, every write stays
// within PIPE_BUF bytes and ends at a line end, so lines from several workers
// sharing stdout never interleave (checked on the writes a real process makes).

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createAccessLog } from '../../src/telemetry/access-log.ts';
import { tempDir } from '../helpers/lifecycle-support.ts';
import { runScript } from '../helpers/process.ts';

function capture(): { out: Writable; lines: () => Record<string, unknown>[] } {
  const writes: string[] = [];
  const out = new Writable({
    write(chunk, _enc, cb) {
      writes.push(String(chunk));
      cb();
    },
  });
  return { out, lines: () => writes.join('').trimEnd().split('\n').map((l) => JSON.parse(l)) };
}

test('one line per request with its fields; skip paths are not logged', () => {
  const { out, lines } = capture();
  const log = createAccessLog({ disabled: false, skipPaths: ['/__health'], out })!;
  log.record('GET', '/__health', 200, performance.now(), '10.0.0.1');
  log.record('POST', '/a "quoted"', 201, performance.now() - 12.5, '10.0.0.1', 'req-1');
  log.record('GET', '/b', 404, performance.now(), '::1');
  const [a, b, ...rest] = lines();
  assert.equal(rest.length, 0);
  assert.deepEqual(Object.keys(a), ['level', 'time', 'msg', 'method', 'path', 'status', 'duration_ms', 'client', 'request_id']);
  assert.deepEqual({ ...a, time: 0, duration_ms: 0 }, { level: 'info', time: 0, msg: 'access', method: 'POST', path: '/a "quoted"', status: 201, duration_ms: 0, client: '10.0.0.1', request_id: 'req-1' });
  assert.ok((a.duration_ms as number) >= 12.5);
  assert.equal(b.request_id, undefined, 'no request id: no field');
  assert.equal(createAccessLog({ disabled: true, skipPaths: [] }), undefined);
});

test('stdout writes are cut at line ends within 4096 bytes, counting multi-byte characters', async () => {
  // A real process logging to its stdout; fs.write and fs.writeSync record each write to fd 1.
  const script = join(tempDir('access-log'), 'writes.mjs');
  const src = (f: string) => JSON.stringify(new URL(`../../src/telemetry/${f}`, import.meta.url).href);
  writeFileSync(
    script,
    `import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
const writes = [];
for (const name of ['write', 'writeSync']) {
  const original = fs[name];
  fs[name] = function (fd, data, ...rest) {
    if (fd === 1) writes.push(Buffer.isBuffer(data) ? data.toString('utf8') : String(data));
    return original.call(this, fd, data, ...rest);
  };
}
syncBuiltinESMExports();
const { createAccessLog } = await import(${src('access-log.ts')});
const { flushLog } = await import(${src('log.ts')});
const log = createAccessLog({ disabled: false, skipPaths: [] });
// ~300 characters of 3-byte UTF-8 per path: ~1 KB per line in bytes, ~0.4 KB in characters.
const path = '/' + '\\u20ac'.repeat(300);
for (let i = 0; i < 40; i++) log.record('GET', path + '/' + i, 200, performance.now(), '127.0.0.1');
log.record('GET', '/' + 'x'.repeat(5000), 200, performance.now(), '127.0.0.1');
log.record('GET', '/last', 200, performance.now(), '127.0.0.1');
await flushLog();
process.stderr.write(JSON.stringify(writes));
`,
  );
  const r = await runScript(script, [], process.env);
  assert.equal(r.code, 0, r.stderr);
  const writes = JSON.parse(r.stderr) as string[];
  assert.equal(writes.join(''), r.stdout, 'every byte went through the recorded writes');
  assert.ok(writes.length > 2, 'the lines were written in several writes');
  assert.ok(writes.some((w) => w.split('\n').length > 2), 'lines queued during a write go out together');
  for (const w of writes) {
    assert.ok(w.endsWith('\n'), 'a write ends at a line end');
    if (Buffer.byteLength(w) > 4096) assert.equal(w.split('\n').length, 2, 'only a single line over 4096 bytes is written alone');
  }
  const paths = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l).path as string);
  assert.equal(paths.length, 42);
  assert.deepEqual(paths.slice(0, 40), Array.from({ length: 40 }, (_, i) => `/${'€'.repeat(300)}/${i}`));
  assert.equal(paths.at(-1), '/last');
});

test('stdout keeps up with a flood: every line of 100,000 (23 MB, 250 a turn) is written, none dropped', async () => {
  // One 4096-byte write per event-loop iteration (sonic-boom's pace) would leave 21 MB queued here, past the 16 MiB cap.
  const script = join(tempDir('access-flood'), 'flood.mjs');
  const src = (f: string) => JSON.stringify(new URL(`../../src/telemetry/${f}`, import.meta.url).href);
  writeFileSync(
    script,
    `import { setImmediate as turn } from 'node:timers/promises';
const { createAccessLog } = await import(${src('access-log.ts')});
const { flushLog } = await import(${src('log.ts')});
const log = createAccessLog({ disabled: false, skipPaths: [] });
const path = '/' + 'p'.repeat(100);
for (let t = 0; t < 400; t++) {
  for (let i = 0; i < 250; i++) log.record('GET', path, 200, performance.now(), '127.0.0.1', '3b241101-e2bb-4255-8caf-4136c566a962');
  await turn();
}
await flushLog(30_000);
`,
  );
  const r = await runScript(script, [], process.env);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /dropped/);
  assert.equal(r.stdout.split('\n').length - 1, 100_000);
});
