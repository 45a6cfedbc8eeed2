// Backend body decoders, as KrakenD (lura encoding/*.go, krakend-xml) does it.
// Each decoder is chosen once per backend at compile time and THROWS an Error
// saying what was wrong when the body cannot be decoded (a backend error).
//
// json        a JSON object -> that object. Anything else is an error; so is an
//             empty body (Go's json.Decoder answers io.EOF). `null` decodes to
//             {} (Go leaves the map nil without an error).
// json + is_collection
//             a JSON array -> {collection: [...]}; `null` -> {collection: null}.
// safejson    any JSON: object -> itself, array -> {collection}, any other
//             value (string, number, bool, null) -> {result: value}. lura uses
//             the key `result` (encoding.go SafeJSONDecoder), not `content`.
// string      {content: body as UTF-8}.
// xml         see xml-decode.ts; with is_collection the parsed document goes
//             under `collection` (it is an object, not an array, as in lura).
// yaml        not a KrakenD CE decoder; KrakenD treats unknown encodings as
//             json, so we do too.
// no-op       never decoded (the caller streams it); the decoder throws.
// rss         RSS, RDF and Atom feeds in krakend-rss's shape, see
//             rss-decode.ts. krakend-rss ignores is_collection; so do we.
//
// Known differences from Go's decoder: numbers become JS numbers (Go keeps the
// literal with UseNumber), so integers beyond 2^53 lose precision and `1.0`
// re-encodes as `1`; Go ignores anything after the first JSON value, we reject
// trailing garbage (trailing whitespace is fine).

import type { Encoding } from '../config/types.ts';
import type { Data } from './data.ts';
import { decodeRss } from './rss-decode.ts';
import { decodeXml } from './xml-decode.ts';

export type Decoder = (body: Buffer) => Data;

export function compileDecoder(encoding: Encoding, isCollection: boolean): Decoder {
  switch (encoding) {
    case 'json':
    case 'yaml':
      return isCollection ? decodeJsonCollection : decodeJsonObject;
    case 'safejson':
      return decodeSafeJson;
    case 'string':
      return decodeString;
    case 'xml':
      return isCollection ? decodeXmlCollection : decodeXmlDocument;
    case 'no-op':
      return decodeNoop;
    case 'rss':
      return decodeRss;
  }
}

function parseJson(body: Buffer): unknown {
  if (body.length === 0) throw new Error('invalid JSON body: empty body (EOF)');
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new Error(`invalid JSON body: ${(err as Error).message}`);
  }
}

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function decodeJsonObject(body: Buffer): Data {
  const v = parseJson(body);
  if (v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) {
    throw new Error(`invalid JSON body: expected an object, got ${kindOf(v)}`);
  }
  return v as Data;
}

function decodeJsonCollection(body: Buffer): Data {
  const v = parseJson(body);
  if (v !== null && !Array.isArray(v)) {
    throw new Error(`invalid JSON body: expected an array (is_collection), got ${kindOf(v)}`);
  }
  return { collection: v };
}

function decodeSafeJson(body: Buffer): Data {
  const v = parseJson(body);
  if (Array.isArray(v)) return { collection: v };
  if (typeof v === 'object' && v !== null) return v as Data;
  return { result: v };
}

function decodeString(body: Buffer): Data {
  return { content: body.toString('utf8') };
}

function decodeXmlDocument(body: Buffer): Data {
  return decodeXml(body.toString('utf8'));
}

function decodeXmlCollection(body: Buffer): Data {
  return { collection: decodeXml(body.toString('utf8')) };
}

function decodeNoop(): Data {
  throw new Error('no-op backends are streamed, never decoded');
}
