// Calls to a control plane, from `portico ctl` and from gateways: node:http(s)
// with keep-alive. https is always verified, against the system's and Node's
// CAs, or only the CA file given (--ca, --control-plane-ca); there is no option
// that turns verification off, and rejectUnauthorized is passed explicitly so
// NODE_TLS_REJECT_UNAUTHORIZED=0 does not turn it off either. node:https
// rather than undici: it is native on Node and on Bun, where the undici
// package costs ~25 MB (proxy/undici-package.ts).

import * as http from 'node:http';
import * as https from 'node:https';
import * as tls from 'node:tls';
import { readTlsFiles, type TlsFiles, type TlsFlags } from './tls-files.ts';

export interface CallAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface CallOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
}

/** Answers over this size are cut off with an error (an envelope holds a configuration of at most 8 MiB). */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

export class ControlPlaneHttp {
  readonly base: URL;
  readonly #files: TlsFiles;
  readonly #flags: TlsFlags;
  #agent: http.Agent;

  /** Reads the TLS files (throws an Error naming the flag and the file). */
  constructor(base: string, files: TlsFiles, flags: TlsFlags) {
    this.base = new URL(base.replace(/\/+$/, '') + '/');
    if (this.base.protocol !== 'http:' && this.base.protocol !== 'https:') throw new Error(`${base}: expected an http:// or https:// URL`);
    const named = (Object.keys(files) as (keyof TlsFiles)[]).filter((k) => files[k] !== undefined);
    if (this.base.protocol === 'http:' && named.length) throw new Error(`${flags[named[0]]} needs an https:// control plane URL, found ${base}`);
    this.#files = files;
    this.#flags = flags;
    this.#agent = this.#newAgent();
  }

  /** Read the TLS files again (SIGHUP); on an error the current ones stay in use. Calls in flight are cut. */
  reload(): void {
    const next = this.#newAgent();
    const old = this.#agent;
    this.#agent = next;
    old.destroy();
  }

  close(): void {
    this.#agent.destroy();
  }

  #newAgent(): http.Agent {
    if (this.base.protocol === 'http:') return new http.Agent({ keepAlive: true });
    const m = readTlsFiles(this.#files, this.#flags);
    const options: tls.SecureContextOptions = { ca: m.ca ?? defaultCas(), cert: m.cert, key: m.key };
    // One context for every connection (the system store holds hundreds of CAs); Bun takes the options themselves.
    const agentTls = process.versions.bun ? options : { secureContext: tls.createSecureContext(options) };
    return new https.Agent({ keepAlive: true, rejectUnauthorized: true, ...agentTls });
  }

  /** One call; rejects with an Error whose message says what failed (TLS verification, refused, ...), or with the signal's reason. */
  call(path: string, opts: CallOptions = {}): Promise<CallAnswer> {
    const url = new URL(path.replace(/^\//, ''), this.base);
    const mod = url.protocol === 'https:' ? https : http;
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.body !== undefined) headers['content-length'] = String(Buffer.byteLength(opts.body));
    return new Promise((resolve, reject) => {
      const signal = opts.signal;
      if (signal?.aborted) return reject(signal.reason);
      const req = mod.request(url, { method: opts.method ?? 'GET', headers, agent: this.#agent, rejectUnauthorized: true }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_ANSWER_BYTES) req.destroy(new Error(`the answer is over ${MAX_ANSWER_BYTES} bytes`));
          else chunks.push(c);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', fail);
      });
      const onAbort = () => req.destroy(signal!.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      function fail(err: Error) {
        signal?.removeEventListener('abort', onAbort);
        reject(signal?.aborted ? signal.reason : new Error(describeCallError(err, url)));
      }
      req.on('error', fail);
      req.on('close', () => signal?.removeEventListener('abort', onAbort));
      req.end(opts.body);
    });
  }
}

/** A gateway's flags for the TLS files of its control plane. */
export const GATEWAY_TLS_FLAGS: TlsFlags = { ca: '--control-plane-ca', cert: '--control-plane-cert', key: '--control-plane-key' };

/** `portico run`'s --control-plane URL and TLS files, checked before start-up: an error message, or undefined. */
export function checkControlPlaneTls(url: string, files: TlsFiles): string | undefined {
  try {
    new ControlPlaneHttp(url, files, GATEWAY_TLS_FLAGS).close();
    return undefined;
  } catch (err) {
    return `--control-plane: ${(err as Error).message}`;
  }
}

/** Node's bundled CAs (+ NODE_EXTRA_CA_CERTS) and the system's; Bun: its own store. */
function defaultCas(): string[] | undefined {
  const get = (tls as { getCACertificates?: (type: string) => string[] }).getCACertificates;
  if (typeof get !== 'function') return undefined;
  return [...new Set([...get('default'), ...get('system')])];
}

const CERT_ERRORS = /^(?:CERT_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_|ERR_TLS_CERT_ALTNAME_INVALID|HOSTNAME_MISMATCH|ERR_TLS_CERT)/;

/** An error of a call in words: TLS verification failures are said to be such, with OpenSSL's code. */
export function describeCallError(err: Error, url: URL): string {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  // Node's hint about --use-system-ca does not apply: the system's CAs are trusted unless a CA file is given.
  const message = err.message.replace(/; if the root CA is installed locally, try running Node\.js with --use-system-ca$/, '');
  const withCode = `${message}${code && !message.includes(code) ? ` (${code})` : ''}`;
  if (CERT_ERRORS.test(code)) return `TLS: the certificate of ${url.host} is refused: ${withCode}`;
  if (code === 'EPROTO' || code.startsWith('ERR_SSL')) return `TLS handshake with ${url.host} failed: ${withCode} (does it serve https?)`;
  return `${url.host}: ${withCode}`;
}
