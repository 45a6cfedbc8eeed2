// Config versions, in-process on a DataPlane: versioned offers apply only when
// newer, a hash that does not match the content is rejected, unchanged file
// content changes nothing, and versions keep increasing across restarts that
// share a last-known-good directory.

import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { configHash } from '../../src/lifecycle/canonical.ts';
import { DataPlane, type OfferOutcome } from '../../src/lifecycle/data-plane.ts';
import { FileSource, type ReadOutcome } from '../../src/lifecycle/file-source.ts';
import { LastKnownGood } from '../../src/lifecycle/last-known-good.ts';
import type { TestBackend } from '../helpers/backend.ts';
import { captureLog, configFor, discard, servedTag, startEchoBackend, tempDir } from '../helpers/lifecycle-support.ts';

const IGNORED = 'config version not newer than the current one, ignored';

describe('config versions', () => {
  let be: TestBackend;
  let cap: ReturnType<typeof captureLog>;
  const planes: DataPlane[] = [];

  function newPlane(lkgDir?: string): DataPlane {
    const plane = new DataPlane({
      listenIp: '127.0.0.1',
      port: 0,
      env: {},
      syncEnabled: true,
      staleAfterMs: 60_000,
      accessLogOut: discard(),
      lastKnownGood: lkgDir === undefined ? undefined : new LastKnownGood(lkgDir),
    });
    planes.push(plane);
    return plane;
  }

  async function listen(plane: DataPlane): Promise<string> {
    return `http://127.0.0.1:${await plane.listen()}`;
  }

  function applied(o: OfferOutcome | ReadOutcome): number {
    assert.equal(o.kind, 'applied', JSON.stringify(o));
    return (o as Extract<OfferOutcome, { kind: 'applied' }>).snapshot.version;
  }

  before(async () => {
    be = await startEchoBackend();
  });
  beforeEach(() => {
    cap = captureLog();
  });
  afterEach(async () => {
    cap.restore();
    await Promise.all(planes.splice(0).map((p) => p.shutdown(0)));
  });
  after(() => be.close());

  it('explicit versions: newer applies; equal and older are ignored (never applied), logged once per version', async () => {
    const plane = newPlane();
    const offer = (tag: string, version: number) => plane.offer({ source: 'control-plane', label: 'cp', document: configFor(be.url, tag), version });

    assert.equal(applied(await offer('v5', 5)), 5);
    const base = await listen(plane);
    assert.equal(await servedTag(base), 'v5');
    assert.equal(applied(await offer('v6', 6)), 6);
    assert.equal(await servedTag(base), 'v6');
    const hash6 = plane.current!.hash;
    const appliedAt6 = plane.current!.appliedAt;
    const appliedLines = cap.find('config applied').length;

    for (const [tag, version] of [['equal', 6], ['older', 3], ['older-again', 3], ['equal-again', 6], ['oldest', 1]] as const) {
      const o = await offer(tag, version);
      assert.equal(o.kind, 'ignored', `${tag} (version ${version})`);
      assert.match((o as { reason: string }).reason, new RegExp(`version ${version} is not newer than 6`));
      assert.equal(await servedTag(base), 'v6', `${tag} is never served`);
      assert.equal(plane.current!.version, 6);
      assert.equal(plane.current!.hash, hash6);
      assert.equal(plane.current!.appliedAt, appliedAt6);
    }
    assert.equal(cap.find('config applied').length, appliedLines, 'nothing was applied');
    const ignored = cap.find(IGNORED);
    assert.deepEqual(ignored.map((e) => e.offered).sort(), [1, 3, 6], 'one log line per ignored version');
    assert.ok(ignored.every((e) => e.current === 6 && e.source === 'control-plane'));
    const h = plane.health();
    assert.equal(h.status, 'ok', 'an ignored offer is not a rejection');
    assert.equal(h.rejected, null);

    assert.equal(applied(await offer('v9', 9)), 9, 'versions may skip');
    assert.equal(await servedTag(base), 'v9');
  });

  it('a hash that does not match the content is rejected; the same content with its true hash applies', async () => {
    const plane = newPlane();
    const doc1 = configFor(be.url, 'one');
    const doc2 = configFor(be.url, 'two');
    applied(await plane.offer({ source: 'control-plane', label: 'cp', document: doc1, version: 1, hash: configHash(doc1) }));
    const base = await listen(plane);

    const bad = await plane.offer({ source: 'control-plane', label: 'cp', document: doc2, version: 2, hash: configHash(doc1) });
    assert.equal(bad.kind, 'rejected');
    assert.match((bad as { errors: string[] }).errors.join('\n'), new RegExp(`content hash ${configHash(doc2)} does not match the announced hash ${configHash(doc1)}`));
    assert.equal(await servedTag(base), 'one');
    assert.equal(plane.current!.version, 1);
    const h = plane.health() as { status: string; rejected: { version: number; hash: string; source: string } };
    assert.equal(h.status, 'degraded');
    assert.equal(h.rejected.version, 2);
    assert.equal(h.rejected.hash, configHash(doc2), 'health shows the hash the content really has');
    assert.equal(h.rejected.source, 'control-plane');

    // The hash is of the canonical, comment-stripped document: key order and comments do not matter.
    const reordered = { '@comment': 'same content', endpoints: doc2.endpoints, timeout: doc2.timeout, version: 3 };
    assert.equal(applied(await plane.offer({ source: 'control-plane', label: 'cp', document: reordered, version: 2, hash: configHash(doc2) })), 2);
    assert.equal(plane.current!.hash, configHash(doc2));
    assert.equal(await servedTag(base), 'two');
    assert.equal(plane.health().status, 'ok', 'a good config ends the rejection');
    assert.equal(plane.health().rejected, null);
  });

  it('unchanged file content is a no-op (re-read, SIGHUP-style forced read, reformatted or commented file)', async () => {
    const dir = tempDir('versions-same');
    const cache = join(dir, 'cache');
    const file = join(dir, 'portico.json');
    const doc = configFor(be.url, 'same');
    writeFileSync(file, JSON.stringify(doc));
    const plane = newPlane(cache);
    const source = new FileSource(file, plane, { debounceMs: 20 });
    assert.equal(applied(await source.read()), 1);
    const first = plane.current!;
    const lkg = join(cache, 'last-known-good.json');
    const lkgBefore = readFileSync(lkg, 'utf8');
    const lkgMtime = statSync(lkg).mtimeMs;
    const appliedLines = cap.find('config applied').length;

    assert.deepEqual(await source.read(), { kind: 'unchanged' }, 'the same text again');
    assert.deepEqual(await source.read(true), { kind: 'unchanged' }, 'a forced read (SIGHUP) of the same content');
    writeFileSync(file, JSON.stringify({ '@comment': 'only a comment and the layout changed', version: 3, endpoints: doc.endpoints, timeout: doc.timeout }, null, 4));
    assert.deepEqual(await source.read(), { kind: 'unchanged' }, 'reformatted, reordered, commented: same hash');

    assert.equal(plane.current, first, 'the very same snapshot is current');
    assert.equal(plane.current!.version, 1);
    assert.equal(cap.find('config applied').length, appliedLines, 'nothing was applied');
    assert.equal(readFileSync(lkg, 'utf8'), lkgBefore, 'the LKG is not rewritten');
    assert.equal(statSync(lkg).mtimeMs, lkgMtime);

    writeFileSync(file, JSON.stringify(configFor(be.url, 'changed')));
    assert.equal(applied(await source.read()), 2, 'new content gets the next version');
  });

  it('versions increase monotonically across restarts on the same LKG directory', async () => {
    const cache = tempDir('versions-restart');
    const docX = configFor(be.url, 'x');
    const docY = configFor(be.url, 'y');
    const docZ = configFor(be.url, 'z');
    const fileOffer = (plane: DataPlane, doc: unknown, pretty = false) =>
      plane.offer({ source: 'file', label: 'portico.json', text: JSON.stringify(doc, null, pretty ? 2 : undefined) });
    const stored = () => JSON.parse(readFileSync(join(cache, 'last-known-good.json'), 'utf8'));

    // First life: X then Y.
    let plane = newPlane(cache);
    assert.equal(await plane.loadLastKnownGood(), undefined);
    assert.equal(applied(await fileOffer(plane, docX)), 1);
    assert.equal(applied(await fileOffer(plane, docY)), 2);
    await plane.shutdown(0);
    assert.equal(stored().version, 2);
    assert.equal(stored().hash, configHash(docY));

    // Restart with the same content (reformatted): the LKG's version is kept.
    plane = newPlane(cache);
    assert.equal((await plane.loadLastKnownGood())?.version, 2);
    assert.equal(applied(await fileOffer(plane, docY, true)), 2);
    assert.equal(plane.current!.hash, configHash(docY));
    await plane.shutdown(0);
    assert.equal(stored().version, 2);

    // Restart with different content, even content seen before: a higher version, never a reused one.
    plane = newPlane(cache);
    await plane.loadLastKnownGood();
    assert.equal(applied(await fileOffer(plane, docX)), 3);
    await plane.shutdown(0);
    assert.equal(stored().version, 3);
    assert.equal(stored().hash, configHash(docX));

    // And once more, with new content, then a reload in the same life.
    plane = newPlane(cache);
    await plane.loadLastKnownGood();
    assert.equal(applied(await fileOffer(plane, docZ)), 4);
    assert.equal(applied(await fileOffer(plane, docY)), 5);
    const base = await listen(plane);
    assert.equal(await servedTag(base), 'y');
    assert.equal(stored().version, 5);

    // A restart that has to fall back on the LKG serves it under its own version,
    // and the next file after that continues from there.
    await plane.shutdown(0);
    plane = newPlane(cache);
    await plane.loadLastKnownGood();
    const broken = await plane.offer({ source: 'file', label: 'portico.json', text: '{"version": 3, "endpoints": [' });
    assert.equal(broken.kind, 'rejected');
    const restored = await plane.restoreLastKnownGood();
    assert.equal(applied(restored), 5);
    assert.equal(plane.current!.source, 'last-known-good');
    assert.equal(applied(await fileOffer(plane, docZ)), 6);
  });

  it(
    'a restored LKG later confirmed by the file (same content) keeps its version and is reported as from the file',
    async () => {
      const cache = tempDir('versions-confirm');
      const doc = configFor(be.url, 'same');
      let plane = newPlane(cache);
      await plane.loadLastKnownGood();
      assert.equal(applied(await plane.offer({ source: 'file', label: 'portico.json', text: JSON.stringify(doc) })), 1);
      await plane.shutdown(0);

      plane = newPlane(cache);
      await plane.loadLastKnownGood();
      assert.equal((await plane.offer({ source: 'file', label: 'portico.json', text: '{' })).kind, 'rejected');
      assert.equal(applied(await plane.restoreLastKnownGood()), 1);
      // The file is fixed back to exactly the LKG's content.
      await plane.offer({ source: 'file', label: 'portico.json', text: JSON.stringify(doc) });
      const h = plane.health() as { status: string; config: { source: string; version: number } };
      assert.equal(h.status, 'ok');
      assert.equal(h.config.version, 1, 'same content, same version');
      assert.equal(h.config.source, 'file', 'the file serves this config now, not the fallback');
    },
  );

  it('a versioned source is compared with the restored LKG version', async () => {
    const cache = tempDir('versions-lkg-cp');
    let plane = newPlane(cache);
    await plane.loadLastKnownGood();
    applied(await plane.offer({ source: 'control-plane', label: 'cp', document: configFor(be.url, 'cp10'), version: 10 }));
    await plane.shutdown(0);

    plane = newPlane(cache);
    assert.equal((await plane.loadLastKnownGood())?.version, 10);
    assert.equal(applied(await plane.restoreLastKnownGood()), 10);
    const base = await listen(plane);
    const old = await plane.offer({ source: 'control-plane', label: 'cp', document: configFor(be.url, 'cp9'), version: 9 });
    assert.equal(old.kind, 'ignored');
    assert.equal(await servedTag(base), 'cp10');
    assert.equal(applied(await plane.offer({ source: 'control-plane', label: 'cp', document: configFor(be.url, 'cp11'), version: 11 })), 11);
    assert.equal(await servedTag(base), 'cp11');
  });
});
