// The benchmark scenarios: the JSON bodies the backend serves, the Portico
// configuration of each scenario, and the request paths each kind of system
// is sent. nginx, @fastify/http-proxy and the direct backend are sent backend
// paths (they forward the path unchanged); Portico is sent its endpoints.

export type ScenarioId =
  | 'a-1k'
  | 'a-64k'
  | 'b-1k'
  | 'b-64k'
  | 'c-agg'
  | 'd-1000'
  | 'e-jwt-cors'
  | 'f-ratelimit-local'
  | 'g-ratelimit-redis'
  | 'h-telemetry-off'
  | 'i-tracing'
  | 'j-lua'
  | 'k-cel'
  | 'l-shadow'
  | 'm-split';
export type SystemId = 'portico' | 'portico-bun' | 'nginx' | 'fastify' | 'direct';

/** Portico on Node and on Bun (the same sources and configuration). */
export const PORTICO: SystemId[] = ['portico', 'portico-bun'];
export const isPortico = (id: SystemId): boolean => id === 'portico' || id === 'portico-bun';

/** What the bench started for the scenarios besides the backend. */
export interface ScenarioEnv {
  /** host:port of the bench's Redis, when a selected scenario needs one. */
  redisAddress: string | undefined;
  /** The backend nginx's port (it also sinks OTLP/HTTP trace exports). */
  backendPort: number;
}

export interface Scenario {
  id: ScenarioId;
  title: string;
  /** Paths sent to Portico / to the other systems (one is chosen per request when several). */
  porticoPaths: string[];
  proxyPaths: string[];
  /** Systems this scenario runs on; the others are shown as n/a. */
  systems: SystemId[];
  /** What the non-Portico systems do here, printed under the table. */
  note?: string;
  /** Offered rate for the latency run: a fraction of this system's saturation rate in this scenario. */
  rateFrom: SystemId;
  /** Portico's endpoints (without host; bench fills in the backend origin). */
  endpoints(origin: string): Record<string, unknown>[];
  /** Service-level namespaces of Portico's configuration in this scenario. */
  serviceExtra?: (env: ScenarioEnv) => Record<string, unknown>;
  /** The scenario needs a Redis server (the bench starts one on loopback). */
  redis?: boolean;
  /** Request headers every load generator sends in this scenario (besides Accept). */
  headers?: Record<string, string>;
  /** A check of Portico's answer (status 200 assumed): undefined when fine, else what is wrong. */
  checkPortico(body: string): string | undefined;
}

import { benchJwks, benchToken, JWT_AUDIENCE, JWT_ISSUER } from './jwt.ts';

// ---- bodies ----

/** A deterministic pseudo-random generator (mulberry32), so bodies are the same every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo', 'lima'];

/**
 * A user-like object of exactly `size` bytes of JSON: scalar fields, a nested
 * address, tags, an internal block the allow filter drops, and an items array
 * (most of the bytes at 64 KiB), padded to size with a description string.
 */
export function userBody(size: number, seed = 1): string {
  const rnd = prng(seed);
  const word = () => WORDS[Math.floor(rnd() * WORDS.length)];
  const items: Record<string, unknown>[] = [];
  const obj: Record<string, unknown> = {
    id: 1000 + seed,
    name: `${word()} ${word()}`,
    email: `${word()}.${word()}@example.com`,
    status: 'active',
    created_at: '2024-05-01T12:00:00Z',
    address: { street: `${Math.floor(rnd() * 999)} ${word()} street`, city: word(), zip: '12345', country: 'NL' },
    tags: [word(), word(), word()],
    internal: { shard: 7, flags: ['a', 'b'], etag: 'x9f8e7d6' },
    items,
    description: '',
  };
  const base = () => JSON.stringify(obj).length;
  while (base() < size - 200) {
    items.push({ sku: `sku-${items.length}-${word()}`, qty: 1 + Math.floor(rnd() * 9), price: Math.round(rnd() * 10000) / 100, title: `${word()} ${word()}` });
  }
  const missing = size - base();
  if (missing < 0) throw new Error(`body of ${size} bytes: ${base()} before padding`);
  obj.description = 'x'.repeat(missing);
  const text = JSON.stringify(obj);
  if (text.length !== size) throw new Error(`body of ${size} bytes came out as ${text.length}`);
  return text;
}

/** Three distinct ~1 KiB objects for the aggregation scenario. */
export function aggregateBodies(): Record<string, string> {
  const user = userBody(1024, 7);
  const orders = JSON.stringify({
    count: 6,
    orders: Array.from({ length: 6 }, (_, i) => ({ id: `o-${i}`, total: 10 + i * 3.5, currency: 'EUR', state: i % 2 ? 'shipped' : 'open', lines: i + 1 })),
    next: null,
    note: 'y'.repeat(300),
  });
  const prefs = JSON.stringify({
    locale: 'nl-NL',
    theme: 'dark',
    notifications: { email: true, sms: false, push: true },
    newsletters: ['weekly', 'offers'],
    privacy: { tracking: false, share: false },
    shortcuts: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, `action-${i}`])),
    blob: 'z'.repeat(300),
  });
  return { 'agg-user.json': user, 'agg-orders.json': orders, 'agg-prefs.json': prefs };
}

/** Every file the backend serves under /data/. */
export function backendFiles(): Record<string, string> {
  return { '1k.json': userBody(1024), '64k.json': userBody(64 * 1024), ...aggregateBodies(), 'jwks.json': benchJwks() };
}

const ALLOW = ['id', 'name', 'email', 'status', 'address.city', 'address.country', 'items'];

// ---- the 1,000-route configuration ----

/** Four endpoint shapes, rotated, so the router has static, parameter and mixed segments to tell apart. */
function routeShape(i: number): { endpoint: string; path: string } {
  switch (i % 4) {
    case 0:
      return { endpoint: `/api/svc${i}/items/{id}`, path: `/api/svc${i}/items/${i * 7}` };
    case 1:
      return { endpoint: `/api/svc${i}/users/{id}/orders`, path: `/api/svc${i}/users/u${i}/orders` };
    case 2:
      return { endpoint: `/api/svc${i}/catalog/{category}/{sku}`, path: `/api/svc${i}/catalog/books/sku-${i}` };
    default:
      return { endpoint: `/api/svc${i}/status`, path: `/api/svc${i}/status` };
  }
}

export const ROUTES = 1000;
const routePaths = Array.from({ length: ROUTES }, (_, i) => routeShape(i).path);

function routeEndpoints(origin: string, n = ROUTES): Record<string, unknown>[] {
  return Array.from({ length: n }, (_, i) => {
    const { endpoint } = routeShape(i);
    return { endpoint, output_encoding: 'no-op', backend: [{ host: [origin], url_pattern: endpoint, encoding: 'no-op' }] };
  });
}

/**
 * A heavier 1,000-endpoint configuration for the compile-time target: the
 * route shapes above with a mix of single and merged backends, allow/deny,
 * mapping, group, collections and no-op.
 */
export function mixedConfig(origin: string, n = ROUTES): Record<string, unknown> {
  const endpoints = Array.from({ length: n }, (_, i) => {
    const { endpoint } = routeShape(i);
    switch (i % 4) {
      case 0:
        return {
          endpoint,
          backend: [
            { host: [origin], url_pattern: '/data/1k.json', allow: ALLOW, mapping: { email: 'mail' } },
            { host: [origin], url_pattern: '/data/agg-orders.json', group: 'orders', deny: ['note'] },
          ],
        };
      case 1:
        return { endpoint, input_query_strings: ['page'], backend: [{ host: [origin], url_pattern: '/data/agg-orders.json', target: 'orders', is_collection: true }] };
      case 2:
        return { endpoint, output_encoding: 'no-op', backend: [{ host: [origin], url_pattern: endpoint, encoding: 'no-op' }] };
      default:
        return {
          endpoint,
          input_headers: ['Authorization'],
          backend: [
            { host: [origin], url_pattern: '/data/1k.json', allow: ['id', 'name'] },
            { host: [origin], url_pattern: '/data/agg-prefs.json', group: 'prefs' },
            { host: [origin], url_pattern: '/data/agg-orders.json', group: 'orders' },
          ],
        };
    }
  });
  return porticoConfig(endpoints, 'bench mixed 1000');
}

/** A whole Portico configuration around `endpoints`: loopback only, no access log. */
export function porticoConfig(endpoints: Record<string, unknown>[], name = 'portico bench', serviceExtra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: 3,
    name,
    listen_ip: '127.0.0.1',
    port: 8080,
    timeout: '3s',
    extra_config: { router: { disable_access_log: true }, ...serviceExtra },
    endpoints,
  };
}

// ---- the scenarios ----

function parses(body: string): Record<string, unknown> | string {
  try {
    const v = JSON.parse(body) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : 'not a JSON object';
  } catch (err) {
    return `not JSON: ${(err as Error).message}`;
  }
}

function noop(size: '1k' | '64k'): Scenario {
  const file = `/data/${size}.json`;
  return {
    id: `a-${size}`,
    title: `(a) one backend, no-op, ${size === '1k' ? '1 KiB' : '64 KiB'}`,
    porticoPaths: [`/noop/${size}`],
    proxyPaths: [file],
    systems: [...PORTICO, 'nginx', 'fastify', 'direct'],
    rateFrom: 'nginx',
    endpoints: (origin) => [{ endpoint: `/noop/${size}`, output_encoding: 'no-op', backend: [{ host: [origin], url_pattern: file, encoding: 'no-op' }] }],
    checkPortico: (body) => (body.length === (size === '1k' ? 1024 : 65536) ? undefined : `no-op body of ${body.length} bytes`),
  };
}

function checkAllowed(body: string): string | undefined {
  const o = parses(body);
  if (typeof o === 'string') return o;
  const keys = Object.keys(o).sort().join(',');
  return keys === 'address,email,id,items,name,status' && !('street' in (o.address as object)) ? undefined : `allow kept ${keys}`;
}

function allow(size: '1k' | '64k'): Scenario {
  const file = `/data/${size}.json`;
  return {
    id: `b-${size}`,
    title: `(b) one backend, json + allow, ${size === '1k' ? '1 KiB' : '64 KiB'}`,
    porticoPaths: [`/allow/${size}`],
    proxyPaths: [file],
    systems: [...PORTICO, 'nginx', 'fastify', 'direct'],
    note: 'nginx and @fastify/http-proxy only proxy here (they do not parse or filter JSON); Portico decodes, filters with allow and re-encodes.',
    rateFrom: 'nginx',
    endpoints: (origin) => [{ endpoint: `/allow/${size}`, backend: [{ host: [origin], url_pattern: file, allow: ALLOW }] }],
    checkPortico: checkAllowed,
  };
}

const BENCH_ORIGIN = 'https://app.bench.local';

/** (b) 1 KiB behind JWT validation (RS256, JWKS fetched once and cached) and CORS: quoted as a ratio of (b) 1 KiB. */
const jwtCors: Scenario = {
  id: 'e-jwt-cors',
  title: '(e) (b) 1 KiB behind JWT (RS256, cached JWKS) + CORS',
  porticoPaths: ['/secure/1k'],
  proxyPaths: [],
  systems: PORTICO,
  note: "Portico only: the same endpoint as (b) 1 KiB with auth/validator and security/cors; its cost is read as a ratio of Portico's (b) 1 KiB in the same run.",
  rateFrom: 'portico',
  serviceExtra: () => ({
    'security/cors': { allow_origins: [BENCH_ORIGIN], allow_methods: ['GET'], expose_headers: ['Content-Length'], max_age: '12h', allow_credentials: true },
  }),
  headers: { Authorization: `Bearer ${benchToken()}`, Origin: BENCH_ORIGIN },
  endpoints: (origin) => [
    {
      endpoint: '/secure/1k',
      extra_config: {
        'auth/validator': {
          alg: 'RS256',
          jwk_url: `${origin}/data/jwks.json`,
          cache: true,
          // The bench backend serves the JWKS over plain http on loopback.
          disable_jwk_security: true,
          issuer: JWT_ISSUER,
          audience: [JWT_AUDIENCE],
          roles: ['user'],
        },
      },
      backend: [{ host: [origin], url_pattern: '/data/1k.json', allow: ALLOW }],
    },
  ],
  checkPortico: checkAllowed,
};

const aggregate: Scenario = {
  id: 'c-agg',
  title: '(c) one endpoint aggregating three backends with group, 3 x ~1 KiB',
  porticoPaths: ['/agg/42'],
  proxyPaths: [],
  systems: PORTICO,
  note: 'nginx and @fastify/http-proxy cannot aggregate (n/a); the latency run offers 50% of Portico\'s own saturation rate.',
  rateFrom: 'portico',
  endpoints: (origin) => [
    {
      endpoint: '/agg/{id}',
      backend: [
        { host: [origin], url_pattern: '/data/agg-user.json', group: 'user' },
        { host: [origin], url_pattern: '/data/agg-orders.json', group: 'orders' },
        { host: [origin], url_pattern: '/data/agg-prefs.json', group: 'prefs' },
      ],
    },
  ],
  checkPortico: (body) => {
    const o = parses(body);
    if (typeof o === 'string') return o;
    const keys = Object.keys(o).sort().join(',');
    return keys === 'orders,prefs,user' ? undefined : `aggregate has ${keys}`;
  },
};

const routes: Scenario = {
  id: 'd-1000',
  title: '(d) 1,000 endpoints, requests spread over 1,000 routes, no-op, 1 KiB',
  porticoPaths: routePaths,
  proxyPaths: routePaths,
  systems: [...PORTICO, 'nginx', 'fastify', 'direct'],
  note: 'nginx and @fastify/http-proxy proxy every path with one prefix location/route; Portico routes among 1,000 endpoints (4 shapes, static and parameter segments).',
  rateFrom: 'nginx',
  endpoints: (origin) => routeEndpoints(origin),
  checkPortico: (body) => (body.length === 1024 ? undefined : `no-op body of ${body.length} bytes`),
};

/** (b) 1 KiB behind an endpoint-wide and a per-client rate limit set far above the load: the cost of the check. */
const rateLimitLocal: Scenario = {
  id: 'f-ratelimit-local',
  title: '(f) (b) 1 KiB behind a per-client rate limit (local buckets)',
  porticoPaths: ['/limited/1k'],
  proxyPaths: [],
  systems: PORTICO,
  note: "Portico only: the (b) 1 KiB endpoint with qos/ratelimit/router (endpoint bucket and per-client buckets keyed by a header), limits far above the load so no request is refused; read as a ratio of Portico's (b) 1 KiB in the same run.",
  rateFrom: 'portico',
  headers: { 'X-Client': 'bench-client-1' },
  endpoints: (origin) => [
    {
      endpoint: '/limited/1k',
      extra_config: {
        'qos/ratelimit/router': { max_rate: 10_000_000, client_max_rate: 1_000_000, client_capacity: 1_000_000, strategy: 'header', key: 'X-Client' },
      },
      backend: [{ host: [origin], url_pattern: '/data/1k.json', allow: ALLOW }],
    },
  ],
  checkPortico: checkAllowed,
};

/** The same limits as (f), counted in Redis (one round trip per request): the cost of a cluster-wide limit. */
const rateLimitRedis: Scenario = {
  ...rateLimitLocal,
  id: 'g-ratelimit-redis',
  title: '(g) (b) 1 KiB behind a per-client rate limit counted in Redis',
  porticoPaths: ['/limited-redis/1k'],
  note: "Portico only: the (f) limits as qos/ratelimit/router/redis on a local redis-server (one atomic script per request), far above the load; read as a ratio of Portico's (b) 1 KiB in the same run.",
  redis: true,
  serviceExtra: (env) => ({ redis: { connection_pools: [{ name: 'bench', address: env.redisAddress ?? '127.0.0.1:6379' }] } }),
  endpoints: (origin) => [
    {
      endpoint: '/limited-redis/1k',
      extra_config: {
        'qos/ratelimit/router/redis': {
          connection_name: 'bench',
          max_rate: 10_000_000,
          client_max_rate: 1_000_000,
          client_capacity: 1_000_000,
          strategy: 'header',
          key: 'X-Client',
        },
      },
      backend: [{ host: [origin], url_pattern: '/data/1k.json', allow: ALLOW }],
    },
  ],
};

/** (b) 1 KiB with Portico's metrics off: the reference for what telemetry costs ((b) itself has metrics on, the default). */
const telemetryOff: Scenario = {
  ...allow('1k'),
  id: 'h-telemetry-off',
  title: '(h) (b) 1 KiB with telemetry off (no request or backend metrics)',
  porticoPaths: ['/allow/1k'],
  proxyPaths: [],
  systems: PORTICO,
  note: "Portico only: the (b) 1 KiB endpoint with telemetry/metrics router, endpoint and backend layers disabled; (b) (metrics on, the default) and (i) (metrics + tracing) are read as ratios of it.",
  rateFrom: 'portico',
  serviceExtra: () => ({ 'telemetry/metrics': { router_disabled: true, endpoint_disabled: true, backend_disabled: true, listen_address: '127.0.0.1:0' } }),
};

/** (b) 1 KiB with metrics and every request traced, spans exported over OTLP/HTTP to the bench's nginx (a sink). */
const tracing: Scenario = {
  ...telemetryOff,
  id: 'i-tracing',
  title: '(i) (b) 1 KiB with metrics + tracing at 100% sampling (OTLP/HTTP export)',
  note: "Portico only: the (b) 1 KiB endpoint with telemetry/opentelemetry, trace_sample_rate 1 (a span per request and per backend call, batched and exported to an OTLP/HTTP sink on the backend nginx); read as a ratio of (h) telemetry off.",
  serviceExtra: (env) => ({
    'telemetry/opentelemetry': {
      service_name: 'portico-bench',
      trace_sample_rate: 1,
      exporters: { otlp: [{ name: 'sink', host: '127.0.0.1', port: env.backendPort, use_http: true }] },
    },
  }),
};

/** (b) 1 KiB behind one endpoint-level CEL check on a request header (true for every bench request): the cost of the check. */
const cel: Scenario = {
  ...allow('1k'),
  id: 'k-cel',
  title: '(k) (b) 1 KiB behind a validation/cel check on a request header',
  porticoPaths: ['/cel/1k'],
  proxyPaths: [],
  systems: PORTICO,
  note: "Portico only: the (b) 1 KiB endpoint with one validation/cel expression over req_headers, true for every request; read as a ratio of Portico's (b) 1 KiB in the same run.",
  rateFrom: 'portico',
  headers: { 'X-Client': 'bench-client-1' },
  endpoints: (origin) => [
    {
      endpoint: '/cel/1k',
      input_headers: ['X-Client'],
      extra_config: { 'validation/cel': [{ check_expr: "req_headers['X-Client'][0] == 'bench-client-1'" }] },
      backend: [{ host: [origin], url_pattern: '/data/1k.json', allow: ALLOW }],
    },
  ],
};

/** (b) 1 KiB with a modifier/lua-proxy pre script (reads and sets a header) and post script (walks the items, adds a total). */
const lua: Scenario = {
  ...allow('1k'),
  id: 'j-lua',
  title: '(j) (b) 1 KiB with a modifier/lua-proxy pre + post script',
  porticoPaths: ['/lua/1k'],
  proxyPaths: [],
  systems: PORTICO,
  note: "Portico only: the (b) 1 KiB endpoint with a Lua pre script (reads X-Client, sets a header for the backend) and post script (sums qty x price over the items, sets total and item_count); read as a ratio of Portico's (b) 1 KiB in the same run.",
  rateFrom: 'portico',
  headers: { 'X-Client': 'bench-client-1' },
  endpoints: (origin) => [
    {
      endpoint: '/lua/1k',
      input_headers: ['X-Client'],
      extra_config: {
        'modifier/lua-proxy': {
          pre: "local r = request.load()\nif r:headers('X-Client') == '' then custom_error('no client', 401) end\nr:headers('X-Gateway', 'portico')",
          post: [
            'local d = response.load():data()',
            "local items = d:get('items')",
            'local total = 0',
            "for i = 0, items:len() - 1 do local it = items:get(i) total = total + it:get('qty') * it:get('price') end",
            "d:set('total', math.floor(total * 100 + 0.5) / 100)",
            "d:set('item_count', items:len())",
          ].join('\n'),
        },
      },
      backend: [{ host: [origin], url_pattern: '/data/1k.json', allow: ALLOW }],
    },
  ],
  checkPortico(body) {
    const o = parses(body);
    if (typeof o === 'string') return o;
    const keys = Object.keys(o).sort().join(',');
    return keys === 'address,email,id,item_count,items,name,status,total' ? undefined : `the Lua post script left ${keys}`;
  },
};

/** (b) 1 KiB with a shadow backend (the same file) compared by portico/shadow-compare: every request makes two backend calls and one comparison. */
const shadowCompare: Scenario = {
  ...allow('1k'),
  id: 'l-shadow',
  title: '(l) (b) 1 KiB with a shadow backend compared (portico/shadow-compare)',
  porticoPaths: ['/shadow/1k'],
  proxyPaths: [],
  systems: PORTICO,
  note: "Portico only: the (b) 1 KiB endpoint plus a shadow backend serving the same file with the same allow list, compared with portico/shadow-compare (headers, ignored paths, equal answers): two backend calls, a copy of the live answer and a comparison per request; read as a ratio of Portico's (b) 1 KiB in the same run.",
  rateFrom: 'portico',
  endpoints: (origin) => [
    {
      endpoint: '/shadow/1k',
      backend: [
        { host: [origin], url_pattern: '/data/1k.json', allow: ALLOW },
        {
          host: [origin],
          url_pattern: '/data/1k.json',
          allow: ALLOW,
          extra_config: { proxy: { shadow: true }, 'portico/shadow-compare': { headers: ['Content-Type'], ignore: ['$.updated_at', '$.items[*].request_id'], max_pending: 256 } },
        },
      ],
    },
  ],
};

/** (b) 1 KiB split 90/10 between two backends (portico/traffic-split) with the rollback guard watching: the cost of picking a side and counting it. */
const trafficSplit: Scenario = {
  ...allow('1k'),
  id: 'm-split',
  title: '(m) (b) 1 KiB split 90/10 between two backends with a rollback guard (portico/traffic-split)',
  porticoPaths: ['/split/1k'],
  proxyPaths: [],
  systems: PORTICO,
  note: "Portico only: the (b) 1 KiB endpoint with portico/traffic-split: 10% of the requests (a random pick) go to a candidate backend answering the same object with the same allow list, the per-side metrics are counted and the rollback guard's window records every answer; read as a ratio of Portico's (b) 1 KiB in the same run.",
  rateFrom: 'portico',
  endpoints: (origin) => [
    {
      endpoint: '/split/1k',
      extra_config: { 'portico/traffic-split': { percent: 10, rollback: { window: '30s', min_requests: 20, error_rate_margin: 5, p99_margin: '250ms' } } },
      backend: [
        { host: [origin], url_pattern: '/data/1k.json', allow: ALLOW },
        { host: [origin], url_pattern: '/api/v2/1k', allow: ALLOW, extra_config: { 'portico/traffic-split': { side: 'candidate' } } },
      ],
    },
  ],
};

export const SCENARIOS: Scenario[] = [noop('1k'), noop('64k'), allow('1k'), allow('64k'), aggregate, routes, jwtCors, rateLimitLocal, rateLimitRedis, telemetryOff, tracing, lua, cel, shadowCompare, trafficSplit];
