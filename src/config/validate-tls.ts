// The service `tls` object (serving HTTPS), with KrakenD's field names. Key
// pairs are either `public_key`/`private_key` (the original form) or a `keys`
// array of such pairs (KrakenD 2.7+), or both.

import { checkFields, expectObject, type ObjectRules } from './fields.ts';
import type { JsonPath } from './json-path.ts';
import type { IssueCollector } from './issues.ts';

/** KrakenD's spelling -> Node's. Older versions KrakenD accepts are refused: Portico serves TLS 1.2+ only. */
export const TLS_VERSIONS: Readonly<Record<string, 'TLSv1.2' | 'TLSv1.3'>> = { TLS12: 'TLSv1.2', TLS13: 'TLSv1.3' };

const TLS_RULES: ObjectRules = {
  public_key: 'string',
  private_key: 'string',
  keys: 'custom',
  min_version: 'custom',
  max_version: 'custom',
  ca_certs: 'string[]',
  enable_mtls: 'boolean',
  disable_system_ca_pool: 'boolean',
  disabled: 'boolean',
  curve_preferences: 'integer[]',
  cipher_suites: 'integer[]',
  prefer_server_cipher_suites: 'boolean',
};

const VERSION_EXPECTED = '"TLS12" or "TLS13" (Portico does not serve older TLS versions)';

export function checkTls(c: IssueCollector, tls: unknown, path: JsonPath): void {
  if (tls === null || tls === undefined) return; // KrakenD accepts "tls": null as "no TLS"
  if (!expectObject(c, tls, path, 'an object with "public_key" and "private_key"')) return;
  checkFields(c, tls, path, TLS_RULES, 'the "tls" object');

  for (const key of ['min_version', 'max_version'] as const) {
    if (key in tls && !(typeof tls[key] === 'string' && (tls[key] as string) in TLS_VERSIONS)) {
      c.invalid([...path, key], VERSION_EXPECTED, tls[key]);
    }
  }
  if (tls.min_version === 'TLS13' && tls.max_version === 'TLS12') {
    c.invalid([...path, 'max_version'], 'a max_version not lower than min_version "TLS13"', tls.max_version);
  }

  let pairs = 0;
  if ('keys' in tls) pairs = checkKeyPairs(c, tls.keys, [...path, 'keys']);
  if (tls.disabled === true || pairs > 0) return;
  if (!('public_key' in tls)) c.missing([...path, 'public_key'], 'the path of the certificate (PEM) file, unless "disabled": true');
  if (!('private_key' in tls)) c.missing([...path, 'private_key'], 'the path of the private key (PEM) file, unless "disabled": true');
}

function checkKeyPairs(c: IssueCollector, keys: unknown, path: JsonPath): number {
  if (!Array.isArray(keys)) {
    c.invalid(path, 'an array of {"public_key": ..., "private_key": ...} objects', keys);
    return 0;
  }
  keys.forEach((pair, i) => {
    const pairPath = [...path, i];
    if (!expectObject(c, pair, pairPath, 'an object {"public_key": ..., "private_key": ...}')) return;
    checkFields(c, pair, pairPath, { public_key: 'string', private_key: 'string' }, 'a tls key pair');
    for (const key of ['public_key', 'private_key']) {
      if (!(key in pair)) c.missing([...pairPath, key], 'the path of a PEM file');
    }
  });
  return keys.length;
}
