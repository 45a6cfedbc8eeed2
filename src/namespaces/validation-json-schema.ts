// `validation/json-schema` (endpoint): KrakenD's krakend-jsonschema. The value
// is a JSON schema; the request body must be a JSON document it accepts. A
// missing or empty body, a body that is not JSON and a body the schema refuses
// are all refused with 400 before any backend is called; the text (KrakenD's
// "- field: description" lines) is shown only with router.return_error_msg.
//
// Schemas are compiled with ajv, the class picked by `$schema` (draft-04, -06,
// -07, 2019-09, 2020-12; draft-07 without one). `pattern`s are Go RE2
// expressions in KrakenD: they run translated (config/re2.ts), and one RE2
// refuses is a config error. Nothing is fetched: a `$ref` outside the schema is
// a config error. Compiled validators live in PolicyState keyed by the schema,
// so a reload that keeps it does not compile it again.

import type { Ajv, ErrorObject, Options, ValidateFunction } from 'ajv';
import type { FormatName } from 'ajv-formats';
import type { IssueCollector } from '../config/issues.ts';
import { isPlainObject, type JsonPath } from '../config/json-path.ts';
import { translateRe2 } from '../config/re2.ts';
import { PolicyError } from '../proxy/errors.ts';
import type { Proxy } from '../proxy/types.ts';
import { loadModule } from '../shared/lazy-require.ts';
import type { Namespace } from './namespace.ts';
import { stateKey } from './state.ts';

const NAME = 'validation/json-schema';

export type Draft = 'draft-04' | 'draft-06' | 'draft-07' | '2019-09' | '2020-12';

export interface JsonSchemaOptions {
  /** The draft the schema is read with (its `$schema`, or draft-07). */
  draft: Draft;
  /** The schema as written (plain JSON), `$schema` spelled as ajv knows it. */
  schema: Record<string, unknown> | boolean;
}

/** Stable codes of the refusals. */
export const JSON_SCHEMA_CODES = {
  empty: 'JSON_SCHEMA_EMPTY_BODY',
  malformed: 'JSON_SCHEMA_MALFORMED_BODY',
  invalid: 'JSON_SCHEMA_INVALID',
} as const;

/** Bodies up to this size get every error listed (router.return_error_msg); larger ones the first only (ajv keeps every error in memory). */
export const MAX_BODY_ALL_ERRORS = 64 * 1024;
/** At most this many error lines are shown. */
export const MAX_ERROR_LINES = 100;

/** `$schema` (scheme and trailing "#" ignored) -> draft, and how ajv spells it. */
const DRAFTS: Readonly<Record<string, { draft: Draft; id: string }>> = {
  'json-schema.org/draft-04/schema': { draft: 'draft-04', id: 'http://json-schema.org/draft-04/schema#' },
  'json-schema.org/draft-06/schema': { draft: 'draft-06', id: 'http://json-schema.org/draft-06/schema#' },
  'json-schema.org/draft-07/schema': { draft: 'draft-07', id: 'http://json-schema.org/draft-07/schema#' },
  'json-schema.org/draft/2019-09/schema': { draft: '2019-09', id: 'https://json-schema.org/draft/2019-09/schema' },
  'json-schema.org/draft/2020-12/schema': { draft: '2020-12', id: 'https://json-schema.org/draft/2020-12/schema' },
};

/** The formats of the JSON Schema drafts that ajv-formats implements (its OpenAPI extras are left out). */
const FORMATS: FormatName[] = [
  'date', 'time', 'date-time', 'duration', 'uri', 'uri-reference', 'uri-template', 'email', 'hostname',
  'ipv4', 'ipv6', 'uuid', 'json-pointer', 'relative-json-pointer',
];


interface AjvModules {
  Ajv: typeof Ajv;
  Ajv2019: typeof import('ajv/dist/2019.js').Ajv2019;
  Ajv2020: typeof import('ajv/dist/2020.js').Ajv2020;
  AjvDraft04: typeof import('ajv-draft-04').default;
  addFormats: typeof import('ajv-formats').default;
  draft06: Record<string, unknown>;
}
let ajvModules: AjvModules | undefined;
/** ajv is loaded on first use: a gateway without JSON schemas does not carry it (about 15 MB of resident code). */
function modules(): AjvModules {
  ajvModules ??= {
    Ajv: (loadModule('ajv') as typeof import('ajv')).Ajv,
    Ajv2019: (loadModule('ajv/dist/2019.js') as typeof import('ajv/dist/2019.js')).Ajv2019,
    Ajv2020: (loadModule('ajv/dist/2020.js') as typeof import('ajv/dist/2020.js')).Ajv2020,
    AjvDraft04: (loadModule('ajv-draft-04') as typeof import('ajv-draft-04')).default,
    addFormats: (loadModule('ajv-formats') as typeof import('ajv-formats')).default,
    draft06: loadModule('ajv/dist/refs/json-schema-draft-06.json') as Record<string, unknown>,
  };
  return ajvModules;
}

/** ajv runs `pattern` and `patternProperties` through this: RE2 syntax, translated for RegExp. */
function re2Engine() {
  return Object.assign(
    (pattern: string) => {
      const t = translateRe2(pattern);
      if (!t.ok) throw new Error(`pattern ${JSON.stringify(pattern)} is not a Go RE2 expression: ${t.reason}`);
      return new RegExp(t.source, t.flags);
    },
    { code: 'portico-re2' },
  );
}

type AjvInstance = InstanceType<typeof Ajv>;

function newAjv(draft: Draft, opts: Options): AjvInstance {
  const m = modules();
  // Unknown keywords are ignored and unknown formats pass (logged), as gojsonschema does.
  const o: Options = { strictSchema: false, strictTypes: false, strictTuples: false, strictRequired: false, ...opts };
  let ajv: AjvInstance;
  if (draft === 'draft-04') ajv = new m.AjvDraft04(o) as unknown as AjvInstance;
  else if (draft === '2019-09') ajv = new m.Ajv2019(o);
  else if (draft === '2020-12') ajv = new m.Ajv2020(o);
  else {
    ajv = new m.Ajv(o);
    if (draft === 'draft-06') ajv.addMetaSchema(m.draft06);
  }
  m.addFormats(ajv, { formats: FORMATS, keywords: false });
  // "regex" is RE2 in KrakenD (Go's regexp): a string is one when RE2 takes it.
  ajv.addFormat('regex', (s: string) => translateRe2(s).ok);
  return ajv;
}

const SILENT = { log() {}, warn() {}, error() {} };

/** One meta-schema checker per draft: compiling a meta-schema is the costly part, so it is done once. */
const checkers = new Map<Draft, AjvInstance>();
function checkerFor(draft: Draft): AjvInstance {
  let c = checkers.get(draft);
  if (!c) {
    c = newAjv(draft, { allErrors: true, verbose: true, logger: SILENT, code: { regExp: re2Engine() } });
    checkers.set(draft, c);
  }
  return c;
}

/** Compile a schema already checked against its meta-schema; throws what ajv throws. `warn` gets ajv's warnings. */
export function compileSchema(o: JsonSchemaOptions, allErrors: boolean, warn?: (message: string) => void): ValidateFunction {
  const logger = warn ? { log() {}, warn: (...a: unknown[]) => warn(a.join(' ')), error: (...a: unknown[]) => warn(a.join(' ')) } : SILENT;
  // A fresh instance per schema: `$id`s of different schemas never collide, and dropping the validator frees everything.
  const ajv = newAjv(o.draft, { allErrors, logger, validateSchema: false, code: { regExp: re2Engine() } });
  return ajv.compile(o.schema);
}

export const validationJsonSchema: Namespace<JsonSchemaOptions> = {
  name: NAME,
  scopes: ['endpoint'],
  order: 615,
  policy: true,
  parse(raw, path, c) {
    if (!isPlainObject(raw) && typeof raw !== 'boolean') {
      c.invalid(path, 'a JSON schema (an object such as {"type": "object", "required": ["id"]})', raw);
      return undefined;
    }
    let draft: Draft = 'draft-07';
    let schema = raw;
    if (isPlainObject(raw) && '$schema' in raw) {
      const at = [...path, '$schema'];
      const key = typeof raw.$schema === 'string' ? raw.$schema.replace(/^https?:\/\//, '').replace(/#$/, '') : undefined;
      const known = key === undefined ? undefined : DRAFTS[key];
      if (!known) {
        c.error(at, 'the URI of a draft KrakenD accepts: draft-04, draft-06, draft-07, 2019-09 or 2020-12 (such as "http://json-schema.org/draft-07/schema#")', c.found(at, raw.$schema));
        return undefined;
      }
      draft = known.draft;
      schema = raw.$schema === known.id ? raw : { ...raw, $schema: known.id };
    }
    const o: JsonSchemaOptions = { draft, schema };
    return checkSchema(o, raw, path, c) ? o : undefined;
  },
  compile(o, ctx) {
    const showErrors = ctx.service.router.returnErrorMsg;
    const key = (all: boolean) => stateKey(NAME, o.draft, all, o.schema);
    const first = ctx.state.get(key(false), () => compileSchema(o, false));
    const all = showErrors ? ctx.state.get(key(true), () => compileSchema(o, true)) : undefined;
    return { middleware: schemaValidator(first, all) };
  },
};

/** Report what makes the schema unusable (false when it is), and ajv's warnings. */
function checkSchema(o: JsonSchemaOptions, raw: unknown, path: JsonPath, c: IssueCollector): boolean {
  const checker = checkerFor(o.draft);
  if (!checker.validateSchema(o.schema)) {
    // One error per place: a wrong "type" fails each branch of the meta-schema's anyOf.
    const seen = new Set<string>();
    for (const e of checker.errors ?? []) {
      if (seen.has(e.instancePath)) continue;
      seen.add(e.instancePath);
      reportSchemaError(c, e, raw, path);
    }
    return false;
  }
  // ajv checks no format in meta-schemas: the patterns are checked here, each at its place.
  let patternsOk = true;
  forEachPattern(raw, path, (pattern, at) => {
    const t = translateRe2(pattern);
    if (!t.ok) {
      c.error(at, 'a regular expression in Go RE2 syntax (what KrakenD accepts)', `${c.found(at, pattern)}: ${t.reason}`);
      patternsOk = false;
    } else if (NESTED_QUANTIFIER.test(pattern)) {
      c.warning(at, 'a pattern without nested repetition', `${c.found(at, pattern)}: a repeated group that repeats inside can take exponential time on a crafted body (Go's RE2 cannot; JavaScript's RegExp can)`);
    }
  });
  if (!patternsOk) return false;
  const warnings = new Set<string>();
  try {
    compileSchema(o, false, (m) => warnings.add(m));
  } catch (err) {
    const e = err as Error & { missingRef?: string };
    if (e.missingRef !== undefined) {
      c.error(path, 'a schema whose "$ref"s point inside it (Portico fetches no schema from the network or disk)', `"$ref": ${JSON.stringify(e.missingRef)}, which cannot be resolved`);
    } else {
      c.error(path, 'a JSON schema ajv can compile', e.message);
    }
    return false;
  }
  for (const w of warnings) c.warning(path, 'a schema every part of which is checked', `${w} (the value passes, as in KrakenD)`);
  return true;
}

/** Keywords whose values are data, not schemas. */
const DATA_KEYWORDS = new Set(['enum', 'const', 'default', 'examples', 'example']);

/** Every `pattern` value and `patternProperties` key of a schema, with its path. */
function forEachPattern(node: unknown, path: JsonPath, visit: (pattern: string, at: JsonPath) => void): void {
  if (Array.isArray(node)) {
    node.forEach((v, i) => forEachPattern(v, [...path, i], visit));
    return;
  }
  if (!isPlainObject(node)) return;
  for (const [k, v] of Object.entries(node)) {
    if (DATA_KEYWORDS.has(k)) continue;
    if (k === 'pattern' && typeof v === 'string') visit(v, [...path, k]);
    else if (k === 'patternProperties' && isPlainObject(v)) for (const p of Object.keys(v)) visit(p, [...path, k, p]);
    forEachPattern(v, [...path, k], visit);
  }
}

/** A quantified group holding a quantifier, such as (a+)+ or (\w+\s?)*: the classic catastrophic-backtracking shape. */
export const NESTED_QUANTIFIER = /\((?:[^()\\]|\\.)*[*+}](?:[^()\\]|\\.)*\)(?:[*+]|\{\d+,\d*\})/;

function reportSchemaError(c: IssueCollector, e: ErrorObject, raw: unknown, path: JsonPath): void {
  const at = [...path, ...pointerSegments(e.instancePath, raw)];
  const last = at[at.length - 1];
  const draft04 = (last === 'exclusiveMinimum' || last === 'exclusiveMaximum') && typeof e.data === 'boolean'
    ? ` (a boolean ${last} is draft-04: say so with "$schema": "http://json-schema.org/draft-04/schema#")`
    : '';
  c.error(at, `a valid ${e.instancePath === '' ? 'schema' : 'schema keyword'} (ajv: ${e.message ?? e.keyword})${draft04}`, c.found(at, e.data));
}

/** The unescaped parts of a JSON pointer ("" is the root). */
function pointerParts(pointer: string): string[] {
  return pointer === '' ? [] : pointer.slice(1).split('/').map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'));
}

/** JSON pointer "/properties/a/0" -> path segments, array indexes as numbers (walking `root`). */
function pointerSegments(pointer: string, root: unknown): (string | number)[] {
  const out: (string | number)[] = [];
  let node = root;
  for (const key of pointerParts(pointer)) {
    if (Array.isArray(node)) {
      out.push(Number(key));
      node = node[Number(key)];
    } else {
      out.push(key);
      node = isPlainObject(node) ? node[key] : undefined;
    }
  }
  return out;
}

// Built once: refusals may come in floods, and an Error captures a stack. An
// empty body gets KrakenD's observable text: Go hands krakend-jsonschema an
// empty (never a nil) body, which fails to decode like any malformed one.
const EMPTY = new PolicyError(400, JSON_SCHEMA_CODES.empty, NAME, 'empty body', undefined, 'could not validate a malformed body');
const MALFORMED = new PolicyError(400, JSON_SCHEMA_CODES.malformed, NAME, 'body is not JSON', undefined, 'could not validate a malformed body');
const INVALID = new PolicyError(400, JSON_SCHEMA_CODES.invalid, NAME, 'body does not match the schema');

/**
 * The middleware (exported for tests): `first` stops at the first error;
 * `all`, when error texts are shown, lists them all.
 */
export function schemaValidator(first: ValidateFunction, all: ValidateFunction | undefined) {
  return (next: Proxy): Proxy =>
    (req) => {
      const body = req.body;
      if (body === undefined || body.length === 0) return Promise.reject(EMPTY);
      let data: unknown;
      try {
        data = JSON.parse(body.toString('utf8'));
      } catch {
        return Promise.reject(MALFORMED);
      }
      let valid: boolean;
      try {
        valid = first(data) as boolean;
      } catch {
        // Only a stack overflow gets here (a recursive schema over a deeply nested body).
        return Promise.reject(MALFORMED);
      }
      if (valid) return next(req);
      if (all === undefined) return Promise.reject(INVALID);
      let errors = first.errors ?? [];
      if (body.length <= MAX_BODY_ALL_ERRORS) {
        try {
          if (!all(data)) errors = all.errors ?? errors;
        } catch {
          // keep the first error
        }
      }
      return Promise.reject(new PolicyError(400, JSON_SCHEMA_CODES.invalid, NAME, 'body does not match the schema', undefined, describeErrors(errors, data)));
    };
}

/** KrakenD's text: one "- field: description" line per error, in gojsonschema's words. */
export function describeErrors(errors: readonly ErrorObject[], data: unknown): string {
  const lines: string[] = [];
  for (const e of errors) {
    if (lines.length === MAX_ERROR_LINES) {
      lines.push(`- (root): ${errors.length - MAX_ERROR_LINES} more errors not shown`);
      break;
    }
    const field = fieldOf(e.instancePath);
    lines.push(`- ${field}: ${describe(e, field, data)}`);
  }
  return lines.join('\n');
}

/** gojsonschema's field: the dotted path of the value, "(root)" for the body itself. */
function fieldOf(pointer: string): string {
  return pointer === '' ? '(root)' : pointerParts(pointer).join('.');
}

function valueAt(data: unknown, pointer: string): unknown {
  let node = data;
  for (const key of pointerParts(pointer)) {
    node = Array.isArray(node) ? node[Number(key)] : isPlainObject(node) ? node[key] : undefined;
  }
  return node;
}

function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

const LIMITS: Readonly<Record<string, string>> = {
  '>=': 'Must be greater than or equal to',
  '>': 'Must be greater than',
  '<=': 'Must be less than or equal to',
  '<': 'Must be less than',
};

/** One error in gojsonschema's wording (the KrakenD text clients may parse); ajv's own for the rest. */
function describe(e: ErrorObject, field: string, data: unknown): string {
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required':
      return `${String(p.missingProperty)} is required`;
    case 'type': {
      const expected = String(p.type).split(',');
      return `Invalid type. Expected: ${expected.length > 1 ? `[${expected.join(',')}]` : expected[0]}, given: ${jsonType(valueAt(data, e.instancePath))}`;
    }
    case 'enum':
      return `${field} must be one of the following: ${((p.allowedValues as unknown[]) ?? []).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'const':
      return `${field} does not match: ${JSON.stringify(p.allowedValue)}`;
    case 'minLength':
      return `String length must be greater than or equal to ${String(p.limit)}`;
    case 'maxLength':
      return `String length must be less than or equal to ${String(p.limit)}`;
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return `${LIMITS[String(p.comparison)] ?? 'Must be within'} ${String(p.limit)}`;
    case 'multipleOf':
      return `Must be a multiple of ${String(p.multipleOf)}`;
    case 'pattern':
      return `Does not match pattern '${String(p.pattern)}'`;
    case 'format':
      return `Does not match format '${String(p.format)}'`;
    case 'additionalProperties':
    case 'unevaluatedProperties':
      return `Additional property ${String(p.additionalProperty ?? p.unevaluatedProperty)} is not allowed`;
    case 'minItems':
      return `Array must have at least ${String(p.limit)} items`;
    case 'maxItems':
      return `Array must have at most ${String(p.limit)} items`;
    case 'uniqueItems':
      return `array items[${String(p.j)},${String(p.i)}] must be unique`;
    case 'minProperties':
      return `Must have at least ${String(p.limit)} properties`;
    case 'maxProperties':
      return `Must have at most ${String(p.limit)} properties`;
    case 'anyOf':
      return 'Must validate at least one schema (anyOf)';
    case 'oneOf':
      return 'Must validate one and only one schema (oneOf)';
    case 'not':
      return 'Must not validate the schema (not)';
    case 'if':
      return p.failingKeyword === 'else' ? 'Must validate "else" as "if" was not valid' : 'Must validate "then" as "if" was valid';
    case 'dependencies':
    case 'dependentRequired':
      return `Has a dependency on ${String(p.missingProperty)}`;
    case 'contains':
      return 'At least one of the items must match';
    case 'additionalItems':
      return 'No additional items allowed on array';
    case 'propertyNames':
      return `Property name of "${String(p.propertyName)}" does not match`;
    case 'false schema':
      return 'False always fails validation';
  }
  return e.message ?? e.keyword;
}
