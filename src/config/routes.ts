// Endpoint paths and url_pattern placeholders, with KrakenD's (Lura's) rules.

/** An endpoint parameter fills a whole segment: /users/{id}. KrakenD's router (httprouter) has no partial-segment parameters either. */
const STRICT_PARAM = /\/\{([a-zA-Z\-_0-9]+)\}(?=\/|$)/g;
/** Placeholders in a backend url_pattern: any {name}, also inside a segment (/file.{ext}). */
const ANY_PLACEHOLDER = /\{([\w\-.:/]+)\}/g;

export const SEQUENTIAL_PLACEHOLDER = /^resp(\d+)_.+$/;
export const JWT_PLACEHOLDER = /^JWT\.[\w\-.:/]+$/;

/** The parameters an endpoint path binds. disable_rest only loosens backend url_patterns, never routing. */
export function endpointParams(path: string): string[] {
  return [...path.matchAll(STRICT_PARAM)].map((m) => m[1] as string);
}

export function urlPatternPlaceholders(urlPattern: string): string[] {
  return [...new Set([...urlPattern.matchAll(ANY_PLACEHOLDER)].map((m) => m[1] as string))];
}

/** The route with parameter names erased: /a/{x} and /a/{y} are the same route. */
export function routeKey(method: string, path: string): string {
  return `${method} ${path.replace(/\{[^}]*\}/g, '{}')}`;
}

export const DEFAULT_HEALTH_PATH = '/__health';

const RESERVED_PREFIXES = ['/__health', '/__ready', '/__debug', '/__echo', '/__catchall', '/__stats'];

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
