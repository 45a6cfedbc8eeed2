// The file store across restarts, its directory lock, a corrupted file, and a
// clean shutdown that answers held watches.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { controlPlane } from '../../src/cli/control-plane.ts';
import { call, capture, config, okReport, runEntry, startControlPlane, stopAll, tempDir } from './support.ts';

describe('control plane with the file store', () => {
  after(stopAll);

  it('versions, history and node reports survive a restart; numbering continues', async () => {
    const dir = tempDir('cp-restart');
    const first = await startControlPlane(['--store', dir]);
    const v1 = (await call(first.url, '/v1/config', { body: config('a'), headers: { 'x-portico-message': 'one' } })).json();
    const v2 = (await call(first.url, '/v1/config', { body: config('b') })).json();
    assert.equal((await call(first.url, '/v1/nodes/gw-1/report', { method: 'POST', body: okReport(2, v2.hash) })).status, 204);
    assert.equal(await first.stop(), 0);
    assert.deepEqual(readdirSync(join(dir, 'configs')), ['0000000001.json', '0000000002.json']);
    assert.deepEqual(readdirSync(dir).sort(), ['configs', 'nodes'], 'lock released, no temp files');

    const second = await startControlPlane(['--store', dir]);
    const latest = (await call(second.url, '/v1/config')).json();
    assert.equal(latest.version, 2);
    assert.deepEqual(latest.config, config('b'));
    const h = (await call(second.url, '/v1/configs')).json();
    assert.deepEqual(h.configs.map((c: any) => [c.version, c.hash, c.message]), [[2, v2.hash, undefined], [1, v1.hash, 'one']]);
    assert.deepEqual((await call(second.url, '/v1/nodes')).json().nodes.map((n: any) => [n.node, n.applied_version]), [['gw-1', 2]]);
    assert.equal((await call(second.url, '/v1/config', { body: config('c') })).json().version, 3);
  });

  it('a second control plane on the same directory is refused; a lock left by a killed one is taken over', async () => {
    const dir = tempDir('cp-lock');
    const owner = await startControlPlane(['--store', dir]);
    const r = await runEntry(['control-plane', '--listen', '127.0.0.1:0', '--store', dir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`in use by another control plane \\(pid ${owner.child.pid}`));
    await owner.stop('SIGKILL');
    const next = await startControlPlane(['--store', dir]);
    assert.equal((await call(next.url, '/v1/configs')).status, 200);
  });

  it('a config file that does not match its hash stops the start, naming the file', async () => {
    const dir = tempDir('cp-corrupt');
    const cp = await startControlPlane(['--store', dir]);
    await call(cp.url, '/v1/config', { body: config('a') });
    await cp.stop();
    const file = join(dir, 'configs', '0000000001.json');
    writeFileSync(file, readFileSync(file, 'utf8').replace('"/a"', '"/evil"'));
    const r = await runEntry(['control-plane', '--listen', '127.0.0.1:0', '--store', dir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /0000000001\.json does not match its hash/);
  });

  it('SIGTERM answers held watches with 204 and exits 0', async () => {
    const cp = await startControlPlane(['--store', tempDir('cp-stop')]);
    await call(cp.url, '/v1/config', { body: config('a') });
    // one plain call, one over a keep-alive connection (fetch), which must not delay the exit
    const held = [call(cp.url, '/v1/watch?after=1&node=a'), fetch(`${cp.url}/v1/watch?after=1&node=b`)];
    await new Promise((r) => setTimeout(r, 150));
    const t0 = Date.now();
    const code = cp.stop('SIGTERM');
    assert.deepEqual((await Promise.all(held)).map((r) => r.status), [204, 204]);
    assert.equal(await code, 0);
    assert.ok(Date.now() - t0 < 2000, `stopped in ${Date.now() - t0} ms`);
    assert.match(cp.output(), /"msg":"shutting down","signal":"SIGTERM"/);
  });

  it('usage errors exit 2 with a message, before opening anything', async () => {
    const bad = [['--listen', 'nowhere'], ['--store', '/tmp/x', '--etcd', 'http://127.0.0.1:1'], ['--etcd', 'localhost:2379'], ['--etcd-prefix', 'portico', '--etcd', 'http://127.0.0.1:1'], ['--watch-hold', 'forever'], ['--admin-token', ''], ['--bogus']];
    for (const args of bad) {
      const { code, stderr } = await capture((io) => controlPlane(args, {}, io.err));
      assert.equal(code, 2, args.join(' '));
      assert.match(stderr, /^portico control-plane: .+\n\nUsage:/, args.join(' '));
    }
  });
});

