// examples/migrating/: the README's "Migrating safely" walkthrough, run as it
// says against the demo backends: shadow comparison finds v2's deliberate
// difference, `portico diff` shows the step, the split sends a sticky share to
// v2, the guard takes a failing candidate out, and the last step serves v2.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startDemoBackends } from '../../examples/quickstart/backends.ts';
import { get } from '../helpers/http.ts';
import { ChildLog, stopCli, tempDir, waitUntil, writeAtomic } from '../helpers/lifecycle-support.ts';
import { managementPort } from '../helpers/metrics.ts';
import { runCli, startCli, type Running } from '../helpers/process.ts';

const DIR = fileURLToPath(new URL('../../examples/migrating/', import.meta.url));

describe('the migrating-safely walkthrough (examples/migrating)', () => {
  let servers: Server[];
  let users: string;
  let file: string;
  let gw: Running;
  let log: ChildLog;
  let base: string;
  let mgmt: string;

  /** An example step with the demo backend's real address. */
  const step = (name: string, candidateHost?: string) => {
    let text = readFileSync(join(DIR, name), 'utf8').replaceAll('http://127.0.0.1:9101', users);
    if (candidateHost) text = text.replace(`"host": ["${users}"],\n          "url_pattern": "/v2/`, `"host": ["${candidateHost}"],\n          "url_pattern": "/v2/`);
    return text;
  };
  /** Switch the running gateway to `text` (--watch) and wait until it serves it. */
  const apply = async (text: string) => {
    const from = log.mark();
    writeAtomic(file, text);
    await log.waitFor('config applied', from, 10_000);
  };
  const stats = async () => JSON.parse((await get(mgmt, '/__stats')).body);

  before(async () => {
    servers = await startDemoBackends('127.0.0.1', 0, 0);
    users = `http://127.0.0.1:${(servers[0].address() as AddressInfo).port}`;
    const dir = tempDir('migrating');
    file = join(dir, 'portico.json');
    writeAtomic(file, step('1-shadow.json'));
    gw = await startCli(['run', '-c', file, '--watch', '-p', '0', '--workers', '1', '--management-port', '0', '--cache-dir', join(dir, 'cache')]);
    log = new ChildLog(gw);
    base = `http://127.0.0.1:${gw.port}`;
    mgmt = `http://127.0.0.1:${managementPort(gw)}`;
  });

  after(async () => {
    await stopCli(gw);
    for (const s of servers) s.closeAllConnections();
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  });

  it('step 1: clients get v1; the shadow comparison counts v2\'s new field and its changed city', async () => {
    for (let i = 0; i < 3; i++) {
      for (const id of [1, 2]) {
        const r = await get(base, `/users/${id}`);
        assert.equal(r.status, 200);
        const body = JSON.parse(r.body);
        assert.equal(body.served_by, undefined, 'the client gets the live (v1) answer');
        assert.equal(body.address.city, id === 2 ? 'Arlington' : 'London');
      }
    }
    const shadow = await waitUntil(async () => {
      const s = (await stats()).shadow?.['/users/{id}']?.['/v2/users/{id}'];
      return s?.comparisons?.different === 6 ? s : undefined;
    }, 'six comparisons in /__stats');
    assert.deepEqual(shadow.diffs, { extra_field: 6, changed_value: 3 }, 'served_by on every answer, the city on user 2\'s; updated_at ignored');
    const user2 = shadow.examples.find((e: { path: string }) => e.path === '/users/2');
    const found = user2.diffs.map((d: { kind: string; path: string }) => `${d.kind} ${d.path}`).sort();
    assert.deepEqual(found, ['changed_value $.address.city', 'extra_field $.served_by']);
  });

  it('portico diff shows what step 2 changes', async () => {
    const r = await runCli(['diff', join(DIR, '1-shadow.json'), join(DIR, '2-split.json')]);
    assert.equal(r.code, 1, 'exit 1: there are changes');
    assert.match(r.stdout, /~ GET \/users\/\{id\}/);
    assert.match(r.stdout, /\+ namespace portico\/traffic-split/);
    assert.match(r.stdout, /- namespace portico\/shadow-compare/);
  });

  it('step 2: about 10% of users go to v2, each user always to the same side', async () => {
    await apply(step('2-split.json'));
    const sideOf = new Map<string, string>();
    for (let round = 0; round < 2; round++) {
      for (let u = 0; u < 200; u++) {
        const r = await get(base, '/users/2', { 'x-user-id': `user-${u}` });
        assert.equal(r.status, 200);
        // user 2's city tells the sides apart: v2 changed it.
        const side = JSON.parse(r.body).address.city === 'Arlington, VA' ? 'candidate' : 'stable';
        if (round === 0) sideOf.set(`user-${u}`, side);
        else assert.equal(side, sideOf.get(`user-${u}`), `user-${u} stays on its side`);
      }
    }
    const candidates = [...sideOf.values()].filter((s) => s === 'candidate').length;
    // 200 users at 10%: mean 20, sigma 4.24; 4 sigma either side.
    assert.ok(candidates >= 3 && candidates <= 37, `${candidates} of 200 users on v2`);
    const split = (await stats()).traffic_splits['/users/{id}'].GET;
    assert.equal(split.candidate.outcomes.ok, candidates * 2);
    assert.equal(split.stable.outcomes.ok, 400 - candidates * 2);
  });

  it('step 2 with a failing v2: the guard takes it out and /__health says why', async () => {
    await apply(step('2-split.json', 'http://127.0.0.1:1'));
    // The guard judges its window at most every tenth of it (6 s here): send traffic until it has.
    let sent = 0;
    let failed = 0;
    const health = await waitUntil(async () => {
      for (let i = 0; i < 50; i++, sent++) {
        if ((await get(base, '/users/1', { 'x-user-id': `user-${sent % 1000}` })).status !== 200) failed++;
      }
      const h = JSON.parse((await get(base, '/__health')).body).traffic_splits['GET /users/{id}'];
      return h.guard === 'rolled_back' ? h : undefined;
    }, 'the guard to roll v2 back', 20_000);
    assert.equal(health.serving_percent, 0);
    assert.equal(health.rolled_back.condition, 'error_rate');
    assert.match(health.rolled_back.reason, /error rate/);
    assert.ok(failed >= 20 && failed < sent * 0.2, `${failed} of ${sent} requests failed before the guard tripped (the candidate's share)`);
    for (let u = 0; u < 50; u++) assert.equal((await get(base, '/users/1', { 'x-user-id': `user-${u}` })).status, 200, 'v1 answers everyone now');
  });

  it('step 3: v2 answers everything', async () => {
    await apply(step('3-done.json'));
    const r = await get(base, '/users/2');
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { id: 2, name: 'Grace Hopper', email: 'grace@example.com', address: { city: 'Arlington, VA' } });
  });
});
