// auth/validator: configuration checks, KrakenD's validation rules on real
// requests through a real gateway, hostile tokens, and a real JWKS server that
// rotates keys, goes down, is slow, answers garbage or a huge body.

import assert from 'node:assert/strict';
import { createHash, createHmac, createPublicKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CompactSign, compactVerify, importJWK } from 'jose';
import { formatIssue, loadConfigText } from '../../src/config/load.ts';
import { authValidator, type ValidatorOptions } from '../../src/namespaces/auth-validator.ts';
import { ALGORITHMS, importKey, KeySet, keySourceFor, tokenKeyId } from '../../src/namespaces/jwk-source.ts';
import { PolicyState } from '../../src/namespaces/state.ts';
import { optionsOf } from '../../src/namespaces/namespace.ts';
import { claimText } from '../../src/proxy/claims.ts';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';
import { get, raw } from '../helpers/http.ts';
import { logsDuring } from '../helpers/log-lines.ts';
import { forgeToken, jwks, makeKey, now, signToken, startJwksServer, type JwksServer, type TestKey } from '../helpers/jwks-server.ts';
import { makePki, opensslMissing, type Pki } from '../helpers/tls.ts';

const tmp = mkdtempSync(join(tmpdir(), 'portico-jwt-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** Load a one-endpoint config with this validator; errors and warnings as text. */
function check(validator: unknown, endpoint: Record<string, unknown> = {}) {
  const text = JSON.stringify({
    version: 3,
    endpoints: [{ endpoint: '/x', extra_config: { 'auth/validator': validator }, backend: [{ host: ['http://127.0.0.1:9'], url_pattern: '/' }], ...endpoint }],
  });
  const r = loadConfigText(text, 'test.json', { env: {} });
  return { errors: r.errors.map(formatIssue), warnings: r.warnings.map(formatIssue), config: r.config };
}

/** Run `fn` with stderr captured (and the log level at `level`); returns the JSON log records written meanwhile. */
async function logsOf(fn: () => Promise<void>, level: 'debug' | 'info' = 'info'): Promise<Record<string, unknown>[]> {
  return (await logsDuring(fn, level)).records;
}

/** The refusal codes the handler logged. */
const codes = (records: Record<string, unknown>[]) => records.filter((r) => r.namespace === 'auth/validator').map((r) => r.code);

/** Wait until `cond` holds (polling), or fail after `ms`. */
async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe('auth/validator configuration', () => {
  it('a complete configuration parses into plain, cloneable options with KrakenD defaults', () => {
    const r = check({ alg: 'RS256', jwk_url: 'https://idp.example.com/jwks.json', cache: true });
    assert.deepEqual(r.errors, []);
    const o = optionsOf(r.config!.endpoints[0]!.namespaces, authValidator) as ValidatorOptions;
    assert.deepEqual(structuredClone(o), o);
    assert.equal(o.rolesKey, 'roles');
    assert.equal(o.cookieKey, 'access_token');
    assert.equal(o.authHeaderName, 'authorization');
    assert.equal(o.leewaySeconds, 1);
    assert.equal(o.keyIdentifyStrategy, 'kid');
    assert.equal(o.scopesMatcher, 'any');
    assert.equal(o.source.maxAgeMs, 900_000, 'cache: true keeps keys 15 minutes by default');
    assert.equal(o.source.cooldownMs, 10_000);
  });

  it('alg is required, and only KrakenD algorithms', () => {
    assert.match(check({ jwk_url: 'https://idp/jwks' }).errors.join('\n'), /\.alg: expected the signing algorithm/);
    assert.match(check({ alg: 'none', jwk_url: 'https://idp/jwks' }).errors.join('\n'), /\.alg: expected one of "EdDSA"/);
  });

  it('keys must come from somewhere; plain http only with disable_jwk_security', () => {
    assert.match(check({ alg: 'RS256' }).errors.join('\n'), /jwk_url: expected a "jwk_url" \(https:\/\/\.\.\.\) or a "jwk_local_path"/);
    assert.match(check({ alg: 'RS256', jwk_url: 'http://idp/jwks' }).errors.join('\n'), /plain http needs "disable_jwk_security": true/);
    assert.deepEqual(check({ alg: 'RS256', jwk_url: 'http://idp/jwks', disable_jwk_security: true }).errors, []);
    assert.match(check({ alg: 'RS256', jwk_url: 'ftp://idp/jwks' }).errors.join('\n'), /expected an https:\/\/ URL/);
    const w = check({ alg: 'RS256', jwk_url: 'https://idp/jwks', disable_jwk_security: true });
    assert.match(w.warnings.join('\n'), /TLS certificates are verified anyway/, 'disable_jwk_security never turns TLS verification off');
  });

  it('what this version cannot honour is an error, never ignored', () => {
    const r = check({ alg: 'RS256', jwk_local_path: '/nope', secret_url: 'base64key://smGbjm71Nxd1Ig5FS0wj9SlbzAIrnolCz9bQQ6uAhl4=', cypher_key: 'x' });
    const text = r.errors.join('\n');
    assert.match(text, /secret_url.*not supported by this version/);
    assert.match(text, /cypher_key.*not supported by this version/);
    // Scopes without scopes_key: KrakenD checks nothing; Portico refuses.
    assert.match(check({ alg: 'RS256', jwk_url: 'https://idp/jwks', scopes: ['read'] }).errors.join('\n'), /scopes_key: expected the claim holding the scopes/);
    // cipher_suites only with ciphers OpenSSL 3 lacks.
    assert.match(check({ alg: 'RS256', jwk_url: 'https://idp/jwks', cipher_suites: [5, 10] }).errors.join('\n'), /none of them is available/);
    assert.deepEqual(check({ alg: 'RS256', jwk_url: 'https://idp/jwks', cipher_suites: [49199, 49195] }).errors, []);
    assert.match(check({ alg: 'RS256', jwk_url: 'https://idp/jwks', cipher_suites: [1234] }).errors.join('\n'), /cipher suite id KrakenD accepts/);
    assert.match(check({ alg: 'RS256', jwk_url: 'https://idp/jwks', jwk_fingerprints: ['short'] }).errors.join('\n'), /SHA-256 \(32 bytes\)/);
  });

  it('malformed propagate_claims, bad header names, unknown keys', () => {
    const r = check({ alg: 'RS256', jwk_url: 'https://idp/jwks', propagate_claims: [['sub'], ['sub', 'bad header']], auth_header_name: 'a b', rol: [] });
    const text = r.errors.join('\n');
    assert.match(text, /propagate_claims\[0\]: expected a pair of strings/);
    assert.match(text, /propagate_claims\[1\]\[1\]: expected a header name/);
    assert.match(text, /auth_header_name: expected a header name/);
    assert.match(r.warnings.join('\n'), /unknown key "rol"/);
  });

  it('key files are not read by check (a control plane need not have them): a missing or broken file fails the compile, naming namespace, path and file', async () => {
    const missing = join(tmp, 'missing.json');
    const broken = join(tmp, 'broken.json');
    writeFileSync(broken, '{"keys": 3}');
    assert.deepEqual(check({ alg: 'HS256', jwk_local_path: missing }).errors, []);
    const serve = (validator: Record<string, unknown>) =>
      startGateway({ endpoints: [{ endpoint: '/x', extra_config: { 'auth/validator': validator }, backend: [{ host: ['http://127.0.0.1:9'], url_pattern: '/' }] }] });
    await assert.rejects(serve({ alg: 'HS256', jwk_local_path: missing }), /auth\/validator at \$\.endpoints\[0\]\.extra_config\["auth\/validator"\]\.jwk_local_path: ".*missing\.json" \(.*\) cannot be read: ENOENT/);
    await assert.rejects(serve({ alg: 'HS256', jwk_local_path: broken }), /jwk_local_path: .*broken\.json.* not a JWK set/);
    await assert.rejects(serve({ alg: 'RS256', jwk_url: 'https://idp.invalid/jwks', jwk_local_ca: broken }), /jwk_local_ca: .*holds no PEM certificate/);
  });

  it('failed_jwk_key_cooldown under a second is raised to one; leeway is whole seconds, one at least', () => {
    const r = check({ alg: 'RS256', jwk_url: 'https://idp/jwks', failed_jwk_key_cooldown: '100ms', leeway: '2500ms' });
    assert.match(r.warnings.join('\n'), /raised to 1s/);
    const o = optionsOf(r.config!.endpoints[0]!.namespaces, authValidator) as ValidatorOptions;
    assert.equal(o.source.cooldownMs, 1000);
    assert.equal(o.leewaySeconds, 3);
  });

  it('a validator that fails its check does not load (the endpoint is never served open)', () => {
    assert.equal(check({ alg: 'RS256', jwk_url: 'http://idp/jwks' }).config, undefined);
  });
});

describe('the JWK set module', () => {
  it('every algorithm KrakenD lists signs and verifies through importKey; a key never serves another family', async () => {
    for (const alg of ALGORITHMS) {
      const key = await makeKey(alg, `k-${alg}`);
      const set = new KeySet([key.privateJwk as Record<string, unknown>]);
      const entry = set.find('kid', `k-${alg}`)!;
      const jws = await new CompactSign(new TextEncoder().encode('{"a":1}')).setProtectedHeader({ alg }).sign(await importKey(entry, alg, 'sign'));
      await compactVerify(jws, await importKey(entry, alg, 'verify'));
      const other = alg.startsWith('HS') ? 'RS256' : 'HS256';
      await assert.rejects(importKey(entry, other, 'verify'), /cannot serve/, `${alg} key used for ${other}`);
    }
    const pub = new KeySet([(await makeKey('ES256', 'p')).publicJwk as Record<string, unknown>]);
    await assert.rejects(importKey(pub.find('kid', 'p')!, 'ES256', 'sign'), /a public key cannot sign/);
    const declared = new KeySet([{ ...(await makeKey('RS256', 'd')).publicJwk, alg: 'RS512', use: 'sig' } as Record<string, unknown>]);
    await assert.rejects(importKey(declared.find('kid', 'd')!, 'RS256', 'verify'), /the key is for "alg": "RS512"/);
  });

  it('key identify strategies: kid, x5t (falling back to kid), x5t#S256, kid_x5t; thumbprints computed from x5c when not given', () => {
    const der = Buffer.from('a certificate, as far as thumbprints go');
    const sha1 = createHash('sha1').update(der).digest('base64url');
    const sha256 = createHash('sha256').update(der).digest('base64url');
    const set = new KeySet([
      { kty: 'RSA', kid: 'a', x5c: [der.toString('base64')] },
      { kty: 'RSA', kid: 'b', x5t: 'given-1', 'x5t#S256': 'given-256' },
      { kty: 'oct', k: 'c2VjcmV0' },
    ]);
    const kidOf = (strategy: Parameters<typeof tokenKeyId>[1], header: Record<string, unknown>) => set.find(strategy, tokenKeyId(header, strategy))?.kid;
    assert.equal(kidOf('kid', { kid: 'a' }), 'a');
    assert.equal(kidOf('kid', {}), '', 'no kid in the token: the key without one');
    assert.equal(kidOf('x5t', { x5t: sha1 }), 'a', 'x5t computed from x5c[0]');
    assert.equal(kidOf('x5t', { x5t: 'given-1' }), 'b');
    assert.equal(kidOf('x5t', { kid: 'given-1' }), 'b', 'no x5t in the token: its kid is used (krakend-jose)');
    assert.equal(kidOf('x5t#S256', { 'x5t#S256': sha256 }), 'a');
    assert.equal(kidOf('x5t#S256', { 'x5t#S256': 'given-256' }), 'b');
    assert.equal(kidOf('kid_x5t', { kid: 'b', x5t: 'given-1' }), 'b');
    assert.equal(kidOf('kid_x5t', { kid: 'a', x5t: sha1 }), 'a');
    assert.equal(kidOf('kid_x5t', { kid: 'b' }), undefined);
    assert.equal(kidOf('kid', { kid: { toString: 'a' } }), '', 'a non-string kid names nothing');
  });

  it('KeySet.parse refuses what is not a non-empty JWK set', () => {
    for (const [text, reason] of [['nope', /not JSON/], ['[]', /not a JWK set/], ['{"keys":{}}', /not a JWK set/], ['{"keys":[1,{"kid":"x"}]}', /no key/]] as const) {
      assert.throws(() => KeySet.parse(text), reason);
    }
  });
});

describe('claimText: {JWT...} and propagated values as krakend-jose renders them', () => {
  it('strings, whole and fractional numbers, arrays, booleans, null, objects', () => {
    assert.equal(claimText('a b'), 'a b');
    assert.equal(claimText(1700000000), '1700000000');
    assert.equal(claimText(2.0000001), '2');
    assert.equal(claimText(1.5), '1.500000');
    assert.equal(claimText(['a', 'b', 3, 2.5, 1e6]), 'a,b,3,2.5,1e+06');
    assert.equal(claimText([]), '');
    assert.equal(claimText(true), 'true');
    assert.equal(claimText(null), 'null');
    assert.equal(claimText({ b: 1, a: '<x>' }), '{"a":"\\u003cx\\u003e","b":1}');
    assert.equal(claimText([{ b: 1, a: 2 }, null]), 'map[a:2 b:1],<nil>');
  });
});

describe('auth/validator on requests', () => {
  let be: TestBackend;
  let idp: JwksServer;
  let gw: TestGateway;
  let rsa: TestKey;
  let rsaOther: TestKey;
  let rsaX5t: TestKey;
  let es: TestKey;
  let hs: TestKey;
  let good: string;
  const claims = { sub: 'alice', iss: 'https://idp.example.com', aud: ['api', 'gw'] };

  before(async () => {
    [rsa, rsaOther, rsaX5t, es, hs] = await Promise.all([
      makeKey('RS256', 'rsa-1'),
      makeKey('RS256', 'rsa-1'),
      makeKey('RS256', 'rsa-x5t'),
      makeKey('ES256', 'es-1'),
      makeKey('HS256', 'hs-1'),
    ]);
    const x5tJwk = { ...rsaX5t.publicJwk, x5t: 'thumb-1' };
    idp = await startJwksServer({ keys: [rsa.publicJwk, es.publicJwk, x5tJwk] });
    const hsFile = join(tmp, 'hs.json');
    // The RSA public key under an HMAC kid: a classic confusion attempt must still fail.
    writeFileSync(hsFile, JSON.stringify({ keys: [hs.privateJwk, { ...rsa.publicJwk, kid: 'rsa-as-hs' }] }));
    be = await startBackend((req, res) => json(res, { path: req.url, headers: req.headers }));
    const v = (extra: Record<string, unknown> = {}) => ({ alg: 'RS256', jwk_url: idp.url, disable_jwk_security: true, cache: true, ...extra });
    const ep = (endpoint: string, validator: Record<string, unknown>, more: Record<string, unknown> = {}) => ({
      endpoint,
      extra_config: { 'auth/validator': validator },
      backend: [{ url_pattern: '/echo' }],
      ...more,
    });
    gw = await startGateway({
      host: [be.url],
      endpoints: [
        ep('/p', v({ issuer: 'https://idp.example.com', audience: ['api', 'gw'], leeway: '5s' }), { backend: [{ url_pattern: '/echo/{JWT.sub}' }] }),
        ep('/es', v({ alg: 'ES256' })),
        ep('/roles', v({ roles: ['admin', 'ops'], roles_key: 'realm_access.roles', roles_key_is_nested: true })),
        ep('/roles-flat', v({ roles: ['admin'] })),
        ep('/roles-url', v({ roles: ['admin'], roles_key: 'https://example.com/roles', roles_key_is_nested: true })),
        ep('/scopes-any', v({ scopes: ['read', 'write'], scopes_key: 'scope' })),
        ep('/scopes-all', v({ scopes: ['read', 'write'], scopes_key: 'data.scp', scopes_matcher: 'all' })),
        ep('/cookie', v({ cookie_key: 'session' })),
        ep('/custom', v({ auth_header_name: 'X-Token' })),
        ep('/x5t', v({ key_identify_strategy: 'x5t' })),
        ep('/hs', { alg: 'HS256', jwk_local_path: hsFile }),
        ep('/debug', v({ operation_debug: true })),
        ep(
          '/prop',
          v({ propagate_claims: [['sub', 'x-user'], ['realm_access.tier', 'x-tier'], ['groups', 'x-groups'], ['missing', 'x-missing'], ['https://example.com/org', 'x-org'], ['n', 'x-n']] }),
          { input_headers: ['x-user', 'x-tier', 'x-groups', 'x-missing', 'x-org', 'x-n'] },
        ),
        ep('/prop-array', v({ propagate_claims: [['groups', 'x-groups'], ['missing', 'x-missing']], propagate_claims_preserve_array: true }), { input_headers: ['x-groups', 'x-missing'] }),
        ep('/prop-unlisted', v({ propagate_claims: [['sub', 'x-user']] })),
        ep('/claims/{id}', v(), { backend: [{ url_pattern: '/c/{id}/{JWT.sub}/{JWT.n}/{JWT.f}/{JWT.groups}/{JWT.obj}/{JWT.realm_access.tier}/{JWT.nothing}?flag={JWT.flag}' }] }),
      ],
    });
    good = await signToken(rsa, claims);
  });
  after(async () => {
    await gw.close();
    await be.close();
    await idp.close();
  });

  it('a valid token: 200, and {JWT.sub} in the backend URL', async () => {
    const r = await get(gw.url, '/p', bearer(good));
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json().path, '/echo/alice');
    assert.equal(r.headers['www-authenticate'], undefined);
    assert.equal(r.json().headers.authorization, undefined, 'Authorization is not forwarded unless listed');
  });

  it('no token: 401, empty body, WWW-Authenticate: Bearer, no backend call', async () => {
    const n = be.requests.length;
    const r = await get(gw.url, '/p');
    assert.equal(r.status, 401);
    assert.equal(r.body, '');
    assert.equal(r.headers['www-authenticate'], 'Bearer');
    assert.equal(be.requests.length, n);
    const empty = await get(gw.url, '/p', { authorization: 'Bearer ' });
    assert.equal(empty.status, 401);
  });

  it('"Bearer" in any case, or the bare token, as KrakenD', async () => {
    assert.equal((await get(gw.url, '/p', { authorization: `bEaReR ${good}` })).status, 200);
    assert.equal((await get(gw.url, '/p', { authorization: good })).status, 200);
  });

  it('malformed and truncated tokens: 401 invalid_token', async () => {
    const [h, p, s] = good.split('.') as [string, string, string];
    // (The last character of an RS256 signature carries unused bits: flip one in the middle instead.)
    const flipped = `${s.slice(0, 100)}${s[100] === 'A' ? 'B' : 'A'}${s.slice(101)}`;
    for (const bad of ['abc', 'a.b.c', `${h}.${p}`, `${h}.${p}.${s}.x`, `${h}.${p}.${s.slice(0, 20)}`, `${h}.${p}.${flipped}`, `${h}.${p}.`, `${h.slice(1)}.${p}.${s}`, `${h}.${p.slice(0, -3)}.${s}`, '...', `${h}.!!!.${s}`]) {
      const r = await get(gw.url, '/p', bearer(bad));
      assert.equal(r.status, 401, bad.slice(0, 40));
      assert.equal(r.body, '');
      assert.equal(r.headers['www-authenticate'], 'Bearer error="invalid_token"');
    }
  });

  it('expired, not yet valid, issued in the future: 401; within the leeway: 200', async () => {
    const t = now();
    const status = async (c: Record<string, unknown>) => (await get(gw.url, '/p', bearer(await signToken(rsa, { ...claims, ...c })))).status;
    assert.equal(await status({ exp: t - 60 }), 401, 'expired');
    assert.equal(await status({ exp: t - 2 }), 200, 'expired 2 s ago, leeway 5 s');
    assert.equal(await status({ nbf: t + 60 }), 401, 'not yet valid');
    assert.equal(await status({ nbf: t + 2 }), 200, 'nbf within the leeway');
    assert.equal(await status({ iat: t + 60 }), 401, 'issued in the future');
    assert.equal(await status({ exp: 'tomorrow' }), 401, 'exp must be a number');
  });

  it('issuer and every configured audience must match', async () => {
    const status = async (c: Record<string, unknown>) => (await get(gw.url, '/p', bearer(await signToken(rsa, { ...claims, ...c })))).status;
    assert.equal(await status({ iss: 'https://evil.example.com' }), 401);
    assert.equal(await status({ iss: undefined }), 401, 'no issuer');
    assert.equal(await status({ aud: 'api' }), 401, 'one of two audiences only');
    assert.equal(await status({ aud: ['gw', 'other', 'api'] }), 200, 'both, among others');
    assert.equal(await status({ aud: undefined }), 401);
  });

  it('the configured alg is pinned: alg none, another algorithm, HS256 signed with the RSA public key: 401', async () => {
    const logged = await logsOf(() => pinnedAlgorithms());
    assert.deepEqual(codes(logged), [
      'AUTH_TOKEN_ALG', 'AUTH_TOKEN_ALG', 'AUTH_TOKEN_ALG', 'AUTH_TOKEN_ALG',
      // HMAC with the public key: refused by the pin at the RS256 endpoint, by the key type at the HS256 one.
      'AUTH_TOKEN_ALG', 'AUTH_KEY_UNUSABLE', 'AUTH_TOKEN_ALG', 'AUTH_KEY_UNUSABLE',
    ]);
  });

  async function pinnedAlgorithms(): Promise<void> {
    const payload = { ...claims, exp: now() + 300 };
    const none = forgeToken({ alg: 'none', kid: 'rsa-1' }, payload);
    assert.equal((await get(gw.url, '/p', bearer(none))).status, 401);
    assert.equal((await get(gw.url, '/p', bearer(forgeToken({ alg: 'None', kid: 'rsa-1' }, payload)))).status, 401);
    const rs512 = await signToken({ ...rsa, alg: 'RS512', signingKey: await importJWK(rsa.privateJwk, 'RS512') }, claims);
    assert.equal((await get(gw.url, '/p', bearer(rs512))).status, 401, 'RS512 with the same key, but RS256 is configured');
    assert.equal((await get(gw.url, '/p', bearer(await signToken(es, claims)))).status, 401, 'ES256 token at an RS256 endpoint');

    // The HS256/RS256 confusion: HMAC the token with the published public key, as PEM and as JWK text.
    const pem = createPublicKey({ key: rsa.publicJwk as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' }) as string;
    for (const secret of [pem, JSON.stringify(rsa.publicJwk)]) {
      for (const [path, kid] of [['/p', 'rsa-1'], ['/hs', 'rsa-as-hs']] as const) {
        const head = Buffer.from(JSON.stringify({ alg: 'HS256', kid })).toString('base64url');
        const body = Buffer.from(JSON.stringify(payload)).toString('base64url');
        const sig = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
        const r = await get(gw.url, path, bearer(`${head}.${body}.${sig}`));
        assert.equal(r.status, 401, `${path}: an HMAC made with the RSA public key`);
      }
    }
  }

  it('a token signed by another key under a known kid: 401', async () => {
    const token = await signToken(rsaOther, claims);
    const logged = await logsOf(async () => assert.equal((await get(gw.url, '/p', bearer(token))).status, 401));
    assert.deepEqual(codes(logged), ['AUTH_TOKEN_SIGNATURE']);
  });

  it('HS256 with a local JWK file (an "oct" key)', async () => {
    assert.equal((await get(gw.url, '/hs', bearer(await signToken(hs, { sub: 'bob' })))).status, 200);
    assert.equal((await get(gw.url, '/hs', bearer(await signToken({ ...hs, kid: 'nope' }, { sub: 'bob' })))).status, 401);
  });

  it('ES256 keys from the same JWK set', async () => {
    assert.equal((await get(gw.url, '/es', bearer(await signToken(es, { sub: 'eve' })))).status, 200);
  });

  it('key_identify_strategy x5t finds the key by thumbprint', async () => {
    const byThumb = await signToken(rsaX5t, { sub: 'x' }, { kid: undefined, x5t: 'thumb-1' });
    assert.equal((await get(gw.url, '/x5t', bearer(byThumb))).status, 200);
    assert.equal((await get(gw.url, '/p', bearer(byThumb))).status, 401, 'the kid strategy does not read x5t');
    assert.equal((await get(gw.url, '/x5t', bearer(await signToken(rsaX5t, { sub: 'x' }, { x5t: 'thumb-2' })))).status, 401);
  });

  it('roles: any listed role passes, none is 403 with an empty body; nested keys and space-separated strings', async () => {
    const status = async (path: string, c: Record<string, unknown>) => {
      const r = await get(gw.url, path, bearer(await signToken(rsa, c)));
      if (r.status === 403) {
        assert.equal(r.body, '');
        assert.equal(r.headers['www-authenticate'], 'Bearer error="insufficient_scope"');
      }
      return r.status;
    };
    assert.equal(await status('/roles', { realm_access: { roles: ['user', 'ops'] } }), 200);
    assert.equal(await status('/roles', { realm_access: { roles: ['user'] } }), 403);
    assert.equal(await status('/roles', { realm_access: { roles: 'user admin' } }), 200, 'a space-separated string');
    assert.equal(await status('/roles', { roles: ['admin'] }), 403, 'the nested key is where roles are');
    assert.equal(await status('/roles', { realm_access: { roles: [1, null, { admin: true }] } }), 403, 'non-string roles never match (KrakenD would panic)');
    assert.equal(await status('/roles-flat', { roles: ['admin'] }), 200);
    assert.equal(await status('/roles-flat', {}), 403, 'no roles claim: 403, not 401');
    assert.equal(await status('/roles-url', { 'https://example.com/roles': ['admin'] }), 200, 'a URL-like key stays one name');
  });

  it('scopes: any or all, from a space-separated string or a list, nested keys', async () => {
    const status = async (path: string, c: Record<string, unknown>) => (await get(gw.url, path, bearer(await signToken(rsa, c)))).status;
    assert.equal(await status('/scopes-any', { scope: 'profile read' }), 200);
    assert.equal(await status('/scopes-any', { scope: ['write'] }), 200);
    assert.equal(await status('/scopes-any', { scope: 'profile' }), 403);
    assert.equal(await status('/scopes-all', { data: { scp: 'read write admin' } }), 200);
    assert.equal(await status('/scopes-all', { data: { scp: ['read'] } }), 403);
    assert.equal(await status('/scopes-all', { scp: 'read write' }), 403);
  });

  it('cookie_key: the token from a cookie; a header that is no token does not hide it', async () => {
    assert.equal((await get(gw.url, '/cookie', { cookie: `a=b; session=${good}; c=d` })).status, 200);
    assert.equal((await get(gw.url, '/cookie', { cookie: `session="${good}"` })).status, 200, 'quoted value');
    assert.equal((await get(gw.url, '/cookie', { cookie: `access_token=${good}` })).status, 401, 'the default cookie name is replaced');
    assert.equal((await get(gw.url, '/p', { cookie: `access_token=${good}` })).status, 200, 'access_token is the default cookie');
    assert.equal((await get(gw.url, '/cookie', { authorization: 'Basic dTpw', cookie: `session=${good}` })).status, 200);
  });

  it('auth_header_name: the token from that header only', async () => {
    assert.equal((await get(gw.url, '/custom', { 'x-token': `Bearer ${good}` })).status, 200);
    assert.equal((await get(gw.url, '/custom', bearer(good))).status, 401);
  });

  it('propagate_claims: claims replace the client headers (nested, URL-like, arrays, numbers, absent -> empty)', async () => {
    const token = await signToken(rsa, { sub: 'alice', realm_access: { tier: 'gold' }, groups: ['a', 'b'], 'https://example.com/org': 'acme', n: 42 });
    const r = await get(gw.url, '/prop', { ...bearer(token), 'x-user': 'mallory', 'x-missing': 'spoofed', 'x-tier': 'platinum' });
    assert.equal(r.status, 200, r.body);
    const h = r.json().headers;
    assert.equal(h['x-user'], 'alice');
    assert.equal(h['x-tier'], 'gold');
    assert.equal(h['x-groups'], 'a,b');
    assert.equal(h['x-org'], 'acme');
    assert.equal(h['x-n'], '42');
    assert.equal(h['x-missing'], '', 'an absent claim empties the header: the client value never passes');
  });

  it('propagate_claims_preserve_array: one header value per element', async () => {
    const token = await signToken(rsa, { groups: ['a', 'b'] });
    const r = await get(gw.url, '/prop-array', bearer(token));
    assert.equal(r.status, 200);
    const i = be.requests.at(-1)!.rawHeaders;
    const values = i.filter((_v, k) => k % 2 === 1 && i[k - 1]!.toLowerCase() === 'x-groups');
    assert.deepEqual(values, ['a', 'b']);
  });

  it('a propagated header not in input_headers does not reach the backend (as KrakenD)', async () => {
    const r = await get(gw.url, '/prop-unlisted', { ...bearer(good), 'x-user': 'mallory' });
    assert.equal(r.status, 200);
    assert.equal(r.json().headers['x-user'], undefined);
  });

  it('{JWT...} placeholders render as KrakenD: numbers, arrays, objects, nested paths; an absent claim stays literal', async () => {
    const token = await signToken(rsa, { sub: 'a/b c', n: 7, f: 0.5, groups: ['x', 'y'], obj: { k: 1 }, realm_access: { tier: 'gold' }, flag: true });
    const r = await get(gw.url, '/claims/9', bearer(token));
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json().path, `/c/9/a%2Fb%20c/7/0.500000/x,y/${encodeURIComponent('{"k":1}')}/gold/%7BJWT.nothing%7D?flag=true`);
  });

  it('a kid with path characters or 10 KB long: 401 quickly; it never becomes a URL', async () => {
    const logged = await logsOf(async () => {
      for (const kid of ['../../../../etc/passwd', '%2e%2e/jwks.json?x=1#', 'k'.repeat(10_000)]) {
        const started = performance.now();
        const r = await get(gw.url, '/p', bearer(await signToken({ ...rsa, kid }, claims)));
        assert.equal(r.status, 401);
        assert.ok(performance.now() - started < 1000);
      }
    });
    assert.deepEqual(codes(logged), ['AUTH_KEY_UNKNOWN', 'AUTH_KEY_UNKNOWN', 'AUTH_KEY_UNKNOWN']);
    assert.ok(idp.paths.every((p) => p === '/jwks.json'), JSON.stringify(idp.paths.slice(0, 5)));
  });

  it('a 15 KB token: 401 quickly; a 1 MB Authorization header: 431 from the server limit', async () => {
    const big = forgeToken({ alg: 'RS256', kid: 'rsa-1' }, { pad: 'x'.repeat(10_500) }, 'A'.repeat(600));
    assert.ok(big.length > 14_500 && big.length < 15_500, String(big.length));
    const started = performance.now();
    const r = await get(gw.url, '/p', bearer(big));
    assert.equal(r.status, 401);
    assert.ok(performance.now() - started < 1000);
    const text = await raw(gw.port, `GET /p HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${'a'.repeat(1 << 20)}\r\n\r\n`);
    assert.match(text, /^HTTP\/1\.1 431 /);
    assert.equal((await get(gw.url, '/p', bearer(good))).status, 200, 'still serving');
  });

  it('operation_debug: the reason at debug level, never the token', async () => {
    const expired = await signToken(rsa, { sub: 'alice', exp: now() - 3600 });
    const records = await logsOf(async () => {
      assert.equal((await get(gw.url, '/debug', bearer(expired))).status, 401);
      assert.equal((await get(gw.url, '/debug', bearer(good))).status, 200);
      assert.equal((await get(gw.url, '/p', bearer(expired))).status, 401);
    }, 'debug');
    const debug = records.filter((r) => r.level === 'debug' && String(r.msg).startsWith('auth/validator'));
    assert.deepEqual(debug.map((r) => [r.msg, r.code, r.endpoint]), [
      ['auth/validator: token expired', 'AUTH_TOKEN_EXPIRED', '/debug'],
      ['auth/validator: token accepted', undefined, '/debug'],
    ], 'only the endpoint with operation_debug logs its operations');
    const text = JSON.stringify(records);
    for (const part of [...expired.split('.'), ...good.split('.')]) assert.ok(!text.includes(part), 'no part of a token in the logs');
  });
});

describe('auth/validator and its JWK set host', () => {
  let be: TestBackend;
  before(async () => {
    be = await startBackend((req, res) => json(res, { path: req.url }));
  });
  after(() => be.close());

  const gatewayFor = (idp: JwksServer, validator: Record<string, unknown> = {}, more: Record<string, unknown> = {}) =>
    startGateway({
      host: [be.url],
      endpoints: [{ endpoint: '/p', extra_config: { 'auth/validator': { alg: 'RS256', jwk_url: idp.url, disable_jwk_security: true, cache: true, ...validator } }, backend: [{ url_pattern: '/ok' }], ...more }],
    });

  it('a remote key set warms up when compiled to serve, and fetches nothing when compiled for portico check', async () => {
    const k1 = await makeKey('RS256', 'warm');
    const idp = await startJwksServer(jwks([k1]));
    const state = new PolicyState();
    const options = { at: '$', url: idp.url, allowHttp: true, maxAgeMs: 60_000, cooldownMs: 1000 };
    try {
      const checking = state.scope();
      const checked = keySourceFor({ ...options, maxAgeMs: 1 }, checking, 'auth/validator', { use: 'verify' }, false) as unknown as { fetches: number };
      assert.equal(checked.fetches, 0, 'checkOnly: no fetch started');
      const serving = state.scope();
      const served = keySourceFor(options, serving, 'auth/validator', { use: 'verify' }, true) as unknown as { fetches: number };
      assert.equal(served.fetches, 1, 'serving: the fetch starts at compile');
      await until(() => idp.requests === 1, 5000, 'the warm-up fetch');
      await Promise.all([checking.release(), serving.release()]);
    } finally {
      await state.close();
      await idp.close();
    }
  });

  it('key rotation: a token with a new kid validates after exactly one refetch', async () => {
    const [k1, k2] = await Promise.all([makeKey('RS256', 'old'), makeKey('RS256', 'new')]);
    const idp = await startJwksServer(jwks([k1]));
    const gw = await gatewayFor(idp);
    try {
      await until(() => idp.requests === 1, 5000, 'the warm-up fetch');
      assert.equal((await get(gw.url, '/p', bearer(await signToken(k1)))).status, 200);
      idp.setKeys(jwks([k1, k2]));
      assert.equal((await get(gw.url, '/p', bearer(await signToken(k2)))).status, 200);
      assert.equal(idp.requests, 2, 'one refetch for the unknown kid');
      assert.equal((await get(gw.url, '/p', bearer(await signToken(k2)))).status, 200);
      assert.equal((await get(gw.url, '/p', bearer(await signToken(k1)))).status, 200);
      assert.equal(idp.requests, 2);
    } finally {
      await gw.close();
      await idp.close();
    }
  });

  it('an accepted token is remembered only while its key set is current: a rotated-out key refuses it', async () => {
    const [k1, k2] = await Promise.all([makeKey('RS256', 'gone'), makeKey('RS256', 'next')]);
    const idp = await startJwksServer(jwks([k1]));
    const gw = await gatewayFor(idp);
    try {
      const old = await signToken(k1);
      assert.equal((await get(gw.url, '/p', bearer(old))).status, 200);
      assert.equal((await get(gw.url, '/p', bearer(old))).status, 200, 'accepted again (from the verified-token cache)');
      idp.setKeys(jwks([k2]));
      // A token with the new kid makes the gateway refetch: the new set no longer holds k1.
      assert.equal((await get(gw.url, '/p', bearer(await signToken(k2)))).status, 200);
      const records = await logsOf(async () => {
        assert.equal((await get(gw.url, '/p', bearer(old))).status, 401, 'the remembered token is checked against the new set');
      });
      assert.deepEqual(codes(records), ['AUTH_KEY_UNKNOWN']);
    } finally {
      await gw.close();
      await idp.close();
    }
  });

  it('a remembered token still expires (exp plus leeway), and roles are checked per validator', async () => {
    const k1 = await makeKey('RS256', 'short');
    const idp = await startJwksServer(jwks([k1]));
    const gw = await startGateway({
      host: [be.url],
      endpoints: [
        { endpoint: '/p', extra_config: { 'auth/validator': { alg: 'RS256', jwk_url: idp.url, disable_jwk_security: true, cache: true, leeway: '0s' } }, backend: [{ url_pattern: '/ok' }] },
        { endpoint: '/admin', extra_config: { 'auth/validator': { alg: 'RS256', jwk_url: idp.url, disable_jwk_security: true, cache: true, leeway: '0s', roles: ['admin'] } }, backend: [{ url_pattern: '/ok' }] },
      ],
    });
    try {
      const token = await signToken(k1, { exp: now() + 1, roles: ['user'] });
      assert.equal((await get(gw.url, '/p', bearer(token))).status, 200);
      assert.equal((await get(gw.url, '/admin', bearer(token))).status, 403, 'accepted on /p does not make it an admin');
      // Only time shows expiry: wait past exp plus the leeway (KrakenD's minimum, 1 s).
      const exp = (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp;
      await until(() => Date.now() / 1000 > exp + 1.05, 4000, 'the token to expire');
      assert.equal((await get(gw.url, '/p', bearer(token))).status, 401, 'expired, although remembered');
    } finally {
      await gw.close();
      await idp.close();
    }
  });

  it('thousands of distinct unknown kids: at most one refetch per cooldown', async () => {
    const k1 = await makeKey('RS256', 'k1');
    const idp = await startJwksServer(jwks([k1]));
    const gw = await gatewayFor(idp, { failed_jwk_key_cooldown: '2s' });
    try {
      await until(() => idp.requests === 1, 5000, 'the warm-up fetch');
      const tokens = await Promise.all(Array.from({ length: 2000 }, (_, i) => signToken({ ...k1, kid: `unknown-${i}` })));
      const started = performance.now();
      for (let i = 0; i < tokens.length; i += 100) {
        const statuses = await Promise.all(tokens.slice(i, i + 100).map(async (t) => (await get(gw.url, '/p', bearer(t))).status));
        assert.ok(statuses.every((s) => s === 401));
      }
      const elapsed = performance.now() - started;
      const expected = 2 + Math.floor(elapsed / 2000);
      assert.ok(idp.requests <= expected, `${idp.requests} JWKS requests in ${Math.round(elapsed)} ms (at most ${expected})`);
      assert.equal((await get(gw.url, '/p', bearer(await signToken(k1)))).status, 200, 'known keys still work');
      // After the cooldown, one more miss may fetch once.
      await sleep(2100);
      const before = idp.requests;
      await Promise.all(tokens.slice(0, 50).map((t) => get(gw.url, '/p', bearer(t))));
      assert.equal(idp.requests, before + 1);
    } finally {
      await gw.close();
      await idp.close();
    }
  });

  it('the JWK host goes down: the last good key set stays in use; unknown kids get 401', async () => {
    const k1 = await makeKey('RS256', 'k1');
    const idp = await startJwksServer(jwks([k1]));
    const gw = await gatewayFor(idp, { cache_duration: 1, failed_jwk_key_cooldown: '1s' });
    try {
      await until(() => idp.requests === 1, 5000, 'the warm-up fetch');
      await idp.down();
      await sleep(1100);
      const token = await signToken(k1);
      for (let i = 0; i < 3; i++) {
        assert.equal((await get(gw.url, '/p', bearer(token))).status, 200, 'stale keys, host down');
        await sleep(400);
      }
      assert.equal((await get(gw.url, '/p', bearer(await signToken({ ...k1, kid: 'other' })))).status, 401);
      await idp.up();
      await sleep(1100);
      const before = idp.requests;
      assert.equal((await get(gw.url, '/p', bearer(token))).status, 200);
      await until(() => idp.requests > before, 3000, 'a refresh once the host is back');
    } finally {
      await gw.close();
      await idp.close();
    }
  });

  for (const mode of ['garbage', 'wrong-type', 'error', 'huge'] as const) {
    it(`the JWK host answers ${mode}: the last good key set stays in use`, async () => {
      const k1 = await makeKey('RS256', 'k1');
      const idp = await startJwksServer(jwks([k1]));
      const gw = await gatewayFor(idp, { cache_duration: 1, failed_jwk_key_cooldown: '1s' });
      try {
        await until(() => idp.requests === 1, 5000, 'the warm-up fetch');
        idp.mode = mode;
        await sleep(1100);
        const token = await signToken(k1);
        assert.equal((await get(gw.url, '/p', bearer(token))).status, 200, 'served from the last good set');
        await until(() => idp.requests === 2, 3000, 'the background refresh');
        await sleep(mode === 'huge' ? 500 : 50);
        assert.equal((await get(gw.url, '/p', bearer(token))).status, 200, 'still the last good set after the failed refresh');
        if (mode === 'huge') assert.ok(idp.hugeBytesSent < 16 * 1024 * 1024, `the client stopped reading early (${idp.hugeBytesSent} bytes sent)`);
      } finally {
        await gw.close();
        await idp.close();
      }
    });
  }

  it('a cold gateway whose JWK host is down: 401 at once, 200 once the host is back', async () => {
    const k1 = await makeKey('RS256', 'k1');
    const idp = await startJwksServer(jwks([k1]));
    await idp.down();
    const gw = await gatewayFor(idp, { failed_jwk_key_cooldown: '1s' });
    try {
      const token = await signToken(k1);
      const started = performance.now();
      const r = await get(gw.url, '/p', bearer(token));
      assert.equal(r.status, 401);
      assert.equal(r.headers['www-authenticate'], 'Bearer', 'no invalid_token: the token was not judged');
      assert.ok(performance.now() - started < 1000);
      await idp.up();
      await sleep(1100);
      assert.equal((await get(gw.url, '/p', bearer(token))).status, 200);
    } finally {
      await gw.close();
      await idp.close();
    }
  });

  it('a huge body on a cold gateway: refused at the size limit, 401, the gateway keeps serving', async () => {
    const k1 = await makeKey('RS256', 'k1');
    const idp = await startJwksServer(jwks([k1]));
    idp.mode = 'huge';
    const gw = await gatewayFor(idp);
    try {
      await until(() => idp.requests === 1, 5000, 'the warm-up fetch');
      await sleep(300);
      assert.equal((await get(gw.url, '/p', bearer(await signToken(k1)))).status, 401);
      assert.ok(idp.hugeBytesSent < 16 * 1024 * 1024, `${idp.hugeBytesSent} bytes sent`);
    } finally {
      await gw.close();
      await idp.close();
    }
  });

  it('a JWK host slower than the endpoint timeout: 401 at the deadline, never a hung request; the keys serve later requests', async () => {
    const k1 = await makeKey('RS256', 'k1');
    const idp = await startJwksServer(jwks([k1]));
    idp.delayMs = 1500;
    const gw = await gatewayFor(idp, {}, { timeout: '300ms' });
    try {
      const token = await signToken(k1);
      const started = performance.now();
      const rs = await Promise.all([get(gw.url, '/p', bearer(token)), get(gw.url, '/p', bearer(token))]);
      const took = performance.now() - started;
      assert.deepEqual(rs.map((r) => r.status), [401, 401]);
      assert.ok(took < 1000, `answered in ${Math.round(took)} ms`);
      await until(() => idp.requests === 1, 3000);
      await sleep(1500);
      assert.equal((await get(gw.url, '/p', bearer(token))).status, 200);
      assert.equal(idp.requests, 1, 'every request shared the one fetch');
    } finally {
      await gw.close();
      await idp.close();
    }
  });

  it('a new kid while the host is slow: the refetch is bounded by the deadline; the key serves once it arrives', async () => {
    const [k1, k2] = await Promise.all([makeKey('RS256', 'old'), makeKey('RS256', 'new')]);
    const idp = await startJwksServer(jwks([k1]));
    const gw = await gatewayFor(idp, {}, { timeout: '300ms' });
    try {
      await until(() => idp.requests === 1, 5000, 'the warm-up fetch');
      idp.setKeys(jwks([k1, k2]));
      idp.delayMs = 1000;
      const token = await signToken(k2);
      const started = performance.now();
      const logged = await logsOf(async () => {
        const r = await get(gw.url, '/p', bearer(token));
        assert.equal(r.status, 401);
        assert.equal(r.headers['www-authenticate'], 'Bearer');
      });
      assert.ok(performance.now() - started < 900);
      assert.deepEqual(codes(logged), ['AUTH_KEYS_UNAVAILABLE'], 'not "unknown key": the set was still on its way');
      assert.equal((await get(gw.url, '/p', bearer(await signToken(k1)))).status, 200, 'known keys unaffected meanwhile');
      await until(() => idp.requests === 2, 3000);
      await sleep(1100);
      assert.equal((await get(gw.url, '/p', bearer(token))).status, 200);
      assert.equal(idp.requests, 2);
    } finally {
      await gw.close();
      await idp.close();
    }
  });

  it('endpoints with the same jwk_url settings share one cache', async () => {
    const k1 = await makeKey('RS256', 'k1');
    const idp = await startJwksServer(jwks([k1]));
    const v = { alg: 'RS256', jwk_url: idp.url, disable_jwk_security: true, cache: true };
    const gw = await startGateway({
      host: [be.url],
      endpoints: ['/a', '/b', '/c'].map((endpoint) => ({ endpoint, extra_config: { 'auth/validator': { ...v, roles: endpoint === '/c' ? ['x'] : [] } }, backend: [{ url_pattern: '/ok' }] })),
    });
    try {
      const token = await signToken(k1, { roles: ['x'] });
      for (const p of ['/a', '/b', '/c']) assert.equal((await get(gw.url, p, bearer(token))).status, 200);
      assert.equal(idp.requests, 1);
    } finally {
      await gw.close();
      await idp.close();
    }
  });

  it('a reload that leaves the validator unchanged keeps the warm keys; a changed jwk setting fetches anew', async () => {
    const k1 = await makeKey('RS256', 'k1');
    const idp = await startJwksServer(jwks([k1]));
    const config = (validator: Record<string, unknown>, path = '/p') => ({
      host: [be.url],
      endpoints: [{ endpoint: path, extra_config: { 'auth/validator': { alg: 'RS256', jwk_url: idp.url, disable_jwk_security: true, cache: true, ...validator } }, backend: [{ url_pattern: '/ok' }] }],
    });
    const gw = await startGateway(config({}));
    try {
      const token = await signToken(k1, { roles: ['a'] });
      await until(() => idp.requests === 1, 5000, 'the warm-up fetch');
      assert.equal((await get(gw.url, '/p', bearer(token))).status, 200);
      // Same key-set settings (other validator fields and paths may change).
      await gw.reload(config({ roles: ['a'] }, '/q'));
      assert.equal((await get(gw.url, '/q', bearer(token))).status, 200);
      await gw.reload(config({ roles: ['a'] }, '/q'));
      await sleep(1100); // the retired plans are released (close(1000))
      assert.equal((await get(gw.url, '/q', bearer(token))).status, 200);
      assert.equal(idp.requests, 1, 'the key set survived two reloads');
      assert.equal(gw.state.keys().filter((k) => k.startsWith('auth/jwk-source')).length, 1);
      await gw.reload(config({ cache_duration: 60 }));
      await until(() => idp.requests === 2, 5000, 'a fresh source for changed settings');
      assert.equal((await get(gw.url, '/p', bearer(token))).status, 200);
      await sleep(1100);
      assert.equal(gw.state.keys().filter((k) => k.startsWith('auth/jwk-source')).length, 1, 'the old source was disposed');
    } finally {
      await gw.close();
      await idp.close();
    }
  });
});

describe('auth/validator over HTTPS: jwk_local_ca, jwk_fingerprints, cipher_suites', { skip: opensslMissing() }, () => {
  let pki: Pki;
  let idp: JwksServer;
  let be: TestBackend;
  let k1: TestKey;
  before(async () => {
    pki = await makePki();
    k1 = await makeKey('RS256', 'k1');
    idp = await startJwksServer(jwks([k1]), { tls: { cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) } });
    be = await startBackend((_req, res) => json(res, { ok: true }));
  });
  after(async () => {
    await idp.close();
    await be.close();
    pki.cleanup();
  });

  const serve = (validator: Record<string, unknown>, url = idp.url) =>
    startGateway({ host: [be.url], endpoints: [{ endpoint: '/p', extra_config: { 'auth/validator': { alg: 'RS256', jwk_url: url, cache: true, failed_jwk_key_cooldown: '1s', ...validator } }, backend: [{ url_pattern: '/ok' }] }] });

  /** KrakenD's pin: base64 of the SHA-256 of a certificate's public key (SPKI, DER). */
  const spkiPin = (certFile: string, encoding: 'base64' | 'base64url' = 'base64') =>
    createHash('sha256').update(new X509Certificate(readFileSync(certFile)).publicKey.export({ type: 'spki', format: 'der' })).digest(encoding);

  it('a private CA with jwk_local_ca: keys fetched over verified TLS', async () => {
    const gw = await serve({ jwk_local_ca: pki.ca });
    try {
      assert.equal((await get(gw.url, '/p', bearer(await signToken(k1)))).status, 200);
    } finally {
      await gw.close();
    }
  });

  it('without the CA, the certificate is not trusted: keys unavailable, 401 (disable_jwk_security does not change that)', async () => {
    const gw = await serve({ disable_jwk_security: true });
    try {
      assert.equal((await get(gw.url, '/p', bearer(await signToken(k1)))).status, 401);
    } finally {
      await gw.close();
    }
  });

  it('jwk_fingerprints: a matching pin passes, another one fails the connection', async () => {
    const ok = await serve({ jwk_local_ca: pki.ca, jwk_fingerprints: [spkiPin(pki.ca), spkiPin(pki.serverCert, 'base64url')] });
    const bad = await serve({ jwk_local_ca: pki.ca, jwk_fingerprints: [spkiPin(pki.otherCa)] });
    try {
      assert.equal((await get(ok.url, '/p', bearer(await signToken(k1)))).status, 200);
      assert.equal((await get(bad.url, '/p', bearer(await signToken(k1)))).status, 401);
    } finally {
      await ok.close();
      await bad.close();
    }
  });

  it('cipher_suites restrict the TLS 1.2 suites (TLS 1.3 is left alone, as Go does)', async () => {
    // A TLS 1.2-only host with an EC certificate: an ECDSA suite connects, an RSA-only one cannot.
    const tls12 = await startJwksServer(jwks([k1]), { tls: { cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey), maxVersion: 'TLSv1.2' } });
    const ecdsa = await serve({ jwk_local_ca: pki.ca, cipher_suites: [49195, 49196] }, tls12.url);
    const rsaOnly = await serve({ jwk_local_ca: pki.ca, cipher_suites: [49199, 49200] }, tls12.url);
    const tls13 = await serve({ jwk_local_ca: pki.ca, cipher_suites: [49199] });
    try {
      assert.equal((await get(ecdsa.url, '/p', bearer(await signToken(k1)))).status, 200);
      assert.equal((await get(rsaOnly.url, '/p', bearer(await signToken(k1)))).status, 401);
      assert.equal((await get(tls13.url, '/p', bearer(await signToken(k1)))).status, 200, 'TLS 1.3 negotiates its own suites');
    } finally {
      await Promise.all([ecdsa.close(), rsaOnly.close(), tls13.close()]);
      await tls12.close();
    }
  });
});
