// Endpoint paths and url_pattern placeholders, with KrakenD's (Lura's) rules.

/** With KrakenD's default strict REST rule a parameter fills a whole segment: /users/{id}. */
const STRICT_PARAM = /\/\{([a-zA-Z\-_0-9]+)\}/g;
/** With disable_rest: true, and always in backend url_pattern: any {name}. */
const ANY_PLACEHOLDER = /\{([\w\-.:/]+)\}/g;

export const SEQUENTIAL_PLACEHOLDER = /^resp(\d+)_.+$/;
export const JWT_PLACEHOLDER = /^JWT\.[\w\-.:/]+$/;

export function endpointParams(path: string, disableRest: boolean): string[] {
  const pattern = disableRest ? ANY_PLACEHOLDER : STRICT_PARAM;
  return [...path.matchAll(pattern)].map((m) => m[1] as string);
}

export function urlPatternPlaceholders(urlPattern: string): string[] {
  return [...new Set([...urlPattern.matchAll(ANY_PLACEHOLDER)].map((m) => m[1] as string))];
}

/** The route with parameter names erased: /a/{x} and /a/{y} are the same route. */
export function routeKey(method: string, path: string): string {
  return `${method} ${path.replace(/\{[^}]*\}/g, '{}')}`;
}

export const DEFAULT_HEALTH_PATH = '/__health';

const RESERVED_PREFIXES = ['/__health', '/__debug', '/__echo', '/__catchall', '/__stats'];

/** The reserved path `path` collides with, if any (the built-in endpoints and router.health_path). */
export function reservedPath(path: string, healthPath: string): string | undefined {
  for (const prefix of RESERVED_PREFIXES) {
    if (path === prefix || path.startsWith(`${prefix}/`)) return prefix;
  }
  const health = healthPath.replace(/\/+$/, '');
  if (health !== '' && (path === health || path === `${health}/`)) return healthPath;
  return undefined;
}

/** KrakenD's schema forbids these in endpoint paths (a trailing /* is an Enterprise wildcard). */
export const FORBIDDEN_PATH_CHARS = /[?&%*]/;

/** Lura's CleanPath: exactly one leading slash is ensured. */
export function cleanPath(path: string): string {
  return `/${path.startsWith('/') ? path.slice(1) : path}`;
}
