// The flatmap filter's view of decoded data: containers (objects and arrays),
// compiled path segments, and the primitive reads and writes every operation
// uses. See flatmap.ts for the semantics.

import { put, withoutKey, type Data } from './data.ts';

export type Container = Data | unknown[];

export interface Seg {
  readonly key: string;
  /** Array index for canonical integers, else -1. */
  readonly index: number;
  readonly wild: boolean;
}

export function compilePath(path: string): Seg[] {
  return path.split('.').map((key) => ({
    key,
    index: /^(0|[1-9][0-9]{0,8})$/.test(key) ? Number(key) : -1,
    wild: key === '*',
  }));
}

export function isContainer(v: unknown): v is Container {
  return typeof v === 'object' && v !== null;
}

export function isEmpty(c: Container): boolean {
  if (Array.isArray(c)) return c.length === 0;
  for (const k in c) if (Object.hasOwn(c, k)) return false;
  return true;
}

/** The child at a literal segment, or undefined. */
export function child(c: Container, s: Seg): unknown {
  if (Array.isArray(c)) return s.index >= 0 && s.index < c.length ? c[s.index] : undefined;
  return Object.hasOwn(c, s.key) ? c[s.key] : undefined;
}

/** Replace an existing child. */
export function setChild(c: Container, s: Seg, v: unknown): void {
  if (Array.isArray(c)) c[s.index] = v;
  else c[s.key] = v;
}

export function setAt(parent: Container, key: string | number, v: unknown): void {
  if (Array.isArray(parent)) parent[key as number] = v;
  else put(parent, key as string, v);
}

/**
 * Remove the child at a literal segment. Returns what should now stand for `c`:
 * `c` itself (nothing removed, or an array spliced in place), a copy of the
 * object without the key, or null when the container was emptied.
 */
export function removeChild(c: Container, s: Seg): Container | null {
  if (Array.isArray(c)) {
    if (s.index < 0 || s.index >= c.length) return c;
    c.splice(s.index, 1);
    return c.length === 0 ? null : c;
  }
  if (!Object.hasOwn(c, s.key)) return c;
  return withoutKey(c, s.key) ?? null;
}

/** Put a value under `key`: an array gets it appended (KrakenD expands arrays by position). */
export function attach(c: Container, key: string, v: unknown): void {
  if (Array.isArray(c)) c.push(v);
  else put(c, key, v);
}

/** Walk one literal segment for writing: a missing or non-container child becomes a new object. */
export function descendOrCreate(c: Container, s: Seg): Container {
  const v = child(c, s);
  if (isContainer(v)) return v;
  const created: Data = {};
  if (Array.isArray(c) && v === undefined) c.push(created);
  else setAt(c, Array.isArray(c) ? s.index : s.key, created);
  return created;
}
