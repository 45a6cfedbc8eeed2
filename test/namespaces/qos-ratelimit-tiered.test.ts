// qos/ratelimit/tiered: per-tier token buckets chosen by a header, through a
// real gateway and a real backend (test clock: nothing sleeps). Tiers by
// header (gold gets more than silver), by a JWT claim (auth/validator with
// propagate_claims), the "*" fallback, unknown and missing tiers (429), a
// huge tier header, config errors, and buckets kept across an unchanged reload.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import type { TieredRateLimitOptions } from '../../src/namespaces/qos-ratelimit-tiered.ts';
import { setClock } from '../../src/namespaces/token-bucket.ts';
import { errorAt, issueAt, load, withEndpoint } from '../config/support.ts';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { loadTestConfig, startGateway, type TestGateway } from '../helpers/gateway.ts';
import { get } from '../helpers/http.ts';
import { jwks, makeKey, signToken } from '../helpers/jwks-server.ts';

const NS = 'qos/ratelimit/tiered';
const AT = `$.endpoints[0].extra_config["${NS}"]`;

let t = 1_000_000;

const GOLD_SILVER = {
  tier_key: 'X-Tier',
  tiers: [
    { tier_value: 'gold', tier_value_as: 'literal', ratelimit: { client_max_rate: 3, client_capacity: 3, strategy: 'header', key: 'X-User' } },
    { tier_value: 'silver', ratelimit: { client_max_rate: 1, client_capacity: 1, strategy: 'header', key: 'X-User' } },
  ],
};

const nsConfig = (options: unknown) => withEndpoint({ extra_config: { [NS]: options } });
const optionsOf = (options: unknown): TieredRateLimitOptions =>
  loadTestConfig({ host: ['http://127.0.0.1:9'], endpoints: [{ endpoint: '/e', backend: [{ url_pattern: '/b' }], extra_config: { [NS]: options } }] }).endpoints[0]!.namespaces[0]!
    .options as TieredRateLimitOptions;

describe('qos/ratelimit/tiered: config', () => {
  it('parses into plain, cloneable options; each tier through qos/ratelimit/router', () => {
    const o = optionsOf({ ...GOLD_SILVER, tiers: [...GOLD_SILVER.tiers, { tier_value_as: '*', ratelimit: { max_rate: 1 } }] });
    assert.deepEqual(structuredClone(o), o);
    assert.equal(o.tierKey, 'x-tier');
    assert.deepEqual(
      o.tiers.map((x) => [x.as, x.match, x.label]),
      [['literal', 'gold', 'gold'], ['literal', 'silver', 'silver'], ['*', '', '*']],
    );
    assert.deepEqual(o.tiers[0]!.limit, { maxRate: 0, capacity: 0, clientMaxRate: 3, clientCapacity: 3, strategy: 'header', key: 'x-user', everyMs: 1000 });
    assert.equal(o.tiers[2]!.limit.capacity, 1, "the router's defaults apply");
    // A value unsafe in a RateLimit-Policy string gets a positional label.
    assert.equal(optionsOf({ tier_key: 'X-Tier', tiers: [{ tier_value: 'a"b', ratelimit: { max_rate: 1 } }] }).tiers[0]!.label, 'tier-0');
  });

  it('reports precise errors with their paths', () => {
    assert.match(errorAt(nsConfig('gold'), AT).expected, /object/);
    assert.match(errorAt(nsConfig({ tiers: GOLD_SILVER.tiers }), `${AT}.tier_key`).expected, /header/);
    assert.match(errorAt(nsConfig({ tier_key: 'bad header', tiers: GOLD_SILVER.tiers }), `${AT}.tier_key`).expected, /header name/);
    assert.match(errorAt(nsConfig({ tier_key: 'X-Tier' }), `${AT}.tiers`).expected, /list of tiers/);
    assert.match(errorAt(nsConfig({ tier_key: 'X-Tier', tiers: [] }), `${AT}.tiers`).expected, /at least one/);
    assert.match(errorAt(nsConfig({ tier_key: 'X-Tier', tiers: {} }), `${AT}.tiers`).expected, /array/);
    assert.match(errorAt(nsConfig({ tier_key: 'X-Tier', tiers: ['gold'] }), `${AT}.tiers[0]`).expected, /tier object/);
    assert.match(errorAt(nsConfig({ tier_key: 'X-Tier', tiers: [{ tier_value: 'gold' }] }), `${AT}.tiers[0].ratelimit`).expected, /max_rate/);
    assert.match(errorAt(nsConfig({ tier_key: 'X-Tier', tiers: [{ tier_value: 7, ratelimit: { max_rate: 1 } }] }), `${AT}.tiers[0].tier_value`).expected, /string/);
    assert.match(errorAt(nsConfig({ tier_key: 'X-Tier', tiers: [{ tier_value: 'g', tier_value_as: 'regex', ratelimit: { max_rate: 1 } }] }), `${AT}.tiers[0].tier_value_as`).expected, /"literal", "policy" or "\*"/);
    assert.match(errorAt(nsConfig({ tier_key: 'X-Tier', tiers: [{ tier_value: "value == 'g'", tier_value_as: 'policy', ratelimit: { max_rate: 1 } }] }), `${AT}.tiers[0].tier_value_as`).expected, /not supported by this version/);
    assert.match(errorAt(nsConfig({ tier_key: 'X-Tier', tiers: [{ tier_value: 'g', ratelimit_redis: { max_rate: 1 } }] }), `${AT}.tiers[0].ratelimit_redis`).expected, /not supported by this version/);
    // The tier's ratelimit is checked by qos/ratelimit/router, with paths inside the tier.
    assert.match(errorAt(nsConfig({ tier_key: 'X-Tier', tiers: [{ tier_value: 'g', ratelimit: { max_rate: -1 } }] }), `${AT}.tiers[0].ratelimit.max_rate`).expected, />= 0/);
    assert.match(errorAt(nsConfig({ tier_key: 'X-Tier', tiers: [{ tier_value: 'g', ratelimit: { client_max_rate: 1, strategy: 'header' } }] }), `${AT}.tiers[0].ratelimit.key`).expected, /header/);
  });

  it('warns about unknown keys, unreachable tiers and a literal tier without a value', () => {
    const r = load(
      nsConfig({
        tier_key: 'X-Tier',
        tier_ky: 1,
        tiers: [
          { tier_value: 'gold', ratelimt: {}, ratelimit: { max_rate: 1 } },
          { tier_value: 'gold', ratelimit: { max_rate: 2 } },
          { tier_value_as: '*', ratelimit: { max_rate: 1 } },
          { tier_value: 'late', ratelimit: { max_rate: 1 } },
          { ratelimit: { max_rate: 1 } },
        ],
      }),
    );
    assert.deepEqual(r.errors, []);
    assert.match(issueAt(r.warnings, `${AT}.tier_ky`).expected, /did you mean "tier_key"/);
    assert.match(issueAt(r.warnings, `${AT}.tiers[0].ratelimt`).expected, /did you mean "ratelimit"/);
    assert.match(issueAt(r.warnings, `${AT}.tiers[1].tier_value`).found, /repeated/);
    assert.match(issueAt(r.warnings, `${AT}.tiers[3]`).found, /never used/);
    assert.match(issueAt(r.warnings, `${AT}.tiers[4].tier_value`).found, /without the tier header/);
    const o = r.config!.endpoints[0]!.namespaces[0]!.options as TieredRateLimitOptions;
    assert.deepEqual(o.tiers.map((x) => x.label), ['gold', '*']);
  });

  it('is an endpoint namespace only (service level is refused)', () => {
    const r = load({ version: 3, extra_config: { [NS]: GOLD_SILVER }, endpoints: [] });
    assert.ok(r.errors.some((e) => e.path.includes(NS)), 'a tiered limit at service level is an error, never ignored');
  });
});

describe('qos/ratelimit/tiered: over HTTP', () => {
  let backend: TestBackend;
  let gw: TestGateway | undefined;
  before(async () => {
    backend = await startBackend((_req, res) => json(res, { ok: true }));
  });
  after(async () => {
    await backend.close();
  });
  beforeEach(() => {
    t = 1_000_000;
    setClock(() => t);
  });
  afterEach(async () => {
    setClock();
    await gw?.close();
    gw = undefined;
  });

  const config = (options: unknown, endpoint: Record<string, unknown> = {}) => ({
    host: [backend.url],
    endpoints: [{ endpoint: '/e', backend: [{ url_pattern: '/b' }], extra_config: { [NS]: options }, ...endpoint }],
  });
  const as = (tier: string | undefined, user: string) => ({ ...(tier === undefined ? {} : { 'X-Tier': tier }), 'X-User': user });
  const burst = async (headers: Record<string, string>): Promise<number> => {
    let n = 0;
    while ((await get(gw!.url, '/e', headers)).status === 200) if (++n > 20) break;
    return n;
  };

  it('tiers by header: gold gets more than silver, each client its own bucket, each tier its label', async () => {
    gw = await startGateway(config(GOLD_SILVER));
    const calls = backend.requests.length;
    assert.equal(await burst(as('gold', 'mary')), 3);
    assert.equal(await burst(as('silver', 'john')), 1);
    assert.equal(await burst(as('silver', 'ann')), 1, 'another silver client has its own bucket');
    assert.equal(backend.requests.length - calls, 5, 'limited requests never reach the backend');
    const r = await get(gw.url, '/e', as('silver', 'john'));
    assert.equal(r.status, 429);
    assert.equal(r.body, '');
    assert.equal(r.headers['retry-after'], '1');
    assert.equal(r.headers['ratelimit-policy'], '"client";q=1;w=1');
    // The same client switching tiers is counted in the other tier's buckets.
    assert.equal((await get(gw.url, '/e', as('gold', 'john'))).status, 200);
    t += 1000;
    assert.equal((await get(gw.url, '/e', as('silver', 'john'))).status, 200, 'refilled at the silver rate');
  });

  it("a tier's endpoint-wide limit: 503 with the tier's label in RateLimit-Policy", async () => {
    gw = await startGateway(
      config({
        tier_key: 'X-Tier',
        tiers: [
          { tier_value: 'gold', ratelimit: { max_rate: 4, capacity: 4 } },
          { tier_value: 'silver', ratelimit: { max_rate: 2, capacity: 2 } },
        ],
      }),
    );
    assert.equal(await burst(as('silver', 'a')), 2);
    const r = await get(gw.url, '/e', as('silver', 'b'));
    assert.equal(r.status, 503, 'the silver bucket is shared by every silver client');
    assert.equal(r.headers['ratelimit-policy'], '"silver";q=2;w=1');
    assert.equal(r.headers['ratelimit'], '"silver";r=0;t=1');
    assert.equal(await burst(as('gold', 'c')), 4, 'gold has its own bucket');
  });

  it('unknown tier and missing tier header: 429 without a fallback; the "*" tier catches both', async () => {
    gw = await startGateway(config(GOLD_SILVER));
    const calls = backend.requests.length;
    let r = await get(gw.url, '/e', as('platinum', 'x'));
    assert.equal(r.status, 429);
    assert.equal(r.headers['retry-after'], undefined, 'waiting would not help');
    assert.equal((await get(gw.url, '/e', as(undefined, 'x'))).status, 429);
    assert.equal((await get(gw.url, '/e', as('', 'x'))).status, 429);
    assert.equal((await get(gw.url, '/e', as('Gold', 'x'))).status, 429, 'literal values are case-sensitive');
    assert.equal((await get(gw.url, '/e', as('g'.repeat(10_000), 'x'))).status, 429, 'a 10 KB tier header matches nothing');
    assert.equal(backend.requests.length - calls, 0);
    await gw.reload(config({ ...GOLD_SILVER, tiers: [...GOLD_SILVER.tiers, { tier_value_as: '*', ratelimit: { max_rate: 1, capacity: 1 } }] }));
    r = await get(gw.url, '/e', as('platinum', 'x'));
    assert.equal(r.status, 200, 'the fallback tier applies');
    r = await get(gw.url, '/e', as(undefined, 'y'));
    assert.equal(r.status, 503, 'the fallback bucket is shared by unknown and missing tiers');
    assert.equal(r.headers['ratelimit-policy'], '"*";q=1;w=1');
  });

  it('a long configured tier value matches the same header value (both bounded the same way)', async () => {
    const long = 'plan-' + 'x'.repeat(200);
    gw = await startGateway(config({ tier_key: 'X-Tier', tiers: [{ tier_value: long, ratelimit: { max_rate: 2, capacity: 2 } }] }));
    assert.equal(await burst(as(long, 'a')), 2);
    assert.equal((await get(gw.url, '/e', as(long + 'y', 'a'))).status, 429);
  });

  it('a reload that leaves the tiers unchanged keeps their buckets; a changed tier starts full', async () => {
    const cfg = config(GOLD_SILVER);
    gw = await startGateway(cfg);
    assert.equal(await burst(as('silver', 'john')), 1);
    await gw.reload({ ...cfg, timeout: '5s' });
    assert.equal((await get(gw.url, '/e', as('silver', 'john'))).status, 429, 'the silver bucket survived the reload');
    assert.ok(gw.state.keys().some((k) => k.startsWith(NS)));
    const changed = structuredClone(GOLD_SILVER);
    changed.tiers[1]!.ratelimit.client_capacity = 2;
    await gw.reload(config(changed));
    assert.equal(await burst(as('silver', 'john')), 2, 'changed options: fresh buckets');
  });
});

describe('qos/ratelimit/tiered: tier from a JWT claim', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'portico-tiered-'));
  let backend: TestBackend;
  let gw: TestGateway | undefined;
  after(async () => {
    setClock();
    await gw?.close();
    await backend?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('auth/validator propagates the "plan" claim into the tier header; a client cannot pick its own tier', async () => {
    t = 1_000_000;
    setClock(() => t);
    backend = await startBackend((_req, res) => json(res, { ok: true }));
    const key = await makeKey('RS256');
    const path = join(tmp, 'jwks.json');
    writeFileSync(path, JSON.stringify(jwks([key])));
    gw = await startGateway({
      host: [backend.url],
      endpoints: [
        {
          endpoint: '/e',
          backend: [{ url_pattern: '/b' }],
          extra_config: {
            'auth/validator': { alg: 'RS256', jwk_local_path: path, disable_jwk_security: true, propagate_claims: [['plan', 'X-Tier']] },
            [NS]: {
              tier_key: 'X-Tier',
              tiers: [
                { tier_value: 'gold', ratelimit: { client_max_rate: 3, client_capacity: 3, strategy: 'header', key: 'Authorization' } },
                { tier_value: 'silver', ratelimit: { client_max_rate: 1, client_capacity: 1, strategy: 'header', key: 'Authorization' } },
              ],
            },
          },
        },
      ],
    });
    const bearer = async (claims: Record<string, unknown>) => ({ authorization: `Bearer ${await signToken(key, claims)}` });
    const gold = await bearer({ sub: 'mary', plan: 'gold' });
    const silver = await bearer({ sub: 'john', plan: 'silver' });
    let n = 0;
    while ((await get(gw.url, '/e', gold)).status === 200 && n < 10) n++;
    assert.equal(n, 3, 'gold by claim: 3');
    assert.equal((await get(gw.url, '/e', silver)).status, 200);
    assert.equal((await get(gw.url, '/e', silver)).status, 429, 'silver by claim: 1');
    // A silver token with a forged X-Tier header: the claim replaces the header.
    const other = await bearer({ sub: 'eve', plan: 'silver' });
    assert.equal((await get(gw.url, '/e', { ...other, 'X-Tier': 'gold' })).status, 200);
    assert.equal((await get(gw.url, '/e', { ...other, 'X-Tier': 'gold' })).status, 429, 'still silver');
    // A token without the claim: no tier.
    assert.equal((await get(gw.url, '/e', { ...(await bearer({ sub: 'nobody' })), 'X-Tier': 'gold' })).status, 429);
    // No token at all: auth/validator refuses first.
    assert.equal((await get(gw.url, '/e', { 'X-Tier': 'gold' })).status, 401);
  });
});
