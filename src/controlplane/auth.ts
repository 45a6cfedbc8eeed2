// Who may call what. Admin API: with --admin-token every call needs
// `Authorization: Bearer <token>`; without one, reads are open and writes are
// accepted from loopback clients only. Data-plane API: with --node-token every
// call needs it; without one it is open. Missing (or not Bearer) -> 401, wrong
// token -> 403. Tokens are compared in constant time.

import { sameDigest, sha256 } from '../namespaces/credentials.ts';
import type { IncomingMessage } from 'node:http';
import { HttpError } from './http-util.ts';

export interface AuthOptions {
  adminToken?: string;
  nodeToken?: string;
}

export function authorizeAdmin(req: IncomingMessage, opts: AuthOptions, write: boolean): void {
  if (opts.adminToken !== undefined) return checkBearer(req, opts.adminToken, 'an admin token');
  if (write && !isLoopback(req.socket.remoteAddress)) {
    throw new HttpError(403, 'writes need --admin-token on the control plane, or a client on loopback');
  }
}

export function authorizeNode(req: IncomingMessage, opts: AuthOptions): void {
  if (opts.nodeToken !== undefined) checkBearer(req, opts.nodeToken, 'a node token');
}

function checkBearer(req: IncomingMessage, expected: string, what: string): void {
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(req.headers.authorization ?? '');
  if (!m) throw new HttpError(401, `this call needs ${what}: Authorization: Bearer <token>`, {}, { 'www-authenticate': 'Bearer' });
  if (!sameSecret(m[1], expected)) throw new HttpError(403, `wrong token: this call needs ${what}`);
}

function sameSecret(a: string, b: string): boolean {
  return sameDigest(sha256(a), sha256(b));
}

export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return v4.startsWith('127.') || address === '::1';
}
