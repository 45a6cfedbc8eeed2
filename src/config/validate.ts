// Validation of a whole (comment-stripped, env-overridden) configuration. Every
// problem is collected; nothing stops at the first one.

import { isCommentKey } from './comments.ts';
import { checkFields, checkValue, expectObject, type ObjectRules } from './fields.ts';
import { isPlainObject } from './json-path.ts';
import type { IssueCollector } from './issues.ts';
import type { NamespaceUse } from '../namespaces/namespace.ts';
import { parseNamespaces } from '../namespaces/registry.ts';
import { DEFAULT_HEALTH_PATH } from './routes.ts';
import { checkEndpoints, checkHost, type ServiceFacts } from './validate-endpoint.ts';
import { checkTls } from './validate-tls.ts';
import { OUTPUT_ENCODING_NAMES } from './vocabulary.ts';

/** Every top-level key of KrakenD CE 2.x's schema; the ones Portico does not use are still known. */
export const SERVICE_RULES: ObjectRules = {
  version: 'custom',
  name: 'string',
  port: { kind: 'integer', min: 0, max: 65535 },
  listen_ip: 'string',
  timeout: 'duration',
  cache_ttl: 'duration',
  host: 'custom',
  output_encoding: { kind: 'string', oneOf: OUTPUT_ENCODING_NAMES },
  endpoints: 'custom',
  extra_config: 'custom',
  read_timeout: 'duration',
  write_timeout: 'duration',
  idle_timeout: 'duration',
  read_header_timeout: 'duration',
  max_idle_connections: { kind: 'integer', min: 0 },
  max_idle_connections_per_host: { kind: 'integer', min: 0 },
  max_header_bytes: { kind: 'integer', min: 0 },
  idle_connection_timeout: 'duration',
  response_header_timeout: 'duration',
  expect_continue_timeout: 'duration',
  dialer_timeout: 'duration',
  dialer_fallback_delay: 'duration',
  dialer_keep_alive: 'duration',
  dns_cache_ttl: 'duration',
  disable_keep_alives: 'boolean',
  disable_compression: 'boolean',
  disable_rest: 'boolean',
  allow_insecure_connections: 'boolean',
  sequential_start: 'boolean',
  use_h2c: 'boolean',
  debug_endpoint: 'boolean',
  echo_endpoint: 'boolean',
  tls: 'custom',
  client_tls: 'object',
  plugin: 'object',
  async_agent: 'array',
};

/** The parsed namespaces of every extra_config object, keyed by that object (normalize reads them). */
export type ParsedNamespaces = WeakMap<object, NamespaceUse[]>;

export function validateConfig(c: IssueCollector, raw: unknown): ParsedNamespaces {
  const parsed: ParsedNamespaces = new WeakMap();
  if (!isPlainObject(raw)) {
    c.invalid([], 'a configuration object {"version": 3, ...}', raw);
    return parsed;
  }
  checkFields(c, raw, [], SERVICE_RULES, 'the top level');

  if (!('version' in raw)) c.missing(['version'], '3, the version of the KrakenD v3 (CE 2.x) configuration format');
  else if (raw.version !== 3) c.invalid(['version'], '3, the version of the KrakenD v3 (CE 2.x) configuration format', raw.version);

  if ('host' in raw) {
    if (checkValue(c, raw.host, ['host'], { kind: 'array' })) {
      (raw.host as unknown[]).forEach((host, i) => checkHost(c, host, ['host', i], false));
    }
  }
  if ('tls' in raw) checkTls(c, raw.tls, ['tls']);
  if (isPlainObject(raw.client_tls)) checkClientTls(c, raw.client_tls);

  let healthPath = DEFAULT_HEALTH_PATH;
  const service = new Map<string, unknown>();
  if ('extra_config' in raw && expectObject(c, raw.extra_config, ['extra_config'], 'an object of namespaces')) {
    // Each service namespace sees the ones parsed before it (in stack order) through `service`.
    const uses = parseNamespaces(c, raw.extra_config, ['extra_config'], { scope: 'service', service }, (name, options) => service.set(name, options));
    parsed.set(raw.extra_config, uses);
    const router = raw.extra_config.router;
    if (isPlainObject(router) && typeof router.health_path === 'string') healthPath = router.health_path;
  }

  const facts: ServiceFacts = {
    // An invalid top-level host was already reported: do not also blame every backend.
    hasHost: 'host' in raw && !(Array.isArray(raw.host) && raw.host.length === 0),
    healthPath,
    outputEncoding: typeof raw.output_encoding === 'string' ? raw.output_encoding : 'json',
    service,
    parsed,
  };
  if ('endpoints' in raw) checkEndpoints(c, raw.endpoints, facts);
  return parsed;
}

/**
 * KrakenD's `client_tls` (TLS towards backends) is not implemented: backends are
 * verified with the runtime's CAs (plus NODE_EXTRA_CA_CERTS). Asking to skip
 * verification is ignored with a warning (Portico stays stricter); every other
 * setting (versions, ciphers, CAs, client certificates) would be silently
 * weaker or different, so it is refused.
 */
function checkClientTls(c: IssueCollector, raw: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(raw)) {
    if (isCommentKey(key)) continue;
    const at = ['client_tls', key];
    if (key === 'allow_insecure_connections') {
      if (value === true) c.warning(at, 'nothing: Portico always verifies backend certificates (system CAs and NODE_EXTRA_CA_CERTS)', 'true: ignored');
      continue;
    }
    c.error(at, 'no backend TLS settings: not supported by this version (backends are verified with the system CAs and NODE_EXTRA_CA_CERTS)', `"${key}"`);
  }
}
