// Shared by the etcd TLS and auth tests: gateways restarted from a good
// gateway's last-known-good cache with settings etcd refuses, and what each
// must show: the reason in /__health and its log, its last known good served.

import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { health, servedTag, startGateway, tempDir, until, type Gateway } from './support.ts';

export interface RefusedCase {
  id: string;
  args: string[];
  env?: Record<string, string>;
  /** What /__health's sync.last_error and the log must say. */
  why: RegExp;
}

/** One gateway per case, each from a copy of `cacheDir`, started at once; checks each, resolves to them (still running). */
export async function expectRefusals(etcdUrl: string, cacheDir: string, cases: RefusedCase[], served: { version: number; tag: string }): Promise<Gateway[]> {
  const started = await Promise.all(
    cases.map((c) => {
      const copy = tempDir(`cache-${c.id}`);
      cpSync(cacheDir, copy, { recursive: true });
      return startGateway({ id: c.id, etcd: etcdUrl, cacheDir: copy, args: c.args, env: c.env });
    }),
  );
  await Promise.all(
    cases.map(async (c, i) => {
      const g = started[i]!;
      const bad = await until(`${c.id}: health says why`, async () => {
        const h = await health(g.base);
        return h.sync.last_error && c.why.test(h.sync.last_error) && h.status === 'degraded' ? h : undefined;
      }, 10_000);
      assert.equal(bad.config?.version, served.version, `${c.id} serves its last known good`);
      assert.equal(bad.config?.source, 'last-known-good');
      assert.equal(bad.ready, true);
      for (let n = 0; n < 5; n++) assert.equal(await servedTag(g.base), served.tag);
      const logged = await g.logs.nth('etcd unreachable', 1);
      assert.match(String(logged.error), c.why, `${c.id}: ${JSON.stringify(logged)}`);
    }),
  );
  return started;
}
