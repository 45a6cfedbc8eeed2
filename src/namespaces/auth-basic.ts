// `auth/basic` (KrakenD Enterprise, free in Portico): HTTP Basic
// authentication against bcrypt hashes from an htpasswd file and/or inline
// `users`. Only endpoints carrying `auth/basic` are protected. The service
// level may hold the settings for endpoints to inherit with an empty
// `"auth/basic": {}`; a non-empty endpoint object replaces the whole
// service-level one (KrakenD's rule).
//
// The htpasswd file is read when a Plan is compiled, never per request and
// never at parse time: it lives on the data plane (like TLS certificates), so
// a control plane validating the config need not have it, and a missing or
// malformed file fails the compile (the reload is refused, the last good
// config keeps serving) with the file and the config path in the message.
//
// bcrypt costs ~65 ms of CPU at cost 10, and bcryptjs's async API still runs
// each hash in one slice of up to 100 ms on the event loop (measured: four
// concurrent async compares stalled the loop 268 ms). So verifications run in
// a small pool of worker threads, with a bound on how many may wait; each
// successful verification is remembered in a bounded LRU keyed by the
// SHA-256 of "user:password", so a returning client costs one hash and a
// lookup. Failures are never cached.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { LRUCache } from 'lru-cache';
import { checkFields, expectObject, type ObjectRules } from '../config/fields.ts';
import type { IssueCollector } from '../config/issues.ts';
import { formatPath, isPlainObject, type JsonPath } from '../config/json-path.ts';
import { PolicyError } from '../proxy/errors.ts';
import { headerValue, schemeCredentials, sha256Hex } from './credentials.ts';
import type { Guard, Namespace } from './namespace.ts';
import { stateKey } from './state.ts';

const NAME = 'auth/basic';

/** Sent with every 401, so that browsers prompt for credentials (and encode them as UTF-8, RFC 7617). */
export const BASIC_CHALLENGE = 'Basic realm="Restricted", charset="UTF-8"';

/** Successful verifications remembered per credential set. */
export const VERIFIED_CACHE_SIZE = 1024;
/** Verifications allowed to wait for a worker before new ones are refused with 503. */
export const MAX_WAITING_VERIFICATIONS = 128;
/** bcrypt only reads the first 72 bytes; longer passwords are refused, as Go's bcrypt does. */
const BCRYPT_MAX_PASSWORD_BYTES = 72;

export interface BasicOptions {
  /** JSON path of this namespace (for compile-time errors). */
  at: string;
  /** Endpoint `"auth/basic": {}`: the service-level settings apply. */
  inherit: boolean;
  htpasswdPath?: string;
  /** Inline users as [name, bcrypt hash] pairs, in file order. */
  users?: [string, string][];
}

const RULES: ObjectRules = { htpasswd_path: 'custom', users: 'custom' };

const BCRYPT = /^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$/;

/** Why `hash` is not a bcrypt hash Portico can check, or undefined when it is one. */
export function unsupportedHash(hash: string): string | undefined {
  if (BCRYPT.test(hash)) return undefined;
  if (/^\$2[abxy]?\$/.test(hash)) return 'a malformed or unsupported bcrypt hash (expected $2a$, $2b$ or $2y$, a cost from 04 to 31 and 53 characters of salt and hash)';
  if (hash.startsWith('$apr1$')) return 'an Apache MD5 ($apr1$) hash, not supported (only bcrypt)';
  if (hash.startsWith('{SHA}')) return 'a SHA-1 ({SHA}) hash, not supported (only bcrypt)';
  if (hash.startsWith('$1$')) return 'an MD5-crypt ($1$) hash, not supported (only bcrypt)';
  if (hash.startsWith('$5$') || hash.startsWith('$6$')) return 'a SHA-crypt ($5$/$6$) hash, not supported (only bcrypt)';
  if (hash.startsWith('$')) return 'an unknown $-prefixed hash, not supported (only bcrypt)';
  return 'crypt(3) DES or a plain-text password, not supported (only bcrypt)';
}

export const authBasic: Namespace<BasicOptions> = {
  name: NAME,
  scopes: ['service', 'endpoint'],
  order: 420,
  policy: true,
  parse(raw, path, c, ctx) {
    const where = ctx.scope === 'service' ? `the service-level "${NAME}" namespace` : `the endpoint-level "${NAME}" namespace`;
    if (!expectObject(c, raw, path, 'an object with "htpasswd_path" and/or "users" (or {} on an endpoint to use the service-level settings)')) return undefined;
    checkFields(c, raw, path, RULES, where);
    let ok = true;
    const options: BasicOptions = { at: formatPath(path), inherit: false };
    if ('htpasswd_path' in raw) {
      const p = raw.htpasswd_path;
      if (typeof p !== 'string' || p === '') {
        c.invalid([...path, 'htpasswd_path'], 'the path of an htpasswd file with bcrypt hashes, such as "/etc/krakend/.htpasswd"', p);
        ok = false;
      } else options.htpasswdPath = p;
    }
    if ('users' in raw) {
      const users = parseUsers(c, raw.users, [...path, 'users']);
      if (users === undefined) ok = false;
      else options.users = users;
    }
    if (!ok) return undefined;
    const declares = options.htpasswdPath !== undefined || options.users !== undefined;
    if (ctx.scope === 'service') {
      if (!declares) {
        c.error(path, 'an "htpasswd_path" and/or "users" for the endpoints to inherit', '{} (an empty object): no credentials to inherit');
        return undefined;
      }
      return options;
    }
    if (declares) return options; // a non-empty endpoint object replaces the service-level one
    if (!ctx.service.has(NAME)) {
      c.error(
        path,
        `an "htpasswd_path" and/or "users", here or in a service-level "${NAME}" ($.extra_config["${NAME}"])`,
        '{} (an empty object) while the service level declares no credentials (or declares them with errors)',
      );
      return undefined;
    }
    return { at: options.at, inherit: true };
  },
  compile(options, ctx) {
    if (ctx.scope === 'service') {
      credentialsOf(options); // read now, so that a bad file fails the Plan even when no endpoint inherits it
      return undefined;
    }
    const source = options.inherit ? ctx.serviceOptions(authBasic) : options;
    if (source === undefined || source.inherit) {
      throw new Error(`${NAME} at ${options.at}: no credentials here and no service-level ${NAME} to inherit`);
    }
    const table = credentialsOf(source);
    const memory = ctx.state.get(stateKey(NAME, 'verified', table.id), (): Memory => ({
      verified: new LRUCache<string, true>({ max: VERIFIED_CACHE_SIZE }),
      inflight: new Map(),
    }));
    const pool = ctx.state.get(stateKey(NAME, 'bcrypt-workers'), () => new BcryptPool(), (p) => p.close());
    return { guard: basicGuard(table, memory, pool) };
  },
};

function parseUsers(c: IssueCollector, value: unknown, path: JsonPath): [string, string][] | undefined {
  if (!isPlainObject(value)) {
    c.invalid(path, 'an object of user name -> bcrypt hash, such as {"admin": "$2y$10$..."}', value);
    return undefined;
  }
  const users: [string, string][] = [];
  let ok = true;
  for (const [user, hash] of Object.entries(value)) {
    const at = [...path, user];
    if (user === '' || user.includes(':')) {
      c.add('error', at, 'a user name that is not empty and has no ":" (Basic credentials are "user:password")', `user name ${JSON.stringify(user)}`, 'key');
      ok = false;
      continue;
    }
    if (typeof hash !== 'string') {
      c.invalid(at, 'a bcrypt hash such as the ones `htpasswd -B` writes ($2y$...)', hash);
      ok = false;
      continue;
    }
    const why = unsupportedHash(hash);
    if (why !== undefined) {
      // The hash itself is never shown: only its length and kind.
      c.error(at, 'a bcrypt hash such as the ones `htpasswd -B` writes ($2y$...)', `a string of ${hash.length} characters: ${why}`);
      ok = false;
      continue;
    }
    users.push([user, hash]);
  }
  return ok ? users : undefined;
}

// ---------------------------------------------------------------- credentials

interface Credentials {
  /** user -> bcrypt hash */
  users: Map<string, string>;
  /** Identifies the credential set (a digest of it), for state shared across reloads. */
  id: string;
}

/** One table per options object, i.e. per Plan: endpoints inheriting the service level share it. */
const tables = new WeakMap<BasicOptions, Credentials>();

function credentialsOf(o: BasicOptions): Credentials {
  let t = tables.get(o);
  if (t) return t;
  const users = new Map<string, string>();
  if (o.htpasswdPath !== undefined) for (const [u, h] of readHtpasswd(o.htpasswdPath, `${o.at}.htpasswd_path`)) users.set(u, h);
  // Inline users are merged over the file's (KrakenD: "this list will overwrite users already defined in the htpasswd file").
  for (const [u, h] of o.users ?? []) users.set(u, h);
  if (users.size === 0) {
    throw new Error(`${NAME} at ${o.at}: no users (the htpasswd file has none and no inline "users" are declared): every request would be refused`);
  }
  const id = sha256Hex([...users].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([u, h]) => `${u}\u0000${h}`).join('\n'));
  t = { users, id };
  tables.set(o, t);
  return t;
}

/** Parse an htpasswd file: `user:hash` lines, blank lines and `#` comments ignored, bcrypt only. */
export function readHtpasswd(path: string, at: string): [string, string][] {
  const where = `${NAME} at ${at}: "${path}"`;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const reason = e.code === 'ENOENT' ? 'no such file' : e.code === 'EISDIR' ? 'a directory' : e.code === 'EACCES' ? 'permission denied' : (e.code ?? e.message);
    throw new Error(`${where} (${resolve(path)}) cannot be read: ${reason}`, { cause: err });
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const out: [string, string][] = [];
  const lineOf = new Map<string, number>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '').trimEnd();
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    const n = i + 1;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`${where}: line ${n} is not "user:hash"`);
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    const why = unsupportedHash(hash);
    if (why !== undefined) throw new Error(`${where}: line ${n} (user ${JSON.stringify(user)}) holds ${why}`);
    const first = lineOf.get(user);
    if (first !== undefined) throw new Error(`${where}: line ${n} declares user ${JSON.stringify(user)} again (first on line ${first})`);
    lineOf.set(user, n);
    out.push([user, hash]);
  }
  return out;
}

// ---------------------------------------------------------------- request path

interface Memory {
  /** sha256("user:password") of successful verifications. */
  verified: LRUCache<string, true>;
  /** Verifications under way, so concurrent identical requests share one bcrypt. */
  inflight: Map<string, Promise<boolean>>;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** The decoded credentials, or why they are malformed (never quoting them). */
export function decodeBasic(encoded: string): { user: string; password: string; pair: string } | string {
  if (encoded.length % 4 !== 0 || !BASE64.test(encoded)) return 'Basic credentials that are not base64';
  let pair: string;
  try {
    pair = UTF8.decode(Buffer.from(encoded, 'base64'));
  } catch {
    return 'Basic credentials that are not UTF-8';
  }
  const colon = pair.indexOf(':');
  if (colon < 0) return 'Basic credentials without a ":" between user and password';
  if (colon === 0) return 'Basic credentials with an empty user name';
  return { user: pair.slice(0, colon), password: pair.slice(colon + 1), pair };
}

function basicGuard(table: Credentials, memory: Memory, pool: BcryptPool): Guard {
  const challenge = ['www-authenticate', BASIC_CHALLENGE];
  const refuse = (code: string, reason: string) => new PolicyError(401, code, NAME, reason, challenge);
  return (req) => {
    const encoded = schemeCredentials(headerValue(req.headers.authorization), 'Basic');
    if (!encoded) throw refuse('AUTH_BASIC_MISSING', 'no Basic credentials in the Authorization header');
    const cred = decodeBasic(encoded);
    if (typeof cred === 'string') throw refuse('AUTH_BASIC_MALFORMED', cred);
    const hash = table.users.get(cred.user);
    if (hash === undefined) throw refuse('AUTH_BASIC_INVALID', 'unknown user');
    if (Buffer.byteLength(cred.password) > BCRYPT_MAX_PASSWORD_BYTES) throw refuse('AUTH_BASIC_INVALID', 'password longer than the 72 bytes bcrypt checks');
    const key = sha256Hex(cred.pair);
    if (memory.verified.get(key) === true) return undefined;
    let pending = memory.inflight.get(key);
    if (pending === undefined) {
      const started = pool.verify(cred.password, hash);
      if (started === undefined) {
        throw new PolicyError(503, 'AUTH_BASIC_BUSY', NAME, `more than ${MAX_WAITING_VERIFICATIONS} password verifications waiting`, ['retry-after', '1']);
      }
      pending = started.finally(() => memory.inflight.delete(key));
      memory.inflight.set(key, pending);
    }
    return pending.then((ok) => {
      if (!ok) throw refuse('AUTH_BASIC_INVALID', 'wrong password');
      memory.verified.set(key, true);
      return undefined;
    });
  };
}

// ---------------------------------------------------------------- bcrypt workers

// Each worker runs bcryptjs's synchronous compare; the event loop only posts
// messages. CommonJS source evaluated in the worker (bcryptjs resolved here).
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const bcrypt = require(workerData.bcrypt);
parentPort.on('message', (m) => {
  let ok = false;
  try { ok = bcrypt.compareSync(m.password, m.hash); } catch { ok = false; }
  parentPort.postMessage({ id: m.id, ok });
});
`;

interface Slot {
  worker: Worker;
  pending: Set<number>;
}

interface Waiter {
  resolve(ok: boolean): void;
  reject(err: Error): void;
}

/** A few worker threads running bcrypt compares; process-wide state (see state.ts). */
export class BcryptPool {
  readonly #size = Math.max(1, Math.min(4, availableParallelism() - 1));
  readonly #slots: Slot[] = [];
  readonly #waiters = new Map<number, Waiter>();
  #nextId = 1;
  #closed = false;

  /** Verifications not finished yet. */
  get inFlight(): number {
    return this.#waiters.size;
  }

  /** Resolves whether `password` matches `hash`; undefined when too many verifications already wait. */
  verify(password: string, hash: string): Promise<boolean> | undefined {
    if (this.#closed) return Promise.reject(new Error('bcrypt workers closed'));
    if (this.#waiters.size >= MAX_WAITING_VERIFICATIONS + this.#size) return undefined;
    const slot = this.#pick();
    const id = this.#nextId++;
    return new Promise<boolean>((resolve, reject) => {
      this.#waiters.set(id, { resolve, reject });
      slot.pending.add(id);
      slot.worker.postMessage({ id, password, hash });
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    const slots = this.#slots.splice(0);
    for (const s of slots) this.#fail(s, new Error('bcrypt workers closed'));
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  #pick(): Slot {
    let best: Slot | undefined;
    for (const s of this.#slots) if (best === undefined || s.pending.size < best.pending.size) best = s;
    if (best !== undefined && (best.pending.size === 0 || this.#slots.length >= this.#size)) return best;
    return this.#spawn();
  }

  #spawn(): Slot {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { bcrypt: BCRYPTJS } });
    // An idle pool must not keep the process alive; a pending request keeps it alive anyway.
    worker.unref();
    const slot: Slot = { worker, pending: new Set() };
    worker.on('message', (m: { id: number; ok: boolean }) => {
      slot.pending.delete(m.id);
      const w = this.#waiters.get(m.id);
      this.#waiters.delete(m.id);
      w?.resolve(m.ok === true);
    });
    const lost = (err: Error) => {
      const i = this.#slots.indexOf(slot);
      if (i >= 0) this.#slots.splice(i, 1);
      this.#fail(slot, err);
    };
    worker.on('error', (err) => lost(err));
    worker.on('exit', (code) => lost(new Error(`bcrypt worker exited with code ${code}`)));
    this.#slots.push(slot);
    return slot;
  }

  #fail(slot: Slot, err: Error): void {
    for (const id of slot.pending) {
      const w = this.#waiters.get(id);
      this.#waiters.delete(id);
      w?.reject(err);
    }
    slot.pending.clear();
  }
}

const BCRYPTJS = createRequire(import.meta.url).resolve('bcryptjs');
