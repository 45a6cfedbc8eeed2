// `backend/amqp/consumer` and `backend/amqp/producer` (backend): the backend is
// an AMQP 0-9-1 broker (RabbitMQ) instead of an HTTP server, as KrakenD's
// krakend-amqp reaches it. The broker URL is the backend's first `host`
// (amqp://user:pass@host:port/vhost, with "disable_host_sanitize": true).
//
// Producer: each request publishes the body Portico would send an HTTP
// backend to `exchange` (a topic exchange, declared on connect), with the
// routing key and the expiration, reply-to, message id and priority taken
// from endpoint parameters (KrakenD names them with their first letter
// uppercased: {route} is "Route"), the forwarded headers as the message's
// headers table and Content-Type as its content type. The answer is `{}`
// once the broker confirmed the message (publisher confirms).
//
// Consumer: the exchange and the queue `name` are declared and bound with
// each `routing_key` on connect; each request takes ONE message from the
// queue, waiting for one until the endpoint timeout when the queue is empty.
// The message body is the backend's answer, decoded with its `encoding`; it
// is acked once it decodes (nacked, requeued unless `nack_discard`, when it
// does not), or on receipt with `auto_ack`. A message is taken only for a
// request (basic.get, then a one-message consumer while the request waits),
// so no process holds messages that another one's requests wait for.
//
// Connections: one connection and channel per backend configuration and
// process, kept in PolicyState (a reload that keeps the backend keeps it),
// opened in the background at compile time (never under `check`). A request
// while the broker is unreachable fails at once (500, AMQP_UNAVAILABLE);
// reconnection runs in the background with `backoff_strategy` delays
// (lura's strategies) up to `max_retries` attempts (0: no limit), and starts
// again on the next request once it gave up.
//
// amqplib is loaded on first use, so processes without AMQP backends do not
// load it.

import type { Channel, ChannelModel, ConfirmChannel, GetMessage, Message, Options } from 'amqplib';
import { checkFields, expectObject, type ObjectRules } from '../config/fields.ts';
import type { IssueCollector } from '../config/issues.ts';
import type { JsonPath } from '../config/json-path.ts';
import type { BackendConfig } from '../config/types.ts';
import { abortReason, untilAborted, type CancelSignal } from '../proxy/abort.ts';
import type { BackendTransport } from '../proxy/backend.ts';
import type { BufferedResponse } from '../proxy/buffered-request.ts';
import { GatewayError } from '../proxy/errors.ts';
import { canonicalHeaderKey } from '../proxy/headers.ts';
import type { BackendCall, ProxyRequest } from '../proxy/types.ts';
import { log } from '../telemetry/log.ts';
import { compileDecoder } from '../transform/decode.ts';
import { sha256Hex } from './credentials.ts';
import type { CompileContext, Namespace, ParseContext } from './namespace.ts';
import { stateKey } from './state.ts';

const CONSUMER = 'backend/amqp/consumer';
const PRODUCER = 'backend/amqp/producer';

/** Stable codes of the failures. */
export const AMQP_CODES = {
  /** No connection to the broker (down, refused, setup failed): 500. */
  unavailable: 'AMQP_UNAVAILABLE',
  /** The broker refused (nacked) a message, or the channel closed before confirming it: 500. */
  publish: 'AMQP_PUBLISH_FAILED',
  /** `mandatory` and no queue is bound for the routing key: the broker returned the message: 500. */
  unroutable: 'AMQP_UNROUTABLE',
  /** A parameter the producer puts in a message property cannot go there (too long, not a number): 400. */
  badProperty: 'AMQP_BAD_PROPERTY',
} as const;

export const BACKOFF_STRATEGIES = ['linear', 'linear-jitter', 'exponential', 'exponential-jitter', 'fallback'] as const;
export type BackoffStrategy = (typeof BACKOFF_STRATEGIES)[number];

interface AmqpCommonOptions {
  /** The queue (the consumer's; only named in logs by the producer, as in KrakenD). */
  name: string;
  exchange: string;
  durable: boolean;
  /** `delete`: auto-delete. */
  autoDelete: boolean;
  exclusive: boolean;
  /** Reconnection attempts before giving up until the next request; 0: no limit. */
  maxRetries: number;
  backoff: BackoffStrategy;
}

export interface AmqpConsumerOptions extends AmqpCommonOptions {
  routingKeys: string[];
  autoAck: boolean;
  noLocal: boolean;
  nackDiscard: boolean;
}

export interface AmqpProducerOptions extends AmqpCommonOptions {
  /** The routing key as written when static; else undefined and `params.routingKey` names the parameter. */
  staticRoutingKey: string | undefined;
  mandatory: boolean;
  /** Endpoint parameters (as written in the endpoint path) giving message properties; undefined: not set. */
  params: { routingKey?: string; expiration?: string; replyTo?: string; messageId?: string; priority?: string };
}

// ---------------------------------------------------------------- parsing

const COMMON_RULES: ObjectRules = {
  name: 'string',
  exchange: 'string',
  durable: 'boolean',
  delete: 'boolean',
  exclusive: 'boolean',
  no_wait: 'boolean',
  no_local: 'boolean',
  max_retries: 'integer',
  backoff_strategy: { kind: 'string', oneOf: BACKOFF_STRATEGIES },
  prefetch_count: { kind: 'integer', min: 0 },
  prefetch_size: { kind: 'integer', min: 0 },
};

const CONSUMER_RULES: ObjectRules = { ...COMMON_RULES, routing_key: 'string[]', auto_ack: 'boolean', nack_discard: 'boolean' };

const PRODUCER_RULES: ObjectRules = {
  ...COMMON_RULES,
  routing_key: 'string',
  static_routing_key: 'boolean',
  mandatory: 'boolean',
  immediate: 'boolean',
  exp_key: 'string',
  reply_to_key: 'string',
  msg_id_key: 'string',
  priority_key: 'string',
};

/** AMQP short strings (routing keys, names, message ids) hold at most 255 bytes. */
const SHORTSTR_MAX = 255;

function parseCommon(
  name: string,
  raw: unknown,
  at: JsonPath,
  c: IssueCollector,
  ctx: ParseContext,
  rules: ObjectRules,
): { raw: Record<string, unknown>; valid: Set<string>; common: AmqpCommonOptions } | undefined {
  if (!expectObject(c, raw, at, `an object with the queue and exchange ("name", "exchange", "routing_key", ...)`)) return undefined;
  const before = c.errors.length;
  const valid = checkFields(c, raw, at, rules, `the "${name}" namespace`);
  for (const key of ['name', 'exchange', 'routing_key']) {
    if (raw[key] === undefined) c.missing([...at, key], key === 'name' ? 'the queue name' : key === 'exchange' ? 'the exchange name' : name === CONSUMER ? 'the routing keys to bind, such as ["#"]' : 'the routing key, or the parameter giving it');
  }
  if (valid.has('exchange') && raw.exchange === '') c.invalid([...at, 'exchange'], 'a topic exchange name (the default exchange "" cannot be declared)', raw.exchange);
  for (const key of ['name', 'exchange']) {
    if (valid.has(key) && Buffer.byteLength(raw[key] as string) > SHORTSTR_MAX) c.invalid([...at, key], `at most ${SHORTSTR_MAX} bytes`, raw[key]);
  }
  for (const key of ['prefetch_count', 'prefetch_size']) {
    if (valid.has(key) && raw[key] !== 0) {
      const why = name === CONSUMER ? 'Portico takes one message per request, none ahead' : 'a producer takes no messages; KrakenD ignores it too';
      c.warning([...at, key], `nothing (${why}: this setting has no effect)`, c.found([...at, key], raw[key]));
    }
  }
  checkHost(c, at, ctx);
  if (c.errors.length > before) return undefined;
  return {
    raw,
    valid,
    common: {
      name: (raw.name as string | undefined) ?? '',
      exchange: raw.exchange as string,
      durable: raw.durable === true,
      autoDelete: raw.delete === true,
      exclusive: raw.exclusive === true,
      maxRetries: valid.has('max_retries') ? Math.max(0, raw.max_retries as number) : 0,
      backoff: valid.has('backoff_strategy') ? (raw.backoff_strategy as BackoffStrategy) : 'fallback',
    },
  };
}

const HOST_EXAMPLE = 'an amqp:// or amqps:// URL such as "amqp://guest:guest@rabbitmq:5672", with "disable_host_sanitize": true';

/** The broker is the backend's own first host (the core checks the list's shape and the sanitize rule). */
function checkHost(c: IssueCollector, at: JsonPath, ctx: ParseContext): void {
  const backend = ctx.backend;
  if (backend === undefined) return;
  const backendPath = at.slice(0, -2);
  const hosts = backend.host;
  if (!Array.isArray(hosts) || hosts.length === 0) {
    if (hosts === undefined || (Array.isArray(hosts) && hosts.length === 0)) {
      c.error([...backendPath, 'host'], `${HOST_EXAMPLE} (the top-level "host" list holds HTTP hosts)`, 'no host on this backend');
    }
    return;
  }
  const first = hosts[0];
  if (typeof first !== 'string') return;
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(first)?.[1]?.toLowerCase();
  if (scheme === 'amqp' || scheme === 'amqps') {
    // Without disable_host_sanitize the core already refuses a non-HTTP scheme.
    if (backend.disable_host_sanitize !== true) return;
    let u: URL | undefined;
    try {
      u = new URL(first);
    } catch {
      // reported below
    }
    if (u === undefined || u.hostname === '' || u.hash !== '') c.invalid([...backendPath, 'host', 0], HOST_EXAMPLE, first);
  } else {
    c.invalid([...backendPath, 'host', 0], HOST_EXAMPLE, first);
  }
  if (hosts.length > 1) {
    c.warning([...backendPath, 'host', 1], 'one host: an AMQP backend connects to the first host only (as KrakenD)', c.found([...backendPath, 'host', 1], hosts[1]));
  }
}

/** lura names endpoint parameters with their first letter uppercased ({route} is "Route"). */
function luraParamName(param: string): string {
  return param.slice(0, 1).toUpperCase() + param.slice(1);
}

/** The endpoint parameter a producer key (exp_key, routing_key...) names, by lura's naming. */
function paramFor(c: IssueCollector, key: string, path: JsonPath, ctx: ParseContext): string | undefined {
  const params = [...(ctx.endpointPath ?? '').matchAll(/\{([^}]+)\}/g)].map((m) => m[1] as string);
  const found = params.find((p) => luraParamName(p) === key);
  if (found !== undefined) return found;
  const declared = params.length > 0 ? params.map((p) => `"${luraParamName(p)}" for {${p}}`).join(', ') : 'none';
  c.warning(path, `a parameter of the endpoint, first letter uppercased (${declared}): the property is never set`, JSON.stringify(key));
  return undefined;
}

function parseConsumer(raw: unknown, at: JsonPath, c: IssueCollector, ctx: ParseContext): AmqpConsumerOptions | undefined {
  const parsed = parseCommon(CONSUMER, raw, at, c, ctx, CONSUMER_RULES);
  if (parsed === undefined) return undefined;
  const { raw: r, common } = parsed;
  const keys = r.routing_key as string[];
  let ok = true;
  keys.forEach((k, i) => {
    if (Buffer.byteLength(k) > SHORTSTR_MAX) {
      c.invalid([...at, 'routing_key', i], `at most ${SHORTSTR_MAX} bytes`, k);
      ok = false;
    }
  });
  if (!ok) return undefined;
  return { ...common, routingKeys: [...new Set(keys)], autoAck: r.auto_ack === true, noLocal: r.no_local === true, nackDiscard: r.nack_discard === true };
}

function parseProducer(raw: unknown, at: JsonPath, c: IssueCollector, ctx: ParseContext): AmqpProducerOptions | undefined {
  const parsed = parseCommon(PRODUCER, raw, at, c, ctx, PRODUCER_RULES);
  if (parsed === undefined) return undefined;
  const { raw: r, valid, common } = parsed;
  if (r.immediate === true) {
    c.warning([...at, 'immediate'], 'false: RabbitMQ (since 3.0) and amqplib do not implement "immediate"; messages are published without it', 'true');
  }
  const isStatic = r.static_routing_key === true;
  const routingKey = r.routing_key as string;
  if (isStatic && Buffer.byteLength(routingKey) > SHORTSTR_MAX) {
    c.invalid([...at, 'routing_key'], `at most ${SHORTSTR_MAX} bytes`, routingKey);
    return undefined;
  }
  const params: AmqpProducerOptions['params'] = {};
  if (!isStatic) params.routingKey = paramFor(c, routingKey, [...at, 'routing_key'], ctx);
  const keyed = [['exp_key', 'expiration'], ['reply_to_key', 'replyTo'], ['msg_id_key', 'messageId'], ['priority_key', 'priority']] as const;
  for (const [field, prop] of keyed) {
    if (valid.has(field) && r[field] !== '') params[prop] = paramFor(c, r[field] as string, [...at, field], ctx);
  }
  return { ...common, staticRoutingKey: isStatic ? routingKey : undefined, mandatory: r.mandatory === true, params };
}

// ---------------------------------------------------------------- connection

type Amqplib = typeof import('amqplib');
let amqplib: Promise<Amqplib> | undefined;
const loadAmqplib = (): Promise<Amqplib> => (amqplib ??= import('amqplib'));

/** Bound of one connection attempt (TCP, TLS and the AMQP handshake). */
const CONNECT_TIMEOUT_MS = 10_000;
/** Heartbeat asked for when the URL sets none (amqp091-go's default, which KrakenD uses). */
const DEFAULT_HEARTBEAT_S = 10;
/** KrakenD's exponential delays have no ceiling; Portico caps them. */
const MAX_BACKOFF_MS = 60_000;

/** The delay before reconnection attempt `i` (from 0), by lura's backoff strategies (fallback: always 1 s). */
export function backoffDelayMs(strategy: BackoffStrategy, i: number): number {
  const jitter = (s: number) => {
    const ms = s * 1000;
    const max = Math.floor(ms / 3) + 1;
    return Math.max(1, ms + Math.floor(Math.random() * 2 * max) - max);
  };
  let ms: number;
  switch (strategy) {
    case 'linear':
      ms = i * 1000;
      break;
    case 'linear-jitter':
      ms = jitter(i);
      break;
    case 'exponential':
      ms = 2 ** Math.min(i, 30) * 1000;
      break;
    case 'exponential-jitter':
      ms = jitter(2 ** Math.min(i, 30));
      break;
    case 'fallback':
      ms = 1000;
      break;
  }
  return Math.min(ms, MAX_BACKOFF_MS);
}

/** The broker URL without its password, for logs and answers. */
export function redactedHost(host: string): string {
  try {
    const u = new URL(host);
    if (u.password !== '') u.password = 'xxxxx';
    return u.toString();
  } catch {
    return '(unparsable URL)';
  }
}

/** The URL amqplib connects to: the heartbeat defaults to KrakenD's 10 s. */
function connectionUrl(host: string): string {
  const u = new URL(host);
  if (!u.searchParams.has('heartbeat')) u.searchParams.set('heartbeat', String(DEFAULT_HEARTBEAT_S));
  return u.toString();
}

function unavailable(shown: string, why: string): GatewayError {
  return new GatewayError(500, `AMQP broker ${shown} not available: ${why}`, { code: AMQP_CODES.unavailable });
}

const ignore = (): void => {};

interface LinkSettings {
  host: string;
  role: 'consumer' | 'producer';
  /** url_pattern of the backend, for logs (KrakenD's "[BACKEND: /foo][AMQP]"). */
  backend: string;
  maxRetries: number;
  backoff: BackoffStrategy;
  /** Declarations on a fresh channel; a failure closes the connection and counts as a failed attempt. */
  setup(ch: Channel): Promise<void>;
  /** The channel went away (connection lost, channel error, close). */
  onLost(): void;
}

/**
 * One connection and channel to the broker, reconnected in the background.
 * Requests get the channel when it is up, wait for the first attempt, and fail
 * at once while the broker is known to be unreachable.
 */
class AmqpLink {
  readonly shown: string;
  readonly #s: LinkSettings;
  readonly #url: string;
  #conn: ChannelModel | undefined;
  #ch: Channel | undefined;
  /** The first connection attempt, while it runs. */
  #first: Promise<void> | undefined;
  /** An attempt failed or the connection was lost: requests fail fast until one succeeds. */
  #failed = false;
  #lastError = '';
  /** The reconnection loop is running. */
  #retrying = false;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(s: LinkSettings) {
    this.#s = s;
    this.#url = connectionUrl(s.host);
    this.shown = redactedHost(s.host);
  }

  /** Start connecting, unless connected, connecting or retrying. */
  start(): void {
    if (this.#ch !== undefined || this.#first !== undefined || this.#failed || this.#closed) return;
    this.#first = this.#attempt().then((ok) => {
      this.#first = undefined;
      if (ok || this.#closed) return;
      this.#failed = true;
      this.#log('warn', 'amqp connection failed', { error: this.#lastError });
      this.#retry();
    });
  }

  /** The channel; waits for the first connection attempt (bounded by `signal`). */
  async channel(signal: CancelSignal): Promise<Channel> {
    if (this.#ch !== undefined) return this.#ch;
    if (this.#closed) throw unavailable(this.shown, 'closed');
    if (this.#failed) {
      this.#retry();
      throw unavailable(this.shown, `${this.#lastError} (reconnecting)`);
    }
    this.start();
    await untilAborted(this.#first!, signal);
    if (this.#ch !== undefined) return this.#ch;
    throw unavailable(this.shown, this.#lastError);
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    const conn = this.#conn;
    this.#conn = undefined;
    if (this.#ch !== undefined) {
      this.#ch = undefined;
      this.#s.onLost();
    }
    if (conn !== undefined) await conn.close().catch(ignore);
  }

  async #attempt(): Promise<boolean> {
    let conn: ChannelModel | undefined;
    try {
      const amqp = await loadAmqplib();
      conn = await amqp.connect(this.#url, { timeout: CONNECT_TIMEOUT_MS, noDelay: true, clientProperties: { connection_name: `portico ${this.#s.role} ${this.#s.backend}` } });
      const c = conn;
      c.on('error', (err: Error) => (this.#lastError = err.message));
      c.on('close', () => this.#lost(c));
      c.on('blocked', (reason: string) => this.#log('warn', 'amqp connection blocked by the broker', { reason }));
      const ch = this.#s.role === 'producer' ? await c.createConfirmChannel() : await c.createChannel();
      ch.on('error', (err: Error) => (this.#lastError = err.message));
      ch.on('close', () => this.#lost(c));
      await this.#s.setup(ch);
      if (this.#closed) throw new Error('closed');
      this.#conn = c;
      this.#ch = ch;
      this.#failed = false;
      return true;
    } catch (err) {
      this.#lastError = (err as Error).message;
      if (conn !== undefined) void conn.close().catch(ignore);
      return false;
    }
  }

  #lost(conn: ChannelModel): void {
    if (conn !== this.#conn) return;
    this.#conn = undefined;
    this.#ch = undefined;
    this.#failed = true;
    void conn.close().catch(ignore);
    this.#s.onLost();
    if (this.#closed) return;
    this.#log('warn', 'amqp connection lost', { error: this.#lastError || 'closed' });
    this.#retry();
  }

  /** Reconnect in the background: attempt i after backoffDelayMs(i), up to max_retries attempts. */
  #retry(): void {
    if (this.#retrying || this.#closed) return;
    this.#retrying = true;
    const step = (i: number) => {
      this.#timer = setTimeout(async () => {
        if (this.#closed) return;
        if (await this.#attempt()) {
          this.#retrying = false;
          this.#log('info', 'amqp connection restored', { attempts: i + 1 });
        } else if (this.#s.maxRetries === 0 || i + 1 < this.#s.maxRetries) {
          step(i + 1);
        } else {
          this.#retrying = false;
          this.#log('warn', 'amqp reconnection stopped, the next request starts it again', { attempts: i + 1, error: this.#lastError });
        }
      }, backoffDelayMs(this.#s.backoff, i));
      this.#timer.unref();
    };
    step(0);
  }

  #log(level: 'info' | 'warn', msg: string, fields: Record<string, unknown>): void {
    log(level, msg, { backend: this.#s.backend, role: this.#s.role, host: this.shown, ...fields });
  }
}

function keyOf(ns: string, host: string, options: unknown): string {
  // The URL carries the password: only its digest goes in the key.
  return stateKey(ns, sha256Hex(host), options);
}

/** The process's consumer or producer for this backend configuration, connecting in the background when created. */
function linked<T extends { link: AmqpLink }>(ctx: CompileContext, key: string, create: () => T): T {
  return ctx.state.get(
    key,
    () => {
      const made = create();
      made.link.start();
      return made;
    },
    (made) => made.link.close(),
  );
}

function requireHost(b: BackendConfig): string {
  const host = b.host[0];
  if (host === undefined) throw new Error(`AMQP backend ${b.urlPattern}: no host`);
  return host;
}

// ---------------------------------------------------------------- consumer

/** Takes one message per request from a queue (see the header). */
class AmqpConsumer {
  readonly link: AmqpLink;
  readonly #o: AmqpConsumerOptions;
  /** The queue name the broker gave (the configured one, or a generated one for ""). */
  #queue = '';
  /** Requests waiting on a one-message consumer: rejected when the channel goes. */
  readonly #waiting = new Set<(err: Error) => void>();

  constructor(o: AmqpConsumerOptions, host: string, backend: string) {
    this.#o = o;
    this.link = new AmqpLink({
      host,
      role: 'consumer',
      backend,
      maxRetries: o.maxRetries,
      backoff: o.backoff,
      setup: (ch) => this.#setup(ch),
      onLost: () => {
        const waiting = [...this.#waiting];
        this.#waiting.clear();
        for (const reject of waiting) reject(unavailable(this.link.shown, 'connection lost'));
      },
    });
  }

  async #setup(ch: Channel): Promise<void> {
    const o = this.#o;
    // KrakenD passes `exclusive` as the exchange's "internal" flag; an internal exchange refuses publishers, so not here.
    await ch.assertExchange(o.exchange, 'topic', { durable: o.durable, autoDelete: o.autoDelete, internal: false });
    const q = await ch.assertQueue(o.name, { durable: o.durable, autoDelete: o.autoDelete, exclusive: o.exclusive });
    for (const key of o.routingKeys) await ch.bindQueue(q.queue, o.exchange, key);
    // Each one-message consumer holds at most one unacknowledged message.
    await ch.prefetch(1);
    this.#queue = q.queue;
  }

  /** One message, waiting for it until `signal` aborts. */
  async take(signal: CancelSignal): Promise<{ ch: Channel; msg: Message }> {
    const ch = await this.link.channel(signal);
    const got: GetMessage | false = await ch.get(this.#queue, { noAck: false }).catch((err: Error) => {
      throw unavailable(this.link.shown, err.message);
    });
    if (got !== false) {
      if (signal.aborted) {
        requeue(ch, got);
        throw abortReason(signal);
      }
      return { ch, msg: got };
    }
    return { ch, msg: await this.#wait(ch, signal) };
  }

  /** A consumer for one message, cancelled once it has it or the request ends; a late message goes back to the queue. */
  #wait(ch: Channel, signal: CancelSignal): Promise<Message> {
    if (signal.aborted) return Promise.reject(abortReason(signal));
    return new Promise<Message>((resolve, reject) => {
      let done = false;
      let tag: string | undefined;
      const cancel = () => {
        if (tag !== undefined) ch.cancel(tag).catch(ignore);
      };
      const finish = (err: Error | undefined, msg?: Message) => {
        if (done) return;
        done = true;
        signal.offAbort(onAbort);
        this.#waiting.delete(onLost);
        if (err === undefined) resolve(msg!);
        else reject(err);
      };
      const onAbort = () => {
        finish(abortReason(signal));
        cancel();
      };
      const onLost = (err: Error) => finish(err);
      signal.onAbort(onAbort);
      this.#waiting.add(onLost);
      const onMessage = (msg: Message | null) => {
        if (msg === null) return finish(unavailable(this.link.shown, `the broker cancelled the consumer of queue "${this.#queue}"`));
        tag = msg.fields.consumerTag as string;
        if (done) {
          requeue(ch, msg);
          return;
        }
        finish(undefined, msg);
        cancel();
      };
      ch.consume(this.#queue, onMessage, { noAck: false, noLocal: this.#o.noLocal, exclusive: false }).then(
        (ok) => {
          tag = ok.consumerTag;
          if (done) cancel();
        },
        (err: Error) => finish(unavailable(this.link.shown, err.message)),
      );
    });
  }
}

/** Give a message taken for a request that is gone back to the queue (unless the channel is gone: then the broker does). */
function requeue(ch: Channel, msg: Message): void {
  try {
    ch.nack(msg, false, true);
  } catch {
    // channel closed
  }
}

function consumerTransport(o: AmqpConsumerOptions, ctx: CompileContext): BackendTransport {
  const b = ctx.backend!;
  const host = requireHost(b);
  const shown = redactedHost(host);
  if (ctx.checkOnly) return () => Promise.reject(unavailable(shown, 'not connected under check'));
  const consumer = linked(ctx, keyOf(CONSUMER, host, o), () => new AmqpConsumer(o, host, b.urlPattern));
  // The body is decoded here first, as KrakenD does before acking: a message that does not decode is nacked.
  const decode = b.encoding === 'no-op' ? undefined : compileDecoder(b.encoding, b.isCollection);
  // KrakenD's decoders take an empty body (io.EOF) as no data.
  const empty = b.encoding === 'json' || b.encoding === 'yaml' || b.encoding === 'safejson' ? Buffer.from(b.isCollection ? 'null' : '{}') : undefined;
  const url = `${shown} (queue "${o.name}")`;

  return async (_call: BackendCall, req: ProxyRequest, maxBodyBytes: number): Promise<BufferedResponse> => {
    const { ch, msg } = await consumer.take(req.signal);
    const settle = (ok: boolean) => {
      try {
        if (ok) ch.ack(msg);
        else ch.nack(msg, false, !o.nackDiscard);
      } catch {
        // The channel closed meanwhile: the broker requeues the message.
      }
    };
    if (o.autoAck) settle(true);
    let body = msg.content;
    let failure: GatewayError | undefined;
    if (body.length > maxBodyBytes) {
      failure = new GatewayError(500, `AMQP message from ${url} larger than ${maxBodyBytes} bytes`, { code: 'BACKEND_BODY_TOO_LARGE' });
    } else if (decode !== undefined) {
      if (body.length === 0 && empty !== undefined) body = empty;
      try {
        decode(body);
      } catch (err) {
        failure = new GatewayError(500, `decoding the AMQP message from ${url}: ${(err as Error).message}`, { cause: err, code: 'BACKEND_DECODE' });
      }
    }
    if (!o.autoAck) settle(failure === undefined);
    if (failure !== undefined) {
      if (o.nackDiscard && !o.autoAck) log('debug', 'amqp message discarded (nack)', { backend: b.urlPattern, queue: o.name });
      throw failure;
    }
    const contentType = msg.properties.contentType as string | undefined;
    return { status: 200, headers: contentType ? { 'content-type': contentType } : {}, body, url };
  };
}

// ---------------------------------------------------------------- producer

interface Outstanding {
  exchange: string;
  routingKey: string;
  content: Buffer;
  returned: boolean;
}

/** Publishes with confirms; with `mandatory`, a returned message fails its request. */
class AmqpProducer {
  readonly link: AmqpLink;
  /** Unconfirmed mandatory publishes of the current channel, oldest first. */
  #outstanding: Outstanding[] = [];

  constructor(o: AmqpProducerOptions, host: string, backend: string) {
    this.link = new AmqpLink({
      host,
      role: 'producer',
      backend,
      maxRetries: o.maxRetries,
      backoff: o.backoff,
      setup: async (ch) => {
        this.#outstanding = [];
        // A returned message comes before its confirm; match it to its publish by content.
        ch.on('return', (m: Message) => {
          const hit = this.#outstanding.find((p) => !p.returned && p.exchange === m.fields.exchange && p.routingKey === m.fields.routingKey && p.content.equals(m.content));
          if (hit !== undefined) hit.returned = true;
        });
        // KrakenD passes `exclusive` as the exchange's "internal" flag, which refuses every publish: not here.
        await ch.assertExchange(o.exchange, 'topic', { durable: o.durable, autoDelete: o.autoDelete, internal: false });
      },
      onLost: () => {
        this.#outstanding = [];
      },
    });
  }

  async publish(exchange: string, routingKey: string, content: Buffer, options: Options.Publish, signal: CancelSignal): Promise<void> {
    const ch = (await this.link.channel(signal)) as ConfirmChannel;
    const entry: Outstanding | undefined = options.mandatory ? { exchange, routingKey, content, returned: false } : undefined;
    const confirmed = new Promise<void>((resolve, reject) => {
      try {
        ch.publish(exchange, routingKey, content, options, (err) => {
          if (entry !== undefined) this.#outstanding = this.#outstanding.filter((p) => p !== entry);
          if (err !== null && err !== undefined) reject(new GatewayError(500, `publishing to ${this.link.shown}: ${(err as Error).message}`, { code: AMQP_CODES.publish }));
          else if (entry?.returned) reject(new GatewayError(500, `no queue bound to exchange "${exchange}" for routing key "${routingKey}" (mandatory)`, { code: AMQP_CODES.unroutable }));
          else resolve();
        });
        if (entry !== undefined) this.#outstanding.push(entry);
      } catch (err) {
        reject(err instanceof RangeError ? new GatewayError(500, `publishing to ${this.link.shown}: ${err.message}`, { code: AMQP_CODES.publish }) : unavailable(this.link.shown, (err as Error).message));
      }
    });
    await untilAborted(confirmed, signal);
  }
}

/** A property value from an endpoint parameter, or a 400 when AMQP cannot carry it. */
function shortProperty(value: string, what: string): string {
  if (Buffer.byteLength(value) > SHORTSTR_MAX) throw new GatewayError(400, `${what}: at most ${SHORTSTR_MAX} bytes`, { code: AMQP_CODES.badProperty });
  return value;
}

function producerTransport(o: AmqpProducerOptions, ctx: CompileContext): BackendTransport {
  const b = ctx.backend!;
  const host = requireHost(b);
  const shown = redactedHost(host);
  if (ctx.checkOnly) return () => Promise.reject(unavailable(shown, 'not connected under check'));
  const producer = linked(ctx, keyOf(PRODUCER, host, o), () => new AmqpProducer(o, host, b.urlPattern));
  const { params } = o;
  const url = `${shown} (exchange "${o.exchange}")`;
  const answer = Buffer.from('{}');

  return async (call: BackendCall, req: ProxyRequest): Promise<BufferedResponse> => {
    const param = (name: string | undefined) => (name === undefined ? undefined : req.params[name]);
    const routingKey = o.staticRoutingKey ?? shortProperty(param(params.routingKey) ?? '', 'routing key');
    // The forwarded headers, each a list of strings, with Go's canonical names (as krakend-amqp sends them).
    const headers: Record<string, string[]> = {};
    for (const [name, value] of Object.entries(call.headers)) headers[canonicalHeaderKey(name)] = Array.isArray(value) ? value : [value];
    const contentType = call.headers['content-type'];
    const options: Options.Publish = {
      headers,
      contentType: Array.isArray(contentType) ? contentType[0] : contentType,
      timestamp: Math.floor(Date.now() / 1000),
      mandatory: o.mandatory,
    };
    const expiration = param(params.expiration);
    if (expiration) {
      // RabbitMQ closes the channel on any other expiration: refuse it here.
      if (!/^\d{1,10}$/.test(expiration)) throw new GatewayError(400, 'message expiration: a number of milliseconds', { code: AMQP_CODES.badProperty });
      options.expiration = expiration;
    }
    const replyTo = param(params.replyTo);
    if (replyTo) options.replyTo = shortProperty(replyTo, 'reply-to');
    const messageId = param(params.messageId);
    if (messageId) options.messageId = shortProperty(messageId, 'message id');
    const priority = param(params.priority);
    // As Go's strconv.Atoi then uint8(): not a number means no priority; others wrap to 0-255.
    if (priority !== undefined && /^[+-]?\d{1,18}$/.test(priority)) options.priority = Number(BigInt.asUintN(8, BigInt(priority)));

    await producer.publish(o.exchange, routingKey, call.body ?? Buffer.alloc(0), options, req.signal);
    return { status: 200, headers: { 'content-type': 'application/json' }, body: answer, url };
  };
}

// ---------------------------------------------------------------- namespaces

export const backendAmqpConsumer: Namespace<AmqpConsumerOptions> = {
  name: CONSUMER,
  scopes: ['backend'],
  order: 0,
  policy: false,
  parse: parseConsumer,
  transport: consumerTransport,
};

export const backendAmqpProducer: Namespace<AmqpProducerOptions> = {
  name: PRODUCER,
  scopes: ['backend'],
  order: 0,
  policy: false,
  parse: parseProducer,
  transport: producerTransport,
};
