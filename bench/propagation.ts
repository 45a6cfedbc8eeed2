// Propagation: the time from `PUT /v1/config` (its 201) to every gateway
// serving the new version, for 2 and 10 gateways on loopback (real
// `portico run` processes), in three set-ups:
//   file-cp      control plane with the file store, gateways --control-plane
//   etcd-cp      control plane with the etcd store, gateways --control-plane
//   etcd-direct  control plane with the etcd store (where the PUT goes),
//                gateways --etcd watching <prefix>/current themselves
// Each gateway's /__health is polled every ~5 ms (keep-alive) until it shows the
// new version. A version can be served before the 201 arrives (the control
// plane answers held watches before its own PUT answer), so times measured
// from sending the PUT are shown too.
//
// Run: node_modules/.bin/node bench/propagation.ts [--nodes 2,10] [--rounds 10]
//        [--modes file-cp,etcd-cp,etcd-direct] [--poll-ms 5]
// etcd modes need /usr/bin/etcd (or $PORTICO_TEST_ETCD); they are skipped without it.

import { availableParallelism, cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import type { ControlPlaneProcess } from '../test/controlplane/support.ts';
import type { TestBackend } from '../test/helpers/backend.ts';
import { etcdAvailable, startEtcd, type TestEtcd } from '../test/helpers/etcd.ts';
import { startEchoBackend } from '../test/helpers/lifecycle-support.ts';
import { fleetConfig, publish, startCp, startGateway, stopEverything, tempDir, type Gateway } from '../test/fleet/support.ts';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '2,10' },
    rounds: { type: 'string', default: '10' },
    modes: { type: 'string', default: 'file-cp,etcd-cp,etcd-direct' },
    'poll-ms': { type: 'string', default: '5' },
  },
});
const NODES = values.nodes.split(',').map(Number);
const ROUNDS = Number(values.rounds);
const MODES = values.modes.split(',') as Mode[];
const POLL_MS = Number(values['poll-ms']);
const ROUND_TIMEOUT_MS = 20_000;

type Mode = 'file-cp' | 'etcd-cp' | 'etcd-direct';

interface Result {
  mode: Mode;
  nodes: number;
  /** Per round: the last node's time, from the 201 and from sending the PUT. */
  from201: number[];
  fromPut: number[];
  /** Per round and node: from the 201. */
  perNode: number[];
  putMs: number[];
}

/** Poll one gateway's /__health until it shows `version`; resolves to performance.now() then. */
async function seen(pool: Pool, version: number, deadline: number): Promise<number> {
  for (;;) {
    const r = await pool.request({ path: '/__health', method: 'GET' });
    const h = (await r.body.json()) as { config?: { version?: number } | null };
    const now = performance.now();
    if ((h.config?.version ?? 0) >= version) return now;
    if (now > deadline) throw new Error(`version ${version} not seen within ${ROUND_TIMEOUT_MS} ms`);
    await new Promise((res) => setTimeout(res, POLL_MS));
  }
}

async function scenario(mode: Mode, n: number, backend: TestBackend, etcd: TestEtcd | undefined, prefix: string): Promise<Result> {
  let cp: ControlPlaneProcess | undefined;
  const gws: Gateway[] = [];
  const pools: Pool[] = [];
  try {
    cp = mode === 'file-cp' ? await startCp(['--store', tempDir('bench-store')]) : await startCp(['--etcd', etcd!.url, '--etcd-prefix', prefix]);
    let r = await publish(cp.url, fleetConfig(backend.url, `${mode}-${n}-start`));
    if (r.status !== 201) throw new Error(`publish: ${r.status} ${r.body}`);
    // Started a few at a time: ten Node processes booting at once on two cores only measures the boot.
    for (let i = 0; i < n; i += 4) {
      const batch = Array.from({ length: Math.min(4, n - i) }, (_, k) => i + k);
      gws.push(
        ...(await Promise.all(
          batch.map((k) =>
            startGateway({
              id: `${mode}-${n}-${k}`,
              ...(mode === 'etcd-direct' ? { etcd: etcd!.url, args: ['--etcd-key', `${prefix}/current`] } : { controlPlane: cp!.url }),
              staleAfter: '5m',
            }),
          ),
        )),
      );
    }
    for (const g of gws) pools.push(new Pool(g.base, { connections: 1, pipelining: 1, keepAliveTimeout: 60_000 }));
    // Every gateway on the first version, then let the watches settle.
    await Promise.all(pools.map((p) => seen(p, r.version, performance.now() + ROUND_TIMEOUT_MS)));
    await new Promise((res) => setTimeout(res, 300));

    const res: Result = { mode, nodes: n, from201: [], fromPut: [], perNode: [], putMs: [] };
    for (let round = 0; round <= ROUNDS; round++) {
      const sent = performance.now();
      r = await publish(cp.url, fleetConfig(backend.url, `${mode}-${n}-r${round}`));
      if (r.status !== 201) throw new Error(`publish: ${r.status} ${r.body}`);
      const deadline = performance.now() + ROUND_TIMEOUT_MS;
      const times = await Promise.all(pools.map((p) => seen(p, r.version, deadline)));
      const last = Math.max(...times);
      if (round > 0) {
        // round 0 is a warm-up
        res.from201.push(last - r.at);
        res.fromPut.push(last - sent);
        res.putMs.push(r.at - sent);
        res.perNode.push(...times.map((x) => x - r.at));
      }
      await new Promise((res) => setTimeout(res, 150));
    }
    return res;
  } finally {
    await Promise.allSettled(pools.map((p) => p.close()));
    await Promise.allSettled(gws.map((g) => g.stop()));
    await cp?.stop();
  }
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}

const fmt = (x: number) => x.toFixed(1).padStart(8);
const stats = (xs: number[]) => `${fmt(quantile(xs, 0.5))}${fmt(quantile(xs, 0.95))}${fmt(Math.max(...xs))}`;

async function main(): Promise<void> {
  const backend = await startEchoBackend();
  let etcd: TestEtcd | undefined;
  const results: Result[] = [];
  try {
    const wantEtcd = MODES.some((m) => m !== 'file-cp');
    if (wantEtcd && !etcdAvailable) console.error('etcd is not installed: etcd modes skipped');
    if (wantEtcd && etcdAvailable) etcd = await startEtcd();
    let scenarioNo = 0;
    for (const mode of MODES) {
      if (mode !== 'file-cp' && !etcd) continue;
      for (const n of NODES) {
        const r = await scenario(mode, n, backend, etcd, `/bench${scenarioNo++}`);
        results.push(r);
        console.error(`${mode} ${n} nodes: median ${quantile(r.from201, 0.5).toFixed(1)} ms from the 201`);
      }
    }
  } finally {
    await stopEverything();
    await etcd?.stop({ wipe: true });
    await backend.close();
  }

  console.log(`\nPortico propagation: PUT /v1/config -> every gateway's /__health shows the new version (polled every ${POLL_MS} ms)`);
  console.log(`${ROUNDS} rounds per row (after 1 warm-up); node ${process.version}, ${availableParallelism()} CPU(s) (${cpus()[0]?.model ?? '?'}), loopback\n`);
  console.log(`${'mode'.padEnd(13)}${'nodes'.padStart(6)} | ${'last node, from the 201 (ms)'.padEnd(24)} | ${'last node, from PUT sent'.padEnd(24)} | ${'each node, from the 201'.padEnd(24)} | PUT took`);
  console.log(`${''.padEnd(19)} | ${'  median     p95     max'} | ${'  median     p95     max'} | ${'  median     p95     max'} | median`);
  for (const r of results) {
    console.log(`${r.mode.padEnd(13)}${String(r.nodes).padStart(6)} | ${stats(r.from201)} | ${stats(r.fromPut)} | ${stats(r.perNode)} | ${fmt(quantile(r.putMs, 0.5))}`);
  }
  console.log(`\nWith ${ROUNDS} rounds the p95 is (nearly) the max. Negative values: the node served the version before the 201 reached the client. Resolution: the poll interval.`);
}

await main();
