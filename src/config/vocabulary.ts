// The closed lists of values KrakenD v3 accepts, restricted to what Portico serves.

import type { Encoding, HttpMethod, OutputEncoding } from './types.ts';

export const ENDPOINT_METHODS: readonly HttpMethod[] = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];
export const BACKEND_METHODS: readonly HttpMethod[] = [...ENDPOINT_METHODS, 'HEAD', 'OPTIONS'];

export const BACKEND_ENCODINGS: readonly Encoding[] = ['json', 'safejson', 'string', 'xml', 'no-op', 'yaml', 'rss'];
export const OUTPUT_ENCODINGS: readonly OutputEncoding[] = ['json', 'json-collection', 'string', 'xml', 'yaml', 'negotiate', 'no-op'];

/**
 * KrakenD Enterprise's "fast-json" is only a faster JSON codec with the same
 * observable output, so Portico reads it as "json".
 */
export const ENCODING_ALIASES: Readonly<Record<string, 'json'>> = { 'fast-json': 'json' };

export const BACKEND_ENCODING_NAMES: readonly string[] = [...BACKEND_ENCODINGS, ...Object.keys(ENCODING_ALIASES)];
export const OUTPUT_ENCODING_NAMES: readonly string[] = [...OUTPUT_ENCODINGS, ...Object.keys(ENCODING_ALIASES)];

export function toEncoding(name: string): Encoding {
  return (ENCODING_ALIASES[name] ?? name) as Encoding;
}

export function toOutputEncoding(name: string): OutputEncoding {
  return (ENCODING_ALIASES[name] ?? name) as OutputEncoding;
}
