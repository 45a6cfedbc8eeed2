// backend/pubsub/publisher and backend/pubsub/subscriber: configuration checks,
// mem:// topics inside one gateway, and real brokers: a nats-server and a
// RabbitMQ, each reached by a real `portico run` process (the broker address
// in NATS_SERVER_URL / RABBIT_SERVER_URL, as KrakenD's Go CDK reads it). Each
// broker is also stopped and restarted under a running gateway.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { connect as natsConnect, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { connect as amqpConnect, type Channel, type ChannelModel } from 'amqplib';
import { loadConfigText } from '../../src/config/load.ts';
import type { ConfigIssue } from '../../src/config/types.ts';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';
import { get, request, type TestResponse } from '../helpers/http.ts';
import { natsAvailable, startNats, type TestNats } from '../helpers/nats-server.ts';
import { runCli, startCli, writeConfigFile, type Running } from '../helpers/process.ts';
import { rabbitmqAvailable, startRabbitmq, type TestRabbitmq } from '../helpers/rabbitmq-server.ts';

const PUB = 'backend/pubsub/publisher';
const SUB = 'backend/pubsub/subscriber';

/** A pub/sub backend as KrakenD's docs write one: the driver as host, url_pattern unused. */
function pubsub(host: string, ns: string, value: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return { host: [host], url_pattern: '/ignored', disable_host_sanitize: true, ...extra, extra_config: { [ns]: value } };
}

function check(config: Record<string, unknown>): { errors: ConfigIssue[]; warnings: ConfigIssue[] } {
  return loadConfigText(JSON.stringify({ version: 3, ...config }), 'test.json', { env: {} });
}

const one = (backend: Record<string, unknown>, endpoint: Record<string, unknown> = {}) => ({ endpoints: [{ endpoint: '/e', method: 'POST', ...endpoint, backend: [backend] }] });
const HOST = '$.endpoints[0].backend[0].host[0]';
const TOPIC = `$.endpoints[0].backend[0].extra_config["${PUB}"].topic_url`;
const SUBSCRIPTION = `$.endpoints[0].backend[0].extra_config["${SUB}"].subscription_url`;

function errorAt(issues: ConfigIssue[], path: string): ConfigIssue {
  const found = issues.find((i) => i.path === path);
  assert.ok(found, `no issue at ${path}; issues: ${JSON.stringify(issues)}`);
  return found;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Poll `fn` until it returns a value (not undefined), at most `ms`. */
async function eventually<T>(what: string, fn: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(50);
  }
}

/** The gateway process has logged a line matching `re` (its output arrives through a pipe: wait for it). */
const logged = (g: Running, re: RegExp) => eventually(`a log line matching ${re}`, async () => (re.test(g.output()) ? true : undefined), 5_000);

async function timed(fn: () => Promise<TestResponse>): Promise<{ res: TestResponse; ms: number }> {
  const t = performance.now();
  const res = await fn();
  return { res, ms: performance.now() - t };
}

const post = (base: string, path: string, body: string, headers: Record<string, string> = {}) => request(base, path, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });

// RabbitMQ takes seconds to start: begin now, while the checks, mem and NATS tests run.
const rabbitStarting: Promise<TestRabbitmq> | undefined = rabbitmqAvailable ? startRabbitmq() : undefined;
rabbitStarting?.catch(() => {});
after(async () => {
  const mq = await rabbitStarting?.catch(() => undefined);
  await mq?.close();
});

describe('backend/pubsub: configuration checks', () => {
  it('refuses a Go CDK driver this version does not implement, at the host, naming the supported ones', () => {
    for (const [scheme, label] of [
      ['gcppubsub', 'Google Cloud Pub/Sub'],
      ['awssns', 'AWS SNS'],
      ['awssqs', 'AWS SQS'],
      ['azuresb', 'Azure Service Bus'],
      ['kafka', 'Apache Kafka'],
    ]) {
      const { errors } = check(one(pubsub(`${scheme}://`, PUB, { topic_url: 'projects/p/topics/t' })));
      const e = errorAt(errors, HOST);
      assert.match(e.expected, /"nats:\/\/", "rabbit:\/\/" or "mem:\/\/"/);
      assert.ok(e.found.includes(`"${scheme}://"`) && e.found.includes(label), e.found);
    }
    const sub = check(one(pubsub('kafka://', SUB, { subscription_url: 'group?topic=t' }), { method: 'GET' }));
    assert.match(errorAt(sub.errors, HOST).found, /kafka/);
  });

  it('refuses a host that names no driver, and one that is not its own', () => {
    assert.match(errorAt(check(one(pubsub('http://broker', PUB, { topic_url: 't' }))).errors, HOST).found, /not a pub\/sub driver/);
    const inherited = check({ host: ['nats://'], ...one({ url_pattern: '/x', disable_host_sanitize: true, extra_config: { [PUB]: { topic_url: 't' } } }) });
    assert.match(errorAt(inherited.errors, '$.endpoints[0].backend[0].host').expected, /own host/);
  });

  it('needs disable_host_sanitize for a driver host, as KrakenD does', () => {
    const { errors } = check(one({ host: ['nats://'], url_pattern: '/x', extra_config: { [PUB]: { topic_url: 't' } } }));
    assert.match(errorAt(errors, HOST).expected, /disable_host_sanitize/);
  });

  it('checks topic_url / subscription_url and the query parameters each driver takes', () => {
    assert.match(errorAt(check(one(pubsub('nats://', PUB, {}))).errors, TOPIC).found, /missing/);
    assert.match(errorAt(check(one(pubsub('nats://', PUB, { topic_url: 'nats://orders' }))).errors, TOPIC).expected, /driver goes in "host"/);
    assert.match(errorAt(check(one(pubsub('nats://', PUB, { topic_url: 'orders.*' }))).errors, TOPIC).expected, /without wildcards/);
    assert.match(errorAt(check(one(pubsub('nats://', PUB, { topic_url: 'orders?queue=q' }))).errors, TOPIC).expected, /takes none/);
    assert.match(errorAt(check(one(pubsub('rabbit://', PUB, { topic_url: 'ex?prefetch_count=2' }))).errors, TOPIC).expected, /"key_name"/);
    assert.match(errorAt(check(one(pubsub('rabbit://', SUB, { subscription_url: 'q?prefetch_count=0' }), { method: 'GET' })).errors, SUBSCRIPTION).expected, /1 to 65535/);
    assert.match(errorAt(check(one(pubsub('nats://', PUB, { topic_url: '' }))).errors, TOPIC).expected, /names none/);
    // Accepted: a NATS queue group and wildcards when subscribing, a routing key name, a prefetch count.
    for (const backend of [
      pubsub('nats://', SUB, { subscription_url: 'orders.>?queue=workers' }),
      pubsub('rabbit://', SUB, { subscription_url: 'q?prefetch_count=20' }),
      pubsub('rabbit://', PUB, { topic_url: 'ex?key_name=X-Routing-Key' }),
      pubsub('mem://', SUB, { subscription_url: 'events' }),
    ]) {
      assert.deepEqual(check(one(backend, { method: 'GET' })).errors, [], JSON.stringify(backend));
    }
  });

  it('refuses a publisher encoding that cannot decode its {} answer', () => {
    const { errors } = check(one(pubsub('mem://', PUB, { topic_url: 't' }, { encoding: 'xml' })));
    assert.match(errorAt(errors, '$.endpoints[0].backend[0].encoding').expected, /answers \{\}/);
  });

  it('a missing NATS_SERVER_URL is a warning in check and a refusal to start in run', async () => {
    const config = { version: 3, endpoints: [{ endpoint: '/p', method: 'POST', backend: [pubsub('nats://', PUB, { topic_url: 'orders' })] }] };
    const saved = process.env.NATS_SERVER_URL;
    delete process.env.NATS_SERVER_URL;
    try {
      const { errors, warnings } = check(config);
      assert.deepEqual(errors, []);
      assert.match(errorAt(warnings, '$.endpoints[0].backend[0].host[0]').expected, /NATS_SERVER_URL set in the environment/);
    } finally {
      if (saved !== undefined) process.env.NATS_SERVER_URL = saved;
    }
    const { file } = writeConfigFile(config);
    const ran = await runCli(['run', '-c', file, '-p', '0'], { NATS_SERVER_URL: '' });
    assert.notEqual(ran.code, 0);
    assert.match(ran.stderr + ran.stdout, /backend\/pubsub\/publisher at \$\.endpoints\[0\]\.backend\[0\]\.host\[0\]: NATS_SERVER_URL is not set/);
  });

  it('loads no broker client library in a gateway that does not use them', () => {
    const script = `
      import { createRequire } from 'node:module';
      await import(${JSON.stringify(new URL('../../src/namespaces/registry.ts', import.meta.url).href)});
      const loaded = Object.keys(createRequire(import.meta.url).cache);
      console.log(JSON.stringify({ nats: loaded.some((k) => k.includes('@nats-io')), amqplib: loaded.some((k) => k.includes('amqplib')) }));`;
    const out = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(out.status, 0, out.stderr);
    assert.deepEqual(JSON.parse(out.stdout), { nats: false, amqplib: false });
  });
});

describe('backend/pubsub mem:// (topics inside one gateway process)', () => {
  let gw: TestGateway;
  const config = {
    extra_config: { 'portico/server': { max_backend_body_bytes: 64 } },
    endpoints: [
      { endpoint: '/publish', method: 'POST', backend: [pubsub('mem://', PUB, { topic_url: 'events' })] },
      { endpoint: '/next', timeout: '400ms', backend: [pubsub('mem://', SUB, { subscription_url: 'events' })] },
      { endpoint: '/next-text', timeout: '400ms', backend: [pubsub('mem://', SUB, { subscription_url: 'texts' }, { encoding: 'string' })] },
      { endpoint: '/publish-text', method: 'POST', backend: [pubsub('mem://', PUB, { topic_url: 'texts' })] },
    ],
  };

  before(async () => {
    gw = await startGateway(config);
  });
  after(() => gw.close());

  it('each subscriber request takes one message, oldest first; the publisher answers {}', async () => {
    for (const n of [1, 2, 3]) {
      const r = await post(gw.url, '/publish', JSON.stringify({ n }));
      assert.equal(r.status, 200);
      assert.deepEqual(r.json(), {});
    }
    for (const n of [1, 2, 3]) assert.deepEqual((await get(gw.url, '/next')).json(), { n });
  });

  it('a subscriber request waits for the next message, and fails at the endpoint timeout when none comes', async () => {
    const waiting = timed(() => get(gw.url, '/next'));
    await sleep(100);
    assert.equal((await post(gw.url, '/publish', '{"late":true}')).status, 200);
    const { res } = await waiting;
    assert.equal(res.status, 200);
    assert.deepEqual(res.json(), { late: true });

    const { res: empty, ms } = await timed(() => get(gw.url, '/next'));
    assert.equal(empty.status, 500);
    assert.ok(ms >= 350 && ms < 3_000, `answered after ${ms} ms, the endpoint timeout is 400 ms`);
  });

  it('decodes with the backend encoding; an empty JSON message is no data, as in KrakenD', async () => {
    await post(gw.url, '/publish-text', 'plain words');
    assert.deepEqual((await get(gw.url, '/next-text')).json(), { content: 'plain words' });
    await post(gw.url, '/publish', '');
    const r = await get(gw.url, '/next');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), {});
  });

  it('a message larger than the backend body limit is a backend error', async () => {
    await post(gw.url, '/publish', JSON.stringify({ big: 'x'.repeat(100) }));
    assert.equal((await get(gw.url, '/next')).status, 500);
    await post(gw.url, '/publish', '{"small":1}');
    assert.deepEqual((await get(gw.url, '/next')).json(), { small: 1 });
  });

  it('a reload with the same subscription keeps its waiting messages', async () => {
    await post(gw.url, '/publish', '{"before":"reload"}');
    await gw.reload(config);
    assert.deepEqual((await get(gw.url, '/next')).json(), { before: 'reload' });
  });
});

describe('backend/pubsub nats:// through a real gateway process', { skip: natsAvailable ? false : 'nats-server not installed' }, () => {
  let nats: TestNats;
  let be: TestBackend;
  let gateway: Running;
  let base: string;
  let client: NatsConnection;

  before(async () => {
    nats = await startNats();
    be = await startBackend((_req, res) => json(res, { http: 'ok' }));
    const { file } = writeConfigFile({
      version: 3,
      extra_config: { router: { disable_access_log: true } },
      endpoints: [
        { endpoint: '/orders', method: 'POST', input_headers: ['Content-Type', 'X-Trace'], backend: [pubsub('nats://', PUB, { topic_url: 'orders.new' })] },
        { endpoint: '/orders/done', timeout: '5s', backend: [pubsub('nats://', SUB, { subscription_url: 'orders.done' })] },
        { endpoint: '/http', backend: [{ host: [be.url], url_pattern: '/x' }] },
      ],
    });
    gateway = await startCli(['run', '-c', file, '-p', '0'], { NATS_SERVER_URL: nats.url });
    base = `http://127.0.0.1:${gateway.port}`;
    client = await natsConnect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  });

  after(async () => {
    await client?.close().catch(() => {});
    if (gateway) {
      gateway.child.kill('SIGTERM');
      await gateway.exited;
    }
    await be?.close();
    await nats?.close();
  });

  it('publishes a request as a NATS message: the body, and the forwarded headers as query-escaped NATS headers', async () => {
    const received: { data: string; headers: Record<string, string> }[] = [];
    const sub = client.subscribe('orders.new', {
      callback: (_err, m) => void received.push({ data: m.string(), headers: Object.fromEntries([...(m.headers ?? [])].map(([k, v]) => [k, v[0]!])) }),
    });
    await client.flush();
    const r = await post(base, '/orders', '{"id":7}', { 'x-trace': 'a b/c' });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), {});
    const msg = await eventually('the message', async () => received[0]);
    sub.unsubscribe();
    assert.equal(msg.data, '{"id":7}');
    // Go CDK metadata: canonical header names, keys and values url.QueryEscape'd.
    assert.equal(msg.headers['Content-Type'], 'application%2Fjson');
    assert.equal(msg.headers['X-Trace'], 'a+b%2Fc');
    assert.ok(msg.headers['X-Forwarded-For'], JSON.stringify(msg.headers));
  });

  it('answers a subscriber request with the next message on the subject', async () => {
    const waiting = get(base, '/orders/done');
    await sleep(100);
    const h = natsHeaders();
    h.set('Content-Type', 'application%2Fjson');
    client.publish('orders.done', '{"id":7,"state":"done"}', { headers: h });
    const r = await waiting;
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { id: 7, state: 'done' });
    // A message from any NATS client (no headers) works too.
    client.publish('orders.done', '{"id":8}');
    assert.deepEqual((await get(base, '/orders/done')).json(), { id: 8 });
  });

  it('with the server down, answers 5xx at once (publisher and subscriber) and keeps serving other endpoints; recovers when it is back', async () => {
    await nats.kill();
    const failed = await eventually('a refused publish', async () => {
      const t = await timed(() => post(base, '/orders', '{"id":9}'));
      return t.res.status === 500 ? t : undefined;
    }, 3_000);
    assert.ok(failed.ms < 2_500, `publish answered after ${failed.ms} ms`);
    const waited = await timed(() => get(base, '/orders/done'));
    assert.equal(waited.res.status, 500);
    assert.ok(waited.ms < 2_500, `subscriber answered after ${waited.ms} ms (endpoint timeout 5 s): it must not wait while the server is down`);
    assert.deepEqual((await get(base, '/http')).json(), { http: 'ok' });
    await logged(gateway, /"code":"BACKEND_UNREACHABLE"/);

    await nats.restart();
    await eventually('a publish after the restart', async () => ((await post(base, '/orders', '{"id":10}')).status === 200 ? true : undefined));
    const fresh = await natsConnect({ servers: nats.url });
    try {
      const received: string[] = [];
      fresh.subscribe('orders.new', { callback: (_e, m) => void received.push(m.string()) });
      await fresh.flush();
      assert.equal((await post(base, '/orders', '{"id":11}')).status, 200);
      assert.equal(await eventually('the message after the restart', async () => received[0]), '{"id":11}');
      const waiting = get(base, '/orders/done');
      await sleep(100);
      fresh.publish('orders.done', '{"id":12}');
      assert.deepEqual((await waiting).json(), { id: 12 });
    } finally {
      await fresh.close();
    }
  });
});

describe('backend/pubsub rabbit:// through a real gateway process', { skip: rabbitmqAvailable ? false : 'rabbitmq-server not installed' }, () => {
  let mq: TestRabbitmq;
  let gateway: Running;
  let base: string;
  let conn: ChannelModel;
  let ch: Channel;

  before(async () => {
    mq = await rabbitStarting!;
    // Go CDK's rabbitpubsub declares nothing: a topic is an existing (fanout) exchange, a subscription an existing bound queue.
    conn = await amqpConnect(mq.url);
    ch = await conn.createChannel();
    await ch.assertExchange('orders', 'fanout', { durable: true });
    await ch.assertQueue('orders-audit', { durable: true });
    await ch.bindQueue('orders-audit', 'orders', '');
    await ch.assertExchange('nobody-listens', 'fanout', { durable: true });
    await ch.assertExchange('results', 'fanout', { durable: true });
    await ch.assertQueue('results-gateway', { durable: true });
    await ch.bindQueue('results-gateway', 'results', '');
    const { file } = writeConfigFile({
      version: 3,
      extra_config: { router: { disable_access_log: true } },
      endpoints: [
        { endpoint: '/orders', method: 'POST', input_headers: ['Content-Type', 'X-Trace'], backend: [pubsub('rabbit://', PUB, { topic_url: 'orders' })] },
        { endpoint: '/unrouted', method: 'POST', backend: [pubsub('rabbit://', PUB, { topic_url: 'nobody-listens' })] },
        { endpoint: '/no-exchange', method: 'POST', backend: [pubsub('rabbit://', PUB, { topic_url: 'no-such-exchange' })] },
        { endpoint: '/results', timeout: '5s', backend: [pubsub('rabbit://', SUB, { subscription_url: 'results-gateway' })] },
      ],
    });
    gateway = await startCli(['run', '-c', file, '-p', '0'], { RABBIT_SERVER_URL: mq.url });
    base = `http://127.0.0.1:${gateway.port}`;
  });

  after(async () => {
    await conn?.close().catch(() => {});
    if (gateway) {
      gateway.child.kill('SIGTERM');
      await gateway.exited;
    }
  });

  it('publishes to the exchange with the forwarded headers as AMQP headers, once RabbitMQ confirms it', async () => {
    const r = await post(base, '/orders', '{"id":1}', { 'x-trace': 'a b/c' });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), {});
    const m = await ch.get('orders-audit', { noAck: true });
    assert.ok(m, 'the bound queue got the message');
    assert.equal(m.content.toString(), '{"id":1}');
    assert.equal(m.properties.headers?.['Content-Type'], 'application/json');
    assert.equal(m.properties.headers?.['X-Trace'], 'a b/c');
  });

  it('an unroutable message (mandatory) and a missing exchange are 5xx, and publishing goes on after them', async () => {
    assert.equal((await post(base, '/unrouted', '{}')).status, 500);
    assert.equal((await post(base, '/no-exchange', '{}')).status, 500);
    assert.equal((await post(base, '/orders', '{"id":2}')).status, 200);
    assert.equal((await ch.get('orders-audit', { noAck: true }) || undefined)?.content.toString(), '{"id":2}');
    await logged(gateway, /"code":"PUBSUB_REJECTED".*NO_ROUTE|NO_ROUTE.*"code":"PUBSUB_REJECTED"/);
    await logged(gateway, /no exchange 'no-such-exchange'/);
  });

  it('answers a subscriber request with the next message of the queue and acknowledges it', async () => {
    ch.publish('results', '', Buffer.from('{"id":1,"ok":true}'));
    const r = await get(base, '/results');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { id: 1, ok: true });
    const q = await ch.checkQueue('results-gateway');
    assert.equal(q.messageCount, 0);
  });

  it('with the broker down, answers 5xx at once; recovers when it is back', async () => {
    await conn.close().catch(() => {});
    await mq.kill();
    const failed = await eventually('a refused publish', async () => {
      const t = await timed(() => post(base, '/orders', '{"id":3}'));
      return t.res.status === 500 ? t : undefined;
    }, 3_000);
    assert.ok(failed.ms < 2_500, `publish answered after ${failed.ms} ms`);
    const waited = await timed(() => get(base, '/results'));
    assert.equal(waited.res.status, 500);
    assert.ok(waited.ms < 2_500, `subscriber answered after ${waited.ms} ms (endpoint timeout 5 s)`);

    await mq.restart();
    await eventually('a publish after the restart', async () => ((await post(base, '/orders', '{"id":4}')).status === 200 ? true : undefined), 15_000);
    conn = await amqpConnect(mq.url);
    ch = await conn.createChannel();
    await ch.purgeQueue('orders-audit');
    assert.equal((await post(base, '/orders', '{"id":5}')).status, 200);
    assert.equal((await ch.get('orders-audit', { noAck: true }) || undefined)?.content.toString(), '{"id":5}');
    // The restarted broker lost the subscription's queue until the gateway declares it again:
    // a message published before that reaches no queue, so publish until one is answered.
    const r = await eventually('a subscriber answer after the restart', async () => {
      ch.publish('results', '', Buffer.from('{"id":6}'));
      const res = await get(base, '/results');
      return res.status === 200 ? res : undefined;
    }, 20_000);
    assert.deepEqual(r.json(), { id: 6 });
  });
});
