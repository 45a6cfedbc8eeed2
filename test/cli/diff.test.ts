// `portico diff OLD NEW` as a real process on real configuration pairs
// (test/fixtures/diff: new.json changes every kind of thing old.json has).

import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { runCli } from '../helpers/process.ts';

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
const OLD = fixture('diff/old.json');
const NEW = fixture('diff/new.json');
/** Every secret value of the pair: none may ever be printed. */
const SECRETS = [
  '4f1c9a-reader-key-before', '9d3e11-reader-key-after',
  'client-secret-before', 'client-secret-after',
  'static-token-before', 'static-token-after',
  'before-pass', 'after-pass',
  '$2b$04$ktvszV0nhomu8c3oQXGMueBq9eSE1yCivOjdwqT8EheS8JFHKDNVO', '$2b$04$s9w2zIat8jTI4cxK0RRRlOyXG0F0qMN45gKn4jd6pOaEnBzjiEvBC',
];

describe('portico diff', () => {
  it('readable: endpoint by endpoint, exit 1 when something changed, secrets masked', async () => {
    const r = await runCli(['diff', OLD, NEW]);
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stdout.split('\n');
    assert.equal(lines[0], `${OLD} -> ${NEW}: changed (endpoints: 1 added, 1 removed, 2 changed; service settings changed)`);
    for (const expected of [
      '  ~ timeout: "2s" -> "3s" (inherited by 3 endpoints)',
      '  + namespace security/http',
      '  - namespace security/cors',
      '      ~ keys[0].key: changed (secret, not shown)',
      '      ~ keys[1].roles: ["admin"] -> ["admin","reader"]',
      '+ POST /orders',
      '- GET /legacy/search',
      '~ GET /products/{id}',
      '    ~ timeout: "1s" -> "1500ms"',
      '        ~ max_rate: 100 -> 50',
      '        ~ allow: ["id","name"] -> ["id","name","price"]',
      '    ~ backend[1] http://stock-v2.internal:8000 /stock/{id}',
      '        ~ host: ["http://stock.internal:8000"] -> ["http://stock-v2.internal:8000"]',
      '    + backend[2] http://pricing.internal:8000 /prices/{id}',
      '    - backend[2] http://reviews.internal:8000 /reviews?product={id}',
      '~ GET /admin/users',
      '        ~ users.ops: changed (secret, not shown)',
      '    ~ backend[0] http://gateway:***@users.internal:8000 /users',
      '            ~ client_secret: changed (secret, not shown)',
      '            ~ ["header.Modifier"].value: changed (secret, not shown)',
    ]) {
      assert.ok(lines.includes(expected), `missing line ${JSON.stringify(expected)} in:\n${r.stdout}`);
    }
    assert.ok(!r.stdout.includes('GET /products\n'), 'an unchanged endpoint is not listed');
    for (const s of SECRETS) assert.ok(!r.stdout.includes(s) && !r.stderr.includes(s), `secret ${s} printed`);
  });

  it('--json: the control plane diff shape with both files and their hashes', async () => {
    const r = await runCli(['diff', OLD, NEW, '--json']);
    assert.equal(r.code, 1, r.stderr);
    const d = JSON.parse(r.stdout);
    assert.equal(d.from.file, OLD);
    assert.match(d.from.hash, /^[0-9a-f]{64}$/);
    assert.notEqual(d.from.hash, d.to.hash);
    assert.equal(d.identical, false);
    assert.deepEqual(d.service.keys, ['extra_config', 'timeout']);
    assert.deepEqual(d.service.fields, [{ path: 'timeout', change: 'changed', from: '2s', to: '3s', inherited_by: 3 }]);
    assert.deepEqual(d.service.namespaces.added, ['security/http']);
    assert.deepEqual(d.service.namespaces.removed, ['security/cors']);
    assert.deepEqual(d.service.namespaces.changed[0].fields[0], { path: 'keys[0].key', change: 'changed', secret: true });
    assert.deepEqual(d.endpoints.added, ['POST /orders']);
    assert.deepEqual(d.endpoints.removed, ['GET /legacy/search']);
    assert.deepEqual(d.endpoints.changed.map((c: any) => c.endpoint), ['GET /products/{id}', 'GET /admin/users']);
    const product = d.endpoints.changed[0];
    assert.deepEqual(product.keys, ['extra_config', 'timeout']);
    assert.deepEqual(product.namespaces.changed, [{ namespace: 'qos/ratelimit/router', fields: [{ path: 'max_rate', change: 'changed', from: 100, to: 50 }] }]);
    assert.deepEqual(
      product.backends.map((b: any) => [b.index, b.change, b.url_pattern, b.keys ?? null]),
      [
        [0, 'changed', '/v1/products/{id}', ['allow']],
        [1, 'changed', '/stock/{id}', ['host']],
        [2, 'added', '/prices/{id}', null],
        [2, 'removed', '/reviews?product={id}', null],
      ],
    );
    const users = d.endpoints.changed[1].backends[0];
    assert.deepEqual(users.host, ['http://gateway:***@users.internal:8000']);
    assert.deepEqual(users.fields, [{ path: 'host', change: 'changed', secret: true }]);
    for (const s of SECRETS) assert.ok(!r.stdout.includes(s), `secret ${s} printed`);
  });

  it('the same configuration in YAML with its keys in another order: identical, exit 0', async () => {
    const r = await runCli(['diff', OLD, fixture('diff/old-reordered.yaml')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${OLD} -> ${fixture('diff/old-reordered.yaml')}: identical\n`);
    const j = await runCli(['diff', OLD, OLD, '--json']);
    assert.equal(j.code, 0);
    assert.equal(JSON.parse(j.stdout).identical, true);
  });

  it('a file check refuses: its errors with file, line:column and JSON path, exit 2, no diff', async () => {
    const broken = fixture('config/broken.json');
    const r = await runCli(['diff', OLD, broken]);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, new RegExp(`^${escape(broken)}:4:1 error \\$: expected valid JSON`, 'm'));
    const many = fixture('config/many-errors.json');
    const m = await runCli(['diff', many, NEW, '--json']);
    assert.equal(m.code, 2);
    assert.equal(m.stdout, '');
    assert.match(m.stderr, new RegExp(`^${escape(many)}:\\d+:\\d+ error \\$\\.\\S+: expected`, 'm'));
    assert.match(m.stderr, new RegExp(`^${escape(many)}: \\d+ error\\(s\\)$`, 'm'));
  });

  it('usage: two files are needed', async () => {
    const r = await runCli(['diff', OLD]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /diff needs two files/);
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
