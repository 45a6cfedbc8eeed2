// Shared helpers for the config tests (not a test file itself).
import assert from 'node:assert/strict';
import { loadConfigText, type LoadOptions } from '../../src/config/load.ts';
import type { ConfigIssue, LoadResult } from '../../src/config/types.ts';

/** Loads an object as pretty JSON with no environment overrides. */
export function load(config: unknown, opts: LoadOptions = {}): LoadResult {
  return loadConfigText(JSON.stringify(config, null, 2), 'test.json', { env: {}, ...opts });
}

/** A minimal valid configuration, extended by `extra` and with `endpoints` replaced when given. */
export function service(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: 3,
    host: ['http://backend:8080'],
    endpoints: [{ endpoint: '/ok', backend: [{ url_pattern: '/ok' }] }],
    ...extra,
  };
}

/** One endpoint with the given backends (or a single default backend). */
export function withEndpoint(endpoint: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return service({ endpoints: [{ endpoint: '/e', backend: [{ url_pattern: '/b' }], ...endpoint }], ...extra });
}

export function withBackend(backend: Record<string, unknown>, endpoint: Record<string, unknown> = {}): Record<string, unknown> {
  return withEndpoint({ backend: [{ url_pattern: '/b', ...backend }], ...endpoint });
}

/** Asserts exactly one issue at `path` among `issues` and returns it. */
export function issueAt(issues: ConfigIssue[], path: string): ConfigIssue {
  const found = issues.filter((i) => i.path === path);
  assert.equal(found.length, 1, `expected one issue at ${path}, got:\n${issues.map((i) => `${i.path}: ${i.expected} / ${i.found}`).join('\n')}`);
  return found[0] as ConfigIssue;
}

/** Asserts the config fails with an error at `path` and returns that error. */
export function errorAt(config: unknown, path: string, opts: LoadOptions = {}): ConfigIssue {
  const result = load(config, opts);
  assert.equal(result.config, undefined, 'config must be absent when there are errors');
  const issue = issueAt(result.errors, path);
  assert.equal(issue.severity, 'error');
  return issue;
}

export function assertValid(config: unknown, opts: LoadOptions = {}): LoadResult {
  const result = load(config, opts);
  assert.deepEqual(result.errors, [], 'expected no errors');
  assert.ok(result.config, 'expected a config');
  return result;
}
