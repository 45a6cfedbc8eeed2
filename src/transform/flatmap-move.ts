// flatmap `move`: rename, promote or embed every match of a path (KrakenD
// flatmap tree.Move). See flatmap.ts for the semantics.

import { isObject, renamed, type Data } from './data.ts';
import {
  attach,
  child,
  descendOrCreate,
  isContainer,
  removeChild,
  setAt,
  setChild,
  type Container,
  type Seg,
} from './flatmap-nodes.ts';

type Op = (root: Data) => Data;

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

export function compileMove(src: Seg[], dst: Seg[]): Op {
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
