// OpenAPI -> configuration, in process: how paths, methods, parameters, servers,
// security and request schemas map, what is left out and why, and where the
// problems of a document are reported. The generated configurations must load.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IssueCollector } from '../../src/config/issues.ts';
import { formatIssue, loadConfigDocument } from '../../src/config/load.ts';
import { parseConfigText } from '../../src/config/parse.ts';
import { importOpenApi, type ImportOptions } from '../../src/openapi/import.ts';
import { readOpenApi } from '../../src/openapi/spec.ts';

function imp(text: string, opts: ImportOptions = {}, file = 'spec.yaml') {
  const parsed = parseConfigText(text, file, undefined, { keepCommentKeys: true, expected: 'an OpenAPI document' });
  if (!parsed.ok) return { config: undefined, errors: [formatIssue(parsed.issue)], warnings: [] as string[] };
  const c = new IssueCollector(file, parsed.source.locate);
  const doc = readOpenApi(parsed.source.value, c);
  const built = doc ? importOpenApi(doc, opts, c) : undefined;
  const config = c.errors.length === 0 ? built : undefined;
  if (config) {
    const loaded = loadConfigDocument(config, 'generated', { env: {} });
    assert.deepEqual(loaded.errors.map(formatIssue), [], 'the generated configuration loads');
  }
  const inFileOrder = (l: typeof c.errors) => [...l].sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0)).map(formatIssue);
  return { config: config as any, errors: inFileOrder(c.errors), warnings: inFileOrder(c.warnings) };
}

const spec = (paths: string, extra = '') => `openapi: 3.0.3
info: { title: T, version: "1" }
servers: [{ url: "http://api.internal:8080/base" }]
${extra}
paths:
${paths}`;

describe('import openapi: paths and methods', () => {
  it('whole-segment parameters map as they are; invalid names are renamed; mixed segments become one parameter', () => {
    const r = imp(
      spec(`  /users/{user.id}/files/{name}.{ext}:
    get:
      parameters:
        - { name: user.id, in: path, required: true }
        - { name: name, in: path, required: true }
        - { name: ext, in: path, required: true }
      responses: {}
  /a/{id}:
    get: { responses: {} }`),
    );
    assert.deepEqual(r.errors, []);
    assert.deepEqual(
      r.config.endpoints.map((e: any) => [e.endpoint, e.backend[0].url_pattern]),
      [
        ['/users/{user_id}/files/{name_ext}', '/base/users/{user_id}/files/{name_ext}'],
        ['/a/{id}', '/base/a/{id}'],
      ],
    );
    assert.equal(r.warnings.length, 2, r.warnings.join('\n'));
    assert.match(r.warnings[0]!, /^spec\.yaml:\d+:\d+ warning \$\.paths\["\/users\/\{user\.id\}\/files\/\{name\}\.\{ext\}"\]: expected parameters that fill a whole path segment.*routed as one parameter/);
    assert.match(r.warnings[1]!, /\$\.paths\["\/a\/\{id\}"\]\.get: expected a parameter .*"in": "path".*found none for \{id\}/);
  });

  it('HEAD, OPTIONS and TRACE, forbidden characters, reserved paths and a second operation on one route are left out with a warning', () => {
    const r = imp(
      spec(`  /items/{a}:
    get: { responses: {} }
    head: { responses: {} }
    options: { responses: {} }
  /items/{b}:
    get: { responses: {} }
    delete: { responses: {} }
  /search*:
    get: { responses: {} }
  /__health:
    get: { responses: {} }`),
    );
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.config.endpoints.map((e: any) => `${e.method} ${e.endpoint}`), ['GET /items/{a}', 'DELETE /items/{b}']);
    const text = r.warnings.join('\n');
    assert.match(text, /\.head: expected GET, POST, PUT, PATCH or DELETE .*HEAD: HEAD \/items\/\{a\} is left out/);
    assert.match(text, /\.options: .*OPTIONS \/items\/\{a\} is left out/);
    assert.match(text, /\["\/items\/\{b\}"\]\.get: expected a route no other operation takes .*GET \/items\/\{b\}, the same route as \$\.paths\["\/items\/\{a\}"\]\.get: left out/);
    assert.match(text, /\["\/search\*"\]: expected a path without "\?", "&", "%" or "\*"/);
    assert.match(text, /\["\/__health"\]: expected a path outside \/__health/);
  });
});

describe('import openapi: servers and hosts', () => {
  it('server variables take their defaults; an operation server is its backend host; --host keeps the base path unless it has its own', () => {
    const text = `openapi: 3.0.3
info: { title: T, version: "1" }
servers:
  - url: "{scheme}://{env}.api.example.com:{port}/v{major}"
    variables:
      scheme: { default: https, enum: [https, http] }
      env: { default: staging }
      port: { default: "8443" }
      major: { default: "2" }
paths:
  /a:
    get: { responses: {} }
  /b:
    servers: [{ url: "http://b.internal/b-api/" }]
    get: { responses: {} }
`;
    const r = imp(text);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.config.host, ['https://staging.api.example.com:8443']);
    assert.deepEqual(r.config.endpoints[0].backend, [{ url_pattern: '/v2/a', encoding: 'no-op' }]);
    assert.deepEqual(r.config.endpoints[1].backend, [{ url_pattern: '/b-api/b', encoding: 'no-op', host: ['http://b.internal'] }]);
    const flagged = imp(text, { host: 'http://127.0.0.1:9000' });
    assert.deepEqual(flagged.config.host, ['http://127.0.0.1:9000']);
    assert.equal(flagged.config.endpoints[0].backend[0].url_pattern, '/v2/a');
    assert.equal(flagged.config.endpoints[1].backend[0].url_pattern, '/b-api/b');
    assert.equal(flagged.config.endpoints[1].backend[0].host, undefined, 'one host for every backend');
    assert.equal(imp(text, { host: 'localhost:9000/other' }).config.endpoints[0].backend[0].url_pattern, '/other/a');
  });

  it('a relative server needs --host, reported at the server URL; without servers, at the operation', () => {
    const relative = `openapi: 3.1.0
info: { title: T, version: "1" }
servers:
  - url: /api
paths:
  /a:
    get: { responses: {} }
`;
    const r = imp(relative);
    assert.deepEqual(r.errors, ['spec.yaml:4:10 error $.servers[0].url: expected a server URL that names a host, such as "https://api.example.com/v1", or --host URL, found "/api"']);
    assert.equal(imp(relative, { host: 'http://127.0.0.1:1' }).config.endpoints[0].backend[0].url_pattern, '/api/a');
    const none = imp(relative.replace('servers:\n  - url: /api\n', ''));
    assert.match(none.errors[0]!, /^spec\.yaml:5:10 error \$\.paths\["\/a"\]\.get: expected a backend host: --host URL, or "servers" in the document, found no server for GET \/a$/);
    assert.match(imp(relative, { host: 'ftp://x' }).errors[0]!, /error \$: expected a --host such as .*the scheme ftp is not http or https, found "ftp:\/\/x"/);
  });
});

describe('import openapi: parameters and credentials', () => {
  it('query parameters -> input_query_strings; header and cookie parameters and security credentials -> input_headers (with Content-Type for a body)', () => {
    const r = imp(
      spec(
        `  /things:
    parameters:
      - { name: page, in: query }
      - { name: X-Trace, in: header }
    post:
      security: [{ key: [] }, { bearer: [] }]
      parameters:
        - { name: page, in: query, description: overrides the path-level one }
        - { name: sort, in: query }
        - { name: sid, in: cookie }
      requestBody: { content: { application/json: { schema: { type: object } } } }
      responses: {}
    get:
      security: [{ qkey: [] }]
      responses: {}
    delete:
      security: []
      responses: {}`,
        `security: [{ key: [] }]
components:
  securitySchemes:
    key: { type: apiKey, in: header, name: X-Key }
    qkey: { type: apiKey, in: query, name: api_key }
    bearer: { type: http, scheme: bearer }`,
      ),
    );
    assert.deepEqual(r.errors, []);
    const [post, get, del] = r.config.endpoints;
    assert.deepEqual(post.input_query_strings, ['page', 'sort']);
    assert.deepEqual(post.input_headers, ['Content-Type', 'X-Trace', 'Cookie', 'X-Key', 'Authorization']);
    assert.deepEqual(get.input_query_strings, ['page', 'api_key']);
    assert.deepEqual(get.input_headers, ['X-Trace']);
    assert.deepEqual(del.input_headers, ['X-Trace'], 'security: [] sends no credential');
  });
});

describe('import openapi: request body schemas (--validate)', () => {
  it('3.1: $refs into components become $defs; draft 2020-12; a pattern RE2 cannot run is dropped with a warning', () => {
    const r = imp(
      `openapi: 3.1.0
info: { title: T, version: "1" }
servers: [{ url: "http://x" }]
paths:
  /n:
    post:
      requestBody:
        required: true
        content:
          application/merge-patch+json:
            schema: { $ref: "#/components/schemas/Note" }
      responses: {}
components:
  schemas:
    Note:
      type: object
      required: [id, text]
      properties:
        id: { type: integer, readOnly: true }
        text: { type: string, pattern: "^(?=.*[a-z]).+$" }
        author: { $ref: "#/components/schemas/Person" }
    Person:
      type: [object, "null"]
      properties: { name: { type: string } }
`,
      { validate: true },
    );
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.config.endpoints[0].extra_config['validation/json-schema'], {
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      allOf: [{ $ref: '#/$defs/Note' }],
      $defs: {
        Note: {
          type: 'object',
          required: ['text'],
          properties: { id: { type: 'integer', readOnly: true }, text: { type: 'string' }, author: { $ref: '#/$defs/Person' } },
        },
        Person: { type: ['object', 'null'], properties: { name: { type: 'string' } } },
      },
    });
    assert.match(r.warnings.join('\n'), /\$\.components\.schemas\.Note\.properties\.text\.pattern: expected a pattern in Go RE2 syntax.*left out of the validation/);
  });

  it('a component that refers to itself is copied once; a YAML alias inside its own anchor is an error at its place', () => {
    const text = (schema: string) => `openapi: 3.0.3
info: { title: T, version: "1" }
servers: [{ url: "http://x" }]
paths:
  /tree:
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema: ${schema}
      responses: {}
components:
  schemas:
    Node:
      type: object
      properties:
        children: { type: array, items: { $ref: "#/components/schemas/Node" } }
`;
    const r = imp(text('{ $ref: "#/components/schemas/Node" }'), { validate: true });
    assert.deepEqual(r.errors, []);
    const schema = r.config.endpoints[0].extra_config['validation/json-schema'];
    assert.deepEqual(Object.keys(schema.definitions), ['Node']);
    assert.deepEqual(schema.definitions.Node.properties.children.items, { $ref: '#/definitions/Node' });
    const alias = imp(text('&n { type: object, properties: { next: *n } }'), { validate: true });
    assert.deepEqual(alias.errors, ['spec.yaml:11:60 error $: expected YAML whose aliases do not contain themselves, found a recursive alias (an *alias used inside its own &anchor)']);
  });

  it('optional bodies and bodies without JSON are not validated, with a warning; without --validate nothing is', () => {
    const paths = `  /up:
    post:
      requestBody: { required: true, content: { multipart/form-data: { schema: { type: object } } } }
      responses: {}
  /opt:
    post:
      requestBody: { content: { application/json: { schema: { type: object, required: [a] } } } }
      responses: {}`;
    const r = imp(spec(paths), { validate: true });
    assert.deepEqual(r.errors, []);
    assert.ok(r.config.endpoints.every((e: any) => e.extra_config === undefined));
    assert.match(r.warnings.join('\n'), /POST \/up: multipart\/form-data; not validated/);
    assert.match(r.warnings.join('\n'), /"required": true on request bodies to validate .*not validated: POST \/opt/);
    assert.ok(imp(spec(paths)).config.endpoints.every((e: any) => e.extra_config === undefined));
  });
});

describe('import openapi: problems of the document, with their place', () => {
  it('structure errors are listed all at once, each with line:column and JSON path', () => {
    const r = imp(`openapi: "3.0.3"
info:
  title: Broken
  version: 1.0
servers: [{ url: "http://orders.internal" }]
paths:
  /orders/{orderId}:
    get:
      operationId: getOrder
      parameters:
        - name: orderId
          in: path
        - name: expand
          in: body
        - $ref: "#/components/parameters/Nope"
        - $ref: "shared.yaml#/Limit"
      responses: {}
    put:
      operationId: getOrder
      requestBody:
        content: [application/json]
      responses: {}
  orders:
    get: { responses: {} }
`);
    assert.equal(r.config, undefined);
    assert.deepEqual(r.errors, [
      'spec.yaml:4:12 error $.info.version: expected the version of the API document, as a string such as "1.0.0" (quoted in YAML), found 1 (number)',
      'spec.yaml:11:11 error $.paths["/orders/{orderId}"].get.parameters[0].required: expected "required": true: a path parameter is always required, found nothing (the key is missing)',
      'spec.yaml:14:15 error $.paths["/orders/{orderId}"].get.parameters[1].in: expected "query", "header", "path" or "cookie", found "body" (string)',
      'spec.yaml:15:17 error $.paths["/orders/{orderId}"].get.parameters[2]["$ref"]: expected a reference to something this document declares, found "#/components/parameters/Nope", which leads nowhere',
      'spec.yaml:16:17 error $.paths["/orders/{orderId}"].get.parameters[3]["$ref"]: expected a reference inside this document, such as "#/components/schemas/Pet" (other files and URLs are not fetched), found "shared.yaml#/Limit" (string)',
      'spec.yaml:19:20 error $.paths["/orders/{orderId}"].put.operationId: expected an operationId no other operation uses, found "getOrder", already used at $.paths["/orders/{orderId}"].get',
      'spec.yaml:21:18 error $.paths["/orders/{orderId}"].put.requestBody.content: expected an object of media types, such as {"application/json": {"schema": {...}}}, found ["application/json"] (array)',
      'spec.yaml:23:3 error $.paths.orders: expected a path starting with "/", such as "/pets/{petId}", found "orders"',
    ]);
  });

  it('JSON documents are located too; Swagger 2.0 and other versions are named; a syntax error has its place', () => {
    const json = '{\n  "openapi": "3.0.0",\n  "info": {"title": "t", "version": "1"}, "servers": [{"url": "http://x"}],\n  "paths": {"/a": {"get": {"parameters": {"name": "x"}}}}\n}';
    assert.deepEqual(imp(json, {}, 'spec.json').errors, ['spec.json:4:42 error $.paths["/a"].get.parameters: expected an array of parameter objects, found {"name":"x"} (object)']);
    assert.match(imp('{"swagger": "2.0", "info": {}, "paths": {}}', {}, 's.json').errors[0]!, /^s\.json:1:13 error \$\.swagger: expected an OpenAPI 3\.0 or 3\.1 document .*Swagger 2\.0 is not read/);
    assert.match(imp('openapi: 3.1\ninfo: {title: t, version: "1"}\npaths: {}\n').errors[0]!, /^spec\.yaml:1:10 error \$\.openapi: expected an OpenAPI version 3\.0\.x or 3\.1\.x, as a string .*found 3\.1 \(number\)/);
    assert.match(imp('openapi: 3.2.0\ninfo: {title: t, version: "1"}\npaths: {}\n').errors[0]!, /found "3\.2\.0" \(string\)/);
    assert.match(imp('openapi: "3.0.0"\ninfo: [\n').errors[0]!, /^spec\.yaml:3:1 error \$: expected valid YAML/);
  });
});
