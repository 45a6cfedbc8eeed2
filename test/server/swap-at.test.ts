// Gateway.swapAt: a plan swapped in at a set moment (two-phase reloads across workers).

import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { startJsonBackend, type TestBackend } from '../helpers/backend.ts';
import { loadTestConfig, startGateway, type TestGateway } from '../helpers/gateway.ts';
import { get } from '../helpers/http.ts';
import { compilePlan } from '../../src/plan/compile.ts';

let be: TestBackend;
let gw: TestGateway;
const config = (tag: string) => ({ endpoints: [{ endpoint: '/x', backend: [{ host: [be.url], url_pattern: `/${tag}` }] }] });

before(async () => {
  be = await startJsonBackend({ '/one': { v: 1 }, '/two': { v: 2 }, '/three': { v: 3 } });
  gw = await startGateway(config('one'));
});
after(async () => {
  await gw.close();
  await be.close();
});

it('serves the old plan until the set moment, the new one from then on, and hands back the old plan', async () => {
  const old = gw.gateway.plan;
  const next = compilePlan(loadTestConfig(config('two')), { state: gw.state });
  const at = Date.now() + 400;
  const swapped = gw.gateway.swapAt(next, at);
  assert.deepEqual((await get(gw.url, '/x')).json(), { v: 1 }, 'before the moment: the old plan');
  assert.equal(await swapped, old);
  assert.ok(Date.now() >= at, 'not swapped early');
  assert.deepEqual((await get(gw.url, '/x')).json(), { v: 2 });
  await old.close(1000);
});

it('a plain swap while one is due swaps the due plan first (no plan is lost)', async () => {
  const due = compilePlan(loadTestConfig(config('one')), { state: gw.state });
  const now = compilePlan(loadTestConfig(config('three')), { state: gw.state });
  const before = gw.gateway.plan;
  const swapped = gw.gateway.swapAt(due, Date.now() + 60_000);
  const replaced = gw.gateway.swap(now);
  assert.equal(await swapped, before);
  assert.equal(replaced, due);
  assert.deepEqual((await get(gw.url, '/x')).json(), { v: 3 });
  await Promise.all([before.close(1000), due.close(1000)]);
});
