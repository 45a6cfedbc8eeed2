// bin/portico.js turns on Node's compile cache, so later starts (and every
// worker) skip the type-stripping compiler.

import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli } from '../helpers/process.ts';

function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name);
}

test('the compile cache is written where NODE_COMPILE_CACHE says, and used by the next start', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'portico-ccache-'));
  const first = await runCli(['version'], { NODE_COMPILE_CACHE: dir });
  assert.equal(first.code, 0, first.stderr);
  const cached = files(dir);
  assert.ok(cached.length >= 10, `expected cached modules, found ${cached.length}`);
  const second = await runCli(['version'], { NODE_COMPILE_CACHE: dir, NODE_DEBUG_NATIVE: 'COMPILE_CACHE' });
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stderr, /cache for .*main\.ts was accepted/, 'the second start reads main.ts from the cache');
});

test('NODE_DISABLE_COMPILE_CACHE turns it off', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'portico-ccache-'));
  const r = await runCli(['version'], { NODE_COMPILE_CACHE: dir, NODE_DISABLE_COMPILE_CACHE: '1' });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(files(dir).length, 0);
});
