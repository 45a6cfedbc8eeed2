// A real JWKS server on loopback for auth/validator and auth/signer tests,
// plus keys and tokens made with jose. The server counts its requests and can
// rotate keys, go down and come back on the same port, be slow, answer
// garbage, an error status or a huge body, or serve HTTPS.

import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair, generateSecret, SignJWT, type JWK, type JWTPayload } from 'jose';

export type JwksMode = 'ok' | 'garbage' | 'huge' | 'error' | 'wrong-type';

export interface JwksServer {
  /** The JWK set URL (…/jwks.json). */
  url: string;
  origin: string;
  port: number;
  /** Requests answered or started, of any kind. */
  requests: number;
  /** The request targets, in order. */
  readonly paths: string[];
  /** How the next requests are answered. */
  mode: JwksMode;
  /** Wait this long before answering (the client may give up first). */
  delayMs: number;
  /** Bytes of the last huge body written before the client went away. */
  hugeBytesSent: number;
  /** Serve this document from now on (a key rotation). */
  setKeys(doc: unknown): void;
  /** Stop listening and drop every connection: clients get ECONNREFUSED. */
  down(): Promise<void>;
  /** Listen again on the same port. */
  up(): Promise<void>;
  close(): Promise<void>;
}

const HUGE_TOTAL = 64 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 0x20);

export async function startJwksServer(doc: unknown, opts: { tls?: { cert: Buffer; key: Buffer; maxVersion?: 'TLSv1.2' | 'TLSv1.3' } } = {}): Promise<JwksServer> {
  let body = JSON.stringify(doc);
  const sockets = new Set<Socket>();
  const state = { requests: 0, mode: 'ok' as JwksMode, delayMs: 0, hugeBytesSent: 0 };

  const paths: string[] = [];
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    state.requests++;
    paths.push(req.url ?? '');
    const answer = () => {
      if (res.destroyed) return;
      switch (state.mode) {
        case 'ok':
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
          return void res.end(body);
        case 'garbage':
          res.writeHead(200, { 'content-type': 'application/json' });
          return void res.end('{"keys": [ this is not json');
        case 'wrong-type':
          res.writeHead(200, { 'content-type': 'text/html' });
          return void res.end(body);
        case 'error':
          res.writeHead(503, { 'content-type': 'application/json' });
          return void res.end('{"error":"down for maintenance"}');
        case 'huge': {
          res.writeHead(200, { 'content-type': 'application/json' });
          let sent = 0;
          res.write('{"keys":[');
          const pump = () => {
            while (sent < HUGE_TOTAL && !res.destroyed) {
              sent += CHUNK.length;
              state.hugeBytesSent = sent;
              if (!res.write(CHUNK)) return void res.once('drain', pump);
            }
            if (!res.destroyed) res.end(']}');
          };
          res.on('close', () => (state.hugeBytesSent = sent));
          return pump();
        }
      }
    };
    if (state.delayMs > 0) {
      const t = setTimeout(answer, state.delayMs);
      res.on('close', () => clearTimeout(t));
    } else answer();
  };

  const server: Server = opts.tls ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key, ...(opts.tls.maxVersion ? { maxVersion: opts.tls.maxVersion } : {}) }, handler) : createHttpServer(handler);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('secureConnection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const origin = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  let listening = true;

  const down = () =>
    new Promise<void>((resolve) => {
      if (!listening) return resolve();
      listening = false;
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });

  return {
    url: `${origin}/jwks.json`,
    origin,
    port,
    paths,
    get requests() {
      return state.requests;
    },
    set requests(n: number) {
      state.requests = n;
    },
    get mode() {
      return state.mode;
    },
    set mode(m: JwksMode) {
      state.mode = m;
    },
    get delayMs() {
      return state.delayMs;
    },
    set delayMs(n: number) {
      state.delayMs = n;
    },
    get hugeBytesSent() {
      return state.hugeBytesSent;
    },
    setKeys(next: unknown) {
      body = JSON.stringify(next);
    },
    down,
    up: () =>
      new Promise<void>((resolve, reject) => {
        if (listening) return resolve();
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => {
          server.off('error', reject);
          listening = true;
          resolve();
        });
      }),
    close: down,
  };
}

// ---- keys and tokens ----

export interface TestKey {
  kid: string;
  alg: string;
  /** The private JWK (for HMAC, the secret), with kid. */
  privateJwk: JWK;
  /** The public JWK with kid (for HMAC, the same secret). */
  publicJwk: JWK;
  /** What jose signs with. */
  signingKey: CryptoKey | Uint8Array;
}

export async function makeKey(alg: string, kid: string = `k-${randomBytes(4).toString('hex')}`): Promise<TestKey> {
  if (alg.startsWith('HS')) {
    const secret = await generateSecret(alg, { extractable: true });
    const jwk = { ...(await exportJWK(secret)), kid };
    return { kid, alg, privateJwk: jwk, publicJwk: jwk, signingKey: secret };
  }
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return {
    kid,
    alg,
    privateJwk: { ...(await exportJWK(privateKey)), kid },
    publicJwk: { ...(await exportJWK(publicKey)), kid },
    signingKey: privateKey,
  };
}

/** A JWK set document with the public (or private) halves of `keys`. */
export function jwks(keys: TestKey[], half: 'public' | 'private' = 'public'): { keys: JWK[] } {
  return { keys: keys.map((k) => (half === 'public' ? k.publicJwk : k.privateJwk)) };
}

export const now = (): number => Math.floor(Date.now() / 1000);

/** A token signed by `key`: claims as given (exp defaults to in 5 minutes), header overrides merged over {alg, kid}. */
export function signToken(key: TestKey, claims: JWTPayload = {}, header: Record<string, unknown> = {}): Promise<string> {
  const payload = { exp: now() + 300, ...claims };
  return new SignJWT(payload).setProtectedHeader({ alg: key.alg, kid: key.kid, ...header }).sign(key.signingKey);
}

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** A token put together by hand: any header, any payload, any signature bytes. */
export function forgeToken(header: unknown, payload: unknown, signature: string | Buffer = ''): string {
  const sig = typeof signature === 'string' ? signature : signature.toString('base64url');
  return `${b64(header)}.${b64(payload)}.${sig}`;
}
