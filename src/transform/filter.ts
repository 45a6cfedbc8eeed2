// `allow` and `deny` field filters, as lura's proxy/formatter.go does them.
// Both take dot paths into nested OBJECTS only: a path never descends into an
// array (lura's filters only look inside map values).
//
// allow: only the listed paths survive. `a.b` keeps `a` with nothing but `b`;
//   a branch that ends up empty is dropped (so `a` disappears when it has no
//   `b`, or is not an object). A leaf keeps the whole value, whatever it is.
//   Paths are merged into one tree in config order and, as in lura, a later
//   entry replaces an earlier one at the same node: ["a", "a.b"] keeps only
//   a.b, ["a.b", "a"] keeps all of a.
// deny: the listed paths are removed, at any depth; a shorter path wins over a
//   longer one below it (["a", "a.b"] removes all of a). A path through a
//   missing key or a non-object does nothing.
//
// Both build new objects rather than deleting keys (see data.ts).

import { compileKey, getOwn, isObject, setOwn, splitPath, withoutKeys, type Data, type Key } from './data.ts';

// ---- allow ----

/** Config-time tree: `true` keeps the whole value. */
type AllowTree = Map<string, AllowTree | true>;

interface AllowNode {
  key: Key;
  sub: AllowNode[] | undefined; // undefined: leaf, keep the value as is
}

export function compileAllow(paths: string[]): (data: Data) => Data {
  const root: AllowTree = new Map();
  for (const p of paths) {
    const parts = splitPath(p);
    let t = root;
    for (let i = 0; i < parts.length - 1; i++) {
      const next = t.get(parts[i]);
      if (next instanceof Map) {
        t = next;
      } else {
        const created: AllowTree = new Map();
        t.set(parts[i], created);
        t = created;
      }
    }
    t.set(parts[parts.length - 1], true);
  }
  const nodes = freezeAllow(root);
  return (data) => pickAllowed(nodes, data) ?? {};
}

function freezeAllow(t: AllowTree): AllowNode[] {
  const out: AllowNode[] = [];
  for (const [name, v] of t) out.push({ key: compileKey(name), sub: v === true ? undefined : freezeAllow(v) });
  return out;
}

/** A new object with the allowed paths of `o`, or undefined when nothing survives. */
function pickAllowed(nodes: AllowNode[], o: Data): Data | undefined {
  let out: Data | undefined;
  for (let i = 0; i < nodes.length; i++) {
    const n = nodes[i];
    let v = getOwn(o, n.key);
    if (v === undefined) continue;
    if (n.sub !== undefined) {
      if (!isObject(v)) continue;
      v = pickAllowed(n.sub, v);
      if (v === undefined) continue;
    }
    if (out === undefined) out = {};
    setOwn(out, n.key, v);
  }
  return out;
}

// ---- deny ----

/** One object level of the deny tree: keys removed here, and keys to descend into. */
interface DenyLevel {
  remove: Key[];
  removeSet: ReadonlySet<string>;
  descend: { key: Key; level: DenyLevel }[];
}

type DenyTree = Map<string, DenyTree | null>;

export function compileDeny(paths: string[]): (data: Data) => Data {
  const root: DenyTree = new Map();
  for (const p of paths) {
    const parts = splitPath(p);
    let t = root;
    for (let i = 0; i < parts.length; i++) {
      const name = parts[i];
      if (i === parts.length - 1) {
        t.set(name, null); // delete the whole subtree, whatever was below
        break;
      }
      const next = t.get(name);
      if (next === null) break; // an ancestor is already deleted
      if (next === undefined) {
        const created: DenyTree = new Map();
        t.set(name, created);
        t = created;
      } else {
        t = next;
      }
    }
  }
  const level = freezeDeny(root);
  return (data) => removeDenied(level, data);
}

function freezeDeny(t: DenyTree): DenyLevel {
  const remove: Key[] = [];
  const descend: DenyLevel['descend'] = [];
  for (const [name, v] of t) {
    if (v === null) remove.push(compileKey(name));
    else descend.push({ key: compileKey(name), level: freezeDeny(v) });
  }
  return { remove, removeSet: new Set(remove.map((k) => k.name)), descend };
}

/** `o` itself when nothing is denied in it, else a filtered copy (see data.ts on why not delete). */
function removeDenied(level: DenyLevel, o: Data): Data {
  let out = o;
  for (let i = 0; i < level.remove.length; i++) {
    if (getOwn(o, level.remove[i]) !== undefined) {
      out = withoutKeys(o, level.removeSet) ?? {};
      break;
    }
  }
  for (let i = 0; i < level.descend.length; i++) {
    const d = level.descend[i];
    const v = getOwn(out, d.key);
    if (!isObject(v)) continue;
    const r = removeDenied(d.level, v);
    if (r !== v) setOwn(out, d.key, r);
  }
  return out;
}
