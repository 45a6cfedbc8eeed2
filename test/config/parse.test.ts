import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { loadConfigText } from '../../src/config/load.ts';
import { parseConfigText } from '../../src/config/parse.ts';
import { issueAt, load, service } from './support.ts';

const fixture = (name: string): string => readFileSync(new URL(`../fixtures/config/${name}`, import.meta.url), 'utf8');

test('invalid JSON is one error at the line and column of the syntax error', () => {
  const result = loadConfigText(fixture('broken.json'), 'broken.json', { env: {} });
  assert.equal(result.config, undefined);
  assert.equal(result.errors.length, 1);
  const [issue] = result.errors;
  assert.equal(issue?.path, '$');
  assert.equal(issue?.line, 4);
  assert.equal(issue?.column, 1);
  assert.equal(issue?.expected, 'valid JSON');
  assert.match(issue?.found ?? '', /"\}" after a trailing comma/);
});

test('invalid JSON: unexpected character position', () => {
  const result = loadConfigText('{\n  "version": 3,\n  "port": x\n}', 'c.json', { env: {} });
  assert.equal(result.errors[0]?.line, 3);
  assert.equal(result.errors[0]?.column, 11);
  assert.match(result.errors[0]?.found ?? '', /unexpected character "x"/);
});

test('invalid JSON: a file cut short says so, wherever it stops', () => {
  for (const [text, after] of [
    ['{\n  "version": 3,\n  "endpoints": [\n    {', '"{"'],
    ['{"version": 3,', '","'],
    ['{"version": 3, "a": [1, 2', 'a number'],
    ['{"version": 3, "a": [1, 2]\n\n', undefined],
  ] as const) {
    const found = loadConfigText(text, 'cut.json', { env: {} }).errors[0]?.found ?? '';
    assert.match(found, /^the end of the file/, `${JSON.stringify(text)}: ${found}`);
    if (after) assert.ok(found.includes(`right after ${after}`), found);
  }
  // A token out of place in the middle of the text is not an early end.
  const mid = loadConfigText('{"version": 3 "port": 1}', 'c.json', { env: {} }).errors[0]?.found ?? '';
  assert.doesNotMatch(mid, /end of the file/);
});

test('invalid YAML is one error with its line and column', () => {
  const result = loadConfigText(fixture('broken.yaml'), 'broken.yaml', { env: {} });
  assert.equal(result.errors.length, 1);
  assert.equal(result.errors[0]?.expected, 'valid YAML');
  assert.equal(result.errors[0]?.line, 5);
  assert.ok((result.errors[0]?.column ?? 0) >= 1);
});

test('empty files are a clear error, JSON and YAML', () => {
  for (const [text, file] of [['', 'a.json'], ['  \n\n', 'a.json'], ['', 'a.yaml'], ['# only a comment\n', 'a.yml']] as const) {
    const result = loadConfigText(text, file, { env: {} });
    assert.equal(result.errors.length, 1, `${file}: ${JSON.stringify(text)}`);
    assert.match(result.errors[0]?.found ?? '', /empty file|no content/);
    assert.equal(result.errors[0]?.line, 1);
  }
});

test('a document that is not an object is an error at $', () => {
  const result = loadConfigText('[1, 2]', 'a.json', { env: {} });
  assert.equal(issueAt(result.errors, '$').found, '[1,2] (array)');
});

test('comment keys (@ $ _ #) are removed at every level and never reported', () => {
  const result = load({
    '@comment': 'top',
    $schema: 'x',
    _top: 1,
    '#': 2,
    ...service({
      extra_config: { router: { '@c': 'r', health_path: '/h' }, 'portico/server': { _c: 1 } },
      endpoints: [
        {
          '@comment': 'endpoint',
          endpoint: '/a',
          extra_config: { proxy: { '#c': 1, static: { '@c': 1, data: { _keep: 1 } } } },
          backend: [{ _c: 'backend', url_pattern: '/a', extra_config: { 'backend/http': { $c: 1 } } }],
        },
      ],
    }),
  });
  assert.deepEqual(result.errors, []);
  assert.deepEqual(result.warnings, []);
  const raw = result.raw as Record<string, any>;
  assert.equal('@comment' in raw, false);
  assert.equal('$schema' in raw, false);
  assert.deepEqual(raw.extra_config.router, { health_path: '/h' });
  assert.deepEqual(raw.extra_config['portico/server'], {});
  assert.equal('@comment' in raw.endpoints[0], false);
  assert.equal('_c' in raw.endpoints[0].backend[0], false);
  assert.deepEqual(result.config?.endpoints[0]?.proxy.static?.data, { _keep: 1 }, 'static data is user data, kept verbatim');
});

test('user data keeps keys that look like comments: mapping, json-schema, error bodies', () => {
  const schema = { $schema: 'https://json-schema.org/draft-07/schema', $defs: { id: { type: 'string' } }, type: 'object' };
  const result = load(
    service({
      extra_config: { router: { error_body: { '404': { _error: 'gone' } } } },
      endpoints: [
        {
          endpoint: '/a',
          extra_config: { 'validation/json-schema': schema },
          backend: [{ url_pattern: '/a', mapping: { _id: 'id' } }],
        },
      ],
    }),
  );
  // The schema's `$` keys are keywords, not comments: it compiles as written.
  assert.deepEqual(result.errors, []);
  const raw = result.raw as { endpoints: Array<{ extra_config: Record<string, unknown>; backend: Array<{ mapping: unknown }> }>; extra_config: { router: unknown } };
  assert.deepEqual(raw.endpoints[0]?.backend[0]?.mapping, { _id: 'id' });
  assert.deepEqual(raw.endpoints[0]?.extra_config['validation/json-schema'], schema);
  assert.deepEqual(raw.extra_config.router, { error_body: { '404': { _error: 'gone' } } });
});

test('the locator maps paths to lines, and missing keys to their container', () => {
  const text = '{\n  "version": 3,\n  "endpoints": [\n    {\n      "endpoint": "/a",\n      "backend": [{"url_pattern": "/x"}]\n    }\n  ]\n}';
  const parsed = parseConfigText(text, 'a.json');
  assert.ok(parsed.ok);
  const { locate } = parsed.source;
  assert.deepEqual(locate(['endpoints', 0, 'backend', 0, 'url_pattern'], 'value'), { line: 6, column: 35 });
  assert.deepEqual(locate(['endpoints', 0, 'endpoint'], 'key'), { line: 5, column: 7 });
  assert.deepEqual(locate(['endpoints', 0, 'method'], 'value'), { line: 4, column: 5 }, 'missing key -> its object');
});

test('YAML issues carry YAML line numbers', () => {
  const result = loadConfigText(fixture('errors.yaml'), 'errors.yaml', { env: {} });
  const timeout = issueAt(result.errors, '$.endpoints[0].timeout');
  assert.equal(timeout.line, 5);
  assert.equal(timeout.column, 14);
  const url = issueAt(result.errors, '$.endpoints[0].backend[0].url_pattern');
  assert.equal(url.line, 7);
  assert.equal(url.column, 22);
});

test('YAML and JSON versions of the same file give the same config', () => {
  const json = loadConfigText(fixture('valid.json'), 'valid.json', { env: {} });
  const yaml = loadConfigText(fixture('valid.yaml'), 'valid.yaml', { env: {} });
  assert.deepEqual(json.errors, []);
  assert.deepEqual(yaml.errors, []);
  assert.deepEqual(yaml.config, json.config);
});

test('a duplicate JSON key is a warning at the second key', () => {
  const result = loadConfigText('{\n  "version": 3,\n  "port": 1,\n  "port": 2\n}', 'd.json', { env: {} });
  const issue = issueAt(result.warnings, '$.port');
  assert.equal(issue.line, 4);
  assert.equal(result.config?.port, 2, 'the last value wins, as in Go');
});

test('auth/basic user names starting with a comment character are data, not comments', () => {
  const hash = '$2b$10$abcdefghijklmnopqrstuu6xJd2Hx7bW0OwcV0Ffq5iNBdc7ZkS/2';
  const result = load(service({ extra_config: { 'auth/basic': { users: { _svc: hash, '@ops': hash } } } }));
  const raw = result.raw as { extra_config: { 'auth/basic': { users: Record<string, string> } } };
  assert.deepEqual(Object.keys(raw.extra_config['auth/basic'].users).sort(), ['@ops', '_svc']);
});

test('a YAML alias used inside its own anchor is an error at the alias, not a crash', () => {
  const text = 'version: 3\nendpoints:\n  - &e\n    endpoint: /a\n    backend: [*e]\n';
  const result = loadConfigText(text, 'r.yaml', { env: {} });
  assert.equal(result.errors.length, 1);
  assert.equal(result.errors[0]?.line, 5);
  assert.equal(result.errors[0]?.column, 15);
  assert.match(result.errors[0]?.found ?? '', /recursive alias/);
  const reused = loadConfigText('version: 3\nhost: &h ["http://a"]\nendpoints:\n  - { endpoint: /a, backend: [{ host: *h, url_pattern: /a }] }\n  - { endpoint: /b, backend: [{ host: *h, url_pattern: /b }] }\n', 'ok.yaml', { env: {} });
  assert.deepEqual(reused.errors, [], 'an alias used twice, side by side, is fine');
});
