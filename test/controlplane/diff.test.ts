// The configuration diff (GET /v1/configs/{a}/diff/{b}, `ctl diff`, `portico diff`), in process:
// pairing of endpoints and backends, namespaces at each level, secrets never shown.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderConfigDiff } from '../../src/controlplane/ctl-render.ts';
import { diffConfigs } from '../../src/controlplane/diff.ts';

const be = (url_pattern: string, extra: object = {}) => ({ host: ['http://h'], url_pattern, ...extra });
const doc = (endpoints: object[], extra: object = {}) => ({ version: 3, ...extra, endpoints });

describe('diffConfigs: pairing', () => {
  it('backends are paired by host and url_pattern wherever they are; a moved order is reported', () => {
    const a = doc([{ endpoint: '/x', backend: [be('/a'), be('/b'), be('/c')] }]);
    const b = doc([{ endpoint: '/x', backend: [be('/c'), be('/a'), be('/b', { group: 'g' })] }]);
    const c = diffConfigs(a, b).endpoints.changed[0]!;
    assert.equal(c.backends_reordered, true);
    assert.deepEqual(c.backends.map((x) => [x.index, x.old_index, x.url_pattern, x.change]), [[2, 1, '/b', 'changed']]);
    assert.deepEqual(c.backends[0]!.fields, [{ path: 'group', change: 'added', to: 'g' }]);
  });

  it('a backend whose url_pattern changed on the same host is "changed"; one sharing nothing is removed and added', () => {
    const a = doc([{ endpoint: '/x', backend: [be('/a'), { host: ['http://other'], url_pattern: '/o' }] }]);
    const b = doc([{ endpoint: '/x', backend: [be('/a2'), { host: ['http://new'], url_pattern: '/n' }] }]);
    const c = diffConfigs(a, b).endpoints.changed[0]!;
    assert.deepEqual(
      c.backends.map((x) => [x.index, x.change, x.url_pattern]),
      [[0, 'changed', '/a2'], [1, 'added', '/n'], [1, 'removed', '/o']],
    );
    assert.equal(c.backends_reordered, false);
  });

  it('an endpoint whose parameters were renamed is the same route, changed', () => {
    const d = diffConfigs(doc([{ endpoint: '/u/{id}', backend: [be('/u/{id}')] }]), doc([{ endpoint: '/u/{user}', backend: [be('/u/{user}')] }]));
    assert.deepEqual(d.endpoints.added, []);
    assert.deepEqual(d.endpoints.removed, []);
    assert.equal(d.endpoints.changed[0]!.endpoint, 'GET /u/{user}');
    assert.deepEqual(d.endpoints.changed[0]!.fields, [{ path: 'endpoint', change: 'changed', from: '/u/{id}', to: '/u/{user}' }]);
  });

  it('service defaults say how many endpoints inherit them; namespaces at every level', () => {
    const a = doc(
      [
        { endpoint: '/a', backend: [{ url_pattern: '/a' }] },
        { endpoint: '/b', timeout: '1s', backend: [be('/b', { extra_config: { 'qos/circuit-breaker': { interval: 60, timeout: 10, max_errors: 1 } } })] },
      ],
      { timeout: '2s', host: ['http://x'], extra_config: { 'security/cors': { allow_origins: ['*'] } } },
    );
    const b = doc(
      [
        { endpoint: '/a', backend: [{ url_pattern: '/a' }], extra_config: { 'qos/ratelimit/router': { max_rate: 5 } } },
        { endpoint: '/b', timeout: '1s', backend: [be('/b', { extra_config: { 'qos/circuit-breaker': { interval: 60, timeout: 10, max_errors: 3 } } })] },
      ],
      { timeout: '4s', host: ['http://y'], extra_config: { 'security/cors': { allow_origins: ['https://a.example'] } } },
    );
    const d = diffConfigs(a, b);
    assert.deepEqual(d.service.fields, [
      { path: 'host', change: 'changed', from: ['http://x'], to: ['http://y'], inherited_by: 1 },
      { path: 'timeout', change: 'changed', from: '2s', to: '4s', inherited_by: 1 },
    ]);
    assert.deepEqual(d.service.namespaces.changed, [{ namespace: 'security/cors', fields: [{ path: 'allow_origins', change: 'changed', from: ['*'], to: ['https://a.example'] }] }]);
    assert.deepEqual(d.endpoints.changed[0]!.namespaces, { added: ['qos/ratelimit/router'], removed: [], changed: [] });
    assert.deepEqual(d.endpoints.changed[1]!.backends[0]!.namespaces!.changed, [
      { namespace: 'qos/circuit-breaker', fields: [{ path: 'max_errors', change: 'changed', from: 1, to: 3 }] },
    ]);
  });
});

describe('diffConfigs: secrets are never shown', () => {
  const SECRETS = ['key-one-old', 'key-one-new', '$2y$10$old', '$2y$10$new', 'cs-old', 'cs-new', 'Bearer t-old', 'Bearer t-new', 'pw-old', 'pw-new', 'redis-old', 'redis-new', 'base64key://old', 'base64key://new', 'ck-old', 'ck-new'];
  const side = (v: 'old' | 'new') =>
    doc(
      [
        {
          endpoint: '/x',
          extra_config: {
            'auth/basic': { users: { ops: `$2y$10$${v}` } },
            'auth/validator': { alg: 'HS256', secret_url: `base64key://${v}`, cypher_key: `ck-${v}` },
          },
          backend: [
            {
              host: [`amqp://user:pw-${v}@broker:5672`],
              url_pattern: '/x',
              extra_config: {
                'auth/client-credentials': { client_id: 'id', client_secret: `cs-${v}`, token_url: 'https://idp/token' },
                'modifier/martian': { 'fifo.Group': { scope: ['request'], modifiers: [{ 'header.Modifier': { scope: ['request'], name: 'Authorization', value: `Bearer t-${v}` } }] } },
              },
            },
          ],
        },
      ],
      { extra_config: { 'auth/api-keys': { keys: [{ key: `key-one-${v}`, roles: ['a'] }] }, redis: { connection_pool: { address: 'r:6379', password: `redis-${v}` } } } },
    );

  it('changed secrets of every kind say "changed" without values, in JSON and in the readable text', () => {
    const d = diffConfigs(side('old'), side('new'));
    const json = JSON.stringify(d);
    const text = renderConfigDiff('a -> b', d);
    for (const s of SECRETS) {
      assert.ok(!json.includes(s), `${s} in the JSON diff`);
      assert.ok(!text.includes(s), `${s} in the readable diff`);
    }
    const secretPaths = (fields: { path: string; secret?: true }[]) => fields.filter((f) => f.secret).map((f) => f.path);
    assert.deepEqual(secretPaths(d.service.namespaces.changed.find((n) => n.namespace === 'auth/api-keys')!.fields), ['keys[0].key']);
    assert.deepEqual(secretPaths(d.service.namespaces.changed.find((n) => n.namespace === 'redis')!.fields), ['connection_pool.password']);
    const ep = d.endpoints.changed[0]!;
    assert.deepEqual(secretPaths(ep.namespaces.changed.find((n) => n.namespace === 'auth/basic')!.fields), ['users.ops']);
    assert.deepEqual(secretPaths(ep.namespaces.changed.find((n) => n.namespace === 'auth/validator')!.fields), ['cypher_key', 'secret_url']);
    const backend = ep.backends[0]!;
    assert.deepEqual(backend.host, ['amqp://user:***@broker:5672']);
    assert.deepEqual(backend.fields, [{ path: 'host', change: 'changed', secret: true }]);
    assert.deepEqual(secretPaths(backend.namespaces!.changed.find((n) => n.namespace === 'auth/client-credentials')!.fields), ['client_secret']);
    assert.deepEqual(secretPaths(backend.namespaces!.changed.find((n) => n.namespace === 'modifier/martian')!.fields), ['["fifo.Group"].modifiers[0]["header.Modifier"].value']);
    assert.match(text, /~ client_secret: changed \(secret, not shown\)/);
  });

  it('secrets inside a value shown whole (a list that grew, a namespace value) are masked', () => {
    const a = doc([], { extra_config: { 'auth/api-keys': { keys: [{ key: 'key-one-old', roles: ['a'] }] } } });
    const b = doc([], { extra_config: { 'auth/api-keys': { keys: [{ key: 'key-one-old', roles: ['a'] }, { key: 'key-one-new', roles: ['b'] }] } } });
    const d = diffConfigs(a, b);
    assert.deepEqual(d.service.namespaces.changed[0]!.fields, [
      { path: 'keys', change: 'changed', from: [{ key: '***', roles: ['a'] }], to: [{ key: '***', roles: ['a'] }, { key: '***', roles: ['b'] }] },
    ]);
  });
});
