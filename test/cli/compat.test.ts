// portico check --compat: every namespace of a file, where it is used, and
// what this version does with it.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runCli } from '../helpers/process.ts';

const dir = mkdtempSync(join(tmpdir(), 'portico-compat-'));
function file(name: string, content: unknown): string {
  const p = join(dir, name);
  writeFileSync(p, JSON.stringify(content, null, 2));
  return p;
}

const backend = (extra: Record<string, unknown> = {}) => ({ host: ['http://127.0.0.1:9'], url_pattern: '/x', extra_config: extra });

describe('portico check --compat', () => {
  const mixed = file('mixed.json', {
    version: 3,
    extra_config: {
      router: { return_error_msg: true },
      'security/cors': { allow_origins: ['*'] },
      'telemetry/gelf': { address: 'x:12201' },
      'auth/validator': { alg: 'RS256', jwk_url: 'https://x/jwks' },
      routr: {},
      '@comment': 'not a namespace',
    },
    endpoints: [
      { endpoint: '/a', extra_config: { 'governance/quota': {} }, backend: [backend({ 'qos/circuit-breaker': { interval: 60, timeout: 10, max_errors: 1 } })] },
      { endpoint: '/b', backend: [backend({ 'qos/circuit-breaker': { interval: 60, timeout: 10, max_errors: 1 } })] },
    ],
  });

  it('lists every namespace with its level, its uses and its status; refusals make it exit 1', async () => {
    const r = await runCli(['check', '--compat', mixed]);
    assert.equal(r.code, 1, 'a policy this version lacks (and a misplaced one) would be refused');
    const line = (ns: string) => r.stdout.split('\n').find((l) => l.startsWith(`| \`${ns}\``)) ?? '';
    assert.match(line('router'), /\| service \| `\$\.extra_config\.router` \| implemented \| docs\/configuration\.md \|/);
    assert.match(line('security/cors'), /implemented, with differences \| docs\/namespaces\/security-cors\.md#differences-from-krakend/);
    assert.match(line('telemetry/gelf'), /ignored/);
    assert.match(line('auth/validator'), /misplaced \| a policy that belongs at endpoint level: refused/);
    assert.match(line('routr'), /ignored \| unknown namespace/);
    assert.match(line('governance/quota'), /endpoint \| `\$\.endpoints\[0\]\.extra_config\["governance\/quota"\]` \| NOT SUPPORTED/);
    assert.match(line('qos/circuit-breaker'), /backend \| 2 \(first: `\$\.endpoints\[0\]\.backend\[0\]\.extra_config\["qos\/circuit-breaker"\]`\)/, 'uses grouped');
    assert.ok(!r.stdout.includes('@comment'), 'comment keys are not namespaces');
  });

  it('--json gives the rows', async () => {
    const r = await runCli(['check', '--compat', mixed, '--json']);
    const doc = JSON.parse(r.stdout) as { rows: { namespace: string; status: string; severity: string }[]; refused: number };
    assert.equal(doc.rows.length, 8, 'one row per use: 5 at service level, 1 endpoint, 2 backends');
    assert.equal(doc.refused, 2);
    const quota = doc.rows.find((x) => x.namespace === 'governance/quota')!;
    assert.equal(quota.status, 'unsupported');
    assert.equal(quota.severity, 'error');
  });

  it('exits 0 for a file whose namespaces all run', async () => {
    const ok = file('ok.json', { version: 3, extra_config: { 'security/cors': { allow_origins: ['*'] } }, endpoints: [{ endpoint: '/a', backend: [backend()] }] });
    const r = await runCli(['check', '--compat', ok]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /implemented, with differences: 1/);
  });
});
