// A signing key for the JWT benchmark scenario, made fresh for each run: the
// JWKS the backend serves (as a static file) and one RS256 token that
// validates against it. Written with node:crypto because the bench needs one
// token, synchronously, before any server starts.

import { createPrivateKey, generateKeyPairSync, sign, type JsonWebKey } from 'node:crypto';

export const JWT_ISSUER = 'https://issuer.bench.local';
export const JWT_AUDIENCE = 'portico-bench';
export const JWT_KID = 'bench-key-1';

const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });

/** The JWKS document, as the backend serves it under /data/jwks.json. */
export function benchJwks(): string {
  const jwk = publicKey.export({ format: 'jwk' }) as JsonWebKey;
  return JSON.stringify({ keys: [{ ...jwk, kid: JWT_KID, alg: 'RS256', use: 'sig' }] });
}

const b64url = (v: string | Buffer): string => Buffer.from(v).toString('base64url');

/** An RS256 token valid for a day, with the issuer, audience and a role. */
export function benchToken(): string {
  const now = Math.floor(Date.now() / 1000);
  const header = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: JWT_KID }));
  const payload = b64url(JSON.stringify({ iss: JWT_ISSUER, aud: JWT_AUDIENCE, sub: 'bench-user', roles: ['user'], iat: now, exp: now + 86_400 }));
  const signature = sign('sha256', Buffer.from(`${header}.${payload}`), createPrivateKey(privateKey.export({ format: 'pem', type: 'pkcs8' })));
  return `${header}.${payload}.${b64url(signature)}`;
}
