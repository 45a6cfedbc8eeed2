import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { loadConfigText } from '../../src/config/load.ts';
import { assertValid, errorAt, issueAt, load, service, withBackend, withEndpoint } from './support.ts';

const E0 = '$.endpoints[0]';
const B0 = '$.endpoints[0].backend[0]';

test('version must be present and be 3', () => {
  const { version: _, ...noVersion } = service();
  assert.match(errorAt(noVersion, '$.version').found, /missing/);
  const wrong = errorAt(service({ version: 2 }), '$.version');
  assert.equal(wrong.found, '2 (number)');
  assert.match(wrong.expected, /^3/);
});

test('every error is reported at once, with exact lines', () => {
  const text = readFileSync(new URL('../fixtures/config/many-errors.json', import.meta.url), 'utf8');
  const result = loadConfigText(text, 'many-errors.json', { env: {} });
  const where = (path: string): string => {
    const i = issueAt(result.errors, path);
    return `${i.line}:${i.column}`;
  };
  assert.equal(where('$.version'), '2:14');
  assert.equal(where('$.port'), '3:11');
  assert.equal(where('$.timeout'), '4:14');
  assert.equal(where('$.endpoints[0].endpoint'), '7:19');
  assert.equal(where('$.endpoints[0].backend[0].host[0]'), '9:52');
  assert.equal(where('$.endpoints[1].method'), '14:17');
  assert.equal(where('$.endpoints[1].cache_ttl'), '15:20');
  assert.equal(where('$.endpoints[1].backend'), '12:5', 'a missing key points at its object');
  assert.equal(result.errors.length, 8);
  assert.equal(issueAt(result.warnings, '$.unknown_top_level').line, 18);
  const lines = result.errors.map((i) => i.line ?? 0);
  assert.deepEqual(lines, [...lines].sort((a, b) => a - b), 'issues are in file order');
});

test('wrong types of known top-level keys', () => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['name', 5, /a string/],
    ['port', '8080', /integer/],
    ['listen_ip', 1, /a string/],
    ['host', 'http://a', /an array/],
    ['endpoints', {}, /array of endpoint/],
    ['extra_config', [], /object/],
    ['debug_endpoint', 'yes', /true or false/],
    ['echo_endpoint', 1, /true or false/],
    ['disable_rest', 'no', /true or false/],
    ['max_idle_connections_per_host', 1.5, /integer/],
    ['max_idle_connections', -1, /integer >= 0/],
    ['output_encoding', 'html', /"json"/],
    ['tls', 'on', /object/],
    ['client_tls', true, /object/],
    ['plugin', [], /object/],
  ];
  for (const [key, value, expected] of cases) {
    assert.match(errorAt(service({ [key]: value }), `$.${key}`).expected, expected, key);
  }
});

test('client_tls: skipping verification is ignored with a warning; any other backend TLS setting is refused', () => {
  const lax = load(service({ client_tls: { allow_insecure_connections: true } }));
  assert.equal(lax.errors.length, 0);
  assert.match(issueAt(lax.warnings, '$.client_tls.allow_insecure_connections').expected, /always verifies backend certificates/);
  for (const key of ['min_version', 'ca_certs', 'client_certs', 'cipher_suites']) {
    assert.match(errorAt(service({ client_tls: { [key]: 'x' } }), `$.client_tls.${key}`).expected, /not supported by this version/, key);
  }
});

test('port must be within 0..65535', () => {
  assert.match(errorAt(service({ port: 70000 }), '$.port').expected, /0 to 65535/);
  assert.match(errorAt(service({ port: -1 }), '$.port').expected, /0 to 65535/);
  assertValid(service({ port: 65535 }));
});

test('bad durations are errors wherever a duration is expected', () => {
  const topLevel = ['timeout', 'cache_ttl', 'read_timeout', 'write_timeout', 'idle_timeout', 'read_header_timeout', 'idle_connection_timeout', 'response_header_timeout', 'dialer_timeout'];
  for (const key of topLevel) {
    const issue = errorAt(service({ [key]: '2 seconds' }), `$.${key}`);
    assert.match(issue.expected, /Go duration such as "2s"/);
    assert.equal(issue.found, '"2 seconds" (string)');
  }
  assert.match(errorAt(service({ timeout: 2000 }), '$.timeout').found, /2000 \(number\)/);
  assert.match(errorAt(withEndpoint({ timeout: '10' }), `${E0}.timeout`).expected, /Go duration/);
  assert.match(errorAt(withEndpoint({ cache_ttl: '-1s' }), `${E0}.cache_ttl`).expected, /Go duration/);
  assertValid(withEndpoint({ timeout: '1m30s', cache_ttl: '1.5h' }, { timeout: '300ms' }));
});

test('wrong types of endpoint and backend keys', () => {
  assert.match(errorAt(withEndpoint({ input_headers: 'Authorization' }), `${E0}.input_headers`).expected, /array of strings/);
  assert.match(errorAt(withEndpoint({ input_query_strings: [1] }), `${E0}.input_query_strings[0]`).expected, /a string/);
  assert.match(errorAt(withEndpoint({ extra_config: 'x' }), `${E0}.extra_config`).expected, /object/);
  assert.match(errorAt(withBackend({ is_collection: 'true' }), `${B0}.is_collection`).expected, /true or false/);
  assert.match(errorAt(withBackend({ allow: 'a' }), `${B0}.allow`).expected, /array of strings/);
  assert.match(errorAt(withBackend({ deny: [true] }), `${B0}.deny[0]`).expected, /a string/);
  assert.match(errorAt(withBackend({ mapping: ['a'] }), `${B0}.mapping`).expected, /object/);
  assert.match(errorAt(withBackend({ mapping: { a: 1 } }), `${B0}.mapping.a`).expected, /a string/);
  assert.match(errorAt(withBackend({ group: 1 }), `${B0}.group`).expected, /a string/);
  assert.match(errorAt(withBackend({ target: {} }), `${B0}.target`).expected, /a string/);
  assert.match(errorAt(withBackend({ url_pattern: 5 }), `${B0}.url_pattern`).expected, /a string/);
  assert.match(errorAt(withBackend({ input_headers: 'x' }), `${B0}.input_headers`).expected, /array/);
  assert.match(errorAt(withBackend({ disable_host_sanitize: 'yes' }), `${B0}.disable_host_sanitize`).expected, /true or false/);
  assert.match(errorAt(withEndpoint({ backend: [5] }), B0).expected, /backend object/);
  assert.match(errorAt(service({ endpoints: ['x'] }), E0).expected, /endpoint object/);
});

test('endpoint path must exist and start with "/"', () => {
  assert.match(errorAt(service({ endpoints: [{ backend: [{ url_pattern: '/' }] }] }), `${E0}.endpoint`).found, /missing/);
  assert.match(errorAt(withEndpoint({ endpoint: 'users' }), `${E0}.endpoint`).expected, /starting with "\/"/);
  assert.match(errorAt(withEndpoint({ endpoint: 7 }), `${E0}.endpoint`).expected, /starting with "\/"/);
  assert.match(errorAt(withEndpoint({ endpoint: '/a?b=1' }), `${E0}.endpoint`).expected, /without "\?"/);
});

test('an endpoint needs at least one backend', () => {
  assert.match(errorAt(service({ endpoints: [{ endpoint: '/a' }] }), `${E0}.backend`).found, /missing/);
  assert.match(errorAt(withEndpoint({ backend: [] }), `${E0}.backend`).found, /empty array/);
  assert.match(errorAt(withEndpoint({ backend: {} }), `${E0}.backend`).expected, /at least one backend/);
});

test('a backend needs a url_pattern', () => {
  assert.match(errorAt(withEndpoint({ backend: [{ host: ['http://a'] }] }), `${B0}.url_pattern`).found, /missing/);
});

test('url_pattern parameters must be parameters of the endpoint, naming both', () => {
  const issue = errorAt(withEndpoint({ endpoint: '/users/{id}', backend: [{ url_pattern: '/u/{user}' }] }), `${B0}.url_pattern`);
  assert.match(issue.found, /\{user\}/);
  assert.match(issue.found, /"\/users\/\{id\}"/);
  assert.match(issue.expected, /"\/users\/\{id\}" \(declared: \{id\}\)/);
  assertValid(withEndpoint({ endpoint: '/users/{id}', backend: [{ url_pattern: '/u/{id}?full={id}' }] }));
});

test('{JWT.claim} placeholders are always allowed', () => {
  assertValid(withEndpoint({ endpoint: '/me', backend: [{ url_pattern: '/users/{JWT.sub}' }] }));
});

test('{respN_...} placeholders need a sequential endpoint and an earlier backend', () => {
  const backends = [{ url_pattern: '/a/{id}' }, { url_pattern: '/b/{resp0_user.id}' }];
  assertValid(withEndpoint({ endpoint: '/x/{id}', backend: backends, extra_config: { proxy: { sequential: true } } }));
  const notSequential = errorAt(withEndpoint({ endpoint: '/x/{id}', backend: backends }), '$.endpoints[0].backend[1].url_pattern');
  assert.match(notSequential.expected, /sequential/);
  const self = errorAt(
    withEndpoint({ endpoint: '/x', backend: [{ url_pattern: '/{resp0_id}' }], extra_config: { proxy: { sequential: true } } }),
    `${B0}.url_pattern`,
  );
  assert.match(self.expected, /earlier backend/);
});

test('a {param} inside an endpoint segment is never a parameter; url_patterns may use one inside a segment', () => {
  const endpoint = { endpoint: '/file.{ext}', backend: [{ url_pattern: '/f.{ext}' }] };
  assert.match(errorAt(withEndpoint(endpoint), `${B0}.url_pattern`).found, /whole path segment/);
  assert.match(errorAt(withEndpoint(endpoint, { disable_rest: true }), `${B0}.url_pattern`).found, /whole path segment/);
  assertValid(withEndpoint({ endpoint: '/file/{ext}', backend: [{ url_pattern: '/f.{ext}.json' }] }));
});

test('no-op output encoding allows a single backend only', () => {
  const two = [{ url_pattern: '/a' }, { url_pattern: '/b' }];
  assert.match(errorAt(withEndpoint({ output_encoding: 'no-op', backend: two }), `${E0}.backend`).found, /2 backends/);
  errorAt(withEndpoint({ backend: two }, { output_encoding: 'no-op' }), `${E0}.backend`);
  assertValid(withEndpoint({ output_encoding: 'no-op' }));
});

test('reserved paths are rejected, including router.health_path', () => {
  for (const path of ['/__health', '/__debug', '/__debug/x', '/__echo/a/b', '/__catchall', '/__stats']) {
    assert.match(errorAt(withEndpoint({ endpoint: path }), `${E0}.endpoint`).expected, /reserves/, path);
  }
  const moved = { extra_config: { router: { health_path: '/status' } } };
  assert.match(errorAt(withEndpoint({ endpoint: '/status' }, moved), `${E0}.endpoint`).expected, /"\/status"/);
  assertValid(withEndpoint({ endpoint: '/__debugger' }));
});

test('duplicate method + path are rejected with parameter names normalized', () => {
  const config = service({
    endpoints: [
      { endpoint: '/a/{x}', backend: [{ url_pattern: '/' }] },
      { endpoint: '/a/{y}', backend: [{ url_pattern: '/' }] },
    ],
  });
  assert.match(errorAt(config, '$.endpoints[1].endpoint').found, /already declared at \$\.endpoints\[0\]/);
  assertValid(
    service({
      endpoints: [
        { endpoint: '/a/{x}', backend: [{ url_pattern: '/' }] },
        { endpoint: '/a/{y}', method: 'POST', backend: [{ url_pattern: '/' }] },
      ],
    }),
  );
});

test('hosts: must be an http(s) URL; a missing host needs a top-level one', () => {
  assert.match(errorAt(withBackend({ host: ['ftp://files'] }), `${B0}.host[0]`).expected, /http:\/\/ or https:\/\//);
  assert.match(errorAt(withBackend({ host: ['http://'] }), `${B0}.host[0]`).expected, /host such as/);
  assert.match(errorAt(withBackend({ host: ['a b'] }), `${B0}.host[0]`).expected, /host such as/);
  assert.match(errorAt(withBackend({ host: [1] }), `${B0}.host[0]`).expected, /host such as/);
  assert.match(errorAt(service({ host: ['ws://x'] }), '$.host[0]').expected, /http:\/\//);
  const { host: _, ...noTopHost } = withBackend({});
  assert.match(errorAt(noTopHost, `${B0}.host`).expected, /top-level "host"/);
  assert.match(errorAt({ ...noTopHost, host: [] }, `${B0}.host`).expected, /top-level "host"/);
  const emptyOwn = errorAt({ ...noTopHost }, `${B0}.host`);
  assert.match(emptyOwn.found, /no "host" here/);
  assertValid({ ...noTopHost, endpoints: [{ endpoint: '/a', backend: [{ url_pattern: '/', host: ['a:1'] }] }] });
  assertValid(withBackend({ host: ['amqp://queue'], disable_host_sanitize: true }));
});

test('methods must be upper-case and supported', () => {
  const lower = errorAt(withEndpoint({ method: 'get' }), `${E0}.method`);
  assert.match(lower.expected, /upper-case/);
  assert.match(errorAt(withEndpoint({ method: 'HEAD' }), `${E0}.method`).expected, /"GET", "POST", "PUT", "PATCH" or "DELETE"/);
  assert.match(errorAt(withBackend({ method: 'post' }), `${B0}.method`).expected, /upper-case/);
  assert.match(errorAt(withBackend({ method: 'TRACE' }), `${B0}.method`).expected, /"HEAD" or "OPTIONS"/);
  assertValid(withBackend({ method: 'HEAD', encoding: 'no-op' }));
});

test('encodings and output encodings must be in the lists', () => {
  assert.match(errorAt(withBackend({ encoding: 'JSON' }), `${B0}.encoding`).expected, /"safejson"/);
  assert.match(errorAt(withEndpoint({ output_encoding: 'html' }), `${E0}.output_encoding`).expected, /"negotiate"/);
  for (const encoding of ['json', 'safejson', 'string', 'xml', 'no-op', 'yaml', 'fast-json', 'rss']) assertValid(withBackend({ encoding }));
  for (const output of ['json', 'json-collection', 'string', 'xml', 'yaml', 'negotiate', 'no-op', 'fast-json']) assertValid(withEndpoint({ output_encoding: output }));
});

test('concurrent_calls must be >= 1', () => {
  assert.match(errorAt(withEndpoint({ concurrent_calls: 0 }), `${E0}.concurrent_calls`).expected, /positive integer/);
  assert.match(errorAt(withEndpoint({ concurrent_calls: '2' }), `${E0}.concurrent_calls`).expected, /positive integer/);
  assertValid(withEndpoint({ concurrent_calls: 3 }));
});

test('router namespace: every option has its type checked', () => {
  const R = '$.extra_config.router';
  const booleans = ['return_error_msg', 'disable_health', 'auto_options', 'remove_extra_slash', 'disable_redirect_trailing_slash', 'disable_redirect_fixed_path', 'forwarded_by_client_ip', 'disable_access_log'];
  for (const key of booleans) errorAt(service({ extra_config: { router: { [key]: 'true' } } }), `${R}.${key}`);
  for (const key of ['remote_ip_headers', 'logger_skip_paths', 'trusted_proxies']) errorAt(service({ extra_config: { router: { [key]: 'x' } } }), `${R}.${key}`);
  assert.match(errorAt(service({ extra_config: { router: { health_path: 'health' } } }), `${R}.health_path`).expected, /starting with "\/"/);
  assert.match(errorAt(service({ extra_config: { router: { trusted_proxies: ['10.0.0.0/33'] } } }), `${R}.trusted_proxies[0]`).expected, /CIDR/);
  errorAt(service({ extra_config: { router: { error_body: { '404': 'not json object' } } } }), `${R}.error_body["404"]`);
  errorAt(service({ extra_config: { router: [] } }), R);
  assertValid(service({ extra_config: { router: { trusted_proxies: ['10.0.0.0/8', '::1', '192.168.1.1'], error_body: { '404': { e: 1 }, '405': { e: 2 } } } } }));
});

test('endpoint proxy namespace: sequential, static, flatmap_filter', () => {
  const P = `${E0}.extra_config.proxy`;
  errorAt(withEndpoint({ extra_config: { proxy: { sequential: 'yes' } } }), `${P}.sequential`);
  assert.match(errorAt(withEndpoint({ extra_config: { proxy: { static: { strategy: 'sometimes', data: {} } } } }), `${P}.static.strategy`).expected, /"always"/);
  errorAt(withEndpoint({ extra_config: { proxy: { static: { strategy: 'always', data: [] } } } }), `${P}.static.data`);
  errorAt(withEndpoint({ extra_config: { proxy: { static: { strategy: 'always' } } } }), `${P}.static.data`);
  errorAt(withEndpoint({ extra_config: { proxy: { flatmap_filter: {} } } }), `${P}.flatmap_filter`);
  for (const strategy of ['always', 'success', 'errored', 'complete', 'incomplete']) {
    assertValid(withEndpoint({ extra_config: { proxy: { static: { strategy, data: { a: 1 } } } } }));
  }
});

test('backend proxy namespace: shadow and flatmap_filter operations', () => {
  const P = `${B0}.extra_config.proxy`;
  errorAt(withBackend({ extra_config: { proxy: { shadow: 1 } } }), `${P}.shadow`);
  const flatmap = (ops: unknown): Record<string, unknown> => withBackend({ extra_config: { proxy: { flatmap_filter: ops } } });
  assert.match(errorAt(flatmap([{ type: 'copy', args: ['a', 'b'] }]), `${P}.flatmap_filter[0].type`).expected, /"move", "append" or "del"/);
  assert.match(errorAt(flatmap([{ type: 'move', args: ['a'] }]), `${P}.flatmap_filter[0].args`).expected, /exactly 2 arguments/);
  assert.match(errorAt(flatmap([{ type: 'append', args: ['a', 'b', 'c'] }]), `${P}.flatmap_filter[0].args`).expected, /exactly 2/);
  assert.match(errorAt(flatmap([{ type: 'del', args: ['a', 'b'] }]), `${P}.flatmap_filter[0].args`).expected, /exactly 1 argument/);
  errorAt(flatmap([{ type: 'del', args: [1] }]), `${P}.flatmap_filter[0].args[0]`);
  errorAt(flatmap([{ type: 'del' }]), `${P}.flatmap_filter[0].args`);
  errorAt(flatmap([{ args: ['a'] }]), `${P}.flatmap_filter[0].type`);
  errorAt(flatmap(['del a']), `${P}.flatmap_filter[0]`);
  assertValid(flatmap([{ type: 'move', args: ['a.*.b', 'c'] }, { type: 'del', args: ['x'] }, { type: 'append', args: ['a', 'b'] }]));
});

test('backend/http namespace types', () => {
  const H = `${B0}.extra_config["backend/http"]`;
  errorAt(withBackend({ extra_config: { 'backend/http': { return_error_details: true } } }), `${H}.return_error_details`);
  errorAt(withBackend({ extra_config: { 'backend/http': { return_error_code: 'yes' } } }), `${H}.return_error_code`);
  errorAt(withBackend({ extra_config: { 'backend/http': 'on' } }), H);
});

test('portico/server limits are positive integers', () => {
  const S = '$.extra_config["portico/server"]';
  for (const key of ['max_body_bytes', 'max_backend_body_bytes']) {
    for (const bad of [0, -5, 1.5, '10MB']) {
      assert.match(errorAt(service({ extra_config: { 'portico/server': { [key]: bad } } }), `${S}.${key}`).expected, /positive integer/);
    }
  }
});

test('tls: key files required unless disabled; versions; mTLS options', () => {
  const T = '$.tls';
  const result = load(service({ tls: {} }));
  assert.match(issueAt(result.errors, `${T}.public_key`).found, /missing/);
  assert.match(issueAt(result.errors, `${T}.private_key`).found, /missing/);
  assertValid(service({ tls: { disabled: true } }));
  assertValid(service({ tls: null }));
  const keys = { public_key: 'cert.pem', private_key: 'key.pem' };
  assertValid(service({ tls: { keys: [keys] } }));
  assert.match(errorAt(service({ tls: { keys: [{ public_key: 'c' }] } }), `${T}.keys[0].private_key`).found, /missing/);
  assert.match(errorAt(service({ tls: { ...keys, min_version: 'TLS11' } }), `${T}.min_version`).expected, /"TLS12" or "TLS13"/);
  errorAt(service({ tls: { ...keys, max_version: 'TLSv1.3' } }), `${T}.max_version`);
  errorAt(service({ tls: { ...keys, min_version: 'TLS13', max_version: 'TLS12' } }), `${T}.max_version`);
  errorAt(service({ tls: { ...keys, ca_certs: 'ca.pem' } }), `${T}.ca_certs`);
  errorAt(service({ tls: { ...keys, enable_mtls: 'true' } }), `${T}.enable_mtls`);
  errorAt(service({ tls: { ...keys, public_key: 1 } }), `${T}.public_key`);
  errorAt(service({ tls: { ...keys, cipher_suites: ['TLS_AES_128'] } }), `${T}.cipher_suites[0]`);
  assertValid(service({ tls: { ...keys, min_version: 'TLS12', max_version: 'TLS13', ca_certs: ['ca.pem'], enable_mtls: true, disable_system_ca_pool: true, curve_preferences: [23], cipher_suites: [4865], prefer_server_cipher_suites: true } }));
});

test('unknown keys are warnings (errors with lint); so are namespaces that only observe', () => {
  const config = withBackend(
    { url_patern: '/x', extra_config: { 'telemetry/newrelic': { anything: 1 }, 'backend/http': { return_error_cod: true } } },
    { headers_to_pass: ['X'], extra_config: { 'documentation/openapi': { whatever: true } } },
  );
  const result = load({ ...config, timeut: '2s', extra_config: { 'telemetry/gelf': { address: 'graylog:12201' } } });
  assert.ok(result.config, 'warnings do not block the config');
  assert.match(issueAt(result.warnings, '$.timeut').expected, /did you mean "timeout"/);
  assert.match(issueAt(result.warnings, `${E0}.headers_to_pass`).expected, /did you mean "input_headers"/);
  assert.match(issueAt(result.warnings, `${B0}.url_patern`).expected, /did you mean "url_pattern"/);
  issueAt(result.warnings, `${B0}.extra_config["backend/http"].return_error_cod`);
  for (const ns of [`${B0}.extra_config["telemetry/newrelic"]`, `${E0}.extra_config["documentation/openapi"]`, '$.extra_config["telemetry/gelf"]']) {
    assert.match(issueAt(result.warnings, ns).found, /not supported by this version: ignored/);
  }
  assert.equal(result.warnings.length, 7);
  assert.ok(result.warnings.every((w) => w.severity === 'warning'));

  const linted = load(config, { lint: true });
  assert.equal(linted.config, undefined);
  assert.equal(linted.warnings.length, 0);
  assert.equal(issueAt(linted.errors, `${B0}.url_patern`).severity, 'error');
});

test('unknown keys point at the key itself', () => {
  const result = loadConfigText('{\n  "version": 3,\n    "prot": 8080\n}', 'u.json', { env: {} });
  const issue = issueAt(result.warnings, '$.prot');
  assert.equal(issue.line, 3);
  assert.equal(issue.column, 5);
  assert.match(issue.expected, /did you mean "port"/);
});
