// Who may call what. Admin API: with --admin-token every call needs
// `Authorization: Bearer <token>`; without one, only loopback clients are
// answered (reads too: configurations carry secrets). Data-plane API: with
// --node-token every call needs it; with --client-ca every call needs a client
// certificate signed by that CA, issued to the node id the call names (its
// subject CN or one of its DNS SANs); with neither it is open. Missing
// credentials -> 401, wrong ones -> 403. Tokens are compared in constant time.

import { sameDigest, sha256 } from '../namespaces/credentials.ts';
import type { IncomingMessage } from 'node:http';
import { HttpError } from './http-util.ts';
import { clientCertNames } from './tls-server.ts';

export interface AuthOptions {
  adminToken?: string;
  nodeToken?: string;
  /** --client-ca: the data-plane API needs a verified client certificate, bound to the node id. */
  clientCerts?: boolean;
}

export function authorizeAdmin(req: IncomingMessage, opts: AuthOptions): void {
  if (opts.adminToken !== undefined) return checkBearer(req, opts.adminToken, 'an admin token');
  if (!isLoopback(req.socket.remoteAddress)) {
    throw new HttpError(403, 'the admin API needs --admin-token on the control plane to answer clients that are not on loopback');
  }
}

/** `node`: the node id the call acts as (a report's id, a watch's node=), if any. */
export function authorizeNode(req: IncomingMessage, opts: AuthOptions, node?: string): void {
  if (opts.clientCerts) checkClientCert(req, node);
  if (opts.nodeToken !== undefined) checkBearer(req, opts.nodeToken, 'a node token');
}

function checkClientCert(req: IncomingMessage, node: string | undefined): void {
  const c = clientCertNames(req);
  if (!c.present) throw new HttpError(401, 'this call needs a client certificate signed by the control plane\'s --client-ca');
  if (!c.authorized) throw new HttpError(403, `client certificate refused: ${c.error ?? 'not signed by the control plane\'s --client-ca'}`);
  if (node !== undefined && !c.names.includes(node)) {
    throw new HttpError(403, `the client certificate is issued to ${c.names.length ? c.names.map((n) => JSON.stringify(n)).join(', ') : 'no name'}, not to node ${JSON.stringify(node)}`);
  }
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
