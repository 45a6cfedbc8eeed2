import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeRss, goTime } from '../../src/transform/rss-decode.ts';
import { ATOM, ATOM_DECODED, billionLaughs, RDF, RDF_DECODED, RSS2, RSS2_DECODED } from '../fixtures/feeds.ts';

const b = (s: string): Buffer => Buffer.from(s, 'utf8');

test('RSS 2.0: every mapped feed and item field, with the dc, content and itunes fallbacks', () => {
  assert.deepEqual(decodeRss(b(RSS2)), RSS2_DECODED);
});

test('Atom 1.0: subtitle, rights, logo, xml:lang, rel defaults, enclosures, published falling back to updated', () => {
  assert.deepEqual(decodeRss(b(ATOM)), ATOM_DECODED);
});

test('RDF (RSS 1.0): items beside the channel, Dublin Core fields, the root image', () => {
  assert.deepEqual(decodeRss(b(RDF)), RDF_DECODED);
});

test('RDF: items come in the order of the channel\'s rdf:Seq (the table of contents RSS 1.0 requires)', () => {
  const toc = RDF.replace(/<rdf:li resource="([^"]+)"\/>\s*<rdf:li resource="([^"]+)"\/>/, '<rdf:li resource="$2"/><rdf:li resource="$1"/>');
  assert.deepEqual((decodeRss(b(toc)).items as { title: string }[]).map((i) => i.title), ['Putting RDF to Work', 'Processing Inclusions with XSLT']);
  const none = RDF.replace(/<items>[\s\S]*<\/items>/, '');
  assert.equal((decodeRss(b(none)).items as unknown[]).length, 2);
});

test('the top-level keys are krakend-rss\'s, in Go\'s sorted order, whatever the feed has', () => {
  const keys = ['author', 'categories', 'copyright', 'custom', 'description', 'items', 'language', 'published', 'title', 'type', 'updated'];
  const bare = decodeRss(b('<rss version="2.0"><channel></channel></rss>'));
  assert.deepEqual(bare, { author: null, categories: null, copyright: '', custom: null, description: '', items: [], language: '', published: '', title: '', type: 'rss', updated: '' });
  assert.deepEqual(Object.keys(bare), keys);
  assert.deepEqual(decodeRss(b('<rss version="2.0"/> <!-- end -->\n')), bare);
  assert.deepEqual(decodeRss(b('<rss></rss>')), bare);
  assert.deepEqual(decodeRss(b('<feed/>')), { ...bare, type: 'atom' });
  assert.deepEqual(decodeRss(b('<feed xmlns="http://www.w3.org/2005/Atom"></feed>')), { ...bare, type: 'atom' });
  assert.deepEqual(decodeRss(b('<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"/>')), bare);
  assert.deepEqual(Object.keys(decodeRss(b(RSS2))), [...keys.slice(0, 5), 'img_url', ...keys.slice(5)]);
  // No link, links, generator or image object at the top: krakend-rss does not copy them.
  for (const k of ['link', 'links', 'generator', 'image', 'feedLink']) assert.equal(k in decodeRss(b(ATOM)), false, k);
});

test('feed author and image fallbacks: webMaster, dc:creator, itunes:author, itunes:image', () => {
  const rss = (channel: string): Record<string, unknown> =>
    decodeRss(b(`<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"><channel>${channel}</channel></rss>`));
  assert.deepEqual(rss('<webMaster>web@example.com</webMaster><dc:creator>X</dc:creator>').author, { email: 'web@example.com' });
  assert.deepEqual(rss('<dc:creator>Ann (ann@example.com)</dc:creator>').author, { name: 'Ann', email: 'ann@example.com' });
  assert.deepEqual(rss('<itunes:author>The Podcasters</itunes:author>').author, { name: 'The Podcasters' });
  const podcast = rss('<itunes:image href="https://example.com/cover.jpg"/>');
  assert.equal(podcast.img_url, 'https://example.com/cover.jpg');
  assert.equal('img_url' in rss('<title>x</title>'), false);
  assert.equal(rss('<dc:title>DC title</dc:title><dc:language>fr</dc:language><dc:rights>R</dc:rights>').title, 'DC title');
});

test('dates: gofeed\'s readings, written as Go writes a time.Time', () => {
  const utc: [string, string | undefined][] = [
    ['Mon, 02 Jan 2006 15:04:05 -0700', '2006-01-02T22:04:05Z'],
    ['Mon, 2 Jan 2006 15:04:05 +01:00', '2006-01-02T14:04:05Z'],
    ['2 Jan 2006 15:04 GMT', '2006-01-02T15:04:00Z'],
    ['Mon, 02 Jan 06 15:04:05 PDT', '2006-01-02T22:04:05Z'],
    ['Tue, 03 Jun 2003 09:39:21 GMT', '2003-06-03T09:39:21Z'],
    ['Thu, 01 Jan 70 00:00:00 UT', '1970-01-01T00:00:00Z'],
    ['Sat, 07 Sep 2002 00:00:01 XYZ', '2002-09-07T00:00:01Z'],
    ['Monday, 02 January 2006 15:04:05 MST', '2006-01-02T22:04:05Z'],
    ['January 2, 2006', '2006-01-02T00:00:00Z'],
    ['Jan 2, 2006 15:04:05 EST', '2006-01-02T20:04:05Z'],
    ['2006-01-02T15:04:05Z', '2006-01-02T15:04:05Z'],
    ['2006-01-02T15:04:05.123456789+02:00', '2006-01-02T13:04:05.123456789Z'],
    ['2006-01-02T15:04:05.100Z', '2006-01-02T15:04:05.1Z'],
    ['2006-01-02 15:04:05', '2006-01-02T15:04:05Z'],
    ['2006-01-02T15:04Z', '2006-01-02T15:04:00Z'],
    ['2006-01-02', '2006-01-02T00:00:00Z'],
    ['  2006-01-02T15:04:05-0700 ', '2006-01-02T22:04:05Z'],
    ['yesterday', undefined],
    ['2006-13-02', undefined],
    ['31 Apr 2006 10:00:00 GMT', undefined],
    ['Mon, 02 Foo 2006 15:04:05 GMT', undefined],
    ['2006-01-02T25:00:00Z', undefined],
    ['', undefined],
  ];
  for (const [text, want] of utc) assert.equal(goTime(text, true), want, text);
  // The translator's own parse (dc:date) keeps a numeric offset; named zones and Z are UTC.
  assert.equal(goTime('2006-01-02T15:04:05-07:00', false), '2006-01-02T15:04:05-07:00');
  assert.equal(goTime('2006-01-02T15:04:05+00:00', false), '2006-01-02T15:04:05Z');
  assert.equal(goTime('Mon, 02 Jan 2006 15:04:05 +0530', false), '2006-01-02T15:04:05+05:30');
  assert.equal(goTime('Mon, 02 Jan 2006 15:04:05 EST', false), '2006-01-02T20:04:05Z');
});

test('character sets: the XML declaration\'s encoding and UTF-16 byte order marks', () => {
  const latin1 = Buffer.concat([
    Buffer.from('<?xml version="1.0" encoding="ISO-8859-1"?><rss version="2.0"><channel><title>'),
    Buffer.from([0x43, 0x61, 0x66, 0xe9]), // "Café" in Latin-1
    Buffer.from('</title></channel></rss>'),
  ]);
  assert.equal(decodeRss(latin1).title, 'Café');
  const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('<rss version="2.0"><channel><title>Ünïcode</title></channel></rss>', 'utf16le')]);
  assert.equal(decodeRss(utf16).title, 'Ünïcode');
  const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), b('<rss version="2.0"><channel><title>bom</title></channel></rss>')]);
  assert.equal(decodeRss(bom).title, 'bom');
  assert.throws(() => decodeRss(b('<?xml version="1.0" encoding="x-no-such-charset"?><rss/>')), /unsupported encoding "x-no-such-charset"/);
});

test('the root element decides the format, as gofeed detects it', () => {
  // An Atom entry quoting RSS markup is still Atom.
  const quoting = `<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><entry><title>e</title><id>1</id><updated>2003-12-13T18:30:02Z</updated><content type="html"><![CDATA[<rss version="2.0"><channel>]]></content></entry></feed>`;
  const atom = decodeRss(b(quoting));
  assert.equal(atom.type, 'atom');
  assert.equal((atom.items as { content: string }[])[0].content, '<rss version="2.0"><channel>');
  const withProlog = `<?xml version="1.0"?>\n<!-- a comment -->\n<?xml-stylesheet href="s.xsl"?>\n<!DOCTYPE rss [<!ELEMENT rss ANY>]>\n<rss version="0.91"><channel><title>old</title></channel></rss>`;
  assert.equal(decodeRss(b(withProlog)).title, 'old');
});

test('bodies that are not feeds are decode errors that say why', () => {
  const cases: [string, RegExp][] = [
    ['', /not XML/],
    ['   ', /not XML/],
    ['hello', /not XML/],
    ['{"version":"https://jsonfeed.org/version/1.1","title":"x","items":[]}', /JSON Feed is not supported/],
    ['{"a":1}', /JSON Feed is not supported/],
    ['<html><body><rss version="2.0"></rss></body></html>', /root element <html> is not rss/],
    ['<?xml version="1.0"?><user><id>1</id></user>', /root element <user>/],
    ['<rss version="2.0"><channel><title>x</title><item><title>cut', /invalid feed/],
    ['<rss version="2.0"><channel><title>x</titl></channel></rss>', /invalid feed/],
    ['<feed xmlns="http://www.w3.org/2005/Atom"><entry>', /ends before <\/feed> \(truncated\)/],
    ['<rss version="2.0"><channel><title>x</title><item><title>y</title></item>', /ends before <\/rss> \(truncated\)/],
    ['<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><channel>', /ends before <\/rdf:RDF>/],
    ['<rss version="2.0"><channel><title>x</title></channel></rss><junk', /invalid feed/],
    ['<!-- never closed', /not XML/],
    ['<!DOCTYPE rss [ <!ENTITY a "b">', /not XML/],
  ];
  for (const [body, re] of cases) assert.throws(() => decodeRss(b(body)), re, JSON.stringify(body));
});

test('hostile XML: entity declarations are refused before parsing, deep nesting is an error', () => {
  const started = performance.now();
  assert.throws(() => decodeRss(b(billionLaughs())), /DOCTYPE declares entities/);
  assert.ok(performance.now() - started < 1000);
  const xxe = `<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><rss version="2.0"><channel><title>&xxe;</title></channel></rss>`;
  assert.throws(() => decodeRss(b(xxe)), /DOCTYPE declares entities/);
  // Without declarations an unknown reference stays text (nothing to expand), as in Go's decoder.
  assert.equal(decodeRss(b('<rss version="2.0"><channel><title>&lol9; &amp; more</title></channel></rss>')).title, '&lol9; & more');
  // The usual RSS 0.91 DOCTYPE names an external DTD, which is never fetched.
  const netscape = `<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" "http://my.netscape.com/publish/formats/rss-0.91.dtd"><rss version="0.91"><channel><title>old</title></channel></rss>`;
  assert.equal(decodeRss(b(netscape)).title, 'old');

  const depth = 100_000;
  const deep = `<rss version="2.0"><channel><item><title>t</title><x>${'<a>'.repeat(depth)}${'</a>'.repeat(depth)}</x></item></channel></rss>`;
  assert.throws(() => decodeRss(b(deep)), /invalid feed.*nested/);
  const unclosed = `<rss version="2.0"><channel><item>${'<a>'.repeat(depth)}`;
  assert.throws(() => decodeRss(b(unclosed)), /invalid feed/);
});
