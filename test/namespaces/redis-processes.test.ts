// The cluster-wide limit across real processes: two `portico run` gateways
// share one redis-server, and the endpoint allows N requests across both, not
// 2N (the in-process suite shows the same with two plans in one process).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { get } from '../helpers/http.ts';
import { startCli, writeConfigFile, type Running } from '../helpers/process.ts';
import { redisAvailable, startRedis, type TestRedis } from '../helpers/redis-server.ts';

const skip = redisAvailable ? false : 'redis-server not installed';

describe('qos/ratelimit/router/redis across two gateway processes', { skip }, () => {
  let redis: TestRedis;
  let be: TestBackend;
  const gateways: Running[] = [];

  before(async () => {
    redis = await startRedis();
    be = await startBackend((_req, res) => json(res, { ok: true }));
    const { file, cache } = writeConfigFile({
      version: 3,
      host: [be.url],
      extra_config: { router: { disable_access_log: true }, redis: { connection_pools: [{ name: 'rl', address: redis.address }] } },
      endpoints: [{ endpoint: '/e', extra_config: { 'qos/ratelimit/router/redis': { connection_name: 'rl', max_rate: 6, capacity: 6, every: '1h' } }, backend: [{ url_pattern: '/b' }] }],
    });
    for (const name of ['a', 'b']) gateways.push(await startCli(['run', '-c', file, '-p', '0', '--cache-dir', cache(`cache-${name}`)]));
  });

  after(async () => {
    for (const g of gateways) {
      g.child.kill('SIGTERM');
      await g.exited;
    }
    await be.close();
    await redis.close();
  });

  it('6 allowed across both processes, not 12', async () => {
    const urls = gateways.map((g) => `http://127.0.0.1:${g.port}`);
    const statuses = await Promise.all(Array.from({ length: 20 }, (_, i) => get(urls[i % 2]!, '/e').then((r) => r.status)));
    assert.equal(statuses.filter((s) => s === 200).length, 6, String(statuses));
    assert.equal(statuses.filter((s) => s === 503).length, 14, String(statuses));
  });
});
