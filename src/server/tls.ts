// node:https options for the top-level `tls` block (HTTPS and mTLS), following
// what KrakenD (Go crypto/tls, lura's ParseTLSConfig) does wherever Node allows.
// Everything is read and checked here, once, at startup: an unreadable or
// unusable file throws an Error naming the file and its config key.

import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, getCACertificates, type SecureContext, type SecureContextOptions, type TlsOptions } from 'node:tls';
import { DEFAULT_TLS_VERSION } from '../config/defaults.ts';
import type { TlsConfig } from '../config/types.ts';

type TlsVersion = 'TLSv1.2' | 'TLSv1.3';

/** KrakenD's default for both bounds when min_version/max_version are unset (normalization fills them already). */
const DEFAULT_VERSION: TlsVersion = DEFAULT_TLS_VERSION;

/**
 * Go/IANA cipher suite id -> OpenSSL name, for the TLS 1.2 suites Go implements.
 * Not here: RC4 (0x0005, 0xc007, 0xc011) and 3DES (0x000a, 0xc012), which Node's
 * OpenSSL 3 refuses ("no cipher match") and Go leaves out of its defaults.
 */
const TLS12_CIPHERS: Readonly<Record<number, string>> = {
  0x002f: 'AES128-SHA', // TLS_RSA_WITH_AES_128_CBC_SHA
  0x0035: 'AES256-SHA', // TLS_RSA_WITH_AES_256_CBC_SHA
  0x003c: 'AES128-SHA256', // TLS_RSA_WITH_AES_128_CBC_SHA256
  0x009c: 'AES128-GCM-SHA256', // TLS_RSA_WITH_AES_128_GCM_SHA256
  0x009d: 'AES256-GCM-SHA384', // TLS_RSA_WITH_AES_256_GCM_SHA384
  0xc009: 'ECDHE-ECDSA-AES128-SHA', // TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA
  0xc00a: 'ECDHE-ECDSA-AES256-SHA', // TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA
  0xc013: 'ECDHE-RSA-AES128-SHA', // TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA
  0xc014: 'ECDHE-RSA-AES256-SHA', // TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA
  0xc023: 'ECDHE-ECDSA-AES128-SHA256', // TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256
  0xc027: 'ECDHE-RSA-AES128-SHA256', // TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256
  0xc02b: 'ECDHE-ECDSA-AES128-GCM-SHA256', // TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
  0xc02c: 'ECDHE-ECDSA-AES256-GCM-SHA384', // TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
  0xc02f: 'ECDHE-RSA-AES128-GCM-SHA256', // TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
  0xc030: 'ECDHE-RSA-AES256-GCM-SHA384', // TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
  0xcca8: 'ECDHE-RSA-CHACHA20-POLY1305', // TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
  0xcca9: 'ECDHE-ECDSA-CHACHA20-POLY1305', // TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
};

/**
 * The TLS 1.3 suites (ids 0x1301-0x1303), always appended to `ciphers`: as in Go they
 * are not configurable, so listing their ids changes nothing. Node takes the TLS_*
 * names in `ciphers` as the TLS 1.3 set; naming all three keeps that set explicit.
 */
const TLS13_SUITES = 'TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256';

/** lura's defaultCipherSuites (ECDHE with AEAD only), used when cipher_suites is unset. */
const DEFAULT_TLS12_IDS = [0xc02f, 0xc02b, 0xc030, 0xc02c, 0xcca8, 0xcca9];

/** Go tls.CurveID -> OpenSSL group name. */
const CURVES: Readonly<Record<number, string>> = {
  23: 'prime256v1', // CurveP256
  24: 'secp384r1', // CurveP384
  25: 'secp521r1', // CurveP521
  29: 'X25519',
  // Post-quantum hybrids (Go 1.24+/1.26); OpenSSL 3.5+ has them, older builds are probed below.
  4587: 'SecP256r1MLKEM768',
  4588: 'X25519MLKEM768',
  4589: 'SecP384r1MLKEM1024',
};

interface KeyPair {
  cert: Buffer;
  key: Buffer;
  leaf: X509Certificate;
  /** OpenSSL keeps one certificate per key type (rsa, ec, ed25519...) in a context. */
  keyType: string;
}

/** node:https options for the `tls` block. Throws, naming the file and key, when a file is unreadable or unusable. */
export function tlsServerOptions(tls: TlsConfig): TlsOptions & SecureContextOptions {
  const minVersion = tls.minVersion ?? DEFAULT_VERSION;
  const maxVersion = tls.maxVersion ?? DEFAULT_VERSION;
  if (minVersion === 'TLSv1.3' && maxVersion === 'TLSv1.2') {
    // Go would start and then fail every handshake; refuse to start instead.
    throw new Error('tls.max_version "TLS12" is below tls.min_version "TLS13" (TLS 1.3 is the default when min_version is unset): no client could connect');
  }

  const pairs = loadKeyPairs(tls);
  const context: SecureContextOptions = { minVersion, maxVersion, ciphers: cipherList(tls.cipherSuites, maxVersion) };
  const ecdhCurve = curveList(tls.curvePreferences);
  if (ecdhCurve !== undefined) context.ecdhCurve = ecdhCurve;
  if (tls.requireClientCert) context.ca = clientCas(tls, pairs);

  const defaults = firstOfEachKeyType(pairs);
  const options: TlsOptions & SecureContextOptions = {
    ...context,
    cert: defaults.map((p) => p.cert),
    key: defaults.map((p) => p.key),
  };
  if (tls.requireClientCert) {
    // Go's tls.RequireAndVerifyClientCert: no certificate, or one no trusted CA signed, fails the handshake.
    options.requestCert = true;
    options.rejectUnauthorized = true;
  }
  if (defaults.length < pairs.length && process.versions.bun !== undefined) {
    // Bun 1.4's TLS server never calls SNICallback (nor has addContext): the other pairs would never be served.
    throw new Error('tls.keys: several key pairs of the same key type are chosen by the SNI name, which Portico cannot do on Bun (its TLS server calls no SNICallback); run this configuration on Node, or keep one key pair per key type');
  }
  if (pairs.length > 1) options.SNICallback = sniSelector(pairs, defaults, context);
  return options;
}

function loadKeyPairs(tls: TlsConfig): KeyPair[] {
  const configured = tls.keyPairs.length > 0 ? tls.keyPairs : [{ publicKey: tls.publicKey, privateKey: tls.privateKey }];
  return configured.map(({ publicKey, privateKey }, i) => {
    // Normalization does not record whether pair 1 came from tls.public_key or tls.keys[0], so pairs are numbered.
    const what = configured.length === 1 ? 'tls' : `tls key pair ${i + 1} of ${configured.length},`;
    const cert = readPem(publicKey, `${what} public_key`);
    const key = readPem(privateKey, `${what} private_key`);
    const leaf = parseCertificate(cert, publicKey, `${what} public_key`);
    let privateKeyObject: KeyObject;
    try {
      privateKeyObject = createPrivateKey(key);
    } catch (err) {
      throw new Error(`${what} private_key "${privateKey}" holds no usable PEM private key (encrypted keys are not supported): ${(err as Error).message}`, { cause: err });
    }
    if (!leaf.checkPrivateKey(privateKeyObject)) {
      throw new Error(`${what} private_key "${privateKey}" does not match the certificate in public_key "${publicKey}"`);
    }
    return { cert, key, leaf, keyType: privateKeyObject.asymmetricKeyType ?? 'unknown' };
  });
}

function readPem(file: string, key: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`${key}: cannot read "${file}": ${(err as Error).message}`, { cause: err });
  }
}

/** The first certificate of a PEM file (the leaf, for a chain). */
function parseCertificate(pem: Buffer, file: string, key: string): X509Certificate {
  try {
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new Error('no "-----BEGIN CERTIFICATE-----" block');
    return new X509Certificate(pem);
  } catch (err) {
    throw new Error(`${key}: "${file}" holds no PEM certificate: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The CAs that may sign client certificates, as in lura: the system pool (Node's
 * bundled roots) unless disable_system_ca_pool, every ca_certs file, and the
 * server's own certificate files (all certificates in them, chains included).
 */
function clientCas(tls: TlsConfig, pairs: KeyPair[]): Array<string | Buffer> {
  // The operating system's trust store, as KrakenD (Go) uses it, not Node's bundled Mozilla list.
  const ca: Array<string | Buffer> = tls.disableSystemCaPool ? [] : [...getCACertificates('system')];
  tls.caCerts.forEach((file, i) => {
    const pem = readPem(file, `tls.ca_certs[${i}]`);
    // Node silently ignores a `ca` entry that is not a certificate; say so at startup instead.
    parseCertificate(pem, file, `tls.ca_certs[${i}]`);
    ca.push(pem);
  });
  for (const p of pairs) ca.push(p.cert);
  return ca;
}

function cipherList(ids: number[] | undefined, maxVersion: TlsVersion): string {
  const names = new Set<string>();
  for (const id of ids ?? DEFAULT_TLS12_IDS) {
    // TLS 1.3 ids (0x1301-0x1303): always on, see TLS13_SUITES. Unknown ids: Go never negotiates a
    // suite it does not implement, so ignoring them here gives the same handshakes,
    // and a file KrakenD accepts still starts.
    const name = TLS12_CIPHERS[id];
    if (name !== undefined) names.add(name);
  }
  if (names.size === 0 && maxVersion === 'TLSv1.2') {
    throw new Error(
      `tls.cipher_suites ${JSON.stringify(ids)} has no TLS 1.2 cipher suite Portico can serve, and max_version "TLS12" rules out TLS 1.3: no client could connect`,
    );
  }
  // With no TLS 1.2 names Node raises min_version to TLS 1.3, which is what Go does in
  // effect (a TLS 1.2 handshake finds no common suite).
  return [...names, TLS13_SUITES].join(':');
}

/** ecdhCurve for curve_preferences; undefined keeps Node's default ("auto"). */
function curveList(ids: number[] | undefined): string | undefined {
  // Unset: Node's default groups, not lura's [23, 24, 25]: without X25519 (which every
  // TLS 1.3 client sends its key share for) nearly every handshake would pay a HelloRetryRequest.
  if (ids === undefined) return undefined;
  const names = new Set<string>();
  for (const id of ids) {
    // Unknown ids are ignored for the same reason as unknown cipher suites: Go never negotiates them.
    const name = CURVES[id];
    if (name !== undefined && groupSupported(name)) names.add(name);
  }
  if (names.size === 0) {
    throw new Error(
      `tls.curve_preferences ${JSON.stringify(ids)} has no curve Portico supports (23 P-256, 24 P-384, 25 P-521, 29 X25519, 4588 X25519MLKEM768): no ECDHE handshake could succeed`,
    );
  }
  return [...names].join(':');
}

const groupSupport = new Map<string, boolean>();
function groupSupported(name: string): boolean {
  let ok = groupSupport.get(name);
  if (ok === undefined) {
    try {
      createSecureContext({ ecdhCurve: name });
      ok = true;
    } catch {
      ok = false; // this Node's OpenSSL lacks the group (e.g. ML-KEM hybrids before OpenSSL 3.5)
    }
    groupSupport.set(name, ok);
  }
  return ok;
}

/** OpenSSL keeps one certificate per key type: the first pair of each type wins, as Go prefers earlier certificates. */
function firstOfEachKeyType(pairs: KeyPair[]): KeyPair[] {
  const seen = new Set<string>();
  return pairs.filter((p) => {
    if (seen.has(p.keyType)) return false;
    seen.add(p.keyType);
    return true;
  });
}

/**
 * Go picks, per handshake, the first certificate whose names match the client's SNI
 * (falling back to the first one). Node's `cert` array cannot do that: two
 * certificates of the same key type overwrite each other. So each SNI name gets a
 * context with the first matching pair of each key type (OpenSSL then picks the
 * type the client supports); no SNI or no match keeps the default context.
 */
function sniSelector(
  pairs: KeyPair[],
  defaults: KeyPair[],
  context: SecureContextOptions,
): (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) => void {
  const defaultKey = defaults.map((p) => pairs.indexOf(p)).join(',');
  // Keyed by the chosen pairs, not the name, so the cache stays bounded whatever names clients send.
  const contexts = new Map<string, SecureContext>();
  return (servername, cb) => {
    const chosen = firstOfEachKeyType(pairs.filter((p) => p.leaf.checkHost(servername) !== undefined));
    const key = chosen.map((p) => pairs.indexOf(p)).join(',');
    if (chosen.length === 0 || key === defaultKey) return cb(null);
    let ctx = contexts.get(key);
    if (!ctx) {
      try {
        ctx = createSecureContext({ ...context, cert: chosen.map((p) => p.cert), key: chosen.map((p) => p.key) });
      } catch (err) {
        return cb(err as Error);
      }
      contexts.set(key, ctx);
    }
    cb(null, ctx);
  };
}
