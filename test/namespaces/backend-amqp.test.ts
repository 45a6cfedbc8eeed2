// backend/amqp/producer and backend/amqp/consumer against a real RabbitMQ and
// a real `portico run` process: what the producer publishes (checked with an
// amqplib consumer here), one message per consumer request, an empty queue
// until the endpoint timeout, a broker that goes away and comes back, and
// configurations `portico check` refuses.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Channel, ChannelModel, GetMessage } from 'amqplib';
import { startJsonBackend, type TestBackend } from '../helpers/backend.ts';
import { startGateway } from '../helpers/gateway.ts';
import { get, request } from '../helpers/http.ts';
import { LogLines } from '../helpers/log-lines.ts';
import { runCli, startCli, writeConfigFile, type Running } from '../helpers/process.ts';
import { rabbitmqAvailable, startRabbitmq, type TestRabbitmq } from '../helpers/rabbitmq-server.ts';
import { backoffDelayMs } from '../../src/namespaces/backend-amqp.ts';

const skip = rabbitmqAvailable ? false : 'rabbitmq-server not installed';

const EXCHANGE = 'portico-test';
const QUEUE = 'portico-orders';
const DISCARD_QUEUE = 'portico-discard';
const CONSUME_TIMEOUT_MS = 1000;
const MAX_BACKEND_BODY = 4096;

function amqpBackend(url: string, ns: string, options: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return { host: [url], disable_host_sanitize: true, url_pattern: '/', extra_config: { [ns]: options }, ...extra };
}

function config(url: string, http: string): Record<string, unknown> {
  const producer = (o: Record<string, unknown>) => amqpBackend(url, 'backend/amqp/producer', { name: 'unused', exchange: EXCHANGE, ...o });
  const consumer = (o: Record<string, unknown>) => amqpBackend(url, 'backend/amqp/consumer', { exchange: EXCHANGE, ...o });
  return {
    version: 3,
    extra_config: { router: { disable_access_log: true }, 'portico/server': { max_body_bytes: 2048, max_backend_body_bytes: MAX_BACKEND_BODY } },
    endpoints: [
      {
        endpoint: '/produce/{route}/{id}/{prio}/{ttl}',
        method: 'POST',
        input_headers: ['Content-Type', 'X-Custom'],
        backend: [producer({ routing_key: 'Route', msg_id_key: 'Id', priority_key: 'Prio', exp_key: 'Ttl', reply_to_key: 'Nothing' })],
      },
      { endpoint: '/produce-static', method: 'POST', backend: [producer({ routing_key: 'orders.static', static_routing_key: true })] },
      { endpoint: '/produce-mandatory/{key}', method: 'POST', backend: [producer({ routing_key: 'Key', mandatory: true })] },
      { endpoint: '/consume', timeout: `${CONSUME_TIMEOUT_MS}ms`, backend: [consumer({ name: QUEUE, routing_key: ['orders.#'] })] },
      {
        endpoint: '/consume-discard',
        timeout: `${CONSUME_TIMEOUT_MS}ms`,
        backend: [consumer({ name: DISCARD_QUEUE, routing_key: ['discard.#'], nack_discard: true, max_retries: 0 })],
      },
      { endpoint: '/http', backend: [{ host: [http], url_pattern: '/ok' }] },
    ],
  };
}

describe('backend/amqp against RabbitMQ', { skip }, () => {
  let mq: TestRabbitmq;
  let http: TestBackend;
  let gw: Running;
  let logs: LogLines;
  let base: string;
  let conn: ChannelModel;
  let ch: Channel;
  /** Messages the producer published, bound with "produced.#". */
  let produced: string;

  const open = async () => {
    const amqp = await import('amqplib');
    conn = await amqp.connect(mq.url);
    conn.on('error', () => {});
    ch = await conn.createChannel();
    ch.on('error', () => {});
    await ch.assertExchange(EXCHANGE, 'topic', { durable: false });
    produced = (await ch.assertQueue('', { exclusive: true })).queue;
    await ch.bindQueue(produced, EXCHANGE, 'produced.#');
  };

  /** The next message in `queue`, polled (basic.get answers at once when it is empty). */
  const nextIn = async (queue: string, timeoutMs = 5000): Promise<GetMessage> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = await ch.get(queue, { noAck: true });
      if (m !== false) return m;
      if (Date.now() > deadline) throw new Error(`no message in ${queue} within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  const publish = (key: string, body: unknown) =>
    ch.publish(EXCHANGE, key, Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body)), { contentType: 'application/json' });

  /** Wait until the gateway's queue exists and is bound (its consumer link is up). */
  const queueReady = async (queue: string) => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const probe = await conn.createChannel();
      probe.on('error', () => {});
      try {
        await probe.checkQueue(queue);
        await probe.close();
        return;
      } catch {
        if (Date.now() > deadline) throw new Error(`queue ${queue} never declared`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  before(async () => {
    mq = await startRabbitmq();
    http = await startJsonBackend({ '/ok': { ok: true } });
    const { file } = writeConfigFile(config(mq.url, http.url));
    gw = await startCli(['run', '-c', file, '-p', '0'], { PORTICO_LOG_LEVEL: 'debug' });
    logs = new LogLines(gw);
    base = `http://127.0.0.1:${gw.port}`;
    await open();
    await queueReady(QUEUE);
    await queueReady(DISCARD_QUEUE);
  });

  after(async () => {
    await conn?.close().catch(() => {});
    if (gw) {
      gw.child.kill('SIGTERM');
      await gw.exited;
    }
    await http?.close();
    await mq?.close();
  });

  it('producer: publishes the body with the routing key, id, priority and expiration from parameters and the forwarded headers', async () => {
    const body = JSON.stringify({ order: 42 });
    const before = Math.floor(Date.now() / 1000);
    const r = await request(base, '/produce/produced.new/msg-7/300/60000', {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json', 'x-custom': 'yes', 'x-secret': 'not forwarded' },
    });
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json(), {});
    const m = await nextIn(produced);
    assert.equal(m.content.toString(), body);
    assert.equal(m.fields.exchange, EXCHANGE);
    assert.equal(m.fields.routingKey, 'produced.new');
    assert.equal(m.properties.messageId, 'msg-7');
    assert.equal(m.properties.priority, 300 % 256, 'Go uint8() wraps');
    assert.equal(m.properties.expiration, '60000');
    assert.equal(m.properties.replyTo, undefined, 'reply_to_key names no parameter');
    assert.equal(m.properties.contentType, 'application/json');
    assert.ok(m.properties.timestamp >= before && m.properties.timestamp <= Math.floor(Date.now() / 1000) + 1);
    const h = m.properties.headers as Record<string, unknown>;
    assert.deepEqual(h['Content-Type'], ['application/json']);
    assert.deepEqual(h['X-Custom'], ['yes']);
    assert.deepEqual(h['X-Forwarded-For'], ['127.0.0.1']);
    assert.equal(h['X-Secret'], undefined);
  });

  it('producer: a static routing key; mandatory with no queue bound is a 500, with one it is a 200', async () => {
    await ch.bindQueue(produced, EXCHANGE, 'orders.static');
    let r = await request(base, '/produce-static', { method: 'POST', body: 'plain text' });
    assert.equal(r.status, 200);
    // The gateway's own consumer queue (orders.#) gets it too; the test queue is checked here.
    const m = await nextIn(produced);
    assert.equal(m.fields.routingKey, 'orders.static');
    assert.equal(m.content.toString(), 'plain text');
    await ch.purgeQueue(QUEUE);

    r = await request(base, '/produce-mandatory/nobody.listens', { method: 'POST', body: '{}' });
    assert.equal(r.status, 500);
    r = await request(base, '/produce-mandatory/produced.mandatory', { method: 'POST', body: '{"m":1}' });
    assert.equal(r.status, 200);
    assert.equal((await nextIn(produced)).content.toString(), '{"m":1}');
  });

  it('producer: a parameter a message property cannot carry is a 400 and nothing is published', async () => {
    let r = await request(base, '/produce/produced.bad/id/1/soon', { method: 'POST', body: '{}' });
    assert.equal(r.status, 400);
    r = await request(base, `/produce/produced.bad/${'x'.repeat(300)}/1/1000`, { method: 'POST', body: '{}' });
    assert.equal(r.status, 400);
    // A body over portico/server.max_body_bytes never reaches the broker.
    r = await request(base, '/produce/produced.big/id/1/1000', { method: 'POST', body: 'x'.repeat(4096) });
    assert.equal(r.status, 413);
    // The channel survived: the next publish goes through, and it is the only message.
    r = await request(base, '/produce/produced.good/id/1/1000', { method: 'POST', body: '{"good":true}' });
    assert.equal(r.status, 200);
    const m = await nextIn(produced);
    assert.equal(m.fields.routingKey, 'produced.good');
    assert.equal(await ch.get(produced, { noAck: true }), false);
  });

  it('consumer: one message per request, decoded, acknowledged', async () => {
    publish('orders.a', { n: 1, tags: ['x'] });
    publish('orders.b', { n: 2 });
    let r = await get(base, '/consume');
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json(), { n: 1, tags: ['x'] });
    r = await get(base, '/consume');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { n: 2 });
    const q = await ch.checkQueue(QUEUE);
    assert.equal(q.messageCount, 0);
  });

  it('consumer: an empty queue waits until the endpoint timeout, and the message published meanwhile is answered', async () => {
    const started = Date.now();
    const r = await get(base, '/consume');
    const took = Date.now() - started;
    assert.equal(r.status, 500);
    assert.ok(took >= CONSUME_TIMEOUT_MS - 50 && took < CONSUME_TIMEOUT_MS + 1500, `took ${took} ms`);
    // The waiting request's consumer is gone: a message published now stays for the next request.
    publish('orders.after', { after: true });
    assert.deepEqual((await get(base, '/consume')).json(), { after: true });

    // A request waiting on the empty queue gets a message as soon as it is published.
    const waiting = get(base, '/consume');
    const deadline = Date.now() + 2000;
    while ((await ch.checkQueue(QUEUE)).consumerCount === 0) {
      assert.ok(Date.now() < deadline, 'the waiting request never subscribed');
      await new Promise((res) => setTimeout(res, 10));
    }
    const sent = Date.now();
    publish('orders.live', { live: 1 });
    const live = await waiting;
    assert.equal(live.status, 200);
    assert.deepEqual(live.json(), { live: 1 });
    assert.ok(Date.now() - sent < 500);
  });

  it('consumer: a message that does not decode is a 500 and goes back to the queue; nack_discard drops it', async () => {
    publish('orders.bad', Buffer.from('not json'));
    let r = await get(base, '/consume');
    assert.equal(r.status, 500);
    const requeued = await nextIn(QUEUE);
    assert.equal(requeued.content.toString(), 'not json');
    assert.equal(requeued.fields.redelivered, true);

    publish('discard.bad', Buffer.from('[1, 2]'));
    r = await get(base, '/consume-discard');
    assert.equal(r.status, 500);
    assert.equal((await ch.checkQueue(DISCARD_QUEUE)).messageCount, 0);

    // Over max_backend_body_bytes: the same (discarded here).
    publish('discard.big', { big: 'x'.repeat(MAX_BACKEND_BODY) });
    r = await get(base, '/consume-discard');
    assert.equal(r.status, 500);
    assert.equal((await ch.checkQueue(DISCARD_QUEUE)).messageCount, 0);
    publish('discard.ok', { fine: true });
    assert.deepEqual((await get(base, '/consume-discard')).json(), { fine: true });
  });

  it('a reload that keeps the backend keeps its connection; one that drops the backend closes it', async () => {
    // An exclusive queue lives as long as the connection that declared it: it shows which connection the gateway holds.
    const queue = 'portico-reload';
    const state = async (): Promise<'locked' | 'gone'> => {
      const probe = await conn.createChannel();
      probe.on('error', () => {});
      try {
        await probe.checkQueue(queue);
        throw new Error('an exclusive queue of another connection answered a passive declare');
      } catch (err) {
        const text = String((err as Error).message);
        if (/RESOURCE[-_]LOCKED/.test(text)) return 'locked';
        if (/NOT[-_]FOUND/.test(text)) return 'gone';
        throw err;
      }
    };
    const until = async (want: 'locked' | 'gone') => {
      const deadline = Date.now() + 10_000;
      while ((await state()) !== want) {
        assert.ok(Date.now() < deadline, `queue never ${want}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const endpoints = (amqp: boolean) => [
      { endpoint: '/h', backend: [{ host: [http.url], url_pattern: '/ok' }] },
      ...(amqp
        ? [{ endpoint: '/c', timeout: '1s', backend: [amqpBackend(mq.url, 'backend/amqp/consumer', { name: queue, exchange: EXCHANGE, routing_key: ['reload.#'], exclusive: true })] }]
        : []),
    ];
    const g = await startGateway({ endpoints: endpoints(true) });
    try {
      await until('locked');
      publish('reload.one', { r: 1 });
      publish('reload.two', { r: 2 });
      assert.deepEqual((await get(g.url, '/c')).json(), { r: 1 });
      await g.reload({ endpoints: endpoints(true) });
      // Same connection: the queue and its second message are still there.
      assert.deepEqual((await get(g.url, '/c')).json(), { r: 2 });
      await g.reload({ endpoints: endpoints(false) });
      await until('gone');
      assert.equal((await get(g.url, '/h')).status, 200);
    } finally {
      await g.close();
    }
  });

  it('broker down: 500 at once, other endpoints keep serving; restarted: both kinds recover', async () => {
    await conn.close().catch(() => {});
    const lostBefore = logs.count('amqp connection lost');
    const restoredBefore = logs.count('amqp connection restored');
    await mq.kill();
    // Every link (3 producers, 2 consumers) notices.
    await logs.nth('amqp connection lost', lostBefore + 5);

    let started = Date.now();
    const produce = await request(base, '/produce-static', { method: 'POST', body: '{}' });
    assert.equal(produce.status, 500);
    const consume = await get(base, '/consume');
    assert.equal(consume.status, 500);
    assert.ok(Date.now() - started < CONSUME_TIMEOUT_MS, `took ${Date.now() - started} ms`);
    assert.equal((await get(base, '/http')).status, 200);

    await mq.restart();
    started = Date.now();
    await logs.nth('amqp connection restored', restoredBefore + 5, 20_000);
    const recovery = Date.now() - started;
    await open();
    await ch.bindQueue(produced, EXCHANGE, 'orders.static');
    const r = await request(base, '/produce-static', { method: 'POST', body: '{"again":1}' });
    assert.equal(r.status, 200);
    assert.equal((await nextIn(produced)).content.toString(), '{"again":1}');
    // The consumer re-declared its queue: the same message went there too.
    assert.deepEqual((await get(base, '/consume')).json(), { again: 1 });
    assert.ok(recovery < 20_000, `recovered in ${recovery} ms`);
  });
});

describe('backend/amqp: reconnection delays (lura backoff strategies)', () => {
  it('fallback, linear, exponential and their jitter, capped at 60 s', () => {
    assert.deepEqual([0, 1, 5].map((i) => backoffDelayMs('fallback', i)), [1000, 1000, 1000]);
    assert.deepEqual([0, 1, 5].map((i) => backoffDelayMs('linear', i)), [0, 1000, 5000]);
    assert.deepEqual([0, 1, 5, 6, 40].map((i) => backoffDelayMs('exponential', i)), [1000, 2000, 32_000, 60_000, 60_000]);
    for (let n = 0; n < 200; n++) {
      const lj = backoffDelayMs('linear-jitter', 3);
      assert.ok(lj >= 1999 && lj <= 4000, String(lj));
      const ej = backoffDelayMs('exponential-jitter', 2);
      assert.ok(ej >= 2666 && ej <= 5333, String(ej));
      assert.ok(backoffDelayMs('linear-jitter', 0) >= 1);
    }
  });
});

describe('backend/amqp: portico check', () => {
  const amqpHost = { host: ['amqp://guest:guest@127.0.0.1:1'], disable_host_sanitize: true };
  const escape = (text: string) => text.replace(/[[\]$."/]/g, '\\$&');

  it('refuses bad fields and hosts, each with its JSON path', async () => {
    const { file } = writeConfigFile({
      version: 3,
      endpoints: [
        {
          endpoint: '/a',
          backend: [{ url_pattern: '/', ...amqpHost, extra_config: { 'backend/amqp/consumer': { name: 'q', exchange: '', routing_key: '#', backoff_strategy: 'random', durable: 'yes' } } }],
        },
        {
          endpoint: '/b',
          backend: [{ url_pattern: '/', host: ['http://rabbit:5672'], extra_config: { 'backend/amqp/producer': { name: 'q', exchange: 'x', routing_key: 'k', static_routing_key: true } } }],
        },
        { endpoint: '/c', backend: [{ url_pattern: '/', ...amqpHost, extra_config: { 'backend/amqp/producer': { name: 'q', routing_key: 'k' } } }] },
      ],
    });
    const r = await runCli(['check', '-c', file]);
    assert.equal(r.code, 1);
    const consumer = escape('$.endpoints[0].backend[0].extra_config["backend/amqp/consumer"]');
    for (const field of ['exchange', 'routing_key', 'backoff_strategy', 'durable']) assert.match(r.stderr, new RegExp(`${consumer}\\.${field}:`));
    assert.match(r.stderr, /\$\.endpoints\[1\]\.backend\[0\]\.host\[0\]: expected an amqp:\/\//);
    assert.match(r.stderr, new RegExp(`${escape('$.endpoints[2].backend[0].extra_config["backend/amqp/producer"]')}\\.exchange: .*missing`));
  });

  it('accepts a valid configuration whose broker is unreachable, and warns about a key that names no parameter', async () => {
    const { file } = writeConfigFile({
      version: 3,
      endpoints: [
        {
          endpoint: '/p/{id}/{route}',
          method: 'POST',
          backend: [{ url_pattern: '/', ...amqpHost, extra_config: { 'backend/amqp/producer': { name: 'q', exchange: 'x', routing_key: 'route', msg_id_key: 'Id' } } }],
        },
      ],
    });
    const r = await runCli(['check', '-c', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /routing_key.*"Route" for \{route\}/);
    assert.doesNotMatch(r.stderr, /msg_id_key/);
  });
});
