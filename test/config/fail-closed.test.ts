// Fail closed: a namespace this build does not implement is an error when it
// enforces a policy or changes how requests are served, at every scope, with
// its JSON path, line:column and "not supported by this version"; observing
// namespaces stay warnings. `portico check` and `run` refuse such a file, and
// a reload to one keeps the running configuration.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { formatPath } from '../../src/config/json-path.ts';
import { loadConfigText } from '../../src/config/load.ts';
import { runCli } from '../helpers/process.ts';
import { issueAt, load, service, withBackend, withEndpoint } from './support.ts';

const POLICY = /a policy namespace not supported by this version/;

describe('fail closed on unsupported namespaces', () => {
  it('service level: a policy namespace is an error naming it', () => {
    const result = load(service({ extra_config: { 'security/policies': { req: { policies: ['true'] } } } }));
    assert.equal(result.config, undefined);
    const issue = issueAt(result.errors, '$.extra_config["security/policies"]');
    assert.match(issue.found, /"security\/policies"/);
    assert.match(issue.found, POLICY);
    assert.match(issue.expected, /implements at service level/);
  });

  it('endpoint level: validation/response-json-schema is an error (the endpoint would answer without the check)', () => {
    const result = load(withEndpoint({ extra_config: { 'validation/response-json-schema': { schema: { type: 'object' } } } }));
    assert.equal(result.config, undefined);
    assert.match(issueAt(result.errors, '$.endpoints[0].extra_config["validation/response-json-schema"]').found, POLICY);
  });

  it('backend level: modifier/response-body-generator is an error', () => {
    const result = load(withBackend({ extra_config: { 'modifier/response-body-generator': { template: 'e30=' } } }));
    assert.equal(result.config, undefined);
    assert.match(issueAt(result.errors, '$.endpoints[0].backend[0].extra_config["modifier/response-body-generator"]').found, POLICY);
  });

  it('every policy family and behaviour-changing namespace is refused', () => {
    for (const name of ['governance/quota', 'validation/response-json-schema', 'modifier/response-body-generator', 'governance/processors', 'websocket', 'auth/revoker']) {
      assert.match(issueAt(load(withEndpoint({ extra_config: { [name]: {} } })).errors, formatPath(['endpoints', 0, 'extra_config', name])).found, POLICY, name);
    }
    for (const name of ['backend/soap', 'backend/grpc', 'plugin/http-client', 'backend/http/client']) {
      const issue = issueAt(load(withBackend({ extra_config: { [name]: {} } })).errors, `$.endpoints[0].backend[0].extra_config[${JSON.stringify(name)}]`);
      assert.match(issue.found, /not supported by this version \(it changes how requests are served\)/, name);
    }
    const legacy = issueAt(load(withEndpoint({ extra_config: { 'github_com/devopsfaith/krakend-jose/validator': {} } })).errors, '$.endpoints[0].extra_config["github_com/devopsfaith/krakend-jose/validator"]');
    assert.match(legacy.found, /KrakenD 1\.x\/2\.0 namespace name not supported by this version/);
  });

  it('observing namespaces are warnings; unknown ones are warnings with a hint', () => {
    const result = load(service({ extra_config: { 'telemetry/newrelic': {}, 'documentation/openapi': {}, routr: {} } }));
    assert.deepEqual(result.errors, []);
    assert.ok(result.config);
    assert.match(issueAt(result.warnings, '$.extra_config["telemetry/newrelic"]').found, /not supported by this version: ignored/);
    assert.match(issueAt(result.warnings, '$.extra_config["documentation/openapi"]').found, /not supported by this version: ignored/);
    assert.match(issueAt(result.warnings, '$.extra_config.routr').found, /unknown namespace "routr" \(did you mean "router"\?\)/);
  });

  it('an implemented namespace at a scope it does not serve: error for a policy or a backend kind, warning otherwise', () => {
    const misplaced = load(withEndpoint({ extra_config: { router: { return_error_msg: true } } }));
    assert.match(issueAt(misplaced.warnings, '$.endpoints[0].extra_config.router').found, /at endpoint level, where it is not supported by this version \(it belongs at service level\): ignored/);
    const policy = load(withEndpoint({ extra_config: { 'security/cors': { allow_origins: ['https://a.example'] } } }));
    assert.equal(policy.config, undefined);
    assert.match(issueAt(policy.errors, '$.endpoints[0].extra_config["security/cors"]').found, /at endpoint level, where it is not supported by this version \(it belongs at service level\): it would not be enforced here/);
    // A backend kind on the endpoint: its backend would be called over HTTP instead.
    const kind = load(withEndpoint({ extra_config: { 'backend/lambda': { function_name: 'f', region: 'eu-west-1' } } }));
    assert.equal(kind.config, undefined);
    assert.match(issueAt(kind.errors, '$.endpoints[0].extra_config["backend/lambda"]').found, /\(it belongs at backend level\): it would not apply here/);
  });

  it('the error points at the namespace key: line and column', () => {
    const text = `{
  "version": 3,
  "host": ["http://b:1"],
  "endpoints": [
    {
      "endpoint": "/a",
      "extra_config": {
        "modifier/response-body-generator": { "template": "e30=" }
      },
      "backend": [{ "url_pattern": "/a" }]
    }
  ]
}`;
    const issue = issueAt(loadConfigText(text, 'gw.json', { env: {} }).errors, '$.endpoints[0].extra_config["modifier/response-body-generator"]');
    assert.equal(`${issue.line}:${issue.column}`, '8:9');
  });

  it('portico check and run refuse the file with file, path, line:column and the words', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portico-fail-closed-'));
    const file = join(dir, 'gw.json');
    writeFileSync(file, JSON.stringify({ version: 3, port: 0, host: ['http://127.0.0.1:9'], endpoints: [{ endpoint: '/a', extra_config: { 'modifier/response-body-generator': { template: 'e30=' } }, backend: [{ url_pattern: '/a' }] }] }, null, 2));
    for (const args of [['check', '-c', file], ['run', '-c', file, '--cache-dir', join(dir, 'cache')]]) {
      const r = await runCli(args);
      assert.notEqual(r.code, 0, args[0]);
      assert.match(r.stderr, /gw\.json:\d+:\d+ error \$\.endpoints\[0\]\.extra_config\["modifier\/response-body-generator"\]: .*not supported by this version/, args[0]);
    }
  });
});
