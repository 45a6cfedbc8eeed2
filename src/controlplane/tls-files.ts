// PEM files of the control-plane link (the control plane's --tls-cert,
// --tls-key, --client-ca; a gateway's --control-plane-cert/-key/-ca; ctl's
// --ca), read and checked so that a wrong file is an error naming the flag and
// the file, at start-up or on SIGHUP, never a failed handshake later.

import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';

export interface TlsFiles {
  /** Certificate (chain) presented to the peer, and its key. */
  cert?: string;
  key?: string;
  /** CA certificates trusted for the peer's certificate. */
  ca?: string;
}

/** Names of the flags, for the error messages. */
export type TlsFlags = Record<keyof TlsFiles, string>;

export interface TlsMaterial {
  cert?: Buffer;
  key?: Buffer;
  ca?: Buffer;
  /** Of `cert`: its subject, when it expires, and its SHA-256 fingerprint (for the logs). */
  certInfo?: { subject: string; valid_to: string; fingerprint256: string };
}

/** Read and check every file named (throws an Error naming the flag and the file). */
export function readTlsFiles(files: TlsFiles, flags: TlsFlags): TlsMaterial {
  if ((files.cert === undefined) !== (files.key === undefined)) throw new Error(`${flags.cert} and ${flags.key} go together`);
  const out: TlsMaterial = {};
  if (files.ca !== undefined) {
    out.ca = readPem(flags.ca, files.ca);
    check(flags.ca, files.ca, () => new X509Certificate(out.ca!));
  }
  if (files.cert !== undefined && files.key !== undefined) {
    const cert = readPem(flags.cert, files.cert);
    const key = readPem(flags.key, files.key);
    const x509 = check(flags.cert, files.cert, () => new X509Certificate(cert));
    const privateKey = check(flags.key, files.key, () => createPrivateKey(key));
    if (!x509.checkPrivateKey(privateKey)) throw new Error(`${flags.key} ${files.key} is not the key of ${flags.cert} ${files.cert}`);
    out.cert = cert;
    out.key = key;
    out.certInfo = { subject: x509.subject.replace(/\n/g, ', '), valid_to: new Date(x509.validTo).toISOString(), fingerprint256: x509.fingerprint256 };
  }
  return out;
}

function readPem(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(`${flag} ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message}`);
  }
}

function check<T>(flag: string, file: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new Error(`${flag} ${file}: not a usable PEM file (${(err as Error).message})`);
  }
}
