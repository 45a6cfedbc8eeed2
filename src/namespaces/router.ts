// `router` (service): KrakenD's router options. The core reads them directly
// (routing, built-in endpoints, client addressing, access log): no guard.

import { checkFields, checkValue, expectObject, type ObjectRules } from '../config/fields.ts';
import type { IssueCollector } from '../config/issues.ts';
import { isPlainObject, type JsonPath } from '../config/json-path.ts';
import { bool, str, strings } from '../config/read.ts';
import { DEFAULT_HEALTH_PATH } from '../config/routes.ts';
import type { RouterOptions } from '../config/types.ts';
import { isIpOrCidr } from '../config/ip.ts';
import type { Namespace } from './namespace.ts';

const RULES: ObjectRules = {
  return_error_msg: 'boolean',
  health_path: 'custom',
  disable_health: 'boolean',
  error_body: 'custom',
  auto_options: 'boolean',
  remove_extra_slash: 'boolean',
  disable_redirect_trailing_slash: 'boolean',
  disable_redirect_fixed_path: 'boolean',
  forwarded_by_client_ip: 'boolean',
  remote_ip_headers: 'string[]',
  trusted_proxies: 'custom',
  disable_access_log: 'boolean',
  logger_skip_paths: 'string[]',
  // Known to KrakenD; accepted so they are not reported as unknown.
  app_engine: 'boolean',
  decompress_gzip: { kind: 'integer', min: 0 },
  disable_gzip: 'boolean',
  disable_handle_method_not_allowed: 'boolean',
  disable_path_decoding: 'boolean',
  hide_version_header: 'boolean',
  max_multipart_memory: { kind: 'integer', min: 0 },
  max_payload: { kind: 'integer', min: 0 },
};

export const DEFAULT_ROUTER: RouterOptions = parseOptions({});

export const router: Namespace<RouterOptions> = {
  name: 'router',
  scopes: ['service'],
  order: 0,
  policy: false,
  parse(raw, path, c) {
    if (!expectObject(c, raw, path, 'an object with router options')) return undefined;
    checkFields(c, raw, path, RULES, 'the "router" namespace');
    if ('health_path' in raw) {
      const hp = raw.health_path;
      if (typeof hp !== 'string' || !hp.startsWith('/')) {
        c.invalid([...path, 'health_path'], 'a path starting with "/", such as "/__health"', hp);
      }
    }
    if ('error_body' in raw) checkErrorBody(c, raw.error_body, [...path, 'error_body']);
    if ('trusted_proxies' in raw) checkTrustedProxies(c, raw.trusted_proxies, [...path, 'trusted_proxies']);
    return parseOptions(raw);
  },
};

function parseOptions(r: Record<string, unknown>): RouterOptions {
  const options: RouterOptions = {
    returnErrorMsg: bool(r.return_error_msg),
    healthPath: str(r.health_path) ?? DEFAULT_HEALTH_PATH,
    disableHealth: bool(r.disable_health),
    autoOptions: bool(r.auto_options),
    removeExtraSlash: bool(r.remove_extra_slash),
    disableRedirectTrailingSlash: bool(r.disable_redirect_trailing_slash),
    disableRedirectFixedPath: bool(r.disable_redirect_fixed_path),
    forwardedByClientIp: bool(r.forwarded_by_client_ip),
    remoteIpHeaders: strings(r.remote_ip_headers) ?? [],
    trustedProxies: strings(r.trusted_proxies) ?? [],
    disableAccessLog: bool(r.disable_access_log),
    loggerSkipPaths: strings(r.logger_skip_paths) ?? [],
  };
  if (isPlainObject(r.error_body)) {
    options.errorBody = { notFound: r.error_body['404'], methodNotAllowed: r.error_body['405'] };
  }
  return options;
}

function checkErrorBody(c: IssueCollector, body: unknown, path: JsonPath): void {
  if (!expectObject(c, body, path, 'an object such as {"404": {...}, "405": {...}}')) return;
  for (const [code, value] of Object.entries(body)) {
    if (code !== '404' && code !== '405') {
      c.warning([...path, code], 'a status code "404" or "405" (the only errors KrakenD lets you customize)', `unknown key ${JSON.stringify(code)}`, 'key');
    } else if (!isPlainObject(value)) {
      c.invalid([...path, code], 'a JSON object to use as the response body', value);
    }
  }
}

function checkTrustedProxies(c: IssueCollector, value: unknown, path: JsonPath): void {
  if (!checkValue(c, value, path, { kind: 'string[]' })) return;
  (value as string[]).forEach((entry, i) => {
    if (!isIpOrCidr(entry)) c.invalid([...path, i], 'an IP address or CIDR range such as "10.0.0.0/8"', entry);
  });
}
