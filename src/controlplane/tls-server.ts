// The control plane over HTTPS: the server's certificate and key (re-read on
// SIGHUP with setSecureContext: connections and held watches stay), optional
// client certificates verified against --client-ca, and plain HTTP on the
// TLS port answered with a 400 before anything of the request is parsed (its
// headers, a token among them, are never read).

import type { IncomingMessage, RequestListener } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { Socket } from 'node:net';
import { createSecureContext, type SecureContextOptions, type TLSSocket } from 'node:tls';
import { log } from '../telemetry/log.ts';
import { readTlsFiles, type TlsMaterial } from './tls-files.ts';

export interface ServerTlsFiles {
  cert: string;
  key: string;
  /** Client certificates are asked for and verified against this CA file. */
  clientCa?: string;
}

const FLAGS = { cert: '--tls-cert', key: '--tls-key', ca: '--client-ca' };
/** A connection that sends nothing for this long before its first byte is closed. */
const FIRST_BYTE_MS = 10_000;
const TLS_HANDSHAKE = 0x16;
/** A handshake not done by then is cut (Node's default, 120 s, would hold a stop that long). */
const HANDSHAKE_MS = 10_000;

/** Read and check the files (throws an Error naming the flag and the file). */
export function readServerTls(files: ServerTlsFiles): { options: SecureContextOptions; material: TlsMaterial } {
  const material = readTlsFiles({ cert: files.cert, key: files.key, ca: files.clientCa }, FLAGS);
  const options: SecureContextOptions = { cert: material.cert, key: material.key, ...(material.ca && { ca: material.ca }) };
  createSecureContext(options); // what OpenSSL refuses (a key it cannot use, ...) fails here, not at the first handshake
  return { options, material };
}

/** The server, and what closes the connections that have not sent a byte yet (for a stop). */
export function createTlsServer(files: ServerTlsFiles, timeouts: { requestTimeout: number; headersTimeout: number }, handler: RequestListener): { server: Server; dropSilent: () => void } {
  const { options } = readServerTls(files);
  // Verification is not left to the handshake (rejectUnauthorized: false): the
  // data-plane API checks `authorized` and answers 401/403 with the reason,
  // which a client reads more easily than a TLS alert. The admin API does not
  // need a client certificate (it needs the admin token).
  const server = createServer({ ...options, requestCert: files.clientCa !== undefined, rejectUnauthorized: false, handshakeTimeout: HANDSHAKE_MS, ...timeouts }, handler);
  const dropSilent = guardPlainHttp(server);
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
    log('debug', 'TLS handshake with a client failed', { client: socket.remoteAddress, error: err.message, code: err.code });
  });
  return { server, dropSilent };
}

/** SIGHUP: the files again; new connections use them, open ones (held watches) stay. Throws and keeps the old ones on an error. */
export function reloadServerTls(server: Server, files: ServerTlsFiles): TlsMaterial {
  const { options, material } = readServerTls(files);
  server.setSecureContext(options);
  return material;
}

/**
 * Sniffs each connection's first byte before TLS sees it: a TLS handshake
 * goes on to TLS; anything else (an http:// client) gets a plain 400 and
 * the connection is closed, the request unread. Written by hand: the TLS
 * server's own connection listener is wrapped (it answers nothing to plain HTTP;
 * libraries that sniff, such as httpolyglot, serve HTTP instead of refusing it).
 */
function guardPlainHttp(server: Server): () => void {
  const listeners = server.listeners('connection') as ((socket: Socket) => void)[];
  if (listeners.length !== 1) throw new Error(`expected one connection listener on the TLS server, found ${listeners.length}`);
  const [toTls] = listeners;
  // Connections that sent nothing yet: the HTTP server does not know them, so stop() cannot close them.
  const silent = new Set<Socket>();
  server.removeAllListeners('connection');
  server.on('connection', (socket: Socket) => {
    silent.add(socket);
    socket.once('close', () => silent.delete(socket));
    socket.setTimeout(FIRST_BYTE_MS, () => socket.destroy());
    socket.once('error', () => socket.destroy());
    socket.once('data', (chunk: Buffer) => {
      silent.delete(socket);
      socket.setTimeout(0);
      if (chunk[0] === TLS_HANDSHAKE) {
        socket.pause();
        socket.unshift(chunk);
        toTls.call(server, socket);
        return;
      }
      const body = JSON.stringify({ error: 'this control plane only speaks HTTPS: use an https:// URL (the request was not read; a token sent with it crossed the network in clear)' });
      socket.end(
        `HTTP/1.1 400 Bad Request\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n${body}`,
      );
      // Whatever else the client sends is dropped unread until it closes.
      socket.resume();
      socket.setTimeout(5_000, () => socket.destroy());
    });
  });
  return () => {
    for (const s of silent) s.destroy();
  };
}

/** The names a client certificate was issued to: its subject CN and its DNS SANs. */
export function clientCertNames(req: IncomingMessage): { authorized: boolean; present: boolean; error?: string; names: string[] } {
  const socket = req.socket as TLSSocket;
  if (typeof socket.getPeerCertificate !== 'function') return { authorized: false, present: false, names: [] };
  const cert = socket.getPeerCertificate();
  const present = cert !== null && Object.keys(cert).length > 0;
  if (!present) return { authorized: false, present: false, names: [] };
  const cn = cert.subject?.CN;
  const names = [...(Array.isArray(cn) ? cn : cn ? [cn] : [])];
  for (const san of (cert.subjectaltname ?? '').split(', ')) if (san.startsWith('DNS:')) names.push(san.slice(4));
  const error = socket.authorizationError === undefined ? undefined : String(socket.authorizationError);
  return { authorized: socket.authorized, present, names, ...(error !== undefined && { error }) };
}
