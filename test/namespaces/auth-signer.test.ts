// auth/signer: token-issuing endpoints. Signed keys verified with jose; a
// token the signer issues validated by auth/validator on another endpoint of
// the same gateway; failures answered as KrakenD answers them, never unsigned.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { compactVerify, decodeProtectedHeader, flattenedVerify, importJWK } from 'jose';
import { formatIssue, loadConfigText } from '../../src/config/load.ts';
import { authSigner, type SignerOptions } from '../../src/namespaces/auth-signer.ts';
import { optionsOf } from '../../src/namespaces/namespace.ts';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';
import { get, request } from '../helpers/http.ts';
import { jwks, makeKey, now, startJwksServer, type JwksServer, type TestKey } from '../helpers/jwks-server.ts';

const tmp = mkdtempSync(join(tmpdir(), 'portico-signer-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function check(signer: unknown, endpoint: Record<string, unknown> = {}) {
  const text = JSON.stringify({
    version: 3,
    endpoints: [{ endpoint: '/token', extra_config: { 'auth/signer': signer }, backend: [{ host: ['http://127.0.0.1:9'], url_pattern: '/' }], ...endpoint }],
  });
  const r = loadConfigText(text, 'test.json', { env: {} });
  return { errors: r.errors.map(formatIssue), warnings: r.warnings.map(formatIssue), config: r.config };
}

describe('auth/signer configuration', () => {
  let hs: TestKey;
  let rsa: TestKey;
  let secretFile: string;
  let publicFile: string;
  before(async () => {
    [hs, rsa] = await Promise.all([makeKey('HS256', 'sim2'), makeKey('RS256', 'rsa')]);
    secretFile = join(tmp, 'secret.json');
    publicFile = join(tmp, 'public.json');
    writeFileSync(secretFile, JSON.stringify(jwks([hs], 'private')));
    writeFileSync(publicFile, JSON.stringify(jwks([rsa], 'public')));
  });

  it('parses into plain, cloneable options', () => {
    const r = check({ alg: 'HS256', kid: 'sim2', keys_to_sign: ['access_token'], jwk_local_path: secretFile, disable_jwk_security: true });
    assert.deepEqual(r.errors, []);
    const o = optionsOf(r.config!.endpoints[0]!.namespaces, authSigner) as SignerOptions;
    assert.deepEqual(structuredClone(o), o);
    assert.deepEqual(o.keysToSign, ['access_token']);
    assert.equal(o.full, false);
  });

  it('alg, kid and keys_to_sign are required', () => {
    const text = check({ jwk_local_path: secretFile }).errors.join('\n');
    assert.match(text, /\.alg: expected the signing algorithm/);
    assert.match(text, /\.kid: expected the kid of the key to sign with/);
    assert.match(text, /\.keys_to_sign: expected the keys of the backend answer to sign/);
  });

  it('the local key set is read when the plan compiles: the kid must be there, with its private part', async () => {
    assert.deepEqual(check({ alg: 'HS256', kid: 'other', keys_to_sign: ['a'], jwk_local_path: secretFile }).errors, [], 'check does not read key files');
    const serve = (signer: Record<string, unknown>) =>
      startGateway({ endpoints: [{ endpoint: '/t', extra_config: { 'auth/signer': signer }, backend: [{ host: ['http://127.0.0.1:9'], url_pattern: '/' }] }] });
    await assert.rejects(serve({ alg: 'HS256', kid: 'other', keys_to_sign: ['a'], jwk_local_path: secretFile }), /auth\/signer at \$\.endpoints\[0\]\.extra_config\["auth\/signer"\]\.jwk_local_path: .* holds no key with kid "other"/);
    await assert.rejects(serve({ alg: 'RS256', kid: 'rsa', keys_to_sign: ['a'], jwk_local_path: publicFile }), /holds only the public part of key "rsa": signing needs the private key/);
  });

  it('what cannot be honoured is an error; leeway is accepted and said to have no effect', () => {
    const r = check({ alg: 'HS256', kid: 'sim2', keys_to_sign: ['a'], jwk_local_path: secretFile, secret_url: 'awskms://key', leeway: '1s' });
    assert.match(r.errors.join('\n'), /secret_url.*not supported by this version/);
    assert.match(r.warnings.join('\n'), /leeway has no effect on signing/);
    assert.match(check({ alg: 'RS256', kid: 'k', keys_to_sign: ['a'], jwk_url: 'http://idp/keys' }).errors.join('\n'), /plain http needs "disable_jwk_security": true/);
  });
});

describe('auth/signer on requests', () => {
  let be: TestBackend;
  let keys: JwksServer;
  let publicKeys: JwksServer;
  let gw: TestGateway;
  let hs: TestKey;
  let rsa: TestKey;
  const login = () => ({
    access_token: { sub: 'alice', aud: 'api', iss: 'https://portico.test', roles: ['user'], exp: now() + 300 },
    refresh_token: { sub: 'alice', jti: 'r-1', exp: now() + 3600 },
    exp: 1735689600,
    note: 'not an object: left as it is',
  });

  before(async () => {
    [hs, rsa] = await Promise.all([makeKey('HS256', 'sim2'), makeKey('RS256', 'rsa-sign')]);
    const secretFile = join(tmp, 'symmetric.json');
    writeFileSync(secretFile, JSON.stringify(jwks([hs], 'private')));
    keys = await startJwksServer(jwks([rsa], 'private'));
    publicKeys = await startJwksServer(jwks([rsa], 'public'));
    be = await startBackend((req, res) => {
      if (req.url === '/login') return json(res, login());
      if (req.url === '/fail') return json(res, { error: 'bad credentials' }, 401);
      if (req.url === '/part') return json(res, { access_token: { sub: 'x' } });
      return json(res, { path: req.url, user: req.headers['x-user'] ?? null });
    });
    const hsSigner = { alg: 'HS256', kid: 'sim2', keys_to_sign: ['access_token', 'refresh_token', 'note', 'absent'], jwk_local_path: secretFile, disable_jwk_security: true };
    gw = await startGateway({
      host: [be.url],
      endpoints: [
        { endpoint: '/token', method: 'POST', extra_config: { 'auth/signer': hsSigner }, backend: [{ url_pattern: '/login' }] },
        { endpoint: '/token-full', extra_config: { 'auth/signer': { ...hsSigner, full: true } }, backend: [{ url_pattern: '/login' }] },
        { endpoint: '/token-rs', extra_config: { 'auth/signer': { alg: 'RS256', kid: 'rsa-sign', keys_to_sign: ['access_token'], jwk_url: keys.url, disable_jwk_security: true } }, backend: [{ url_pattern: '/login' }] },
        { endpoint: '/token-nokey', extra_config: { 'auth/signer': { alg: 'RS256', kid: 'missing', keys_to_sign: ['access_token'], jwk_url: keys.url, disable_jwk_security: true } }, backend: [{ url_pattern: '/login' }] },
        { endpoint: '/token-fail', extra_config: { 'auth/signer': hsSigner }, backend: [{ url_pattern: '/fail' }] },
        { endpoint: '/token-partial', extra_config: { 'auth/signer': hsSigner }, backend: [{ url_pattern: '/part', group: 'a' }, { url_pattern: '/fail', group: 'b' }] },
        {
          endpoint: '/me',
          input_headers: ['x-user'],
          extra_config: { 'auth/validator': { alg: 'HS256', jwk_local_path: secretFile, audience: ['api'], roles: ['user'], propagate_claims: [['sub', 'x-user']] } },
          backend: [{ url_pattern: '/me/{JWT.sub}' }],
        },
        {
          endpoint: '/me-rs',
          extra_config: { 'auth/validator': { alg: 'RS256', jwk_url: publicKeys.url, disable_jwk_security: true, cache: true, issuer: 'https://portico.test' } },
          backend: [{ url_pattern: '/me/{JWT.sub}' }],
        },
      ],
    });
  });
  after(async () => {
    await gw.close();
    await be.close();
    await keys.close();
    await publicKeys.close();
  });

  it('signs each listed object as a compact JWS; other values stay as they are', async () => {
    const r = await request(gw.url, '/token', { method: 'POST', body: '{"user":"alice","pass":"x"}' });
    assert.equal(r.status, 200, r.body);
    const body = r.json();
    assert.equal(typeof body.access_token, 'string');
    assert.equal(body.note, 'not an object: left as it is');
    assert.equal(body.exp, 1735689600);
    assert.ok(!('absent' in body));
    const secret = await importJWK(hs.privateJwk, 'HS256');
    for (const key of ['access_token', 'refresh_token']) {
      const { payload, protectedHeader } = await compactVerify(body[key], secret);
      assert.deepEqual(protectedHeader, { alg: 'HS256', kid: 'sim2', typ: 'JWT' });
      assert.equal(JSON.parse(new TextDecoder().decode(payload)).sub, 'alice');
    }
  });

  it('full: the JSON serialization, as a string (go-jose FullSerialize)', async () => {
    const r = await get(gw.url, '/token-full');
    assert.equal(r.status, 200, r.body);
    const full = JSON.parse(r.json().access_token);
    assert.deepEqual(Object.keys(full), ['payload', 'protected', 'signature']);
    const { payload } = await flattenedVerify(full, await importJWK(hs.privateJwk, 'HS256'));
    assert.equal(JSON.parse(new TextDecoder().decode(payload)).sub, 'alice');
  });

  it('a token the signer issues validates on another endpoint of the same gateway (HS256, local key file)', async () => {
    const token = (await request(gw.url, '/token', { method: 'POST', body: '{}' })).json().access_token as string;
    const r = await get(gw.url, '/me', { authorization: `Bearer ${token}` });
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json(), { path: '/me/alice', user: 'alice' });
    const refresh = (await request(gw.url, '/token', { method: 'POST', body: '{}' })).json().refresh_token as string;
    assert.equal((await get(gw.url, '/me', { authorization: `Bearer ${refresh}` })).status, 401, 'the refresh token has no audience "api"');
  });

  it('RS256: private keys from a jwk_url sign, the public set on another URL validates', async () => {
    const token = (await get(gw.url, '/token-rs')).json().access_token as string;
    assert.equal(decodeProtectedHeader(token).kid, 'rsa-sign');
    const r = await get(gw.url, '/me-rs', { authorization: `Bearer ${token}` });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json().path, '/me/alice');
  });

  it('a failed or partial backend answer: 400 with an empty body, as KrakenD', async () => {
    for (const path of ['/token-fail', '/token-partial']) {
      const r = await get(gw.url, path);
      assert.equal(r.status, 400, path);
      assert.equal(r.body, '');
    }
  });

  it('a kid missing from the key set: 500, never an unsigned token', async () => {
    const r = await get(gw.url, '/token-nokey');
    assert.equal(r.status, 500);
    assert.equal(r.body, '');
    assert.ok(!r.body.includes('alice'));
  });

  it('a key set host that is down on a cold start: 500, never unsigned', async () => {
    const key = await makeKey('ES256', 'es');
    const idp = await startJwksServer(jwks([key], 'private'));
    await idp.down();
    const gw2 = await startGateway({
      host: [be.url],
      endpoints: [{ endpoint: '/t', extra_config: { 'auth/signer': { alg: 'ES256', kid: 'es', keys_to_sign: ['access_token'], jwk_url: idp.url, disable_jwk_security: true } }, backend: [{ url_pattern: '/login' }] }],
    });
    try {
      const r = await get(gw2.url, '/t');
      assert.equal(r.status, 500);
      assert.equal(r.body, '');
    } finally {
      await gw2.close();
      await idp.close();
    }
  });

  it('a no-op endpoint cannot be signed: a config error at the namespace', async () => {
    await assert.rejects(
      startGateway({
        host: [be.url],
        endpoints: [{ endpoint: '/t', output_encoding: 'no-op', extra_config: { 'auth/signer': { alg: 'RS256', kid: 'rsa-sign', keys_to_sign: ['a'], jwk_url: keys.url, disable_jwk_security: true } }, backend: [{ url_pattern: '/login', encoding: 'no-op' }] }],
      }),
      /\$\.endpoints\[0\]\.extra_config\["auth\/signer"\]: expected an endpoint whose answer Portico decodes \(a no-op answer is streamed and cannot be signed\)/,
    );
  });
});
