// portico/traffic-split: config checks with JSON paths, the share of a split
// over real backends (within a stated binomial bound), stickiness by header,
// cookie, verified JWT claim and client IP, the rule for a missing key,
// percent 0 and 100, per-side composition, per-side metrics in /metrics and
// /__stats, and the rollback guard: tripping on a failing or slow candidate,
// serving the stable side only, saying why in /__health, surviving an
// unrelated reload and re-enabled by one that changes the split; then the
// same with --workers 2 (metrics summed, each worker's guard in /__health).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DataPlane } from '../../src/lifecycle/data-plane.ts';
import { bucketOf, BUCKETS } from '../../src/namespaces/portico-traffic-split.ts';
import { startManagement, type ManagementListener } from '../../src/telemetry/management.ts';
import { assertValid, errorAt, load } from '../config/support.ts';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { loadTestConfig, startGateway, type TestGateway } from '../helpers/gateway.ts';
import { get, type TestResponse } from '../helpers/http.ts';
import { jwks, makeKey, signToken, startJwksServer, type JwksServer, type TestKey } from '../helpers/jwks-server.ts';
import { captureLog, discard, stopCli, waitUntil } from '../helpers/lifecycle-support.ts';
import { managementPort, sample } from '../helpers/metrics.ts';
import { startCli, writeConfigFile, type Running } from '../helpers/process.ts';

const NS = 'portico/traffic-split';
const SPLIT_AT = `$.endpoints[0].extra_config["${NS}"]`;
const CANDIDATE = { [NS]: { side: 'candidate' } };

/** How the candidate backend answers. */
type Mode = 'ok' | 'fail' | 'slow';

interface Sides {
  stable: TestBackend;
  candidate: TestBackend;
  mode: Mode;
  close(): Promise<void>;
}

/** A stable and a candidate backend, each answering {"side": ...} (plus what the path asks for). */
async function startSides(): Promise<Sides> {
  const sides = { mode: 'ok' as Mode } as Sides;
  sides.stable = await startBackend((req, res) => json(res, { side: 'stable', path: req.url }));
  sides.candidate = await startBackend(async (req, res) => {
    if (sides.mode === 'fail') return json(res, { error: 'broken' }, 500);
    if (sides.mode === 'slow') await sleep(150);
    json(res, { side: 'candidate', path: req.url });
  });
  sides.close = async () => {
    await sides.stable.close();
    await sides.candidate.close();
  };
  return sides;
}

/** One split endpoint over the two backends. */
function splitEndpoint(s: Sides, split: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const { extra_config: more, ...rest } = extra as { extra_config?: Record<string, unknown> };
  return {
    endpoint: '/s',
    extra_config: { [NS]: split, ...more },
    backend: [
      { host: [s.stable.url], url_pattern: '/stable' },
      { host: [s.candidate.url], url_pattern: '/candidate', extra_config: CANDIDATE },
    ],
    ...rest,
  };
}

const serviceOf = (endpoints: Record<string, unknown>[], extra: Record<string, unknown> = {}) => ({ extra_config: { router: { disable_access_log: true }, ...extra }, endpoints });

/** Run `fn(i)` for i in 0..n-1, `concurrency` at a time. */
async function inBatches<T>(n: number, fn: (i: number) => Promise<T>, concurrency = 32): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, n) }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

/** The side that answers a GET of `path` (a keep-alive client: the bulk runs send thousands). */
async function sideAt(base: string, path: string, headers: Record<string, string> = {}): Promise<'stable' | 'candidate'> {
  const r = await fetch(base + path, { headers });
  const body = await r.text();
  return sideOf({ status: r.status, headers: {}, body, json: () => JSON.parse(body) });
}

/** Which side answered (asserting a 200 from one of them). */
function sideOf(r: TestResponse): 'stable' | 'candidate' {
  assert.equal(r.status, 200, r.body);
  const side = r.json().side;
  assert.ok(side === 'stable' || side === 'candidate', r.body);
  return side;
}

const count = (sides: string[], side: string) => sides.filter((x) => x === side).length;

/**
 * 4 standard deviations of a binomial count: n requests, share p. A 10% split
 * over 2,000 requests: 200 ± 53.7 (10% ± 2.7%); a value outside happens about
 * once in 16,000 runs.
 */
function bounds(n: number, p: number): [number, number] {
  const sigma = Math.sqrt(n * p * (1 - p));
  return [Math.ceil(n * p - 4 * sigma), Math.floor(n * p + 4 * sigma)];
}

function assertWithin(value: number, [lo, hi]: [number, number], what: string): void {
  assert.ok(value >= lo && value <= hi, `${what}: ${value} not within [${lo}, ${hi}]`);
}

const userId = () => `u-${randomBytes(6).toString('hex')}`;

describe('portico/traffic-split: config', () => {
  const backends = (...marks: (Record<string, unknown> | undefined)[]) => marks.map((extra, i) => ({ url_pattern: `/b${i}`, ...(extra ? { extra_config: extra } : {}) }));
  const endpoint = (split: unknown, marks: (Record<string, unknown> | undefined)[] = [undefined, CANDIDATE], extra: Record<string, unknown> = {}) => ({
    version: 3,
    host: ['http://backend:8080'],
    endpoints: [{ endpoint: '/e', ...extra, extra_config: { [NS]: split, ...(extra.extra_config as object) }, backend: backends(...marks) }],
  });

  it('reads the documented fields into plain, cloneable options, with defaults', () => {
    const cfg = loadTestConfig(endpoint({ percent: 12.5, sticky: { header: 'X-User-Id' }, rollback: { error_rate_margin: 5 } }) as Record<string, unknown>);
    const ep = cfg.endpoints[0]!;
    assert.deepEqual(structuredClone(ep.namespaces), ep.namespaces);
    assert.deepEqual(ep.namespaces.find((u) => u.name === NS)?.options, {
      percent: 12.5,
      sticky: { kind: 'header', name: 'x-user-id', missingKey: 'stable', group: undefined },
      rollback: { windowMs: 30_000, minRequests: 20, errorRateMargin: 5, p99MarginMs: undefined },
    });
    assert.deepEqual(ep.backends[1]!.namespaces, [{ name: NS, options: { side: 'candidate' } }]);
    const full = loadTestConfig(
      endpoint({ percent: 0, sticky: { cookie: 'uid', missing_key: 'random', group: 'checkout' }, rollback: { window: '1m', min_requests: 50, p99_margin: '250ms' } }) as Record<string, unknown>,
    );
    assert.deepEqual(full.endpoints[0]!.namespaces.find((u) => u.name === NS)?.options, {
      percent: 0,
      sticky: { kind: 'cookie', name: 'uid', missingKey: 'random', group: 'checkout' },
      rollback: { windowMs: 60_000, minRequests: 50, errorRateMargin: undefined, p99MarginMs: 250 },
    });
  });

  it('a split needs a candidate side and a stable side', () => {
    assert.match(errorAt(endpoint({ percent: 10 }, [undefined, undefined]), SPLIT_AT).expected, /at least one backend marked \{"portico\/traffic-split": \{"side": "candidate"\}\}/);
    assert.match(errorAt(endpoint({ percent: 10 }, [CANDIDATE, CANDIDATE]), SPLIT_AT).expected, /not a candidate \(the stable side/);
    // A shadow is on neither side.
    assert.match(errorAt(endpoint({ percent: 10 }, [{ proxy: { shadow: true } }, CANDIDATE]), SPLIT_AT).found, /every backend is a candidate/);
  });

  it('a candidate backend needs the endpoint split, and cannot be a shadow', () => {
    const noSplit = { version: 3, host: ['http://backend:8080'], endpoints: [{ endpoint: '/e', backend: backends(undefined, CANDIDATE) }] };
    const e = errorAt(noSplit, `$.endpoints[0].backend[1].extra_config["${NS}"]`);
    assert.match(e.expected, /"portico\/traffic-split" on the endpoint as well/);
    const stableOnly = load({ ...noSplit, endpoints: [{ endpoint: '/e', backend: backends(undefined, { [NS]: { side: 'stable' } }) }] });
    assert.deepEqual(stableOnly.errors, []);
    assert.match(stableOnly.warnings.map((w) => `${w.path} ${w.found}`).join('\n'), /backend\[1\]\.extra_config\["portico\/traffic-split"\] "side": "stable" on an endpoint without a split/);
    const shadow = errorAt(endpoint({ percent: 10 }, [undefined, CANDIDATE, { ...CANDIDATE, proxy: { shadow: true } }]), `$.endpoints[0].backend[2].extra_config["${NS}"]`);
    assert.match(shadow.expected, /no side on a shadow backend/);
    errorAt(endpoint({ percent: 10 }, [undefined, { [NS]: { side: 'blue' } }]), `$.endpoints[0].backend[1].extra_config["${NS}"].side`);
    errorAt(endpoint({ percent: 10 }, [undefined, { [NS]: {} }]), `$.endpoints[0].backend[1].extra_config["${NS}"].side`);
  });

  it('at service level it does nothing, and the candidate backends then fail the config', () => {
    const misplaced = { version: 3, host: ['http://backend:8080'], extra_config: { [NS]: { percent: 10 } }, endpoints: [{ endpoint: '/e', backend: backends(undefined, CANDIDATE) }] };
    const r = load(misplaced);
    assert.ok(r.warnings.some((w) => w.path === `$.extra_config["${NS}"]` && /belongs at endpoint or backend level/.test(w.found)), JSON.stringify(r.warnings));
    errorAt(misplaced, `$.endpoints[0].backend[1].extra_config["${NS}"]`);
  });

  it('percent is a number from 0 to 100', () => {
    for (const bad of [150, -1, '10', null]) errorAt(endpoint({ percent: bad }), `${SPLIT_AT}.percent`);
    assert.match(errorAt(endpoint({}), `${SPLIT_AT}.percent`).found, /missing/);
    errorAt(endpoint(10), SPLIT_AT);
    assertValid(endpoint({ percent: 0 }));
    assertValid(endpoint({ percent: 100 }));
    assertValid(endpoint({ percent: 0.01 }));
  });

  it('sticky: exactly one known kind, usable names, claims only behind auth/validator', () => {
    const sticky = (s: unknown, extra: Record<string, unknown> = {}) => endpoint({ percent: 10, sticky: s }, undefined, extra);
    const unknown = load(sticky({ query: 'user' }));
    assert.ok(unknown.errors.some((e) => e.path === `${SPLIT_AT}.sticky` && /exactly one sticky key/.test(e.expected)));
    assert.ok(unknown.warnings.some((w) => w.path === `${SPLIT_AT}.sticky.query`), 'the unknown key is named');
    assert.match(errorAt(sticky({ header: 'X-User', cookie: 'uid' }), `${SPLIT_AT}.sticky`).found, /"header" and "cookie" together/);
    errorAt(sticky({ header: '' }), `${SPLIT_AT}.sticky.header`);
    errorAt(sticky({ cookie: 7 }), `${SPLIT_AT}.sticky.cookie`);
    errorAt(sticky({ client_ip: false }), `${SPLIT_AT}.sticky.client_ip`);
    errorAt(sticky({ header: 'X-User', missing_key: 'candidate' }), `${SPLIT_AT}.sticky.missing_key`);
    errorAt(sticky({ header: 'X-User', group: '' }), `${SPLIT_AT}.sticky.group`);
    assert.match(errorAt(sticky({ claim: 'sub' }), `${SPLIT_AT}.sticky.claim`).expected, /"auth\/validator" on this endpoint/);
    const validator = { 'auth/validator': { alg: 'RS256', jwk_url: 'https://idp.example/jwks.json' } };
    assertValid(sticky({ claim: 'sub' }, { extra_config: validator }));
    assertValid(sticky({ client_ip: true }));
  });

  it('rollback: a margin, a window of at least 1s, a positive min_requests', () => {
    const rollback = (r: unknown) => endpoint({ percent: 10, rollback: r });
    assert.match(errorAt(rollback({ window: '10s' }), `${SPLIT_AT}.rollback`).expected, /"error_rate_margin", "p99_margin" or both/);
    errorAt(rollback({ error_rate_margin: 5, window: '100ms' }), `${SPLIT_AT}.rollback.window`);
    errorAt(rollback({ error_rate_margin: 5, window: 'soon' }), `${SPLIT_AT}.rollback.window`);
    errorAt(rollback({ error_rate_margin: 101 }), `${SPLIT_AT}.rollback.error_rate_margin`);
    errorAt(rollback({ error_rate_margin: 5, min_requests: 0 }), `${SPLIT_AT}.rollback.min_requests`);
    errorAt(rollback({ p99_margin: 200 }), `${SPLIT_AT}.rollback.p99_margin`);
    errorAt(rollback(true), `${SPLIT_AT}.rollback`);
  });

  it('no-op: exactly one backend per side; sequential: {respN_} counts within a side', () => {
    assertValid(endpoint({ percent: 10 }, undefined, { output_encoding: 'no-op' }));
    assert.match(errorAt(endpoint({ percent: 10 }, [undefined, undefined, CANDIDATE], { output_encoding: 'no-op' }), SPLIT_AT).expected, /exactly one stable and one candidate backend/);
    const seq = (patterns: [string, Record<string, unknown> | undefined][]) => ({
      version: 3,
      host: ['http://backend:8080'],
      endpoints: [
        {
          endpoint: '/e',
          extra_config: { [NS]: { percent: 10 }, proxy: { sequential: true } },
          backend: patterns.map(([url_pattern, extra]) => ({ url_pattern, ...(extra ? { extra_config: extra } : {}) })),
        },
      ],
    });
    // Stable chain /a -> /b/{resp0_id}; candidate chain /c -> /d/{resp0_id} (resp0 = the candidate side's first).
    assertValid(seq([['/a', undefined], ['/c', CANDIDATE], ['/b/{resp0_id}', undefined], ['/d/{resp0_id}', CANDIDATE]]));
    const e = errorAt(seq([['/a', undefined], ['/c', CANDIDATE], ['/b/{resp0_id}', undefined], ['/d/{resp1_id}', CANDIDATE]]), '$.endpoints[0].backend[3].url_pattern');
    assert.match(e.expected, /earlier backend of the candidate side/);
  });
});

describe('portico/traffic-split: buckets', () => {
  it('spreads keys evenly and the same way every time', () => {
    const keys = Array.from({ length: 20_000 }, userId);
    const under10 = keys.filter((k) => bucketOf('GET /s', k) < BUCKETS / 10).length;
    assertWithin(under10, bounds(keys.length, 0.1), 'keys in the first 10% of buckets');
    assert.equal(bucketOf('GET /s', 'user-1'), bucketOf('GET /s', 'user-1'));
    assert.notDeepEqual(keys.slice(0, 50).map((k) => bucketOf('GET /a', k)), keys.slice(0, 50).map((k) => bucketOf('GET /b', k)));
  });
});

describe('portico/traffic-split: serving', () => {
  let s: Sides;
  let gw: TestGateway | undefined;

  before(async () => {
    s = await startSides();
  });
  after(async () => {
    await s.close();
  });
  afterEach(async () => {
    s.mode = 'ok';
    await gw?.close();
    gw = undefined;
  });

  it('10% without a sticky key: 2,000 requests land within 4 sigma of 200 on the candidate', async () => {
    gw = await startGateway(serviceOf([splitEndpoint(s, { percent: 10 })]));
    const before = s.candidate.requests.length;
    const sides = await inBatches(2000, async () => sideAt(gw!.url, '/s'));
    const candidate = count(sides, 'candidate');
    assertWithin(candidate, bounds(2000, 0.1), 'candidate answers');
    assert.equal(s.candidate.requests.length - before, candidate, 'the candidate backend was called exactly for those');
  });

  it('sticky by header: 1,000 users within the bound, each user on one side, the side its bucket says', async () => {
    gw = await startGateway(serviceOf([splitEndpoint(s, { percent: 10, sticky: { header: 'X-User-Id' } })]));
    const users = Array.from({ length: 1000 }, userId);
    const first = await inBatches(users.length, async (i) => sideAt(gw!.url, '/s', { 'x-user-id': users[i] }));
    assertWithin(count(first, 'candidate'), bounds(1000, 0.1), 'users on the candidate');
    users.forEach((u, i) => assert.equal(first[i], bucketOf('GET /s', u) < BUCKETS / 10 ? 'candidate' : 'stable', u));
    const again = await inBatches(200, async (i) => sideAt(gw!.url, '/s', { 'x-user-id': users[i] }));
    assert.deepEqual(again, first.slice(0, 200), 'every user stays on its side');
  });

  it('raising percent keeps the users already on the candidate there', async () => {
    gw = await startGateway(serviceOf([splitEndpoint(s, { percent: 10, sticky: { header: 'X-User-Id' } })]));
    const users = Array.from({ length: 300 }, userId);
    const at10 = await inBatches(users.length, async (i) => sideAt(gw!.url, '/s', { 'x-user-id': users[i] }));
    await gw.reload(serviceOf([splitEndpoint(s, { percent: 30, sticky: { header: 'X-User-Id' } })]));
    const at30 = await inBatches(users.length, async (i) => sideAt(gw!.url, '/s', { 'x-user-id': users[i] }));
    users.forEach((u, i) => {
      if (at10[i] === 'candidate') assert.equal(at30[i], 'candidate', `${u} moved back to stable`);
    });
    assert.ok(count(at30, 'candidate') > count(at10, 'candidate'), 'more users on the candidate at 30%');
  });

  it('sticky by cookie', async () => {
    gw = await startGateway(serviceOf([splitEndpoint(s, { percent: 50, sticky: { cookie: 'uid' } })]));
    const users = Array.from({ length: 100 }, userId);
    const first = await inBatches(users.length, async (i) => sideAt(gw!.url, '/s', { cookie: `theme=dark; uid=${users[i]}; x=1` }));
    users.forEach((u, i) => assert.equal(first[i], bucketOf('GET /s', u) < BUCKETS / 2 ? 'candidate' : 'stable'));
    assert.ok(count(first, 'candidate') > 0 && count(first, 'stable') > 0);
    const again = await inBatches(users.length, async (i) => sideAt(gw!.url, '/s', { cookie: `uid=${users[i]}` }));
    assert.deepEqual(again, first);
  });

  describe('sticky by a verified JWT claim', () => {
    let idp: JwksServer;
    let key: TestKey;
    before(async () => {
      key = await makeKey('RS256');
      idp = await startJwksServer(jwks([key]));
    });
    after(async () => {
      await idp.close();
    });

    it('puts each subject on the side of its bucket, every time; a refused token reaches no side', async () => {
      const validator = { 'auth/validator': { alg: 'RS256', jwk_url: idp.url, disable_jwk_security: true, cache: true } };
      gw = await startGateway(serviceOf([splitEndpoint(s, { percent: 50, sticky: { claim: 'sub' } }, { extra_config: validator })]));
      const subjects = Array.from({ length: 100 }, userId);
      const tokens = await Promise.all(subjects.map((sub) => signToken(key, { sub })));
      const first = await inBatches(subjects.length, async (i) => sideAt(gw!.url, '/s', { authorization: `Bearer ${tokens[i]}` }));
      subjects.forEach((sub, i) => assert.equal(first[i], bucketOf('GET /s', sub) < BUCKETS / 2 ? 'candidate' : 'stable', sub));
      assert.ok(count(first, 'candidate') > 0 && count(first, 'stable') > 0);
      // A new token for the same subject: the same side.
      const fresh = await Promise.all(subjects.map((sub) => signToken(key, { sub, jti: userId() })));
      const again = await inBatches(subjects.length, async (i) => sideAt(gw!.url, '/s', { authorization: `Bearer ${fresh[i]}` }));
      assert.deepEqual(again, first);
      // The claim is read from the verified token only: an unsigned one is refused before any side.
      const calls = s.stable.requests.length + s.candidate.requests.length;
      assert.equal((await get(gw.url, '/s', { authorization: 'Bearer not.a.token' })).status, 401);
      assert.equal(s.stable.requests.length + s.candidate.requests.length, calls);
    });
  });

  it('sticky by client IP, from X-Forwarded-For of a trusted proxy', async () => {
    const router = { disable_access_log: true, forwarded_by_client_ip: true, remote_ip_headers: ['X-Forwarded-For'], trusted_proxies: ['127.0.0.1/32'] };
    gw = await startGateway({ extra_config: { router }, endpoints: [splitEndpoint(s, { percent: 50, sticky: { client_ip: true } })] });
    const ips = Array.from({ length: 100 }, (_, i) => `198.51.100.${i}`);
    const first = await inBatches(ips.length, async (i) => sideAt(gw!.url, '/s', { 'x-forwarded-for': ips[i] }));
    ips.forEach((ip, i) => assert.equal(first[i], bucketOf('GET /s', ip) < BUCKETS / 2 ? 'candidate' : 'stable', ip));
    assert.ok(count(first, 'candidate') > 0 && count(first, 'stable') > 0);
    // The same client behind another hop of the trusted proxy: the same side.
    const again = await inBatches(ips.length, async (i) => sideAt(gw!.url, '/s', { 'x-forwarded-for': `${ips[i]}, 127.0.0.1` }));
    assert.deepEqual(again, first);
  });

  it('a request without the sticky key goes to the stable side; with missing_key "random" it is a random pick', async () => {
    gw = await startGateway(serviceOf([splitEndpoint(s, { percent: 90, sticky: { header: 'X-User-Id' } })]));
    const keyless = await inBatches(200, async (i) => sideAt(gw!.url, '/s', i % 2 ? { 'x-user-id': '' } : {}));
    assert.equal(count(keyless, 'stable'), 200, 'no key (or an empty one): stable');
    await gw.reload(serviceOf([splitEndpoint(s, { percent: 50, sticky: { header: 'X-User-Id', missing_key: 'random' } })]));
    const random = await inBatches(400, async () => sideAt(gw!.url, '/s'));
    assertWithin(count(random, 'candidate'), bounds(400, 0.5), 'random picks on the candidate');
  });

  it('percent 0 sends nothing to the candidate, percent 100 everything', async () => {
    gw = await startGateway(serviceOf([splitEndpoint(s, { percent: 0, sticky: { header: 'X-User-Id' } })]));
    const none = await inBatches(200, async () => sideAt(gw!.url, '/s', { 'x-user-id': userId() }));
    assert.equal(count(none, 'stable'), 200);
    await gw.reload(serviceOf([splitEndpoint(s, { percent: 100 })]));
    const all = await inBatches(200, async () => sideAt(gw!.url, '/s'));
    assert.equal(count(all, 'candidate'), 200);
  });

  it('endpoints in one sticky group put a key on the same side; without a group each endpoint hashes on its own', async () => {
    const ep = (path: string, group?: string) => ({ ...splitEndpoint(s, { percent: 50, sticky: { header: 'X-User-Id', ...(group ? { group } : {}) } }), endpoint: path });
    gw = await startGateway(serviceOf([ep('/a', 'checkout'), ep('/b', 'checkout'), ep('/c')]));
    const users = Array.from({ length: 100 }, userId);
    const sidesAt = (path: string) => inBatches(users.length, async (i) => sideAt(gw!.url, path, { 'x-user-id': users[i] }));
    const [a, b, c] = [await sidesAt('/a'), await sidesAt('/b'), await sidesAt('/c')];
    assert.deepEqual(a, b);
    users.forEach((u, i) => assert.equal(a[i], bucketOf('checkout', u) < BUCKETS / 2 ? 'candidate' : 'stable'));
    assert.ok(a.some((side, i) => side !== c[i]), 'an endpoint outside the group splits independently');
  });

  it('each side is composed like an endpoint: merged backends, shadows beside both', async () => {
    const shadow = await startBackend((_req, res) => json(res, { shadow: true }));
    try {
      gw = await startGateway(
        serviceOf([
          {
            endpoint: '/m',
            extra_config: { [NS]: { percent: 50, sticky: { header: 'X-User-Id' } } },
            backend: [
              { host: [s.stable.url], url_pattern: '/one', group: 'one' },
              { host: [s.candidate.url], url_pattern: '/new', extra_config: CANDIDATE },
              { host: [s.stable.url], url_pattern: '/two', group: 'two' },
              { host: [shadow.url], url_pattern: '/shadow', extra_config: { proxy: { shadow: true } } },
            ],
          },
        ]),
      );
      const users = Array.from({ length: 40 }, userId);
      for (const u of users) {
        const r = await get(gw.url, '/m', { 'x-user-id': u });
        assert.equal(r.status, 200);
        if (bucketOf('GET /m', u) < BUCKETS / 2) assert.deepEqual(r.json(), { side: 'candidate', path: '/new' });
        else assert.deepEqual(r.json(), { one: { side: 'stable', path: '/one' }, two: { side: 'stable', path: '/two' } });
      }
      await waitUntil(() => shadow.requests.length === users.length, 'the shadow called once per request');
    } finally {
      await shadow.close();
    }
  });

  it('sequential: each side is its own chain, {resp0_...} from its own first backend', async () => {
    gw = await startGateway(
      serviceOf([
        {
          endpoint: '/q',
          extra_config: { [NS]: { percent: 50, sticky: { header: 'X-User-Id' } }, proxy: { sequential: true } },
          backend: [
            { host: [s.stable.url], url_pattern: '/first' },
            { host: [s.candidate.url], url_pattern: '/c-first', extra_config: CANDIDATE },
            { host: [s.stable.url], url_pattern: '/then/{resp0_side}' },
            { host: [s.candidate.url], url_pattern: '/c-then/{resp0_side}', extra_config: CANDIDATE },
          ],
        },
      ]),
    );
    for (const u of Array.from({ length: 20 }, userId)) {
      const r = await get(gw.url, '/q', { 'x-user-id': u });
      const candidate = bucketOf('GET /q', u) < BUCKETS / 2;
      assert.deepEqual(r.json(), candidate ? { side: 'candidate', path: '/c-then/candidate' } : { side: 'stable', path: '/then/stable' });
    }
  });

  it('a no-op split passes each side\'s answer through', async () => {
    const ep = splitEndpoint(s, { percent: 50, sticky: { header: 'X-User-Id' } }, { output_encoding: 'no-op' });
    gw = await startGateway(serviceOf([ep]));
    for (const u of Array.from({ length: 20 }, userId)) {
      const r = await get(gw.url, '/s', { 'x-user-id': u });
      assert.equal(r.body, JSON.stringify({ side: bucketOf('GET /s', u) < BUCKETS / 2 ? 'candidate' : 'stable', path: bucketOf('GET /s', u) < BUCKETS / 2 ? '/candidate' : '/stable' }));
    }
  });

  it('counts requests, errors and latency per side in /metrics and /__stats', async () => {
    let mgmt: ManagementListener | undefined;
    const logs = captureLog();
    try {
      gw = await startGateway(serviceOf([{ ...splitEndpoint(s, { percent: 50, sticky: { header: 'X-User-Id' } }), endpoint: '/metered' }]));
      mgmt = await startManagement({ port: 0, health: () => ({}), ready: () => true });
      const users = Array.from({ length: 100 }, userId);
      s.mode = 'fail';
      const sides = await inBatches(users.length, async (i) => {
        const r = await get(gw!.url, '/metered', { 'x-user-id': users[i] });
        return r.status === 200 ? sideOf(r) : 'candidate';
      });
      const onCandidate = count(sides, 'candidate');
      assert.ok(onCandidate > 0 && onCandidate < 100);
      const mbase = `http://127.0.0.1:${mgmt.port}`;
      const text = (await get(mbase, '/metrics')).body;
      const series = (side: string, outcome: string) => sample(text, 'portico_traffic_split_requests_total', { endpoint: '/metered', method: 'GET', side, outcome }) ?? 0;
      assert.equal(series('stable', 'ok'), 100 - onCandidate);
      assert.equal(series('candidate', 'error'), onCandidate, 'the failing candidate counted as errors');
      assert.equal(series('candidate', 'ok'), 0);
      assert.equal(sample(text, 'portico_traffic_split_duration_seconds_count', { endpoint: '/metered', method: 'GET', side: 'candidate' }), onCandidate);
      const stats = (await get(mbase, '/__stats')).json();
      const split = stats.traffic_splits['/metered'].GET;
      assert.deepEqual(split.stable.outcomes, { ok: 100 - onCandidate });
      assert.deepEqual(split.candidate.outcomes, { error: onCandidate });
      assert.equal(split.candidate.latency.count, onCandidate);
      assert.equal(typeof split.stable.latency.p99_ms, 'number');
    } finally {
      logs.restore();
      await mgmt?.close();
    }
  });
});

describe('portico/traffic-split: rollback guard', () => {
  let s: Sides;
  let plane: DataPlane | undefined;
  let base: string;
  let logs: ReturnType<typeof captureLog>;

  /** Serve `config` (the first time) or reload to it, as `portico run` does. */
  const apply = async (config: Record<string, unknown>) => {
    const first = plane === undefined;
    plane ??= new DataPlane({ env: {}, listenIp: '127.0.0.1', port: 0, syncEnabled: false, staleAfterMs: 60_000, accessLogOut: discard() });
    const outcome = await plane.offer({ source: 'file', label: 'split.json', text: JSON.stringify({ version: 3, ...config }) });
    assert.equal(outcome.kind, 'applied', JSON.stringify(outcome));
    if (first) base = `http://127.0.0.1:${await plane.listen()}`;
  };
  const health = async () => (await get(base, '/__health')).json().traffic_splits?.['GET /s'];
  /** Send batches of `size` requests until /__health says the guard tripped. */
  const driveUntilRolledBack = (headers: () => Record<string, string> = () => ({}), size = 20) =>
    waitUntil(
      async () => {
        await inBatches(size, () => get(base, '/s', headers()), 10);
        const h = await health();
        return h?.guard === 'rolled_back' ? h : undefined;
      },
      'the guard to roll the candidate back',
      10_000,
    );

  beforeEach(async () => {
    s = await startSides();
    logs = captureLog();
  });
  afterEach(async () => {
    logs.restore();
    await plane?.shutdown(1000);
    plane = undefined;
    await s.close();
  });

  it('trips on a failing candidate: stable only, /__health says why, an unrelated reload keeps it, a changed split re-enables it', async () => {
    const split = { percent: 50, rollback: { window: '5s', min_requests: 10, error_rate_margin: 10 } };
    await apply(serviceOf([splitEndpoint(s, split)]));
    const watching = await health();
    assert.deepEqual(watching, { percent: 50, serving_percent: 50, guard: 'watching', rolled_back: null });

    s.mode = 'fail';
    const h = await driveUntilRolledBack();
    assert.equal(h.serving_percent, 0);
    assert.equal(h.rolled_back.condition, 'error_rate');
    assert.equal(h.rolled_back.margin, 10);
    assert.equal(h.rolled_back.window_seconds, 5);
    assert.ok(h.rolled_back.candidate.requests >= 10 && h.rolled_back.candidate.errors === h.rolled_back.candidate.requests, JSON.stringify(h));
    assert.equal(h.rolled_back.candidate.error_rate_percent, 100);
    assert.ok(h.rolled_back.stable.requests >= 10);
    assert.equal(h.rolled_back.stable.error_rate_percent, 0);
    assert.match(h.rolled_back.reason, /error rate \(100%\) exceeded the stable side's \(0%\) by more than 10 percentage points over 5s/);
    assert.ok(Math.abs(Date.parse(h.rolled_back.since) - Date.now()) < 15_000);
    // The management listener's /__health (one process) says the same.
    assert.deepEqual((plane!.health().traffic_splits as Record<string, unknown>)['GET /s'], h);
    assert.equal(logs.find('traffic split rolled back').length, 1);
    assert.equal(logs.find('traffic split rolled back')[0]!.condition, 'error_rate');

    // Nothing reaches the candidate any more: every answer is the stable side's.
    const called = s.candidate.requests.length;
    const after = await inBatches(100, async () => sideAt(base, '/s'));
    assert.equal(count(after, 'stable'), 100);
    assert.equal(s.candidate.requests.length, called);

    // A reload that leaves this split alone (another endpoint added) keeps it rolled back.
    s.mode = 'ok';
    await apply(serviceOf([splitEndpoint(s, split), { endpoint: '/other', backend: [{ host: [s.stable.url], url_pattern: '/other' }] }]));
    const kept = await waitUntil(async () => {
      const all = (await get(base, '/__health')).json().traffic_splits;
      return Object.keys(all).length === 1 ? all['GET /s'] : undefined; // the retired plan let go of its entry
    }, 'one split in /__health');
    assert.equal(kept.guard, 'rolled_back');
    assert.equal(kept.rolled_back.since, h.rolled_back.since);
    assert.equal(count(await inBatches(50, async () => sideAt(base, '/s')), 'stable'), 50);
    assert.equal(s.candidate.requests.length, called);

    // A configuration that changes the split (percent 50 -> 40) starts it afresh.
    await apply(serviceOf([splitEndpoint(s, { ...split, percent: 40 })]));
    const fresh = await waitUntil(async () => {
      const x = await health();
      return x?.percent === 40 ? x : undefined;
    }, 'the new split in /__health');
    assert.deepEqual(fresh, { percent: 40, serving_percent: 40, guard: 'watching', rolled_back: null });
    const resumed = await inBatches(400, async () => sideAt(base, '/s'));
    assertWithin(count(resumed, 'candidate'), bounds(400, 0.4), 'candidate answers after the change');
  });

  it('trips on a slow candidate (p99 margin), sticky users then all on the stable side', async () => {
    const split = { percent: 50, sticky: { header: 'X-User-Id' }, rollback: { window: '10s', min_requests: 5, p99_margin: '50ms' } };
    await apply(serviceOf([splitEndpoint(s, split)]));
    s.mode = 'slow';
    const h = await driveUntilRolledBack(() => ({ 'x-user-id': userId() }));
    assert.equal(h.rolled_back.condition, 'p99');
    assert.ok(h.rolled_back.candidate.p99_ms >= 140, JSON.stringify(h));
    assert.ok(h.rolled_back.candidate.p99_ms - h.rolled_back.stable.p99_ms > 50);
    assert.equal(h.rolled_back.candidate.errors, 0);
    const users = Array.from({ length: 100 }, userId);
    const sides = await inBatches(users.length, async (i) => sideAt(base, '/s', { 'x-user-id': users[i] }));
    assert.equal(count(sides, 'stable'), 100, 'users whose bucket says candidate are on the stable side too');
  });

  it('does not trip when the candidate is no worse than the stable side', async () => {
    await apply(serviceOf([splitEndpoint(s, { percent: 50, rollback: { window: '5s', min_requests: 10, error_rate_margin: 0, p99_margin: '100ms' } })]));
    await inBatches(300, async () => sideAt(base, '/s'), 10);
    assert.equal((await health()).guard, 'watching');
  });
});

describe('portico/traffic-split with --workers 2', () => {
  let s: Sides;
  let gw: Running;
  let base: string;
  let mbase: string;

  before(async () => {
    s = await startSides();
    s.mode = 'fail';
    const { file, cache } = writeConfigFile({
      version: 3,
      ...serviceOf([splitEndpoint(s, { percent: 50, rollback: { window: '10s', min_requests: 5, error_rate_margin: 10 } })]),
    });
    gw = await startCli(['run', '-c', file, '-p', '0', '--management-port', '0', '--workers', '2', '--cache-dir', cache()], { PORTICO_WORKERS: '2' });
    base = `http://127.0.0.1:${gw.port}`;
    mbase = `http://127.0.0.1:${managementPort(gw)}`;
  });
  after(async () => {
    await stopCli(gw);
    await s.close();
  });

  it('each worker judges its own traffic and shows its guard in /__health; metrics are summed', async () => {
    let sent = 0;
    const workers = await waitUntil(
      async () => {
        await inBatches(20, () => get(base, '/s'), 10);
        sent += 20;
        const h = (await get(mbase, '/__health')).json();
        const guards = (h.workers as { policies?: { traffic_splits?: Record<string, { guard: string }> } }[]).map((w) => w.policies?.traffic_splits?.['GET /s']?.guard);
        return guards.every((g) => g === 'rolled_back') ? h.workers : undefined;
      },
      'both workers to roll the candidate back',
      15_000,
    );
    assert.equal(workers.length, 2);
    for (const w of workers) assert.equal(w.policies.traffic_splits['GET /s'].rolled_back.condition, 'error_rate');
    const text = (await get(mbase, '/metrics')).body;
    const total = ['ok', 'error', 'client_error'].flatMap((outcome) => ['stable', 'candidate'].map((side) => sample(text, 'portico_traffic_split_requests_total', { endpoint: '/s', method: 'GET', side, outcome }) ?? 0));
    assert.equal(total.reduce((a, b) => a + b, 0), sent, 'every request counted once, over both workers');
    assert.equal(sample(text, 'portico_traffic_split_rolled_back', { endpoint: '/s', method: 'GET' }), 2, 'both workers rolled back');
    const stats = (await get(mbase, '/__stats')).json();
    const split = stats.traffic_splits['/s'].GET;
    assert.equal((split.stable.outcomes.ok ?? 0) + (split.candidate.outcomes.error ?? 0), sent);
    // After the trip, only the stable side answers, whichever worker serves.
    const after = await inBatches(40, async () => sideAt(base, '/s'), 10);
    assert.equal(count(after, 'stable'), 40);
  });
});
