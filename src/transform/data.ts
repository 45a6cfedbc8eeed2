// The decoded body of a backend answer, and the small helpers every transform
// shares. Backend data is freshly decoded per request, so transforms may mutate
// it in place. Anything that comes from the configuration (static data, values
// compiled from config) must never be handed to a mutating transform without a
// copy.

export type Data = Record<string, unknown>;

/** A JSON-style object: not null, not an array. */
export function isObject(v: unknown): v is Data {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * A key read from config, compiled once. Reading `o[key]` on a plain object can
 * return an inherited Object.prototype member for names such as `toString` or
 * `constructor`; only for those names do we pay for an own-property check, and
 * only for those do writes go through defineProperty (so `__proto__` can never
 * replace a prototype).
 */
export interface Key {
  readonly name: string;
  readonly inherited: boolean;
}

export function compileKey(name: string): Key {
  return { name, inherited: name in Object.prototype };
}

export function getOwn(o: Data, k: Key): unknown {
  if (k.inherited && !Object.hasOwn(o, k.name)) return undefined;
  return o[k.name];
}

export function setOwn(o: Data, k: Key, v: unknown): void {
  if (k.inherited) {
    Object.defineProperty(o, k.name, { value: v, writable: true, enumerable: true, configurable: true });
  } else {
    o[k.name] = v;
  }
}

// Removing keys: V8 turns an object that lost a property with `delete` into a
// slow dictionary, which also makes JSON.stringify twice as slow. Copying the
// remaining keys into a fresh object is cheaper for the small objects APIs
// return, so removals build a new object and the caller stores it in the
// parent.

/** Set a key on a fresh object, safe for the own key "__proto__" (JSON.parse makes such keys). */
export function put(o: Data, k: string, v: unknown): void {
  if (k === '__proto__') Object.defineProperty(o, k, { value: v, writable: true, enumerable: true, configurable: true });
  else o[k] = v;
}

/** Merge `src` into `target` key by key (later keys overwrite), safe for "__proto__" keys. */
export function mergeInto(target: Data, src: Data): void {
  for (const k in src) put(target, k, src[k]);
}

/** A copy of `o` without `key`; undefined when nothing is left. */
export function withoutKey(o: Data, key: string): Data | undefined {
  let out: Data | undefined;
  for (const k in o) {
    if (k === key) continue;
    if (out === undefined) out = {};
    put(out, k, o[k]);
  }
  return out;
}

/** A copy of `o` without the keys in `skip`; undefined when nothing is left. */
export function withoutKeys(o: Data, skip: ReadonlySet<string>): Data | undefined {
  let out: Data | undefined;
  for (const k in o) {
    if (skip.has(k)) continue;
    if (out === undefined) out = {};
    put(out, k, o[k]);
  }
  return out;
}

/** A copy of `o` with `from` renamed to `to` in place; an existing `to` is replaced. */
export function renamed(o: Data, from: string, to: string): Data {
  const out: Data = {};
  for (const k in o) {
    if (k === to) continue;
    put(out, k === from ? to : k, o[k]);
  }
  return out;
}

/** Split a dot path once, at compile time. */
export function splitPath(path: string): string[] {
  return path.split('.');
}
