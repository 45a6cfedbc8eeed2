// Content negotiation for `output_encoding: negotiate`.
//
// KrakenD (lura router/gin negotiatedRender + gin NegotiateFormat) offers
// application/json, text/plain (rendered as YAML) and application/xml, picks
// the first Accept entry matching an offer and IGNORES q-values. Portico reads
// the same three formats plus the usual XML/YAML media types and honours
// q-values (RFC 9110): the highest q wins, ties go to the entry listed first,
// q=0 excludes. For q-less headers the result is the same as KrakenD's.
//
//   application/json, application/*, */*            -> json
//   application/xml, text/xml                       -> xml
//   text/plain, text/*                              -> yaml (as gin/lura)
//   application/yaml, application/x-yaml, text/yaml, text/x-yaml -> yaml
//   missing, empty, nothing acceptable              -> json
//
// Results are cached per distinct Accept value (bounded), so a busy endpoint
// parses each header shape once.

export type Format = 'json' | 'xml' | 'yaml';

const MEDIA: ReadonlyMap<string, Format> = new Map<string, Format>([
  ['application/json', 'json'],
  ['application/*', 'json'],
  ['*/*', 'json'],
  ['*', 'json'],
  ['application/xml', 'xml'],
  ['text/xml', 'xml'],
  ['text/plain', 'yaml'],
  ['text/*', 'yaml'],
  ['application/yaml', 'yaml'],
  ['application/x-yaml', 'yaml'],
  ['text/yaml', 'yaml'],
  ['text/x-yaml', 'yaml'],
]);

const CACHE_LIMIT = 512;
const cache = new Map<string, Format>();

export function negotiate(accept: string | undefined): Format {
  if (accept === undefined || accept === '') return 'json';
  let f = cache.get(accept);
  if (f === undefined) {
    f = parse(accept);
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(accept, f);
  }
  return f;
}

function parse(accept: string): Format {
  let best: Format = 'json';
  let bestQ = 0;
  for (const part of accept.split(',')) {
    const semi = part.indexOf(';');
    const type = (semi < 0 ? part : part.slice(0, semi)).trim().toLowerCase();
    const format = MEDIA.get(type);
    if (format === undefined) continue;
    const q = semi < 0 ? 1 : qOf(part.slice(semi + 1));
    if (q > bestQ) {
      best = format;
      bestQ = q;
    }
  }
  return best;
}

/** The q parameter of a media range's parameter list; 1 when absent or unreadable. */
function qOf(params: string): number {
  for (const p of params.split(';')) {
    const eq = p.indexOf('=');
    if (eq < 0 || p.slice(0, eq).trim().toLowerCase() !== 'q') continue;
    const raw = p.slice(eq + 1).trim();
    const q = Number(raw);
    if (raw === '' || Number.isNaN(q)) return 1;
    return Math.min(Math.max(q, 0), 1);
  }
  return 1;
}
