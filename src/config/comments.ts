// KrakenD treats keys starting with @, $, _ or # as comments at every level of
// the configuration structure ("@comment", "_note", ...). Portico removes them
// before validation so they are never reported as unknown keys.
//
// Values that are user data rather than configuration structure are kept
// verbatim, because there such keys are meaningful: a backend `mapping` such as
// {"_id": "id"}, `proxy.static.data`, the `router.error_body` bodies, JSON
// schemas ("$ref", "$defs", "$schema") and `auth/basic.users` names. KrakenD itself never strips anything; it
// just ignores keys no struct field matches, so keeping user data intact is what
// a migrating user observes there.

import { isPlainObject, type JsonPath, type PathSegment } from './json-path.ts';

export function isCommentKey(key: string): boolean {
  const c = key.charAt(0);
  return c === '@' || c === '$' || c === '_' || c === '#';
}

function at(path: JsonPath, fromEnd: number): PathSegment | undefined {
  return path[path.length - fromEnd];
}

/** True for values that hold user data, whose keys are never comments. */
export function isVerbatimValue(path: JsonPath): boolean {
  const last = at(path, 1);
  if (typeof last !== 'string') return false;
  // endpoints[i].backend[j].mapping (also async_agent[i].backend[j].mapping)
  if (last === 'mapping' && typeof at(path, 2) === 'number' && at(path, 3) === 'backend') return true;
  // any json-schema namespace: the whole value is a schema
  if (at(path, 2) === 'extra_config' && last.includes('json-schema')) return true;
  // extra_config.proxy.static.data
  if (last === 'data' && at(path, 2) === 'static' && at(path, 3) === 'proxy' && at(path, 4) === 'extra_config') {
    return true;
  }
  // extra_config.router.error_body["404"|"405"|...]
  if (at(path, 2) === 'error_body' && at(path, 3) === 'router' && at(path, 4) === 'extra_config') return true;
  // extra_config["backend/graphql"].variables
  if (last === 'variables' && at(path, 2) === 'backend/graphql') return true;
  // extra_config["auth/basic"].users: user names such as "_svc" are data
  if (last === 'users' && at(path, 2) === 'auth/basic') return true;
  return false;
}

/** Returns a copy of `value` without comment keys (inputs are never mutated). */
export function stripComments(value: unknown, path: PathSegment[] = []): unknown {
  if (Array.isArray(value)) {
    return value.map((item, i) => stripComments(item, [...path, i]));
  }
  if (!isPlainObject(value)) return value;
  if (isVerbatimValue(path)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) {
    if (isCommentKey(key)) continue;
    out[key] = stripComments(child, [...path, key]); // "__proto__" never gets here: it is a comment
  }
  return out;
}
