// Output renderers, one per endpoint output_encoding, chosen at compile time
// (lura router/gin/render.go, krakend-xml for xml). `data` is undefined when
// there is no response data at all.
//
// json             compact JSON.stringify, no trailing newline; {} without data.
//                  (Go additionally escapes < > & as \u003c...; not reproduced.)
// json-collection  the `collection` value alone as JSON; [] when the key is
//                  missing or there is no data (null stays null, as in lura).
// string           the `content` value when it is a string, else an empty body.
// xml              see xml-encode.ts. `application/xml` without a charset, as
//                  KrakenD's krakend-xml renderer sends it; a negotiated XML answer
//                  is `application/xml; charset=utf-8`, as gin's (lura's negotiation).
// yaml             YAML of the data ({} without data), keys sorted and 4-space
//                  indents like Go's yaml.v3 (used by gin).
// negotiate        json / xml / yaml by the Accept header, see accept.ts.

import type { OutputEncoding } from '../config/types.ts';
import { lazyRequire } from '../shared/lazy-require.ts';
import { negotiate } from './accept.ts';
import type { Data } from './data.ts';
import { renderXml } from './xml-encode.ts';

export interface Rendered {
  contentType: string;
  body: string | Buffer;
}

export type Renderer = (data: Data | undefined, accept: string | undefined) => Rendered;

export const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';
export const TEXT_CONTENT_TYPE = 'text/plain; charset=utf-8';
/** output_encoding xml (krakend-xml). */
export const XML_CONTENT_TYPE = 'application/xml';
/** negotiate, answered in XML (gin's XML renderer). */
export const NEGOTIATED_XML_CONTENT_TYPE = 'application/xml; charset=utf-8';
/** gin's YAML renderer since 1.10 (RFC 9512's type; application/x-yaml before). */
export const YAML_CONTENT_TYPE = 'application/yaml; charset=utf-8';

export function compileRenderer(enc: Exclude<OutputEncoding, 'no-op'>): Renderer {
  switch (enc) {
    case 'json':
      return renderJson;
    case 'json-collection':
      return renderJsonCollection;
    case 'string':
      return renderString;
    case 'xml':
      return renderXmlBody;
    case 'yaml':
      return renderYaml;
    case 'negotiate':
      return renderNegotiated;
  }
}

function renderJson(data: Data | undefined): Rendered {
  return { contentType: JSON_CONTENT_TYPE, body: data === undefined ? '{}' : JSON.stringify(data) };
}

function renderJsonCollection(data: Data | undefined): Rendered {
  const col = data === undefined ? undefined : data.collection;
  return { contentType: JSON_CONTENT_TYPE, body: col === undefined ? '[]' : JSON.stringify(col) };
}

function renderString(data: Data | undefined): Rendered {
  const content = data === undefined ? undefined : data.content;
  return { contentType: TEXT_CONTENT_TYPE, body: typeof content === 'string' ? content : '' };
}

function renderXmlBody(data: Data | undefined, contentType = XML_CONTENT_TYPE): Rendered {
  return { contentType, body: renderXml(data ?? {}) };
}

/** yaml, loaded by the first YAML answer (shared/lazy-require.ts). */
const yaml = lazyRequire<typeof import('yaml')>('yaml');
const YAML_OPTIONS = { indent: 4, sortMapEntries: true } as const;

function renderYaml(data: Data | undefined): Rendered {
  return { contentType: YAML_CONTENT_TYPE, body: yaml().stringify(data ?? {}, YAML_OPTIONS) };
}

function renderNegotiated(data: Data | undefined, accept: string | undefined): Rendered {
  switch (negotiate(accept)) {
    case 'xml':
      return renderXmlBody(data, NEGOTIATED_XML_CONTENT_TYPE);
    case 'yaml':
      return renderYaml(data);
    default:
      return renderJson(data);
  }
}
