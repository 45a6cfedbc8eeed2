// Token claims as KrakenD reads and renders them: looked up by name (or by a
// dot path into nested objects) and turned into text the way krakend-jose's
// Claims.Get does, for {JWT...} placeholders and propagated claim headers.

/**
 * A claim by name: the top-level claim of that exact name, else (when
 * `nested` and the name has dots) the value at that dot path. undefined when
 * absent. Shared with auth/validator (roles, scopes, propagate_claims).
 */
export function lookupClaim(claims: Record<string, unknown>, name: string, nested: boolean): unknown {
  if (Object.hasOwn(claims, name)) return claims[name];
  if (!nested || !name.includes('.')) return undefined;
  return claimAtPath(claims, name);
}

/** The value at a dot path through nested objects (never through arrays), or undefined. */
export function claimAtPath(claims: Record<string, unknown>, path: string): unknown {
  let v: unknown = claims;
  for (const key of path.split('.')) {
    if (v === null || typeof v !== 'object' || Array.isArray(v) || !Object.hasOwn(v, key)) return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

/**
 * A claim value as text, exactly as krakend-jose's Claims.Get renders it for
 * {JWT...} placeholders and propagate_claims headers: strings as they are;
 * whole numbers without decimals (1700000000); other numbers with six decimals
 * (Go's %f: 1.5 -> "1.500000"); arrays as their elements joined by commas
 * (each as Go's %v prints it: ["a","b"] -> "a,b"); booleans, null and objects
 * as Go's encoding/json writes them (sorted keys, <>& escaped).
 */
export function claimText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return goNumber(v);
  if (Array.isArray(v)) return v.map(goValue).join(',');
  return goJson(v);
}

function goNumber(v: number): string {
  const r = Math.round(v);
  if (Math.abs(v - r) <= 1e-6) return Number.isSafeInteger(r) ? String(r === 0 ? 0 : r) : BigInt(r).toString();
  return v.toFixed(6);
}

/** Go's fmt %v of a JSON value decoded into interface{}. */
function goValue(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return goFloat(v);
  if (typeof v === 'boolean') return String(v);
  if (v === null || v === undefined) return '<nil>';
  if (Array.isArray(v)) return `[${v.map(goValue).join(' ')}]`;
  const o = v as Record<string, unknown>;
  return `map[${Object.keys(o).sort().map((k) => `${k}:${goValue(o[k])}`).join(' ')}]`;
}

/** strconv.FormatFloat(v, 'g', -1, 64): shortest digits, exponent form below 1e-4 and from 1e6 (two-digit exponent at least). */
function goFloat(v: number): string {
  if (v === 0) return Object.is(v, -0) ? '-0' : '0';
  const [mantissa, e] = v.toExponential().split('e') as [string, string];
  const exp = Number(e);
  if (exp >= -4 && exp < 6) return String(v);
  const digits = String(Math.abs(exp)).padStart(2, '0');
  return `${mantissa}e${exp < 0 ? '-' : '+'}${digits}`;
}

/** encoding/json.Marshal of a decoded JSON value: object keys sorted, HTML characters and U+2028/2029 escaped. */
function goJson(v: unknown): string {
  const sorted = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(sorted);
    if (x === null || typeof x !== 'object') return x;
    const o = x as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(o).sort()) out[k] = sorted(o[k]);
    return out;
  };
  const text = JSON.stringify(sorted(v)) ?? 'null';
  return text.replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
