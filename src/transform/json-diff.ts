// Comparing two decoded JSON answers (portico/shadow-compare): the paths
// present in one and not the other, and the values that differ, skipping
// ignored paths and treating numbers within a tolerance as equal.
//
// Written here rather than taken from deep-diff, jsondiffpatch or just-diff:
// those list every difference and know neither wildcard paths nor a numeric
// tolerance. This walk prunes ignored subtrees as it goes, stops listing paths
// at a cap (it still tells every kind it finds) and refuses to go deeper than
// MAX_DEPTH, so its cost and memory are bounded by the answers it is given.
//
// Paths are written as in configuration issues (config/json-path.ts):
// $.items[3].id, $["odd.key"]. A pattern adds two wildcards: `*` (`.*` or
// `[*]`) is any one key or array item, `**` any number of them (none too).

import { formatPath, isPlainObject, type PathSegment } from '../config/json-path.ts';

export type BodyDiffKind = 'missing_field' | 'extra_field' | 'changed_value';

/** Nesting deeper than this is not compared (the answer is treated as too large). */
export const MAX_DEPTH = 256;

const ANY: unique symbol = Symbol('*');
const DEEP: unique symbol = Symbol('**');
type PatternSegment = string | number | typeof ANY | typeof DEEP;
export type PathPattern = readonly PatternSegment[];

/** Segments per pattern (the matcher packs a position in 8 bits). */
const MAX_SEGMENTS = 64;

/**
 * Parses `$.a.b[2]`, `a.*.id`, `**.updated_at`, `$["x.y"][*]` (the leading `$`
 * and the first dot may be left out; `$ref` is a key). Returns the error text
 * when it is not one.
 */
export function parsePathPattern(text: string): PathPattern | string {
  const rooted = text === '$' || text.startsWith('$.') || text.startsWith('$[');
  const first = rooted ? 1 : 0;
  const out: PatternSegment[] = [];
  let i = first;
  while (i < text.length) {
    if (text[i] === '[') {
      const quoted = text[i + 1] === '"';
      const close = quoted ? closingQuote(text, i + 1) + 1 : text.indexOf(']', i);
      if (close <= 0 || text[close] !== ']') return `an unclosed "[" at character ${i + 1}`;
      const inner = text.slice(i + 1, close);
      if (inner === '*') out.push(ANY);
      else if (/^(0|[1-9]\d{0,8})$/.test(inner)) out.push(Number(inner));
      else if (quoted) {
        try {
          out.push(JSON.parse(inner) as string);
        } catch {
          return `a quoted key that is not a JSON string at character ${i + 2}`;
        }
      } else return `[${inner}] at character ${i + 1}: expected [N], [*] or ["key"]`;
      i = close + 1;
      continue;
    }
    if (text[i] === '.') i++;
    else if (i !== first) return `"${text[i]}" at character ${i + 1}: expected "." or "["`;
    let end = i;
    while (end < text.length && text[end] !== '.' && text[end] !== '[') end++;
    const name = text.slice(i, end);
    if (name === '') return `an empty key at character ${i + 1}`;
    if (name.includes(']') || name.includes('"')) return `"${name}": write a key with brackets or quotes as ["..."]`;
    out.push(name === '*' ? ANY : name === '**' ? DEEP : name);
    i = end;
  }
  if (out.every((s) => s === DEEP)) return 'a path below the root, such as $.updated_at (this one would ignore the whole answer)';
  if (out.length > MAX_SEGMENTS) return `at most ${MAX_SEGMENTS} segments`;
  return out;
}

/** The index of the quote that closes the JSON string starting at `open`, or -1. */
function closingQuote(text: string, open: number): number {
  for (let i = open + 1; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === '"') return i;
  }
  return -1;
}

// The matcher: a set of (pattern, position) states, advanced one path segment
// at a time. A pattern matched to its end means the path (and all under it) is ignored.
type States = readonly number[];
const IGNORED = true;

function closure(patterns: readonly PathPattern[], states: number[]): number[] | typeof IGNORED {
  for (let n = 0; n < states.length; n++) {
    const p = states[n] >> 8;
    const i = states[n] & 0xff;
    if (i === patterns[p].length) return IGNORED;
    if (patterns[p][i] === DEEP && !states.includes(states[n] + 1)) states.push(states[n] + 1);
  }
  return states;
}

function start(patterns: readonly PathPattern[]): States | undefined {
  if (patterns.length === 0) return undefined;
  const s = closure(patterns, patterns.map((_, p) => p << 8));
  return s === IGNORED ? undefined : s;
}

function step(patterns: readonly PathPattern[], states: States | undefined, k: PathSegment): States | undefined | typeof IGNORED {
  if (states === undefined) return undefined;
  const next: number[] = [];
  for (const s of states) {
    const seg = patterns[s >> 8][s & 0xff];
    if (seg === DEEP) {
      if (!next.includes(s)) next.push(s);
    } else if (seg === ANY || seg === k) {
      if (!next.includes(s + 1)) next.push(s + 1);
    }
  }
  if (next.length === 0) return undefined;
  return closure(patterns, next);
}

export interface DiffOptions {
  ignore: readonly PathPattern[];
  /** Two numbers at most this far apart are equal. */
  numericTolerance: number;
  /** Differences listed at most (the rest are counted in `more`). */
  maxListed: number;
  /** Show (truncated) values in the listed differences. */
  values: boolean;
}

export interface ListedDiff {
  kind: BodyDiffKind;
  path: string;
  /** For changed_value: the JSON types when they differ. */
  live_type?: string;
  shadow_type?: string;
  /** Truncated values, only when asked for. */
  live?: string;
  shadow?: string;
}

export interface DiffResult {
  /** Every kind found (listed or not). */
  kinds: Set<BodyDiffKind>;
  listed: ListedDiff[];
  /** Differences found beyond the listed ones. */
  more: number;
}

/** Thrown when an answer nests deeper than MAX_DEPTH. */
export class TooDeepError extends Error {}

/** The differences between `live` and `shadow` (decoded JSON). Throws TooDeepError past MAX_DEPTH. */
export function diffJson(live: unknown, shadow: unknown, o: DiffOptions): DiffResult {
  const r: DiffResult = { kinds: new Set(), listed: [], more: 0 };
  const path: PathSegment[] = [];
  const found = (kind: BodyDiffKind, l: unknown, s: unknown) => {
    r.kinds.add(kind);
    if (r.listed.length >= o.maxListed) {
      r.more++;
      return;
    }
    const d: ListedDiff = { kind, path: formatPath(path) };
    if (kind === 'changed_value' && typeOf(l) !== typeOf(s)) {
      d.live_type = typeOf(l);
      d.shadow_type = typeOf(s);
    }
    if (o.values) {
      if (kind !== 'extra_field') d.live = preview(l);
      if (kind !== 'missing_field') d.shadow = preview(s);
    }
    r.listed.push(d);
  };

  const walk = (l: unknown, s: unknown, states: States | undefined, depth: number): void => {
    if (depth > MAX_DEPTH) throw new TooDeepError();
    if (Array.isArray(l) && Array.isArray(s)) {
      const n = Math.max(l.length, s.length);
      for (let i = 0; i < n; i++) child(i, l, s, i < l.length, i < s.length, states, depth);
      return;
    }
    if (isPlainObject(l) && isPlainObject(s)) {
      for (const k of Object.keys(l)) child(k, l, s, true, Object.hasOwn(s, k), states, depth);
      for (const k of Object.keys(s)) if (!Object.hasOwn(l, k)) child(k, l, s, false, true, states, depth);
      return;
    }
    if (!sameLeaf(l, s, o.numericTolerance)) found('changed_value', l, s);
  };

  const child = (k: PathSegment, l: any, s: any, inLive: boolean, inShadow: boolean, states: States | undefined, depth: number): void => {
    const next = step(o.ignore, states, k);
    if (next === IGNORED) return;
    path.push(k);
    if (!inShadow) found('missing_field', l[k], undefined);
    else if (!inLive) found('extra_field', undefined, s[k]);
    else walk(l[k], s[k], next, depth + 1);
    path.pop();
  };

  walk(live, shadow, start(o.ignore), 0);
  return r;
}

function sameLeaf(l: unknown, s: unknown, tolerance: number): boolean {
  if (l === s) return true;
  if (typeof l === 'number' && typeof s === 'number') return Math.abs(l - s) <= tolerance;
  // Values a decoder may give that are not JSON (a YAML date): compared by their JSON text.
  if (typeof l === 'object' && l !== null && typeof s === 'object' && s !== null && !Array.isArray(l) && !Array.isArray(s)) {
    return JSON.stringify(l) === JSON.stringify(s);
  }
  return false;
}

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

const PREVIEW = 64;

/** A value shortened for a log line: scalars as JSON (cut at 64 characters), containers by size. */
export function preview(v: unknown): string {
  if (Array.isArray(v)) return `an array of ${v.length} items`;
  if (isPlainObject(v)) return `an object with ${Object.keys(v).length} keys`;
  const text = v === undefined ? 'undefined' : (JSON.stringify(v) ?? String(v));
  return text.length > PREVIEW ? `${text.slice(0, PREVIEW - 3)}...` : text;
}
