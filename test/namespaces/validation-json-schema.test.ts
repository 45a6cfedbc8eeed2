// validation/json-schema: request bodies checked against a JSON schema before
// any backend is called, through a real gateway and a real backend. Config
// checks (drafts by $schema, precise errors, RE2 patterns, no remote $ref),
// KrakenD's statuses and texts with and without router.return_error_msg, each
// draft's own keywords, and `portico check` on a schema that does not compile.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { JSON_SCHEMA_CODES, MAX_ERROR_LINES } from '../../src/namespaces/validation-json-schema.ts';
import { errorAt, issueAt, load } from '../config/support.ts';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { loadTestConfig, startGateway, type TestGateway } from '../helpers/gateway.ts';
import { request } from '../helpers/http.ts';
import { logsDuring } from '../helpers/log-lines.ts';
import { runCli, writeConfigFile } from '../helpers/process.ts';

const NS = 'validation/json-schema';
const AT = `$.endpoints[0].extra_config["${NS}"]`;

const withSchema = (schema: unknown) => ({
  version: 3,
  host: ['http://127.0.0.1:9'],
  endpoints: [{ endpoint: '/e', method: 'POST', backend: [{ url_pattern: '/b' }], extra_config: { [NS]: schema } }],
});
const optionsOf = (schema: unknown) => loadTestConfig(withSchema(schema)).endpoints[0]!.namespaces[0]!.options;

/** KrakenD's documentation example. */
const ADDRESS = {
  type: 'object',
  required: ['number', 'street_name', 'street_type'],
  properties: {
    number: { type: 'number' },
    street_name: { type: 'string' },
    street_type: { type: 'string', enum: ['Street', 'Avenue', 'Boulevard'] },
  },
};

describe('validation/json-schema: config', () => {
  it('picks the draft by $schema (scheme and "#" ignored), draft-07 without one; the options are plain data', () => {
    const o = optionsOf(ADDRESS);
    assert.deepEqual(structuredClone(o), o);
    assert.deepEqual(o, { draft: 'draft-07', schema: ADDRESS });
    const drafts: [string, string, string][] = [
      ['http://json-schema.org/draft-04/schema#', 'draft-04', 'http://json-schema.org/draft-04/schema#'],
      ['https://json-schema.org/draft-04/schema', 'draft-04', 'http://json-schema.org/draft-04/schema#'],
      ['http://json-schema.org/draft-06/schema', 'draft-06', 'http://json-schema.org/draft-06/schema#'],
      ['http://json-schema.org/draft-07/schema#', 'draft-07', 'http://json-schema.org/draft-07/schema#'],
      ['https://json-schema.org/draft/2019-09/schema', '2019-09', 'https://json-schema.org/draft/2019-09/schema'],
      ['https://json-schema.org/draft/2020-12/schema#', '2020-12', 'https://json-schema.org/draft/2020-12/schema'],
    ];
    for (const [given, draft, id] of drafts) {
      assert.deepEqual(optionsOf({ $schema: given, type: 'object' }), { draft, schema: { $schema: id, type: 'object' } }, given);
    }
    // `$`-keys are schema keywords here, never comments.
    assert.deepEqual(optionsOf({ $id: 'https://example.com/s.json', $defs: { a: { type: 'string' } }, $ref: '#/$defs/a' }), {
      draft: 'draft-07',
      schema: { $id: 'https://example.com/s.json', $defs: { a: { type: 'string' } }, $ref: '#/$defs/a' },
    });
    assert.deepEqual(optionsOf(true), { draft: 'draft-07', schema: true });
  });

  it('reports a schema that does not compile at its place, with ajv\'s reason', () => {
    assert.match(errorAt(withSchema([{ type: 'object' }]), AT).expected, /a JSON schema/);
    assert.match(errorAt(withSchema({ $schema: 'http://json-schema.org/draft-05/schema#' }), `${AT}["$schema"]`).expected, /draft-04, draft-06, draft-07, 2019-09 or 2020-12/);
    const type = errorAt(withSchema({ properties: { a: { type: 'not a valid type' } } }), `${AT}.properties.a.type`);
    assert.match(type.expected, /ajv: must be equal to one of the allowed values/);
    assert.match(type.found, /not a valid type/);
    assert.match(errorAt(withSchema({ required: 'a' }), `${AT}.required`).expected, /must be array/);
    // KrakenD's gojsonschema mixes drafts without $schema: a draft-04 boolean gets a hint.
    assert.match(errorAt(withSchema({ type: 'number', minimum: 1, exclusiveMinimum: true }), `${AT}.exclusiveMinimum`).expected, /draft-04/);
    assert.match(errorAt(withSchema({ $schema: 'http://json-schema.org/draft-04/schema#', type: 'object', items: [true] }), `${AT}.items[0]`).expected, /must be object/);
  });

  it('patterns are Go RE2: RE2 syntax is taken, what RE2 refuses is an error at its place', () => {
    load(withSchema({ type: 'string', pattern: '(?i)^[[:alpha:]]+\\z' })).errors.forEach((e) => assert.fail(`${e.path}: ${e.found}`));
    assert.match(errorAt(withSchema({ properties: { a: { pattern: 'a(?=b)' } } }), `${AT}.properties.a.pattern`).found, /lookahead/);
    assert.match(errorAt(withSchema({ patternProperties: { '(\\w)\\1': {} } }), `${AT}.patternProperties["(\\\\w)\\\\1"]`).found, /backreferences/);
    // A "pattern" inside enum is data, not a keyword.
    assert.deepEqual(load(withSchema({ enum: [{ pattern: '(' }] })).errors, []);
    const r = load(withSchema({ properties: { a: { pattern: '^(a+)+$' } } }));
    assert.deepEqual(r.errors, []);
    assert.match(issueAt(r.warnings, `${AT}.properties.a.pattern`).found, /exponential/);
  });

  it('refuses a $ref it would have to fetch; an unknown format passes with a warning, as in KrakenD', () => {
    const ref = errorAt(withSchema({ properties: { a: { $ref: 'https://example.com/a.json' } } }), AT);
    assert.match(ref.expected, /fetches no schema/);
    assert.match(ref.found, /https:\/\/example\.com\/a\.json/);
    assert.deepEqual(load(withSchema({ $defs: { a: { type: 'string' } }, properties: { a: { $ref: '#/$defs/a' } } })).errors, []);
    const r = load(withSchema({ properties: { a: { format: 'iri' } } }));
    assert.deepEqual(r.errors, []);
    assert.match(issueAt(r.warnings, AT).found, /unknown format "iri"/);
  });

  it('portico check: a schema that does not compile fails with its JSON path', async () => {
    const { file } = writeConfigFile(withSchema({ type: 'object', properties: { n: { type: 'numbr' } } }));
    const r = await runCli(['check', '-c', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /\$\.endpoints\[0\]\.extra_config\["validation\/json-schema"\]\.properties\.n\.type/);
    assert.match(r.stderr, /numbr/);
  });
});

describe('validation/json-schema: over HTTP', () => {
  let be: TestBackend;
  let plain: TestGateway;
  let verbose: TestGateway;
  const drafts = {
    // draft-04: exclusiveMinimum is a boolean beside minimum
    '/d4': { $schema: 'http://json-schema.org/draft-04/schema#', type: 'number', minimum: 5, exclusiveMinimum: true },
    // draft-06: exclusiveMinimum is the bound itself
    '/d6': { $schema: 'http://json-schema.org/draft-06/schema#', type: 'number', exclusiveMinimum: 5 },
    // draft-07: if / then
    '/d7': { $schema: 'http://json-schema.org/draft-07/schema#', if: { properties: { kind: { const: 'card' } } }, then: { required: ['cvv'] } },
    // 2019-09: dependentRequired (unknown, so ignored, in draft-07)
    '/d2019': { $schema: 'https://json-schema.org/draft/2019-09/schema', dependentRequired: { card: ['cvv'] } },
    '/d2019-as-07': { dependentRequired: { card: ['cvv'] } },
    // 2020-12: prefixItems and items: false
    '/d2020': { $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'array', prefixItems: [{ type: 'string' }], items: false },
  };
  const endpoints = () => [
    { endpoint: '/address', method: 'POST', backend: [{ url_pattern: '/echo' }], extra_config: { [NS]: ADDRESS } },
    ...Object.entries(drafts).map(([endpoint, schema]) => ({ endpoint, method: 'POST', backend: [{ url_pattern: '/echo' }], extra_config: { [NS]: schema } })),
    { endpoint: '/re2', method: 'POST', backend: [{ url_pattern: '/echo' }], extra_config: { [NS]: { type: 'string', pattern: '(?i)^abc\\z' } } },
    { endpoint: '/email', method: 'POST', backend: [{ url_pattern: '/echo' }], extra_config: { [NS]: { type: 'object', properties: { mail: { type: 'string', format: 'email' } } } } },
    { endpoint: '/list', method: 'POST', backend: [{ url_pattern: '/echo' }], extra_config: { [NS]: { type: 'array', items: { type: 'number' } } } },
    {
      endpoint: '/tree',
      method: 'POST',
      backend: [{ url_pattern: '/echo' }],
      extra_config: { [NS]: { $ref: '#/definitions/node', definitions: { node: { type: 'array', items: { $ref: '#/definitions/node' } } } } },
    },
  ];
  before(async () => {
    be = await startBackend((req, res) => json(res, { body: req.body }));
    plain = await startGateway({ host: [be.url], endpoints: endpoints() });
    verbose = await startGateway({ host: [be.url], extra_config: { router: { return_error_msg: true } }, endpoints: endpoints() });
  });
  after(async () => {
    await plain.close();
    await verbose.close();
    await be.close();
  });

  const post = (gw: TestGateway, path: string, body?: string, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
    request(gw.url, path, { method: 'POST', body, headers });

  it('a valid body reaches the backend untouched', async () => {
    const body = '{"number": 12, "street_name": "Main", "street_type": "Avenue"}';
    const r = await post(plain, '/address', body);
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json().body, body);
  });

  it('an invalid, empty, missing or non-JSON body: 400 with an empty body, no backend call', async () => {
    const calls = be.requests.length;
    for (const body of ['{"invalid": true}', '', undefined, '{"number": 1,', 'not json', '{} trailing']) {
      const r = await post(plain, '/address', body);
      assert.equal(r.status, 400, `body ${JSON.stringify(body)}`);
      assert.equal(r.body, '');
      assert.equal(r.headers['x-portico-completed'], 'false');
    }
    assert.equal(be.requests.length, calls, 'no backend was called');
  });

  it('with return_error_msg: KrakenD\'s "- field: description" lines, as text/plain', async () => {
    let r = await post(verbose, '/address', '{"invalid": true}');
    assert.equal(r.status, 400);
    assert.equal(r.headers['content-type'], 'text/plain; charset=utf-8');
    // The text of KrakenD's documentation for this schema and body.
    assert.equal(r.body, '- (root): number is required\n- (root): street_name is required\n- (root): street_type is required');
    r = await post(verbose, '/address', '{"number": "12", "street_name": "Main", "street_type": "Road"}');
    assert.equal(r.body, '- number: Invalid type. Expected: number, given: string\n- street_type: street_type must be one of the following: "Street", "Avenue", "Boulevard"');
    r = await post(verbose, '/email', '{"mail": "not an address"}');
    assert.equal(r.body, "- mail: Does not match format 'email'");
    r = await post(verbose, '/list', '[1, "a", 2, "b"]');
    assert.equal(r.body, '- 1: Invalid type. Expected: number, given: string\n- 3: Invalid type. Expected: number, given: string');
    // KrakenD's observable text for a missing body too: Go gives it an empty body, which does not decode.
    assert.equal((await post(verbose, '/address', '')).body, 'could not validate a malformed body');
    assert.equal((await post(verbose, '/address')).body, 'could not validate a malformed body');
    assert.equal((await post(verbose, '/address', '{"number": 1,')).body, 'could not validate a malformed body');
  });

  it('lists at most 100 errors', async () => {
    const r = await post(verbose, '/list', JSON.stringify(Array.from({ length: 150 }, () => 'x')));
    assert.equal(r.status, 400);
    const lines = r.body.split('\n');
    assert.equal(lines.length, MAX_ERROR_LINES + 1);
    assert.equal(lines.at(-1), '- (root): 50 more errors not shown');
  });

  it('each draft is read by its own rules, selected by $schema', async () => {
    const status = async (path: string, body: unknown) => (await post(plain, path, JSON.stringify(body))).status;
    assert.equal(await status('/d4', 5), 400);
    assert.equal(await status('/d4', 5.5), 200);
    assert.equal(await status('/d6', 5), 400);
    assert.equal(await status('/d6', 6), 200);
    assert.equal(await status('/d7', { kind: 'card' }), 400);
    assert.equal(await status('/d7', { kind: 'card', cvv: 123 }), 200);
    assert.equal(await status('/d7', { kind: 'cash' }), 200);
    assert.equal(await status('/d2019', { card: 1 }), 400);
    assert.equal(await status('/d2019', { card: 1, cvv: 2 }), 200);
    assert.equal(await status('/d2019-as-07', { card: 1 }), 200, 'draft-07 does not know dependentRequired');
    assert.equal(await status('/d2020', ['a']), 200);
    assert.equal(await status('/d2020', [1]), 400);
    assert.equal(await status('/d2020', ['a', 'b']), 400);
  });

  it('patterns run with RE2 meaning: (?i) and \\z', async () => {
    const status = async (body: unknown) => (await post(plain, '/re2', JSON.stringify(body))).status;
    assert.equal(await status('ABC'), 200);
    assert.equal(await status('abc'), 200);
    assert.equal(await status('abc\n'), 400, '\\z is the very end, unlike $');
    assert.equal(await status('abd'), 400);
  });

  it('a body nested deeper than the stack allows is a 400, and the gateway goes on serving', async () => {
    const depth = 200_000;
    const r = await post(plain, '/tree', '['.repeat(depth) + ']'.repeat(depth));
    assert.equal(r.status, 400);
    assert.equal((await post(plain, '/tree', '[[],[[]]]')).status, 200);
  });

  it('refusals are logged as policy refusals with a stable code', async () => {
    const { records } = await logsDuring(async () => {
      await post(plain, '/address', '{}');
      await post(plain, '/address', 'nope');
    });
    const codes = records.filter((r) => r.namespace === NS).map((r) => r.code);
    assert.deepEqual(codes, [JSON_SCHEMA_CODES.invalid, JSON_SCHEMA_CODES.malformed]);
  });

  it('a reload that keeps the schema keeps its compiled validator; a changed one is compiled anew', async () => {
    const keys = () => plain.state.keys().filter((k) => k.startsWith(`${NS}\u0000`) && k.includes('street_type'));
    const validator = (key: string) => {
      const scope = plain.state.scope();
      const v = scope.get(key, () => assert.fail(`no entry ${key}`));
      void scope.release();
      return v;
    };
    const [key] = keys();
    assert.equal(keys().length, 1);
    const compiled = validator(key!);
    await plain.reload({ host: [be.url], endpoints: endpoints() });
    assert.deepEqual(keys(), [key]);
    assert.equal(validator(key!), compiled, 'the same compiled validator');
    const changed = endpoints();
    changed[0] = { ...changed[0]!, extra_config: { [NS]: { ...ADDRESS, required: ['number'] } } };
    await plain.reload({ host: [be.url], endpoints: changed });
    // The retiring plans release their entries once idle.
    const deadline = performance.now() + 5000;
    while (keys().includes(key!) && performance.now() < deadline) await new Promise((r) => setImmediate(r));
    assert.equal(keys().length, 1);
    assert.notEqual(keys()[0], key);
    assert.equal((await post(plain, '/address', '{"number": 1}')).status, 200);
  });
});
