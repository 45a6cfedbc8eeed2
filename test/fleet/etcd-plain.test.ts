// A plain KrakenD/Portico configuration written into etcd by any tool (what
// `etcdctl put /portico/current "$(cat krakend.json)"` does), JSON or YAML: a
// gateway watching the key serves it with etcd's mod revision of the key as its
// version and the content hash computed on arrival. An invalid one is rejected
// with the key as the file name, the JSON path and line:column, and the gateway
// keeps serving; envelopes (the control plane's format) keep working, mixed
// with plain values in either order.

import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import { after, it } from 'node:test';
import { configHash } from '../../src/lifecycle/canonical.ts';
import type { TestBackend } from '../helpers/backend.ts';
import { ETCD_BIN, etcdAvailable, startEtcd, type TestEtcd } from '../helpers/etcd.ts';
import { startEchoBackend } from '../helpers/lifecycle-support.ts';
import { envelope, fleetConfig, ms, health, invalidConfig, publish, putCurrent, servedTag, startCp, startGateway, stopEverything, until, waitServing, type Gateway } from './support.ts';

const skip = etcdAvailable ? undefined : `etcd is not installed at ${ETCD_BIN} (apt-get install etcd-server, or set PORTICO_TEST_ETCD)`;
const KEY = '/portico/current';

let backend: TestBackend | undefined;
let etcd: TestEtcd | undefined;
let client: Etcd3 | undefined;
after(async () => {
  await stopEverything();
  client?.close();
  await etcd?.stop({ wipe: true });
  await backend?.close();
});

/** Write `text` as the key's value, as etcdctl put does; resolves to the key's new mod revision. */
async function put(text: string): Promise<number> {
  const res = await client!.put(KEY).value(text).exec();
  return Number(res.header.revision);
}

async function appliedAt(g: Gateway, version: number): Promise<void> {
  await until(`${g.id} on version ${version}`, async () => (await health(g.base)).config?.version === version, 5000);
}

it('plain JSON and YAML configurations written into etcd are served, versioned by mod revision; invalid ones are rejected with key:line:column; envelopes still work', { skip, timeout: 40_000 }, async (t) => {
  backend = await startEchoBackend();
  etcd = await startEtcd();
  client = new Etcd3({ hosts: etcd.url });
  const gw = await startGateway({ id: 'gw-plain', etcd: etcd.url });

  // --- plain JSON, formatted as a file would be ------------------------------
  const v1 = fleetConfig(backend.url, 'json');
  const writtenAt = performance.now();
  const rev1 = await put(JSON.stringify(v1, null, 2) + '\n');
  const servedAt = await waitServing(gw, 'json', 5000);
  t.diagnostic(`plain JSON served ${ms(servedAt - writtenAt)} after the put`);
  await appliedAt(gw, rev1);
  let h = await health(gw.base);
  assert.equal(h.status, 'ok');
  assert.deepEqual(h.config, { ...h.config, version: rev1, hash: configHash(v1), source: 'etcd' });
  const report = await until('a node report for the plain config', async () => {
    const r = JSON.parse((await client!.get('/portico/nodes/gw-plain').string()) ?? '{}');
    return r.applied_version === rev1 ? r : undefined;
  }, 5000);
  assert.equal(report.hash, configHash(v1));
  assert.equal(report.status, 'ok');

  // --- plain YAML -------------------------------------------------------------
  const yaml = `# written by hand\nversion: 3\ntimeout: 3s\nextra_config:\n  router:\n    disable_access_log: true\nendpoints:\n  - endpoint: /x\n    backend:\n      - host: ["${backend.url}"]\n        url_pattern: /yaml\n`;
  const rev2 = await put(yaml);
  await waitServing(gw, 'yaml', 5000);
  await appliedAt(gw, rev2);
  assert.equal((await health(gw.base)).config?.hash, configHash(fleetConfig(backend.url, 'yaml')), 'the same hash as the same content in JSON');

  // --- an invalid plain config: rejected with the key, line:column and JSON path --
  const rev3 = await put(JSON.stringify(invalidConfig(), null, 2));
  h = await until('the invalid config rejected', async () => {
    const h = await health(gw.base);
    return h.rejected?.version === rev3 ? h : undefined;
  }, 5000);
  assert.equal(h.status, 'degraded');
  assert.equal(h.config?.version, rev2, 'keeps serving the YAML one');
  assert.equal(h.rejected?.hash, configHash(invalidConfig()));
  assert.ok(h.rejected!.errors.some((e) => /^\/portico\/current:7:18 error \$\.endpoints\[0\]\.backend: /.test(e)), JSON.stringify(h.rejected!.errors));
  for (let i = 0; i < 5; i++) assert.equal(await servedTag(gw.base), 'yaml');
  const logged = await gw.logs.nth('config rejected', 1);
  assert.equal(logged.label, KEY);

  // --- not even a configuration: a syntax error, and a plain string ------------
  const rev4 = await put('{\n  "version": 3,\n  "endpoints": [\n');
  h = await until('the truncated JSON rejected', async () => {
    const h = await health(gw.base);
    return h.rejected?.version === rev4 ? h : undefined;
  }, 5000);
  assert.match(h.rejected!.errors[0]!, /^\/portico\/current:\d+:\d+ error \$: expected valid JSON/);
  const rev5 = await put('hello');
  h = await until('a plain string rejected', async () => {
    const h = await health(gw.base);
    return h.rejected?.version === rev5 ? h : undefined;
  }, 5000);
  assert.match(h.rejected!.errors.join('\n'), /^\/portico\/current:1:1 error \$: expected a configuration object.*found "hello"/m);
  assert.equal(h.config?.version, rev2);
  assert.equal(await servedTag(gw.base), 'yaml');

  // --- an envelope (lower version than the revisions so far): etcd is followed --
  const env = envelope(1, fleetConfig(backend.url, 'envelope'));
  await putCurrent(client, env);
  await waitServing(gw, 'envelope', 5000);
  await appliedAt(gw, 1);
  h = await health(gw.base);
  assert.equal(h.config?.hash, env.hash);
  assert.equal(h.rejected, null);

  // --- plain again after the envelope, then a control plane publishing over it --
  const rev6 = await put(JSON.stringify(fleetConfig(backend.url, 'plain-again')));
  await waitServing(gw, 'plain-again', 5000);
  await appliedAt(gw, rev6);
  const cp = await startCp(['--etcd', etcd.url, '--watch-hold', '500ms']);
  const published = await publish(cp.url, fleetConfig(backend.url, 'published'));
  assert.equal(published.status, 201, published.body);
  await waitServing(gw, 'published', 5000);
  await appliedAt(gw, published.version);
  assert.equal((await health(gw.base)).status, 'ok');

  assert.equal(await gw.stop(), 0);
  assert.equal(await cp.stop(), 0);
});
