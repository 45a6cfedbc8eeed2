// Tokens: 401 when missing, 403 when wrong, for the admin and the data-plane
// API; without an admin token, only loopback clients may read or write.

import assert from 'node:assert/strict';
import { networkInterfaces } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { call, config, okReport, startControlPlane, stopAll, tempDir, type ControlPlaneProcess } from './support.ts';

const ADMIN = 'admin-secret';
const NODE = 'node-secret';

describe('control plane auth', () => {
  let cp: ControlPlaneProcess;
  let open: ControlPlaneProcess;
  before(async () => {
    [cp, open] = await Promise.all([
      // the admin token from the environment, the node token from the flag
      startControlPlane(['--store', tempDir('cp-auth'), '--node-token', NODE], { PORTICO_ADMIN_TOKEN: ADMIN }),
      startControlPlane(['--store', tempDir('cp-open'), '--listen', ':0', '--insecure']),
    ]);
  });
  after(stopAll);

  it('admin API with a token: 401 without (Bearer challenge), 403 wrong, nothing stored', async () => {
    for (const [method, path, body] of [['GET', '/v1/config'], ['GET', '/v1/configs'], ['GET', '/v1/nodes'], ['PUT', '/v1/config', config('a')], ['POST', '/v1/rollback/1']] as const) {
      const none = await call(cp.url, path, { method, body });
      assert.equal(none.status, 401, `${method} ${path}`);
      assert.equal(none.headers['www-authenticate'], 'Bearer');
      assert.match(none.json().error, /admin token/);
      assert.equal((await call(cp.url, path, { method, body, token: 'nope' })).status, 403, `${method} ${path}`);
      assert.equal((await call(cp.url, path, { method, body, token: NODE })).status, 403, `node token on ${method} ${path}`);
      assert.equal((await call(cp.url, path, { method, body, headers: { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` } })).status, 401);
    }
    assert.equal((await call(cp.url, '/v1/configs', { token: ADMIN })).json().total, 0);
    assert.equal((await call(cp.url, '/v1/config', { body: config('a'), token: ADMIN })).status, 201);
    assert.equal((await call(cp.url, '/v1/config', { headers: { authorization: `bearer ${ADMIN}` } })).status, 200);
  });

  it('data-plane API with a token: 401 without, 403 wrong (the admin token too)', async () => {
    for (const [method, path, body] of [['GET', '/v1/watch?after=0&node=n1'], ['POST', '/v1/nodes/n1/report', okReport(1, 'a'.repeat(64))]] as const) {
      assert.equal((await call(cp.url, path, { method, body })).status, 401, path);
      assert.equal((await call(cp.url, path, { method, body, token: 'nope' })).status, 403, path);
      assert.equal((await call(cp.url, path, { method, body, token: ADMIN })).status, 403, path);
    }
    assert.equal((await call(cp.url, '/v1/watch?after=0&node=n1', { token: NODE })).status, 200);
    assert.equal((await call(cp.url, '/v1/nodes/n1/report', { method: 'POST', body: okReport(1, 'a'.repeat(64)), token: NODE })).status, 204);
    assert.equal((await call(cp.url, '/v1/health')).status, 200, 'health needs no token');
  });

  it('without an admin token: reads and writes only from loopback', async () => {
    assert.equal((await call(open.url, '/v1/config', { body: config('a') })).status, 201, 'loopback write');
    const address = Object.values(networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
    if (!address) return; // no non-loopback interface to call from
    const remote = `http://${address}:${open.port}`;
    const w = await call(remote, '/v1/config', { body: config('b') });
    assert.equal(w.status, 403);
    assert.match(w.json().error, /needs --admin-token .* not on loopback/);
    assert.equal((await call(remote, '/v1/rollback/1', { method: 'POST' })).status, 403);
    for (const path of ['/v1/config', '/v1/configs', '/v1/configs/1', '/v1/configs/1/diff/1', '/v1/nodes']) {
      assert.equal((await call(remote, path)).status, 403, `${path}: configurations carry secrets`);
    }
    assert.equal((await call(open.url, '/v1/config')).json().version, 1, 'loopback reads');
    assert.equal((await call(remote, '/v1/watch?after=0')).status, 200, 'no node token: the data-plane API is open');
  });
});
