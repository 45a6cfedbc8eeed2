// `backend/pubsub/publisher` and `backend/pubsub/subscriber` (backend): the
// backend is a pub/sub topic, as KrakenD's krakend-pubsub reaches one through
// the Go CDK (gocloud.dev/pubsub). The backend's first host names the driver
// ("nats://", "rabbit://", "mem://"); the Go CDK URL is that host followed by
// `topic_url` / `subscription_url`; the topic (subject, exchange, queue) is
// the URL's host and path joined as Go's path.Join does, its query the
// driver's options. The broker's address comes from the environment, as the
// Go CDK reads it: NATS_SERVER_URL, RABBIT_SERVER_URL.
//
// publisher   one message per request: the body as sent to a backend, the
//             forwarded headers as metadata (canonical names, first value).
//             The answer is {} once the message is handed to the broker
//             (RabbitMQ: once it confirms it).
// subscriber  one message per request, waited for until the endpoint times
//             out, decoded with the backend's encoding. It is acknowledged
//             when it is handed to the request.
//
// Drivers: nats (core NATS with @nats-io/transport-node; metadata as NATS
// headers, query-escaped as the Go CDK writes them), rabbit (amqplib; a topic
// is an exchange, published with mandatory and publisher confirms; a
// subscription is a queue), mem (topics inside this process). Other Go CDK
// drivers are refused by check. A connection per broker address and process
// lives in PolicyState, is opened in the background at compile and reopened
// with backoff; while a broker is unreachable requests fail at once (500
// BACKEND_UNREACHABLE) instead of waiting for the endpoint timeout. The client
// libraries are loaded on first use.

import type { ChannelModel, ConfirmChannel, Channel, ConsumeMessage } from 'amqplib';
import type { MsgHdrs, NatsConnection, Subscription } from '@nats-io/transport-node';
import { checkFields, expectObject } from '../config/fields.ts';
import { parseDuration } from '../config/duration.ts';
import type { IssueCollector } from '../config/issues.ts';
import { formatPath, type JsonPath } from '../config/json-path.ts';
import { Backoff, pause } from '../shared/backoff.ts';
import { untilAborted, type CancelSignal } from '../proxy/abort.ts';
import type { BackendTransport } from '../proxy/backend.ts';
import { GatewayError } from '../proxy/errors.ts';
import { canonicalHeaderKey } from '../proxy/headers.ts';
import { queryUnescape } from '../proxy/query.ts';
import type { ResponseHeaders } from '../proxy/types.ts';
import { log } from '../telemetry/log.ts';
import { headerValue, sha256Hex } from './credentials.ts';
import type { CompileContext, Namespace, ParseContext } from './namespace.ts';
import { stateKey, type StateScope } from './state.ts';

const PUBLISHER = 'backend/pubsub/publisher';
const SUBSCRIBER = 'backend/pubsub/subscriber';
/** Prefix of the state keys: publishers and subscribers share a broker connection. */
const STATE = 'backend/pubsub';

type Role = 'publisher' | 'subscriber';
type Driver = 'nats' | 'rabbit' | 'mem';

export interface PubsubOptions {
  role: Role;
  driver: Driver;
  /** The Go CDK URL: host + topic_url / subscription_url (no secrets: the broker address is in the environment). */
  url: string;
  /** NATS subject, RabbitMQ exchange (publisher) or queue (subscriber), mem topic. */
  name: string;
  /** nats subscriber: the queue group (`?queue=`). */
  queue: string | undefined;
  /** rabbit publisher: the metadata key whose value is the routing key (`?key_name=`). */
  keyName: string | undefined;
  /** rabbit subscriber: unacknowledged messages held at most (`?prefetch_count=`). */
  prefetch: number;
  /** Where the driver is configured (the host's JSON path), for the startup error. */
  at: string;
}

const DRIVERS: readonly Driver[] = ['nats', 'rabbit', 'mem'];
const DRIVER_LIST = '"nats://", "rabbit://" or "mem://"';
/** The Go CDK drivers KrakenD registers that this version does not implement. */
const OTHER_DRIVERS: Readonly<Record<string, string>> = {
  gcppubsub: 'Google Cloud Pub/Sub',
  awssns: 'AWS SNS',
  awssqs: 'AWS SQS',
  azuresb: 'Azure Service Bus',
  kafka: 'Apache Kafka',
};
/** Where each driver finds its broker, as the Go CDK's default openers read it. */
const SERVER_ENV: Readonly<Record<Exclude<Driver, 'mem'>, string>> = { nats: 'NATS_SERVER_URL', rabbit: 'RABBIT_SERVER_URL' };
/** Query parameters of the Go CDK URL openers that Portico honours. */
const QUERY: Readonly<Record<Driver, Readonly<Record<Role, readonly string[]>>>> = {
  nats: { publisher: [], subscriber: ['queue'] },
  rabbit: { publisher: ['key_name'], subscriber: ['prefetch_count'] },
  mem: { publisher: [], subscriber: ['ackdeadline'] },
};

/** Messages (and bytes) a subscription keeps waiting for a request before the oldest are dropped (nats.go's pending limits). */
const MAX_WAITING_MESSAGES = 524_288;
const MAX_WAITING_BYTES = 64 * 1024 * 1024;
/** RabbitMQ confirm channels per connection (one publish in flight on each), and how many stay open idle. */
const MAX_CONFIRM_CHANNELS = 64;
const MAX_IDLE_CONFIRM_CHANNELS = 16;
const CONNECT_TIMEOUT_MS = 2_000;

export const backendPubsubPublisher = pubsubNamespace('publisher');
export const backendPubsubSubscriber = pubsubNamespace('subscriber');

function pubsubNamespace(role: Role): Namespace<PubsubOptions> {
  return {
    name: role === 'publisher' ? PUBLISHER : SUBSCRIBER,
    scopes: ['backend'],
    order: 0,
    policy: false,
    parse: (raw, path, c, ctx) => parsePubsub(role, raw, path, c, ctx),
    transport: role === 'publisher' ? publisherTransport : subscriberTransport,
  };
}

// ---------------------------------------------------------------- parse

function parsePubsub(role: Role, raw: unknown, path: JsonPath, c: IssueCollector, ctx: ParseContext): PubsubOptions | undefined {
  const ns = role === 'publisher' ? PUBLISHER : SUBSCRIBER;
  const field = role === 'publisher' ? 'topic_url' : 'subscription_url';
  if (!expectObject(c, raw, path, `an object with "${field}"`)) return undefined;
  const valid = checkFields(c, raw, path, { [field]: 'string' }, `the "${ns}" namespace`);
  if (!(field in raw)) {
    c.missing([...path, field], `the ${role === 'publisher' ? 'topic' : 'subscription'} to ${role === 'publisher' ? 'publish to' : 'receive from'}, such as "orders"`);
    return undefined;
  }
  if (!valid.has(field)) return undefined;
  const value = raw[field] as string;
  const fieldPath = [...path, field];

  // The backend: path = [...backend, 'extra_config', ns].
  const backendPath = path.slice(0, -2);
  const hostPath = [...backendPath, 'host'];
  const backend = ctx.backend ?? {};
  const hosts = backend.host;
  if (!Array.isArray(hosts) || hosts.length === 0) {
    if (!Array.isArray(hosts) && hosts !== undefined) return undefined; // reported by the backend checks
    c.error(hostPath, `the pub/sub driver as this backend's own host, such as ["nats://"] (a pub/sub backend does not take the top-level host list)`, hosts === undefined ? 'no "host" here' : '[] (an empty array)');
    return undefined;
  }
  if (typeof hosts[0] !== 'string') return undefined; // reported by the backend checks
  const host = hosts[0];
  const at = [...hostPath, 0];
  if (hosts.length > 1) c.warning([...hostPath, 1], 'one host: a pub/sub backend uses only the first, as KrakenD does', c.found([...hostPath, 1], hosts[1]));
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(host)?.[1]?.toLowerCase();
  if (scheme === undefined || !(DRIVERS as readonly string[]).includes(scheme)) {
    const other = scheme === undefined ? undefined : OTHER_DRIVERS[scheme];
    const found =
      scheme === undefined ? c.found(at, host) : other ? `"${scheme}://" (${other}: a Go CDK driver this version does not implement)` : `"${scheme}://" (not a pub/sub driver)`;
    c.error(at, `a pub/sub driver this version implements: ${DRIVER_LIST}`, found);
    return undefined;
  }
  const driver = scheme as Driver;
  try {
    new URL(host);
  } catch {
    c.invalid(at, `the driver, optionally followed by a topic prefix, such as "${driver}://"`, host);
    return undefined;
  }
  if (value.includes('://')) {
    c.invalid(fieldPath, `the ${role === 'publisher' ? 'topic' : 'subscription'} name only: the driver goes in "host" ("${driver}://")`, value);
    return undefined;
  }

  const before = c.errors.length;
  const url = host + value;
  const parts = splitUrl(url.slice(scheme.length + 3));
  if (typeof parts === 'string') {
    c.invalid(fieldPath, `a ${role === 'publisher' ? 'topic' : 'subscription'} name (${parts})`, value);
    return undefined;
  }
  const name = parts.name;
  checkName(c, driver, role, name, fieldPath, value);

  let queue: string | undefined;
  let keyName: string | undefined;
  let prefetch = 1;
  const allowed = QUERY[driver][role];
  const seen = new Set<string>();
  for (const [k, v] of new URLSearchParams(parts.query)) {
    // natspubsub matches "queue" in any case; the other openers match exactly.
    const key = driver === 'nats' ? k.toLowerCase() : k;
    if (seen.has(key)) continue; // the Go CDK reads the first value
    seen.add(key);
    if (!allowed.includes(key)) {
      const expected = allowed.length > 0 ? `a query parameter of a ${driver} ${role} URL (${allowed.map((a) => `"${a}"`).join(', ')})` : `no query parameters (a ${driver} ${role} URL takes none)`;
      c.error(fieldPath, expected, `"${k}" in ${JSON.stringify(value)}`);
      continue;
    }
    if (key === 'queue') {
      if (/\s/.test(v)) c.error(fieldPath, 'queue=<a NATS queue group name without white space>', `"queue=${v}"`);
      else queue = v === '' ? undefined : v;
    }
    else if (key === 'key_name') {
      if (v === '') c.error(fieldPath, 'key_name=<a metadata (header) name, such as X-Routing-Key>', `"key_name=" in ${JSON.stringify(value)}`);
      else keyName = v;
    } else if (key === 'prefetch_count') {
      const n = /^\d{1,5}$/.test(v) ? Number(v) : NaN;
      if (!(n >= 1 && n <= 65535)) c.error(fieldPath, 'prefetch_count=<an integer from 1 to 65535> (unacknowledged messages held at most; unlimited is not supported)', `"prefetch_count=${v}"`);
      else prefetch = n;
    } else if (key === 'ackdeadline') {
      if (parseDuration(v) === undefined) c.error(fieldPath, 'ackdeadline=<a duration such as 1m>', `"ackdeadline=${v}"`);
      else c.warning(fieldPath, 'no ackdeadline: Portico acknowledges a message when it answers a request with it, so nothing is redelivered', `"ackdeadline=${v}"`);
    }
  }

  if (role === 'publisher') checkPublisherAnswer(c, backend, backendPath);
  if (driver !== 'mem') {
    const env = SERVER_ENV[driver];
    if (!process.env[env]?.trim()) {
      c.warning(at, `${env} set in the environment of \`portico run\`: the "${driver}://" driver reads the server address from it`, `${env} not set here (\`portico run\` refuses to start without it)`);
    }
  }
  if (c.errors.length > before) return undefined;
  return { role, driver, url, name, queue, keyName, prefetch, at: formatPath(at) };
}

/**
 * What Go's url.Parse and path.Join make of "<authority>/<path>?<query>" (the
 * part after "scheme://"): the topic name is host and path joined. Written by
 * hand because WHATWG URL parsing refuses characters Go accepts in a host
 * (a NATS subject's "*" and ">").
 */
function splitUrl(rest: string): { name: string; query: string } | string {
  if (rest.includes('#')) return 'no "#" fragment';
  const q = rest.indexOf('?');
  const query = q < 0 ? '' : rest.slice(q + 1);
  const beforeQuery = q < 0 ? rest : rest.slice(0, q);
  const slash = beforeQuery.indexOf('/');
  const authority = slash < 0 ? beforeQuery : beforeQuery.slice(0, slash);
  const rawPath = slash < 0 ? '' : beforeQuery.slice(slash);
  if (authority.includes('@')) return 'no credentials: they go in the server address variable';
  let host: string;
  let path: string;
  try {
    host = decodeURIComponent(authority);
    path = decodeURIComponent(rawPath);
  } catch {
    return 'invalid %-escape';
  }
  return { name: joinPath(host, path), query };
}

/** Go's path.Join of two elements: empty ones skipped, the result cleaned. */
function joinPath(a: string, b: string): string {
  const parts = [a, b].filter((p) => p !== '');
  return parts.length === 0 ? '' : cleanPath(parts.join('/'));
}

/** Go's path.Clean. */
function cleanPath(p: string): string {
  const rooted = p.startsWith('/');
  const out: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (out.length > 0 && out.at(-1) !== '..') out.pop();
      else if (!rooted) out.push('..');
      continue;
    }
    out.push(seg);
  }
  const s = (rooted ? '/' : '') + out.join('/');
  return s === '' ? '.' : s;
}

function checkName(c: IssueCollector, driver: Driver, role: Role, name: string, at: JsonPath, value: string): void {
  const what = role === 'publisher' ? 'topic' : 'subscription';
  if (name === '' || name === '.' || name === '/') {
    c.invalid(at, `a ${what} name (the host "${driver}://" followed by this value names none)`, value);
    return;
  }
  if (driver === 'nats') {
    if (/\s/.test(name)) c.invalid(at, 'a NATS subject without white space', value);
    const tokens = name.split('.');
    if (tokens.includes('')) c.invalid(at, `a NATS subject of non-empty tokens separated by "." (the subject here is ${JSON.stringify(name)})`, value);
    if (role === 'publisher' && tokens.some((t) => t === '*' || t === '>')) {
      c.invalid(at, 'a NATS subject without wildcards ("*", ">"): a message is published to one subject', value);
    } else if (tokens.slice(0, -1).includes('>')) {
      c.invalid(at, 'a NATS subject with ">" only as its last token', value);
    }
  } else if (driver === 'rabbit' && Buffer.byteLength(name) > 255) {
    c.invalid(at, `a RabbitMQ ${role === 'publisher' ? 'exchange' : 'queue'} name of at most 255 bytes`, value);
  }
}

/** A publisher answers {} (KrakenD: an empty response): only the JSON decoders turn that into no data. */
function checkPublisherAnswer(c: IssueCollector, backend: Readonly<Record<string, unknown>>, backendPath: JsonPath): void {
  const encoding = backend.encoding;
  if (encoding === 'string' || encoding === 'xml' || encoding === 'rss') {
    c.invalid([...backendPath, 'encoding'], '"json" (the default), "safejson" or "no-op": a publisher answers {} and has nothing to decode', encoding);
  }
  if (backend.is_collection === true && (encoding === undefined || encoding === 'json' || encoding === 'yaml')) {
    c.invalid([...backendPath, 'is_collection'], 'false: a publisher answers {}, not a collection', true);
  }
}

// ---------------------------------------------------------------- transports

type Metadata = Record<string, string>;

interface Delivery {
  body: Buffer;
  metadata: Metadata;
  /** Acknowledge to the broker (rabbit); throws when the message can no longer be acknowledged. */
  ack?: () => void;
}

type Send = (body: Buffer, metadata: Metadata, signal: CancelSignal) => Promise<void>;

const EMPTY = Buffer.alloc(0);
const PUBLISHED = Buffer.from('{}');

function publisherTransport(o: PubsubOptions, ctx: CompileContext): BackendTransport {
  if (ctx.checkOnly) return notServing;
  const send = topic(o, ctx.state);
  return async (call, req) => {
    await send(call.body ?? EMPTY, metadataOf(call.headers), req.signal);
    return { status: 200, headers: { 'content-type': 'application/json' }, body: PUBLISHED, url: o.url };
  };
}

function subscriberTransport(o: PubsubOptions, ctx: CompileContext): BackendTransport {
  if (ctx.checkOnly) return notServing;
  const inbox = subscription(o, ctx.state);
  // Go's JSON decoder answers io.EOF for an empty body and KrakenD ignores it: no data.
  const b = ctx.backend;
  const jsonFamily = b === undefined || b.encoding === 'json' || b.encoding === 'yaml' || b.encoding === 'safejson';
  const emptyAs = jsonFamily ? Buffer.from(b?.isCollection && b.encoding !== 'safejson' ? 'null' : '{}') : undefined;
  return async (_call, req, maxBodyBytes) => {
    const d = await inbox.receive(req.signal);
    if (d.body.length > maxBodyBytes) {
      throw new GatewayError(500, `message from ${o.url} larger than ${maxBodyBytes} bytes`, { code: 'BACKEND_BODY_TOO_LARGE' });
    }
    const headers: ResponseHeaders = {};
    const type = contentType(d.metadata);
    if (type !== undefined) headers['content-type'] = type;
    return { status: 200, headers, body: d.body.length === 0 && emptyAs !== undefined ? emptyAs : d.body, url: o.url };
  };
}

/** `portico check` compiles without connecting: a transport that is never called. */
const notServing: BackendTransport = () => Promise.reject(new GatewayError(500, 'not serving (check only)', { code: 'BACKEND_UNREACHABLE' }));

/** The broker address from the environment, read when a serving process compiles (see the docs: a missing one refuses the config). */
function serverAddress(o: PubsubOptions): string {
  const env = SERVER_ENV[o.driver as Exclude<Driver, 'mem'>];
  const value = process.env[env]?.trim();
  if (!value) {
    const ns = o.role === 'publisher' ? PUBLISHER : SUBSCRIBER;
    throw new Error(`${ns} at ${o.at}: ${env} is not set (the "${o.driver}://" driver reads the server address from it)`);
  }
  return value;
}

function topic(o: PubsubOptions, state: StateScope): Send {
  switch (o.driver) {
    case 'mem':
      return async (body, metadata) => memPublish(o.name, { body, metadata });
    case 'nats': {
      const link = natsLink(state, serverAddress(o));
      return (body, metadata, signal) => link.publish(o.name, body, metadata, signal);
    }
    case 'rabbit': {
      const link = rabbitLink(state, serverAddress(o));
      return (body, metadata, signal) => link.publish(o.name, o.keyName, body, metadata, signal);
    }
  }
}

/** The subscription's inbox, kept across reloads while its options stay the same. */
function subscription(o: PubsubOptions, state: StateScope): Inbox {
  switch (o.driver) {
    case 'mem':
      return state.get(
        stateKey(STATE, 'mem-subscription', o.name),
        () => memSubscribe(o.name, new Inbox(o.url)),
        (inbox) => memUnsubscribe(o.name, inbox),
      );
    case 'nats': {
      const address = serverAddress(o);
      const link = natsLink(state, address);
      return state.get(
        stateKey(STATE, 'nats-subscription', sha256Hex(address), o.name, o.queue ?? null),
        () => link.subscribe(o.name, o.queue, new Inbox(o.url)),
        (inbox) => link.unsubscribe(inbox),
      );
    }
    case 'rabbit': {
      const address = serverAddress(o);
      const link = rabbitLink(state, address);
      return state.get(
        stateKey(STATE, 'rabbit-subscription', sha256Hex(address), o.name, o.prefetch),
        () => link.consume(o.name, o.prefetch, new Inbox(o.url)),
        (inbox) => link.cancel(inbox),
      );
    }
  }
}

// ---------------------------------------------------------------- metadata

/** Forwarded headers as Go CDK metadata: canonical names (Go's http.Header), the first value. */
function metadataOf(headers: Record<string, string | string[]>): Metadata {
  const out: Metadata = {};
  for (const name in headers) {
    const v = headerValue(headers[name]);
    if (v !== undefined) out[canonicalHeaderKey(name)] = v;
  }
  return out;
}

function contentType(metadata: Metadata): string | undefined {
  for (const k in metadata) if (k.toLowerCase() === 'content-type') return metadata[k];
  return undefined;
}

/** Go's url.QueryEscape over the header's bytes (node gives them as latin1 characters). */
function queryEscape(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'latin1')) {
    if ((b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b === 0x2d || b === 0x2e || b === 0x5f || b === 0x7e) {
      out += String.fromCharCode(b);
    } else if (b === 0x20) out += '+';
    else out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}


// ---------------------------------------------------------------- inbox

/** Requests waiting for something (a message, a channel), first come first served, each until its signal aborts. */
class Waiters<T> {
  #list: { resolve(v: T): void; reject(err: unknown): void; signal: CancelSignal; onAbort(): void }[] = [];

  get size(): number {
    return this.#list.length;
  }

  wait(signal: CancelSignal): Promise<T> {
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const w = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          const i = this.#list.indexOf(w);
          if (i >= 0) this.#list.splice(i, 1);
          reject(signal.reason);
        },
      };
      signal.onAbort(w.onAbort);
      this.#list.push(w);
    });
  }

  /** The first waiter gets `v`; false when nobody waits. */
  give(v: T): boolean {
    const w = this.#list.shift();
    if (w === undefined) return false;
    w.signal.offAbort(w.onAbort);
    w.resolve(v);
    return true;
  }

  rejectAll(err: unknown): void {
    const list = this.#list;
    this.#list = [];
    for (const w of list) {
      w.signal.offAbort(w.onAbort);
      w.reject(err);
    }
  }
}

function unreachable(reason: string): GatewayError {
  return new GatewayError(500, reason, { code: 'BACKEND_UNREACHABLE' });
}

function rejected(reason: string, cause?: unknown): GatewayError {
  return new GatewayError(500, reason, { code: 'PUBSUB_REJECTED', cause });
}

/**
 * A subscription's messages on their way to requests: each request takes one
 * (the oldest), or waits for the next until its signal aborts. While the
 * broker is unreachable (`down`), a request with nothing waiting fails at once.
 */
class Inbox {
  readonly #label: string;
  #items: Delivery[] = [];
  #head = 0;
  #bytes = 0;
  readonly #waiters = new Waiters<Delivery>();
  #down: string | undefined;
  #dropping = false;

  constructor(label: string) {
    this.#label = label;
  }

  get #size(): number {
    return this.#items.length - this.#head;
  }

  push(d: Delivery): void {
    if (this.#waiters.size > 0) {
      if (take(d)) this.#waiters.give(d);
      return;
    }
    this.#items.push(d);
    this.#bytes += d.body.length;
    let dropped = 0;
    while (this.#size > MAX_WAITING_MESSAGES || (this.#bytes > MAX_WAITING_BYTES && this.#size > 1)) {
      this.#shift();
      dropped++;
    }
    if (dropped > 0 && !this.#dropping) {
      log('warn', 'pub/sub subscription full: dropping its oldest messages', { subscription: this.#label, maxMessages: MAX_WAITING_MESSAGES, maxBytes: MAX_WAITING_BYTES });
    }
    this.#dropping = dropped > 0;
  }

  receive(signal: CancelSignal): Promise<Delivery> {
    while (this.#size > 0) {
      const d = this.#shift();
      if (take(d)) return Promise.resolve(d);
    }
    if (this.#down !== undefined) return Promise.reject(unreachable(this.#down));
    return this.#waiters.wait(signal);
  }

  /** The broker is unreachable: waiting requests fail now, new ones at once (while nothing is waiting for them). */
  down(reason: string): void {
    this.#down = reason;
    this.#waiters.rejectAll(unreachable(reason));
  }

  up(): void {
    this.#down = undefined;
  }

  /** Forget waiting messages (a RabbitMQ channel closed: the broker delivers them again). */
  clear(): void {
    this.#items = [];
    this.#head = 0;
    this.#bytes = 0;
  }

  #shift(): Delivery {
    const d = this.#items[this.#head]!;
    this.#items[this.#head++] = undefined as unknown as Delivery;
    this.#bytes -= d.body.length;
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return d;
  }
}

/** Acknowledge a message handed to a request; false when it can no longer be (its channel closed: it comes again). */
function take(d: Delivery): boolean {
  if (d.ack === undefined) return true;
  try {
    d.ack();
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- mem

/** Topics of this process (the Go CDK's mempubsub keeps them per process too). */
const memTopics = new Map<string, Set<Inbox>>();

function memPublish(name: string, d: Delivery): void {
  const subs = memTopics.get(name);
  if (subs !== undefined) for (const inbox of subs) inbox.push({ body: d.body, metadata: d.metadata });
}

function memSubscribe(name: string, inbox: Inbox): Inbox {
  let subs = memTopics.get(name);
  if (subs === undefined) memTopics.set(name, (subs = new Set()));
  subs.add(inbox);
  return inbox;
}

function memUnsubscribe(name: string, inbox: Inbox): void {
  const subs = memTopics.get(name);
  subs?.delete(inbox);
  if (subs?.size === 0) memTopics.delete(name);
  inbox.down('subscription closed');
}

// ---------------------------------------------------------------- broker links

type LinkState = 'connecting' | 'up' | 'down' | 'closed';

/** A broker address without its credentials, for logs and errors. */
function shown(address: string): string {
  return address.replace(/(^|,)\s*([A-Za-z][A-Za-z0-9+.-]*:\/\/)?[^@,/]*@/g, (_m, sep: string, scheme: string | undefined) => `${sep}${scheme ?? ''}***@`);
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Connection state shared by the NATS and RabbitMQ links: who waits for the first attempt, what a request is told while down. */
abstract class Link {
  protected readonly address: string;
  protected state: LinkState = 'connecting';
  protected reason = 'connecting';
  readonly #first: Promise<void>;
  #settleFirst!: () => void;
  protected readonly stop = new AbortController();

  constructor(address: string) {
    this.address = address;
    this.#first = new Promise((resolve) => (this.#settleFirst = resolve));
  }

  /** Resolves once connected; rejects at once while down, after the first attempt while connecting. */
  protected async ready(signal: CancelSignal): Promise<void> {
    if (this.state === 'connecting') await untilAborted(this.#first, signal);
    if (this.state !== 'up') throw unreachable(this.reason);
  }

  protected setUp(what: string): void {
    if (this.state === 'down') log('info', `${what} connection restored`, { server: shown(this.address) });
    this.state = 'up';
    this.reason = '';
    this.#settleFirst();
  }

  protected setDown(what: string, reason: string): void {
    if (this.state === 'closed') return;
    if (this.state !== 'down') log('warn', `${what} unreachable`, { server: shown(this.address), error: reason });
    this.state = 'down';
    this.reason = reason;
    this.#settleFirst();
  }

  protected setClosed(): void {
    this.state = 'closed';
    this.reason = 'connection closed';
    this.stop.abort();
    this.#settleFirst();
  }
}

// ---------------------------------------------------------------- nats

type NatsModule = typeof import('@nats-io/transport-node');
let natsModule: Promise<NatsModule> | undefined;
const loadNats = (): Promise<NatsModule> => (natsModule ??= import('@nats-io/transport-node'));

function natsLink(state: StateScope, address: string): NatsLink {
  return state.get(stateKey(STATE, 'nats', sha256Hex(address)), () => new NatsLink(address), (link) => link.close());
}

/** NATS_SERVER_URL as nats.go reads it: comma-separated URLs, credentials (user:pass or a token) in a URL's userinfo. */
function natsServers(address: string): { servers: string[]; user?: string; pass?: string; token?: string } {
  const out: { servers: string[]; user?: string; pass?: string; token?: string } = { servers: [] };
  for (const part of address.split(',')) {
    const s = part.trim();
    if (s === '') continue;
    const m = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)?([^@/]*)@(.*)$/.exec(s);
    if (m === null) {
      out.servers.push(s);
      continue;
    }
    out.servers.push((m[1] ?? '') + m[3]);
    if (out.user === undefined && out.token === undefined) {
      const colon = m[2]!.indexOf(':');
      if (colon < 0) out.token = unescapeUserinfo(m[2]!);
      else {
        out.user = unescapeUserinfo(m[2]!.slice(0, colon));
        out.pass = unescapeUserinfo(m[2]!.slice(colon + 1));
      }
    }
  }
  return out;
}

function unescapeUserinfo(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

interface NatsSub {
  subject: string;
  queue: string | undefined;
  sub: Subscription | undefined;
}

/**
 * One NATS connection per NATS_SERVER_URL and process. The first connection
 * is retried here with backoff; once connected, the client reconnects itself
 * (same backoff) and subscriptions survive reconnections.
 */
class NatsLink extends Link {
  #mod: NatsModule | undefined;
  #nc: NatsConnection | undefined;
  readonly #subs = new Map<Inbox, NatsSub>();
  readonly #backoff = new Backoff(100, 2_000);

  constructor(address: string) {
    super(address);
    void this.#run();
  }

  async publish(subject: string, body: Buffer, metadata: Metadata, signal: CancelSignal): Promise<void> {
    await this.ready(signal);
    const nc = this.#nc!;
    let headers: MsgHdrs | undefined;
    for (const k in metadata) {
      headers ??= this.#mod!.headers();
      headers.set(queryEscape(k), queryEscape(metadata[k]!));
    }
    try {
      nc.publish(subject, body, headers === undefined ? undefined : { headers });
    } catch (err) {
      throw rejected(`publishing to NATS subject ${JSON.stringify(subject)}: ${messageOf(err)}`, err);
    }
  }

  subscribe(subject: string, queue: string | undefined, inbox: Inbox): Inbox {
    const s: NatsSub = { subject, queue, sub: undefined };
    this.#subs.set(inbox, s);
    if (this.state === 'down') inbox.down(this.reason);
    if (this.#nc !== undefined) this.#open(inbox, s);
    return inbox;
  }

  unsubscribe(inbox: Inbox): void {
    const s = this.#subs.get(inbox);
    this.#subs.delete(inbox);
    inbox.down('subscription closed');
    try {
      s?.sub?.unsubscribe();
    } catch {
      // the connection is closed already
    }
  }

  close(): Promise<void> {
    this.setClosed();
    for (const inbox of this.#subs.keys()) inbox.down('connection closed');
    const nc = this.#nc;
    this.#nc = undefined;
    return nc === undefined ? Promise.resolve() : nc.close().catch(() => {});
  }

  async #run(): Promise<void> {
    try {
      this.#mod = await loadNats();
    } catch (err) {
      this.#down(`loading the NATS client: ${messageOf(err)}`);
      return;
    }
    const { servers, user, pass, token } = natsServers(this.address);
    while (!this.stop.signal.aborted) {
      let nc: NatsConnection;
      try {
        nc = await this.#mod.connect({
          servers,
          user,
          pass,
          token,
          name: 'portico',
          timeout: CONNECT_TIMEOUT_MS,
          maxReconnectAttempts: -1,
          reconnectDelayHandler: () => this.#backoff.next(),
          pingInterval: 10_000,
          maxPingOut: 2,
        });
      } catch (err) {
        this.#down(`cannot connect to NATS at ${shown(this.address)}: ${messageOf(err)}`);
        await pause(this.#backoff.next(), this.stop.signal);
        continue;
      }
      if (this.stop.signal.aborted) {
        await nc.close().catch(() => {});
        return;
      }
      this.#nc = nc;
      this.#backoff.reset();
      for (const [inbox, s] of this.#subs) this.#open(inbox, s);
      this.#up();
      void this.#watch(nc);
      const err = await nc.closed();
      if (this.stop.signal.aborted) return;
      this.#nc = undefined;
      for (const s of this.#subs.values()) s.sub = undefined;
      this.#down(`NATS connection to ${shown(this.address)} closed${err ? `: ${err.message}` : ''}`);
      await pause(this.#backoff.next(), this.stop.signal);
    }
  }

  async #watch(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (nc !== this.#nc) return;
      if (s.type === 'disconnect') this.#down(`NATS connection to ${shown(this.address)} lost (reconnecting)`);
      else if (s.type === 'reconnect') {
        this.#backoff.reset();
        this.#up();
      }
    }
  }

  #open(inbox: Inbox, s: NatsSub): void {
    try {
      s.sub = this.#nc!.subscribe(s.subject, {
        ...(s.queue === undefined ? {} : { queue: s.queue }),
        callback: (err, msg) => {
          if (err) {
            log('warn', 'NATS subscription failed', { subject: s.subject, error: err.message });
            return;
          }
          inbox.push({ body: Buffer.from(msg.data), metadata: natsMetadata(msg.headers) });
        },
      });
    } catch (err) {
      log('error', 'NATS subscription refused', { subject: s.subject, error: messageOf(err) });
      inbox.down(`subscribing to NATS subject ${JSON.stringify(s.subject)}: ${messageOf(err)}`);
    }
  }

  #up(): void {
    this.setUp('NATS');
    for (const inbox of this.#subs.keys()) inbox.up();
  }

  #down(reason: string): void {
    this.setDown('NATS', reason);
    for (const inbox of this.#subs.keys()) inbox.down(reason);
  }
}

/** NATS headers as Go CDK metadata: names and values query-unescaped, the first value of each. */
function natsMetadata(h: MsgHdrs | undefined): Metadata {
  const out: Metadata = {};
  if (h === undefined) return out;
  for (const [k, vs] of h) out[queryUnescape(k)] = queryUnescape(vs[0] ?? '');
  return out;
}

// ---------------------------------------------------------------- rabbit

type AmqpModule = typeof import('amqplib');
let amqpModule: Promise<AmqpModule> | undefined;
const loadAmqp = (): Promise<AmqpModule> => (amqpModule ??= import('amqplib'));

/** amqplib's recovering connection (what connect() returns with `recovery`). */
type RecoveringModel = Awaited<ReturnType<typeof import('amqplib').connect>> & { waitForConnect(): Promise<unknown> };

function rabbitLink(state: StateScope, address: string): RabbitLink {
  return state.get(stateKey(STATE, 'rabbit', sha256Hex(address)), () => new RabbitLink(address), (link) => link.close());
}

/** A confirm channel of the publisher pool: one publish in flight, so a returned message is that publish's. */
interface PubChannel {
  ch: ConfirmChannel;
  open: boolean;
  /** Why the broker returned the message in flight (mandatory, unroutable). */
  returned: string | undefined;
  /** Fails the publish in flight when the channel closes before confirming it. */
  fail: ((err: GatewayError) => void) | undefined;
  error: string | undefined;
}

interface Consumer {
  queue: string;
  prefetch: number;
  ch: Channel | undefined;
  opening: boolean;
  timer: NodeJS.Timeout | undefined;
  backoff: Backoff;
  /** Consuming failed while connected (logged once until it works). */
  failing: boolean;
}

/**
 * One AMQP connection per RABBIT_SERVER_URL and process, reopened by
 * amqplib's recovery with backoff. Publishes go through a pool of confirm
 * channels; each subscription consumes its queue on its own channel, reopened
 * after the connection or the channel is lost (a missing queue is retried).
 */
class RabbitLink extends Link {
  #conn: RecoveringModel | undefined;
  /** The live connection (amqplib's recovering handle would wait for one). */
  #model: ChannelModel | undefined;
  readonly #idle: PubChannel[] = [];
  /** Confirm channels in use or being opened. */
  #busy = 0;
  /** Publishes waiting for a channel: given a released one, or undefined (one closed: open another). */
  readonly #waiting = new Waiters<PubChannel | undefined>();
  readonly #consumers = new Map<Inbox, Consumer>();
  readonly #backoff = new Backoff(100, 2_000);

  constructor(address: string) {
    super(/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(address) ? address : `amqp://${address}`);
    void this.#start();
  }

  async publish(exchange: string, keyName: string | undefined, body: Buffer, metadata: Metadata, signal: CancelSignal): Promise<void> {
    await this.ready(signal);
    const pc = await this.#acquire(signal);
    let routingKey = '';
    const headers: Record<string, string> = {};
    for (const k in metadata) {
      if (k === keyName) routingKey = metadata[k]!;
      else headers[k] = metadata[k]!;
    }
    const to = `RabbitMQ exchange ${JSON.stringify(exchange)}`;
    const confirmed = new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (err?: GatewayError) => {
        if (settled) return;
        settled = true;
        pc.fail = undefined;
        this.#release(pc);
        if (err === undefined) resolve();
        else reject(err);
      };
      pc.returned = undefined;
      pc.fail = settle;
      try {
        pc.ch.publish(exchange, routingKey, body, { headers, mandatory: true }, (err) => {
          if (err) settle(rejected(`${to} did not confirm the message${pc.error ? `: ${pc.error}` : ''}`, err));
          else if (pc.returned !== undefined) settle(rejected(`${to} returned the message: ${pc.returned}`));
          else settle();
        });
      } catch (err) {
        pc.open = false;
        settle(unreachable(`publishing to ${to}: ${messageOf(err)}`));
      }
    });
    // A request that times out leaves; the confirmation still frees the channel.
    confirmed.catch(() => {});
    await untilAborted(confirmed, signal);
  }

  consume(queue: string, prefetch: number, inbox: Inbox): Inbox {
    const c: Consumer = { queue, prefetch, ch: undefined, opening: false, timer: undefined, backoff: new Backoff(250, 5_000), failing: false };
    this.#consumers.set(inbox, c);
    if (this.state === 'down') inbox.down(this.reason);
    if (this.state === 'up') this.#openConsumer(inbox, c);
    return inbox;
  }

  cancel(inbox: Inbox): void {
    const c = this.#consumers.get(inbox);
    this.#consumers.delete(inbox);
    inbox.down('subscription closed');
    if (c === undefined) return;
    clearTimeout(c.timer);
    c.ch?.close().catch(() => {});
    c.ch = undefined;
  }

  async close(): Promise<void> {
    this.setClosed();
    for (const [inbox, c] of this.#consumers) {
      clearTimeout(c.timer);
      inbox.down('connection closed');
    }
    await this.#conn?.close().catch(() => {});
  }

  async #start(): Promise<void> {
    let amqp: AmqpModule;
    try {
      amqp = await loadAmqp();
    } catch (err) {
      this.#down(`loading the AMQP client: ${messageOf(err)}`);
      return;
    }
    if (this.stop.signal.aborted) return;
    let conn: RecoveringModel;
    try {
      conn = (await amqp.connect(this.address, {
        timeout: CONNECT_TIMEOUT_MS,
        recovery: { waitForConnect: false, maxRetries: Infinity, calculateDelay: () => this.#backoff.next() },
      })) as unknown as RecoveringModel;
    } catch (err) {
      // A RABBIT_SERVER_URL amqplib cannot use: nothing to retry.
      this.#down(`RABBIT_SERVER_URL ${shown(this.address)}: ${messageOf(err)}`);
      return;
    }
    this.#conn = conn;
    conn.on('connect', (model: ChannelModel) => {
      this.#model = model;
      this.#backoff.reset();
      this.setUp('RabbitMQ');
      for (const [inbox, c] of this.#consumers) this.#openConsumer(inbox, c);
    });
    conn.on('disconnect', (err: Error) => {
      this.#model = undefined;
      this.#idle.length = 0;
      this.#down(`RabbitMQ connection to ${shown(this.address)} lost: ${messageOf(err)}`);
    });
    conn.on('connect-failed', (err: Error) => this.#down(`cannot connect to RabbitMQ at ${shown(this.address)}: ${messageOf(err)}`));
    conn.on('reconnect-failed', (err: Error) => this.#down(`gave up connecting to RabbitMQ at ${shown(this.address)}: ${messageOf(err)}`));
    conn.on('error', (err: Error) => log('debug', 'RabbitMQ connection error', { server: shown(this.address), error: messageOf(err) }));
    if (this.stop.signal.aborted) await conn.close().catch(() => {});
  }

  /** A confirm channel for one publish: an idle one, a new one (up to MAX_CONFIRM_CHANNELS), or the next one released. */
  #acquire(signal: CancelSignal): Promise<PubChannel> {
    for (let pc = this.#idle.pop(); pc !== undefined; pc = this.#idle.pop()) {
      if (!pc.open) continue;
      this.#busy++;
      return Promise.resolve(pc);
    }
    if (this.#busy < MAX_CONFIRM_CHANNELS) {
      this.#busy++;
      const opening = this.#openChannel();
      opening.catch(() => {
        this.#busy--;
        this.#waiting.give(undefined);
      });
      return untilAborted(opening, signal).catch((err: unknown) => {
        // Left before the channel opened: it goes back to the pool.
        if (signal.aborted) opening.then((pc) => this.#release(pc), () => {});
        throw err;
      });
    }
    // Given a released channel, or undefined when one closed: then try again.
    return this.#waiting.wait(signal).then((pc) => pc ?? this.#acquire(signal));
  }

  async #openChannel(): Promise<PubChannel> {
    const model = this.#model;
    if (model === undefined) throw unreachable(this.reason || 'RabbitMQ not connected');
    let ch: ConfirmChannel;
    try {
      ch = await model.createConfirmChannel();
    } catch (err) {
      throw unreachable(`opening a RabbitMQ channel: ${messageOf(err)}`);
    }
    const pc: PubChannel = { ch, open: true, returned: undefined, fail: undefined, error: undefined };
    ch.on('return', (msg: ConsumeMessage) => {
      const reply = (msg.fields as unknown as { replyText?: string; replyCode?: number });
      pc.returned = `${reply.replyText ?? 'unroutable'} (${reply.replyCode ?? 312})`;
    });
    ch.on('error', (err: Error) => (pc.error = messageOf(err)));
    ch.on('close', () => {
      pc.open = false;
      pc.fail?.(rejected(`RabbitMQ closed the channel${pc.error ? `: ${pc.error}` : ''}`));
    });
    return pc;
  }

  /** A publish is over: its channel goes to the next waiting publish, or back to the pool. */
  #release(pc: PubChannel): void {
    if (!pc.open || this.state !== 'up') {
      this.#busy--;
      this.#waiting.give(undefined);
      return;
    }
    if (this.#waiting.give(pc)) return;
    this.#busy--;
    if (this.#idle.length < MAX_IDLE_CONFIRM_CHANNELS) this.#idle.push(pc);
    else pc.ch.close().catch(() => {});
  }

  #openConsumer(inbox: Inbox, c: Consumer): void {
    if (c.ch !== undefined || c.opening || this.state !== 'up' || !this.#consumers.has(inbox)) return;
    c.opening = true;
    clearTimeout(c.timer);
    c.timer = undefined;
    inbox.up();
    void (async () => {
      let ch: Channel | undefined;
      let error: string | undefined;
      try {
        if (this.#model === undefined) throw new Error('not connected');
        ch = await this.#model.createChannel();
        ch.on('error', (err: Error) => (error = messageOf(err)));
        const opened = ch;
        ch.on('close', () => {
          if (c.ch !== opened) return;
          c.ch = undefined;
          inbox.clear();
          if (!this.#consumers.has(inbox)) return;
          inbox.down(`RabbitMQ closed the channel of queue ${JSON.stringify(c.queue)}${error ? `: ${error}` : ''}`);
          this.#retryConsumer(inbox, c);
        });
        await ch.prefetch(c.prefetch);
        await ch.consume(c.queue, (msg) => this.#deliver(inbox, c, opened, msg), { noAck: false });
      } catch (err) {
        c.opening = false;
        ch?.close().catch(() => {});
        if (!this.#consumers.has(inbox)) return;
        const reason = `cannot consume RabbitMQ queue ${JSON.stringify(c.queue)}: ${error ?? messageOf(err)}`;
        if (!c.failing && this.state === 'up') log('warn', reason, { server: shown(this.address) });
        c.failing = this.state === 'up';
        inbox.down(reason);
        this.#retryConsumer(inbox, c);
        return;
      }
      c.opening = false;
      if (!this.#consumers.has(inbox)) {
        ch.close().catch(() => {});
        return;
      }
      c.ch = ch;
      c.backoff.reset();
      if (c.failing) log('info', `consuming RabbitMQ queue ${JSON.stringify(c.queue)}`, { server: shown(this.address) });
      c.failing = false;
    })();
  }

  #deliver(inbox: Inbox, c: Consumer, ch: Channel, msg: ConsumeMessage | null): void {
    if (msg === null) {
      // The broker cancelled the consumer (the queue was deleted): close, and consume again later.
      ch.close().catch(() => {});
      return;
    }
    inbox.push({ body: msg.content, metadata: amqpMetadata(msg.properties.headers), ack: () => ch.ack(msg) });
  }

  #retryConsumer(inbox: Inbox, c: Consumer): void {
    if (this.state !== 'up' || c.timer !== undefined) return;
    c.timer = setTimeout(() => {
      c.timer = undefined;
      this.#openConsumer(inbox, c);
    }, c.backoff.next());
    c.timer.unref();
  }

  #down(reason: string): void {
    this.setDown('RabbitMQ', reason);
    for (const inbox of this.#consumers.keys()) inbox.down(reason);
  }
}

/** AMQP headers as Go CDK metadata: each value as text. */
function amqpMetadata(headers: Record<string, unknown> | undefined): Metadata {
  const out: Metadata = {};
  if (headers === undefined) return out;
  for (const k in headers) {
    const v = headers[k];
    out[k] = Buffer.isBuffer(v) ? v.toString('utf8') : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v);
  }
  return out;
}
