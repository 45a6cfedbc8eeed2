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
import { isObject, put, renamed, withoutKey, type Data } from './data.ts';

type Container = Data | unknown[];

interface Seg {
  readonly key: string;
  /** Array index for canonical integers, else -1. */
  readonly index: number;
  readonly wild: boolean;
}

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

function compilePath(path: string): Seg[] {
  return path.split('.').map((key) => ({
    key,
    index: /^(0|[1-9][0-9]{0,8})$/.test(key) ? Number(key) : -1,
    wild: key === '*',
  }));
}

// ---- container helpers ----

function isContainer(v: unknown): v is Container {
  return typeof v === 'object' && v !== null;
}

function isEmpty(c: Container): boolean {
  if (Array.isArray(c)) return c.length === 0;
  for (const k in c) if (Object.hasOwn(c, k)) return false;
  return true;
}

/** The child at a literal segment, or undefined. */
function child(c: Container, s: Seg): unknown {
  if (Array.isArray(c)) return s.index >= 0 && s.index < c.length ? c[s.index] : undefined;
  return Object.hasOwn(c, s.key) ? c[s.key] : undefined;
}

/** Replace an existing child. */
function setChild(c: Container, s: Seg, v: unknown): void {
  if (Array.isArray(c)) c[s.index] = v;
  else c[s.key] = v;
}

function setAt(parent: Container, key: string | number, v: unknown): void {
  if (Array.isArray(parent)) parent[key as number] = v;
  else put(parent, key as string, v);
}

/**
 * Remove the child at a literal segment. Returns what should now stand for `c`:
 * `c` itself (nothing removed, or an array spliced in place), a copy of the
 * object without the key, or null when the container was emptied.
 */
function removeChild(c: Container, s: Seg): Container | null {
  if (Array.isArray(c)) {
    if (s.index < 0 || s.index >= c.length) return c;
    c.splice(s.index, 1);
    return c.length === 0 ? null : c;
  }
  if (!Object.hasOwn(c, s.key)) return c;
  return withoutKey(c, s.key) ?? null;
}

/** Put a value under `key`: an array gets it appended (KrakenD expands arrays by position). */
function attach(c: Container, key: string, v: unknown): void {
  if (Array.isArray(c)) c.push(v);
  else put(c, key, v);
}

/** Walk one literal segment for writing: a missing or non-container child becomes a new object. */
function descendOrCreate(c: Container, s: Seg): Container {
  const v = child(c, s);
  if (isContainer(v)) return v;
  const created: Data = {};
  if (Array.isArray(c) && v === undefined) c.push(created);
  else setAt(c, Array.isArray(c) ? s.index : s.key, created);
  return created;
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

// ---- move ----

interface Candidate {
  node: Container;
  parent: Container | undefined;
  key: string | number;
  /** Labels from the root to node; only tracked when a promotion needs them. */
  labels: string[] | undefined;
}

/** Store the replacement of a candidate; returns the (possibly new) root. */
function replace(root: Data, c: Candidate, r: unknown): Data {
  if (r === c.node) return root;
  if (c.parent === undefined) return isObject(r) ? r : {};
  setAt(c.parent, c.key, r);
  return root;
}

function compileMove(src: Seg[], dst: Seg[]): Op {
  const prefix = src.slice(0, -1);
  const srcKey = src[src.length - 1].key;
  const dstKey = dst[dst.length - 1].key;
  const srcLast: Seg = { key: srcKey, index: src[src.length - 1].index, wild: false };
  if (src.length === dst.length) {
    if (srcKey === dstKey) return (root) => root;
    return (root) => {
      for (const c of candidates(root, prefix, false)) {
        const n = c.node;
        if (Array.isArray(n) || !Object.hasOwn(n, srcKey)) continue;
        root = replace(root, c, renamed(n, srcKey, dstKey));
      }
      return root;
    };
  }
  if (src.length > dst.length) {
    const walk = dst.slice(0, -1);
    const needLabels = walk.some((s) => s.wild);
    return (root) => {
      const values: unknown[] = [];
      const labels: (string[] | undefined)[] = [];
      for (const c of candidates(root, prefix, needLabels)) {
        const v = child(c.node, srcLast);
        if (v === undefined) continue;
        root = replace(root, c, removeChild(c.node, srcLast));
        values.push(v);
        labels.push(c.labels);
      }
      for (let m = 0; m < values.length; m++) {
        let parent: Container = root;
        for (let i = 0; i < walk.length; i++) {
          const seg = walk[i].wild ? labelSeg(labels[m]![i]) : walk[i];
          const next = child(parent, seg);
          if (next === undefined) break;
          if (isContainer(next)) {
            parent = next;
          } else {
            // KrakenD hangs the value below a leaf, turning it into an object
            const created: Data = {};
            setChild(parent, seg, created);
            parent = created;
          }
        }
        attach(parent, dstKey, values[m]);
      }
      return root;
    };
  }
  const walk = dst.slice(src.length - 1, -1).map((s) => (s.wild ? { key: s.key, index: -1, wild: false } : s));
  return (root) => {
    for (const c of candidates(root, prefix, false)) {
      const v = child(c.node, srcLast);
      if (v === undefined) continue;
      // the node gets the value back below it, so an emptied node is reused
      const node: Container = removeChild(c.node, srcLast) ?? (Array.isArray(c.node) ? c.node : {});
      let target = node;
      for (let i = 0; i < walk.length; i++) target = descendOrCreate(target, walk[i]);
      attach(target, dstKey, v);
      root = replace(root, c, node);
    }
    return root;
  };
}

function labelSeg(label: string): Seg {
  const n = Number(label);
  return { key: label, index: Number.isInteger(n) && n >= 0 && String(n) === label ? n : -1, wild: false };
}

/** Containers matching `prefix` from the root (KrakenD collectMoveCandidates). */
function candidates(root: Data, prefix: Seg[], withLabels: boolean): Candidate[] {
  let cur: Candidate[] = [{ node: root, parent: undefined, key: '', labels: withLabels ? [] : undefined }];
  for (let i = 0; i < prefix.length; i++) {
    const s = prefix[i];
    const next: Candidate[] = [];
    for (const c of cur) {
      const n = c.node;
      if (s.wild) {
        if (Array.isArray(n)) {
          for (let j = 0; j < n.length; j++) push(next, n[j], c, j, String(j));
        } else {
          for (const k in n) push(next, n[k], c, k, k);
        }
      } else {
        const v = child(n, s);
        if (v !== undefined) push(next, v, c, Array.isArray(n) ? s.index : s.key, s.key);
      }
    }
    cur = next;
  }
  return cur;
}

function push(out: Candidate[], v: unknown, from: Candidate, key: string | number, label: string): void {
  if (!isContainer(v)) return;
  out.push({ node: v, parent: from.node, key, labels: from.labels === undefined ? undefined : [...from.labels, label] });
}
