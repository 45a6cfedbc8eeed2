// What changed between two configuration documents, endpoint by endpoint: the
// one diff behind GET /v1/configs/{a}/diff/{b}, `portico ctl diff` and
// `portico diff OLD NEW`.
//
// Endpoints are keyed "METHOD /path" (an endpoint whose parameters were only
// renamed is the same route: it is "changed", not removed and added).
// Backends are paired by host and url_pattern, then the rest in order when they
// share the host or the url_pattern; the others are added or removed. For
// every changed thing: its own fields (old and new values) and its namespaces
// (extra_config) added, removed or changed, field by field. Documents are
// compared by canonical JSON, so key order and formatting never count. Secrets
// (config/secret-fields.ts) are never in the answer: a changed secret says
// "changed" without values.

import { formatPath, isPlainObject, type JsonPath, type PathSegment } from '../config/json-path.ts';
import { routeKey } from '../config/routes.ts';
import { isSecretPath, maskSecrets, maskUrlPassword } from '../config/secret-fields.ts';
import { canonicalJson } from '../lifecycle/canonical.ts';

export type Change = 'added' | 'removed' | 'changed';

/** One value that differs. */
export interface FieldChange {
  /** Where, from its owner (service, endpoint, backend or namespace): "timeout", "keys[0].roles". */
  path: string;
  change: Change;
  /** The old value (not for added fields, nor for secrets). */
  from?: unknown;
  /** The new value (not for removed fields, nor for secrets). */
  to?: unknown;
  /** A secret changed: its values are not shown. */
  secret?: true;
  /** A service-level default (timeout, cache_ttl, output_encoding, host): how many endpoints of the new document inherit it. */
  inherited_by?: number;
}

/** The extra_config namespaces of one owner. */
export interface NamespaceChanges {
  added: string[];
  removed: string[];
  changed: { namespace: string; fields: FieldChange[] }[];
}

export interface BackendChange {
  /** Position in the new document's backend list (in the old one for removed backends). */
  index: number;
  /** Position in the old document, when it moved. */
  old_index?: number;
  /** As written (null: inherits the top-level host). */
  host: string[] | null;
  url_pattern: string | null;
  change: Change;
  /** Changed backends: the backend keys whose values differ. */
  keys?: string[];
  fields?: FieldChange[];
  namespaces?: NamespaceChanges;
}

export interface EndpointChange {
  endpoint: string;
  /** The endpoint's own keys (not `backend`) whose values differ. */
  keys: string[];
  /** Its fields (not `backend` nor `extra_config`) that differ. */
  fields: FieldChange[];
  namespaces: NamespaceChanges;
  backends: BackendChange[];
  /** The backends kept changed their order (the merge order of their answers). */
  backends_reordered: boolean;
}

export interface ConfigDiff {
  identical: boolean;
  service: {
    changed: boolean;
    /** The top-level keys (not `endpoints`) whose values differ. */
    keys: string[];
    fields: FieldChange[];
    namespaces: NamespaceChanges;
  };
  endpoints: { added: string[]; removed: string[]; changed: EndpointChange[] };
}

type Obj = Record<string, unknown>;

/** Top-level keys an endpoint (or, for host, a backend) inherits when it does not set its own. */
const INHERITED = ['timeout', 'cache_ttl', 'output_encoding', 'host'];

export function diffConfigs(a: unknown, b: unknown): ConfigDiff {
  const sa = asObject(a);
  const sb = asObject(b);
  const serviceKeys = changedKeys(sa, sb, ['endpoints']);
  const fields = ownFields(sa, sb, ['endpoints', 'extra_config'], []);
  for (const f of fields) {
    if (INHERITED.includes(f.path)) f.inherited_by = inheritors(sb, f.path);
  }
  return {
    identical: same(a, b),
    service: { changed: serviceKeys.length > 0, keys: serviceKeys, fields, namespaces: namespaceChanges(sa.extra_config, sb.extra_config, ['extra_config']) },
    endpoints: endpointChanges(sa.endpoints, sb.endpoints),
  };
}

function endpointChanges(a: unknown, b: unknown): ConfigDiff['endpoints'] {
  const before = endpointsByKey(a);
  const after = endpointsByKey(b);
  // Same "METHOD /path" first, then the same route with renamed parameters.
  const pairs = new Map<string, string>(); // new key -> old key
  for (const key of after.keys()) if (before.has(key)) pairs.set(key, key);
  const taken = new Set(pairs.values());
  const byRoute = new Map<string, string[]>();
  for (const [k, ea] of before) {
    if (taken.has(k)) continue;
    const route = routeOf(ea.value);
    byRoute.set(route, [...(byRoute.get(route) ?? []), k]);
  }
  for (const [key, eb] of after) {
    if (pairs.has(key)) continue;
    const old = byRoute.get(routeOf(eb.value))?.shift();
    if (old !== undefined) {
      pairs.set(key, old);
      taken.add(old);
    }
  }
  const added: string[] = [];
  const changed: EndpointChange[] = [];
  for (const [key, eb] of after) {
    const oldKey = pairs.get(key);
    if (oldKey === undefined) {
      added.push(key);
      continue;
    }
    const ea = before.get(oldKey)!;
    if (same(ea.value, eb.value)) continue;
    const doc = ['endpoints', eb.index];
    const backends = backendChanges(ea.value.backend, eb.value.backend, [...doc, 'backend']);
    changed.push({
      endpoint: key,
      keys: changedKeys(ea.value, eb.value, ['backend']),
      fields: ownFields(ea.value, eb.value, ['backend', 'extra_config'], doc),
      namespaces: namespaceChanges(ea.value.extra_config, eb.value.extra_config, [...doc, 'extra_config']),
      backends: backends.changes,
      backends_reordered: backends.reordered,
    });
  }
  const removed = [...before.keys()].filter((k) => !taken.has(k));
  return { added, removed, changed };
}

function backendChanges(a: unknown, b: unknown, doc: PathSegment[]): { changes: BackendChange[]; reordered: boolean } {
  const la = Array.isArray(a) ? a.map(asObject) : [];
  const lb = Array.isArray(b) ? b.map(asObject) : [];
  const oldOf = new Map<number, number>(); // new index -> old index
  const used = new Set<number>();
  const pair = (j: number, fits: (x: Obj, y: Obj) => boolean) => {
    const i = la.findIndex((x, n) => !used.has(n) && fits(x, lb[j]!));
    if (i >= 0) {
      oldOf.set(j, i);
      used.add(i);
    }
  };
  lb.forEach((_, j) => pair(j, (x, y) => identity(x) === identity(y)));
  lb.forEach((_, j) => {
    if (!oldOf.has(j)) pair(j, (x, y) => same(x.host, y.host) || same(x.url_pattern, y.url_pattern));
  });

  const changes: BackendChange[] = [];
  let last = -1;
  let reordered = false;
  lb.forEach((nb, j) => {
    const i = oldOf.get(j);
    if (i === undefined) {
      changes.push({ index: j, host: hostOf(nb), url_pattern: urlPattern(nb), change: 'added' });
      return;
    }
    if (i < last) reordered = true;
    last = i;
    const ob = la[i]!;
    if (same(ob, nb)) return;
    const at = [...doc, j];
    const c: BackendChange = { index: j, host: hostOf(nb), url_pattern: urlPattern(nb), change: 'changed' };
    if (i !== j) c.old_index = i;
    c.keys = changedKeys(ob, nb, []);
    c.fields = ownFields(ob, nb, ['extra_config'], at);
    c.namespaces = namespaceChanges(ob.extra_config, nb.extra_config, [...at, 'extra_config']);
    changes.push(c);
  });
  la.forEach((ob, i) => {
    if (!used.has(i)) changes.push({ index: i, host: hostOf(ob), url_pattern: urlPattern(ob), change: 'removed' });
  });
  return { changes, reordered };
}

function namespaceChanges(a: unknown, b: unknown, doc: PathSegment[]): NamespaceChanges {
  const ea = asObject(a);
  const eb = asObject(b);
  const out: NamespaceChanges = { added: [], removed: [], changed: [] };
  for (const name of Object.keys(eb)) if (!(name in ea)) out.added.push(name);
  for (const name of Object.keys(ea)) if (!(name in eb)) out.removed.push(name);
  for (const name of Object.keys(eb)) {
    if (!(name in ea) || same(ea[name], eb[name])) continue;
    const fields: FieldChange[] = [];
    valueChanges(ea[name], eb[name], [], [...doc, name], fields, [ea, eb]);
    out.changed.push({ namespace: name, fields });
  }
  return out;
}

/** The fields of two owners (endpoint, backend, top level) that differ, `skip`ped keys aside. */
function ownFields(a: Obj, b: Obj, skip: string[], doc: PathSegment[]): FieldChange[] {
  const out: FieldChange[] = [];
  for (const k of unionKeys(a, b)) {
    if (!skip.includes(k)) valueChanges(a[k], b[k], [k], [...doc, k], out, [a, b]);
  }
  return out;
}

/**
 * Where two values differ: objects key by key, arrays of objects of the same
 * length item by item; anything else is one change with both values (masked).
 */
function valueChanges(a: unknown, b: unknown, rel: PathSegment[], doc: PathSegment[], out: FieldChange[], parents: [unknown, unknown]): void {
  if (same(a, b)) return;
  const secret = isSecretPath(doc, parents[0]) || isSecretPath(doc, parents[1]);
  if (!secret && isPlainObject(a) && isPlainObject(b)) {
    for (const k of unionKeys(a, b)) valueChanges(a[k], b[k], [...rel, k], [...doc, k], out, [a, b]);
    return;
  }
  if (!secret && Array.isArray(a) && Array.isArray(b) && a.length === b.length && [...a, ...b].some((v) => v !== null && typeof v === 'object')) {
    a.forEach((v, i) => valueChanges(v, b[i], [...rel, i], [...doc, i], out, [a, b]));
    return;
  }
  const change: Change = a === undefined ? 'added' : b === undefined ? 'removed' : 'changed';
  const path = relativePath(rel);
  const from = a === undefined ? undefined : maskSecrets(a, doc, parents[0]);
  const to = b === undefined ? undefined : maskSecrets(b, doc, parents[1]);
  // Only a secret inside differs (or the whole value is one): say so, show nothing.
  if (secret || (change === 'changed' && same(from, to))) {
    out.push({ path, change, secret: true });
    return;
  }
  const c: FieldChange = { path, change };
  if (from !== undefined) c.from = from;
  if (to !== undefined) c.to = to;
  out.push(c);
}

/** How many endpoints of `doc` take the top-level `key` because they do not set their own. */
function inheritors(doc: Obj, key: string): number {
  const endpoints = Array.isArray(doc.endpoints) ? doc.endpoints.map(asObject) : [];
  if (key !== 'host') return endpoints.filter((e) => !(key in e)).length;
  const inherits = (be: Obj) => !Array.isArray(be.host) || be.host.length === 0;
  return endpoints.filter((e) => Array.isArray(e.backend) && e.backend.some((be) => inherits(asObject(be)))).length;
}

/** "GET /users/{id}"; a key seen twice (only in a config that never passed validation) gets " #2". */
function endpointsByKey(list: unknown): Map<string, { value: Obj; index: number }> {
  const out = new Map<string, { value: Obj; index: number }>();
  if (!Array.isArray(list)) return out;
  list.forEach((e, index) => {
    const ep = asObject(e);
    const base = `${methodOf(ep)} ${typeof ep.endpoint === 'string' ? ep.endpoint : '?'}`;
    let key = base;
    for (let n = 2; out.has(key); n++) key = `${base} #${n}`;
    out.set(key, { value: ep, index });
  });
  return out;
}

function methodOf(ep: Obj): string {
  return typeof ep.method === 'string' ? ep.method.toUpperCase() : 'GET';
}

function routeOf(ep: Obj): string {
  return routeKey(methodOf(ep), typeof ep.endpoint === 'string' ? ep.endpoint : '?');
}

function identity(backend: Obj): string {
  return canonicalJson([backend.host ?? null, backend.url_pattern ?? null]);
}

function hostOf(backend: Obj): string[] | null {
  return Array.isArray(backend.host) ? backend.host.map((h) => (typeof h === 'string' ? maskUrlPassword(h) : String(h))) : null;
}

function urlPattern(backend: Obj): string | null {
  return typeof backend.url_pattern === 'string' ? backend.url_pattern : null;
}

function changedKeys(a: Obj, b: Obj, skip: string[]): string[] {
  return unionKeys(a, b).filter((k) => !skip.includes(k) && !same(a[k], b[k]));
}

function unionKeys(a: Obj, b: Obj): string[] {
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
}

/** ["keys", 0, "key"] -> "keys[0].key"; [] -> "" (the value itself). */
function relativePath(rel: JsonPath): string {
  return formatPath(rel).replace(/^\$\.?/, '');
}

function asObject(v: unknown): Obj {
  return isPlainObject(v) ? v : {};
}

function same(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}
