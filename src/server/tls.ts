import { readFileSync } from 'node:fs';
import type { SecureContextOptions, TlsOptions } from 'node:tls';
import type { TlsConfig } from '../config/types.ts';

/** node:https options for the `tls` block. Placeholder until mTLS details land. */
export function tlsServerOptions(tls: TlsConfig): TlsOptions & SecureContextOptions {
  return {
    cert: readFileSync(tls.publicKey),
    key: readFileSync(tls.privateKey),
    minVersion: tls.minVersion ?? 'TLSv1.3',
  };
}
