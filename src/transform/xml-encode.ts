// Data rendered as XML the way KrakenD CE does for `output_encoding: xml`
// (krakend-xml gin render -> mxj Map.Xml):
//   - a map with exactly one key whose value is not an array is rendered with
//     that key as the root element (so XML decoded from a backend round-trips:
//     {"user": {...}} -> <user>...</user>); anything else goes under <doc>;
//   - `-name` keys with scalar values are attributes, `#text` is the element
//     text, every other key a child element; keys are sorted (mxj sorts, and
//     the output is then deterministic);
//   - arrays become repeated elements with the key's name (nested arrays are
//     flattened into the same repetition);
//   - null, {} and elements with only attributes self-close (`<a/>`); an empty
//     string gives `<a></a>`;
//   - numbers and booleans as their JS string form; text and attribute values
//     escaped (& < > " ').
// No XML declaration is written (mxj writes none).
// Not in mxj: key names that are not valid XML names get their invalid
// characters replaced by `_` (and a leading `_` when they start with a digit,
// `-` or `.`), so backend keys can never break the document.

import { isObject, type Data } from './data.ts';

const NAME = /^[\p{L}_:][\p{L}\p{N}_:.\-\u00B7]*$/u;
const NAME_BAD_CHAR = /[^\p{L}\p{N}_:.\-\u00B7]/gu;
const NEEDS_ESCAPE = /[&<>"']/;
const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };
const ESCAPE_ALL = /[&<>"']/g;
const NAME_START = /^[\p{L}_:]/u;
const escapeChar = (c: string): string => ESCAPES[c];

export function renderXml(data: Data): string {
  const keys = Object.keys(data);
  if (keys.length === 1 && !Array.isArray(data[keys[0]])) return element(keys[0], data[keys[0]]);
  return element('doc', data);
}

function element(rawName: string, v: unknown): string {
  if (Array.isArray(v)) {
    let out = '';
    for (let i = 0; i < v.length; i++) out += element(rawName, v[i]);
    return out;
  }
  const name = xmlName(rawName);
  if (v === null || v === undefined) return `<${name}/>`;
  if (isObject(v)) return objectElement(name, v);
  return `<${name}>${escape(scalar(v))}</${name}>`;
}

function objectElement(name: string, o: Data): string {
  const keys = Object.keys(o).sort();
  let attrs = '';
  let text = '';
  let children = '';
  for (const k of keys) {
    const v = o[k];
    if (k === '#text') {
      if (v !== null && v !== undefined) text = escape(typeof v === 'object' ? JSON.stringify(v) : scalar(v));
    } else if (k.length > 1 && k[0] === '-' && v !== null && typeof v !== 'object') {
      attrs += ` ${xmlName(k.slice(1))}="${escape(scalar(v))}"`;
    } else {
      children += element(k, v);
    }
  }
  if (text === '' && children === '') return `<${name}${attrs}/>`;
  return `<${name}${attrs}>${text}${children}</${name}>`;
}

function scalar(v: unknown): string {
  return typeof v === 'string' ? v : String(v);
}

function escape(s: string): string {
  return NEEDS_ESCAPE.test(s) ? s.replace(ESCAPE_ALL, escapeChar) : s;
}

function xmlName(k: string): string {
  if (NAME.test(k)) return k;
  const cleaned = k.replace(NAME_BAD_CHAR, '_');
  return NAME_START.test(cleaned) ? cleaned : `_${cleaned}`;
}
