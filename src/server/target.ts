// The request target, parsed and normalized once. Routing and forwarding both
// use the decoded segments produced here, so what was routed is what is sent.

export type Target =
  | { ok: true; path: string; rawQuery: string; segments: string[]; rawSegments: string[] }
  | { ok: false; status: number; message: string };

function fail(message: string, status = 400): Target {
  return { ok: false, status, message };
}

/**
 * @param url       req.url as node:http gives it
 * @param host      the Host header
 * @param collapseSlashes router.remove_extra_slash
 */
export function parseTarget(url: string, host: string | undefined, collapseSlashes: boolean): Target {
  let rest = url;
  if (rest[0] !== '/') {
    // absolute-form (RFC 9112 3.2.2): allowed only for the authority we were asked for.
    const m = /^https?:\/\/([^/?#]*)(.*)$/i.exec(rest);
    if (!m) return fail('malformed request target');
    if (host === undefined || m[1].toLowerCase() !== host.toLowerCase()) return fail('request target authority does not match Host');
    rest = m[2] === '' ? '/' : m[2];
    if (rest[0] !== '/') rest = '/' + rest;
  }
  const hash = rest.indexOf('#');
  if (hash >= 0) rest = rest.slice(0, hash);
  const q = rest.indexOf('?');
  let path = q >= 0 ? rest.slice(0, q) : rest;
  const rawQuery = q >= 0 ? rest.slice(q + 1) : '';
  if (collapseSlashes && path.includes('//')) path = path.replace(/\/{2,}/g, '/');

  const rawSegments = path.slice(1).split('/');
  const segments = new Array<string>(rawSegments.length);
  for (let i = 0; i < rawSegments.length; i++) {
    const raw = rawSegments[i];
    if (raw === '.' || raw === '..') return fail('dot segments are not allowed in the path');
    if (!raw.includes('%')) {
      segments[i] = raw;
      continue;
    }
    let decoded: string;
    try {
      decoded = decodeURIComponent(raw);
    } catch {
      return fail('malformed percent-encoding in the path');
    }
    if (decoded.includes('/') || decoded.includes('\\')) return fail('encoded slashes are not allowed in the path');
    if (decoded === '.' || decoded === '..') return fail('encoded dot segments are not allowed in the path');
    if (decoded.includes('\0')) return fail('encoded NUL is not allowed in the path');
    segments[i] = decoded;
  }
  return { ok: true, path, rawQuery, segments, rawSegments };
}
