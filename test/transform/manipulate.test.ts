import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { BackendConfig } from '../../src/config/types.ts';
import { compileBackendTransform } from '../../src/transform/manipulate.ts';
import type { Data } from '../../src/transform/data.ts';

function backend(over: Partial<BackendConfig>): BackendConfig {
  return {
    host: ['http://b'],
    urlPattern: '/',
    method: 'GET',
    encoding: 'json',
    allow: [],
    deny: [],
    mapping: {},
    isCollection: false,
    disableHostSanitize: false,
    shadow: false,
    returnErrorCode: false,
    namespaces: [],
    extraConfig: {},
    ...over,
  };
}

function run(over: Partial<BackendConfig>, data: Data): Data {
  const t = compileBackendTransform(backend(over));
  assert.ok(t, 'a transform was expected');
  return t(data);
}

test('nothing configured: no transform at all', () => {
  assert.equal(compileBackendTransform(backend({})), undefined);
  assert.equal(compileBackendTransform(backend({ flatmapFilter: [] })), undefined);
});

test('target: replaces the data with the object at the path', () => {
  assert.deepEqual(run({ target: 'data.user' }, { data: { user: { id: 1 }, x: 2 }, y: 3 }), { id: 1 });
});

test('target: missing or non-object gives {}', () => {
  assert.deepEqual(run({ target: 'data.user' }, { data: { other: 1 } }), {});
  assert.deepEqual(run({ target: 'data' }, { data: 'text' }), {});
  assert.deepEqual(run({ target: 'toString' }, { a: 1 }), {});
});

test('target: into a collection meets an array and gives {} (as in KrakenD)', () => {
  assert.deepEqual(run({ target: 'collection', isCollection: true }, { collection: [{ a: 1 }] }), {});
  assert.deepEqual(run({ target: 'collection.0' }, { collection: [{ a: 1 }] }), {});
});

test('allow: nested paths keep only what is listed', () => {
  const data = { a: { b: 1, c: 2, d: { e: 3, f: 4 } }, g: [1, 2], h: 5, k: { z: 1 } };
  assert.deepEqual(run({ allow: ['a.b', 'a.d.e', 'g', 'k.missing'] }, data), { a: { b: 1, d: { e: 3 } }, g: [1, 2] });
});

test('allow: does not descend into arrays; a path through a non-object drops the key', () => {
  assert.deepEqual(run({ allow: ['items.id', 'x'] }, { items: [{ id: 1 }], x: null }), { x: null });
  assert.deepEqual(run({ allow: ['items.0', 's.length', 'n.a'] }, { items: [5], s: 'abc', n: null }), {});
});

test('allow: later entries replace earlier ones at the same node (lura)', () => {
  const data = (): Data => ({ a: { b: 1, c: 2 } });
  assert.deepEqual(run({ allow: ['a', 'a.b'] }, data()), { a: { b: 1 } });
  assert.deepEqual(run({ allow: ['a.b', 'a'] }, data()), { a: { b: 1, c: 2 } });
});

test('allow: nothing allowed present gives {}', () => {
  assert.deepEqual(run({ allow: ['nope'] }, { a: 1 }), {});
});

test('deny: removes nested paths at any depth', () => {
  const data = { a: { b: 1, c: { d: 2, e: 3 } }, f: 4, g: [{ b: 1 }] };
  assert.deepEqual(run({ deny: ['a.b', 'a.c.d', 'f', 'g.b', 'x.y'] }, data), { a: { c: { e: 3 } }, g: [{ b: 1 }] });
});

test('deny: a shorter path wins over a longer one', () => {
  assert.deepEqual(run({ deny: ['a.b', 'a'] }, { a: { b: 1, c: 2 }, z: 1 }), { z: 1 });
  assert.deepEqual(run({ deny: ['a', 'a.b'] }, { a: { b: 1, c: 2 }, z: 1 }), { z: 1 });
});

test('allow wins over deny when both are set', () => {
  assert.deepEqual(run({ allow: ['a'], deny: ['a'] }, { a: 1, b: 2 }), { a: 1 });
});

test('mapping: renames top-level keys; absent keys stay absent', () => {
  assert.deepEqual(run({ mapping: { a: 'x', missing: 'y' } }, { a: 1, b: 2 }), { x: 1, b: 2 });
  assert.deepEqual(run({ mapping: { a: 'b' } }, { a: 1, b: 2 }), { b: 1 });
  assert.deepEqual(run({ mapping: { b: 'a' } }, { a: 1, b: 2 }), { a: 2 });
});

test('mapping: only the first segment of the new name counts (lura); identity is a no-op', () => {
  assert.deepEqual(run({ mapping: { a: 'x.y', b: 'b' } }, { a: 1, b: 2 }), { x: 1, b: 2 });
});

test('mapping: renames apply simultaneously (swap and chain)', () => {
  assert.deepEqual(run({ mapping: { a: 'b', b: 'a' } }, { a: 1, b: 2 }), { a: 2, b: 1 });
  assert.deepEqual(run({ mapping: { a: 'b', b: 'c' } }, { a: 1, b: 2 }), { b: 1, c: 2 });
});

test('group: wraps the whole data, even when empty', () => {
  assert.deepEqual(run({ group: 'g' }, { a: 1 }), { g: { a: 1 } });
  assert.deepEqual(run({ group: 'g', target: 'missing' }, { a: 1 }), { g: {} });
});

test('order: target -> deny -> mapping -> group', () => {
  const data = { envelope: { user: { id: 1, secret: 's', name: 'n' }, meta: 1 }, outer: 1 };
  const out = run(
    { target: 'envelope', deny: ['user.secret', 'meta'], mapping: { user: 'account' }, group: 'res' },
    data,
  );
  assert.deepEqual(out, { res: { account: { id: 1, name: 'n' } } });
});

test('order: target -> allow -> mapping -> group (allow sees post-target keys, mapping post-allow keys)', () => {
  const data = { d: { a: { b: 1, c: 2 }, e: 3 } };
  const out = run({ target: 'd', allow: ['a.b'], mapping: { a: 'z', e: 'y' }, group: 'g' }, data);
  assert.deepEqual(out, { g: { z: { b: 1 } } });
});

test('flatmap_filter replaces allow/deny/mapping but keeps target and group', () => {
  const out = run(
    {
      target: 'data',
      allow: ['nope'],
      deny: ['users'],
      mapping: { users: 'people' },
      group: 'g',
      flatmapFilter: [{ type: 'del', args: ['users.*.password'] }],
    },
    { data: { users: [{ name: 'a', password: 'x' }, { name: 'b', password: 'y' }] } },
  );
  assert.deepEqual(out, { g: { users: [{ name: 'a' }, { name: 'b' }] } });
});

test('an own "__proto__" key from JSON survives filtering as data, never as a prototype', () => {
  const data = JSON.parse('{"__proto__":{"polluted":true},"a":1,"b":2}') as Data;
  const out = run({ deny: ['b'], mapping: { a: 'z' } }, data);
  assert.equal(Object.getPrototypeOf(out), Object.prototype);
  assert.equal((out as { polluted?: boolean }).polluted, undefined);
  assert.equal(JSON.stringify(out), '{"__proto__":{"polluted":true},"z":1}');
});
