// How to reach etcd: client URLs, TLS material and user/password, checked and
// read once at start-up from the command line (--etcd, --etcd-ca, --etcd-cert,
// --etcd-cert-key, --etcd-user) and $PORTICO_ETCD_PASSWORD, for `portico run` and
// `portico control-plane` alike. No etcd3 import here: the CLI parses these
// flags without loading gRPC.

import { readTlsFiles } from './tls-files.ts';

export interface EtcdSecurity {
  /** PEM files' contents; present only with https:// URLs. */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  auth?: { username: string; password: string };
}

export interface EtcdConnection {
  hosts: string[];
  security: EtcdSecurity;
  /** Said once at start-up (e.g. a password sent over plain http). */
  warnings: string[];
}

/** --etcd, --etcd-ca, --etcd-cert, --etcd-cert-key (key: --etcd-key already names the key in etcd), --etcd-user. */
export interface EtcdFlags {
  etcd: string;
  ca?: string;
  cert?: string;
  key?: string;
  user?: string;
}

/** The flags for parseArgs, shared by `portico run` and `portico control-plane`. */
export const ETCD_SECURITY_OPTIONS = {
  'etcd-ca': { type: 'string' },
  'etcd-cert': { type: 'string' },
  'etcd-cert-key': { type: 'string' },
  'etcd-user': { type: 'string' },
} as const;

/** The flags' values out of parseArgs' result. */
export function etcdFlags(etcd: string, values: Record<string, unknown>): EtcdFlags {
  const s = (k: string) => values[k] as string | undefined;
  return { etcd, ca: s('etcd-ca'), cert: s('etcd-cert'), key: s('etcd-cert-key'), user: s('etcd-user') };
}

/** The etcd flags and environment, checked; an error message for the usage line otherwise. */
export function etcdConnection(flags: EtcdFlags, env: NodeJS.ProcessEnv): EtcdConnection | { error: string } {
  const hosts = flags.etcd.split(',').map((h) => h.trim()).filter(Boolean);
  if (!hosts.length || hosts.some((h) => !/^https?:\/\/./.test(h))) return { error: `--etcd expects comma-separated http(s):// URLs, found "${flags.etcd}"` };
  const secure = hosts.filter((h) => h.startsWith('https://')).length;
  if (secure !== 0 && secure !== hosts.length) return { error: '--etcd URLs must be all https:// or all http://, not a mix' };
  const tlsFlags = (['ca', 'cert', 'key'] as const).filter((f) => flags[f] !== undefined);
  if (secure === 0 && tlsFlags.length) return { error: `--etcd-${tlsFlags[0] === 'key' ? 'cert-key' : tlsFlags[0]} needs https:// etcd URLs` };
  if ((flags.cert === undefined) !== (flags.key === undefined)) return { error: '--etcd-cert and --etcd-cert-key go together' };

  const security: EtcdSecurity = {};
  const warnings: string[] = [];
  if (secure) {
    const tls: NonNullable<EtcdSecurity['tls']> = {};
    try {
      const m = readTlsFiles({ ca: flags.ca, cert: flags.cert, key: flags.key }, { ca: '--etcd-ca', cert: '--etcd-cert', key: '--etcd-cert-key' });
      if (m.ca !== undefined) tls.ca = m.ca;
      if (m.cert !== undefined && m.key !== undefined) {
        tls.cert = m.cert;
        tls.key = m.key;
      }
    } catch (err) {
      return { error: (err as Error).message };
    }
    security.tls = tls;
  }

  const password = env.PORTICO_ETCD_PASSWORD;
  if (flags.user !== undefined) {
    if (flags.user === '') return { error: '--etcd-user cannot be empty' };
    if (!password) return { error: '--etcd-user needs the password in $PORTICO_ETCD_PASSWORD' };
    security.auth = { username: flags.user, password };
    if (!secure && hosts.some((h) => !isLoopback(h))) warnings.push('the etcd password and token cross the network in clear over http://; use https:// etcd URLs');
  } else if (password) return { error: '$PORTICO_ETCD_PASSWORD is set but --etcd-user is not' };
  return { hosts, security, warnings };
}

function isLoopback(url: string): boolean {
  const host = new URL(url).hostname;
  return host === 'localhost' || host === '[::1]' || /^127\./.test(host);
}

/**
 * etcd's and gRPC's failures in words an operator can act on: which flag to
 * check. The original message follows. etcd3's circuit breaker answers for a
 * few seconds after repeated failures with a message that hides their cause,
 * so `lastCause` (the previous explanation) is repeated then.
 */
export function explainEtcdError(err: unknown, lastCause?: string): string {
  const message = err instanceof Error ? err.message : String(err);
  if (/circuit breaker is open/i.test(message) && lastCause) return lastCause;
  const hint = hintFor(message);
  return hint ? `${hint} (${message})` : message;
}

/** explainEtcdError with the last cause remembered, one per client. */
export function etcdErrorExplainer(): (err: unknown) => string {
  let last: string | undefined;
  return (err) => (last = explainEtcdError(err, last));
}

function hintFor(m: string): string | undefined {
  if (/authentication failed|invalid user ID or password/i.test(m)) return 'etcd refused the user name or password (--etcd-user, $PORTICO_ETCD_PASSWORD)';
  if (/user name is empty/i.test(m)) return 'etcd requires a user name and password (--etcd-user, $PORTICO_ETCD_PASSWORD)';
  if (/permission denied/i.test(m)) return "etcd refused the request: the user's roles do not allow it on this key";
  // OpenSSL (Node) words TLS errors with spaces, BoringSSL (Bun) with underscores: SSLV3_ALERT_BAD_CERTIFICATE.
  if (/self[- ]signed|unable to (get|verify)|certificate[ _]verify[ _]failed|unknown ca|ERR_TLS_CERT_ALTNAME|does not match certificate's altnames|certificate has expired|not yet valid/i.test(m)) {
    return "etcd's server certificate is not trusted for this URL (--etcd-ca, the certificate's names and dates)";
  }
  if (/alert[ _]bad[ _]certificate|alert number 4[2-9]|certificate[ _]required|unknown[ _]certificate|certificate[ _]unknown/i.test(m)) return 'etcd refused the TLS handshake: it did not accept the client certificate (--etcd-cert, --etcd-cert-key)';
  if (/wrong[ _]version[ _]number|disconnected before secure TLS connection/i.test(m)) return 'TLS and plain http mixed up (an https:// URL for a plain etcd, or the reverse)';
  return undefined;
}
