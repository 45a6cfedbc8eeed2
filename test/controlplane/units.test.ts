// In-process units: the config diff, long-poll waiters, node report checks.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { diffConfigs } from '../../src/controlplane/diff.ts';
import { checkNodeReport, MAX_ERROR_CHARS } from '../../src/controlplane/node-report.ts';
import type { ConfigEnvelope } from '../../src/controlplane/protocol.ts';
import { Listeners, type ConfigStore } from '../../src/controlplane/store.ts';
import { WatchHub } from '../../src/controlplane/watch-hub.ts';

describe('diffConfigs', () => {
  const ep = (endpoint: string, backends: object[], extra: object = {}) => ({ endpoint, ...extra, backend: backends });
  const be = (url_pattern: string, extra: object = {}) => ({ host: ['http://h'], url_pattern, ...extra });

  it('keys endpoints by method and path, so the same path with two methods are two endpoints', () => {
    const a = { version: 3, endpoints: [ep('/x', [be('/a')]), ep('/x', [be('/b')], { method: 'post' })] };
    const b = { version: 3, endpoints: [ep('/x', [be('/a')], { method: 'GET' }), ep('/x', [be('/c')], { method: 'POST' })] };
    const d = diffConfigs(a, b);
    assert.deepEqual(d.endpoints.added, []);
    assert.deepEqual(d.endpoints.removed, []);
    assert.deepEqual(d.endpoints.changed.map((c) => c.endpoint), ['GET /x', 'POST /x']);
    assert.deepEqual(d.endpoints.changed[0], {
      endpoint: 'GET /x',
      keys: ['method'],
      fields: [{ path: 'method', change: 'added', to: 'GET' }],
      namespaces: { added: [], removed: [], changed: [] },
      backends: [],
      backends_reordered: false,
    });
  });

  it('backends removed from the end, and changed keys within a backend', () => {
    const a = { version: 3, endpoints: [ep('/x', [be('/a', { allow: ['id'] }), be('/b')])] };
    const b = { version: 3, endpoints: [ep('/x', [be('/a', { allow: ['id', 'name'], group: 'g' })])] };
    assert.deepEqual(diffConfigs(a, b).endpoints.changed[0].backends, [
      {
        index: 0,
        host: ['http://h'],
        url_pattern: '/a',
        change: 'changed',
        keys: ['allow', 'group'],
        fields: [
          { path: 'allow', change: 'changed', from: ['id'], to: ['id', 'name'] },
          { path: 'group', change: 'added', to: 'g' },
        ],
        namespaces: { added: [], removed: [], changed: [] },
      },
      { index: 1, host: ['http://h'], url_pattern: '/b', change: 'removed' },
    ]);
  });

  it('key order never counts; odd documents do not throw', () => {
    const a = { version: 3, timeout: '1s', endpoints: [ep('/x', [be('/a')])] };
    const b = { endpoints: [{ backend: [{ url_pattern: '/a', host: ['http://h'] }], endpoint: '/x' }], timeout: '1s', version: 3 };
    assert.equal(diffConfigs(a, b).identical, true);
    const odd = diffConfigs(null, { endpoints: [ep('/x', []), ep('/x', [])] });
    assert.deepEqual(odd.endpoints.added, ['GET /x', 'GET /x #2']);
    assert.deepEqual(odd.service, { changed: false, keys: [], fields: [], namespaces: { added: [], removed: [], changed: [] } });
  });
});

describe('WatchHub', () => {
  function fakeStore(latest?: ConfigEnvelope) {
    const listeners = new Listeners<ConfigEnvelope>();
    const store = { latest: async () => latest, subscribe: (fn: (e: ConfigEnvelope) => void) => listeners.add(fn) } as unknown as ConfigStore;
    return { store, publish: (e: ConfigEnvelope) => ((latest = e), listeners.emit(e)) };
  }
  const env = (version: number): ConfigEnvelope => ({ version, hash: 'h', created_at: '', config: {} });

  it('answers at once, from the future, after the hold, on publish, on abort and on close', async () => {
    const { store, publish } = fakeStore(env(2));
    const hub = new WatchHub(store);
    assert.deepEqual(await hub.wait(1, 10_000), { kind: 'newer', envelope: env(2) });
    assert.deepEqual(await hub.wait(3, 10_000), { kind: 'ahead', latest: 2 });
    assert.deepEqual(await hub.wait(2, 20), { kind: 'none' });
    const onPublish = hub.wait(2, 10_000);
    const older = hub.wait(2, 10_000);
    await new Promise((r) => setImmediate(r));
    assert.equal(hub.held, 2);
    publish(env(3));
    assert.deepEqual(await onPublish, { kind: 'newer', envelope: env(3) });
    assert.deepEqual(await older, { kind: 'newer', envelope: env(3) });
    const left = new AbortController();
    const aborted = hub.wait(3, 10_000, left.signal);
    await new Promise((r) => setImmediate(r));
    left.abort();
    assert.deepEqual(await aborted, { kind: 'none' });
    assert.equal(hub.held, 0);
    const held = hub.wait(3, 10_000);
    await new Promise((r) => setImmediate(r));
    hub.close();
    assert.deepEqual(await held, { kind: 'none' });
    assert.deepEqual(await hub.wait(0, 10_000), { kind: 'none' }, 'closed: nothing is held any more');
  });
});

describe('checkNodeReport', () => {
  const good = { applied_version: 3, hash: 'a'.repeat(64), status: 'ok', rejected_version: null, error: null };
  it('accepts a report, keeps nothing extra, cuts very long errors', () => {
    assert.deepEqual(checkNodeReport({ ...good, extra: 1 }), { ok: true, value: good });
    const long = checkNodeReport({ ...good, status: 'rejected', rejected_version: 4, error: 'e'.repeat(MAX_ERROR_CHARS + 10) });
    assert.ok(long.ok && long.value.error!.endsWith('(10 more characters cut)'));
  });
  it('names every bad field', () => {
    const r = checkNodeReport({ applied_version: 1.5, hash: 'ABC', status: 'fine', error: 7 });
    assert.equal(r.ok, false);
    assert.deepEqual(!r.ok && r.errors.map((e) => e.split(':')[0]), ['applied_version', 'rejected_version', 'hash', 'status', 'error']);
  });
});
