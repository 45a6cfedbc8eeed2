// Validation messages never quote a secret: they reach logs, node reports and the control plane.

import assert from 'node:assert/strict';
import { it } from 'node:test';
import { formatIssue, loadConfigText } from '../../src/config/load.ts';

it('a secret of the wrong type, or inside a value shown whole, is described without its value', () => {
  const r = loadConfigText(
    JSON.stringify({
      version: 3,
      extra_config: { redis: { connection_pools: [{ name: 'a', address: 'r:6379', password: 987654321 }] } },
      endpoints: [
        {
          endpoint: '/a',
          backend: [{ host: ['http://x'], url_pattern: '/', extra_config: { 'modifier/martian': { 'header.Modifier': { scope: ['request'], name: 'Authorization', value: ['Bearer s3cr3t-t0ken'] } } } }],
        },
      ],
    }),
    'c.json',
    { env: {} },
  );
  const text = [...r.errors, ...r.warnings].map(formatIssue).join('\n');
  assert.match(text, /password: expected a string, found a number \(a secret: not shown\)/);
  assert.doesNotMatch(text, /987654321/);
  assert.doesNotMatch(text, /s3cr3t-t0ken/);
});
