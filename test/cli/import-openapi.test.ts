// `portico import openapi` as a real process: the pet shop spec
// (test/fixtures/openapi/pet-shop.yaml) becomes a configuration that `check`
// accepts and that serves, in front of a real backend playing the API.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { request } from '../helpers/http.ts';
import { runCli, startCli, type Running } from '../helpers/process.ts';

const SPEC = fileURLToPath(new URL('../fixtures/openapi/pet-shop.yaml', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'portico-import-'));

describe('portico import openapi', () => {
  let api: TestBackend;
  let gw: Running;
  let base: string;
  const calls = () => api.requests.length;

  before(async () => {
    // The pet shop API, under the spec's base path /api/v2.
    api = await startBackend((req, res) => {
      const url = new URL(req.url!, 'http://x');
      if (req.method === 'GET' && url.pathname === '/api/v2/pets') return json(res, [{ id: 1, name: 'Miso', species: 'cat' }]);
      if (req.method === 'GET' && url.pathname === '/api/v2/pets/7') return json(res, { id: 7, name: 'Rex', species: 'dog' }, 200, { 'x-api-version': '2.1' });
      if (req.method === 'POST' && url.pathname === '/api/v2/pets') return json(res, { id: 8, ...JSON.parse(req.body) }, 201);
      if (req.method === 'PUT' && url.pathname === '/api/v2/pets/7') return json(res, JSON.parse(req.body));
      if (req.method === 'DELETE' && url.pathname === '/api/v2/pets/7') return void res.writeHead(204).end();
      if (req.method === 'POST' && url.pathname === '/api/v2/owners/o1/orders') return json(res, { order: 1 }, 201);
      json(res, { title: 'no such pet' }, 404);
    });
  });
  after(async () => {
    if (gw) {
      gw.child.kill('SIGTERM');
      await gw.exited;
    }
    await api.close();
  });

  it('writes a configuration that check accepts (-o FILE), then serves it', async () => {
    const out = join(dir, 'pet-shop.json');
    const r = await runCli(['import', 'openapi', SPEC, '--host', api.url, '--validate', '-o', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /pet-shop\.json: 8 endpoints from .*pet-shop\.yaml/);
    const config = JSON.parse(readFileSync(out, 'utf8'));
    assert.deepEqual(config.host, [api.url]);
    assert.deepEqual(
      config.endpoints.map((e: any) => `${e.method} ${e.endpoint} -> ${e.backend[0].url_pattern}`),
      [
        'GET /pets -> /api/v2/pets',
        'POST /pets -> /api/v2/pets',
        'GET /pets/{petId} -> /api/v2/pets/{petId}',
        'PUT /pets/{petId} -> /api/v2/pets/{petId}',
        'DELETE /pets/{petId} -> /api/v2/pets/{petId}',
        'GET /owners/{ownerId}/orders -> /api/v2/owners/{ownerId}/orders',
        'POST /owners/{ownerId}/orders -> /api/v2/owners/{ownerId}/orders',
        'GET /store/inventory -> /api/v2/store/inventory',
      ],
    );

    const check = await runCli(['check', '-c', out]);
    assert.equal(check.code, 0, check.stderr);
    assert.equal(check.stdout, `OK: ${out} is a valid configuration (8 endpoints)\n`);
    assert.equal(check.stderr, '', 'no warning either');

    gw = await startCli(['run', '-c', out, '-p', '0']);
    base = `http://127.0.0.1:${gw.port}`;
  });

  it('the API answers through the gateway as it is: statuses, headers, bodies; declared parameters forwarded, others not', async () => {
    const list = await request(base, '/pets?limit=2&species=cat&species=dog&debug=1', { headers: { 'x-request-id': 'r-1', 'x-internal': 'no' } });
    assert.equal(list.status, 200);
    assert.deepEqual(list.json(), [{ id: 1, name: 'Miso', species: 'cat' }], 'an array answer passes untouched');
    const seen = api.requests.at(-1)!;
    assert.equal(seen.url, '/api/v2/pets?limit=2&species=cat&species=dog');
    assert.equal(seen.headers['x-request-id'], 'r-1');
    assert.equal(seen.headers['x-internal'], undefined);

    const one = await request(base, '/pets/7');
    assert.equal(one.status, 200);
    assert.equal(one.headers['x-api-version'], '2.1');
    assert.equal((await request(base, '/pets/9')).status, 404, "the API's own status");

    const gone = await request(base, '/pets/7', { method: 'DELETE', headers: { authorization: 'Bearer t' } });
    assert.equal(gone.status, 204);
    assert.equal(api.requests.at(-1)!.headers.authorization, 'Bearer t', 'the bearer scheme of the operation');
    assert.equal((await request(base, '/nowhere')).status, 404);
  });

  it('--validate: a body the spec accepts reaches the API; one it refuses gets 400 and never reaches it', async () => {
    const send = (method: string, path: string, body: unknown) =>
      request(base, path, { method, headers: { 'content-type': 'application/json', 'x-api-key': 'k-1' }, body: JSON.stringify(body) });
    const created = await send('POST', '/pets', { name: 'Tofu', species: 'rabbit', tags: [{ label: 'calm', colour: null }] });
    assert.equal(created.status, 201, created.body);
    assert.deepEqual(created.json(), { id: 8, name: 'Tofu', species: 'rabbit', tags: [{ label: 'calm', colour: null }] });
    assert.equal(api.requests.at(-1)!.headers['x-api-key'], 'k-1');
    assert.equal(api.requests.at(-1)!.headers['content-type'], 'application/json');

    const before = calls();
    for (const [method, path, body] of [
      ['POST', '/pets', { species: 'cat' }], // name is required
      ['POST', '/pets', { name: 'Smaug', species: 'dragon' }], // not in the enum
      ['POST', '/pets', { name: 'Chip', species: 'dog', chipCode: '12' }], // pattern
      ['POST', '/pets', { name: 'Tag', species: 'dog', tags: [{ colour: 'red' }] }], // a referenced component's required field
      ['PUT', '/pets/7', { name: 'Rex', species: 'dog' }], // status is required
      ['POST', '/owners/o1/orders', { petId: 7, quantity: 9 }], // maximum 5
    ] as const) {
      const r = await send(method, path, body);
      assert.equal(r.status, 400, `${method} ${path} ${JSON.stringify(body)}: ${r.status}`);
    }
    assert.equal((await request(base, '/pets', { method: 'POST', headers: { 'content-type': 'application/json' } })).status, 400, 'no body at all');
    assert.equal(calls(), before, 'no refused request reached the API');

    // A readOnly property is not required in a request; a nullable one takes null.
    assert.equal((await send('PUT', '/pets/7', { name: 'Rex', species: 'dog', status: 'reserved' })).status, 200);
    assert.equal((await send('POST', '/owners/o1/orders', { petId: 7, quantity: 2, note: null })).status, 201);
  });

  it('without --host, the first server with its variables; stdout JSON; YAML for -o *.yaml', async () => {
    const r = await runCli(['import', 'openapi', SPEC]);
    assert.equal(r.code, 0, r.stderr);
    const config = JSON.parse(r.stdout);
    assert.deepEqual(config.host, ['https://eu.pets.example.net']);
    assert.ok(config.endpoints.every((e: any) => e.extra_config === undefined), 'no validation without --validate');
    const yamlOut = join(dir, 'pet-shop.yaml');
    const y = await runCli(['import', 'openapi', SPEC, '--validate', '-o', yamlOut]);
    assert.equal(y.code, 0, y.stderr);
    const fromYaml = parseYaml(readFileSync(yamlOut, 'utf8'));
    assert.equal(fromYaml.endpoints[1].extra_config['validation/json-schema'].$schema, 'http://json-schema.org/draft-04/schema#');
    assert.equal((await runCli(['check', '-c', yamlOut])).code, 0);
  });

  it('an invalid document: every error with file, line:column and JSON path; exit 1; nothing written', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(
      bad,
      `openapi: 3.0.3
info:
  title: Broken shop
paths:
  /pets/{petId}:
    get:
      parameters:
        - name: petId
          in: path
          required: false
      requestBody:
        required: true
        content:
          application/json:
            schema: { $ref: "https://schemas.example.com/pet.json" }
      responses: {}
`,
    );
    const out = join(dir, 'never.json');
    const r = await runCli(['import', 'openapi', bad, '--validate', '--host', 'http://127.0.0.1:1', '-o', out]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.deepEqual(r.stderr.trim().split('\n'), [
      `${bad}:3:3 error $.info.version: expected the version of the API document, as a string such as "1.0.0" (quoted in YAML), found nothing (the key is missing)`,
      `${bad}:10:21 error $.paths["/pets/{petId}"].get.parameters[0].required: expected true: a path parameter is always required, found false (boolean)`,
      `${bad}:15:29 error $.paths["/pets/{petId}"].get.requestBody.content["application/json"].schema["$ref"]: expected a reference inside this document, such as "#/components/schemas/Pet" (other files and URLs are not fetched), found "https://schemas.example.com/pet.json" (string)`,
      `${bad}: 3 error(s)`,
    ]);
    assert.throws(() => readFileSync(out), /ENOENT/);
  });

  it('usage errors exit 2', async () => {
    assert.equal((await runCli(['import', 'swagger', SPEC])).code, 2);
    assert.equal((await runCli(['import', 'openapi'])).code, 2);
    const missing = await runCli(['import', 'openapi', join(dir, 'nope.yaml')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read .*nope\.yaml: ENOENT/);
  });
});
