import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { get } from '../helpers/http.ts';
import { runCli, startCli } from '../helpers/process.ts';
import { VERSION } from '../../src/version.ts';

const dir = mkdtempSync(join(tmpdir(), 'portico-cli-'));
function file(name: string, content: unknown): string {
  const p = join(dir, name);
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return p;
}

describe('portico CLI', () => {
  let be: TestBackend;
  before(async () => {
    be = await startBackend(async (req, res) => {
      if (req.url === '/slow') await sleep(700);
      json(res, { ok: true, url: req.url });
    });
  });
  after(() => be.close());

  it('version prints the version', async () => {
    const r = await runCli(['version']);
    assert.equal(r.code, 0);
    assert.equal(r.stdout.trim(), `Portico ${VERSION}`);
  });

  it('check: a valid file exits 0 with one OK line', async () => {
    const f = file('ok.json', { version: 3, endpoints: [{ endpoint: '/a', backend: [{ host: [be.url], url_pattern: '/a' }] }] });
    const r = await runCli(['check', '-c', f]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^OK/);
    assert.equal(r.stdout.trim().split('\n').length, 1);
  });

  it('check: lists every error with path, line:column, expected and found', async () => {
    const f = file(
      'bad.json',
      `{
  "version": 2,
  "timeout": "2 seconds",
  "endpoints": [
    { "endpoint": "/a/{id}", "backend": [] },
    { "endpoint": "/b", "backend": [{ "host": ["http://x"], "url_pattern": "/b/{missing}" }] }
  ]
}`,
    );
    const r = await runCli(['check', '-c', f]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /bad\.json:2:\d+.*\$\.version/);
    assert.match(r.stderr, /bad\.json:3:\d+.*\$\.timeout.*expected.*found.*2 seconds/);
    assert.match(r.stderr, /\$\.endpoints\[0\]\.backend/);
    assert.match(r.stderr, /\$\.endpoints\[1\]\.backend\[0\]\.url_pattern.*missing/);
  });

  it('check --lint turns unknown keys into errors', async () => {
    const f = file('unknown.json', { version: 3, colour: 'blue', endpoints: [{ endpoint: '/a', backend: [{ host: [be.url], url_pattern: '/a' }] }] });
    const plain = await runCli(['check', '-c', f]);
    assert.equal(plain.code, 0);
    assert.match(plain.stderr, /colour/);
    const lint = await runCli(['check', '-c', f, '--lint']);
    assert.equal(lint.code, 1);
    assert.match(lint.stderr, /colour/);
  });

  it('check compiles the file as run would: a missing key file fails it, naming the file', async () => {
    const missing = join(dir, 'no-such-jwks.json');
    const f = file('missing-keys.json', {
      version: 3,
      endpoints: [{ endpoint: '/a', extra_config: { 'auth/validator': { alg: 'RS256', jwk_local_path: missing } }, backend: [{ host: [be.url], url_pattern: '/a' }] }],
    });
    const r = await runCli(['check', '-c', f]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /missing-keys\.json: cannot serve: .*no-such-jwks\.json/);
    assert.doesNotMatch(r.stdout, /^OK/);
  });

  it('run refuses to start on a broken file and prints the check errors', async () => {
    const f = file('broken.json', { version: 3, endpoints: [{ endpoint: '/a', backend: [] }] });
    const r = await runCli(['run', '-c', f]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /\$\.endpoints\[0\]\.backend/);
  });

  it('run -p -d serves, and SIGTERM drains in-flight requests then exits 0', async () => {
    const f = file('serve.json', {
      version: 3,
      port: 1,
      host: [be.url],
      endpoints: [
        { endpoint: '/fast', backend: [{ url_pattern: '/fast' }] },
        { endpoint: '/slow', backend: [{ url_pattern: '/slow' }] },
      ],
    });
    const gw = await startCli(['run', '-c', f, '-p', '0', '-d']);
    const base = `http://127.0.0.1:${gw.port}`;
    assert.equal((await get(base, '/fast')).status, 200);
    assert.equal((await get(base, '/__debug/x')).status, 200, '-d enables /__debug');
    const inflight = get(base, '/slow');
    await sleep(150);
    gw.child.kill('SIGTERM');
    const r = await inflight;
    assert.equal(r.status, 200, 'the in-flight request finished');
    assert.deepEqual(r.json(), { ok: true, url: '/slow' });
    assert.equal(await gw.exited, 0);
    await assert.rejects(get(base, '/fast'), 'no longer listening');
  });

  it('PORTICO_PORT overrides the port', async () => {
    const f = file('env.json', { version: 3, port: 1, host: [be.url], endpoints: [{ endpoint: '/fast', backend: [{ url_pattern: '/fast' }] }] });
    const gw = await startCli(['run', '-c', f], { PORTICO_PORT: '0' });
    try {
      assert.equal((await get(`http://127.0.0.1:${gw.port}`, '/fast')).status, 200);
    } finally {
      gw.child.kill('SIGINT');
      assert.equal(await gw.exited, 0);
    }
  });
});
