// Feed backend bodies (`encoding: "rss"`), decoded into the shape KrakenD's
// krakend-rss gives: gofeed's universal parser (v1.1.3) turns the feed into a
// gofeed.Feed, and krakend-rss keeps these keys of it:
//
//   title, description, language, copyright   strings ("" when absent)
//   published, updated                          the feed's date strings as written
//   author      {name, email} or null           categories  [string] or null
//   custom      null (gofeed never fills it)    type        "rss" (RSS 0.9x-2.0 and RDF) or "atom"
//   img_url     only when the feed has an image
//   items       gofeed Items, with gofeed's JSON names, empty fields left out:
//     title, description, content, link, links, updated, updatedParsed,
//     published, publishedParsed, author, authors, guid, image {url, title},
//     categories, enclosures [{url, length, type}], dcExt
//
// The mapping rules are gofeed's (see docs/configuration.md "The rss backend
// encoding"); *Parsed dates are RFC 3339 strings as Go writes a time.Time.
// Differences, all documented: items carry no `extensions`/`itunesExt` trees,
// JSON Feed bodies are refused, author strings are split by feedsmith's rules.
//
// Parser: feedsmith (maintained, RSS 0.9x/2.0, Atom 0.3/1.0 and RDF with their
// namespaces, keeps each format's own structure so gofeed's per-format rules
// can be applied). It runs fast-xml-parser with entity processing off, so DTD
// entities are never expanded, and nesting deeper than 100 elements is an
// error; on top of that a DOCTYPE declaring entities is refused here and a body
// cut before its root's end tag is an error. Nothing is fetched.
// @rowanmanning/feed-parser expands DTD entities without a limit and normalizes
// into its own shape; rss-parser (xml2js) and feedparser (sax, streams) are
// older and heavier for the same result.

import type { AtomFeed, RdfFeed, RssFeed } from 'feedsmith';
import { lazyRequire } from '../shared/lazy-require.ts';

/** feedsmith (~15 MB resident, ~0.25 s to load) is loaded by the first feed, not by every gateway. */
const lib = lazyRequire<typeof import('feedsmith')>('feedsmith');
import type { Data } from './data.ts';

type RssDoc = RssFeed.Feed<string>;
type RssItem = RssFeed.Item<string>;
type RdfDoc = RdfFeed.Feed<string>;
type AtomDoc = AtomFeed.Feed<string>;
type AtomEntry = AtomFeed.Entry<string>;
type DcValues = NonNullable<RssItem['dc']>;

interface Person {
  name?: string;
  email?: string;
}

/** Decode one feed; throws an Error saying what was wrong (a backend decode error). */
export function decodeRss(body: Buffer): Data {
  const text = decodeText(body);
  const found = rootElement(text);
  const root = found?.name;
  if (found !== undefined && (root === 'rss' || root === 'rdf' || root === 'feed') && !rootClosed(text, found)) {
    // fast-xml-parser closes open elements at the end; Go's decoder (gofeed) fails.
    throw new Error(`invalid feed: the body ends before </${found.qname}> (truncated)`);
  }
  if (root === 'rss') return translateRss(parse(() => lib().parseRssFeed(text) as RssDoc, {}));
  if (root === 'rdf') return translateRss(rdfAsRss(parse(() => lib().parseRdfFeed(text) as RdfDoc, {})));
  if (root === 'feed') return translateAtom(parse(() => lib().parseAtomFeed(text) as AtomDoc, {}));
  if (text.trimStart().startsWith('{')) throw new Error('invalid feed: JSON Feed is not supported, only RSS, RDF and Atom');
  throw new Error(root === undefined ? 'invalid feed: not XML' : `invalid feed: root element <${root}> is not rss, rdf:RDF or feed`);
}

/**
 * With the root already checked, feedsmith's DetectError and ParseError mean
 * XML with nothing it recognizes (`<rss><channel></channel></rss>`): gofeed
 * reads that as an empty feed, so do we. Malformed XML is an error.
 */
function parse<T>(run: () => T, empty: T): T {
  try {
    return run();
  } catch (err) {
    if (err instanceof lib().ParseError || err instanceof lib().DetectError) return empty;
    const cause = (err as Error).cause as Error | undefined;
    throw new Error(`invalid feed: ${(err as Error).message}${cause?.message ? ` (${cause.message})` : ''}`);
  }
}

// --- body text -----------------------------------------------------------

/**
 * The body as text: UTF-16 by its byte order mark (or its first bytes), otherwise
 * the `encoding` of the XML declaration (WHATWG labels, as gofeed's charset
 * reader), otherwise UTF-8.
 */
function decodeText(body: Buffer): string {
  let label = 'utf-8';
  if ((body[0] === 0xff && body[1] === 0xfe) || (body[0] === 0x3c && body[1] === 0x00)) label = 'utf-16le';
  else if ((body[0] === 0xfe && body[1] === 0xff) || (body[0] === 0x00 && body[1] === 0x3c)) label = 'utf-16be';
  else if (!(body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf)) {
    const declared = /^\s*<\?xml[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._:-]+)["']/.exec(body.subarray(0, 256).toString('latin1'));
    if (declared && !/^utf-?16/i.test(declared[1])) label = declared[1];
  }
  let decoder: TextDecoder;
  try {
    decoder = new TextDecoder(label);
  } catch {
    throw new Error(`invalid feed: unsupported encoding "${label}"`);
  }
  return decoder.decode(body);
}

/**
 * The local name of the root element, lower-cased, as gofeed's feed type
 * detection reads it; undefined when the text does not start like XML.
 * feedsmith's own detection searches the whole text, so an Atom entry quoting
 * `<rss version=...>` in CDATA would pass for RSS there.
 */
interface Root {
  /** Local name, lower-cased. */
  name: string;
  /** The name as written. */
  qname: string;
  /** Where the start tag begins. */
  start: number;
}

function rootElement(text: string): Root | undefined {
  // A plain scan (no backtracking regex over a prolog that may be megabytes long).
  let pos = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  for (;;) {
    while (pos < text.length && isXmlSpace(text.charCodeAt(pos))) pos++;
    let end: number;
    if (text.startsWith('<?', pos)) end = endAfter(text, '?>', pos);
    else if (text.startsWith('<!--', pos)) end = endAfter(text, '-->', pos);
    else if (text.slice(pos, pos + 9).toUpperCase() === '<!DOCTYPE') {
      end = doctypeEnd(text, pos);
      // Entity declarations are how billion-laughs and external-entity bodies
      // work; no real feed declares any (gofeed leaves such references as text).
      if (end > 0 && /<!ENTITY/i.test(text.slice(pos, end))) throw new Error('invalid feed: the DOCTYPE declares entities, which are refused');
    } else break;
    if (end < 0) return undefined;
    pos = end;
  }
  const name = /<([A-Za-z_][\w.:-]*)/y;
  name.lastIndex = pos;
  const m = name.exec(text);
  if (!m) return undefined;
  const lower = m[1].toLowerCase();
  return { name: lower.slice(lower.indexOf(':') + 1), qname: m[1], start: pos };
}

/** Whether the text ends with the root's end tag (or is one empty root element), comments and PIs aside. */
function rootClosed(text: string, root: Root): boolean {
  let end = text.length;
  for (;;) {
    while (end > 0 && isXmlSpace(text.charCodeAt(end - 1))) end--;
    const tail = text.slice(Math.max(0, end - 3), end);
    if (tail === '-->') end = text.lastIndexOf('<!--', end - 3);
    else if (tail.endsWith('?>')) end = text.lastIndexOf('<?', end - 2);
    else break;
    if (end < 0) return false;
  }
  const close = new RegExp(`</${root.qname.replace(/[.]/g, '\\.')}\\s*>$`);
  if (close.test(text.slice(Math.max(0, end - root.qname.length - 64), end))) return true;
  return text.charCodeAt(end - 2) === 0x2f && text.indexOf('>', root.start) === end - 1;
}

function isXmlSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

function endAfter(text: string, close: string, from: number): number {
  const i = text.indexOf(close, from);
  return i < 0 ? -1 : i + close.length;
}

/** The end of `<!DOCTYPE ... [internal subset]>`: the first `>` outside the brackets. */
function doctypeEnd(text: string, from: number): number {
  let inSubset = false;
  for (let i = from; i < text.length; i++) {
    const c = text[i];
    if (c === '[') inSubset = true;
    else if (c === ']') inSubset = false;
    else if (c === '>' && !inSubset) return i + 1;
  }
  return -1;
}

// --- RSS 0.9x, 2.0 and RDF -------------------------------------------------

/** RDF (RSS 1.0) goes through gofeed's RSS translation; its fields are a subset of RSS's. */
function rdfAsRss(rdf: RdfDoc): RssDoc {
  return rdf as unknown as RssDoc;
}

function translateRss(rss: RssDoc): Data {
  const dc = rss.dc;
  const itunes = rss.itunes;
  const out: Data = {
    author: feedPerson(rss.managingEditor) ?? feedPerson(rss.webMaster) ?? textPerson(first(dc?.creators)) ?? textPerson(itunes?.author) ?? null,
    categories: nonEmpty([
      ...(rss.categories ?? []).map((c) => c.name ?? ''),
      ...(itunes?.keywords ?? []),
      ...(itunes?.categories ?? []).flatMap((c) => [c.text ?? '', ...(c.categories?.length ? [c.categories[0].text ?? ''] : [])]),
      ...(dc?.subjects ?? []),
    ]),
    copyright: rss.copyright ?? first(dc?.rights) ?? '',
    custom: null,
    description: rss.description ?? '',
  };
  if (rss.image !== undefined) out.img_url = rss.image.url ?? '';
  else if (itunes?.image !== undefined) out.img_url = itunes.image;
  out.items = (rss.items ?? []).map(rssItem);
  out.language = rss.language ?? first(dc?.languages) ?? '';
  out.published = rss.pubDate ?? '';
  out.title = rss.title ?? first(dc?.titles) ?? '';
  out.type = 'rss';
  out.updated = rss.lastBuildDate ?? first(dc?.dates) ?? '';
  return out;
}

function rssItem(it: RssItem): Data {
  const dc = it.dc;
  const dcDate = first(dc?.dates);
  const published = it.pubDate ?? dcDate;
  // gofeed's RSS parser converts pubDate to UTC; a dc:date keeps its offset.
  const publishedParsed = (it.pubDate !== undefined ? goTime(it.pubDate, true) : undefined) ?? (dcDate !== undefined ? goTime(dcDate, false) : undefined);
  const author = feedPerson(it.authors?.[0]) ?? textPerson(first(dc?.creators)) ?? textPerson(it.itunes?.author);
  const item: Data = {};
  set(item, 'title', it.title ?? first(dc?.titles));
  set(item, 'description', it.description ?? first(dc?.descriptions));
  set(item, 'content', it.content?.encoded);
  set(item, 'link', it.link);
  if (it.link !== undefined) item.links = [it.link];
  set(item, 'updated', dcDate);
  set(item, 'updatedParsed', dcDate !== undefined ? goTime(dcDate, false) : undefined);
  set(item, 'published', published);
  set(item, 'publishedParsed', publishedParsed);
  if (author !== undefined) {
    item.author = author;
    item.authors = [{ ...author }];
  }
  set(item, 'guid', it.guid?.value);
  if (it.itunes?.image !== undefined) item.image = { url: it.itunes.image };
  set(item, 'categories', nonEmpty([...(it.categories ?? []).map((c) => c.name ?? ''), ...(it.itunes?.keywords ?? []), ...(dc?.subjects ?? [])]) ?? undefined);
  if (it.enclosures?.length) item.enclosures = it.enclosures.map((e) => enclosure(e.url, e.length, e.type));
  if (dc !== undefined) set(item, 'dcExt', dublinCore(dc));
  return item;
}

/** gofeed's DublinCoreExtension: one list per element, empty ones left out. */
function dublinCore(dc: DcValues): Data | undefined {
  const ext: Data = {};
  const lists: [string, string[] | undefined][] = [
    ['title', dc.titles],
    ['creator', dc.creators],
    ['subject', dc.subjects],
    ['description', dc.descriptions],
    ['publisher', dc.publishers],
    ['contributor', dc.contributors],
    ['date', dc.dates],
    ['type', dc.types],
    ['format', dc.formats],
    ['identifier', dc.identifiers],
    ['source', dc.sources],
    ['language', dc.languages],
    ['relation', dc.relations],
    ['coverage', dc.coverage],
    ['rights', dc.rights],
  ];
  for (const [key, values] of lists) if (values?.length) ext[key] = [...values];
  return Object.keys(ext).length > 0 ? ext : undefined;
}

// --- Atom 0.3 and 1.0 ------------------------------------------------------

function translateAtom(atom: AtomDoc): Data {
  const out: Data = {
    author: atomPerson(atom.authors?.[0]) ?? null,
    categories: atom.categories ? atom.categories.map((c) => c.term ?? '') : null,
    copyright: atom.rights?.value ?? '',
    custom: null,
    description: atom.subtitle?.value ?? '',
  };
  if (atom.logo !== undefined) out.img_url = atom.logo;
  out.items = (atom.entries ?? []).map(atomItem);
  out.language = atom.xml?.lang ?? '';
  out.published = '';
  out.title = atom.title?.value ?? '';
  out.type = 'atom';
  out.updated = atom.updated ?? '';
  return out;
}

function atomItem(entry: AtomEntry): Data {
  // A link without rel is rel="alternate" (RFC 4287 4.2.7.2), as gofeed reads it.
  const links = (entry.links ?? []).map((l) => ({ ...l, rel: l.rel ?? 'alternate' }));
  const authors = (entry.authors ?? []).map(atomPerson).filter((p) => p !== undefined);
  const item: Data = {};
  set(item, 'title', entry.title?.value);
  set(item, 'description', entry.summary?.value);
  set(item, 'content', entry.content?.value);
  set(item, 'link', links.find((l) => l.rel === 'alternate')?.href);
  const hrefs = links.filter((l) => l.rel === 'alternate' || l.rel === 'self').map((l) => l.href ?? '');
  if (hrefs.length > 0) item.links = hrefs;
  set(item, 'updated', entry.updated);
  set(item, 'updatedParsed', entry.updated !== undefined ? goTime(entry.updated, true) : undefined);
  // gofeed falls back to <updated> when an entry has no <published>.
  const published = entry.published ?? entry.updated;
  set(item, 'published', published);
  set(item, 'publishedParsed', published !== undefined ? goTime(published, true) : undefined);
  if (authors.length > 0) {
    item.author = authors[0];
    item.authors = authors.map((a) => ({ ...a }));
  }
  set(item, 'guid', entry.id);
  set(item, 'categories', entry.categories ? entry.categories.map((c) => c.term ?? '') : undefined);
  const enclosures = links.filter((l) => l.rel === 'enclosure').map((l) => enclosure(l.href, l.length, l.type));
  if (enclosures.length > 0) item.enclosures = enclosures;
  return item;
}

// --- shared pieces ---------------------------------------------------------

function set(o: Data, key: string, value: unknown): void {
  if (value !== undefined && value !== '') o[key] = value;
}

function first(values: string[] | undefined): string | undefined {
  return values?.[0];
}

function nonEmpty(values: string[]): string[] | null {
  return values.length > 0 ? values : null;
}

function enclosure(url: string | undefined, length: number | undefined, type: string | undefined): Data {
  const e: Data = {};
  set(e, 'url', url);
  set(e, 'length', length === undefined ? undefined : String(length));
  set(e, 'type', type);
  return e;
}

/** A person feedsmith already split (RSS author, managingEditor, webMaster). */
function feedPerson(p: { name?: string; email?: string; link?: string } | undefined): Person | undefined {
  if (p === undefined) return undefined;
  const person: Person = {};
  const name = p.name ?? (p.email === undefined ? p.link : undefined);
  if (name) person.name = name;
  if (p.email) person.email = p.email;
  return person;
}

function atomPerson(p: { name?: string; email?: string } | undefined): Person | undefined {
  if (p === undefined) return undefined;
  const person: Person = {};
  if (p.name) person.name = p.name;
  if (p.email) person.email = p.email;
  return person;
}

/**
 * gofeed's name/address split of a free-text person (dc:creator,
 * itunes:author): "email (Name)", "Name (email)", "Name" or "email"; any other
 * text gives an empty person.
 */
function textPerson(text: string | undefined): Person | undefined {
  if (text === undefined || text === '') return undefined;
  let m: RegExpExecArray | null;
  if ((m = /^([^@]+@\S+)\s+\(([^@]+)\)$/.exec(text))) return { name: m[2], email: m[1] };
  if ((m = /^([^@]+)\s+\(([^@]+@[^)]+)\)$/.exec(text))) return { name: m[1], email: m[2] };
  if (/^[^@()]+$/.test(text)) return { name: text };
  if (/^[^@()]+@[^@()]+$/.test(text)) return { email: text };
  return {};
}

// --- dates -----------------------------------------------------------------

const MONTHS: Record<string, number> = {
  jan: 1, feb: 2, mar: 3, apr: 4, may: 5, jun: 6, jul: 7, aug: 8, sep: 9, sept: 9, oct: 10, nov: 11, dec: 12,
  january: 1, february: 2, march: 3, april: 4, june: 6, july: 7, august: 8, september: 9, october: 10, november: 11, december: 12,
};

// RFC 822's zone names. gofeed asks the host's time-zone database instead, where
// only EST and MST exist; there the others (EDT, CST, PDT, ...) count as +00:00.
const ZONES: Record<string, number> = { ut: 0, utc: 0, gmt: 0, z: 0, est: -300, edt: -240, cst: -360, cdt: -300, mst: -420, mdt: -360, pst: -480, pdt: -420 };

const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?\s*(.*)$/;
const DAY_FIRST = /^(?:[A-Za-z]+\.?,?\s+)?(\d{1,2})[\s-]+([A-Za-z]+)\.?[\s-]+(\d{4}|\d{2})(?:,?\s+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(.*)$/;
const MONTH_FIRST = /^(?:[A-Za-z]+\.?,?\s+)?([A-Za-z]+)\.?\s+(\d{1,2}),?\s+(\d{4})(?:,?\s+(\d{1,2}):(\d{2})(?::(\d{2}))?)?\s*(.*)$/;

/**
 * A feed date written the way Go's encoding/json writes a time.Time
 * (RFC 3339 with nanoseconds, trailing zeros dropped, "Z" for UTC), or
 * undefined when the text is not a date gofeed reads. `toUtc` is what gofeed's
 * parsers do for RSS pubDate and Atom dates; a date parsed by the translator
 * (dc:date) keeps its numeric offset. Named zones always end up in UTC.
 */
export function goTime(text: string, toUtc: boolean): string | undefined {
  const s = text.trim();
  let y: number, mo: number, d: number, h = 0, mi = 0, sec = 0, frac = '', zone = '';
  let m = ISO_DATE.exec(s);
  if (m) {
    [y, mo, d] = [+m[1], +m[2], +m[3]];
    if (m[4] !== undefined) [h, mi, sec, frac] = [+m[4], +m[5], +(m[6] ?? 0), m[7] ?? ''];
    zone = m[8];
  } else if ((m = DAY_FIRST.exec(s))) {
    const month = MONTHS[m[2].toLowerCase()];
    if (month === undefined) return undefined;
    [d, mo, y] = [+m[1], month, m[3].length === 2 ? twoDigitYear(+m[3]) : +m[3]];
    if (m[4] !== undefined) [h, mi, sec, frac] = [+m[4], +m[5], +(m[6] ?? 0), m[7] ?? ''];
    zone = m[8];
  } else if ((m = MONTH_FIRST.exec(s))) {
    const month = MONTHS[m[1].toLowerCase()];
    if (month === undefined) return undefined;
    [mo, d, y] = [month, +m[2], +m[3]];
    if (m[4] !== undefined) [h, mi, sec] = [+m[4], +m[5], +(m[6] ?? 0)];
    zone = m[7];
  } else {
    return undefined;
  }
  const offset = zoneOffset(zone);
  if (offset === undefined) return undefined;
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59) return undefined;
  const local = Date.UTC(y, mo - 1, d, h, mi, sec);
  if (new Date(local).getUTCDate() !== d) return undefined; // 31 April and the like
  const keep = !toUtc && offset.numeric ? offset.minutes : 0;
  return formatGoTime(local - offset.minutes * 60_000 + keep * 60_000, frac, keep);
}

function twoDigitYear(yy: number): number {
  return yy >= 69 ? 1900 + yy : 2000 + yy;
}

function zoneOffset(zone: string): { minutes: number; numeric: boolean } | undefined {
  const z = zone.trim();
  if (z === '') return { minutes: 0, numeric: false };
  const num = /^(?:(?:GMT|UTC)\s*)?([+-])(\d{2}):?(\d{2})?$/i.exec(z);
  if (num) {
    const minutes = (+num[2] * 60 + +(num[3] ?? 0)) * (num[1] === '-' ? -1 : 1);
    return { minutes, numeric: true };
  }
  if (/^[A-Za-z]{1,5}$/.test(z)) {
    const known = ZONES[z.toLowerCase()];
    if (z.length === 1 && known === undefined) return undefined;
    return { minutes: known ?? 0, numeric: false };
  }
  return undefined;
}

function formatGoTime(wallMs: number, frac: string, offsetMinutes: number): string {
  const t = new Date(wallMs);
  const p2 = (n: number): string => String(n).padStart(2, '0');
  const year = t.getUTCFullYear();
  let out = `${String(year).padStart(4, '0')}-${p2(t.getUTCMonth() + 1)}-${p2(t.getUTCDate())}T${p2(t.getUTCHours())}:${p2(t.getUTCMinutes())}:${p2(t.getUTCSeconds())}`;
  const digits = frac.replace(/0+$/, '');
  if (digits !== '') out += '.' + digits;
  if (offsetMinutes === 0) return out + 'Z';
  const a = Math.abs(offsetMinutes);
  return `${out}${offsetMinutes < 0 ? '-' : '+'}${p2(Math.floor(a / 60))}:${p2(a % 60)}`;
}
