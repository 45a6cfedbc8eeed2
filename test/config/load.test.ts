import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { formatIssue, loadConfigFile } from '../../src/config/load.ts';

const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/config/${name}`, import.meta.url));

test('loadConfigFile reads JSON and YAML fixtures into the same config', async () => {
  const json = await loadConfigFile(fixture('valid.json'), { env: {} });
  const yaml = await loadConfigFile(fixture('valid.yaml'), { env: {} });
  assert.deepEqual(json.errors, []);
  assert.deepEqual(json.warnings.map((w) => w.path), ['$.extra_config["telemetry/gelf"]'], 'comment keys produce no warnings; an observing namespace Portico lacks does');
  assert.deepEqual(yaml.config, json.config);
  const config = json.config!;
  assert.equal(config.port, 8081);
  assert.equal(config.cacheTtlSeconds, 60);
  assert.deepEqual(config.host, ['http://backend.internal:9000']);
  assert.equal(config.router.healthPath, '/status');
  assert.equal(config.maxBodyBytes, 1024);
  const [users, orders] = config.endpoints;
  assert.equal(users?.timeoutMs, 3000);
  assert.deepEqual(users?.backends[0]?.mapping, { _id: 'id' });
  assert.equal(users?.backends[0]?.returnErrorCode, true);
  assert.equal(orders?.proxy.sequential, true);
  assert.deepEqual(orders?.backends.map((b) => [b.method, b.host[0]]), [
    ['POST', 'https://orders.example.com'],
    ['GET', 'http://backend.internal:9000'],
  ]);
});

test('a missing or unreadable file is an error issue, not a throw', async () => {
  const missing = await loadConfigFile(fixture('does-not-exist.json'));
  assert.equal(missing.config, undefined);
  assert.equal(missing.errors.length, 1);
  assert.equal(missing.errors[0]?.found, 'no such file');
  const directory = await loadConfigFile(fixture(''));
  assert.equal(directory.errors[0]?.found, 'a directory');
});

test('the config is present only without errors', async () => {
  const result = await loadConfigFile(fixture('many-errors.json'), { env: {} });
  assert.equal(result.config, undefined);
  assert.ok(result.errors.length > 1);
  assert.ok(result.raw, 'the raw document is still available');
});

test('formatIssue prints file:line:column severity path: expected ..., found ...', () => {
  const line = formatIssue({
    severity: 'error',
    file: 'portico.json',
    path: '$.endpoints[0].timeout',
    line: 12,
    column: 17,
    expected: 'a Go duration such as "2s"',
    found: '"2 seconds" (string)',
  });
  assert.equal(line, 'portico.json:12:17 error $.endpoints[0].timeout: expected a Go duration such as "2s", found "2 seconds" (string)');
  assert.equal(
    formatIssue({ severity: 'warning', file: 'p.json', path: '$.port', expected: 'x', found: 'y' }),
    'p.json warning $.port: expected x, found y',
  );
});
