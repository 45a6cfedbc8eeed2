import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileDecoder } from '../../src/transform/decode.ts';

const b = (s: string): Buffer => Buffer.from(s, 'utf8');

test('json: an object decodes to itself', () => {
  assert.deepEqual(compileDecoder('json', false)(b('{"a":1,"b":{"c":[1,2]}}')), { a: 1, b: { c: [1, 2] } });
});

test('json: null decodes to {} (Go leaves the map nil)', () => {
  assert.deepEqual(compileDecoder('json', false)(b('null')), {});
});

test('json: wrong shapes, invalid JSON and empty bodies throw', () => {
  const d = compileDecoder('json', false);
  assert.throws(() => d(b('[1,2]')), /expected an object, got array/);
  assert.throws(() => d(b('"x"')), /expected an object, got string/);
  assert.throws(() => d(b('42')), /got number/);
  assert.throws(() => d(b('{"a":')), /invalid JSON body/);
  assert.throws(() => d(b('')), /EOF/);
  assert.throws(() => d(b('  \n')), /invalid JSON body/);
});

test('json + is_collection: an array is wrapped under collection', () => {
  const d = compileDecoder('json', true);
  assert.deepEqual(d(b('[{"id":1},{"id":2}]')), { collection: [{ id: 1 }, { id: 2 }] });
  assert.deepEqual(d(b('null')), { collection: null });
  assert.throws(() => d(b('{"a":1}')), /expected an array \(is_collection\), got object/);
  assert.throws(() => d(b('')), /EOF/);
});

test('yaml encoding falls back to json decoding (KrakenD: unknown -> json)', () => {
  assert.deepEqual(compileDecoder('yaml', false)(b('{"a":1}')), { a: 1 });
});

test('safejson: objects, arrays and scalars', () => {
  const d = compileDecoder('safejson', false);
  assert.deepEqual(d(b('{"a":1}')), { a: 1 });
  assert.deepEqual(d(b('[1,"x"]')), { collection: [1, 'x'] });
  assert.deepEqual(d(b('"hello"')), { result: 'hello' });
  assert.deepEqual(d(b('3.5')), { result: 3.5 });
  assert.deepEqual(d(b('false')), { result: false });
  assert.deepEqual(d(b('null')), { result: null });
  assert.throws(() => d(b('{nope')), /invalid JSON body/);
  assert.throws(() => d(b('')), /EOF/);
});

test('string: the body as utf-8 under content', () => {
  const d = compileDecoder('string', false);
  assert.deepEqual(d(b('héllo {not json}')), { content: 'héllo {not json}' });
  assert.deepEqual(d(b('')), { content: '' });
});

test('xml: root element, attributes, #text, repeated elements as arrays, strings kept', () => {
  const d = compileDecoder('xml', false);
  const xml =
    '<?xml version="1.0"?><user id="7"><name>Bob</name><tag>a</tag><tag>b</tag>' +
    '<age>42</age><empty/><t lang="en">hi &amp; bye</t><ns:x xmlns:ns="u">1</ns:x></user>';
  assert.deepEqual(d(b(xml)), {
    user: {
      '-id': '7',
      name: 'Bob',
      tag: ['a', 'b'],
      age: '42',
      empty: '',
      t: { '-lang': 'en', '#text': 'hi & bye' },
      x: '1',
    },
  });
  assert.deepEqual(d(b('<a>&#65;&#x42;</a>')), { a: 'AB' });
});

test('xml + is_collection: the document goes under collection', () => {
  assert.deepEqual(compileDecoder('xml', true)(b('<list><i>1</i><i>2</i></list>')), { collection: { list: { i: ['1', '2'] } } });
});

test('xml: malformed input throws', () => {
  const d = compileDecoder('xml', false);
  for (const bad of ['', '   ', 'hello', '{"a":1}', '<a>', '<a></b>', '<a><b></a>', '<a x=1/>']) {
    assert.throws(() => d(b(bad)), /invalid XML/, bad);
  }
});

test('no-op is never decoded', () => {
  assert.throws(() => compileDecoder('no-op', false)(b('{}')), /streamed/);
});

test('rss decodes feeds (rss-decode.test.ts has the details); is_collection changes nothing', () => {
  const feed = b('<rss version="2.0"><channel><title>T</title><item><title>I</title></item></channel></rss>');
  const plain = compileDecoder('rss', false)(feed);
  assert.equal(plain.title, 'T');
  assert.deepEqual(plain.items, [{ title: 'I' }]);
  assert.deepEqual(compileDecoder('rss', true)(feed), plain);
  assert.throws(() => compileDecoder('rss', false)(b('{"a":1}')), /invalid feed/);
});
