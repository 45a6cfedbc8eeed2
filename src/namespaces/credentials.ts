// Helpers shared by the namespaces that handle secrets (API keys, basic auth,
// JWT, OAuth2 client secrets, Redis passwords) and the control plane's tokens:
// digests (also as state keys that must not hold a secret), constant-time
// comparison, and reading credentials out of request headers. Nothing here
// logs or formats a secret.

import { createHash, timingSafeEqual } from 'node:crypto';

/** SHA-256 of a string (UTF-8) or of bytes. */
export function sha256(data: string | Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

/** SHA-256 as lower-case hex: a lookup key that reveals nothing about what was hashed. */
export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Two digests are equal, compared in constant time (digests of different lengths never are). */
export function sameDigest(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** A single request header value: node joins repeated headers with ", " (arrays only for Set-Cookie). */
export function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/**
 * The credentials after `scheme` in an Authorization-style value, or
 * undefined when the value uses another scheme. The scheme matches
 * case-insensitively and is followed by one or more spaces (RFC 9110 §11).
 * An empty string means the scheme came without credentials.
 */
export function schemeCredentials(value: string | undefined, scheme: string): string | undefined {
  if (value === undefined || value.length < scheme.length) return undefined;
  if (value.slice(0, scheme.length).toLowerCase() !== scheme.toLowerCase()) return undefined;
  if (value.length === scheme.length) return '';
  if (value.charCodeAt(scheme.length) !== 0x20) return undefined;
  let i = scheme.length;
  while (i < value.length && value.charCodeAt(i) === 0x20) i++;
  return value.slice(i);
}

/** The first cookie named `name` (Go's Request.Cookie: surrounding double quotes removed). */
export function cookieValue(header: string | string[] | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const line of Array.isArray(header) ? header : [header]) {
    for (const part of line.split(';')) {
      const eq = part.indexOf('=');
      if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
      let v = part.slice(eq + 1).trim();
      if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
      return v;
    }
  }
  return undefined;
}
