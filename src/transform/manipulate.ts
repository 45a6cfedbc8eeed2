// Per-backend response manipulation, compiled once per backend (lura
// proxy/formatter.go NewEntityFormatter):
//
//   target -> allow | deny -> mapping -> group
//
// or, when the backend has a non-empty `proxy.flatmap_filter`:
//
//   target -> flatmap operations -> group      (allow, deny, mapping ignored)
//
// target  dot path; the data is replaced by the object found there. A missing
//         key or a non-object value on the way (arrays included) gives {}. The
//         is_collection wrapping happens in the decoder, so `target:
//         "collection"` meets an array and gives {} - as in KrakenD.
// allow / deny  see filter.ts; allow wins when both are set.
// mapping renames top-level keys; an absent key stays absent; as in lura only
//         the first dot segment of the new name is used. Renames apply as one
//         simultaneous step (a swap a<->b works); lura applies them in Go map
//         order, so chains and swaps are non-deterministic there. A mapping of
//         a key to itself is a no-op (lura would delete the key).
// group   wraps the whole data under the key (even when it is empty).
//
// Mutation: works on freshly decoded backend data, in place where that is
// cheap; removals and renames build new objects (see data.ts).

import type { BackendConfig } from '../config/types.ts';
import { compileKey, getOwn, isObject, put, splitPath, type Data, type Key } from './data.ts';
import { compileAllow, compileDeny } from './filter.ts';
import { compileFlatmap } from './flatmap.ts';

export { compileFlatmap };
export type Transform = (data: Data) => Data;

export function compileBackendTransform(b: BackendConfig): Transform | undefined {
  const steps: Transform[] = [];
  if (b.target) steps.push(compileTarget(b.target));
  if (b.flatmapFilter !== undefined && b.flatmapFilter.length > 0) {
    steps.push(compileFlatmap(b.flatmapFilter));
  } else {
    if (b.allow.length > 0) steps.push(compileAllow(b.allow));
    else if (b.deny.length > 0) steps.push(compileDeny(b.deny));
    const mapping = compileMapping(b.mapping);
    if (mapping) steps.push(mapping);
  }
  if (b.group) steps.push(compileGroup(b.group));
  return chain(steps);
}

function chain(steps: Transform[]): Transform | undefined {
  switch (steps.length) {
    case 0:
      return undefined;
    case 1:
      return steps[0];
    case 2: {
      const [a, b] = steps;
      return (d) => b(a(d));
    }
    default:
      return (d) => {
        for (let i = 0; i < steps.length; i++) d = steps[i](d);
        return d;
      };
  }
}

export function compileTarget(target: string): Transform {
  const keys = splitPath(target).map(compileKey);
  return (data) => {
    let d = data;
    for (let i = 0; i < keys.length; i++) {
      const v = getOwn(d, keys[i]);
      if (!isObject(v)) return {};
      d = v;
    }
    return d;
  };
}

export function compileMapping(mapping: Record<string, string>): Transform | undefined {
  const from: Key[] = [];
  const to: string[] = [];
  for (const [f, t] of Object.entries(mapping)) {
    const dest = t.split('.')[0];
    if (dest === f) continue;
    from.push(compileKey(f));
    to.push(dest);
  }
  const n = from.length;
  if (n === 0) return undefined;
  const sourceIndex = new Map<string, number>();
  const sourcesOf = new Map<string, number[]>();
  for (let i = 0; i < n; i++) {
    sourceIndex.set(from[i].name, i);
    const list = sourcesOf.get(to[i]);
    if (list) list.push(i);
    else sourcesOf.set(to[i], [i]);
  }
  const present = (data: Data, list: number[]): boolean => {
    for (let j = 0; j < list.length; j++) if (Object.hasOwn(data, from[list[j]].name)) return true;
    return false;
  };
  return (data) => {
    let any = false;
    for (let i = 0; i < n && !any; i++) any = getOwn(data, from[i]) !== undefined;
    if (!any) return data;
    // one pass into a new object: renamed keys keep their position, a key that
    // a rename lands on is replaced, and all renames see the original data
    const out: Data = {};
    for (const k in data) {
      const i = sourceIndex.get(k);
      if (i !== undefined) {
        put(out, to[i], data[k]);
        continue;
      }
      const list = sourcesOf.get(k);
      if (list !== undefined && present(data, list)) continue;
      put(out, k, data[k]);
    }
    return out;
  };
}

export function compileGroup(group: string): Transform {
  return (data) => ({ [group]: data });
}
