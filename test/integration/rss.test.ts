import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { json, startBackend, type TestBackend } from '../helpers/backend.ts';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';
import { get } from '../helpers/http.ts';
import { logsDuring } from '../helpers/log-lines.ts';
import { ATOM, ATOM_DECODED, billionLaughs, RDF, RDF_DECODED, RSS2, RSS2_DECODED } from '../fixtures/feeds.ts';

const MiB = 1024 * 1024;
const HUGE = 100 * MiB;
const ITEM = (i: number) => `<item><title>Item ${i}</title><link>https://example.com/${i}</link><description>${'d'.repeat(200)}</description><pubDate>Mon, 06 Sep 2021 16:45:00 +0000</pubDate></item>`;
const BIG_ITEMS = 10_000;

describe('encoding "rss": feeds from a real backend through the gateway', () => {
  let be: TestBackend;
  let gw: TestGateway;
  let hugeWritten = 0;
  let hugeEnded!: () => void;
  const hugeDone = new Promise<void>((r) => (hugeEnded = r));

  before(async () => {
    const feeds: Record<string, [string | Buffer, string]> = {
      '/rss2': [RSS2, 'application/rss+xml'],
      '/atom': [ATOM, 'application/atom+xml; charset=utf-8'],
      '/rdf': [RDF, 'application/rdf+xml'],
      '/latin1': [Buffer.concat([Buffer.from('<?xml version="1.0" encoding="ISO-8859-1"?><rss version="2.0"><channel><title>Caf'), Buffer.from([0xe9]), Buffer.from('</title></channel></rss>')]), 'text/xml'],
      '/not-xml': ['this is not XML', 'text/plain'],
      '/json': ['{"title":"json, not a feed"}', 'application/json'],
      '/not-feed': ['<?xml version="1.0"?><user><id>1</id></user>', 'application/xml'],
      '/laughs': [billionLaughs(), 'application/rss+xml'],
      '/deep': [`<rss version="2.0"><channel><item>${'<a>'.repeat(200_000)}${'</a>'.repeat(200_000)}</item></channel></rss>`, 'application/rss+xml'],
      '/truncated': [RSS2.slice(0, RSS2.indexOf('</channel>')), 'application/rss+xml'],
      '/big': [`<rss version="2.0"><channel><title>big</title>${Array.from({ length: BIG_ITEMS }, (_, i) => ITEM(i)).join('')}</channel></rss>`, 'application/rss+xml'],
    };
    be = await startBackend(async (req, res) => {
      if (req.url === '/json-ok') return json(res, { fine: true });
      if (req.url === '/huge') {
        // 100 MB of a feed that never ends, written as fast as the gateway reads it.
        res.writeHead(200, { 'content-type': 'application/rss+xml' });
        res.write('<rss version="2.0"><channel><title>huge</title>');
        const chunk = Buffer.from(ITEM(0).repeat(Math.ceil((256 * 1024) / ITEM(0).length)));
        while (hugeWritten < HUGE && !res.destroyed) {
          hugeWritten += chunk.length;
          if (!res.write(chunk)) {
            await new Promise<void>((r) => {
              const go = () => {
                res.off('drain', go);
                res.off('close', go);
                r();
              };
              res.on('drain', go);
              res.on('close', go);
            });
          }
        }
        hugeEnded();
        return void res.end('</channel></rss>');
      }
      const feed = feeds[req.url!];
      if (!feed) return json(res, {}, 404);
      res.writeHead(200, { 'content-type': feed[1], 'content-length': Buffer.byteLength(feed[0]) });
      res.end(feed[0]);
    });
    const rss = (url: string, extra: Record<string, unknown> = {}) => ({ url_pattern: url, encoding: 'rss', ...extra });
    gw = await startGateway({
      host: [be.url],
      timeout: '10s',
      extra_config: { router: { return_error_msg: true }, 'portico/server': { max_backend_body_bytes: 4 * MiB } },
      endpoints: [
        { endpoint: '/rss2', backend: [rss('/rss2')] },
        { endpoint: '/atom', backend: [rss('/atom')] },
        { endpoint: '/rdf', backend: [rss('/rdf')] },
        { endpoint: '/latin1', backend: [rss('/latin1')] },
        { endpoint: '/collection', backend: [rss('/rss2', { is_collection: true })] },
        { endpoint: '/target', backend: [rss('/rss2', { target: 'author' })] },
        { endpoint: '/allow', backend: [rss('/atom', { allow: ['title', 'type', 'items'], mapping: { title: 'name' }, group: 'blog' })] },
        { endpoint: '/deny', backend: [rss('/rdf', { deny: ['items', 'custom', 'categories'] })] },
        {
          endpoint: '/merged',
          backend: [rss('/rss2', { allow: ['title'], group: 'news' }), rss('/atom', { allow: ['title', 'type'], group: 'blog' }), rss('/rdf', { allow: ['type'] })],
        },
        {
          endpoint: '/flatmap',
          backend: [rss('/rss2', { extra_config: { proxy: { flatmap_filter: [{ type: 'move', args: ['items.0.title', 'latest'] }, { type: 'del', args: ['items'] }] } } })],
        },
        { endpoint: '/xml-out', output_encoding: 'xml', backend: [rss('/atom', { allow: ['title', 'language'] })] },
        { endpoint: '/big', backend: [rss('/big', { allow: ['title', 'items'] })] },
        { endpoint: '/partial', backend: [{ url_pattern: '/json-ok' }, rss('/not-xml', { group: 'feed' })] },
        ...['/not-xml', '/json', '/not-feed', '/laughs', '/deep', '/truncated', '/huge'].map((p) => ({ endpoint: `/bad${p}`, backend: [rss(p)] })),
      ],
    });
  });
  after(async () => {
    await gw.close();
    await be.close();
  });

  it('RSS 2.0: every mapped field, in krakend-rss\'s shape', async () => {
    const r = await get(gw.url, '/rss2');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), RSS2_DECODED);
  });
  it('Atom 1.0', async () => assert.deepEqual((await get(gw.url, '/atom')).json(), ATOM_DECODED));
  it('RDF (RSS 1.0)', async () => assert.deepEqual((await get(gw.url, '/rdf')).json(), RDF_DECODED));
  it('the XML declaration\'s character set is honoured', async () => assert.equal((await get(gw.url, '/latin1')).json().title, 'Café'));

  it('is_collection changes nothing, as in krakend-rss', async () => assert.deepEqual((await get(gw.url, '/collection')).json(), RSS2_DECODED));
  it('target picks a decoded object', async () => assert.deepEqual((await get(gw.url, '/target')).json(), { name: 'Jane Editor', email: 'editor@example.com' }));
  it('allow, mapping and group', async () => {
    assert.deepEqual((await get(gw.url, '/allow')).json(), { blog: { name: ATOM_DECODED.title, type: 'atom', items: ATOM_DECODED.items } });
  });
  it('deny', async () => {
    const { items: _i, custom: _c, categories: _k, ...rest } = RDF_DECODED;
    assert.deepEqual((await get(gw.url, '/deny')).json(), rest);
  });
  it('several feed backends merge like any others', async () => {
    assert.deepEqual((await get(gw.url, '/merged')).json(), { news: { title: 'Example & Co' }, blog: { title: 'Atom <i>Example</i>', type: 'atom' }, type: 'rss' });
  });
  it('flatmap reaches into items (plain data here; Go structs in KrakenD)', async () => {
    const body = (await get(gw.url, '/flatmap')).json();
    assert.equal(body.latest, 'First post');
    assert.equal('items' in body, false);
  });
  it('any output encoding renders the decoded feed', async () => {
    const r = await get(gw.url, '/xml-out');
    assert.match(String(r.headers['content-type']), /xml/);
    assert.match(r.body, /<language>en-GB<\/language>/);
  });

  it(`a ${BIG_ITEMS}-item feed (${(BIG_ITEMS * ITEM(0).length / MiB).toFixed(1)} MiB) decodes whole`, async () => {
    const started = performance.now();
    const r = await get(gw.url, '/big');
    const ms = performance.now() - started;
    assert.equal(r.status, 200);
    const body = r.json();
    assert.equal(body.items.length, BIG_ITEMS);
    assert.deepEqual(body.items[BIG_ITEMS - 1], {
      title: `Item ${BIG_ITEMS - 1}`,
      description: 'd'.repeat(200),
      link: `https://example.com/${BIG_ITEMS - 1}`,
      links: [`https://example.com/${BIG_ITEMS - 1}`],
      published: 'Mon, 06 Sep 2021 16:45:00 +0000',
      publishedParsed: '2021-09-06T16:45:00Z',
    });
    assert.ok(ms < 20_000, `took ${ms} ms`);
  });

  const bad: [string, RegExp][] = [
    ['/not-xml', /invalid feed: not XML/],
    ['/json', /JSON Feed is not supported/],
    ['/not-feed', /root element <user> is not rss/],
    ['/laughs', /DOCTYPE declares entities/],
    ['/deep', /invalid feed: .*nested/],
    ['/truncated', /ends before <\/rss> \(truncated\)/],
  ];
  for (const [path, reason] of bad) {
    it(`${path}: a backend decode error (500, BACKEND_DECODE), and the gateway goes on`, async () => {
      const { records } = await logsDuring(async () => {
        const r = await get(gw.url, `/bad${path}`);
        assert.equal(r.status, 500);
        assert.match(r.body, reason);
      });
      assert.ok(records.some((l) => l.code === 'BACKEND_DECODE' && reason.test(String(l.msg))), JSON.stringify(records));
      assert.equal((await get(gw.url, '/rss2')).status, 200);
    });
  }

  it('a 100 MB feed is refused at max_backend_body_bytes, before any decoding, and the backend is cut off', async () => {
    const started = performance.now();
    const { records } = await logsDuring(async () => {
      const r = await get(gw.url, '/bad/huge');
      assert.equal(r.status, 500);
      assert.match(r.body, /larger than 4194304 bytes/);
    });
    assert.ok(performance.now() - started < 10_000);
    assert.deepEqual(records.map((l) => l.code), ['BACKEND_BODY_TOO_LARGE']);
    // The gateway closed the connection near its 4 MiB limit: the backend never got its 100 MB out.
    let timer: NodeJS.Timeout | undefined;
    const ended = await Promise.race([hugeDone.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 10_000)))]);
    clearTimeout(timer);
    assert.ok(ended, 'the backend was never cut off');
    assert.ok(hugeWritten < HUGE / 2, `backend wrote ${hugeWritten} bytes`);
    assert.equal((await get(gw.url, '/rss2')).status, 200);
  });

  it('a broken feed beside a good backend gives a partial answer', async () => {
    const { records } = await logsDuring(async () => {
      const r = await get(gw.url, '/partial');
      assert.equal(r.status, 200);
      assert.deepEqual(r.json(), { fine: true });
      assert.equal(r.headers['x-portico-completed'], 'false');
    });
    assert.deepEqual(records.map((l) => [l.code, l.partial]), [['BACKEND_DECODE', true]]);
  });
});
