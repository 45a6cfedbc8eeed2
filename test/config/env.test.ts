import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyEnvOverrides } from '../../src/config/env.ts';
import { loadConfigText } from '../../src/config/load.ts';
import { issueAt, load, service } from './support.ts';

test('PORTICO_* and KRAKEND_* override top-level keys with typed values', () => {
  const result = load(service({ port: 8080, timeout: '2s' }), {
    env: {
      PORTICO_PORT: '9090',
      PORTICO_TIMEOUT: '3s',
      PORTICO_NAME: 'from-env',
      KRAKEND_CACHE_TTL: '30s',
      PORTICO_OUTPUT_ENCODING: 'negotiate',
      PORTICO_READ_TIMEOUT: '1m',
      PORTICO_READ_HEADER_TIMEOUT: '2s',
      PORTICO_DEBUG_ENDPOINT: 'true',
      KRAKEND_ECHO_ENDPOINT: '1',
      PORTICO_MAX_IDLE_CONNECTIONS_PER_HOST: '10',
    },
  });
  assert.deepEqual(result.errors, []);
  const config = result.config;
  assert.equal(config?.port, 9090);
  assert.equal(config?.timeoutMs, 3000);
  assert.equal(config?.name, 'from-env');
  assert.equal(config?.cacheTtlSeconds, 30);
  assert.equal(config?.outputEncoding, 'negotiate');
  assert.equal(config?.readTimeoutMs, 60_000);
  assert.equal(config?.readHeaderTimeoutMs, 2000);
  assert.equal(config?.debugEndpoint, true);
  assert.equal(config?.echoEndpoint, true);
  assert.equal(config?.maxIdleConnectionsPerHost, 10);
  assert.equal(config?.endpoints[0]?.timeoutMs, 3000, 'endpoints inherit the overridden timeout');
});

test('PORTICO_HOST takes a comma-separated list or a JSON array', () => {
  const comma = load(service(), { env: { PORTICO_HOST: 'a.internal:81, https://b.internal/' } });
  assert.deepEqual(comma.config?.host, ['http://a.internal:81', 'https://b.internal']);
  const json = load(service(), { env: { PORTICO_HOST: '["http://c:1"]' } });
  assert.deepEqual(json.config?.host, ['http://c:1']);
  assert.deepEqual(json.config?.endpoints[0]?.backends[0]?.host, ['http://c:1']);
});

test('PORTICO_ wins over KRAKEND_', () => {
  const result = load(service(), { env: { KRAKEND_PORT: '7000', PORTICO_PORT: '7001' } });
  assert.equal(result.config?.port, 7001);
  const { sources } = applyEnvOverrides({}, { KRAKEND_PORT: '7000', PORTICO_PORT: '7001' });
  assert.equal(sources.get('port'), 'PORTICO_PORT');
});

test('a bad environment value is an error naming the variable, without a file position', () => {
  const result = loadConfigText('{\n  "version": 3,\n  "port": 8080\n}', 'p.json', { env: { PORTICO_PORT: 'eighty', KRAKEND_TIMEOUT: '2 secs' } });
  const port = issueAt(result.errors, '$.port');
  assert.equal(port.found, '"eighty" (string) from environment variable PORTICO_PORT');
  assert.equal(port.line, undefined);
  assert.match(issueAt(result.errors, '$.timeout').found, /KRAKEND_TIMEOUT/);
  const flag = load(service(), { env: { PORTICO_DEBUG_ENDPOINT: 'sure' } });
  assert.match(issueAt(flag.errors, '$.debug_endpoint').found, /PORTICO_DEBUG_ENDPOINT/);
});

test('only scalar/list top-level keys can be overridden; empty values are ignored', () => {
  const result = load(service(), { env: { PORTICO_ENDPOINTS: '[]', PORTICO_EXTRA_CONFIG: '{}', PORTICO_PORT: '', PORTICO_UNKNOWN: 'x' } });
  assert.equal(result.config?.endpoints.length, 1);
  assert.equal(result.config?.port, 8080);
  assert.deepEqual(result.warnings, []);
});

test('the environment defaults to process.env', () => {
  process.env.PORTICO_NAME = 'from-process-env';
  try {
    const result = loadConfigText(JSON.stringify(service()), 'x.json');
    assert.equal(result.config?.name, 'from-process-env');
  } finally {
    delete process.env.PORTICO_NAME;
  }
});

test('raw exposes the comment-stripped, env-overridden document', () => {
  const result = load({ ...service(), '@c': 1 }, { env: { PORTICO_PORT: '1234' } });
  assert.equal((result.raw as Record<string, unknown>).port, 1234);
  assert.equal('@c' in (result.raw as object), false);
});
