// Reads an OpenAPI 3.0 / 3.1 document (JSON or YAML) into the operations
// `portico import openapi` turns into endpoints. Parsed with positions
// (config/parse.ts), so every problem is reported with file, line:column and
// JSON path through an IssueCollector. Only the fields the import reads are
// checked: the document is not validated against the whole OpenAPI schema.
// `$ref`s are followed inside the document only; nothing is fetched.

import { expectObject } from '../config/fields.ts';
import type { IssueCollector } from '../config/issues.ts';
import { formatPath, isPlainObject, type JsonPath, type PathSegment } from '../config/json-path.ts';

export type OpenApiVersion = '3.0' | '3.1';

export const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;
const PARAMETER_LOCATIONS = ['query', 'header', 'path', 'cookie'];

export interface Parameter {
  name: string;
  in: 'query' | 'header' | 'path' | 'cookie';
  at: JsonPath;
}

export interface RequestBody {
  required: boolean;
  /** The media types, each with its schema and where it is written. */
  content: { mediaType: string; schema: unknown; at: JsonPath }[];
  at: JsonPath;
}

export interface ServerUrl {
  /** With the variables replaced by their defaults. */
  url: string;
  at: JsonPath;
}

/** A credential a security requirement asks clients to send. */
export type Credential = { in: 'header' | 'query' | 'cookie'; name: string };

export interface Operation {
  /** Lower-case, as written in the path item. */
  method: (typeof HTTP_METHODS)[number];
  /** The path as written, e.g. /pets/{petId}. */
  path: string;
  at: JsonPath;
  operationId?: string;
  summary?: string;
  /** Path-level and operation-level parameters (the operation's win), references resolved. */
  parameters: Parameter[];
  body?: RequestBody;
  /** The servers that apply (operation's, else path item's, else the document's). */
  servers: ServerUrl[];
  /** What the security requirements that apply ask clients to send (any of them). */
  credentials: Credential[];
}

export interface OpenApiDocument {
  version: OpenApiVersion;
  title: string;
  apiVersion: string;
  servers: ServerUrl[];
  operations: Operation[];
  /** The whole document, for schema references. */
  root: Record<string, unknown>;
}

/**
 * Reads what the import needs; every problem goes to `c`. Undefined when the
 * document is not an object or is Swagger 2.0; otherwise what could be read,
 * even with errors (the caller decides by `c.errors`).
 */
export function readOpenApi(value: unknown, c: IssueCollector): OpenApiDocument | undefined {
  if (!expectObject(c, value, [], 'an OpenAPI document (an object with "openapi", "info" and "paths")')) return undefined;
  const root = value;
  const refs = new RefResolver(root, c);

  let version: OpenApiVersion | undefined;
  if ('swagger' in root && !('openapi' in root)) {
    c.invalid(['swagger'], 'an OpenAPI 3.0 or 3.1 document ("openapi": "3.0.3"); Swagger 2.0 is not read: convert it to OpenAPI 3 first', root.swagger);
    return undefined;
  } else if (!('openapi' in root)) {
    c.missing(['openapi'], 'the OpenAPI version, such as "3.0.3" or "3.1.0"');
  } else {
    const m = typeof root.openapi === 'string' ? /^3\.([01])\.\d+(?:-[\w.]+)?$/.exec(root.openapi) : null;
    if (m) version = m[1] === '0' ? '3.0' : '3.1';
    else c.invalid(['openapi'], 'an OpenAPI version 3.0.x or 3.1.x, as a string such as "3.0.3" (quoted in YAML)', root.openapi);
  }

  let title = '';
  let apiVersion = '';
  if (!('info' in root)) c.missing(['info'], 'an info object with "title" and "version"');
  else if (expectObject(c, root.info, ['info'], 'an info object with "title" and "version"')) {
    title = requiredString(c, root.info, ['info'], 'title', 'the title of the API') ?? '';
    apiVersion = requiredString(c, root.info, ['info'], 'version', 'the version of the API document, as a string such as "1.0.0" (quoted in YAML)') ?? '';
  }

  const servers = readServers(c, root.servers, ['servers']) ?? [];
  const schemes = readSecuritySchemes(c, refs, root);
  const rootSecurity = readSecurity(c, root.security, ['security'], schemes) ?? [];

  const operations: Operation[] = [];
  if (!('paths' in root)) {
    c.missing(['paths'], 'a "paths" object: the operations to import');
  } else if (expectObject(c, root.paths, ['paths'], 'an object of paths, such as {"/pets": {"get": {...}}}')) {
    const ids = new Map<string, JsonPath>();
    for (const [path, item] of Object.entries(root.paths)) {
      if (path.startsWith('x-')) continue; // specification extensions
      const at: JsonPath = ['paths', path];
      if (!path.startsWith('/')) {
        c.add('error', at, 'a path starting with "/", such as "/pets/{petId}"', JSON.stringify(path), 'key');
        continue;
      }
      readPathItem(c, refs, item, at, path, { servers, rootSecurity, schemes, ids }, operations);
    }
  }
  // With errors, what could be read is still returned: the import reports its own problems too, all at once.
  return { version: version ?? '3.0', title, apiVersion, servers, operations, root };
}

interface Context {
  servers: ServerUrl[];
  rootSecurity: Credential[][];
  schemes: Map<string, Credential[]>;
  ids: Map<string, JsonPath>;
}

function readPathItem(c: IssueCollector, refs: RefResolver, raw: unknown, rawAt: JsonPath, path: string, ctx: Context, out: Operation[]): void {
  const resolved = refs.resolve(raw, rawAt);
  if (!resolved) return;
  const { value: item, at } = resolved;
  if (!expectObject(c, item, at, 'a path item object, such as {"get": {...}}')) return;
  const shared = readParameters(c, refs, item.parameters, [...at, 'parameters']) ?? [];
  const servers = readServers(c, item.servers, [...at, 'servers']) ?? ctx.servers;
  // In the document's order.
  const methods = Object.keys(item).filter((k): k is Operation['method'] => (HTTP_METHODS as readonly string[]).includes(k));
  for (const method of methods) {
    const opAt = [...at, method];
    const op = item[method];
    if (!expectObject(c, op, opAt, 'an operation object')) continue;
    const own = readParameters(c, refs, op.parameters, [...opAt, 'parameters']) ?? [];
    const parameters = [...shared.filter((p) => !own.some((o) => o.name === p.name && o.in === p.in)), ...own];
    const operation: Operation = {
      method,
      path,
      at: opAt,
      parameters,
      servers: readServers(c, op.servers, [...opAt, 'servers']) ?? servers,
      credentials: [],
    };
    if ('operationId' in op) {
      const id = optionalString(c, op, opAt, 'operationId', 'a string naming the operation, unique in the document');
      const first = id === undefined ? undefined : ctx.ids.get(id);
      if (first) c.error([...opAt, 'operationId'], 'an operationId no other operation uses', `${JSON.stringify(id)}, already used at ${formatPath(first)}`);
      else if (id !== undefined) {
        ctx.ids.set(id, opAt);
        operation.operationId = id;
      }
    }
    const summary = optionalString(c, op, opAt, 'summary', 'a string');
    if (summary !== undefined) operation.summary = summary;
    if ('requestBody' in op) {
      const body = readRequestBody(c, refs, op.requestBody, [...opAt, 'requestBody']);
      if (body) operation.body = body;
    }
    const security = 'security' in op ? readSecurity(c, op.security, [...opAt, 'security'], ctx.schemes) : ctx.rootSecurity;
    operation.credentials = uniqueCredentials((security ?? []).flat());
    checkPathParameters(c, operation);
    out.push(operation);
  }
}

/** Every {name} in the path has a path parameter and the other way round (the OpenAPI rule). */
function checkPathParameters(c: IssueCollector, op: Operation): void {
  const inPath = [...op.path.matchAll(/\{([^{}]*)\}/g)].map((m) => m[1] as string);
  for (const name of inPath) {
    if (!op.parameters.some((p) => p.in === 'path' && p.name === name)) {
      c.warning(op.at, `a parameter {"name": "${name}", "in": "path", "required": true} for each {${name}} of the path`, `none for {${name}} (imported as a path parameter all the same)`);
    }
  }
  for (const p of op.parameters) {
    if (p.in === 'path' && !inPath.includes(p.name)) {
      c.error([...p.at, 'name'], `a path parameter named in the path ${JSON.stringify(op.path)}`, `${JSON.stringify(p.name)}, which the path does not contain`);
    }
  }
}

function readParameters(c: IssueCollector, refs: RefResolver, raw: unknown, at: JsonPath): Parameter[] | undefined {
  const list = optionalArray(c, raw, at, 'an array of parameter objects');
  if (!list) return undefined;
  const out: Parameter[] = [];
  list.forEach((item, i) => {
    const resolved = refs.resolve(item, [...at, i]);
    if (!resolved) return;
    const { value: p, at: pAt } = resolved;
    if (!expectObject(c, p, pAt, 'a parameter object {"name": ..., "in": "query" | "header" | "path" | "cookie"}')) return;
    const name = requiredString(c, p, pAt, 'name', 'the name of the parameter');
    let location: Parameter['in'] | undefined;
    if (!('in' in p)) c.missing([...pAt, 'in'], 'where the parameter is: "query", "header", "path" or "cookie"');
    else if (typeof p.in === 'string' && PARAMETER_LOCATIONS.includes(p.in)) location = p.in as Parameter['in'];
    else c.invalid([...pAt, 'in'], '"query", "header", "path" or "cookie"', p.in);
    if (location === 'path' && p.required !== true) {
      if ('required' in p) c.invalid([...pAt, 'required'], 'true: a path parameter is always required', p.required);
      else c.missing([...pAt, 'required'], '"required": true: a path parameter is always required');
    }
    if (name === undefined || location === undefined) return;
    if (name === '') {
      c.invalid([...pAt, 'name'], 'a non-empty name', name);
      return;
    }
    if (out.some((o) => o.name === name && o.in === location)) {
      c.error([...pAt, 'name'], 'each parameter once per name and location', `${JSON.stringify(name)} in ${location} again`);
      return;
    }
    out.push({ name, in: location, at: pAt });
  });
  return out;
}

function readRequestBody(c: IssueCollector, refs: RefResolver, raw: unknown, rawAt: JsonPath): RequestBody | undefined {
  const resolved = refs.resolve(raw, rawAt);
  if (!resolved) return undefined;
  const { value: body, at } = resolved;
  if (!expectObject(c, body, at, 'a request body object {"content": {...}}')) return undefined;
  let required = false;
  if ('required' in body) {
    if (typeof body.required === 'boolean') required = body.required;
    else c.invalid([...at, 'required'], 'true or false', body.required);
  }
  const content: RequestBody['content'] = [];
  if (!('content' in body)) c.missing([...at, 'content'], 'the media types of the body, such as {"application/json": {"schema": {...}}}');
  else if (expectObject(c, body.content, [...at, 'content'], 'an object of media types, such as {"application/json": {"schema": {...}}}')) {
    for (const [mediaType, media] of Object.entries(body.content)) {
      const mAt = [...at, 'content', mediaType];
      if (!expectObject(c, media, mAt, 'a media type object, such as {"schema": {...}}')) continue;
      content.push({ mediaType, schema: media.schema, at: [...mAt, 'schema'] });
    }
  }
  return { required, content, at };
}

function readServers(c: IssueCollector, raw: unknown, at: JsonPath): ServerUrl[] | undefined {
  const list = optionalArray(c, raw, at, 'an array of server objects, such as [{"url": "https://api.example.com/v1"}]');
  if (!list) return undefined;
  const out: ServerUrl[] = [];
  list.forEach((s, i) => {
    const sAt = [...at, i];
    if (!expectObject(c, s, sAt, 'a server object {"url": ...}')) return;
    const url = requiredString(c, s, sAt, 'url', 'the URL of the server, such as "https://api.example.com/v1"');
    if (url === undefined) return;
    const defaults = new Map<string, string>();
    if ('variables' in s && expectObject(c, s.variables, [...sAt, 'variables'], 'an object of server variables, such as {"port": {"default": "443"}}')) {
      for (const [name, v] of Object.entries(s.variables)) {
        const vAt = [...sAt, 'variables', name];
        if (!expectObject(c, v, vAt, 'a server variable object {"default": ...}')) continue;
        const d = requiredString(c, v, vAt, 'default', 'the value used when none is given (a string)');
        if (d === undefined) continue;
        if ('enum' in v && Array.isArray(v.enum) && v.enum.length > 0 && !v.enum.includes(d)) {
          c.invalid([...vAt, 'default'], `one of the variable's enum values ${JSON.stringify(v.enum)}`, d);
        }
        defaults.set(name, d);
      }
    }
    let bad = false;
    const substituted = url.replace(/\{([^{}]*)\}/g, (whole, name: string) => {
      const d = defaults.get(name);
      if (d !== undefined) return d;
      bad = true;
      c.error([...sAt, 'url'], `a variable declared in "variables" for each {name} of the URL`, `{${name}} in ${JSON.stringify(url)}, which has no declared default`);
      return whole;
    });
    if (!bad) out.push({ url: substituted, at: [...sAt, 'url'] });
  });
  return out;
}

/** components.securitySchemes -> what each scheme has clients send. */
function readSecuritySchemes(c: IssueCollector, refs: RefResolver, root: Record<string, unknown>): Map<string, Credential[]> {
  const out = new Map<string, Credential[]>();
  const components = root.components;
  if (components === undefined || !expectObject(c, components, ['components'], 'a components object')) return out;
  const schemes = components.securitySchemes;
  if (schemes === undefined || !expectObject(c, schemes, ['components', 'securitySchemes'], 'an object of security schemes')) return out;
  for (const [name, raw] of Object.entries(schemes)) {
    const resolved = refs.resolve(raw, ['components', 'securitySchemes', name]);
    if (!resolved) continue;
    const { value: s, at } = resolved;
    if (!expectObject(c, s, at, 'a security scheme object {"type": ...}')) continue;
    switch (s.type) {
      case 'apiKey': {
        const keyName = requiredString(c, s, at, 'name', 'the name of the header, query parameter or cookie that carries the key');
        if (!['header', 'query', 'cookie'].includes(s.in as string)) {
          c.invalid([...at, 'in'], '"header", "query" or "cookie"', s.in);
          continue;
        }
        if (keyName !== undefined) out.set(name, [{ in: s.in as Credential['in'], name: keyName }]);
        break;
      }
      case 'http':
      case 'oauth2':
      case 'openIdConnect':
        out.set(name, [{ in: 'header', name: 'Authorization' }]);
        break;
      case 'mutualTLS':
        out.set(name, []);
        break;
      default:
        c.invalid([...at, 'type'], '"apiKey", "http", "oauth2", "openIdConnect" or "mutualTLS"', s.type);
    }
  }
  return out;
}

/** A security requirement list: each alternative's credentials. */
function readSecurity(c: IssueCollector, raw: unknown, at: JsonPath, schemes: Map<string, Credential[]>): Credential[][] | undefined {
  const list = optionalArray(c, raw, at, 'an array of security requirements, such as [{"bearerAuth": []}]');
  if (!list) return undefined;
  const out: Credential[][] = [];
  list.forEach((req, i) => {
    if (!expectObject(c, req, [...at, i], 'a security requirement object, such as {"bearerAuth": []}')) return;
    const alternative: Credential[] = [];
    for (const name of Object.keys(req)) {
      const scheme = schemes.get(name);
      if (scheme) alternative.push(...scheme);
      else c.add('error', [...at, i, name], 'the name of a scheme in components.securitySchemes', JSON.stringify(name), 'key');
    }
    out.push(alternative);
  });
  return out;
}

function uniqueCredentials(list: Credential[]): Credential[] {
  const seen = new Set<string>();
  return list.filter((x) => {
    const key = `${x.in}:${x.in === 'header' ? x.name.toLowerCase() : x.name}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** An optional array: undefined when absent or (reported) not an array. */
function optionalArray(c: IssueCollector, raw: unknown, at: JsonPath, expected: string): unknown[] | undefined {
  if (raw === undefined) return undefined;
  if (Array.isArray(raw)) return raw;
  c.invalid(at, expected, raw);
  return undefined;
}

function requiredString(c: IssueCollector, obj: Record<string, unknown>, at: JsonPath, key: string, what: string): string | undefined {
  if (!(key in obj)) {
    c.missing([...at, key], what);
    return undefined;
  }
  return optionalString(c, obj, at, key, what);
}

function optionalString(c: IssueCollector, obj: Record<string, unknown>, at: JsonPath, key: string, what: string): string | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v === 'string') return v;
  c.invalid([...at, key], what.startsWith('a ') || what.startsWith('the ') ? what : `a string: ${what}`, v);
  return undefined;
}

/** Follows local `$ref`s ("#/components/..."), reporting remote, missing and circular ones where they are written. */
export class RefResolver {
  private readonly root: Record<string, unknown>;
  private readonly c: IssueCollector;

  constructor(root: Record<string, unknown>, c: IssueCollector) {
    this.root = root;
    this.c = c;
  }

  /** The value `raw` (found at `at`) stands for, and where that is; undefined when a reference cannot be followed. */
  resolve(raw: unknown, at: JsonPath): { value: unknown; at: JsonPath } | undefined {
    let value = raw;
    let here = at;
    const seen = new Set<string>();
    while (isPlainObject(value) && '$ref' in value) {
      const refAt = [...here, '$ref'];
      const target = this.target(value.$ref, refAt);
      if (!target) return undefined;
      const key = formatPath(target);
      if (seen.has(key)) {
        this.c.error(refAt, 'a reference that leads to a value, not back to itself', `a circular chain of references through ${JSON.stringify(value.$ref)}`);
        return undefined;
      }
      seen.add(key);
      value = this.at(target);
      here = target;
    }
    return { value, at: here };
  }

  /** The path a local reference points to; reported and undefined when it is not local or leads nowhere. */
  target(ref: unknown, refAt: JsonPath): PathSegment[] | undefined {
    if (typeof ref !== 'string') {
      this.c.invalid(refAt, 'a reference string such as "#/components/schemas/Pet"', ref);
      return undefined;
    }
    if (!ref.startsWith('#')) {
      this.c.invalid(refAt, 'a reference inside this document, such as "#/components/schemas/Pet" (other files and URLs are not fetched)', ref);
      return undefined;
    }
    const path = pointerPath(ref.slice(1), this.root);
    if (path === undefined || this.at(path) === undefined) {
      this.c.error(refAt, 'a reference to something this document declares', `${JSON.stringify(ref)}, which leads nowhere`);
      return undefined;
    }
    return path;
  }

  at(path: JsonPath): unknown {
    let node: unknown = this.root;
    for (const seg of path) {
      if (Array.isArray(node) && typeof seg === 'number') node = node[seg];
      else if (isPlainObject(node) && typeof seg === 'string' && Object.hasOwn(node, seg)) node = node[seg];
      else return undefined;
    }
    return node;
  }
}

/** JSON pointer ("/components/schemas/Pet", URI-encoded or not) -> path segments, array indexes as numbers; undefined when malformed. */
function pointerPath(pointer: string, root: unknown): PathSegment[] | undefined {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) return undefined;
  let decoded: string;
  try {
    decoded = decodeURIComponent(pointer);
  } catch {
    return undefined;
  }
  const out: PathSegment[] = [];
  let node = root;
  for (const part of decoded.slice(1).split('/')) {
    const key = part.replaceAll('~1', '/').replaceAll('~0', '~');
    if (Array.isArray(node) && /^\d+$/.test(key)) {
      out.push(Number(key));
      node = node[Number(key)];
    } else {
      out.push(key);
      node = isPlainObject(node) && Object.hasOwn(node, key) ? node[key] : undefined;
    }
  }
  return out;
}
