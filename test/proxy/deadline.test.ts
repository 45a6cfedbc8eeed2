// The request path's cancellation (src/proxy/abort.ts): timers per duration,
// parents, listeners, dispose. Timing assertions use generous bounds.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Deadline } from '../../src/proxy/abort.ts';

test('a deadline fires after its duration with the reason it was given, once', async () => {
  const started = performance.now();
  let calls = 0;
  let firedAt = 0;
  const d = new Deadline(undefined, 40, () => new Error('too slow'));
  d.onAbort(() => {
    calls++;
    firedAt = performance.now() - started;
  });
  await sleep(150);
  assert.equal(calls, 1);
  assert.ok(firedAt >= 39, `fired after ${firedAt} ms`);
  assert.ok(d.aborted && d.expired);
  assert.equal((d.reason as Error).message, 'too slow');
});

test('deadlines of one duration fire in order; disposed ones never fire', async () => {
  const fired: number[] = [];
  const ds: Deadline[] = [];
  for (let i = 0; i < 5; i++) {
    const d = new Deadline(undefined, 30);
    d.onAbort(() => fired.push(i));
    ds.push(d);
    await sleep(2);
  }
  ds[0].dispose(); // the head of the queue
  ds[2].dispose(); // the middle
  ds[4].dispose(); // the tail
  await sleep(120);
  assert.deepEqual(fired, [1, 3]);
  assert.ok(!ds[0].aborted && !ds[0].expired);
});

test('a queue keeps working after it drained: a later deadline still fires', async () => {
  const a = new Deadline(undefined, 20);
  a.dispose();
  await sleep(60);
  const b = new Deadline(undefined, 20);
  await sleep(100);
  assert.ok(b.expired, 'the second deadline fired');
});

test('deadlines of different durations fire independently', async () => {
  const long = new Deadline(undefined, 400);
  const short = new Deadline(undefined, 20);
  await sleep(100);
  assert.ok(short.expired);
  assert.ok(!long.aborted);
  long.dispose();
});

test('a parent abort reaches children with its reason; a disposed child is detached', () => {
  const parent = new Deadline(undefined, 0);
  const child = new Deadline(parent, 0);
  const gone = new Deadline(parent, 0);
  gone.dispose();
  let heard = 0;
  child.onAbort(() => heard++);
  const reason = new Error('client left');
  parent.abort(reason);
  assert.ok(child.aborted);
  assert.equal(child.reason, reason);
  assert.ok(!child.expired, 'the parent, not the timer, ended it');
  assert.equal(heard, 1);
  assert.ok(!gone.aborted);
});

test('a child of an aborted parent starts aborted; abort() without a reason gives an Error', () => {
  const parent = new Deadline(undefined, 0);
  parent.abort();
  assert.ok(parent.reason instanceof Error);
  const child = new Deadline(parent, 50);
  assert.ok(child.aborted);
  assert.equal(child.reason, parent.reason);
});

test('offAbort removes a listener; abort twice runs listeners once', () => {
  const d = new Deadline(undefined, 0);
  let a = 0;
  let b = 0;
  const fa = () => a++;
  d.onAbort(fa);
  d.onAbort(() => b++);
  d.offAbort(fa);
  d.abort(new Error('x'));
  d.abort(new Error('y'));
  assert.equal(a, 0);
  assert.equal(b, 1);
  assert.equal((d.reason as Error).message, 'x');
});

test('a timer that fired does not fire again after the child was aborted by its parent', async () => {
  const parent = new Deadline(undefined, 0);
  const child = new Deadline(parent, 30, () => new Error('timeout'));
  parent.abort(new Error('first'));
  await sleep(80);
  assert.equal((child.reason as Error).message, 'first');
  assert.ok(!child.expired);
});
