// How long a reload of a 1,000-endpoint configuration takes: DataPlane.offer
// with the file's text (parse + validate + normalize + hash + compile + swap),
// the initial load, ~20 reloads alternating two variants, and the same phases
// measured one by one. Run: node_modules/.bin/node bench/reload-time.ts
//   [--endpoints N] [--reloads N]

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { loadConfigText } from '../src/config/load.ts';
import { configHash } from '../src/lifecycle/canonical.ts';
import { DataPlane, type OfferOutcome } from '../src/lifecycle/data-plane.ts';
import { LastKnownGood } from '../src/lifecycle/last-known-good.ts';
import { compilePlan } from '../src/plan/compile.ts';
import { UpstreamPools } from '../src/proxy/upstream.ts';
import { setLogLevel } from '../src/telemetry/log.ts';

const { values } = parseArgs({ options: { endpoints: { type: 'string', default: '1000' }, reloads: { type: 'string', default: '20' } } });
const ENDPOINTS = Number(values.endpoints);
const RELOADS = Number(values.reloads);

/** Ten origins nobody contacts: a reload compiles, it does not connect. */
const HOSTS = Array.from({ length: 10 }, (_, i) => `http://127.0.0.1:${20_000 + i}`);

/** A realistic mix: single and merged backends, filters, mappings, groups, collections, no-op. */
function configText(endpoints: number, variant: 'A' | 'B'): string {
  const eps: Record<string, unknown>[] = [];
  for (let i = 0; i < endpoints; i++) {
    const h1 = HOSTS[i % HOSTS.length];
    const h2 = HOSTS[(i + (variant === 'A' ? 1 : 3)) % HOSTS.length];
    switch (i % 4) {
      case 0:
        eps.push({
          endpoint: `/svc${i}/users/{id}`,
          timeout: variant === 'A' ? '2s' : '2500ms',
          backend: [
            { host: [h1], url_pattern: '/users/{id}', allow: ['id', 'name', 'email'], mapping: { email: 'mail' } },
            { host: [h2], url_pattern: '/orders?user={id}', group: 'orders', deny: ['internal'] },
          ],
        });
        break;
      case 1:
        eps.push({
          endpoint: `/svc${i}/items`,
          method: variant === 'A' ? 'GET' : 'POST',
          input_query_strings: ['page', 'limit'],
          backend: [{ host: variant === 'A' ? [h1] : [h1, h2], url_pattern: '/items', is_collection: true, target: 'data' }],
        });
        break;
      case 2:
        eps.push({
          endpoint: `/svc${i}/raw/{path}`,
          output_encoding: 'no-op',
          backend: [{ host: [h1], url_pattern: '/raw/{path}', encoding: 'no-op' }],
        });
        break;
      default:
        eps.push({
          endpoint: `/svc${i}/profile/{id}`,
          cache_ttl: variant === 'A' ? '60s' : '30s',
          input_headers: ['Authorization'],
          backend: [
            { host: [h1], url_pattern: '/profile/{id}', allow: ['id', 'avatar'] },
            { host: [h2], url_pattern: '/prefs/{id}', group: 'prefs' },
            { host: [HOSTS[(i + 5) % HOSTS.length]], url_pattern: '/stats/{id}', group: 'stats', encoding: 'json' },
          ],
        });
    }
  }
  return JSON.stringify(
    { version: 3, name: `bench ${variant}`, timeout: '3s', extra_config: { router: { disable_access_log: true } }, endpoints: eps },
    null,
    2,
  );
}

function stats(xs: number[]): { median: number; p95: number; min: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)];
  return { median: q(0.5), p95: q(0.95), min: s[0], max: s[s.length - 1] };
}

const sink = new Writable({ write: (_c, _e, done) => done() });
const fmt = (n: number) => n.toFixed(1).padStart(8);

async function main(): Promise<void> {
  setLogLevel('error');
  const texts = { A: configText(ENDPOINTS, 'A'), B: configText(ENDPOINTS, 'B') };
  const rows: [string, number[]][] = [];

  // 1. DataPlane.offer, persistence off: what the data plane itself costs.
  const run = async (label: string, lkgDir: string | undefined) => {
    const plane = new DataPlane({
      env: {},
      listenIp: '127.0.0.1',
      port: 0,
      syncEnabled: false,
      staleAfterMs: 60_000,
      accessLogOut: sink,
      lastKnownGood: lkgDir ? new LastKnownGood(lkgDir) : undefined,
    });
    const timeOffer = async (text: string, n: number): Promise<{ ms: number; wall: number }> => {
      const t0 = performance.now();
      const out: OfferOutcome = await plane.offer({ source: 'file', label: `bench-${n}.json`, text });
      const wall = performance.now() - t0;
      if (out.kind !== 'applied') throw new Error(`offer ${n} was ${out.kind}: ${JSON.stringify(out).slice(0, 500)}`);
      if (out.snapshot.config.endpoints.length !== ENDPOINTS) throw new Error('wrong endpoint count');
      return { ms: out.ms, wall };
    };
    const initial = await timeOffer(texts.A, 0);
    const ms: number[] = [];
    const wall: number[] = [];
    for (let i = 1; i <= RELOADS; i++) {
      const r = await timeOffer(i % 2 === 1 ? texts.B : texts.A, i);
      ms.push(r.ms);
      wall.push(r.wall);
    }
    await plane.shutdown(0);
    rows.push([`initial load${label} (outcome.ms)`, [initial.ms]]);
    rows.push([`initial load${label} (offer wall)`, [initial.wall]]);
    rows.push([`reload${label} (outcome.ms)`, ms]);
    rows.push([`reload${label} (offer wall)`, wall]);
  };
  await run('', undefined);
  const dir = mkdtempSync(join(tmpdir(), 'portico-bench-'));
  try {
    await run(' + LKG persist', dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  // 2. The phases one by one, on the same texts (shared pools, like a reload).
  const load: number[] = [];
  const hash: number[] = [];
  const compile: number[] = [];
  const pools = new UpstreamPools();
  for (let i = 0; i < RELOADS; i++) {
    const text = i % 2 === 0 ? texts.A : texts.B;
    let t0 = performance.now();
    const loaded = loadConfigText(text, 'bench.json', { env: {} });
    load.push(performance.now() - t0);
    if (!loaded.config) throw new Error('invalid bench config: ' + JSON.stringify(loaded.errors.slice(0, 3)));
    t0 = performance.now();
    configHash(loaded.document);
    hash.push(performance.now() - t0);
    t0 = performance.now();
    const plan = compilePlan({ ...loaded.config, listenIp: '127.0.0.1', port: 0 }, { pools, accessLogOut: sink });
    compile.push(performance.now() - t0);
    await plan.close(0);
  }
  await pools.close();
  rows.push(['  phase: parse+validate+normalize', load]);
  rows.push(['  phase: content hash', hash]);
  rows.push(['  phase: compilePlan', compile]);

  const mem = process.memoryUsage();
  console.log(`Portico reload time: ${ENDPOINTS} endpoints (${Math.round(texts.A.length / 1024)} KiB of JSON), ${RELOADS} reloads alternating two variants`);
  console.log(`node ${process.version}, ${process.platform}/${process.arch}; rss ${Math.round(mem.rss / 1048576)} MiB at the end\n`);
  console.log(`${'measure (ms)'.padEnd(40)}${'n'.padStart(4)}${'median'.padStart(9)}${'p95'.padStart(9)}${'min'.padStart(9)}${'max'.padStart(9)}`);
  for (const [name, xs] of rows) {
    const s = stats(xs);
    console.log(`${name.padEnd(40)}${String(xs.length).padStart(4)} ${fmt(s.median)} ${fmt(s.p95)} ${fmt(s.min)} ${fmt(s.max)}`);
  }
  console.log('\noutcome.ms = what "config applied" logs (parse..swap); offer wall adds queueing, retiring the old plan and, with LKG, the fsynced write.');
}

await main();
