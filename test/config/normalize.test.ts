import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sanitizeHost } from '../../src/config/hosts.ts';
import { assertValid, service, withBackend, withEndpoint } from './support.ts';

test('top-level defaults', () => {
  const config = assertValid({ version: 3, host: ['http://b'], endpoints: [] }).config!;
  assert.equal(config.port, 8080);
  assert.equal(config.listenIp, undefined);
  assert.equal(config.timeoutMs, 2000);
  assert.equal(config.cacheTtlSeconds, 0);
  assert.equal(config.outputEncoding, 'json');
  assert.equal(config.maxIdleConnectionsPerHost, 250);
  assert.equal(config.readTimeoutMs, 0);
  assert.equal(config.writeTimeoutMs, 0);
  assert.equal(config.idleTimeoutMs, 0);
  assert.equal(config.readHeaderTimeoutMs, 10_000, 'safe header timeout against slowloris');
  assert.equal(config.maxBodyBytes, 10 * 1024 * 1024);
  assert.equal(config.maxBackendBodyBytes, 64 * 1024 * 1024);
  assert.equal(config.debugEndpoint, false);
  assert.equal(config.echoEndpoint, false);
  assert.equal(config.tls, undefined);
  assert.equal(config.router.healthPath, '/__health');
  assert.equal(config.router.returnErrorMsg, false);
  assert.equal(config.router.errorBody, undefined);
  assert.deepEqual(config.extraConfig, {});
});

test('zero values mean the default, as in KrakenD', () => {
  const config = assertValid(service({ port: 0, timeout: '0s', max_idle_connections_per_host: 0, read_header_timeout: '0s' })).config!;
  assert.equal(config.port, 8080);
  assert.equal(config.timeoutMs, 2000);
  assert.equal(config.maxIdleConnectionsPerHost, 250);
  assert.equal(config.readHeaderTimeoutMs, 10_000);
});

test('top-level values are converted', () => {
  const config = assertValid(
    service({
      name: 'n',
      port: 9000,
      listen_ip: '127.0.0.1',
      timeout: '1m30s',
      cache_ttl: '90s',
      output_encoding: 'negotiate',
      read_timeout: '1s',
      write_timeout: '2s',
      idle_timeout: '3s',
      read_header_timeout: '4s',
      max_idle_connections_per_host: 5,
      debug_endpoint: true,
      echo_endpoint: true,
      extra_config: { 'portico/server': { max_body_bytes: 100, max_backend_body_bytes: 200 }, 'telemetry/logging': { level: 'INFO' } },
    }),
  ).config!;
  assert.equal(config.name, 'n');
  assert.equal(config.port, 9000);
  assert.equal(config.listenIp, '127.0.0.1');
  assert.equal(config.timeoutMs, 90_000);
  assert.equal(config.cacheTtlSeconds, 90);
  assert.equal(config.outputEncoding, 'negotiate');
  assert.deepEqual([config.readTimeoutMs, config.writeTimeoutMs, config.idleTimeoutMs, config.readHeaderTimeoutMs], [1000, 2000, 3000, 4000]);
  assert.equal(config.maxIdleConnectionsPerHost, 5);
  assert.equal(config.maxBodyBytes, 100);
  assert.equal(config.maxBackendBodyBytes, 200);
  assert.equal(config.debugEndpoint, true);
  assert.equal(config.echoEndpoint, true);
  assert.deepEqual(config.extraConfig['telemetry/logging'], { level: 'INFO' }, 'other namespaces kept as written');
});

test('endpoints inherit timeout, cache_ttl and output_encoding; other endpoint defaults', () => {
  const config = assertValid(withEndpoint({}, { timeout: '5s', cache_ttl: '1m', output_encoding: 'xml' })).config!;
  const endpoint = config.endpoints[0]!;
  assert.equal(endpoint.method, 'GET');
  assert.equal(endpoint.timeoutMs, 5000);
  assert.equal(endpoint.cacheTtlSeconds, 60);
  assert.equal(endpoint.outputEncoding, 'xml');
  assert.deepEqual(endpoint.inputHeaders, ['Content-Type']);
  assert.deepEqual(endpoint.inputQueryStrings, []);
  assert.equal(endpoint.concurrentCalls, 1);
  assert.deepEqual(endpoint.proxy, { sequential: false });
  assert.deepEqual(endpoint.extraConfig, {});
});

test('endpoint values override the top level', () => {
  const endpoint = assertValid(
    withEndpoint(
      {
        method: 'PUT',
        timeout: '750ms',
        cache_ttl: '10s',
        output_encoding: 'string',
        input_headers: ['Authorization', 'X-Id'],
        input_query_strings: ['*'],
        concurrent_calls: 3,
        extra_config: {
          proxy: { sequential: true, static: { strategy: 'errored', data: { fallback: true } }, flatmap_filter: [{ type: 'del', args: ['a'] }] },
          'documentation/openapi': { summary: 'S' },
        },
      },
      { timeout: '5s', cache_ttl: '1m' },
    ),
  ).config!.endpoints[0]!;
  assert.equal(endpoint.method, 'PUT');
  assert.equal(endpoint.timeoutMs, 750);
  assert.equal(endpoint.cacheTtlSeconds, 10);
  assert.equal(endpoint.outputEncoding, 'string');
  assert.deepEqual(endpoint.inputHeaders, ['Authorization', 'X-Id']);
  assert.deepEqual(endpoint.inputQueryStrings, ['*']);
  assert.equal(endpoint.concurrentCalls, 3);
  assert.deepEqual(endpoint.proxy, {
    sequential: true,
    static: { strategy: 'errored', data: { fallback: true } },
    flatmapFilter: [{ type: 'del', args: ['a'] }],
  });
  assert.deepEqual(endpoint.extraConfig['documentation/openapi'], { summary: 'S' });
  const empty = assertValid(withEndpoint({ input_headers: [] })).config!.endpoints[0]!;
  assert.deepEqual(empty.inputHeaders, ['Content-Type'], 'an empty input_headers list is the default in KrakenD');
  const noStrategy = assertValid(withEndpoint({ extra_config: { proxy: { static: { data: { a: 1 } } } } })).config!.endpoints[0]!;
  assert.equal(noStrategy.proxy.static?.strategy, 'always');
});

test('backend inheritance and defaults', () => {
  const backend = assertValid(withEndpoint({ method: 'POST', backend: [{ url_pattern: 'users' }] })).config!.endpoints[0]!.backends[0]!;
  assert.deepEqual(backend.host, ['http://backend:8080'], 'inherits the top-level host');
  assert.equal(backend.urlPattern, '/users', 'a leading slash is added as in KrakenD');
  assert.equal(backend.method, 'POST', 'inherits the endpoint method');
  assert.equal(backend.encoding, 'json');
  assert.equal(backend.target, undefined);
  assert.deepEqual(backend.allow, []);
  assert.deepEqual(backend.deny, []);
  assert.deepEqual(backend.mapping, {});
  assert.equal(backend.group, undefined);
  assert.equal(backend.isCollection, false);
  assert.equal(backend.disableHostSanitize, false);
  assert.equal(backend.inputHeaders, undefined);
  assert.equal(backend.inputQueryStrings, undefined);
  assert.equal(backend.flatmapFilter, undefined);
  assert.equal(backend.shadow, false);
  assert.equal(backend.returnErrorDetails, undefined);
  assert.equal(backend.returnErrorCode, false);
});

test('backend values are carried over', () => {
  const backend = assertValid(
    withBackend({
      host: ['https://api.example.com/'],
      method: 'GET',
      encoding: 'xml',
      target: 'data.items',
      allow: ['a', 'b.c'],
      deny: ['d'],
      mapping: { a: 'alpha' },
      group: 'g',
      is_collection: true,
      input_headers: ['X-A'],
      input_query_strings: ['q'],
      extra_config: {
        proxy: { shadow: true, flatmap_filter: [{ type: 'move', args: ['a', 'b'] }] },
        'backend/http': { return_error_details: 'backend_a', return_error_code: true },
        'telemetry/opentelemetry': { disable_metrics: true },
      },
    }),
  ).config!.endpoints[0]!.backends[0]!;
  assert.deepEqual(backend.host, ['https://api.example.com']);
  assert.equal(backend.encoding, 'xml');
  assert.equal(backend.target, 'data.items');
  assert.deepEqual(backend.allow, ['a', 'b.c']);
  assert.deepEqual(backend.deny, ['d']);
  assert.deepEqual(backend.mapping, { a: 'alpha' });
  assert.equal(backend.group, 'g');
  assert.equal(backend.isCollection, true);
  assert.deepEqual(backend.inputHeaders, ['X-A']);
  assert.deepEqual(backend.inputQueryStrings, ['q']);
  assert.deepEqual(backend.flatmapFilter, [{ type: 'move', args: ['a', 'b'] }]);
  assert.equal(backend.shadow, true);
  assert.equal(backend.returnErrorDetails, 'backend_a');
  assert.equal(backend.returnErrorCode, true);
  assert.deepEqual(backend.extraConfig['telemetry/opentelemetry'], { disable_metrics: true });
  const emptyFilters = assertValid(withBackend({ input_headers: [], input_query_strings: [] })).config!.endpoints[0]!.backends[0]!;
  assert.equal(emptyFilters.inputHeaders, undefined, 'KrakenD: an empty backend list means no further filtering');
  assert.equal(emptyFilters.inputQueryStrings, undefined);
});

test('no-op endpoints force no-op decoding; fast-json reads as json', () => {
  const endpoint = assertValid(withEndpoint({ output_encoding: 'no-op', backend: [{ url_pattern: '/', encoding: 'json' }] })).config!.endpoints[0]!;
  assert.equal(endpoint.backends[0]!.encoding, 'no-op');
  const fast = assertValid(withEndpoint({ output_encoding: 'fast-json', backend: [{ url_pattern: '/', encoding: 'fast-json' }] })).config!.endpoints[0]!;
  assert.equal(fast.outputEncoding, 'json');
  assert.equal(fast.backends[0]!.encoding, 'json');
});

test('host sanitation', () => {
  assert.deepEqual(sanitizeHost('example.com:8080'), { ok: true, host: 'http://example.com:8080' });
  assert.deepEqual(sanitizeHost('https://example.com/'), { ok: true, host: 'https://example.com' });
  assert.deepEqual(sanitizeHost('http://10.0.0.1:81/base/'), { ok: true, host: 'http://10.0.0.1:81/base' });
  assert.deepEqual(sanitizeHost('HTTP://Example.com'), { ok: true, host: 'HTTP://Example.com' });
  assert.deepEqual(sanitizeHost('http://[::1]:8080'), { ok: true, host: 'http://[::1]:8080' });
  assert.equal(sanitizeHost('ftp://x').ok, false);
  assert.equal(sanitizeHost('').ok, false);
  assert.equal(sanitizeHost('http://a?x=1').ok, false);
  assert.deepEqual(sanitizeHost('http://keep/', true), { ok: true, host: 'http://keep/' }, 'disable_host_sanitize keeps it as written');
  const raw = assertValid(withBackend({ host: ['http://keep/'], disable_host_sanitize: true })).config!;
  assert.deepEqual(raw.endpoints[0]!.backends[0]!.host, ['http://keep/']);
  assert.equal(raw.endpoints[0]!.backends[0]!.disableHostSanitize, true);
  assert.deepEqual(assertValid(service({ host: ['a:1/', 'https://b'] })).config!.host, ['http://a:1', 'https://b']);
});

test('router options and error bodies', () => {
  const router = assertValid(
    service({
      extra_config: {
        router: {
          return_error_msg: true,
          health_path: '/status',
          disable_health: true,
          error_body: { '404': { error: 'not found' }, '405': { error: 'no' } },
          auto_options: true,
          remove_extra_slash: true,
          disable_redirect_trailing_slash: true,
          disable_redirect_fixed_path: true,
          forwarded_by_client_ip: true,
          remote_ip_headers: ['X-Real-IP'],
          trusted_proxies: ['10.0.0.0/8'],
          disable_access_log: true,
          logger_skip_paths: ['/status'],
        },
      },
    }),
  ).config!.router;
  assert.deepEqual(router, {
    returnErrorMsg: true,
    healthPath: '/status',
    disableHealth: true,
    errorBody: { notFound: { error: 'not found' }, methodNotAllowed: { error: 'no' } },
    autoOptions: true,
    removeExtraSlash: true,
    disableRedirectTrailingSlash: true,
    disableRedirectFixedPath: true,
    forwardedByClientIp: true,
    remoteIpHeaders: ['X-Real-IP'],
    trustedProxies: ['10.0.0.0/8'],
    disableAccessLog: true,
    loggerSkipPaths: ['/status'],
  });
});

test('tls maps KrakenD fields to Node names', () => {
  const tls = assertValid(
    service({
      tls: {
        public_key: 'cert.pem',
        private_key: 'key.pem',
        keys: [{ public_key: 'c2.pem', private_key: 'k2.pem' }],
        min_version: 'TLS12',
        ca_certs: ['ca.pem'],
        enable_mtls: true,
        disable_system_ca_pool: true,
        cipher_suites: [4865],
      },
    }),
  ).config!.tls;
  assert.deepEqual(tls, {
    publicKey: 'cert.pem',
    privateKey: 'key.pem',
    keyPairs: [
      { publicKey: 'cert.pem', privateKey: 'key.pem' },
      { publicKey: 'c2.pem', privateKey: 'k2.pem' },
    ],
    minVersion: 'TLSv1.2',
    maxVersion: 'TLSv1.3',
    caCerts: ['ca.pem'],
    requireClientCert: true,
    disableSystemCaPool: true,
    cipherSuites: [4865],
  });
  const defaults = assertValid(service({ tls: { keys: [{ public_key: 'c', private_key: 'k' }] } })).config!.tls!;
  assert.equal(defaults.publicKey, 'c');
  assert.equal(defaults.minVersion, 'TLSv1.3', 'KrakenD defaults to TLS 1.3');
  assert.equal(defaults.requireClientCert, false);
  assert.equal(assertValid(service({ tls: { disabled: true, public_key: 'c', private_key: 'k' } })).config!.tls, undefined);
});

test('tls: a max_version of TLS12 written alone lowers the default min_version with it', () => {
  const tls = assertValid(service({ tls: { public_key: 'c.pem', private_key: 'k.pem', max_version: 'TLS12' } })).config!.tls!;
  assert.equal(tls.minVersion, 'TLSv1.2');
  assert.equal(tls.maxVersion, 'TLSv1.2');
  const defaults = assertValid(service({ tls: { public_key: 'c.pem', private_key: 'k.pem' } })).config!.tls!;
  assert.equal(defaults.minVersion, 'TLSv1.3');
});
