// Query-string forwarding, compiled from input_query_strings. Pairs are copied
// as the client encoded them (no decode/re-encode round trip), repeated values
// and their order are kept, and names match case-sensitively.

export type QueryFilter = (rawQuery: string) => string;

export function compileQueryFilter(endpointList: readonly string[], backendList: readonly string[] | undefined): QueryFilter {
  const endpointAll = endpointList.includes('*');
  const backendAll = backendList === undefined || backendList.includes('*');
  if (endpointAll && backendAll) return (raw) => raw;
  let allowed: Set<string>;
  if (endpointAll) allowed = new Set(backendList);
  else if (backendAll) allowed = new Set(endpointList);
  else allowed = new Set(endpointList.filter((n) => backendList!.includes(n)));
  if (allowed.size === 0) return () => '';
  return (raw) => {
    if (raw === '') return '';
    let out = '';
    for (const pair of raw.split('&')) {
      if (pair === '') continue;
      const eq = pair.indexOf('=');
      const rawName = eq < 0 ? pair : pair.slice(0, eq);
      if (allowed.has(queryUnescape(rawName))) out += out === '' ? pair : '&' + pair;
    }
    return out;
  };
}

/** Go's url.QueryUnescape; a value that does not unescape is kept as it came. */
export function queryUnescape(raw: string): string {
  if (!raw.includes('%') && !raw.includes('+')) return raw;
  try {
    return decodeURIComponent(raw.replaceAll('+', ' '));
  } catch {
    return raw;
  }
}

/** A percent-encoded path, decoded; as written when it is not valid percent-encoding. */
export function decodePath(path: string): string {
  if (!path.includes('%')) return path;
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

/** Parse a raw query into name -> values (used by /__echo and placeholders). */
export function parseQuery(raw: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  if (raw === '') return out;
  for (const [k, v] of new URLSearchParams(raw)) {
    const list = out.get(k);
    if (list) list.push(v);
    else out.set(k, [v]);
  }
  return out;
}
