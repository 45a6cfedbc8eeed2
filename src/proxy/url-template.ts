// url_pattern compiled once into literal pieces and placeholders, so a request
// only concatenates strings.

import { claimText, lookupClaim } from './claims.ts';
import type { ProxyRequest } from './types.ts';

const PLACEHOLDER = /\{([^{}]+)\}/g;

export interface UrlTemplate {
  /** Names of every placeholder, in order. */
  readonly names: readonly string[];
  /** True when the pattern carries its own query string. */
  readonly hasQuery: boolean;
  render(req: ProxyRequest): string;
}

/** Characters allowed unescaped in a path segment (RFC 3986 pchar minus '/'). */
const SEGMENT_SAFE = /^[A-Za-z0-9\-._~!$&'()*+,;=:@]*$/;

export function encodeSegment(value: string): string {
  if (SEGMENT_SAFE.test(value)) return value;
  return encodeURIComponent(value);
}

export function compileUrlTemplate(pattern: string): UrlTemplate {
  const queryAt = pattern.indexOf('?');
  const literals: string[] = [];
  const names: string[] = [];
  const inQuery: boolean[] = [];
  let last = 0;
  for (const m of pattern.matchAll(PLACEHOLDER)) {
    literals.push(pattern.slice(last, m.index));
    names.push(m[1]);
    inQuery.push(queryAt >= 0 && m.index > queryAt);
    last = m.index + m[0].length;
  }
  const tail = pattern.slice(last);
  const hasQuery = queryAt >= 0;
  if (names.length === 0) {
    return { names, hasQuery, render: () => pattern };
  }
  // {JWT.a.b}: read from the verified claims of the request (auth/validator).
  const claimPaths = names.map((n) => (n.startsWith(JWT_PREFIX) ? n.slice(JWT_PREFIX.length) : undefined));
  return {
    names,
    hasQuery,
    render(req) {
      let out = '';
      for (let i = 0; i < names.length; i++) {
        const name = names[i];
        const claim = claimPaths[i];
        const value = claim !== undefined ? claimPlaceholderText(req.claims, claim, name) : (req.params[name] ?? req.extraParams?.[name] ?? '');
        out += literals[i] + (inQuery[i] ? encodeURIComponent(value) : encodeSegment(value));
      }
      return out + tail;
    },
  };
}

const JWT_PREFIX = 'JWT.';

/** The text a placeholder gets from a value found at `path` in `data`: '' when absent, JSON for objects and arrays. */
export function placeholderText(data: Record<string, unknown> | undefined, path: readonly string[]): string {
  let v: unknown = data;
  for (const key of path) {
    if (v === null || typeof v !== 'object' || !Object.hasOwn(v, key)) return '';
    v = (v as Record<string, unknown>)[key];
  }
  if (v === undefined || v === null) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/**
 * The text of a {JWT.name} placeholder. KrakenD (krakend-jose) looks the
 * claim up by its whole name and renders it with Claims.Get (claimText);
 * when it is absent the backend receives the placeholder itself, literally
 * (then percent-encoded, as any value). Portico also follows a dot path into
 * nested objects ({JWT.realm_access.tier}) when no claim has the whole name,
 * as KrakenD Enterprise does.
 */
function claimPlaceholderText(claims: Record<string, unknown> | undefined, name: string, placeholder: string): string {
  const value = claims === undefined ? undefined : lookupClaim(claims, name, true);
  return value === undefined ? `{${placeholder}}` : claimText(value);
}

/** Placeholders filled from an earlier sequential backend: {resp0_a.b} -> backend 0, path a.b */
export function parseRespPlaceholder(name: string): { index: number; path: string[] } | undefined {
  const m = /^resp(\d+)_(.+)$/.exec(name);
  if (!m) return undefined;
  return { index: Number(m[1]), path: m[2].split('.') };
}
