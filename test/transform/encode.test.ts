import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileRenderer } from '../../src/transform/encode.ts';
import { negotiate } from '../../src/transform/accept.ts';

const JSON_CT = 'application/json; charset=utf-8';
// krakend-xml's renderer sends no charset; a negotiated XML answer is gin's, with one.
const XML_CT = 'application/xml';
const NEGOTIATED_XML_CT = 'application/xml; charset=utf-8';
const YAML_CT = 'application/yaml; charset=utf-8';
const TEXT_CT = 'text/plain; charset=utf-8';

test('json: compact, no trailing newline; {} without data', () => {
  const r = compileRenderer('json');
  assert.deepEqual(r({ a: 1, b: [true, null], c: 'x' }, undefined), { contentType: JSON_CT, body: '{"a":1,"b":[true,null],"c":"x"}' });
  assert.deepEqual(r(undefined, undefined), { contentType: JSON_CT, body: '{}' });
});

test('json-collection: the collection value alone; [] when missing', () => {
  const r = compileRenderer('json-collection');
  assert.deepEqual(r({ collection: [{ id: 1 }], other: 2 }, undefined), { contentType: JSON_CT, body: '[{"id":1}]' });
  assert.equal(r({ other: 2 }, undefined).body, '[]');
  assert.equal(r(undefined, undefined).body, '[]');
  assert.equal(r({ collection: null }, undefined).body, 'null');
});

test('string: the content string, else an empty body', () => {
  const r = compileRenderer('string');
  assert.deepEqual(r({ content: 'hello' }, undefined), { contentType: TEXT_CT, body: 'hello' });
  assert.equal(r({ content: 42 }, undefined).body, '');
  assert.equal(r({ other: 'x' }, undefined).body, '');
  assert.equal(r(undefined, undefined).body, '');
});

test('xml: several keys under <doc>, sorted, arrays repeated, attributes and text, escaping', () => {
  const r = compileRenderer('xml');
  const out = r({ z: 1, a: { content: 'supu & tupu' }, list: ['x', 'y'], n: null, t: { '-id': 'q"1', '#text': '<b>' }, ok: true }, undefined);
  assert.equal(out.contentType, XML_CT);
  assert.equal(
    out.body,
    '<doc><a><content>supu &amp; tupu</content></a><list>x</list><list>y</list><n/><ok>true</ok><t id="q&quot;1">&lt;b&gt;</t><z>1</z></doc>',
  );
});

test('xml: a single non-array key is the root element (round-trips decoded XML)', () => {
  const r = compileRenderer('xml');
  assert.equal(r({ user: { '-id': '7', name: 'Bob', tag: ['a', 'b'] } }, undefined).body, '<user id="7"><name>Bob</name><tag>a</tag><tag>b</tag></user>');
  assert.equal(r({ collection: [{ id: 1 }, { id: 2 }] }, undefined).body, '<doc><collection><id>1</id></collection><collection><id>2</id></collection></doc>');
  assert.equal(r(undefined, undefined).body, '<doc/>');
});

test('xml: keys that are not XML names are made safe', () => {
  const r = compileRenderer('xml');
  assert.equal(r({ a: 1, '1st': 2, 'x y<': 3 }, undefined).body, '<doc><_1st>2</_1st><a>1</a><x_y_>3</x_y_></doc>');
});

test('yaml: sorted keys, 4-space indents; {} without data', () => {
  const r = compileRenderer('yaml');
  assert.deepEqual(r({ b: { y: [1, 2] }, a: 'true' }, undefined), {
    contentType: YAML_CT,
    body: 'a: "true"\nb:\n    y:\n        - 1\n        - 2\n',
  });
  assert.equal(r(undefined, undefined).body, '{}\n');
});

test('negotiate: media types to formats', () => {
  assert.equal(negotiate(undefined), 'json');
  assert.equal(negotiate(''), 'json');
  assert.equal(negotiate('*/*'), 'json');
  assert.equal(negotiate('application/json'), 'json');
  assert.equal(negotiate('application/xml'), 'xml');
  assert.equal(negotiate('text/xml'), 'xml');
  assert.equal(negotiate('text/plain'), 'yaml');
  assert.equal(negotiate('application/x-yaml'), 'yaml');
  assert.equal(negotiate('application/yaml'), 'yaml');
  assert.equal(negotiate('text/yaml'), 'yaml');
  assert.equal(negotiate('text/html'), 'json');
  assert.equal(negotiate('Application/XML; charset=utf-8'), 'xml');
});

test('negotiate: q-values, ties to the first listed, q=0 excluded', () => {
  assert.equal(negotiate('application/json;q=0.5, application/xml'), 'xml');
  assert.equal(negotiate('application/xml;q=0.4, text/yaml;q=0.9, */*;q=0.1'), 'yaml');
  assert.equal(negotiate('application/xml, application/json'), 'xml');
  assert.equal(negotiate('application/json, application/xml'), 'json');
  assert.equal(negotiate('application/xml;q=0, text/html'), 'json');
  assert.equal(negotiate('text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'), 'xml');
  assert.equal(negotiate('application/xml;q=0.2, application/json;q=0.2'), 'xml');
  assert.equal(negotiate('application/xml;q=, application/json;q=0.9'), 'xml');
  assert.equal(negotiate('application/json;q=0.3, text/plain;q=bogus'), 'yaml');
});

test('negotiate renderer: picks the body and content type', () => {
  const r = compileRenderer('negotiate');
  const data = { a: 1 };
  assert.deepEqual(r(data, 'application/xml'), { contentType: NEGOTIATED_XML_CT, body: '<a>1</a>' });
  assert.deepEqual(r(data, 'text/plain'), { contentType: YAML_CT, body: 'a: 1\n' });
  assert.deepEqual(r(data, undefined), { contentType: JSON_CT, body: '{"a":1}' });
  assert.deepEqual(r(data, 'application/json;q=0.1, application/x-yaml;q=0.2'), { contentType: YAML_CT, body: 'a: 1\n' });
});
