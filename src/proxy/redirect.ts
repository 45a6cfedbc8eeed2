// Following backend redirects as Go's http.Client does (KrakenD's behaviour),
// inside Portico's own upstream clients (both runtimes): nothing is allocated
// unless the backend actually answers with a redirect. (undici's redirect
// interceptor wraps every call in a handler that copies the options and builds
// URLs per response, a few percent of the request path; fetch's own redirects
// follow the Fetch standard's rules, not Go's.)
//
// - 301, 302, 303 turn any method but GET and HEAD into GET, without the body;
//   307 and 308 repeat the method and body (the body is a Buffer, replayable).
// - A redirect to another host drops the credentials (Authorization, Cookie, ...).
// - The next request carries a Referer naming the one redirected (unless the
//   request had its own, or it goes from https to http), as Go's client adds.
// - After MAX_REDIRECTS hops the redirect answer itself is returned.

import type { BackendCall, ResponseHeaders } from './types.ts';

export const MAX_REDIRECTS = 10;

const CREDENTIALS = new Set(['authorization', 'www-authenticate', 'cookie', 'cookie2', 'proxy-authorization']);
const BODY_HEADERS = new Set(['content-type', 'content-length', 'content-encoding', 'content-language', 'content-location', 'transfer-encoding']);

type Headers = Record<string, string | string[]>;

/**
 * The call to make instead of delivering this answer, or undefined when the
 * answer is not a redirect to follow (not 301/302/303/307/308, no Location,
 * an unusable Location, or `hops` already at the limit).
 */
export function redirectTo(
  opts: BackendCall,
  status: number,
  headers: ResponseHeaders,
  hops: number,
  /** The first request's own Referer: every hop keeps it (Go's explicit referer). */
  explicitReferer?: string,
): BackendCall | undefined {
  if (status < 301 || status > 308 || (status > 303 && status < 307)) return undefined;
  if (hops >= MAX_REDIRECTS) return undefined;
  const location = headers.location;
  if (typeof location !== 'string' || location === '') return undefined;
  let next: URL;
  try {
    next = new URL(location, opts.origin + opts.path);
  } catch {
    return undefined;
  }
  if (next.protocol !== 'http:' && next.protocol !== 'https:') return undefined;

  const sameOrigin = next.origin === opts.origin;
  const toGet = status <= 303 && opts.method !== 'GET' && opts.method !== 'HEAD';
  const old = opts.headers;
  const kept: Headers = {};
  for (const name in old) {
    if (!sameOrigin && CREDENTIALS.has(name)) continue;
    if (toGet && BODY_HEADERS.has(name)) continue;
    if (name === 'referer') continue;
    kept[name] = old[name];
  }
  // Go's refererForURL: the request's own Referer, else the URL redirected from
  // (without user info or fragment), except from https to http.
  const from = new URL(opts.path, opts.origin);
  if (explicitReferer !== undefined) kept.referer = explicitReferer;
  else if (!(from.protocol === 'https:' && next.protocol === 'http:')) {
    from.username = '';
    from.password = '';
    from.hash = '';
    kept.referer = from.href;
  }
  return {
    ...opts,
    origin: next.origin,
    path: next.pathname + next.search,
    method: toGet ? 'GET' : opts.method,
    body: toGet ? undefined : opts.body,
    headers: kept,
  };
}

const HTML_ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&#34;', "'": '&#39;' };

/** The small HTML body Go's http.Redirect sends with a 301 to a GET (the gateway's own redirects). */
export function movedPermanentlyHtml(location: string): string {
  return `<a href="${location.replace(/[&<>"']/g, (ch) => HTML_ESCAPES[ch]!)}">Moved Permanently</a>.\n\n`;
}
