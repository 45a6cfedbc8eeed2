// A request body's OpenAPI schema -> one self-contained JSON schema for
// `validation/json-schema`. References to `#/components/schemas/...` are
// rewritten to point into the schema's own `definitions` (OpenAPI 3.0, read
// as draft-04) or `$defs` (3.1, read as 2020-12), and every component they
// reach is copied there; nothing else is referenced.
//
// OpenAPI 3.0's schema dialect differs from JSON Schema in ways a validator
// would get wrong, so: `nullable: true` adds "null" to `type` (and `enum`); a
// `readOnly` property is not required in a request (it is only sent in
// answers); OpenAPI's own formats (int32, int64, float, double, byte, binary,
// password) are dropped (no JSON Schema validator knows them); a `pattern` Go's
// RE2 cannot run (KrakenD's, and Portico's, regular expressions) is dropped
// with a warning.

import type { IssueCollector } from '../config/issues.ts';
import { isPlainObject, type JsonPath, type PathSegment } from '../config/json-path.ts';
import { translateRe2 } from '../config/re2.ts';
import type { OpenApiVersion, RefResolver } from './spec.ts';

const DRAFT_04 = 'http://json-schema.org/draft-04/schema#';
const DRAFT_2020_12 = 'https://json-schema.org/draft/2020-12/schema';
const OPENAPI_FORMATS = new Set(['int32', 'int64', 'float', 'double', 'byte', 'binary', 'password']);
const COMPONENTS = '#/components/schemas/';
/** Keywords whose values are data, never schemas (their "$ref" keys are data too). */
const DATA_KEYWORDS = new Set(['enum', 'const', 'default', 'example', 'examples']);

/** The JSON schema for a body whose OpenAPI schema is `schema` (written at `at`); undefined when a reference cannot be followed. */
export function requestBodySchema(
  schema: unknown,
  at: JsonPath,
  version: OpenApiVersion,
  refs: RefResolver,
  c: IssueCollector,
): Record<string, unknown> | boolean | undefined {
  const defsKey = version === '3.0' ? 'definitions' : '$defs';
  const converter = new Converter(version, defsKey, refs, c);
  const root = converter.convert(schema, at);
  const defs: Record<string, unknown> = {};
  // Each reached component is converted once; converting one may reach more.
  for (let i = 0; i < converter.pending.length; i++) {
    const name = converter.pending[i]!;
    const compAt = ['components', 'schemas', name];
    defs[name] = converter.convert(refs.at(compAt), compAt);
  }
  if (converter.failed) return undefined;
  if (typeof root === 'boolean') return root;
  const out: Record<string, unknown> = { $schema: version === '3.0' ? DRAFT_04 : DRAFT_2020_12 };
  // A "$ref" with siblings is read differently by the drafts: wrap it.
  if (isPlainObject(root) && '$ref' in root) out.allOf = [root];
  else Object.assign(out, root);
  if (converter.pending.length) out[defsKey] = defs;
  return out;
}

class Converter {
  readonly pending: string[] = [];
  failed = false;
  private readonly version: OpenApiVersion;
  private readonly defsKey: string;
  private readonly refs: RefResolver;
  private readonly c: IssueCollector;

  constructor(version: OpenApiVersion, defsKey: string, refs: RefResolver, c: IssueCollector) {
    this.version = version;
    this.defsKey = defsKey;
    this.refs = refs;
    this.c = c;
  }

  convert(node: unknown, at: JsonPath): unknown {
    if (Array.isArray(node)) return node.map((v, i) => this.convert(v, [...at, i]));
    if (!isPlainObject(node)) return node;
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(node)) {
      if (key === '__proto__') continue;
      const here: PathSegment[] = [...at, key];
      if (DATA_KEYWORDS.has(key) || key.startsWith('x-')) out[key] = value;
      else if (key === '$ref') out[key] = this.ref(value, here);
      else if (key === 'format' && typeof value === 'string' && OPENAPI_FORMATS.has(value)) continue;
      else if (key === 'pattern' && typeof value === 'string') {
        const t = translateRe2(value);
        if (t.ok) out[key] = value;
        else this.c.warning(here, 'a pattern in Go RE2 syntax (what KrakenD and Portico run)', `${JSON.stringify(value)}: ${t.reason}; left out of the validation`);
      } else if (key === 'properties' && isPlainObject(value)) {
        // Property names are data: only their values are schemas.
        const props: Record<string, unknown> = {};
        for (const [name, sub] of Object.entries(value)) if (name !== '__proto__') props[name] = this.convert(sub, [...here, name]);
        out[key] = props;
      } else out[key] = this.convert(value, here);
    }
    if (this.version === '3.0' && out.nullable === true) {
      if (typeof out.type === 'string') out.type = [out.type, 'null'];
      if (Array.isArray(out.enum) && !out.enum.includes(null)) out.enum = [...out.enum, null];
      delete out.nullable;
    }
    // readOnly properties are sent by servers only: a request need not have them.
    if (Array.isArray(out.required) && isPlainObject(out.properties)) {
      const props = out.properties;
      const required = out.required.filter((name) => !(typeof name === 'string' && isPlainObject(props[name]) && props[name].readOnly === true));
      if (required.length === 0 && this.version === '3.0') delete out.required; // draft-04 wants at least one name
      else out.required = required;
    }
    return out;
  }

  private ref(value: unknown, at: JsonPath): unknown {
    const target = this.refs.target(value, at);
    if (!target) {
      this.failed = true;
      return value;
    }
    const ref = value as string;
    if (!ref.startsWith(COMPONENTS) || target.length < 3) {
      this.c.invalid(at, `a schema reference into "${COMPONENTS}..." (the import copies those into the validation schema)`, ref);
      this.failed = true;
      return value;
    }
    const name = String(target[2]);
    if (!this.pending.includes(name)) this.pending.push(name);
    const rest = target.slice(3).map((s) => String(s).replaceAll('~', '~0').replaceAll('/', '~1'));
    const escaped = name.replaceAll('~', '~0').replaceAll('/', '~1');
    return `#/${this.defsKey}/${[escaped, ...rest].join('/')}`;
  }
}
