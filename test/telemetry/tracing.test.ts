// Traces: telemetry/opentelemetry with a real OTLP/HTTP receiver on loopback.
// Spans per request and per backend call, parent/child links, W3C trace
// context taken from clients and sent to backends, sampling, skip paths.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadConfigText } from '../../src/config/load.ts';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';
import { get } from '../helpers/http.ts';
import { startCli, writeConfigFile } from '../helpers/process.ts';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver.ts';
import { CLOSE_BOUND_MS } from '../../src/telemetry/tracing.ts';

// Export batches every 50 ms instead of 5 s.
process.env.OTEL_BSP_SCHEDULE_DELAY = '50';

const SERVER = 2;
const CLIENT = 3;
const CLIENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT_SPAN = '00f067aa0ba902b7';

function otel(port: number, extra: Record<string, unknown> = {}) {
  return {
    service_name: 'edge',
    service_version: '1.2.3',
    exporters: { otlp: [{ name: 'local', host: '127.0.0.1', port, use_http: true }] },
    ...extra,
  };
}

function parseTraceparent(v: unknown): { traceId: string; spanId: string; flags: string } {
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(String(v));
  assert.ok(m, `a W3C traceparent, found ${String(v)}`);
  return { traceId: m[1], spanId: m[2], flags: m[3] };
}

describe('tracing (telemetry/opentelemetry, OTLP/HTTP)', () => {
  let otlp: OtlpReceiver;
  let be: TestBackend;
  let gw: TestGateway;

  const endpoints = [
    { endpoint: '/items/{id}', backend: [{ url_pattern: '/items/{id}' }] },
    { endpoint: '/both', backend: [{ url_pattern: '/a', group: 'a' }, { url_pattern: '/b', group: 'b' }] },
    { endpoint: '/down', backend: [{ host: ['http://127.0.0.1:1'], url_pattern: '/d' }] },
    { endpoint: '/teapot', backend: [{ url_pattern: '/teapot' }] },
  ];

  before(async () => {
    otlp = await startOtlpReceiver();
    be = await startBackend((req, res) => (req.url === '/teapot' ? json(res, { no: 1 }, 418) : json(res, { path: req.url })));
    gw = await startGateway({ host: [be.url], extra_config: { 'telemetry/opentelemetry': otel(otlp.port) }, endpoints });
  });

  after(async () => {
    await gw.close();
    await be.close();
    await otlp.close();
  });

  const spansOfTrace = async (traceId: string, count: number): Promise<ReceivedSpan[]> => {
    await otlp.waitFor((all) => all.filter((s) => s.traceId === traceId).length >= count);
    return otlp.spans.filter((s) => s.traceId === traceId);
  };

  it("continues the client's trace: a SERVER span per request, a CLIENT span per backend call, context sent to the backend", async () => {
    const before = be.requests.length;
    const r = await get(gw.url, '/items/7', { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`, tracestate: 'vendor=abc' });
    assert.equal(r.status, 200);
    const sent = be.requests[before].headers;
    const tp = parseTraceparent(sent.traceparent);
    assert.equal(tp.traceId, CLIENT_TRACE, 'the backend continues the same trace');
    assert.equal(tp.flags, '01');
    assert.equal(sent.tracestate, 'vendor=abc', 'tracestate goes along');

    const spans = await spansOfTrace(CLIENT_TRACE, 2);
    const server = spans.find((s) => s.kind === SERVER)!;
    const client = spans.find((s) => s.kind === CLIENT)!;
    assert.ok(server && client, 'one server and one client span');
    assert.equal(server.parentSpanId, CLIENT_SPAN, "the request span is the client's span's child");
    assert.equal(client.parentSpanId, server.spanId, 'the backend span is the request span child');
    assert.equal(tp.spanId, client.spanId, "the backend's parent is the backend call span");
    assert.equal(server.name, 'GET /items/{id}');
    assert.equal(server.attributes['http.route'], '/items/{id}');
    assert.equal(server.attributes['http.request.method'], 'GET');
    assert.equal(server.attributes['url.path'], '/items/7');
    assert.equal(server.attributes['url.scheme'], 'http');
    assert.equal(server.attributes['http.response.status_code'], 200);
    assert.equal(server.attributes['portico.request_id'], r.headers['x-request-id']);
    assert.equal(client.name, 'GET');
    assert.equal(client.attributes['url.full'], `${be.url}/items/7`);
    assert.equal(client.attributes['server.address'], '127.0.0.1');
    assert.equal(client.attributes['server.port'], be.port);
    assert.equal(client.attributes['http.response.status_code'], 200);
    assert.equal(client.attributes['portico.backend'], '/items/{id}');
    assert.equal(server.resource['service.name'], 'edge');
    assert.equal(server.resource['service.version'], '1.2.3');
    assert.ok(client.startNs >= server.startNs && client.endNs <= server.endNs, 'the backend call lies inside the request');
  });

  it('starts a new trace when the client sends none, or a malformed one', async () => {
    for (const headers of [{}, { traceparent: 'garbage' }, { traceparent: `00-${'0'.repeat(32)}-${CLIENT_SPAN}-01` }, { traceparent: 'x'.repeat(5000) }] as Record<string, string>[]) {
      const before = be.requests.length;
      assert.equal((await get(gw.url, '/items/1', headers)).status, 200);
      const tp = parseTraceparent(be.requests[before].headers.traceparent);
      assert.notEqual(tp.traceId, CLIENT_TRACE);
      const spans = await spansOfTrace(tp.traceId, 2);
      const server = spans.find((s) => s.kind === SERVER)!;
      assert.equal(server.parentSpanId, undefined, 'a root span');
    }
  });

  it('gives every backend of an aggregate its own span under the request span', async () => {
    const before = be.requests.length;
    assert.equal((await get(gw.url, '/both')).status, 200);
    const sent = be.requests.slice(before).map((q) => parseTraceparent(q.headers.traceparent));
    assert.equal(sent.length, 2);
    assert.notEqual(sent[0].spanId, sent[1].spanId, 'each backend call has its own parent span');
    const spans = await spansOfTrace(sent[0].traceId, 3);
    const server = spans.find((s) => s.kind === SERVER)!;
    const clients = spans.filter((s) => s.kind === CLIENT);
    assert.equal(clients.length, 2);
    for (const c of clients) assert.equal(c.parentSpanId, server.spanId);
    assert.deepEqual(clients.map((c) => c.attributes['portico.backend']).sort(), ['/a', '/b']);
  });

  it('marks failed calls: connection refused and an unexpected status are errors, the request span too when it answers 5xx', async () => {
    const trace = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
    assert.equal((await get(gw.url, '/down', { traceparent: `00-${trace}-${CLIENT_SPAN}-01` })).status, 500);
    const spans = await spansOfTrace(trace, 2);
    const server = spans.find((s) => s.kind === SERVER)!;
    const client = spans.find((s) => s.kind === CLIENT)!;
    assert.equal(client.status, 2);
    assert.equal(client.attributes['error.type'], 'BACKEND_UNREACHABLE');
    assert.equal(server.status, 2);
    assert.equal(server.attributes['http.response.status_code'], 500);

    const teapot = 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
    await get(gw.url, '/teapot', { traceparent: `00-${teapot}-${CLIENT_SPAN}-01` });
    const t = await spansOfTrace(teapot, 2);
    const call = t.find((s) => s.kind === CLIENT)!;
    assert.equal(call.attributes['http.response.status_code'], 418);
    assert.equal(call.status, 2);
  });

  it('does not trace the skip paths (the built-in endpoints by default), traces unrouted requests', async () => {
    const trace = 'cccccccccccccccccccccccccccccccc';
    assert.equal((await get(gw.url, '/__health', { traceparent: `00-${trace}-${CLIENT_SPAN}-01` })).status, 200);
    const missing = 'dddddddddddddddddddddddddddddddd';
    assert.equal((await get(gw.url, '/nowhere', { traceparent: `00-${missing}-${CLIENT_SPAN}-01` })).status, 404);
    const spans = await spansOfTrace(missing, 1);
    assert.equal(spans[0].name, 'GET', 'an unrouted request is named by its method only');
    assert.equal(spans[0].attributes['http.route'], undefined);
    assert.equal(otlp.spans.filter((s) => s.traceId === trace).length, 0, '/__health is not traced');
  });
});

describe('tracing options', () => {
  let otlp: OtlpReceiver;
  let be: TestBackend;

  before(async () => {
    otlp = await startOtlpReceiver();
    be = await startBackend((req, res) => json(res, { path: req.url }));
  });

  after(async () => {
    await be.close();
    await otlp.close();
  });

  const endpoints = () => [{ endpoint: '/x', backend: [{ host: [be.url], url_pattern: '/x' }] }];

  it('trace_sample_rate 0 records no new trace, still sends context (not sampled), and follows a sampled client', async () => {
    const gw = await startGateway({ extra_config: { 'telemetry/opentelemetry': otel(otlp.port, { trace_sample_rate: 0 }) }, endpoints: endpoints() });
    try {
      const before = be.requests.length;
      for (let i = 0; i < 20; i++) assert.equal((await get(gw.url, '/x')).status, 200);
      const sent = be.requests.slice(before).map((q) => parseTraceparent(q.headers.traceparent));
      assert.ok(sent.every((t) => t.flags === '00'), 'not sampled');
      const sampled = 'eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee';
      await get(gw.url, '/x', { traceparent: `00-${sampled}-${CLIENT_SPAN}-01` });
      await otlp.waitFor((all) => all.filter((s) => s.traceId === sampled).length >= 2);
      const unsampled = new Set(sent.map((t) => t.traceId));
      assert.equal(otlp.spans.filter((s) => unsampled.has(s.traceId)).length, 0, 'nothing exported for unsampled traces');
    } finally {
      await gw.close();
    }
  });

  it("disable_propagation ignores the client's trace context; report_headers redacts credentials", async () => {
    const gw = await startGateway({
      extra_config: { 'telemetry/opentelemetry': otel(otlp.port, { layers: { global: { disable_propagation: true, report_headers: true } } }) },
      endpoints: endpoints(),
    });
    try {
      const before = be.requests.length;
      await get(gw.url, '/x', { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`, authorization: 'Bearer secret-token', 'x-custom': 'shown' });
      const tp = parseTraceparent(be.requests[before].headers.traceparent);
      assert.notEqual(tp.traceId, CLIENT_TRACE);
      const spans = await otlp.waitFor((all) => all.some((s) => s.traceId === tp.traceId && s.kind === SERVER));
      const server = spans.find((s) => s.traceId === tp.traceId && s.kind === SERVER)!;
      assert.deepEqual(server.attributes['http.request.header.authorization'], ['[redacted]']);
      assert.deepEqual(server.attributes['http.request.header.x-custom'], ['shown']);
      assert.ok(!otlp.spans.some((s) => JSON.stringify(s.attributes).includes('secret-token')));
    } finally {
      await gw.close();
    }
  });

  it('backend traces off: no backend span, the backend still gets the request span as parent; static attributes on backend spans', async () => {
    let gw = await startGateway({
      extra_config: { 'telemetry/opentelemetry': otel(otlp.port, { layers: { backend: { traces: { disable_stage: true } } } }) },
      endpoints: endpoints(),
    });
    try {
      const before = be.requests.length;
      await get(gw.url, '/x');
      const tp = parseTraceparent(be.requests[before].headers.traceparent);
      const spans = await otlp.waitFor((all) => all.some((s) => s.traceId === tp.traceId));
      const mine = spans.filter((s) => s.traceId === tp.traceId);
      assert.deepEqual(mine.map((s) => s.kind), [SERVER]);
      assert.equal(tp.spanId, mine[0].spanId);
    } finally {
      await gw.close();
    }
    gw = await startGateway({
      extra_config: { 'telemetry/opentelemetry': otel(otlp.port, { layers: { backend: { traces: { static_attributes: [{ key: 'team', value: 'payments' }] } } } }) },
      endpoints: endpoints(),
    });
    try {
      const before = be.requests.length;
      await get(gw.url, '/x');
      const tp = parseTraceparent(be.requests[before].headers.traceparent);
      const spans = await otlp.waitFor((all) => all.some((s) => s.traceId === tp.traceId && s.kind === CLIENT));
      assert.equal(spans.find((s) => s.traceId === tp.traceId && s.kind === CLIENT)!.attributes.team, 'payments');
    } finally {
      await gw.close();
    }
  });

  it('without telemetry/opentelemetry nothing is traced and no trace context is invented', async () => {
    const gw = await startGateway({ endpoints: endpoints() });
    try {
      const before = be.requests.length;
      await get(gw.url, '/x', { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` });
      assert.equal(be.requests[before].headers.traceparent, undefined, 'not forwarded unless input_headers lists it');
    } finally {
      await gw.close();
    }
  });

  it('a collector that is down costs requests nothing, and delays a shutdown by a bounded time', async () => {
    const gw = await startGateway({ extra_config: { 'telemetry/opentelemetry': otel(1) }, endpoints: endpoints() });
    try {
      for (let i = 0; i < 50; i++) assert.equal((await get(gw.url, '/x')).status, 200);
    } finally {
      const started = performance.now();
      await gw.close();
      assert.ok(performance.now() - started < CLOSE_BOUND_MS + 1000, 'closing waits for the last export a bounded time');
    }
  });
});

describe('tracing with --workers 2', () => {
  it('every worker exports its spans, with the same links', async () => {
    const otlp = await startOtlpReceiver();
    const be = await startBackend((req, res) => json(res, { path: req.url }));
    const { file, cache } = writeConfigFile({
      version: 3,
      extra_config: { router: { disable_access_log: true }, 'telemetry/opentelemetry': otel(otlp.port) },
      endpoints: [{ endpoint: '/x', backend: [{ host: [be.url], url_pattern: '/x' }] }],
    });
    const gw = await startCli(['run', '-c', file, '-p', '0', '--workers', '2', '--cache-dir', cache()], { OTEL_BSP_SCHEDULE_DELAY: '50' });
    try {
      const traces: string[] = [];
      for (let i = 0; i < 40; i++) {
        const id = i.toString(16).padStart(32, 'f');
        traces.push(id);
        assert.equal((await get(`http://127.0.0.1:${gw.port}`, '/x', { traceparent: `00-${id}-${CLIENT_SPAN}-01` })).status, 200);
      }
      await otlp.waitFor((all) => traces.every((t) => all.filter((s) => s.traceId === t).length === 2));
      const pids = new Set<unknown>();
      for (const t of traces) {
        const spans = otlp.spans.filter((s) => s.traceId === t);
        const server = spans.find((s) => s.kind === SERVER)!;
        assert.equal(spans.find((s) => s.kind === CLIENT)!.parentSpanId, server.spanId);
        pids.add(server.resource['process.pid']);
      }
      assert.equal(pids.size, 2, 'spans came from both workers');
    } finally {
      gw.child.kill('SIGTERM');
      await gw.exited;
      await be.close();
      await otlp.close();
    }
  });
});

describe('telemetry/opentelemetry configuration', () => {
  const check = (ns: unknown) => loadConfigText(JSON.stringify({ version: 3, extra_config: { 'telemetry/opentelemetry': ns }, endpoints: [] }), 'c.json', { env: {} });

  it('rejects bad values with their place', () => {
    const r = check({ trace_sample_rate: 2, exporters: { otlp: [{ name: 'a', host: 'ftp://x', port: 4318, use_http: true }, { name: 'a', host: 'y', use_http: true }] } });
    const text = r.errors.map((e) => `${e.path} ${e.expected}`).join('\n');
    assert.match(text, /trace_sample_rate a number from 0 to 1/);
    assert.match(text, /exporters\.otlp\[0\]\.host a host name or an http\(s\) URL/);
    assert.match(text, /exporters\.otlp\[1\]\.name a name no other exporter has/);
  });

  it('warns that an OTLP/gRPC exporter sends nothing, and accepts the rest', () => {
    const r = check({ exporters: { otlp: [{ name: 'grpc', host: 'collector', port: 4317 }] }, layers: { proxy: { disable_metrics: true } } });
    assert.deepEqual(r.errors, []);
    assert.ok(r.warnings.some((w) => w.path.endsWith('use_http') && /OTLP\/HTTP only/.test(w.expected)));
  });
});
