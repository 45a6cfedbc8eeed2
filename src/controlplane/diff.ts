// What changed between two configuration documents, as GET
// /v1/configs/{a}/diff/{b} answers it: endpoints (keyed "METHOD /path") added,
// removed or changed, and for a changed endpoint which of its own keys and
// which backends (by index, with url_pattern) changed; plus the service-level
// keys that changed. Documents are compared by canonical JSON, so key order
// and formatting never count as a change.

import { canonicalJson } from '../lifecycle/canonical.ts';

export interface BackendChange {
  index: number;
  url_pattern: string | null;
  change: 'added' | 'removed' | 'changed';
  /** The backend keys whose values differ (changed backends only). */
  keys?: string[];
}

export interface EndpointChange {
  endpoint: string;
  /** The endpoint's own keys (not `backend`) whose values differ. */
  keys: string[];
  backends: BackendChange[];
}

export interface ConfigDiff {
  identical: boolean;
  service: { changed: boolean; keys: string[] };
  endpoints: { added: string[]; removed: string[]; changed: EndpointChange[] };
}

type Obj = Record<string, unknown>;

export function diffConfigs(a: unknown, b: unknown): ConfigDiff {
  const serviceKeys = changedKeys(asObject(a), asObject(b), ['endpoints']);
  const before = endpointsByKey(a);
  const after = endpointsByKey(b);
  const added = [...after.keys()].filter((k) => !before.has(k));
  const removed = [...before.keys()].filter((k) => !after.has(k));
  const changed: EndpointChange[] = [];
  for (const [key, ea] of before) {
    const eb = after.get(key);
    if (!eb || same(ea, eb)) continue;
    changed.push({ endpoint: key, keys: changedKeys(ea, eb, ['backend']), backends: backendChanges(ea.backend, eb.backend) });
  }
  return {
    identical: same(a, b),
    service: { changed: serviceKeys.length > 0, keys: serviceKeys },
    endpoints: { added, removed, changed },
  };
}

function backendChanges(a: unknown, b: unknown): BackendChange[] {
  const la = Array.isArray(a) ? a : [];
  const lb = Array.isArray(b) ? b : [];
  const out: BackendChange[] = [];
  for (let i = 0; i < Math.max(la.length, lb.length); i++) {
    if (i >= la.length) out.push({ index: i, url_pattern: urlPattern(lb[i]), change: 'added' });
    else if (i >= lb.length) out.push({ index: i, url_pattern: urlPattern(la[i]), change: 'removed' });
    else if (!same(la[i], lb[i])) {
      out.push({ index: i, url_pattern: urlPattern(lb[i]), change: 'changed', keys: changedKeys(asObject(la[i]), asObject(lb[i]), []) });
    }
  }
  return out;
}

/** "GET /users/{id}"; a key seen twice (only in a config that never passed validation) gets " #2". */
function endpointsByKey(doc: unknown): Map<string, Obj> {
  const out = new Map<string, Obj>();
  const list = asObject(doc).endpoints;
  if (!Array.isArray(list)) return out;
  for (const e of list) {
    const ep = asObject(e);
    const method = typeof ep.method === 'string' ? ep.method.toUpperCase() : 'GET';
    const base = `${method} ${typeof ep.endpoint === 'string' ? ep.endpoint : '?'}`;
    let key = base;
    for (let n = 2; out.has(key); n++) key = `${base} #${n}`;
    out.set(key, ep);
  }
  return out;
}

function changedKeys(a: Obj, b: Obj, skip: string[]): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].filter((k) => !skip.includes(k) && !same(a[k], b[k])).sort();
}

function urlPattern(backend: unknown): string | null {
  const u = asObject(backend).url_pattern;
  return typeof u === 'string' ? u : null;
}

function asObject(v: unknown): Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {};
}

function same(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}
