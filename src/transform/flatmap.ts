// KrakenD's flatmap filter (lura proxy/formatter.go + github.com/krakendio/flatmap
// tree package), re-implemented directly on the decoded JS values.
//
// Paths are dot paths. `*` matches every element of an array AND every key of
// an object; a canonical integer (`0`, `12`, not `01`) addresses an array
// element; any other segment is an object key. Operations run top-down:
//
// del [p, ...]   remove every match of each path. A `*` in the last position
//                empties the container.
// move [src, dst]
//   same length: rename. Only the LAST segment of dst matters (KrakenD just
//                relabels the matched edge): move a.*.b -> a.*.c renames b to c
//                in every element. The moved value wins over an existing key.
//   dst shorter: promote. Every match of src is taken out and put under the
//                last segment of dst, inside the node reached by walking dst
//                from the root (a `*` there stands for the same element src
//                matched). If that walk hits a missing key it stops, and the
//                value lands where it stopped (KrakenD does the same). When
//                several matches land on one object key, the last wins; on an
//                array, each is appended.
//   dst longer:  embed. The segments of dst past src's parent are found or
//                created (as objects) below the node where src matched, and
//                the value goes under dst's last segment. The leading segments
//                of dst are NOT checked against src (KrakenD ignores them too).
//   The last segment of src is matched literally (`*` there only matches a key
//   named "*"), as in KrakenD.
// append [src, dst]
//                src (array, or a wildcard path whose matches form an array)
//                is appended to the array at dst, then src is deleted. Does
//                nothing unless both resolve to arrays.
//
// KrakenD quirks reproduced: a container emptied by del/move becomes `null`
// (the tree has no value left for that node), except the root, which stays {}
// (KrakenD ends up with no data at all there). Renaming an array index is a
// no-op (array elements are positional).
//
// Known differences: within one filter, KrakenD's tree keeps the original index
// labels of array elements after an earlier operation removed some, so a later
// `items.0` still means the original first element; we address arrays by their
// current positions. A `*` in an append destination is not supported (no-op);
// in KrakenD it creates a key literally named "*". An emptied array that gets
// new values by a later move becomes an object here, an array in KrakenD.
//
// Mutation: the data is modified in place (backend data is decoded fresh per
// request), except that an object losing a key is replaced by a copy without
// it (see data.ts); each operation returns the possibly new root. Never pass
// config-owned objects (static data) without a copy.

import type { FlatmapOperation } from '../config/types.ts';
import { isObject, type Data } from './data.ts';
import { compileMove } from './flatmap-move.ts';
import { child, compilePath, isContainer, isEmpty, removeChild, setChild, type Container, type Seg } from './flatmap-nodes.ts';

type Op = (root: Data) => Data;

export function compileFlatmap(ops: FlatmapOperation[]): (data: Data) => Data {
  const compiled: Op[] = [];
  for (const op of ops) {
    const args = op.args.map(compilePath);
    if (op.type === 'del') {
      for (const p of args) compiled.push((root) => del(root, p));
    } else if (args.length >= 2) {
      const [src, dst] = args;
      if (op.type === 'move') compiled.push(compileMove(src, dst));
      else if (op.type === 'append') compiled.push(compileAppend(src, dst));
    }
    // malformed operations (missing args) are skipped; config validation reports them
  }
  if (compiled.length === 1) return compiled[0];
  return (data) => {
    let d = data;
    for (let i = 0; i < compiled.length; i++) d = compiled[i](d);
    return d;
  };
}

// ---- del ----

function del(root: Data, path: Seg[]): Data {
  const r = delIn(root, path, 0);
  return isObject(r) ? r : {};
}

/** Delete path[i..] inside `node`; returns what now stands for node (see removeChild). */
function delIn(node: Container, path: Seg[], i: number): Container | null {
  const s = path[i];
  if (i === path.length - 1) {
    if (!s.wild) return removeChild(node, s);
    return isEmpty(node) ? node : null;
  }
  if (s.wild) {
    if (Array.isArray(node)) {
      for (let j = 0; j < node.length; j++) {
        const c = node[j];
        if (isContainer(c)) {
          const r = delIn(c, path, i + 1);
          if (r !== c) node[j] = r;
        }
      }
    } else {
      for (const k in node) {
        const c = node[k];
        if (isContainer(c)) {
          const r = delIn(c, path, i + 1);
          if (r !== c) node[k] = r;
        }
      }
    }
    return node;
  }
  const c = child(node, s);
  if (isContainer(c)) {
    const r = delIn(c, path, i + 1);
    if (r !== c) setChild(node, s, r);
  }
  return node;
}

// ---- get (for append) ----

/** KrakenD tree Get: a wildcard collects the per-child results into a new array. */
function get(v: unknown, path: Seg[], i: number): unknown {
  if (i === path.length) return v;
  if (!isContainer(v)) return undefined;
  const s = path[i];
  if (!s.wild) {
    const c = child(v, s);
    return c === undefined ? undefined : get(c, path, i + 1);
  }
  if (isEmpty(v)) return undefined;
  const out: unknown[] = [];
  if (Array.isArray(v)) for (let j = 0; j < v.length; j++) out.push(get(v[j], path, i + 1) ?? null);
  else for (const k in v) out.push(get(v[k], path, i + 1) ?? null);
  return out;
}

// ---- append ----

function compileAppend(src: Seg[], dst: Seg[]): Op {
  if (dst.some((s) => s.wild)) return (root) => root;
  return (root) => {
    const from = get(root, src, 0);
    if (!Array.isArray(from)) return root;
    const to = get(root, dst, 0);
    if (!Array.isArray(to)) return root;
    const n = from.length; // from may be `to` itself
    for (let j = 0; j < n; j++) to.push(from[j]);
    return del(root, src);
  };
}
