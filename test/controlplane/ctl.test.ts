// `portico ctl` end to end against a real control plane (with an admin token):
// most commands run in-process (fast) over real sockets; the wiring through
// bin/portico.js and the exit codes are checked with real processes.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ctl } from '../../src/cli/ctl.ts';
import { freePort } from '../helpers/etcd.ts';
import { runCli } from '../helpers/process.ts';
import { call, capture, config, okReport, startControlPlane, stopAll, tempDir, writeTemp, type ControlPlaneProcess } from './support.ts';

const TOKEN = 'ctl-secret';

describe('portico ctl', () => {
  let cp: ControlPlaneProcess;
  let dir: string;
  const run = (...args: string[]) => capture((io) => ctl([...args, '--url', cp.url, '--token', TOKEN], {}, io));
  before(async () => {
    dir = tempDir('ctl');
    // through bin/portico.js: checks the `control-plane` wiring in main.ts
    cp = await startControlPlane(['--store', tempDir('ctl-store'), '--admin-token', TOKEN], {}, { viaBin: true });
  });
  after(stopAll);

  it('publish: a new version, then unchanged; YAML files too', async () => {
    const file = writeTemp(dir, 'a.json', config('a'));
    const r = await run('publish', '-f', file, '-m', 'first', '--author', 'alice');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^published version 1 \(hash [0-9a-f]{12}\)\n$/);
    const again = await run('publish', '-f', file);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /^unchanged: version 1 already has this content/);
    const yaml = writeTemp(dir, 'b.yaml', 'version: 3\nendpoints:\n  - endpoint: /b\n    backend:\n      - host: ["http://backend:8000"]\n        url_pattern: /b\n');
    const y = await run('publish', '-f', yaml, '--json');
    assert.equal(y.code, 0, y.stderr);
    assert.equal(JSON.parse(y.stdout).version, 2);
  });

  it('publish: an invalid file exits 1 with every error, located in the file', async () => {
    const file = writeTemp(dir, 'bad.json', '{\n  "version": 3,\n  "timeout": "soon",\n  "endpoints": [{ "endpoint": "/x", "backend": [] }]\n}');
    const r = await run('publish', '-f', file);
    assert.equal(r.code, 1);
    const lines = r.stderr.trim().split('\n');
    assert.match(lines[0], /^portico ctl: 400: invalid configuration: 2 error\(s\)$/);
    assert.ok(lines[1].startsWith(`${file}:3:`), lines[1]);
    assert.match(lines[2], /\$\.endpoints\[0\]\.backend/);
    const missing = await run('publish', '-f', `${dir}/nope.json`);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot read .*nope\.json: ENOENT/);
  });

  it('publish --if-match: 409 exits 1 naming the latest', async () => {
    const r = await run('publish', '-f', writeTemp(dir, 'c.json', config('c')), '--if-match', '1');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /409: If-Match failed: the newest version is 2/);
  });

  it('history: a table, newest first, the latest marked; --json', async () => {
    const r = await run('history');
    assert.equal(r.code, 0);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0], /^VERSION\s+CREATED\s+HASH\s+AUTHOR\s+MESSAGE$/);
    assert.match(lines[1], /^2\*\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+[0-9a-f]{12}/);
    assert.match(lines[2], /^1\s+.*alice\s+first$/);
    const j = await run('history', '--json', '--limit', '1');
    assert.deepEqual(JSON.parse(j.stdout).configs.map((c: any) => c.version), [2]);
  });

  it('get: the config (latest or a version) on stdout, its metadata on stderr; 404 exits 1', async () => {
    const latest = await run('get');
    assert.equal(latest.code, 0);
    assert.deepEqual(JSON.parse(latest.stdout), { version: 3, endpoints: [{ endpoint: '/b', backend: [{ host: ['http://backend:8000'], url_pattern: '/b' }] }] });
    assert.match(latest.stderr, /^version 2, hash [0-9a-f]{64}, created /);
    const one = await run('get', '1', '--json');
    assert.equal(JSON.parse(one.stdout).version, 1);
    const missing = await run('get', '99');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /404: no version 99/);
    assert.match((await run('get', 'x')).stderr, /400: .*positive integer/);
  });

  it('diff and rollback', async () => {
    const d = await run('diff', '1', '2');
    assert.equal(d.code, 0);
    assert.equal(d.stdout, 'version 1 -> 2: changed (endpoints: 1 added, 1 removed; service settings changed)\nservice:\n  - timeout: "3s" (inherited by 1 endpoint)\n+ GET /b\n- GET /a\n');
    const r = await run('rollback', '1');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^rolled back to version 1: published as version 3/);
    assert.equal((await call(cp.url, '/v1/config', { token: TOKEN })).json().message, 'rollback to version 1');
    const none = await run('rollback', '77');
    assert.equal(none.code, 1);
    assert.match(none.stderr, /404/);
  });

  it('nodes: a table with status, applied version, how far behind, rejection', async () => {
    const empty = await run('nodes');
    assert.match(empty.stdout, /no node has reported yet/);
    const latest = (await call(cp.url, '/v1/config', { token: TOKEN })).json();
    await call(cp.url, '/v1/nodes/gw-1/report', { method: 'POST', body: okReport(2, 'b'.repeat(64)) });
    await call(cp.url, '/v1/nodes/gw-2/report', { method: 'POST', body: { applied_version: 3, hash: latest.hash, status: 'rejected', rejected_version: 4, error: 'line one\nline two' } });
    const r = await run('nodes');
    assert.equal(r.code, 0);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines[0], 'latest version: 3');
    assert.match(lines[1], /^NODE\s+STATUS\s+APPLIED\s+BEHIND\s+HASH\s+LAST SEEN\s+REJECTED$/);
    assert.match(lines[2], /^gw-1\s+ok\s+2\s+1\s+b{12}\s+\d+s ago\s+-$/);
    assert.match(lines[3], /^gw-2\s+rejected\s+3\s+0\s+[0-9a-f]{12}\s+\d+s ago\s+v4: line one \/ line two$/);
    const j = JSON.parse((await run('nodes', '--json')).stdout);
    assert.deepEqual(j.nodes.map((n: any) => n.node), ['gw-1', 'gw-2']);
  });

  it('tokens and URLs from the environment; a wrong token exits 1 with the 403', async () => {
    const env = { PORTICO_CONTROL_PLANE: cp.url, PORTICO_ADMIN_TOKEN: TOKEN };
    assert.equal((await capture((io) => ctl(['history', '--json'], env, io))).code, 0);
    const wrong = await capture((io) => ctl(['history'], { ...env, PORTICO_ADMIN_TOKEN: 'nope' }, io));
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /403: wrong token/);
    const none = await capture((io) => ctl(['nodes', '--url', cp.url], {}, io));
    assert.equal(none.code, 1);
    assert.match(none.stderr, /401: this call needs an admin token/);
  });

  it('usage errors exit 2; an unreachable control plane exits 2', async () => {
    for (const args of [[], ['frobnicate'], ['publish'], ['diff', '1'], ['rollback'], ['get', '1', '2'], ['history', '--bogus']]) {
      const r = await capture((io) => ctl(args, {}, io));
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, /^portico ctl: .*\n\nUsage:/);
    }
    const port = await freePort(); // nothing listens there
    const r = await capture((io) => ctl(['history', '--url', `http://127.0.0.1:${port}`], {}, io));
    assert.equal(r.code, 2);
    assert.match(r.stderr, new RegExp(`cannot reach http://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
  });

  it('through bin/portico.js: output and exit codes', async () => {
    const ok = await runCli(['ctl', 'history', '--url', cp.url], { PORTICO_ADMIN_TOKEN: TOKEN });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^VERSION/);
    const refused = await runCli(['ctl', 'get', '99', '--url', cp.url, '--token', TOKEN]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /404: no version 99/);
  });
});
