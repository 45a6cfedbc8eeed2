// auth/api-keys: keys and roles at service level, `roles` per endpoint,
// header / query-string strategies, hashed key storage, role propagation,
// config errors, and hostile requests, through real HTTP.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { decodeDigest, fnv128, ROLE_REJECTION_STATUS } from '../../src/namespaces/auth-api-keys.ts';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { loadTestConfig, startGateway, type TestGateway } from '../helpers/gateway.ts';
import { get } from '../helpers/http.ts';
import { logsDuring } from '../helpers/log-lines.ts';
import { resetLogThrottle, setLogLevel } from '../../src/telemetry/log.ts';
import { errorAt, issueAt, load } from '../config/support.ts';

const ADMIN = '4d2c61e1-34c4-e96c-9456-15bd983c5019';
const USER = '58427514-be32-0b52-b7c6-d01fada30497';
/** Same as ADMIN but the last character. */
const NEAR_ADMIN = '4d2c61e1-34c4-e96c-9456-15bd983c501a';
const UNICODE = 'clé-ünïcødé-✓';

const NS = 'auth/api-keys';
const at = (...p: (string | number)[]) => `$.extra_config["auth/api-keys"]${p.map((x) => (typeof x === 'number' ? `[${x}]` : `.${x}`)).join('')}`;
const epAt = (i: number, ...p: string[]) => `$.endpoints[${i}].extra_config["auth/api-keys"]${p.map((x) => `.${x}`).join('')}`;

function serviceKeys(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    keys: [
      { key: ADMIN, roles: ['admin', 'user'], '@description': 'ACME Inc.' },
      { key: USER, roles: ['user'] },
      { key: UNICODE, roles: ['user'] },
    ],
    propagate_role: 'X-Krakend-Role',
    ...extra,
  };
}

/** A minimal valid config around one endpoint namespace value (for config checks). */
function configWith(service: unknown, endpoint: unknown = { roles: ['admin'] }): Record<string, unknown> {
  return {
    version: 3,
    host: ['http://backend:8080'],
    ...(service === undefined ? {} : { extra_config: { [NS]: service } }),
    endpoints: [{ endpoint: '/e', backend: [{ url_pattern: '/b' }], extra_config: { [NS]: endpoint } }],
  };
}

describe('auth/api-keys', () => {
  let backend: TestBackend;
  let gw: TestGateway;
  const endpoints = (host: string) => [
    { endpoint: '/admin', input_headers: ['*'], backend: [{ host: [host], url_pattern: '/admin' }], extra_config: { [NS]: { roles: ['admin'] } } },
    { endpoint: '/user', input_headers: ['*'], backend: [{ host: [host], url_pattern: '/user' }], extra_config: { [NS]: { roles: ['user', 'admin'] } } },
    { endpoint: '/any', backend: [{ host: [host], url_pattern: '/any' }], extra_config: { [NS]: { roles: [] } } },
    { endpoint: '/public', backend: [{ host: [host], url_pattern: '/public' }] },
    { endpoint: '/xkey', backend: [{ host: [host], url_pattern: '/xkey' }], extra_config: { [NS]: { roles: ['user'], identifier: 'X-Key' } } },
    { endpoint: '/query', backend: [{ host: [host], url_pattern: '/query' }], extra_config: { [NS]: { roles: ['user'], strategy: 'query_string', identifier: 'key' } } },
    { endpoint: '/query-inherit', backend: [{ host: [host], url_pattern: '/qi' }], extra_config: { [NS]: { roles: ['user'], strategy: 'query_string' } } },
  ];

  before(async () => {
    setLogLevel('warn'); // refusals are logged at info: keep the test output readable
    backend = await startBackend((req, res) => json(res, { path: req.url, role: req.headers['x-krakend-role'] ?? null }));
    gw = await startGateway({ extra_config: { [NS]: serviceKeys() }, endpoints: endpoints(backend.url) });
  });
  after(async () => {
    setLogLevel('info');
    resetLogThrottle();
    await gw.close();
    await backend.close();
  });

  const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

  /** Asserts a rejection: status, empty body, and no backend call. */
  async function refused(path: string, headers: Record<string, string> | undefined, status = 401): Promise<void> {
    const before = backend.requests.length;
    const r = await get(gw.url, path, headers);
    assert.equal(r.status, status, `${path} ${JSON.stringify(headers)}`);
    assert.equal(r.body, '');
    assert.equal(backend.requests.length, before, 'the backend must not be called');
  }

  it('a valid key with the role passes, and the matched role reaches the backend', async () => {
    const r = await get(gw.url, '/admin', bearer(ADMIN));
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { path: '/admin', role: 'admin' });
  });

  it('propagate_role sends the first of the key\'s roles the endpoint accepts', async () => {
    // ADMIN holds [admin, user]; /user accepts [user, admin]: the key's order decides.
    assert.equal((await get(gw.url, '/user', bearer(ADMIN))).json().role, 'admin');
    assert.equal((await get(gw.url, '/user', bearer(USER))).json().role, 'user');
  });

  it('a client cannot spoof the propagated role header', async () => {
    const r = await get(gw.url, '/user', { ...bearer(USER), 'x-krakend-role': 'admin' });
    assert.equal(r.json().role, 'user');
  });

  it('"roles": [] accepts any valid key and propagates ANY', async () => {
    assert.equal((await get(gw.url, '/any', bearer(USER))).json().role, 'ANY');
    await refused('/any', bearer(NEAR_ADMIN));
    await refused('/any', undefined);
  });

  it(`a valid key without any accepted role is refused with ${ROLE_REJECTION_STATUS} (KrakenD's documented status)`, async () => {
    await refused('/admin', bearer(USER), ROLE_REJECTION_STATUS);
  });

  it('an endpoint without auth/api-keys stays public', async () => {
    assert.equal((await get(gw.url, '/public')).status, 200);
  });

  it('hostile: missing header, empty key, unknown key, near-miss key, 8 KB key', async () => {
    await refused('/admin', undefined);
    await refused('/admin', { authorization: '' });
    await refused('/admin', { authorization: 'Bearer' });
    await refused('/admin', { authorization: 'Bearer    ' });
    await refused('/admin', bearer('nope'));
    await refused('/admin', bearer(NEAR_ADMIN));
    await refused('/admin', bearer(ADMIN.slice(0, -1)));
    await refused('/admin', bearer(ADMIN + 'x'));
    await refused('/admin', bearer('k'.repeat(8 * 1024)));
    await refused('/admin', bearer(ADMIN.toUpperCase()));
  });

  it('the Authorization header needs the Bearer scheme; its case does not matter (RFC 9110)', async () => {
    await refused('/admin', { authorization: ADMIN });
    await refused('/admin', { authorization: `Basic ${ADMIN}` });
    await refused('/admin', { authorization: `Bearer${ADMIN}` });
    for (const scheme of ['bearer', 'BEARER', 'bEaReR']) {
      assert.equal((await get(gw.url, '/admin', { authorization: `${scheme} ${ADMIN}` })).status, 200, scheme);
    }
  });

  it('strategy header: a key in the query string is ignored', async () => {
    await refused(`/admin?key=${ADMIN}`, undefined);
    await refused(`/admin?Authorization=${ADMIN}`, undefined);
    await refused(`/admin?Authorization=${encodeURIComponent(`Bearer ${ADMIN}`)}`, undefined);
  });

  it('identifier: a custom header carries the key as is, without a scheme', async () => {
    assert.equal((await get(gw.url, '/xkey', { 'x-key': USER })).status, 200);
    await refused('/xkey', { 'x-key': `Bearer ${USER}` });
    await refused('/xkey', bearer(USER));
    // a repeated header reaches the gateway as "a, b": never a key
    await refused('/xkey', { 'x-key': [USER, USER] } as unknown as Record<string, string>);
  });

  it('keys are compared as the bytes the client sent (non-ASCII keys)', async () => {
    const r = await get(gw.url, '/xkey', { 'x-key': Buffer.from(UNICODE, 'utf8').toString('latin1') });
    assert.equal(r.status, 200);
    assert.equal((await get(gw.url, `/query?key=${encodeURIComponent(UNICODE)}`)).status, 200);
  });

  it('strategy query_string: the key comes from the named parameter, headers are ignored', async () => {
    assert.equal((await get(gw.url, `/query?key=${USER}`)).status, 200);
    assert.equal((await get(gw.url, `/query?other=1&key=${encodeURIComponent(USER)}`)).status, 200);
    await refused('/query', bearer(USER));
    await refused('/query', { key: USER });
    await refused('/query?key=', undefined);
    await refused(`/query?Key=${USER}`, undefined);
    await refused(`/query?key=${NEAR_ADMIN}`, undefined);
    await refused(`/query?key=${'q'.repeat(8 * 1024)}`, undefined);
  });

  it('an endpoint overriding only the strategy keeps the service identifier (as KrakenD warns)', async () => {
    assert.equal((await get(gw.url, `/query-inherit?Authorization=${USER}`)).status, 200);
    await refused(`/query-inherit?key=${USER}`, undefined);
    const result = load({ version: 3, host: [backend.url], extra_config: { [NS]: serviceKeys() }, endpoints: endpoints(backend.url) });
    assert.match(issueAt(result.warnings, '$.endpoints[6].extra_config["auth/api-keys"].strategy').found, /read from query parameter "Authorization"/);
  });

  it('a service-level query_string strategy reads "key" by default', async () => {
    const cfg = loadTestConfig({
      host: [backend.url],
      extra_config: { [NS]: { keys: [{ key: USER, roles: ['user'] }], strategy: 'query_string' } },
      endpoints: [{ endpoint: '/q', backend: [{ url_pattern: '/q' }], extra_config: { [NS]: { roles: ['user'] } } }],
    });
    const svc = cfg.namespaces.find((n) => n.name === NS)!.options as { identifier: string };
    assert.equal(svc.identifier, 'key');
  });

  it('rejections log no key material', async () => {
    const { text } = await logsDuring(async () => {
      await refused('/admin', bearer(USER), ROLE_REJECTION_STATUS);
      await refused('/admin', bearer(NEAR_ADMIN));
      await refused('/query', { key: USER });
    });
    assert.match(text, /AUTH_KEY_ROLE_MISSING/);
    assert.match(text, /AUTH_KEY_INVALID/);
    for (const secret of [USER, NEAR_ADMIN, ADMIN]) assert.ok(!text.includes(secret), 'a key was logged');
  });

  describe('hashed key storage', () => {
    const digest = (alg: string, salt: string, key: string, enc: 'hex' | 'base64' | 'base64url') => createHash(alg).update(salt + key).digest(enc);

    async function accepts(service: Record<string, unknown>, key: string): Promise<void> {
      await gw.reload({
        host: [backend.url],
        extra_config: { [NS]: service },
        endpoints: [{ endpoint: '/h', backend: [{ url_pattern: '/h' }], extra_config: { [NS]: { roles: ['r'] } } }],
      });
      assert.equal((await get(gw.url, '/h', bearer(key))).status, 200, JSON.stringify(service));
      assert.equal((await get(gw.url, '/h', bearer(key + 'x'))).status, 401);
      assert.equal((await get(gw.url, '/h', bearer(key.slice(0, -1) + (key.endsWith('0') ? '1' : '0')))).status, 401);
    }

    after(async () => {
      await gw.reload({ extra_config: { [NS]: serviceKeys() }, endpoints: endpoints(backend.url) });
    });

    it('sha256 with a salt (salt + key), stored as hex or base64', async () => {
      await accepts({ hash: 'sha256', salt: 'mySalt', keys: [{ key: digest('sha256', 'mySalt', ADMIN, 'hex'), roles: ['r'] }] }, ADMIN);
      await accepts({ hash: 'sha256', salt: 'mySalt', keys: [{ key: digest('sha256', 'mySalt', ADMIN, 'base64'), roles: ['r'] }] }, ADMIN);
      // the salt is part of the digest: the unsalted digest of the same key is another key
      await gw.reload({
        host: [backend.url],
        extra_config: { [NS]: { hash: 'sha256', salt: 'other', keys: [{ key: digest('sha256', 'mySalt', ADMIN, 'hex'), roles: ['r'] }] } },
        endpoints: [{ endpoint: '/h', backend: [{ url_pattern: '/h' }], extra_config: { [NS]: { roles: ['r'] } } }],
      });
      assert.equal((await get(gw.url, '/h', bearer(ADMIN))).status, 401);
    });

    it('sha256 without salt, uppercase hex', async () => {
      await accepts({ hash: 'sha256', keys: [{ key: digest('sha256', '', USER, 'hex').toUpperCase(), roles: ['r'] }] }, USER);
    });

    it('sha1, base64url without padding', async () => {
      await accepts({ hash: 'sha1', salt: 's', keys: [{ key: digest('sha1', 's', USER, 'base64url'), roles: ['r'] }] }, USER);
    });

    it('fnv128 (FNV-1 128, as Go hash/fnv New128)', async () => {
      await accepts({ hash: 'fnv128', salt: 'mySalt', keys: [{ key: fnv128(Buffer.from('mySalt' + ADMIN)).toString('hex'), roles: ['r'] }] }, ADMIN);
    });

    it('plain keys are compared as written', async () => {
      await accepts({ hash: 'plain', keys: [{ key: USER, roles: ['r'] }] }, USER);
    });
  });

  describe('digests', () => {
    it('fnv128 matches the FNV-1 128 reference vectors', () => {
      assert.equal(fnv128(Buffer.from('')).toString('hex'), '6c62272e07bb014262b821756295c58d');
      assert.equal(fnv128(Buffer.from('a')).toString('hex'), 'd228cb69101a8caf78912b704e4a141e');
      // against a BigInt reference on a longer input
      const P = (1n << 88n) + 0x13bn;
      const M = (1n << 128n) - 1n;
      let h = 0x6c62272e07bb014262b821756295c58dn;
      const input = Buffer.from('mySalt' + ADMIN.repeat(20));
      for (const b of input) h = ((h * P) & M) ^ BigInt(b);
      assert.equal(fnv128(input).toString('hex'), h.toString(16).padStart(32, '0'));
    });

    it('stored digests are read as hex or base64, exact length only', () => {
      const d = createHash('sha256').update('x').digest();
      for (const text of [d.toString('hex'), d.toString('hex').toUpperCase(), d.toString('base64'), d.toString('base64url'), d.toString('base64').replace(/=+$/, '')]) {
        assert.deepEqual(decodeDigest(text, 32), d, text);
      }
      assert.equal(decodeDigest(d.toString('hex').slice(1), 32), undefined);
      assert.equal(decodeDigest(d.toString('hex') + '00', 32), undefined);
      assert.equal(decodeDigest(createHash('sha1').update('x').digest('hex'), 32), undefined);
      assert.equal(decodeDigest('not a digest at all, not at all, not at all!', 32), undefined);
    });
  });

  describe('parsed options', () => {
    it('survive structuredClone unchanged and hold no plain key', () => {
      const cfg = loadTestConfig({ host: ['http://b'], extra_config: { [NS]: serviceKeys() }, endpoints: endpoints('http://b') });
      assert.deepEqual(structuredClone(cfg.namespaces), cfg.namespaces);
      for (const ep of cfg.endpoints) assert.deepEqual(structuredClone(ep.namespaces), ep.namespaces);
      const text = JSON.stringify(cfg.namespaces);
      for (const secret of [ADMIN, USER, UNICODE]) assert.ok(!text.includes(secret), 'a plain key stayed in the parsed options');
      assert.deepEqual(cfg.endpoints[0]!.namespaces, [{ name: NS, options: { level: 'endpoint', roles: ['admin'] } }]);
      assert.deepEqual(cfg.endpoints[4]!.namespaces[0]!.options, { level: 'endpoint', roles: ['user'], identifier: 'X-Key' });
    });

    it('defaults: header strategy, Authorization, plain, no salt, no propagation', () => {
      const cfg = loadTestConfig({ host: ['http://b'], extra_config: { [NS]: { keys: [{ key: USER, roles: ['u'] }] } }, endpoints: [] });
      const o = cfg.namespaces[0]!.options as Record<string, unknown>;
      assert.deepEqual({ ...o, keys: undefined }, { level: 'service', strategy: 'header', identifier: 'Authorization', hash: 'plain', salt: '', propagateRole: '', keys: undefined });
    });
  });

  describe('config checks', () => {
    it('an endpoint asking for API keys when the service level declares none is an error', () => {
      const issue = errorAt(configWith(undefined), epAt(0));
      assert.match(issue.expected, /service-level "auth\/api-keys"/);
    });

    it('an endpoint without roles is an error', () => {
      assert.match(errorAt(configWith(serviceKeys(), {}), epAt(0, 'roles')).found, /missing/);
    });

    it('keys are required, as an array of objects with a non-empty string key', () => {
      errorAt(configWith({ strategy: 'header' }), at('keys'));
      errorAt(configWith({ keys: {} }), at('keys'));
      errorAt(configWith({ keys: ['k'] }), at('keys', 0));
      errorAt(configWith({ keys: [{ roles: ['admin'] }] }), at('keys', 0, 'key'));
      assert.equal(errorAt(configWith({ keys: [{ key: '', roles: ['admin'] }] }), at('keys', 0, 'key')).found, '"***" (a string of 0 characters)');
      assert.equal(errorAt(configWith({ keys: [{ key: 12345, roles: ['admin'] }] }), at('keys', 0, 'key')).found, '*** (number)');
      errorAt(configWith({ keys: [{ key: USER, roles: 'admin' }] }), at('keys', 0, 'roles'));
    });

    it('a key declared twice is an error that does not show the key', () => {
      const issue = errorAt(configWith({ keys: [{ key: USER, roles: ['admin'] }, { key: USER, roles: ['user'] }] }), at('keys', 1, 'key'));
      assert.equal(issue.found, '"***" (the same key as $.extra_config["auth/api-keys"].keys[0])');
    });

    it('a hashed key that is not a digest of the right size is an error that does not show it', () => {
      const issue = errorAt(configWith({ hash: 'sha256', keys: [{ key: USER, roles: ['admin'] }] }), at('keys', 0, 'key'));
      assert.match(issue.expected, /sha256 digest .* 64 hex characters or base64 of 32 bytes/);
      assert.equal(issue.found, '"***" (a string of 36 characters)');
      const sha1 = createHash('sha1').update(USER).digest('hex');
      assert.ok(!errorAt(configWith({ hash: 'sha256', keys: [{ key: sha1, roles: ['admin'] }] }), at('keys', 0, 'key')).found.includes(sha1));
    });

    it('strategy, hash, identifier, salt and propagate_role are checked', () => {
      assert.match(errorAt(configWith(serviceKeys({ strategy: 'cookie' })), at('strategy')).expected, /"header" or "query_string"/);
      assert.match(errorAt(configWith(serviceKeys({ hash: 'md5' })), at('hash')).expected, /"plain", "fnv128", "sha256" or "sha1"/);
      errorAt(configWith(serviceKeys({ identifier: '' })), at('identifier'));
      errorAt(configWith(serviceKeys({ identifier: 'X Key' })), at('identifier'));
      errorAt(configWith(serviceKeys({ salt: 1 })), at('salt'));
      errorAt(configWith(serviceKeys({ propagate_role: 'X Role' })), at('propagate_role'));
      errorAt(configWith(serviceKeys({ propagate_role: 'Host' })), at('propagate_role'));
      errorAt(configWith(serviceKeys(), { roles: ['admin'], strategy: 'body' }), epAt(0, 'strategy'));
      errorAt(configWith(serviceKeys(), { roles: ['admin'], identifier: '' }), epAt(0, 'identifier'));
      // a query parameter name need not be a header token
      assert.deepEqual(load(configWith(serviceKeys(), { roles: ['admin'], strategy: 'query_string', identifier: 'api key' })).errors, []);
    });

    it('client_max_rate (per-key rate limit) is not supported by this version: an error', () => {
      assert.match(errorAt(configWith(serviceKeys(), { roles: ['admin'], client_max_rate: 10 }), epAt(0, 'client_max_rate')).found, /not supported by this version/);
    });

    it('warnings: unknown keys with a hint, salt with plain, a role no key holds, no keys', () => {
      const r1 = load(configWith(serviceKeys({ salts: 'x' }), { role: ['admin'], roles: ['admin'] }));
      assert.match(issueAt(r1.warnings, at('salts')).expected, /did you mean "salt"/);
      assert.match(issueAt(r1.warnings, epAt(0, 'role')).expected, /did you mean "roles"/);
      assert.match(issueAt(load(configWith(serviceKeys({ salt: 's' }))).warnings, at('salt')).found, /no effect/);
      assert.match(issueAt(load(configWith(serviceKeys(), { roles: ['Admin'] })).warnings, '$.endpoints[0].extra_config["auth/api-keys"].roles[0]').found, /"Admin", a role no key holds/);
      const empty = load(configWith({ keys: [] }, { roles: [] }));
      assert.deepEqual(empty.errors, []);
      assert.match(issueAt(empty.warnings, at('keys')).found, /refuses every request/);
    });

    it('auth/api-keys is not accepted at backend level', () => {
      const result = load({ version: 3, host: ['http://b'], extra_config: { [NS]: serviceKeys() }, endpoints: [{ endpoint: '/e', backend: [{ url_pattern: '/b', extra_config: { [NS]: { roles: ['a'] } } }] }] });
      assert.match(issueAt(result.errors, '$.endpoints[0].backend[0].extra_config["auth/api-keys"]').found, /would not be enforced here/);
    });
  });
});
