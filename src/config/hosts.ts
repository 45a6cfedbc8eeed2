// Backend host sanitation, as KrakenD does it: "example.com:8080" becomes
// "http://example.com:8080" and a trailing "/" is removed. Only http and https
// are accepted unless the backend sets disable_host_sanitize, in which case the
// host is used exactly as written.

export type HostCheck = { ok: true; host: string } | { ok: false; expected: string };

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;

export const HOST_EXPECTED = 'a host such as "http://api.example.com:8080", "https://api.example.com" or "api.example.com"';

export function sanitizeHost(host: string, disableSanitize = false): HostCheck {
  if (host.trim() === '') return { ok: false, expected: HOST_EXPECTED };
  if (disableSanitize) return { ok: true, host };
  const scheme = SCHEME.exec(host)?.[1]?.toLowerCase();
  if (scheme !== undefined && scheme !== 'http' && scheme !== 'https') {
    return {
      ok: false,
      expected: 'an http:// or https:// host (set "disable_host_sanitize": true to use another scheme as written)',
    };
  }
  const withScheme = scheme === undefined ? `http://${host}` : host;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    return { ok: false, expected: HOST_EXPECTED };
  }
  if (url.hostname === '' || url.search !== '' || url.hash !== '' || /\s/.test(host)) {
    return { ok: false, expected: `${HOST_EXPECTED}, with no query string or fragment` };
  }
  return { ok: true, host: withScheme.replace(/\/+$/, '') };
}
