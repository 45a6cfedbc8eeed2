// backend/graphql: the backend call carries a GraphQL request built from the
// configuration and the client's request (KrakenD's rules), over HTTP.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfigText } from '../../src/config/load.ts';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';
import { get, request } from '../helpers/http.ts';
import { tempDir } from '../helpers/lifecycle-support.ts';

const USER_QUERY = 'query user($id: ID!, $limit: Int) { user(id: $id) { id name orders(limit: $limit) { id } } }';
const CREATE = 'mutation create($name: String!, $role: String) { createUser(name: $name, role: $role) { id } }';

describe('backend/graphql', () => {
  let gql: TestBackend;
  let gw: TestGateway;
  let queryFile: string;

  before(async () => {
    gql = await startBackend((req, res) => {
      // A GraphQL server: echoes what it was asked under data.
      const url = new URL(req.url!, 'http://x');
      const asked = req.method === 'GET' ? Object.fromEntries(url.searchParams) : JSON.parse(req.body);
      json(res, { data: { asked } });
    });
    queryFile = join(tempDir('portico-graphql-'), 'orders.graphql');
    writeFileSync(queryFile, 'query orders { orders { id } }');
    gw = await startGateway({
      host: [gql.url],
      endpoints: [
        {
          endpoint: '/users/{id}',
          backend: [{ url_pattern: '/graphql', target: 'data', extra_config: { 'backend/graphql': { type: 'query', query: USER_QUERY, variables: { id: '{id}', limit: 5 } } } }],
        },
        {
          endpoint: '/get/{id}',
          input_query_strings: ['trace'],
          backend: [
            { url_pattern: '/graphql', target: 'data', extra_config: { 'backend/graphql': { type: 'query', method: 'get', query: USER_QUERY, operationName: 'user', variables: { id: '{id}' } } } },
          ],
        },
        {
          endpoint: '/users',
          method: 'POST',
          backend: [{ url_pattern: '/graphql', target: 'data', extra_config: { 'backend/graphql': { type: 'mutation', query: CREATE, variables: { role: 'user' } } } }],
        },
        { endpoint: '/orders', backend: [{ url_pattern: '/graphql', target: 'data', extra_config: { 'backend/graphql': { type: 'query', query_path: queryFile } } }] },
      ],
    });
  });

  after(async () => {
    await gw.close();
    await gql.close();
  });

  it('query: POSTs {query, variables} with "{param}" variables taken from the endpoint parameters', async () => {
    const r = await get(gw.url, '/users/7');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { asked: { query: USER_QUERY, variables: { id: '7', limit: 5 } } });
    const sent = gql.requests.at(-1)!;
    assert.equal(sent.method, 'POST', 'GraphQL over POST whatever the endpoint method');
    assert.equal(sent.headers['content-type'], 'application/json');
    assert.equal(sent.url, '/graphql');
  });

  it('query with method GET: query, operationName and variables in the query string, next to the forwarded ones', async () => {
    const r = await get(gw.url, '/get/42?trace=1&dropped=2');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { asked: { trace: '1', operationName: 'user', query: USER_QUERY, variables: '{"id":"42"}' } });
    const sent = gql.requests.at(-1)!;
    assert.equal(sent.method, 'GET');
    assert.equal(sent.body, '');
  });

  it("mutation: the client's JSON body is the variables, the configured ones fill the gaps", async () => {
    let r = await request(gw.url, '/users', { method: 'POST', body: '{"name":"ada"}', headers: { 'content-type': 'application/json' } });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { asked: { query: CREATE, variables: { name: 'ada', role: 'user' } } });
    r = await request(gw.url, '/users', { method: 'POST', body: '{"name":"bob","role":"admin"}', headers: { 'content-type': 'application/json' } });
    assert.deepEqual(r.json(), { asked: { query: CREATE, variables: { name: 'bob', role: 'admin' } } });
  });

  it('mutation without a JSON object body: 400, the GraphQL server is not called', async () => {
    for (const body of ['', 'not json', '[1,2]', 'null']) {
      const before = gql.requests.length;
      const r = await request(gw.url, '/users', { method: 'POST', body, headers: { 'content-type': 'application/json' } });
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(gql.requests.length, before);
    }
  });

  it('query_path: the query is read from a file when the configuration is loaded', async () => {
    const r = await get(gw.url, '/orders');
    assert.deepEqual(r.json(), { asked: { query: 'query orders { orders { id } }' } });
  });

  it('refuses an unusable configuration with its place', () => {
    const check = (ns: unknown, endpoint = '/x/{id}') =>
      loadConfigText(JSON.stringify({ version: 3, endpoints: [{ endpoint, backend: [{ host: ['http://a'], url_pattern: '/', extra_config: { 'backend/graphql': ns } }] }] }), 'c.json', { env: {} });
    const at = '$.endpoints[0].backend[0].extra_config["backend/graphql"]';
    const paths = (r: ReturnType<typeof check>) => r.errors.map((e) => e.path);
    assert.ok(paths(check({ query: '{ a }' })).includes(`${at}.type`));
    assert.ok(paths(check({ type: 'subscription', query: '{ a }' })).includes(`${at}.type`));
    assert.ok(paths(check({ type: 'query' })).includes(`${at}.query`));
    assert.ok(paths(check({ type: 'query', query: '{ a }', method: 'PUT' })).includes(`${at}.method`));
    assert.ok(paths(check({ type: 'query', query_path: '/nonexistent/q.graphql' })).includes(`${at}.query_path`));
    const warned = check({ type: 'query', query: '{ a }', variables: { v: '{nope}' } });
    assert.deepEqual(warned.errors, []);
    assert.ok(warned.warnings.some((w) => w.path === `${at}.variables.v`), 'a placeholder naming no endpoint parameter is a warning');
  });
});
