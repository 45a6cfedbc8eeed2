// XML backend bodies, decoded into the shape KrakenD's mxj produces
// (github.com/clbanning/mxj, used by krakend-xml):
//   - the root element's name is the single top-level key;
//   - attributes become `-name` keys (namespace prefixes dropped);
//   - text of an element with attributes or children goes under `#text`,
//     text of a plain element is the value itself; whitespace is trimmed;
//   - repeated sibling elements become an array, in document order;
//   - every value stays a string (no number or boolean casting); an empty
//     element is "".
// Known differences from mxj (documented, deliberate):
//   - mixed content (`<a>x<b/>y</a>`): the text pieces are concatenated into
//     `#text`; mxj keeps only the text after the first child element;
//   - trailing content after the root element (`<a/>junk`) is an error here;
//     mxj stops reading after the first root and succeeds; a second root
//     element is ignored like mxj does;
//   - an element named `__proto__` is rejected (decode error) for safety;
//   - numeric character references and HTML named entities (&nbsp;) are
//     decoded; Go's strict decoder rejects unknown named entities.

import type { XMLParser } from 'fast-xml-parser';
import { lazyRequire } from '../shared/lazy-require.ts';
import type { Data } from './data.ts';

/** fast-xml-parser, loaded by the first XML body (shared/lazy-require.ts). */
const xmlLibrary = lazyRequire<typeof import('fast-xml-parser')>('fast-xml-parser');
let xmlParser: XMLParser | undefined;
const parser = (): XMLParser => (xmlParser ??= new (xmlLibrary().XMLParser)({
  ignoreAttributes: false,
  attributeNamePrefix: '-',
  textNodeName: '#text',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  removeNSPrefix: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  htmlEntities: true,
  strictReservedNames: false,
}));

/** Parse one XML document; throws on malformed XML or a body without a root element. */
export function decodeXml(text: string): Data {
  const valid = xmlLibrary().XMLValidator.validate(text);
  if (valid !== true) {
    const e = valid.err;
    throw new Error(`invalid XML: ${e.msg} (line ${e.line}, column ${e.col})`);
  }
  let parsed: unknown;
  try {
    parsed = parser().parse(text);
  } catch (err) {
    throw new Error(`invalid XML: ${(err as Error).message}`);
  }
  const doc = parsed as Data;
  for (const root in doc) {
    let value = doc[root];
    // Several root elements with the same name come back as an array: mxj
    // reads the first document only.
    if (Array.isArray(value)) value = value[0];
    return { [root]: value };
  }
  throw new Error('invalid XML: no root element');
}
