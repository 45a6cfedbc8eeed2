// A real OAuth2 token server on loopback (RFC 6749 section 4.4, the
// client-credentials grant) for tests: it checks the client's id and secret
// (HTTP Basic, form-escaped as RFC 6749 2.3.1 says, and/or in the form),
// grant_type, scopes and extra parameters; issues tokens with expires_in;
// records and counts every request; and can misbehave on demand (fail with a
// status, hang, answer garbage or a huge body).

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

/** How the server answers a request whose credentials and parameters are right. */
export type TokenAnswer =
  /** A token. expiresIn: a number or string as sent; null sends JSON null; undefined leaves the field out. */
  | { kind: 'token'; expiresIn?: number | string | null; tokenType?: string; format?: 'json' | 'form' }
  /** A fixed answer, whatever the request. */
  | { kind: 'raw'; status: number; body: string; contentType?: string }
  /** `bytes` of JSON-looking junk, with or without a Content-Length. */
  | { kind: 'huge'; bytes: number; contentLength: boolean }
  /** Never answers (until the server closes). */
  | { kind: 'hang' };

export interface TokenServerOptions {
  /** Registered clients, id -> secret (default { 'gw-client': 'gw-s3cret' }). */
  clients?: Record<string, string>;
  /** Where the credentials may be: a Basic header, the form, or either (default). */
  accept?: 'header' | 'params' | 'either';
  /** When set, `scope` must hold exactly these (space-separated, in this order). */
  scopes?: string[];
  /** Parameters the form must carry, with exactly these values. */
  params?: Record<string, string[]>;
  /** Serve HTTPS with this certificate and key (files). */
  tls?: { cert: string; key: string };
  answer?: TokenAnswer;
}

export interface TokenRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  /** The form fields, each with every value in order. */
  form: Record<string, string[]>;
  /** Credentials from the Authorization: Basic header, decoded, if any. */
  basic: { id: string; secret: string } | undefined;
  /** What the server did with it. */
  outcome: 'issued' | 'refused' | 'misbehaved';
}

export interface TokenServer {
  /** The token endpoint URL (path /oauth2/token). */
  tokenUrl: string;
  port: number;
  requests: TokenRequest[];
  /** Issued token -> the client it was issued to. */
  issued: Map<string, string>;
  /** How the next requests are answered (change it between requests). */
  answer: TokenAnswer;
  /** Answers wait until released (see hold()). */
  hold(): () => void;
  /** The client id a request header "Bearer <token>" authenticates, or undefined. */
  clientOf(authorization: string | undefined): string | undefined;
  /** Resolves once `n` requests in total have arrived. */
  waitForRequests(n: number): Promise<void>;
  /** Requests whose connection closed before their answer was complete. */
  readonly abandoned: number;
  /** Resolves once `n` requests in total were abandoned by the client. */
  waitForAbandoned(n: number): Promise<void>;
  close(): Promise<void>;
}

const DEFAULT_CLIENTS = { 'gw-client': 'gw-s3cret' };

/** RFC 6749 2.3.1: id and secret are form-encoded before going into the Basic header. */
function formDecode(s: string): string {
  return decodeURIComponent(s.replace(/\+/g, ' '));
}

export async function startTokenServer(opts: TokenServerOptions = {}): Promise<TokenServer> {
  const clients: Record<string, string> = opts.clients ?? DEFAULT_CLIENTS;
  const accept = opts.accept ?? 'either';
  const requests: TokenRequest[] = [];
  const issued = new Map<string, string>();
  let abandoned = 0;
  let gate: Promise<void> | undefined;
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const w of [...waiters]) w();
  };
  const waitFor = (check: () => boolean, what: string): Promise<void> =>
    new Promise((resolve, reject) => {
      if (check()) return resolve();
      const timer = setTimeout(() => {
        waiters.delete(w);
        reject(new Error(`token server: timed out waiting for ${what}`));
      }, 10_000);
      const w = () => {
        if (!check()) return;
        clearTimeout(timer);
        waiters.delete(w);
        resolve();
      };
      waiters.add(w);
    });

  const handler = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const form: Record<string, string[]> = {};
    for (const [k, v] of new URLSearchParams(text)) (form[k] ??= []).push(v);
    let basic: TokenRequest['basic'];
    const auth = req.headers.authorization;
    if (auth?.startsWith('Basic ')) {
      const decoded = Buffer.from(auth.slice(6), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon >= 0) basic = { id: formDecode(decoded.slice(0, colon)), secret: formDecode(decoded.slice(colon + 1)) };
    }
    const record: TokenRequest = { method: req.method!, url: req.url!, headers: req.headers, form, basic, outcome: 'refused' };
    requests.push(record);
    let finished = false;
    res.on('close', () => {
      if (!finished && !res.writableFinished) {
        abandoned++;
        notify();
      }
    });
    res.on('finish', () => (finished = true));
    notify();
    if (gate) await gate;
    if (res.destroyed) return;

    const answer = server.answer;
    if (answer.kind === 'hang') {
      record.outcome = 'misbehaved';
      return;
    }
    if (answer.kind === 'raw') {
      record.outcome = 'misbehaved';
      res.writeHead(answer.status, { 'content-type': answer.contentType ?? 'application/json', 'content-length': Buffer.byteLength(answer.body) });
      return void res.end(answer.body);
    }
    if (answer.kind === 'huge') {
      record.outcome = 'misbehaved';
      res.writeHead(200, { 'content-type': 'application/json', ...(answer.contentLength ? { 'content-length': answer.bytes } : {}) });
      const chunk = Buffer.alloc(64 * 1024, 'a');
      let left = answer.bytes;
      const pump = () => {
        while (left > 0 && !res.destroyed) {
          const n = Math.min(left, chunk.length);
          left -= n;
          if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void res.once('drain', pump);
        }
        if (!res.destroyed) res.end();
      };
      return pump();
    }

    const refuse = (status: number, error: string) => {
      const body = JSON.stringify({ error });
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    if (req.method !== 'POST') return refuse(405, 'invalid_request');
    if (!String(req.headers['content-type']).startsWith('application/x-www-form-urlencoded')) return refuse(400, 'invalid_request');
    const inForm = form.client_id !== undefined || form.client_secret !== undefined;
    // RFC 6749 2.3: a client must not use more than one authentication method in a request.
    if (basic && inForm) return refuse(400, 'invalid_request');
    if ((basic && accept === 'params') || (inForm && accept === 'header')) return refuse(401, 'invalid_client');
    const id = basic ? basic.id : form.client_id?.[0];
    const secret = basic ? basic.secret : form.client_secret?.[0];
    if (id === undefined || clients[id] === undefined || clients[id] !== secret) return refuse(401, 'invalid_client');
    if (form.grant_type?.length !== 1 || form.grant_type[0] !== 'client_credentials') return refuse(400, 'unsupported_grant_type');
    if (opts.scopes && (form.scope?.length !== 1 || form.scope[0] !== opts.scopes.join(' '))) return refuse(400, 'invalid_scope');
    for (const [k, want] of Object.entries(opts.params ?? {})) {
      if (JSON.stringify(form[k]) !== JSON.stringify(want)) return refuse(400, 'invalid_request');
    }

    const token = `at-${requests.length}-${randomBytes(6).toString('hex')}`;
    issued.set(token, id);
    record.outcome = 'issued';
    const fields: Record<string, unknown> = { access_token: token, token_type: answer.tokenType ?? 'Bearer' };
    if (answer.expiresIn !== undefined) fields.expires_in = answer.expiresIn;
    if (form.scope) fields.scope = form.scope[0];
    let body: string;
    let type: string;
    if (answer.format === 'form') {
      body = new URLSearchParams(Object.entries(fields).map(([k, v]) => [k, String(v)])).toString();
      type = 'application/x-www-form-urlencoded';
    } else {
      body = JSON.stringify(fields);
      type = 'application/json';
    }
    res.writeHead(200, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
    res.end(body);
  };

  const listener = (req: IncomingMessage, res: ServerResponse) => {
    handler(req, res).catch((err: unknown) => res.destroy(err as Error));
  };
  const http: Server = opts.tls
    ? createHttpsServer({ cert: readFileSync(opts.tls.cert), key: readFileSync(opts.tls.key) }, listener)
    : createServer(listener);
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const port = (http.address() as AddressInfo).port;

  const server: TokenServer = {
    tokenUrl: `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}/oauth2/token`,
    port,
    requests,
    issued,
    answer: opts.answer ?? { kind: 'token', expiresIn: 3600 },
    hold() {
      let release!: () => void;
      gate = new Promise<void>((r) => (release = r));
      return () => {
        gate = undefined;
        release();
      };
    },
    clientOf(authorization) {
      const m = /^Bearer (\S+)$/.exec(authorization ?? '');
      return m ? issued.get(m[1]!) : undefined;
    },
    waitForRequests: (n) => waitFor(() => requests.length >= n, `${n} requests (got ${requests.length})`),
    get abandoned() {
      return abandoned;
    },
    waitForAbandoned: (n) => waitFor(() => abandoned >= n, `${n} abandoned requests`),
    close: () =>
      new Promise<void>((r) => {
        http.closeAllConnections();
        http.close(() => r());
      }),
  };
  return server;
}
