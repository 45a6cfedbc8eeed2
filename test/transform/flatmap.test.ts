import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { FlatmapOperation } from '../../src/config/types.ts';
import type { Data } from '../../src/transform/data.ts';
import { compileFlatmap } from '../../src/transform/manipulate.ts';

const fm = (ops: FlatmapOperation[], data: Data): Data => compileFlatmap(ops)(data);
const del = (...args: string[]): FlatmapOperation => ({ type: 'del', args });
const move = (from: string, to: string): FlatmapOperation => ({ type: 'move', args: [from, to] });
const append = (from: string, to: string): FlatmapOperation => ({ type: 'append', args: [from, to] });

const users = (): Data => ({
  users: [
    { name: 'a', password: 'x', id: 1 },
    { name: 'b', password: 'y', id: 2 },
  ],
  total: 2,
});

test('del with * over an array element field', () => {
  assert.deepEqual(fm([del('users.*.password')], users()), {
    users: [{ name: 'a', id: 1 }, { name: 'b', id: 2 }],
    total: 2,
  });
});

test('del takes several paths; numeric index removes one element', () => {
  assert.deepEqual(fm([del('users.0', 'total')], users()), { users: [{ name: 'b', password: 'y', id: 2 }] });
});

test('del in nested objects and * over object keys', () => {
  const data = { a: { first: { s: 1, t: 2 }, last: { s: 3, t: 4 } }, keep: true };
  assert.deepEqual(fm([del('a.*.s')], data), { a: { first: { t: 2 }, last: { t: 4 } }, keep: true });
});

test('del through nested arrays', () => {
  const data = { a: [{ b: [{ c: 1, d: 1 }, { c: 2, d: 2 }] }, { b: [{ c: 3, d: 3 }] }] };
  assert.deepEqual(fm([del('a.*.b.*.c')], data), { a: [{ b: [{ d: 1 }, { d: 2 }] }, { b: [{ d: 3 }] }] });
});

test('del: a container emptied becomes null (KrakenD tree quirk); missing paths do nothing', () => {
  assert.deepEqual(fm([del('a.b')], { a: { b: 1 }, z: 1 }), { a: null, z: 1 });
  assert.deepEqual(fm([del('list.*')], { list: [1, 2], z: 1 }), { list: null, z: 1 });
  assert.deepEqual(fm([del('list.0')], { list: [1], z: 1 }), { list: null, z: 1 });
  assert.deepEqual(fm([del('a', 'b')], { a: 1, b: 2 }), {});
  assert.deepEqual(fm([del('x.y', 'z.q')], { z: 1 }), { z: 1 });
});

test('move: rename inside every array element', () => {
  assert.deepEqual(fm([move('users.*.name', 'users.*.fullname')], users()), {
    users: [
      { fullname: 'a', password: 'x', id: 1 },
      { fullname: 'b', password: 'y', id: 2 },
    ],
    total: 2,
  });
});

test('move: top-level rename overwrites an existing key', () => {
  assert.deepEqual(fm([move('a', 'b')], { a: 1, b: 2 }), { b: 1 });
});

test('move: rename only looks at the last segment of the destination', () => {
  assert.deepEqual(fm([move('a.b', 'x.c')], { a: { b: 1 } }), { a: { c: 1 } });
});

test('move: extract an indexed nested value to the top (promotion)', () => {
  const data = { a: [{ b1: [{ c: 1, d: 'foo' }, { c: 2 }] }], k: 1 };
  assert.deepEqual(fm([move('a.0.b1.0.d', 'd')], data), { a: [{ b1: [{ c: 1 }, { c: 2 }] }], k: 1, d: 'foo' });
});

test('move: promotion that empties the source makes it null; last match wins on one key', () => {
  assert.deepEqual(fm([move('b.a', 'c')], { a: 1, b: { a: 42 } }), { a: 1, b: null, c: 42 });
  assert.deepEqual(fm([move('l.*.v', 'last')], { l: [{ v: 1, w: 0 }, { v: 2, w: 0 }] }), {
    l: [{ w: 0 }, { w: 0 }],
    last: 2,
  });
});

test('move: promotion with * in the destination keeps each value in its own element', () => {
  const data = { a: [{ b: { c: 1 } }, { b: { c: 2 } }] };
  assert.deepEqual(fm([move('a.*.b.c', 'a.*.c')], data), { a: [{ b: null, c: 1 }, { b: null, c: 2 }] });
});

test('move: embedding creates intermediate objects', () => {
  assert.deepEqual(fm([move('users.*.name', 'users.*.profile.fullname')], { users: [{ name: 'a', id: 1 }, { name: 'b' }] }), {
    users: [{ id: 1, profile: { fullname: 'a' } }, { profile: { fullname: 'b' } }],
  });
  assert.deepEqual(fm([move('b.a', 'b.x.y')], { b: { a: 42, x: { z: 1 } } }), { b: { x: { z: 1, y: 42 } } });
});

test('append: concatenates src onto the dst array and removes src', () => {
  const data = { kindergarten: [{ n: 'k1' }], schools: [{ n: 's1' }, { n: 's2' }], x: 1 };
  assert.deepEqual(fm([append('kindergarten', 'schools')], data), {
    schools: [{ n: 's1' }, { n: 's2' }, { n: 'k1' }],
    x: 1,
  });
});

test('append: with * in src the matches are appended as elements', () => {
  const data = { groups: [{ ids: [1, 2] }, { ids: [3] }], all: [0] };
  assert.deepEqual(fm([append('groups.*.ids', 'all')], data), {
    groups: [null, null],
    all: [0, [1, 2], [3]],
  });
});

test('append: does nothing unless both sides are arrays', () => {
  assert.deepEqual(fm([append('a', 'b')], { a: 1, b: [1] }), { a: 1, b: [1] });
  assert.deepEqual(fm([append('a', 'b')], { a: [1], b: { x: 1 } }), { a: [1], b: { x: 1 } });
  assert.deepEqual(fm([append('a', 'missing')], { a: [1] }), { a: [1] });
});

test('operations run in order (docs example)', () => {
  const data = {
    kindergarten: [{ PK_ID: 9, password: 'k' }],
    schools: [{ students: [{ PK_ID: 1, password: 'p' }] }, { students: [{ PK_ID: 2, password: 'q' }] }],
  };
  const out = fm(
    [
      append('kindergarten', 'schools'),
      move('schools.1.students', 'alumni'),
      del('schools'),
      del('alumni.*.password'),
      move('alumni.*.PK_ID', 'alumni.*.id'),
    ],
    data,
  );
  assert.deepEqual(out, { alumni: [{ id: 2 }] });
});
