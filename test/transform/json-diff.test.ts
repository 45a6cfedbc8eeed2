// The JSON comparison behind portico/shadow-compare: kinds and paths, ignored
// paths with wildcards, the numeric tolerance, the listing cap, the depth bound.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { diffJson, MAX_DEPTH, parsePathPattern, preview, TooDeepError, type DiffOptions, type PathPattern } from '../../src/transform/json-diff.ts';

const opts = (o: Partial<Omit<DiffOptions, 'ignore'>> & { ignore?: string[] } = {}): DiffOptions => ({
  numericTolerance: 0,
  maxListed: 50,
  values: false,
  ...o,
  ignore: (o.ignore ?? []).map((p) => {
    const parsed = parsePathPattern(p);
    if (typeof parsed === 'string') assert.fail(`${p}: ${parsed}`);
    return parsed as PathPattern;
  }),
});

const paths = (live: unknown, shadow: unknown, o = opts()) => diffJson(live, shadow, o).listed.map((d) => `${d.kind} ${d.path}`);

describe('diffJson', () => {
  it('finds missing, extra and changed fields with their JSON paths, in objects and arrays', () => {
    const live = { id: 1, name: 'ann', email: 'a@x', tags: ['a', 'b', 'c'], address: { city: 'x' }, 'odd.key': 1 };
    const shadow = { id: 1, name: 'bob', tags: ['a', 'b'], address: { city: 'x', zip: '1' }, nick: 'b', 'odd.key': '1' };
    assert.deepEqual(paths(live, shadow), [
      'changed_value $.name',
      'missing_field $.email',
      'missing_field $.tags[2]',
      'extra_field $.address.zip',
      'changed_value $["odd.key"]',
      'extra_field $.nick',
    ]);
    const r = diffJson(live, shadow, opts());
    assert.deepEqual([...r.kinds].sort(), ['changed_value', 'extra_field', 'missing_field']);
    // A changed type says both types; values only when asked for.
    const typed = r.listed.find((d) => d.path === '$["odd.key"]')!;
    assert.deepEqual(typed, { kind: 'changed_value', path: '$["odd.key"]', live_type: 'number', shadow_type: 'string' });
    assert.equal(r.listed[0].live, undefined);
  });

  it('equal answers, and a null that is present differs from a missing key', () => {
    assert.deepEqual(diffJson({ a: [1, { b: null }] }, { a: [1, { b: null }] }, opts()).kinds.size, 0);
    assert.deepEqual(paths({ a: null }, {}), ['missing_field $.a']);
    assert.deepEqual(paths({ a: [] }, { a: {} }), ['changed_value $.a']);
  });

  it('numbers within the tolerance are equal; a number and a numeric string are not', () => {
    assert.deepEqual(paths({ t: 10.5 }, { t: 10.54 }, opts({ numericTolerance: 0.05 })), []);
    assert.deepEqual(paths({ t: 10.5 }, { t: 10.6 }, opts({ numericTolerance: 0.05 })), ['changed_value $.t']);
    assert.deepEqual(paths({ t: 10.5 }, { t: '10.5' }, opts({ numericTolerance: 1 })), ['changed_value $.t']);
  });

  it('ignored paths: exact, * for one key or item, ** for any depth; an ignored subtree is not walked', () => {
    const live = { updated_at: 1, items: [{ id: 1, v: 1 }, { id: 2, v: 2 }], meta: { a: { etag: 'x', keep: 1 } }, deep: { x: { y: { etag: 1 } } } };
    const shadow = { updated_at: 2, items: [{ id: 9, v: 1 }, { id: 8, v: 3 }], meta: { a: { etag: 'y', keep: 1 } }, deep: { x: { y: { etag: 2 } } } };
    assert.deepEqual(paths(live, shadow, opts({ ignore: ['$.updated_at', 'items[*].id', '**.etag'] })), ['changed_value $.items[1].v']);
    assert.deepEqual(paths(live, shadow, opts({ ignore: ['updated_at', '$.items', '$.meta.*.etag', 'deep'] })), []);
    // A missing or extra field under an ignored path is not reported either.
    assert.deepEqual(paths({ a: { b: 1 } }, { a: {} }, opts({ ignore: ['$.a.b'] })), []);
    assert.deepEqual(paths({ a: [1] }, { a: [1, 2] }, opts({ ignore: ['$.a[1]'] })), []);
  });

  it('lists at most maxListed differences and counts the rest; every kind is still found', () => {
    const live = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`k${i}`, i]));
    const r = diffJson(live, { extra: 1 }, opts({ maxListed: 5 }));
    assert.equal(r.listed.length, 5);
    assert.equal(r.more, 26);
    assert.ok(r.kinds.has('extra_field'), 'found though not listed');
  });

  it('values, when asked for, are shortened', () => {
    const r = diffJson({ s: 'x'.repeat(200), o: { a: 1 } }, { s: 'y', o: [1, 2] }, opts({ values: true }));
    assert.equal(r.listed[0].live!.length, 64);
    assert.equal(r.listed[0].shadow, '"y"');
    assert.deepEqual([r.listed[1].live, r.listed[1].shadow], ['an object with 1 keys', 'an array of 2 items']);
    assert.equal(preview(undefined), 'undefined');
  });

  it('refuses to walk deeper than MAX_DEPTH', () => {
    let deep: unknown = 1;
    for (let i = 0; i < MAX_DEPTH + 5; i++) deep = [deep];
    assert.throws(() => diffJson(deep, deep, opts()), TooDeepError);
  });
});

describe('parsePathPattern', () => {
  it('reads the JSON path syntax of configuration issues, with wildcards', () => {
    for (const ok of ['$.a', 'a', 'a.b[2].c', '$.items[*].id', '**.etag', '$["x.y"][0]', '$ref', 'a.*', '$[3]']) {
      assert.ok(typeof parsePathPattern(ok) !== 'string', ok);
    }
  });

  it('says what is wrong', () => {
    assert.match(parsePathPattern('') as string, /below the root/);
    assert.match(parsePathPattern('$') as string, /below the root/);
    assert.match(parsePathPattern('**') as string, /whole answer/);
    assert.match(parsePathPattern('a..b') as string, /empty key/);
    assert.match(parsePathPattern('a[x]') as string, /expected \[N\]/);
    assert.match(parsePathPattern('a["x') as string, /unclosed/);
    assert.match(parsePathPattern('a[1') as string, /unclosed/);
    assert.match(parsePathPattern('a]') as string, /\["\.\.\."\]/);
  });
});
