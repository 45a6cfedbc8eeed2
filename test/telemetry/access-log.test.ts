// Access-log batching: every write stays within PIPE_BUF bytes and ends at a line end,
// so lines from several workers sharing stdout never interleave.

import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { createAccessLog } from '../../src/telemetry/access-log.ts';

function capture(): { out: Writable; writes: string[] } {
  const writes: string[] = [];
  const out = new Writable({
    write(chunk, _enc, cb) {
      writes.push(String(chunk));
      cb();
    },
  });
  return { out, writes };
}

test('writes are cut at line ends within 4096 bytes, counting multi-byte characters', async () => {
  const { out, writes } = capture();
  const log = createAccessLog({ disabled: false, skipPaths: [], out })!;
  // ~300 characters of 3-byte UTF-8 per path: ~1 KB per line in bytes, ~0.4 KB in characters.
  const path = '/' + '€'.repeat(300);
  for (let i = 0; i < 40; i++) log.record('GET', `${path}/${i}`, 200, performance.now(), '127.0.0.1');
  await tick();
  await tick();
  assert.ok(writes.length > 1, 'the batch was split');
  for (const w of writes) {
    assert.ok(Buffer.byteLength(w) <= 4096, `a write of ${Buffer.byteLength(w)} bytes`);
    assert.ok(w.endsWith('\n'));
  }
  const lines = writes.join('').trimEnd().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 40);
  assert.deepEqual(lines.map((l) => l.path), Array.from({ length: 40 }, (_, i) => `${path}/${i}`));
});

test('skip paths are not logged; a line longer than 4096 bytes is written alone', async () => {
  const { out, writes } = capture();
  const log = createAccessLog({ disabled: false, skipPaths: ['/__health'], out })!;
  log.record('GET', '/__health', 200, performance.now(), '');
  log.record('GET', '/a', 200, performance.now(), '');
  log.record('GET', '/' + 'x'.repeat(5000), 200, performance.now(), '');
  log.record('GET', '/b', 200, performance.now(), '');
  await tick();
  await tick();
  const paths = writes.map((w) => w.trimEnd().split('\n').map((l) => JSON.parse(l).path.slice(0, 2)));
  assert.deepEqual(paths, [['/a'], ['/x'], ['/b']]);
});
