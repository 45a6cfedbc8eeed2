// Policies across processes: with --workers, each worker compiles the policy
// namespaces from the configuration the primary sends it (parsed options are
// plain data that cross the IPC channel), so every worker enforces them.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { get } from '../helpers/http.ts';
import { startCli, writeConfigFile, type Running } from '../helpers/process.ts';

describe('policies with --workers 2', () => {
  let be: TestBackend;
  let gw: Running;
  let base: string;

  before(async () => {
    be = await startBackend((_req, res) => json(res, { ok: true }));
    const { file, cache } = writeConfigFile({
      version: 3,
      host: [be.url],
      extra_config: {
        router: { disable_access_log: true },
        'security/cors': { allow_origins: ['https://app.example'] },
        'auth/api-keys': { keys: [{ key: 'worker-key-1', roles: ['user'] }] },
      },
      endpoints: [{ endpoint: '/p', extra_config: { 'auth/api-keys': { roles: ['user'] } }, backend: [{ url_pattern: '/p' }] }],
    });
    gw = await startCli(['run', '-c', file, '-p', '0', '--workers', '2', '--cache-dir', cache()], { PORTICO_WORKERS: '2' });
    base = `http://127.0.0.1:${gw.port}`;
  });

  after(async () => {
    gw.child.kill('SIGTERM');
    await gw.exited;
    await be.close();
  });

  it('every worker refuses without a key and serves with one, with the CORS headers', async () => {
    const pids = new Set<number>();
    for (let i = 0; i < 40 && pids.size < 2; i++) {
      pids.add(((await get(base, '/__health')).json() as { worker: { pid: number } }).worker.pid);
      const refused = await get(base, '/p', { origin: 'https://app.example' });
      assert.equal(refused.status, 401);
      assert.equal(refused.headers['access-control-allow-origin'], 'https://app.example');
      const served = await get(base, '/p', { authorization: 'Bearer worker-key-1', origin: 'https://app.example' });
      assert.equal(served.status, 200);
      assert.deepEqual(served.json(), { ok: true });
    }
    assert.equal(pids.size, 2, 'both workers answered');
  });
});
